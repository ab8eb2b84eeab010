"""The reason tree of the plant file: the effective tree of a line, and what
`shopfloor check` refuses (unknown line or PLC reason, duplicate codes, a PLC code mapped
twice), each error with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.reasons import Loss, tree_of
from tests.harness.plants import example_data


def _messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(data, "<test>")
    return [f"{path}: {message}" for path, message in info.value.errors]


def test_example_tree_per_line() -> None:
    plant = parse_plant(example_data(), "<example>")
    tree = tree_of(plant.downtime, "line1", plant.collector.minor_stop_s)
    assert tree.threshold_s == 120
    assert tree.reasons["colour_change"].loss is Loss.SETUP  # line1's addition
    assert tree.reasons["meeting"].loss is Loss.PLANNED
    jam = tree.initial("jam")
    assert jam is not None and jam.code == "jam"
    assert tree.initial("operator_stop") is None  # generic
    assert tree.initial("never_heard") is None


def test_line_threshold_and_default() -> None:
    data = example_data()
    data["downtime"]["lines"]["line1"]["threshold_s"] = 30
    del data["downtime"]["threshold_s"]
    data["collector"]["minor_stop_s"] = 90
    plant = parse_plant(data, "<test>")
    assert tree_of(plant.downtime, "line1", 90).threshold_s == 30
    assert tree_of(plant.downtime, "other", 90).threshold_s == 90


def test_check_refuses_a_wrong_tree() -> None:
    data = example_data()
    tree = data["downtime"]
    tree["categories"][0]["reasons"].append({"code": "jam", "plc": ["jam", "bogus"]})
    tree["categories"].append({"id": "material", "reasons": [{"code": "x"}]})
    tree["lines"]["nope"] = {"categories": [{"id": "c", "reasons": [
        {"code": "motor", "plc": ["blocked"]}]}]}
    messages = _messages(data)
    reasons = "downtime.categories[0].reasons[3]"
    assert f"{reasons}.code: duplicate reason code 'jam' (also at " \
           "downtime.categories[0].reasons[0])" in messages
    assert f"{reasons}.plc[0]: PLC reason 'jam' is mapped twice (also to reason 'jam')" \
        in messages
    assert any(m.startswith(f"{reasons}.plc[1]: unknown PLC reason 'bogus'") for m in messages)
    assert "downtime.categories: category id 'material' appears 2 times; ids must be " \
           "unique" in messages
    assert any(m.startswith("downtime.lines.nope: unknown line 'nope'") for m in messages)
    line = "downtime.lines.nope.categories[0].reasons[0]"
    assert any(m.startswith(f"{line}.code: duplicate reason code 'motor'") for m in messages)
    assert any(m.startswith(f"{line}.plc[0]: PLC reason 'blocked' is mapped twice")
               for m in messages)


def test_check_command_names_the_tree_errors(tmp_path: Path) -> None:
    data = example_data()
    data["downtime"]["categories"][0]["reasons"][0]["loss"] = "sometimes"
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "downtime.categories[0].reasons[0].loss" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
