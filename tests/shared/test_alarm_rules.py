"""Alarm rules of the plant file: the effective rule of a machine (built-in, defaults,
line, machine), and what `shopfloor check` refuses, each error with its path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor.shared.alarm_rules import (
    BUILT_IN,
    SITE_KINDS,
    KpiName,
    RuleKind,
    Severity,
    rules_for,
    site_rules,
)
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
    assert rules_for(plant.alarms, "line1", "press1") == {
        kind: rule for kind, rule in BUILT_IN.items()
        if rule.enabled and kind not in SITE_KINDS}
    assert site_rules(plant.alarms) == {kind: BUILT_IN[kind] for kind in SITE_KINDS}


def test_a_machine_can_switch_a_rule_off() -> None:
    data = example_data()
    data["alarms"]["machines"]["weld1"] = {"agent_offline": {"enabled": False}}
    plant = parse_plant(data, "<test>")
    assert RuleKind.AGENT_OFFLINE not in rules_for(plant.alarms, "line1", "weld1")
    assert RuleKind.AGENT_OFFLINE in rules_for(plant.alarms, "line1", "press1")


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
    assert any(m.startswith("alarms.defaults.agent_offline.states: `states` does not apply "
                            "to agent_offline rules") for m in messages), messages
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


def test_every_rule_kind_takes_its_fields_at_every_level() -> None:
    data = example_data()
    data["alarms"] = {
        "defaults": {"shift_kpi_low": {"enabled": True, "kpi": "availability",
                                       "below_pct": 70, "after_shift_s": 1800},
                     "buffer_wip": {"enabled": True, "max_parts": 150},
                     "collector_lag": {"max_lag_s": 5, "severity": "critical"},
                     "dead_letters": {"min_increase": 10}},
        "lines": {"line1": {"coverage_low": {"enabled": True, "below_pct": 90,
                                             "window": "shift"},
                            "buffer_wip": {"min_parts": 5}}},
        "machines": {"paint1": {"buffer_wip": {"max_parts": 80}},
                     "pack1": {"downtime_unclassified": {"enabled": True, "after_s": 60,
                                                         "lookback_s": 3600}}},
    }
    plant = parse_plant(data, "<test>")
    paint = rules_for(plant.alarms, "line1", "paint1")
    assert (paint[RuleKind.BUFFER_WIP].min_parts, paint[RuleKind.BUFFER_WIP].max_parts) == \
        (5, 80)
    assert paint[RuleKind.SHIFT_KPI_LOW].kpi is KpiName.AVAILABILITY
    assert paint[RuleKind.COVERAGE_LOW].below_pct == 90
    pack = rules_for(plant.alarms, "line1", "pack1")[RuleKind.DOWNTIME_UNCLASSIFIED]
    assert (pack.after_s, pack.lookback_s) == (60, 3600)
    site = site_rules(plant.alarms)
    assert site[RuleKind.COLLECTOR_LAG].max_lag_s == 5
    assert site[RuleKind.DEAD_LETTERS].min_increase == 10
    assert not SITE_KINDS & set(paint)


def test_check_refuses_fields_and_places_a_rule_kind_does_not_take() -> None:
    data = example_data()
    data["alarms"] = {
        "defaults": {"coverage_low": {"max_parts": 3}, "buffer_wip": {"enabled": True}},
        "lines": {"line1": {"collector_lag": {"max_lag_s": 5}}},
        "machines": {"pack1": {"buffer_wip": {"max_parts": 10}},
                     "weld1": {"buffer_wip": {"min_parts": 20, "max_parts": 10}},
                     "press1": {"buffer_wip": {"max_parts": 10},
                                "dead_letters": {"enabled": False}}},
    }
    messages = _messages(data)
    expected = [
        "alarms.defaults.coverage_low.max_parts: `max_parts` does not apply to coverage_low",
        "alarms.lines.line1.collector_lag: collector_lag is a rule of the site's collectors",
        "alarms.machines.press1.dead_letters: dead_letters is a rule of the site's",
        "alarms.machines.pack1.buffer_wip: pack1 has no buffer after it",
        "alarms.machines.weld1.buffer_wip: min_parts 20 (from its levels) is above max_parts",
        "alarms.machines.paint1.buffer_wip: enabled without min_parts or max_parts",
    ]
    for start in expected:
        assert any(m.startswith(start) for m in messages), (start, messages)
    assert not any(m.startswith("alarms.machines.press1.buffer_wip") for m in messages)


def test_parse_refuses_out_of_range_targets_with_their_paths() -> None:
    data = example_data()
    data["alarms"] = {"defaults": {"coverage_low": {"below_pct": 120},
                                   "shift_kpi_low": {"kpi": "speed"},
                                   "dead_letters": {"min_increase": 0},
                                   "buffer_wip": {"min_parts": -1}}}
    messages = _messages(data)
    for path in ("alarms.defaults.coverage_low.below_pct", "alarms.defaults.shift_kpi_low.kpi",
                 "alarms.defaults.dead_letters.min_increase",
                 "alarms.defaults.buffer_wip.min_parts"):
        assert any(m.startswith(path) for m in messages), (path, messages)
