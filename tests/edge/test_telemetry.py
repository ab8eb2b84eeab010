"""Polling end to end: registers on a real Modbus server arrive on a real broker as
telemetry, decoded, with gap-free sequence numbers, plus the retained state and the
agent's birth message."""

from __future__ import annotations

import struct
from typing import Any

from shopfloor.edge.store import Store
from shopfloor.shared import topics
from shopfloor.shared.enums import QueueFullPolicy
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.protocols.modbus.codec import decode


def test_values_on_mqtt_equal_registers_read_directly(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    from tests.edge.conftest import machine_spec, plant_data

    server = modbus_server
    server.set(1, "holding", 0, [1, 0x0001, 0x86A0, 2, 75])  # running, 100000 parts, B, 75 %
    temp = struct.unpack(">HH", struct.pack(">f", 21.5))
    server.set(1, "holding", 5, [temp[1], temp[0]])  # CDAB
    server.set(1, "holding", 7, list(struct.unpack(">HH", struct.pack(">i", -12345))))
    server.set(1, "input", 0, [0x0807, 0x0605, 0x0403, 0x0201])  # DCBA
    server.set(1, "holding", 20, [0x574F, 0x2D34, 0x3200, 0])  # "WO-42"
    server.set(1, "coil", 0, [True])
    data = plant_data(
        unique_site, mosquitto.port, {"m1": machine_spec(server.port)}, tmp_path / "state"
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)

    telemetry = rec.wait_for(lambda: rec.payloads("/m1/telemetry"))
    values = telemetry[0]["values"]
    machine = parse_plant(data).machines["m1"]
    for point in machine.points:
        raw = server.get(1, point.table, point.address, point.count)
        assert values[point.name] == decode(point, [int(r) for r in raw]), point.name
    assert values["temperature"] == 21.5
    assert values["energy"] == 0x0102030405060708
    assert values["power"] == -123.45
    assert values["work_order"] == "WO-42"
    assert telemetry[0]["quality"] == {}
    assert telemetry[0]["ts"].endswith("Z")

    state = rec.wait_for(lambda: rec.payloads("/m1/state"))[0]
    assert (state["state"], state["product"], state["work_order"]) == ("running", "B", "WO-42")
    status = rec.wait_for(lambda: rec.payloads(topics.status_topic(unique_site, "edge1")))
    assert status[0]["online"] is True and status[0]["machines"] == ["m1"]


def test_sequence_is_gap_free_and_state_published_on_change(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    from tests.edge.conftest import machine_spec, plant_data

    server = modbus_server
    server.set(1, "holding", 0, [1])
    data = plant_data(
        unique_site, mosquitto.port, {"m1": machine_spec(server.port)}, tmp_path / "state"
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    agent = run_agent(data)
    rec.wait_for(lambda: len(rec.payloads("/m1/telemetry")) >= 3)
    server.set(1, "holding", 0, [0])
    rec.wait_for(lambda: len(rec.payloads("/m1/state")) >= 2)
    agent.stop()

    seqs = [t["seq"] for t in rec.payloads("/m1/telemetry")]
    assert seqs == list(range(len(seqs)))
    states = rec.payloads("/m1/state")
    assert [(s["state"], s.get("reason")) for s in states] == [
        ("running", None),
        ("stopped", "operator_stop"),
    ]
    assert states[1]["since"] > states[0]["since"]
    offline = rec.wait_for(lambda: [s for s in rec.payloads("/edge1/status") if not s["online"]])
    assert offline[0]["agent"] == "edge1"
    # a graceful stop with the broker up publishes everything it polled
    store = Store(tmp_path / "state" / "outbox.sqlite3", 100, QueueFullPolicy.DROP_OLDEST)
    assert store.fetch(0, 10) == [] and store.seqs() == {"m1": seqs[-1]}
    store.close()


def test_points_with_a_longer_interval_are_read_less_often(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    from tests.edge.conftest import POINTS, machine_spec, plant_data

    points = [dict(p, poll_interval_s=0.6) if p["name"] == "energy" else p for p in POINTS]
    data = plant_data(
        unique_site,
        mosquitto.port,
        {"m1": machine_spec(modbus_server.port, points=points)},
        tmp_path / "state",
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/+/+/telemetry")
    run_agent(data)
    samples = rec.wait_for(
        lambda: len(rec.payloads("telemetry")) >= 10 and rec.payloads("telemetry")
    )
    with_energy = [i for i, t in enumerate(samples) if "energy" in t["values"]]
    assert with_energy[0] == 0  # every group is read at start
    assert 2 <= len(with_energy) < len(samples) / 2
    assert all("state" in t["values"] for t in samples)
