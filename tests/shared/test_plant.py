"""The plant file: the example loads; every kind of mistake is refused with its path."""

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
from shopfloor.shared.loader import format_loc, load_plant, parse_plant

EXAMPLE = Path(__file__).parents[2] / "deploy" / "plant.example.yaml"


@pytest.fixture
def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def errors_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(data, "test.yaml")
    return info.value.errors


def paths_of(data: dict[str, Any]) -> set[str]:
    return {path for path, _ in errors_of(data)}


def test_example_loads(example: dict[str, Any]) -> None:
    plant = load_plant(EXAMPLE)
    assert [line.stations for line in plant.lines] == [
        line["stations"] for line in example["lines"]]
    assert plant.agents[0].machines == list(example["machines"])  # one agent polls them all
    assert {m.connection.protocol for m in plant.machines.values()} == {"modbus", "opcua"}
    press = plant.machines["press1"]
    assert press.point("temperature").order == "CDAB"  # type: ignore[union-attr]
    assert press.counters is not None and press.counters.total == "total_count"


def test_format_loc() -> None:
    assert format_loc(("machines", "press1", "points", 2, "address")) == \
        "machines.press1.points[2].address"


def test_field_errors_all_listed_with_paths(example: dict[str, Any]) -> None:
    bad = copy.deepcopy(example)
    bad["machines"]["press1"]["points"][2]["address"] = 70000
    bad["machines"]["weld1"]["points"][4]["type"] = "uint17"
    bad["machines"]["paint1"]["connection"]["port"] = 0
    bad["site"]["timezone"] = "Mars/Olympus"
    bad["broker"]["prot"] = 1883
    paths = paths_of(bad)
    assert {
        "machines.press1.points[2].address",
        "machines.weld1.points[4].type",
        "machines.paint1.connection.port",
        "site.timezone",
        "broker.prot",
    } <= paths


def test_point_consistency_errors(example: dict[str, Any]) -> None:
    bad = copy.deepcopy(example)
    points = bad["machines"]["press1"]["points"]
    points[11]["type"] = "uint16"  # a coil that is not bool
    points[10]["writable"] = True  # an input register that is writable
    points[9].pop("length")  # a string without length
    points[4]["min"], points[4]["max"] = 100, 10
    errors = dict(errors_of(bad))
    assert "bool" in errors["machines.press1.points[11]"]
    assert "writable" in errors["machines.press1.points[10]"]
    assert "length" in errors["machines.press1.points[9]"]
    assert "greater than max" in errors["machines.press1.points[4]"]


def test_whole_file_checks(example: dict[str, Any]) -> None:
    bad = copy.deepcopy(example)
    bad["machines"]["press1"]["points"][1]["address"] = 0  # overlaps the state register
    bad["machines"]["weld1"]["points"][1]["type"] = "int32"  # a signed counter
    bad["machines"]["paint1"]["counters"]["reject"] = "nope"
    bad["machines"]["pack1"]["control"]["speed"] = "temperature"  # not writable
    bad["agents"][0]["machines"].append("ghost")
    bad["lines"][0]["stations"].append("ghost2")
    ghost = len(bad["agents"][0]["machines"]) - 1
    ghost2 = len(bad["lines"][0]["stations"]) - 1
    errors = dict(errors_of(bad))
    assert "overlaps point 'state'" in errors["machines.press1.points[1].address"]
    assert "uint16, uint32 or uint64" in errors["machines.weld1.counters.total"]
    assert "unknown point 'nope'" in errors["machines.paint1.counters.reject"]
    assert "writable" in errors["machines.pack1.control.speed"]
    assert "unknown machine 'ghost'" in errors[f"agents[0].machines[{ghost}]"]
    assert "unknown machine 'ghost2'" in errors[f"lines[0].stations[{ghost2}]"]


def test_duplicates_and_shared_devices(example: dict[str, Any]) -> None:
    bad = copy.deepcopy(example)
    bad["machines"]["weld1"]["connection"]["device_id"] = 1  # same device as press1
    bad["agents"].append({"id": "edge2", "machines": ["press1"]})  # polled twice
    bad["machines"]["press1"]["products"][1]["code"] = 1
    errors = dict(errors_of(bad))
    assert "same device" in errors["machines.weld1.connection"]
    assert "already polled by agent 'edge1'" in errors["agents[1].machines[0]"]
    assert "product code '1'" in errors["machines.press1.products"]


def _point(data: dict[str, Any], machine: str, name: str) -> tuple[int, dict[str, Any]]:
    points = data["machines"][machine]["points"]
    return next((i, p) for i, p in enumerate(points) if p["name"] == name)


def test_free_setpoint_only_on_a_writable_action_point(example: dict[str, Any],
                                                       tmp_path: Path) -> None:
    good = copy.deepcopy(example)
    _point(good, "press1", "run")[1]["free_setpoint"] = True
    assert parse_plant(good, "ok.yaml").machines["press1"].point("run").free_setpoint  # type: ignore[union-attr]
    bad = copy.deepcopy(example)
    speed_at, speed = _point(bad, "press1", "speed_pct")
    speed["free_setpoint"] = True  # control.speed: no action owns it
    temp_at, temp = _point(bad, "weld1", "temperature")
    temp["free_setpoint"] = True  # not a control point at all
    errors = dict(errors_of(bad))
    assert "no control action" in errors[f"machines.press1.points[{speed_at}].free_setpoint"]
    assert "no control action" in errors[f"machines.weld1.points[{temp_at}].free_setpoint"]
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _cli("check", str(path))
    assert result.returncode == 2
    assert f"machines.press1.points[{speed_at}].free_setpoint" in result.stderr


def test_command_timeout_within_what_the_edge_accepts(example: dict[str, Any]) -> None:
    example.setdefault("api", {})["command_timeout_s"] = 7200
    assert "the edge refuses" in dict(errors_of(example))["api.command_timeout_s"]


def test_unreadable_and_non_yaml(tmp_path: Path) -> None:
    with pytest.raises(PlantFileError, match="cannot read"):
        load_plant(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: {id: x\nlines: [")
    with pytest.raises(PlantFileError) as info:
        load_plant(broken)
    assert "not valid YAML: line" in info.value.errors[0][1]
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(PlantFileError, match="1 error"):
        load_plant(scalar)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopfloor.cli", *args], capture_output=True, text=True,
        timeout=60,
    )


def test_check_command_lists_errors_without_traceback(
    tmp_path: Path, example: dict[str, Any]
) -> None:
    example["machines"]["press1"]["points"][2]["address"] = -1
    example["agents"][0]["machines"].append("ghost")  # only reported once fields are valid
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(example))
    result = _cli("check", str(path))
    assert result.returncode == 2
    assert "machines.press1.points[2].address" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_command_accepts_the_example(example: dict[str, Any]) -> None:
    result = _cli("check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    counts = (f"{len(example['lines'])} line(s), {len(example['machines'])} machine(s), "
              f"{len(example['agents'])} agent(s)")
    assert f"site {example['site']['id']}, {counts}" in result.stdout


def test_schema_command_prints_json_schema() -> None:
    result = _cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert "machines" in schema["properties"]


def test_isolated_loading_gives_the_same_plant_and_the_same_errors(
    tmp_path: Path, example: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edge reads, parses and validates its plant file in a child process (memory)
    and takes back the model; nothing else may differ: the same model (credentials from
    the environment included), the same errors for every kind of broken file."""
    monkeypatch.setenv("SHOPFLOOR_BROKER_PASSWORD", "from-the-environment")
    good = tmp_path / "plant.yaml"
    good.write_text(EXAMPLE.read_text())
    plant = load_plant(good, isolated=True)
    assert plant == load_plant(good)
    assert plant.broker.password and plant.broker.password.get_secret_value() == (
        "from-the-environment")
    invalid = copy.deepcopy(example)
    invalid["machines"]["press1"]["points"][0]["address"] = -1  # a field's check
    crossed = copy.deepcopy(example)
    crossed["agents"][0]["machines"].append("nowhere")  # a whole-file check
    broken = {
        "bad.yaml": "site: {id: s1\nlines: [",
        "invalid.yaml": yaml.safe_dump(invalid),
        "crossed.yaml": yaml.safe_dump(crossed),
    }
    for name, text in broken.items():
        (tmp_path / name).write_text(text)
    for name in [*broken, "missing.yaml"]:
        errors = []
        for isolated in (False, True):
            with pytest.raises(PlantFileError) as info:
                load_plant(tmp_path / name, isolated=isolated)
            assert info.value.source == str(tmp_path / name)
            errors.append(info.value.errors)
        assert errors[0] == errors[1] and errors[0], name
    assert "not valid YAML: line" in errors_of_file(tmp_path / "bad.yaml")[0][1]
    assert "cannot read" in errors_of_file(tmp_path / "missing.yaml")[0][1]


def errors_of_file(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(PlantFileError) as info:
        load_plant(path, isolated=True)
    return info.value.errors


def test_machines_with_one_register_map_share_its_points(tmp_path: Path) -> None:
    """Memory at thousands of machines: equal maps (and state codes, products, control)
    are validated once and shared, also through the edge's isolated loading; one that
    differs keeps its own."""
    from shopfloor.sim.generate import plant_data

    data = plant_data(machines=3, points=20, base_port=5020)
    data["machines"]["m3"]["points"] = copy.deepcopy(data["machines"]["m3"]["points"])
    data["machines"]["m3"]["points"][-1]["unit"] = "furlongs"
    data["machines"]["m3"]["state"] = copy.deepcopy(data["machines"]["m3"]["state"])
    data["machines"]["m3"]["state"]["unmapped"] = {"state": "idle", "reason": "other"}
    data["machines"]["m2"]["products"] = copy.deepcopy(data["machines"]["m1"]["products"])
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data))
    for plant in (parse_plant(copy.deepcopy(data)), load_plant(path, isolated=True)):
        m1, m2, m3 = (plant.machines[m] for m in ("m1", "m2", "m3"))
        assert m1.points == m2.points
        assert all(a is b for a, b in zip(m1.points, m2.points, strict=True))
        assert m1.points is not m2.points  # each machine its own list
        assert m3.points[-1].unit == "furlongs" and m3.points[0] is m1.points[0]
        assert m1.points[-1].unit != "furlongs"
        # the rest of a machine model too (state codes, products, control points)
        assert m1.state is m2.state and m1.control is m2.control
        assert m1.products == m2.products and m1.products is not m2.products
        assert all(a is b for a, b in zip(m1.products, m2.products, strict=True))
        assert m3.state is not m1.state and m3.state != m1.state
        # pydantic's sets of the fields given, of the machines and their connections
        assert m1.model_fields_set is m2.model_fields_set
        assert m1.connection.model_fields_set is m3.connection.model_fields_set
        assert m1.connection != m2.connection  # while the connections differ
        moved = m1.model_copy(update={"name": "moved"})
        assert "name" in moved.model_fields_set and "name" not in m2.model_fields_set
