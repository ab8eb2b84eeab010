"""Alarm rules of the plant file: the effective rule of a machine (built-in, defaults,
line, machine), and what `shopfloor check` refuses, each error with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor.shared.alarm_rules import BUILT_IN, RuleKind, Severity, rules_for
from shopfloor.shared.enums import MachineState
from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import parse_plant
from tests.harness.plants import example_data


def _messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(data, "<test>")
    return [f"{path}: {message}" for path, message in info.value.errors]


def test_levels_override_field_by_field() -> None:
    plant = parse_plant(example_data(), "<example>")
    pack = rules_for(plant.alarms, "line1", "pack1")[RuleKind.MACHINE_STOPPED]
    assert pack.after_s == 300  # the line's
    assert pack.severity is Severity.HIGH  # the machine's
    assert pack.clear_after_s == 30  # the plant-wide default's
    assert pack.states == {MachineState.STOPPED, MachineState.IDLE}
    press = rules_for(plant.alarms, "line1", "press1")[RuleKind.MACHINE_STOPPED]
    assert press.severity is Severity.MEDIUM


def test_no_section_gives_the_built_in_rules() -> None:
    data = example_data()
    del data["alarms"]
    plant = parse_plant(data, "<test>")
    assert rules_for(plant.alarms, "line1", "press1") == BUILT_IN


def test_a_machine_can_switch_a_rule_off() -> None:
    data = example_data()
    data["alarms"]["machines"]["weld1"] = {"agent_offline": {"enabled": False}}
    plant = parse_plant(data, "<test>")
    assert set(rules_for(plant.alarms, "line1", "weld1")) == {RuleKind.MACHINE_STOPPED}
    assert set(rules_for(plant.alarms, "line1", "press1")) == set(RuleKind)


def test_check_refuses_wrong_rules_with_their_paths() -> None:
    data = example_data()
    alarms = data["alarms"]
    alarms["defaults"]["machine_stopped"]["states"] = ["stopped", "running"]
    alarms["defaults"]["agent_offline"]["states"] = ["stopped"]
    alarms["lines"]["nope"] = {"machine_stopped": {"after_s": 5}}
    alarms["machines"]["ghost"] = {}
    messages = _messages(data)
    assert any(m.startswith("alarms.defaults.machine_stopped.states: 'running' is not a "
                            "stopped state") for m in messages), messages
    assert "alarms.defaults.agent_offline.states: `states` applies to machine_stopped " \
           "rules only" in messages
    assert any(m.startswith("alarms.lines.nope: unknown line 'nope'") for m in messages)
    assert any(m.startswith("alarms.machines.ghost: unknown machine 'ghost'")
               for m in messages)


def test_parse_refuses_unknown_rules_and_bad_values_with_their_paths() -> None:
    data = example_data()
    data["alarms"]["machines"]["pack1"]["machine_stopped"]["after_s"] = -1
    data["alarms"]["machines"]["press1"] = {"too_hot": {"after_s": 5}}
    messages = _messages(data)
    assert any(m.startswith("alarms.machines.pack1.machine_stopped.after_s")
               for m in messages), messages
    assert any(m.startswith("alarms.machines.press1.too_hot") for m in messages), messages


def test_check_command_names_the_alarm_errors(tmp_path: Path) -> None:
    data = example_data()
    data["alarms"]["defaults"]["machine_stopped"]["severity"] = "dire"
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "alarms.defaults.machine_stopped.severity" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
