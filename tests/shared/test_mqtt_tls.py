"""TLS to the broker, as every component connects (shared/mqtt.py): a mosquitto with a
TLS listener that requires client certificates, certificates made here (a plant CA, the
broker's, a component's, and a stranger CA). Trusted broker + client certificate
connects; an untrusted broker or a missing client certificate never does; unusable files
and settings are refused before any attempt, naming the setting."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from shopfloor.shared.errors import BrokerSetupError, PlantFileError
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.mqtt import BrokerThread, Session, tls_context
from shopfloor.shared.plant import Broker
from tests.harness.plants import example_data
from tests.harness.services import LOOPBACK
from tests.harness.tls import tls_broker_settings

WAIT_S = 20.0
ROOT = Path(__file__).resolve().parents[2]


def test_a_trusted_broker_and_a_client_certificate_carry_messages(tls_mosquitto, pki) -> None:
    broker = tls_broker_settings(tls_mosquitto.port, pki)
    got: queue.Queue[bytes] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    reader = BrokerThread(broker, Session("tls-reader"), name="test-reader",
                          on_connected=lambda client, _: client.subscribe("tls/#", qos=1))
    reader.client.on_message = lambda c, u, m: got.put(m.payload)
    reader.client.on_subscribe = lambda c, u, mid, codes, p: subscribed.put(mid)
    writer = BrokerThread(broker, Session("tls-writer"), name="test-writer")
    try:
        assert reader.start(WAIT_S)
        subscribed.get(timeout=WAIT_S)
        assert writer.start(WAIT_S)
        writer.client.publish("tls/x", b"over TLS", qos=1)
        assert got.get(timeout=WAIT_S) == b"over TLS"
    finally:
        writer.stop()
        reader.stop()


@pytest.mark.parametrize(("case", "ca", "client_cert", "why"), [
    ("untrusted broker", "stranger", True, "CERTIFICATE_VERIFY_FAILED"),
    ("no client certificate", "plant", False, "broker.tls_cert_file"),
])
def test_a_broker_that_fails_tls_is_never_connected(tls_mosquitto, pki, caplog, case, ca,
                                                    client_cert, why) -> None:
    broker = tls_broker_settings(tls_mosquitto.port, pki, client_cert=client_cert,
                                 ca=pki.stranger_ca if ca == "stranger" else pki.ca)
    link = BrokerThread(broker, Session(f"tls-{ca}-{client_cert}"), name="test-refused",
                        backoff_max_s=0.5)
    try:
        with caplog.at_level(logging.DEBUG, logger="shopfloor.shared.mqtt"):
            link.start()
            assert _wait_for(lambda: link.failed_attempts >= 3)
        assert not link.connected.is_set()
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert errors and errors[0].startswith(f"broker {LOOPBACK}:{tls_mosquitto.port}: ")
        assert why in errors[0]
    finally:
        link.stop()


def _wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_unusable_tls_files_are_refused_naming_the_setting(pki, tmp_path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(BrokerSetupError, match=r"broker\.tls_ca_file .*nope\.pem"):
        tls_context(Broker(tls=True, tls_ca_file=str(missing)))
    not_pem = tmp_path / "garbage.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(BrokerSetupError, match=r"broker\.tls_ca_file"):
        tls_context(Broker(tls=True, tls_ca_file=str(not_pem)))
    with pytest.raises(BrokerSetupError, match=r"broker\.tls_cert_file"):
        tls_context(Broker(tls=True, tls_ca_file=str(pki.ca), tls_cert_file=str(pki.client),
                           tls_key_file=str(pki.broker.with_suffix(".key"))))  # not its key


@pytest.mark.parametrize(("broker", "message"), [
    ({"tls_ca_file": "/etc/ca.pem"}, "need `tls: true`"),
    ({"tls": True, "tls_cert_file": "/etc/c.pem"}, "go together"),
    ({"tls": True, "tls_key_file": "/etc/c.key"}, "go together"),
])
def test_tls_settings_that_cannot_work_are_plant_file_errors(broker, message) -> None:
    data = example_data()
    data["broker"] = {**data.get("broker", {}), **broker}
    with pytest.raises(PlantFileError) as error:
        parse_plant(data)
    assert any(path.startswith("broker") and message in text
               for path, text in error.value.errors)


def test_a_component_with_an_unreadable_ca_file_stops_with_one_line(tmp_path) -> None:
    data = example_data()
    data["broker"] = {**data.get("broker", {}), "tls": True}
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(data))
    env = {**os.environ, "SHOPFLOOR_BROKER_TLS_CA_FILE": str(tmp_path / "missing-ca.pem")}
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "alarms", str(plant)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 1
    assert "broker.tls_ca_file" in done.stderr and "missing-ca.pem" in done.stderr
    assert "Traceback" not in done.stderr
