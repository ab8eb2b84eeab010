"""A device that is silent, answers with exceptions, or disappears: its points go bad,
it is reported offline, the others are not delayed, and it comes back as soon as it
answers. Against the project's simulator (fault modes) and a pymodbus server."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from typing import Any

from tests.edge.conftest import ModbusServer, generated_plant, machine_spec, plant_data


def ts(sample: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(sample["ts"]).timestamp()


def test_silent_and_exception_devices_go_offline_without_delaying_others(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_sim: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    data = generated_plant(unique_site, mosquitto.port, 3, tmp_path / "state", timeout_s=1.0)
    sim = run_sim(data)
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: rec.payloads("/m3/state"))

    sim.call(sim.sim.set_fault, "m1", "silent")
    sim.call(sim.sim.set_fault, "m2", "exception")
    fault_start = time.time()
    for machine in ("m1", "m2"):
        rec.wait_for(
            lambda m=machine: [s for s in rec.payloads(f"/{m}/state") if s["state"] == "offline"]
        )
    time.sleep(1.0)
    fault_end = time.time()

    silent_state = [s for s in rec.payloads("/m1/state") if s["state"] == "offline"][0]
    assert silent_state["reason"] == "device_timeout"
    assert [s for s in rec.payloads("/m2/state") if s["state"] == "offline"][0]["reason"] == (
        "device_exception"
    )
    bad = [t for t in rec.payloads("/m1/telemetry") if t["quality"]]
    assert bad and bad[-1]["values"] == {} and "state" in bad[-1]["quality"]

    # m3 kept its 0.2 s schedule while m1 timed out (1 s) and m2 raised exceptions: had m1
    # held m3 up, m3's polls would be >= 1 s apart (median, robust to a busy machine)
    healthy = [t for t in rec.payloads("/m3/telemetry") if fault_start <= ts(t) <= fault_end]
    gaps = [ts(b) - ts(a) for a, b in zip(healthy, healthy[1:], strict=False)]
    assert len(healthy) >= 5 and statistics.median(gaps) < 0.5
    assert all(not t["quality"] for t in healthy)

    sim.call(sim.sim.set_fault, "m1", "normal")
    sim.call(sim.sim.set_fault, "m2", "normal")
    for machine in ("m1", "m2"):
        back = rec.wait_for(
            lambda m=machine: [
                s for s in rec.payloads(f"/{m}/state")[1:] if s["state"] != "offline"
            ]
        )
        assert back[-1]["state"] in ("running", "idle", "stopped", "setup", "planned_stop")
    seqs = [t["seq"] for t in rec.payloads("/m1/telemetry")]
    assert seqs == list(range(len(seqs)))


def test_server_gone_and_back(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    server = ModbusServer((1,)).start()
    server.set(1, "holding", 0, [1])
    data = plant_data(
        unique_site, mosquitto.port, {"m1": machine_spec(server.port)}, tmp_path / "state"
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: rec.payloads("/m1/state"))
    server.stop()
    offline = rec.wait_for(
        lambda: [s for s in rec.payloads("/m1/state") if s["state"] == "offline"]
    )
    assert offline[0]["reason"] in ("device_connect", "device_timeout")
    assert offline[0]["product"] == rec.payloads("/m1/state")[0]["product"]  # kept

    server = ModbusServer((1,), port=server.port).start()
    try:
        server.set(1, "holding", 0, [1])
        rec.wait_for(lambda: rec.payloads("/m1/state")[-1]["state"] == "running")
        last = rec.payloads("/m1/telemetry")[-1]
        assert last["values"]["state"] == 1 and not last["quality"]
    finally:
        server.stop()
