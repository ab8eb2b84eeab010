"""Shift calendar: local times with an IANA zone -> UTC instances."""

from __future__ import annotations

import datetime as dt

from shopfloor.kpi.calendar import ShiftCalendar
from tests.kpi.plants import ms, plant

NIGHT = {"name": "night", "start": "22:00", "end": "06:00",
         "breaks": [{"start": "02:00", "end": "02:30"}]}


def test_night_shift_across_fall_back_lasts_nine_hours() -> None:
    cal = ShiftCalendar.of(plant([NIGHT], timezone="Europe/Berlin"))
    inst = cal.find("night", dt.date(2026, 10, 24))  # DST ends 2026-10-25 03:00 CEST
    assert inst is not None
    assert inst.start_ms == ms(2026, 10, 24, 20, 0)  # 22:00 CEST = 20:00 UTC
    assert inst.end_ms == ms(2026, 10, 25, 5, 0)  # 06:00 CET = 05:00 UTC
    assert (inst.end_ms - inst.start_ms) / 3_600_000 == 9
    # 02:00-02:30 is ambiguous that night: the first occurrence (CEST) is taken.
    assert inst.breaks == ((ms(2026, 10, 25, 0, 0), ms(2026, 10, 25, 0, 30)),)
    assert inst.key == "2026-10-24/night"


def test_night_shift_across_spring_forward_lasts_seven_hours() -> None:
    cal = ShiftCalendar.of(plant([NIGHT], timezone="Europe/Berlin"))
    inst = cal.find("night", dt.date(2026, 3, 28))  # DST starts 2026-03-29 02:00 CET
    assert inst is not None
    assert (inst.end_ms - inst.start_ms) / 3_600_000 == 7
    # 02:00-02:30 does not exist: moved forward to 03:00-03:30 CEST = 01:00-01:30 UTC.
    assert inst.breaks == ((ms(2026, 3, 29, 1, 0), ms(2026, 3, 29, 1, 30)),)


def test_planned_spans_mark_breaks_and_days() -> None:
    early = {"name": "early", "start": "06:00", "end": "14:00", "days": ["mon"],
             "breaks": [{"start": "10:00", "end": "10:30"}]}
    cal = ShiftCalendar.of(plant([early]))
    # 2026-11-23 is a Monday, 11-24 a Tuesday (no shift).
    spans = cal.planned(ms(2026, 11, 23, 0), ms(2026, 11, 25, 0))
    assert [(s.start_ms, s.end_ms, s.is_break) for s in spans] == [
        (ms(2026, 11, 23, 6), ms(2026, 11, 23, 10), False),
        (ms(2026, 11, 23, 10), ms(2026, 11, 23, 10, 30), True),
        (ms(2026, 11, 23, 10, 30), ms(2026, 11, 23, 14), False),
    ]
    assert cal.at(ms(2026, 11, 23, 7)).name == "early"
    assert cal.at(ms(2026, 11, 24, 7)) is None
    assert cal.find("early", dt.date(2026, 11, 24)) is None


def test_no_shifts_means_always_planned() -> None:
    cal = ShiftCalendar.of(plant([]))
    spans = cal.planned(0, 1000)
    assert [(s.start_ms, s.end_ms, s.is_break) for s in spans] == [(0, 1000, False)]


def test_latest_is_the_running_instance_else_the_last_one_that_started() -> None:
    early = {"name": "early", "start": "06:00", "end": "14:00", "days": ["mon"]}
    cal = ShiftCalendar.of(plant([early, NIGHT]))  # night: every day 22:00-06:00 UTC
    running = cal.latest(ms(2026, 11, 23, 7))  # Monday 07:00: early runs
    assert running is not None and running.key == "2026-11-23/early"
    between = cal.latest(ms(2026, 11, 23, 15))  # after early, before night
    assert between is not None and between.key == "2026-11-23/early"
    night = cal.latest(ms(2026, 11, 24, 3))  # Tuesday 03:00: Monday's night runs
    assert night is not None and night.key == "2026-11-23/night"
    # by name: Tuesday has no early shift, so Monday's is the last one
    last_early = cal.latest(ms(2026, 11, 24, 9), "early")
    assert last_early is not None and last_early.key == "2026-11-23/early"
    # a plant without shifts has no shift instances at all
    assert ShiftCalendar.of(plant([])).latest(ms(2026, 11, 23, 7)) is None
