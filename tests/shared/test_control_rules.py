"""One rule set, two gates: the API (before sending) and the edge (before writing) refuse
exactly the same writes, because both call shared.control_rules. Checked over random
points, values, actions and roles of the example plant (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.api import control
from shopfloor.api.errors import ApiError
from shopfloor.api.security import Principal
from shopfloor.edge.commands import check_command
from shopfloor.shared.contract import Command
from shopfloor.shared.enums import ControlAction
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Role
from tests.harness.plants import EXAMPLE

PRESS = load_plant(EXAMPLE).machines["press1"]
NOW = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC)
values = st.one_of(st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                   st.text(max_size=30))


@settings(max_examples=400, deadline=None)
@given(point=st.sampled_from([p.name for p in PRESS.points]), value=values,
       action=st.sampled_from(list(ControlAction)), role=st.sampled_from(list(Role)))
def test_the_api_and_the_edge_refuse_the_same_writes(point: str, value: object,
                                                     action: ControlAction, role: Role) -> None:
    try:
        write = control.write(PRESS, point, value)  # type: ignore[arg-type]
        control.check_rules(Principal("k", role), PRESS, action, write, False)
        api_refuses = False
    except ApiError:
        api_refuses = True
    command = Command(id="c1", point=point, value=value,  # type: ignore[arg-type]
                      expires_at=NOW + dt.timedelta(seconds=5), control_action=action,
                      role=role)
    edge_refusal = check_command(PRESS, command, NOW)
    assert api_refuses == (edge_refusal is not None), edge_refusal


@pytest.mark.parametrize(("point", "value", "code"), [
    ("temperature", 1.0, "not_writable"), ("speed_pct", True, "wrong_type"),
    ("speed_pct", 50.5, "wrong_type"), ("speed_pct", float("nan"), "wrong_type"),
    ("speed_pct", 121, "out_of_range"), ("work_order", "é" * 3 + "€", "wrong_type"),
    ("work_order", "x" * 25, "out_of_range"), ("run", 1, "wrong_type"),
])
def test_value_refusal_codes(point: str, value: object, code: str) -> None:
    spec = PRESS.point(point)
    assert spec is not None
    refusal = control.rules.check_value(spec, value)  # type: ignore[arg-type]
    assert refusal is not None and refusal.code == code
