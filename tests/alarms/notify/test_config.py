"""`notifications:` in the plant file: what `shopfloor check` refuses, each error with
its path; secrets only from the environment, refused at start when missing or short;
which targets a transition goes to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.errors import NotifyError
from shopfloor.alarms.notify.notifier import secrets_of
from shopfloor.shared.alarm_rules import RuleKind, Severity
from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.notifications import Filter, Notifications
from tests.harness.plants import example_data

HOOK = {"id": "ops", "url": "https://hooks.example.com/alarms", "secret_env": "OPS_SECRET"}


def _with(notifications: dict[str, Any]) -> dict[str, Any]:
    data = example_data()
    data["notifications"] = notifications
    return data


def _errors(notifications: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantFileError) as info:
        parse_plant(_with(notifications), "<test>")
    return [f"{path}: {message}" for path, message in info.value.errors]


@pytest.mark.parametrize(("notifications", "path"), [
    ({"webhooks": [{**HOOK, "url": "ftp://x/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "url": "https://u:p@x/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "url": "http://x:99999/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "url": "http://x:abc/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "url": "http://[::1/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "url": "http://a b/y"}]}, "notifications.webhooks[0].url"),
    ({"webhooks": [{**HOOK, "secret": "inline"}]}, "notifications.webhooks[0].secret"),
    ({"webhooks": [{**HOOK, "secret_env": "lower case"}]},
     "notifications.webhooks[0].secret_env"),
    ({"webhooks": [{**HOOK, "severities": ["dire"]}]},
     "notifications.webhooks[0].severities[0]"),
    ({"webhooks": [{**HOOK, "rules": ["too_hot"]}]}, "notifications.webhooks[0].rules[0]"),
    ({"webhooks": [{**HOOK, "lines": ["line9"]}]}, "notifications.webhooks[0].lines[0]"),
    ({"webhooks": [HOOK, HOOK]}, "notifications.webhooks"),
    ({"webhooks": [HOOK], "escalations": [{"after_s": 60, "to": "boss"}]},
     "notifications.escalations[0].to"),
    ({"webhooks": [HOOK], "escalations": [{"after_s": 0, "to": "ops"}]},
     "notifications.escalations[0].after_s"),
    ({"webhooks": [HOOK], "max_bytes": 1000}, "notifications.max_bytes"),
])
def test_check_refuses_with_the_path(notifications: dict[str, Any], path: str) -> None:
    errors = _errors(notifications)
    assert any(e.startswith(path + ":") for e in errors), errors


def test_a_valid_section_parses() -> None:
    plant = parse_plant(_with({"webhooks": [HOOK], "escalations": [
        {"after_s": 900, "to": "ops", "severities": ["high", "critical"]}]}), "<test>")
    assert plant.notifications.webhooks[0].timeout_s == 10


def test_check_command_names_the_webhook_errors(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(_with({"webhooks": [{**HOOK, "lines": ["line9"]}]})))
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "notifications.webhooks[0].lines[0]: unknown line 'line9'" in done.stderr
    assert "Traceback" not in done.stderr


def test_secrets_come_from_the_environment_and_must_be_real() -> None:
    settings_ = Notifications.model_validate({"webhooks": [HOOK, {**HOOK, "id": "b",
                                                                  "secret_env": "B_SECRET"}]})
    with pytest.raises(NotifyError) as info:
        secrets_of(settings_, {"B_SECRET": "changeme"})
    message = str(info.value)
    assert "notifications.webhooks[0].secret_env: OPS_SECRET is unset" in message
    assert "notifications.webhooks[1].secret_env: B_SECRET is too short" in message
    assert "changeme" not in message  # never a secret in a message
    good = "x" * 16
    assert secrets_of(settings_, {"OPS_SECRET": good, "B_SECRET": good}) == {
        "ops": good.encode(), "b": good.encode()}


def test_the_alarm_component_refuses_to_start_without_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(_with({"webhooks": [HOOK], "state_dir": str(tmp_path)})))
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "alarms", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "OPS_SECRET is unset" in done.stderr and "Traceback" not in done.stderr


@settings(derandomize=True, max_examples=200)
@given(st.lists(st.sampled_from(list(Severity)), min_size=1) | st.none(),
       st.lists(st.sampled_from(["line1", "line2"]), min_size=1) | st.none(),
       st.lists(st.sampled_from(list(RuleKind)), min_size=1) | st.none(),
       st.sampled_from(list(Severity)), st.sampled_from(["line1", "line2"]),
       st.sampled_from(list(RuleKind)))
def test_a_filter_takes_what_every_given_list_names(
        severities: Any, lines: Any, rules: Any, severity: Severity, line: str,
        rule: RuleKind) -> None:
    chosen = Filter(severities=severities, lines=lines, rules=rules)
    expected = ((severities is None or severity in severities)
                and (lines is None or line in lines) and (rules is None or rule in rules))
    assert chosen.matches(severity, line, rule) is expected
