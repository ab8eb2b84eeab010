"""The OPC UA driver end to end: a real asyncua server on a loopback port, the edge agent,
a real broker. Every type, both modes, source timestamps as event time, a missing node
and an array node (bad, the others keep going), a server restart (seq gap-free, nothing
lost or repeated), a write with read-back and a refused write."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.edge.conftest import plant_data
from tests.harness.opcua import OpcuaServer

TYPES = {
    "flag": "bool", "i16": "int16", "u16": "uint16", "i32": "int32", "u32": "uint32",
    "i64": "int64", "u64": "uint64", "f32": "float32", "f64": "float64", "text": "string",
    "when": "datetime",
}


def opcua_machine(endpoint: str, mode: str, **connection: Any) -> dict[str, Any]:
    points: list[dict[str, Any]] = [
        {"name": name, "node_id": f"ns=2;s={name}", "type": kind} for name, kind in TYPES.items()
    ]
    points += [
        {"name": "state", "browse_path": "2:Machine/2:state", "type": "uint16"},
        {"name": "count", "node_id": "ns=2;s=count", "type": "uint32"},
        {"name": "speed", "node_id": "ns=2;s=speed", "type": "float32", "writable": True,
         "min": 0, "max": 200},
        {"name": "run", "node_id": "ns=2;s=run", "type": "bool", "writable": True},
        {"name": "ghost", "node_id": "ns=2;s=no.such.node", "type": "int16"},
        {"name": "lost", "browse_path": "2:Machine/2:nothing", "type": "int16"},
        {"name": "array", "node_id": "ns=2;s=array", "type": "float64"},
    ]
    return {
        "line": "line1",
        "connection": {"protocol": "opcua", "endpoint": endpoint, "mode": mode,
                       "timeout_s": 2.0, **connection},
        "poll_interval_s": 0.2,
        "points": points,
        "state": {"point": "state", "codes": {0: {"state": "stopped"}, 1: {"state": "running"}}},
        "counters": {"total": "count"},
        "control": {"run": "run", "speed": "speed"},
    }


@pytest.fixture
def opcua_server() -> Iterator[OpcuaServer]:
    server = OpcuaServer().start()
    yield server
    server.stop()


def _merged(samples: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for sample in samples:
        merged.update(sample["values"])
    return merged


BAD = {"ghost", "lost", "array"}


@pytest.mark.parametrize("mode", ["subscription", "polling"])
def test_every_type_arrives_and_missing_nodes_are_bad(
    mode: str, mosquitto: Any, unique_site: str, opcua_server: OpcuaServer, tmp_path: Any,
    run_agent: Any, recorder_factory: Any, caplog: Any,
) -> None:
    data = plant_data(unique_site, mosquitto.port,
                      {"m1": opcua_machine(opcua_server.endpoint, mode)}, tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)

    want = {name: opcua_server.values[name] for name in TYPES}
    want["when"] = "2026-11-30T06:00:00Z"
    want["f32"], want["f64"] = 1.5, 2.25
    rec.wait_for(lambda: all(k in _merged(rec.payloads("/m1/telemetry")) for k in want), 30)
    merged = _merged(rec.payloads("/m1/telemetry"))
    assert {k: merged[k] for k in want} == want
    assert not BAD & set(merged)
    samples = rec.payloads("/m1/telemetry")
    assert all(set(s["quality"]) >= BAD for s in samples)
    assert all(not (set(s["quality"]) - BAD) for s in samples)
    state = rec.wait_for(lambda: rec.payloads("/m1/state"))[-1]
    assert state["state"] == "running"
    reported = [r.getMessage() for r in caplog.records if "machines.m1.points[" in r.getMessage()]
    assert len(reported) == 3, reported  # each problem once, with the point's path
    assert any("points[15]" in line and "no.such.node" in line for line in reported)
    assert any("points[16]" in line and "2:Machine/2:nothing" in line for line in reported)
    assert any("points[17]" in line and "array" in line for line in reported)


def test_subscription_samples_carry_the_source_timestamp(
    mosquitto: Any, unique_site: str, opcua_server: OpcuaServer, tmp_path: Any,
    run_agent: Any, recorder_factory: Any,
) -> None:
    data = plant_data(unique_site, mosquitto.port,
                      {"m1": opcua_machine(opcua_server.endpoint, "subscription")},
                      tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: _counts(rec), 30)  # the initial values are in
    stamp = dt.datetime(2026, 12, 1, 8, 30, 15, 250000, tzinfo=dt.UTC)  # any instant
    opcua_server.set("count", 4242, stamp)
    sample = rec.wait_for(lambda: [s for s in rec.payloads("/m1/telemetry")
                                   if s["values"].get("count") == 4242], 20)[0]
    assert sample["ts"] == "2026-12-01T08:30:15.250000Z"
    assert sample["values"]["f64"] == 2.25  # every point's current value


def test_server_restart_keeps_seq_gap_free_and_loses_nothing(
    mosquitto: Any, unique_site: str, tmp_path: Any, run_agent: Any, recorder_factory: Any,
) -> None:
    server = OpcuaServer().start()
    data = plant_data(unique_site, mosquitto.port,
                      {"m1": opcua_machine(server.endpoint, "subscription")}, tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    counts = list(range(1, 6))
    try:
        rec.wait_for(lambda: rec.payloads("/m1/telemetry"), 30)
        for n in counts[:3]:
            server.set("count", n)
            rec.wait_for(lambda n=n: n in _counts(rec), 20)
        server.stop()
        rec.wait_for(lambda: any(s["state"] == "offline" for s in rec.payloads("/m1/state")), 30)
        server = OpcuaServer(port=server.port).start()
        rec.wait_for(lambda: rec.payloads("/m1/state")[-1]["state"] == "running", 60)
        for n in counts[3:]:
            server.set("count", n)
            rec.wait_for(lambda n=n: n in _counts(rec), 20)
    finally:
        server.stop()
    samples = rec.payloads("/m1/telemetry")
    seqs = [s["seq"] for s in samples]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    changes = [c for i, c in enumerate(_counts(rec)) if i == 0 or c != _counts(rec)[i - 1]]
    assert [c for c in changes if c in counts] == counts  # each change, in order
    stamps = [s["ts"] for s in samples]
    assert len(stamps) == len(set(stamps))  # no instant published twice


def _counts(rec: Any) -> list[int]:
    return [s["values"]["count"] for s in rec.payloads("/m1/telemetry") if "count" in s["values"]]


@pytest.mark.parametrize("mode", ["subscription", "polling"])
def test_write_reads_back_and_a_refused_write_names_the_status(
    mode: str, mosquitto: Any, unique_site: str, tmp_path: Any, run_agent: Any,
    recorder_factory: Any,
) -> None:
    from asyncua import ua

    def refuse(name: str, value: Any) -> Any:
        too_fast = name == "speed" and isinstance(value, float) and value > 150
        return ua.StatusCodes.BadOutOfRange if too_fast else None

    server = OpcuaServer(refuse=refuse).start()
    try:
        data = plant_data(unique_site, mosquitto.port,
                          {"m1": opcua_machine(server.endpoint, mode)}, tmp_path / "state")
        rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
        run_agent(data)
        rec.wait_for(lambda: rec.payloads("/m1/state"), 30)
        cmd = f"shopfloor/v1/{unique_site}/line1/m1/cmd"
        done = _command(rec, cmd, "speed", 87.5)
        assert (done["status"], done["readback"]) == ("done", 87.5), done
        assert server.values["speed"] == 87.5
        refused = _command(rec, cmd, "speed", 180)
        assert refused["status"] == "rejected", refused
        assert "BadOutOfRange" in refused["detail"]
        assert server.values["speed"] == 87.5
        out_of_plant = _command(rec, cmd, "speed", 250)  # the plant file's max: never sent
        assert out_of_plant["status"] == "rejected" and "max" in out_of_plant["detail"]
        not_writable = _command(rec, cmd, "count", 3)
        assert not_writable["status"] == "rejected" and "not writable" in not_writable["detail"]
    finally:
        server.stop()


def _command(rec: Any, topic: str, point: str, value: Any) -> dict[str, Any]:
    import json

    command_id = uuid.uuid4().hex[:12]
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)).isoformat()
    rec.publish(topic, json.dumps({
        "v": 1, "id": command_id, "point": point, "value": value,
        "expires_at": expires, "requested_by": "test", "role": "admin",
    }))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [r for r in rec.payloads("/m1/cmd/result") if r["id"] == command_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no result for command {command_id}")
