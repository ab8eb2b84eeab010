"""The agent's status fields land in `agent_status`: queue depth and the overload state."""

from __future__ import annotations

import datetime as dt

from shopfloor.collector.encode import status_line
from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.shared.contract import AgentStatus

T0 = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


def test_overload_state_is_written_with_the_status() -> None:
    payload = AgentStatus(
        online=True, agent="edge1", ts=T0, machines=["m1"], queue_depth=3,
        overloaded=True, polls_skipped=42,
    )
    line = status_line(ParsedMessage(Kind.STATUS, "s1", payload, agent="edge1"), payload, T0)
    assert line is not None
    assert "queue_depth=3i" in line and "overloaded=true" in line and "polls_skipped=42i" in line


def test_a_last_will_carries_no_overload_fields() -> None:
    payload = AgentStatus(online=False, agent="edge1")
    line = status_line(ParsedMessage(Kind.STATUS, "s1", payload, agent="edge1"), payload, T0)
    assert line is not None and "overloaded" not in line and "polls_skipped" not in line
