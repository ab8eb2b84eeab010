"""Counter differencing by the rules of OEE.md."""

from __future__ import annotations

from shopfloor.kpi.counters import PairFlag, as_count, d_max, delta, pairs


def test_dmax_formula() -> None:
    # ceil(1.5 * 10 / 2) + 10 = ceil(7.5) + 10 = 18
    assert d_max(10.0, 2.0, 2**16) == 18
    assert d_max(1.0, None, 2**16) == 2**15


def test_sixteen_bit_wrap() -> None:
    # 65530 -> 4 over 1 s with PRI 0.2 s: Dmax = ceil(7.5)+10 = 18; 4 - 65530 + 65536 = 10
    got = pairs([(0, 65530), (1000, 4)], 0.2, 2**16)
    assert [(p.delta, p.flag) for p in got] == [(10, PairFlag.WRAP)]


def test_reset_jump_unknown() -> None:
    assert delta(5000, 3, 12, 2**32) == (3, PairFlag.RESET)
    assert delta(10, 100, 12, 2**32) == (0, PairFlag.JUMP)
    assert delta(5000, 400, 12, 2**32) == (0, PairFlag.RESET_UNKNOWN)
    assert delta(10, 22, 12, 2**32) == (12, PairFlag.OK)
    assert delta(10, 10, 12, 2**32) == (0, PairFlag.OK)


def test_as_count_rejects_non_counts() -> None:
    assert as_count(12, 2**16) == 12
    assert as_count(12.0, 2**16) == 12
    assert as_count(True, 2**16) is None
    assert as_count("12", 2**16) is None
    assert as_count(-1, 2**16) is None
    assert as_count(70000, 2**16) is None
    assert as_count(float("nan"), 2**16) is None
