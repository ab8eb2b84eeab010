"""Fixtures for deploy tests: a real mosquitto started with a generated ACL file and a
password file made by mosquitto_passwd, and small MQTT clients that log in as one user."""

from __future__ import annotations

import getpass
import queue
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.deploy.mosquitto import access_conf, acl_file
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data
from tests.harness.services import LOOPBACK, Service, require_binary

PASSWORD = "pw-{user}-secret"


def two_agent_plant(site: str) -> Plant:
    """The example plant with its line split between two agents."""
    data = example_data()
    data["site"]["id"] = site
    data["agents"] = [
        {"id": "edge1", "machines": ["press1", "weld1"]},
        {"id": "edge2", "machines": ["paint1", "pack1"]},
    ]
    return parse_plant(data)


class SecuredMosquitto(Service):
    """mosquitto with anonymous access off, a password file and an ACL file, configured by
    the generated access lines (`access_conf`: client ids bound to user names); optional
    extra config lines (e.g. a bridge section)."""

    name = "mosquitto"

    def __init__(self, workdir: Path, acl: str | None, users: list[str], extra: str = "") -> None:
        super().__init__(workdir)
        self.acl, self.users, self.extra = acl, users, extra

    def command(self) -> list[str]:
        conf = [f"listener {self.port} {LOOPBACK}", "persistence true",
                f"persistence_location {self.workdir}/", "log_dest stdout",
                f"user {getpass.getuser()}"]
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("".join(f"{u}:{PASSWORD.format(user=u)}\n" for u in self.users))
            subprocess.run([require_binary("mosquitto_passwd"), "-U", str(passwd)], check=True)
        if self.users and self.acl is not None:
            (self.workdir / "acl").write_text(self.acl)
            conf.append(access_conf(str(passwd), str(self.workdir / "acl")))
        elif self.users:
            conf += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            conf.append("allow_anonymous true")
        (self.workdir / "mosquitto.conf").write_text("\n".join(conf) + "\n" + self.extra)
        return [require_binary("mosquitto"), "-c", str(self.workdir / "mosquitto.conf")]


class User:
    """An MQTT v5 client logged in as one user; received messages land in `inbox`."""

    def __init__(self, port: int, user: str | None, password: str | None = None, *,
                 client_id: str | None = None, clean_start: bool = True,
                 session_expiry_s: int = 0) -> None:
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"{user}-{uuid.uuid4().hex[:6]}")
        if user is not None:
            self.client.username_pw_set(user, password or PASSWORD.format(user=user))
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload))
        self.client.on_publish = self._on_publish
        self.connected = threading.Event()
        self.reason: Any = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.dropped = threading.Event()  # the broker closed the connection
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry_s
        self.client.connect(LOOPBACK, port, clean_start=clean_start, properties=properties)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       props: Any) -> None:
        self.dropped.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._acked:
            self.acks[mid] = reason
            self._acked.notify_all()

    def publish(self, topic: str, payload: bytes = b"x") -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self.acks, timeout=5)
            return int(self.acks[info.mid].value)

    def subscribe(self, *topics: str) -> list[Any]:
        """Subscribe and return the SUBACK reason codes, one per topic."""
        done = threading.Event()
        codes: list[Any] = []

        def on_subscribe(c: Any, u: Any, mid: int, reason_codes: Any, props: Any) -> None:
            codes.extend(reason_codes)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(5)
        return codes

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def site_plant(unique_site: str) -> Plant:
    return two_agent_plant(unique_site)


@pytest.fixture
def acl_broker(tmp_path: Path, site_plant: Plant) -> Iterator[SecuredMosquitto]:
    broker = SecuredMosquitto(tmp_path / "broker", acl_file(site_plant),
                              ["edge1", "edge2", "collector", "api", "observer", "alarms"])
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def login(acl_broker: SecuredMosquitto) -> Iterator[Any]:
    clients: list[User] = []

    def connect(user: str | None, password: str | None = None, **options: Any) -> User:
        client = User(acl_broker.port, user, password, **options)
        assert client.connected.wait(5)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
