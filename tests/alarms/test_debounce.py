"""On-delay and off-delay on event time: an alarm raises only after its condition held
`after_s`, clears only after it was gone `clear_after_s`, at event times that do not
depend on when (or how often) evaluation runs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shopfloor.alarms.debounce import Change, Debounce, Edge, advance, step
from shopfloor.shared.alarm_rules import Rule, RuleKind, Severity

RULE = Rule(RuleKind.MACHINE_STOPPED, True, Severity.HIGH, after_s=60, clear_after_s=20)


def _run(rule: Rule, samples: list[tuple[float, bool]], end: float) -> list[Change]:
    state, changes = Debounce(), []
    for at, condition in samples:
        state, new = step(rule, state, condition, at)
        changes += new
    state, last = advance(rule, state, end)
    return changes + ([last] if last else [])


def test_raises_after_the_on_delay_at_its_event_time() -> None:
    changes = _run(RULE, [(0, False), (100, True), (130, True)], end=170)
    assert changes == [Change(Edge.RAISE, 160)]


def test_a_short_condition_never_raises() -> None:
    assert _run(RULE, [(100, True), (159, False)], end=1000) == []


def test_a_short_gap_does_not_clear() -> None:
    changes = _run(RULE, [(0, True), (100, False), (119, True)], end=1000)
    assert changes == [Change(Edge.RAISE, 60)]


def test_clears_after_the_off_delay() -> None:
    changes = _run(RULE, [(0, True), (100, False)], end=1000)
    assert changes == [Change(Edge.RAISE, 60), Change(Edge.CLEAR, 120)]


def test_zero_delays_act_at_once() -> None:
    rule = Rule(RuleKind.AGENT_OFFLINE, True, Severity.HIGH, after_s=0, clear_after_s=0)
    changes = _run(rule, [(5, True), (7, False)], end=7)
    assert changes == [Change(Edge.RAISE, 5), Change(Edge.CLEAR, 7)]


def test_an_out_of_order_observation_is_ignored() -> None:
    state, _ = step(RULE, Debounce(), True, 100)
    assert step(RULE, state, False, 50)[0] == state


samples = st.lists(st.tuples(st.integers(0, 1000), st.booleans()), max_size=30,
                   unique_by=lambda x: x[0]).map(
    lambda xs: sorted(xs, key=lambda x: x[0]))


@given(samples, st.lists(st.integers(0, 1100), max_size=20),
       st.integers(0, 100), st.integers(0, 100))
def test_extra_evaluations_change_nothing(sample_list: list[tuple[int, bool]],
                                          ticks: list[int], after: int, clear: int) -> None:
    """Evaluating at any extra moments (a timer, a restart) gives the same edges at the
    same times as evaluating only when data arrives."""
    rule = Rule(RuleKind.MACHINE_STOPPED, True, Severity.LOW, after, clear)
    plain = _run(rule, list(sample_list), end=1100)
    state, ticked = Debounce(), []
    events = sorted([(at, 0, c) for at, c in sample_list] + [(t, 1, None) for t in ticks],
                    key=lambda e: (e[0], e[1]))
    for at, _, condition in events:
        if condition is None:
            state, change = advance(rule, state, at)
            ticked += [change] if change else []
        else:
            state, new = step(rule, state, condition, at)
            ticked += new
    state, last = advance(rule, state, 1100)
    assert ticked + ([last] if last else []) == plain


@given(samples, st.integers(0, 100), st.integers(0, 100))
def test_edges_alternate_and_respect_the_delays(sample_list: list[tuple[int, bool]],
                                                after: int, clear: int) -> None:
    rule = Rule(RuleKind.MACHINE_STOPPED, True, Severity.LOW, after, clear)
    changes = _run(rule, list(sample_list), end=1100)
    kinds = [c.edge for c in changes]
    pairs = [Edge.RAISE, Edge.CLEAR] * (len(kinds) // 2)
    assert kinds == pairs + [Edge.RAISE] * (len(kinds) % 2)
    assert [c.at for c in changes] == sorted(c.at for c in changes)
    for change in changes:  # the condition really held (was really gone) for the delay
        wanted = change.edge is Edge.RAISE
        delay = after if wanted else clear
        before = [c for at, c in sample_list if at <= change.at - delay]
        during = [c for at, c in sample_list if change.at - delay < at < change.at]
        assert before and before[-1] == wanted or not before and not wanted
        assert all(c == wanted for c in during)
