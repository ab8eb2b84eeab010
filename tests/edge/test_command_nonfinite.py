"""A command whose value is Infinity or NaN (JSON as Python writes it, which pydantic
accepts for a float) is refused like any other bad value — found by the system fuzz
test (tests/system/test_hostile_mqtt.py): it used to raise OverflowError / ValueError
inside the dispatcher, so the caller got no answer."""

from __future__ import annotations

import pytest

from shopfloor.edge.commands import check_command
from shopfloor.shared.contract import Command, CommandStatus, parse
from tests.edge.test_core import T0, machine


@pytest.mark.parametrize("point", ["speed_pct", "product"])
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_values_are_refused(point: str, value: str) -> None:
    raw = (
        f'{{"id": "c1", "point": "{point}", "value": {value},'
        ' "expires_at": "2026-11-25T20:01:00Z", "role": "admin"}'
    ).encode()
    command = parse(Command, raw)
    refusal = check_command(machine(), command, T0)
    assert refusal is not None
    assert refusal[0] is CommandStatus.REJECTED and "finite" in refusal[1]
