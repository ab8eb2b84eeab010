"""The plant file's `protocol:` union: every existing plant file stays valid (modbus is
the default); an OPC UA machine's connection and points are checked field by field,
each mistake named by its path."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import load_plant, parse_plant
from shopfloor.shared.protocols.modbus import ModbusConnection
from shopfloor.shared.protocols.opcua import OpcUaConnection, OpcUaPoint

ROOT = Path(__file__).parents[2]


def opcua_data() -> dict[str, Any]:
    return {
        "site": {"id": "s1"},
        "lines": [{"id": "l1", "stations": ["cell"]}],
        "machines": {"cell": {
            "line": "l1",
            "connection": {"protocol": "opcua", "endpoint": "opc.tcp://10.0.0.5:4840/cell"},
            "points": [
                {"name": "state", "node_id": "ns=2;s=Cell.State", "type": "uint16"},
                {"name": "total", "browse_path": "2:Cell/2:Total", "type": "uint64"},
                {"name": "since", "node_id": "i=2258", "type": "datetime"},
                {"name": "speed", "node_id": "ns=2;i=7", "type": "float64", "writable": True,
                 "min": 0, "max": 100},
            ],
        }},
    }


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(data, "test.yaml")
    return dict(info.value.errors)


def test_every_plant_file_of_the_repository_stays_valid_as_modbus() -> None:
    files = [p for p in ROOT.glob("deploy/**/*.yaml") if "machines:" in p.read_text()]
    assert files
    for path in files:
        plant = load_plant(path)
        for machine in plant.machines.values():
            assert isinstance(machine.connection, ModbusConnection | OpcUaConnection), path


def test_an_opcua_machine_loads() -> None:
    machine = parse_plant(opcua_data()).machines["cell"]
    assert isinstance(machine.connection, OpcUaConnection)
    assert machine.connection.host_port == ("10.0.0.5", 4840)
    assert machine.connection.mode == "subscription"
    assert all(isinstance(p, OpcUaPoint) for p in machine.points)
    assert [p.node for p in machine.points][:2] == ["ns=2;s=Cell.State", "2:Cell/2:Total"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "path", "words"), [
    (lambda c, p: p[0].update(node_id="ns=2;x=1"), "machines.cell.points[0].node_id",
     "not a NodeId"),
    (lambda c, p: p[1].update(browse_path="Cell/Total"), "machines.cell.points[1].browse_path",
     "not a browse path"),
    (lambda c, p: p[0].update(browse_path="2:A"), "machines.cell.points[0]", "one of them"),
    (lambda c, p: p[0].pop("node_id"), "machines.cell.points[0]", "one of them"),
    (lambda c, p: p[1].update(node_id="ns=2;s=Cell.State", browse_path=None),
     "machines.cell.points[1].node_id", "is point 'state' too"),
    (lambda c, p: p[0].update(address=3), "machines.cell.points[0].address", "unknown key"),
    (lambda c, p: p.append({"name": "x", "protocol": "modbus", "address": 1}), "machines.cell",
     "is a modbus point"),
    (lambda c, p: p[2].update(writable=True), "machines.cell.points[2]", "cannot be writable"),
    (lambda c, p: p[3].update(type="float64[]"), "machines.cell.points[3].type", "Input should"),
    (lambda c, p: c.update(endpoint="opc.tcp://host/x"), "machines.cell.connection.endpoint",
     "host:port"),
    (lambda c, p: c.update(security_policy="Basic256Sha256"), "machines.cell.connection",
     "goes with security_mode"),
    (lambda c, p: c.update(security_policy="Basic256Sha256", security_mode="Sign"),
     "machines.cell.connection", "certificate and private_key"),
    (lambda c, p: c.update(security_policy="Basic256Sha256", security_mode="Sign",
                           certificate="c.der", private_key="k.pem"),
     "machines.cell.connection", "trust_dir"),
    (lambda c, p: c.update(username="op"), "machines.cell.connection", "go together"),
    (lambda c, p: c.update(mode="polling", deadband="percent"), "machines.cell.connection",
     "subscription"),
    (lambda c, p: c.update(protocol="profinet"), "machines.cell.connection.protocol",
     "unknown protocol 'profinet' (known: modbus, opcua)"),
    (lambda c, p: c.update(port=502), "machines.cell.connection.port", "unknown key"),
])
def test_opcua_mistakes_are_named_by_path(change: Any, path: str, words: str) -> None:
    data = opcua_data()
    machine = data["machines"]["cell"]
    change(machine["connection"], machine["points"])
    errors = errors_of(data)
    assert path in errors, errors
    assert words in errors[path]


def test_a_modbus_point_needs_address_and_no_opcua_type(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "deploy" / "plant.example.yaml").read_text())
    modbus = next(m for m in data["machines"].values()
                  if m["connection"].get("protocol", "modbus") == "modbus")
    bad = copy.deepcopy(data)
    first = next(iter(m for m in bad["machines"].values() if m == modbus))
    del first["points"][0]["address"]
    first["points"][1]["type"] = "datetime"
    errors = errors_of(bad)
    assert any(k.endswith("points[0].address") and "required" in m
               for k, m in errors.items()), errors
    assert any("datetime is an OPC UA type" in m for m in errors.values()), errors


def test_schema_shows_the_protocol_union() -> None:
    result = subprocess.run([sys.executable, "-m", "shopfloor.cli", "schema"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    defs = schema.get("$defs", {})
    assert "OpcUaConnection" in defs and "ModbusConnection" in defs
    assert defs["OpcUaConnection"]["properties"]["protocol"]["const"] == "opcua"
    assert "OpcUaPoint" in defs
