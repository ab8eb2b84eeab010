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


def test_problems_are_written_and_cleared_with_the_status() -> None:
    reason = "outbox: commit to /x/outbox.sqlite3 failed: database or disk is full"
    sick = AgentStatus(online=True, agent="edge1", ts=T0, problems=[reason, "task x crashed"])
    line = status_line(ParsedMessage(Kind.STATUS, "s1", sick, agent="edge1"), sick, T0)
    assert line is not None and f'problems="{reason}; task x crashed"' in line
    well = AgentStatus(online=True, agent="edge1", ts=T0)
    line = status_line(ParsedMessage(Kind.STATUS, "s1", well, agent="edge1"), well, T0)
    assert line is not None and 'problems=""' in line
    will = AgentStatus(online=False, agent="edge1")
    line = status_line(ParsedMessage(Kind.STATUS, "s1", will, agent="edge1"), will, T0)
    assert line is not None and "problems" not in line
