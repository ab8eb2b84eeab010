"""Gateway mode: machines behind one Modbus TCP host:port (different unit ids) share one
TCP connection; requests are matched to answers by transaction id, up to
`max_in_flight` at once; a silent unit id costs its own timeouts, not the others'
schedule. Against a pymodbus server with many unit ids (one request at a time, as many
real gateways) and against the simulator (answers pipelined requests)."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from typing import Any

import psutil
import pytest

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import parse_plant
from tests.edge.conftest import ModbusServer, generated_plant, machine_spec, plant_data

UNITS = tuple(range(1, 21))


def ts(sample: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(sample["ts"]).timestamp()


def connections_to(port: int) -> int:
    """Established TCP connections this process holds to 127.0.0.1:port."""
    return sum(
        1
        for c in psutil.Process().net_connections("tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def gateway_machines(port: int, units: tuple[int, ...], **conn: Any) -> dict[str, Any]:
    machines = {}
    for unit in units:
        spec = machine_spec(port, unit)
        spec["connection"].update(gateway=True, **conn)
        machines[f"m{unit:02d}"] = spec
    return machines


def test_many_unit_ids_share_one_connection_and_read_their_own_registers(
    mosquitto: Any, unique_site: str, tmp_path: Any, run_agent: Any, recorder_factory: Any
) -> None:
    server = ModbusServer(UNITS).start()
    try:
        for unit in UNITS:  # each unit its own state code and counter value
            server.set(unit, "holding", 0, [unit % 2, 0, 1000 + unit])
        data = plant_data(
            unique_site, mosquitto.port, gateway_machines(server.port, UNITS), tmp_path / "s"
        )
        rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
        run_agent(data)
        for unit in UNITS:
            rec.wait_for(lambda u=unit: len(rec.payloads(f"/m{u:02d}/telemetry")) >= 3)
        for unit in UNITS:
            samples = rec.payloads(f"/m{unit:02d}/telemetry")
            assert all(s["quality"] == {} for s in samples), unit
            assert samples[-1]["values"]["total_count"] == 1000 + unit
            assert samples[-1]["values"]["state"] == unit % 2
            assert [s["seq"] for s in samples] == list(range(len(samples)))
        assert connections_to(server.port) == 1
    finally:
        server.stop()


def test_silent_unit_id_costs_only_its_own_timeouts(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_sim: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    data = generated_plant(unique_site, mosquitto.port, 6, tmp_path / "state", timeout_s=1.0)
    for machine in data["machines"].values():
        machine["connection"].update(gateway=True, max_in_flight=4)
    port = next(iter(data["machines"].values()))["connection"]["port"]
    sim = run_sim(data)
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: all(rec.payloads(f"/m{i}/state") for i in range(1, 7)))

    sim.call(sim.sim.set_fault, "m1", "silent")
    fault_start = time.time()
    rec.wait_for(lambda: [s for s in rec.payloads("/m1/state") if s["state"] == "offline"])
    time.sleep(2.0)
    fault_end = time.time()

    offline = [s for s in rec.payloads("/m1/state") if s["state"] == "offline"][0]
    assert offline["reason"] == "device_timeout"
    # every other unit kept its 0.2 s schedule while m1's requests waited 1 s each: had
    # they queued behind m1, their polls would be >= 1 s apart (median: robust to load)
    for i in range(2, 7):
        healthy = [
            t for t in rec.payloads(f"/m{i}/telemetry") if fault_start <= ts(t) <= fault_end
        ]
        gaps = [ts(b) - ts(a) for a, b in zip(healthy, healthy[1:], strict=False)]
        assert len(healthy) >= 5 and statistics.median(gaps) < 0.5, i
        assert all(not t["quality"] for t in healthy), i
    assert connections_to(port) == 1  # the silent unit id did not cost a reconnect

    sim.call(sim.sim.set_fault, "m1", "normal")
    rec.wait_for(lambda: [s for s in rec.payloads("/m1/state")[1:] if s["state"] != "offline"])
    seqs = [t["seq"] for t in rec.payloads("/m1/telemetry")]
    assert seqs == list(range(len(seqs)))


def _plant(machines: dict[str, Any]) -> dict[str, Any]:
    return plant_data("site", 1883, machines, "/tmp/unused")


def test_check_refuses_a_gateway_the_machines_disagree_on() -> None:
    machines = gateway_machines(5020, (1, 2, 3), max_in_flight=2)
    machines["m02"]["connection"]["gateway"] = False
    machines["m02"]["connection"]["max_in_flight"] = 1
    machines["m03"]["connection"]["max_in_flight"] = 3
    with pytest.raises(PlantFileError) as caught:
        parse_plant(_plant(machines))
    text = str(caught.value)
    assert "machines.m02.connection.gateway" in text
    assert "machines.m03.connection.max_in_flight" in text


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        ({"transport": "rtu_over_tcp", "max_in_flight": 2}, "max_in_flight > 1 is for transpo"),
        ({"transport": "rtu_over_tcp", "gateway": True}, "gateway: true is for transport tcp"),
        ({"gateway": True, "max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_check_refuses_gateway_options_that_do_not_apply(
    connection: dict[str, Any], message: str
) -> None:
    machines = {"m1": machine_spec(5020)}
    machines["m1"]["connection"].update(connection)
    with pytest.raises(PlantFileError, match=message):
        parse_plant(_plant(machines))


def test_gateway_machines_are_one_bus() -> None:
    from shopfloor.edge.drivers.modbus.bus import bus_key

    plant = parse_plant(_plant({**gateway_machines(5020, (1, 2)), "solo": machine_spec(5021)}))
    keys = {mid: bus_key(mid, m.connection) for mid, m in plant.machines.items()}
    assert keys["m01"] == keys["m02"] != keys["solo"]


def test_in_flight_slots_are_taken_whole_first_come_first_served() -> None:
    from shopfloor.edge.drivers.modbus.tcpread import _Slots

    granted: list[tuple[object, int]] = []
    slots = _Slots(4, lambda read, n: granted.append((read, n)))
    slots.take(3, "a")  # type: ignore[arg-type]
    slots.take(2, "b")  # type: ignore[arg-type] # needs 2, 1 free: waits, whole
    slots.take(1, "c")  # type: ignore[arg-type] # 1 would fit, but b came first
    assert granted == [("a", 3)]
    slots.release(3)
    assert granted == [("a", 3), ("b", 2), ("c", 1)]
    slots.release(2)
    slots.release(1)
    slots.take(4, "d")  # type: ignore[arg-type] # all four came back
    assert granted[-1] == ("d", 4)


def test_one_polls_reads_are_pipelined_on_a_devices_own_connection(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_sim: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    data = generated_plant(unique_site, mosquitto.port, 3, tmp_path / "state")
    for machine in data["machines"].values():
        machine["connection"]["max_in_flight"] = 4  # own connection each, 4 reads at once
    run_sim(data)
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    for i in range(1, 4):
        rec.wait_for(lambda i=i: len(rec.payloads(f"/m{i}/telemetry")) >= 5)
        samples = rec.payloads(f"/m{i}/telemetry")
        assert all(s["quality"] == {} for s in samples)
        assert {"state", "total_count", "run", "door_open"} <= set(samples[-1]["values"])
