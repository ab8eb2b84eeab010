"""Downtime events, pure: stable ids, splits and classifications, and the stored form
(what `changes` writes brings the store to the event, and nothing more)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.api.downtime import events as ev
from shopfloor.api.downtime import rows
from shopfloor.shared.enums import MachineState
from shopfloor.shared.reasons import Downtime, tree_of

TREE = tree_of(Downtime.model_validate({
    "generic_plc_reasons": ["other"],
    "categories": [{"id": "mech", "reasons": [
        {"code": "jam", "plc": ["jam"]}, {"code": "motor"},
        {"code": "meeting", "loss": "planned"}, {"code": "change", "loss": "setup"}]}],
}), "line1", 120.0)
REASONS = ["jam", "motor", "meeting", "change"]


def _event(start: int = 1_000_000, end: int | None = 1_600_000, plc: str | None = None
           ) -> ev.Event:
    return ev.new_event("line1", "m1", start, end, MachineState.STOPPED, plc, TREE)


def test_ids_are_machine_and_start() -> None:
    e = _event(1_764_720_000_000)
    assert e.id == "m1:1764720000000" and ev.parse_id(e.id) == ("m1", 1_764_720_000_000)
    assert ev.parse_id("m.1-x:12") == ("m.1-x", 12)
    for bad in ("m1", "m1:", ":12", "m1:x", "m1:" + "9" * 17):
        assert ev.parse_id(bad) is None


def test_initial_classification_from_plc_codes() -> None:
    assert _event(plc="jam").parts[0] == ev.Part(1_000_000, "jam", ev.PLC_BY)
    assert _event(plc="other").parts[0].reason is None  # generic
    assert _event(plc="unknown_code").parts[0].reason is None
    assert _event(plc="none").plc_reason is None  # the collector's "no reason" tag


def test_threshold_and_states() -> None:
    assert ev.qualifies(MachineState.IDLE, 120, TREE)
    assert not ev.qualifies(MachineState.IDLE, 119.9, TREE)
    assert ev.qualifies(MachineState.OFFLINE, 500, TREE)
    for state in (MachineState.RUNNING, MachineState.SETUP, MachineState.PLANNED_STOP):
        assert not ev.qualifies(state, 500, TREE)


def test_split_and_classify_refuse_what_does_not_fit() -> None:
    e = _event()
    for at in ([1_000_000], [1_600_000], [2_000_000]):
        with pytest.raises(ev.EventError):
            ev.split(e, at, 9_999_999)
    with pytest.raises(ev.EventError):
        ev.split(ev.split(e, [1_200_000], 0), [1_200_000], 0)
    with pytest.raises(ev.EventError):
        ev.classify(e, 0, "nope", "op", "", TREE)
    with pytest.raises(ev.EventError):
        ev.classify(e, 1, "jam", "op", "", TREE)
    open_event = _event(end=None)
    assert len(ev.split(open_event, [1_500_000], now_ms=1_700_000).parts) == 2
    with pytest.raises(ev.EventError):
        ev.split(open_event, [1_800_000], now_ms=1_700_000)


def test_merge_open_prefers_finished_newest_first() -> None:
    a, b = _event(1_000), _event(5_000, None)
    b_done = _event(5_000, 9_000)
    assert ev.merge_open([a, b_done], [b]) == [b_done, a]


Key = tuple[int, str, str, str, str]


def _shift(ms: int) -> str:
    return "early" if ms < 1_300_000 else "late"


def _apply(store: dict[Key, rows.Stored], written: list[rows.Stored]) -> None:
    for s in written:  # InfluxDB: same series (tags) + time overwrites
        store[s.key] = s


@given(cuts=st.lists(st.integers(1_000_001, 1_599_999), max_size=5, unique=True),
       picks=st.lists(st.tuples(st.integers(0, 5), st.sampled_from(REASONS)), max_size=8),
       ended=st.booleans())
def test_changes_bring_the_store_to_the_event(cuts: list[int],
                                              picks: list[tuple[int, str]],
                                              ended: bool) -> None:
    """Any sequence of splits and classifications, each stored with `changes`: the active
    points are exactly the event's parts, the sums per reason add up to its duration
    (tombstones count 0), and storing the same event again writes nothing."""
    store: dict[Key, rows.Stored] = {}
    event = _event(end=1_600_000 if ended else None)
    _apply(store, rows.changes(event, TREE, store.values(), _shift))
    for cut in cuts:
        event = ev.split(event, [cut], 1_600_000)
        _apply(store, rows.changes(event, TREE, store.values(), _shift))
    for index, reason in picks:
        if index < len(event.parts):
            event = ev.classify(event, index, reason, "op", "", TREE)
            _apply(store, rows.changes(event, TREE, store.values(), _shift))
    assert rows.changes(event, TREE, store.values(), _shift) == []
    parts = rows.parts_by_event(store.values())[event.id]
    assert ev.with_parts(event, parts) == event
    total = sum(s.duration_s for s in store.values())
    assert total == pytest.approx(600.0 if ended else 0.0)
    back = [rows.from_row({"time": s.ts_ms, **_row(s)}) for s in store.values()]
    assert sorted(back, key=lambda s: s.key if s else ()) == sorted(
        store.values(), key=lambda s: s.key)


def _row(s: rows.Stored) -> dict[str, object]:
    return {"line": s.line, "machine": s.machine, "reason": s.reason, "category": s.category,
            "loss": s.loss, "event": s.event, "end_ms": s.end_ms, "duration_s": s.duration_s,
            "active": s.active, "by": s.by, "comment": s.comment, "state": s.state,
            "plc_reason": s.plc_reason, "shift": s.shift}


def test_line_protocol_of_a_part() -> None:
    event = ev.classify(_event(), 0, "meeting", "op 1", "coffee, later", TREE)
    (point,) = rows.changes(event, TREE, [], _shift)
    text = rows.to_line("s1", point)
    assert text.startswith("downtime,category=mech,line=line1,loss=planned,machine=m1,"
                           "reason=meeting,shift=early,site=s1 ")
    assert 'by="op 1"' in text and "duration_s=600.0" in text and text.endswith(" 1000000")
