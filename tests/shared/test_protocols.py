"""Field protocols in the plant file: connections and points are unions keyed by
`protocol:` (modbus by default). Every plant file of the repository and of the tests
stays valid unchanged; errors keep their paths in the file; the schema shows the union."""

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
from shopfloor.shared.loader import parse_plant, plant_json_schema
from shopfloor.shared.plant import Plant
from shopfloor.shared.protocols import DEFAULT, PROTOCOLS
from shopfloor.shared.protocols.modbus import ModbusConnection, ModbusPoint
from shopfloor.sim.generate import plant_data as generated_plant
from tests.edge.conftest import machine_spec
from tests.edge.conftest import plant_data as edge_plant
from tests.harness.plants import example_data
from tests.kpi.plants import plant_data as kpi_plant

ROOT = Path(__file__).parents[2]


def repository_plant_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    return [ROOT / p for p in tracked if "machines" in (yaml.safe_load((ROOT / p).read_text())
                                                          or {})]


def test_there_are_repository_plant_files() -> None:
    names = {p.name for p in repository_plant_files()}
    assert {"plant.example.yaml", "plant.yaml"} <= names


PLANTS: dict[str, Any] = {
    **{str(p.relative_to(ROOT)): lambda p=p: yaml.safe_load(p.read_text())
       for p in repository_plant_files()},
    "tests.harness.plants.example_data": example_data,
    "tests.edge.conftest.plant_data": lambda: edge_plant(
        "s1", 1883, {"m1": machine_spec(5020), "m2": machine_spec(5021, 2)}, Path("state")),
    "tests.kpi.plants.plant_data": kpi_plant,
    "shopfloor generate-plant": lambda: generated_plant(machines=50, lines=2, per_port=20),
}


@pytest.mark.parametrize("source", sorted(PLANTS))
def test_every_existing_plant_file_is_modbus_unchanged(source: str) -> None:
    """Every machine that names no protocol (all of them in the files written before
    protocols; the example plant's mixed line names `opcua` for its OPC UA machine) is a
    Modbus machine with every key kept as given."""
    data = PLANTS[source]()
    plant = parse_plant(copy.deepcopy(data), source)
    unnamed = [mid for mid, m in data["machines"].items() if not _mentions_protocol(m)]
    assert unnamed, "a plant file of Modbus machines that name no protocol"
    assert not _mentions_protocol({k: v for k, v in data.items() if k != "machines"})
    for mid in unnamed:
        machine = plant.machines[mid]
        assert isinstance(machine.connection, ModbusConnection), mid
        assert all(isinstance(p, ModbusPoint) for p in machine.points), mid
        given = data["machines"][mid]
        # every key the file gave is kept as given (nothing reinterpreted)
        for i, point in enumerate(given["points"]):
            dumped = machine.points[i].model_dump(mode="json")
            assert {k: dumped[k] for k in point} == _json(point), (mid, i)
        conn = machine.connection.model_dump(mode="json")
        assert {k: conn[k] for k in given["connection"]} == _json(given["connection"]), mid


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _mentions_protocol(data: Any) -> bool:
    if isinstance(data, dict):
        return "protocol" in data or any(_mentions_protocol(v) for v in data.values())
    if isinstance(data, list):
        return any(_mentions_protocol(v) for v in data)
    return False


def test_modbus_is_the_default_and_may_be_named() -> None:
    data = example_data()
    named = copy.deepcopy(data)
    unnamed = [m for m in named["machines"].values() if "protocol" not in m["connection"]]
    assert unnamed
    for machine in unnamed:
        machine["connection"]["protocol"] = "modbus"
        machine["points"][0]["protocol"] = "modbus"
    assert DEFAULT == "modbus" and "modbus" in PROTOCOLS
    assert parse_plant(named) == parse_plant(data)


def errors_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(data, "test.yaml")
    return info.value.errors


def test_an_unknown_protocol_is_named_with_the_known_ones() -> None:
    data = example_data()
    data["machines"]["weld1"]["connection"]["protocol"] = "profinet"
    ((path, message),) = errors_of(data)
    assert path == "machines.weld1.connection.protocol"
    assert message == f"unknown protocol 'profinet' (known: {', '.join(PROTOCOLS)})"


def test_a_point_of_another_protocol_than_its_machine_is_refused() -> None:
    data = example_data()
    data["machines"]["weld1"]["points"][1]["protocol"] = "profinet"
    ((path, message),) = errors_of(data)
    assert path == "machines.weld1.points[1].protocol"
    assert "unknown protocol 'profinet'" in message


def test_errors_inside_the_unions_keep_their_path_in_the_file() -> None:
    data = example_data()
    press = data["machines"]["press1"]
    press["connection"]["port"] = 0
    press["connection"]["bogus"] = 1
    press["points"][2]["address"] = -1
    press["points"][3]["table"] = "register"
    paths = [path for path, _ in errors_of(data)]
    assert paths == [
        "machines.press1.connection.port", "machines.press1.connection.bogus",
        "machines.press1.points[2].address", "machines.press1.points[3].table",
    ]


def test_a_machine_named_like_a_protocol_keeps_its_name_in_paths() -> None:
    data = example_data()
    data["machines"]["modbus"] = data["machines"].pop("pack1")
    for names in (data["lines"][0]["stations"], data["agents"][0]["machines"]):
        names[names.index("pack1")] = "modbus"
    data["machines"]["modbus"]["connection"]["port"] = 0
    assert [p for p, _ in errors_of(data)] == ["machines.modbus.connection.port"]


def test_the_schema_shows_each_union_keyed_by_protocol() -> None:
    schema = json.loads(plant_json_schema())
    machine = schema["$defs"]["Machine"]["properties"]
    assert [r["$ref"] for r in machine["connection"]["oneOf"]] == [
        f"#/$defs/{p.connection.__name__}" for p in PROTOCOLS.values()]
    assert [r["$ref"] for r in machine["points"]["items"]["oneOf"]] == [
        f"#/$defs/{p.point.__name__}" for p in PROTOCOLS.values()]
    modbus = schema["$defs"]["ModbusPoint"]["properties"]["protocol"]
    assert modbus == {"const": "modbus", "default": "modbus", "title": "Protocol",
                      "type": "string"}
    cli = subprocess.run([str(Path(sys.executable).with_name("shopfloor")), "schema"],
                         check=True, capture_output=True, text=True)
    assert json.loads(cli.stdout) == schema


def test_plant_checks_run_per_protocol() -> None:
    """Modbus's own whole-file checks still apply (overlaps, one machine per device)."""
    data = example_data()
    machines = data["machines"]
    machines["weld1"]["connection"] = copy.deepcopy(machines["press1"]["connection"])
    press = data["machines"]["press1"]
    press["points"].append({**press["points"][1], "name": "shadow"})
    paths = [path for path, _ in errors_of(data)]
    assert f"machines.press1.points[{len(press['points']) - 1}].address" in paths
    assert "machines.weld1.connection" in paths


def test_a_plant_model_round_trips() -> None:
    plant = parse_plant(example_data())
    again = Plant.model_validate(json.loads(plant.model_dump_json()))
    assert again.machines == plant.machines
