"""`shopfloor oee PLANT --machine M` (the current or last shift), `--shift NAME [--date D]`
or `--start T1 --end T2`; `--line L` for WIP and work orders; a table, or `--json`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import click

from shopfloor.kpi.calendar import ShiftCalendar, ShiftInstance
from shopfloor.kpi.errors import KpiError
from shopfloor.kpi.ondemand import Engine, OeeReport, WipReport, shift_window, to_ms
from shopfloor.kpi.store import KpiStore
from shopfloor.shared.cli import load_or_exit
from shopfloor.shared.plant import Plant

DEFAULT_WINDOW_MS = 8 * 3600 * 1000
"""Without a calendar and without --start/--end: the last 8 hours."""


def parse_time(text: str, zone: str) -> dt.datetime:
    """ISO 8601; without an offset the plant's local time."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(zone))


def _window(plant: Plant, start: str | None, end: str | None, shift: str | None,
            date: str | None) -> tuple[dt.datetime | int, dt.datetime | int, Any]:
    """The window asked for: --start/--end, --shift with --date, or else the current
    (or last) instance of --shift / of any shift; a plant without shifts: the last 8 h."""
    if start is not None or end is not None:
        if start is None or end is None or shift is not None or date is not None:
            raise click.UsageError("give --start and --end together, without --shift/--date")
        return parse_time(start, plant.timezone), parse_time(end, plant.timezone), None
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError as exc:
            raise click.BadParameter(f"{date!r} is not a date (YYYY-MM-DD)") from exc
        if shift is None:
            raise click.UsageError("--date needs --shift (the shift's name)")
        return _so_far(shift_window(plant, shift, day), to_ms(dt.datetime.now(dt.UTC)))
    now_ms = to_ms(dt.datetime.now(dt.UTC))
    if shift is not None and shift not in {s.name for s in plant.calendar.shifts}:
        names = sorted({s.name for s in plant.calendar.shifts})
        raise KpiError(f"no shift {shift!r} in the calendar (shifts: {names})")
    found = ShiftCalendar.of(plant).latest(now_ms, shift)
    if found is None:
        if shift is not None:
            raise KpiError(f"shift {shift!r} did not run in the last 7 days")
        return now_ms - DEFAULT_WINDOW_MS, now_ms, None
    return _so_far(found, now_ms)


def _so_far(inst: ShiftInstance, now_ms: int) -> tuple[int, int, ShiftInstance]:
    """A shift instance's window up to now: a running shift so far (its future is not
    missing data); one that has not started is an error."""
    if inst.start_ms >= now_ms:
        raise KpiError(f"shift {inst.key} has not started yet")
    return inst.start_ms, min(inst.end_ms, now_ms), inst


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)).isoformat()


def oee_table(report: OeeReport) -> str:
    rows = [("machine", report.machine), ("window", f"{_iso(report.start_ms)} .. "
                                          f"{_iso(report.end_ms)}"),
            ("shift", report.shift), ("rollup minutes", report.rollup_minutes)]
    rows += [(k, v if k != "flags" else ",".join(v) or "-")
             for k, v in report.result.as_dict().items()]
    return "\n".join(f"{k:<18} {_fmt(v)}" for k, v in rows)


def wip_table(report: WipReport) -> str:
    w = report.wip
    rows = [("line", w.line), ("window", f"{_iso(w.start_ms)} .. {_iso(w.end_ms)}"),
            ("anchor", _iso(w.anchor_ms) if w.anchored else "none (no stocktake)"),
            ("wip", w.wip if w.anchored else "unanchored"), ("change", w.change),
            ("mean wip", w.mean_wip), ("throughput/h", w.throughput_per_h),
            ("lead time s", w.lead_time_s), ("little holds", w.little_holds),
            ("drift", w.drift)]
    out = [f"{k:<18} {_fmt(v)}" for k, v in rows]
    out.append(f"\n{'buffer':<18} {'wip':>10} {'change':>10} {'capacity':>9} drift")
    for b in w.buffers:
        out.append(f"{b.upstream + '->' + b.downstream:<18} {_fmt(b.wip):>10} "
                   f"{_fmt(b.change):>10} {_fmt(b.capacity):>9} {b.drift}")
    if report.orders:
        out.append(f"\n{'order':<14} {'target':>7} {'good':>10} {'scrap':>8} "
                   f"{'remaining':>10} phase")
        for o in report.orders:
            out.append(f"{o.id:<14} {_fmt(o.target):>7} {_fmt(o.good):>10} "
                       f"{_fmt(o.scrap):>8} {_fmt(o.remaining):>10} {o.phase or '-'}")
    return "\n".join(out)


@click.command()
@click.argument("plant", type=click.Path(dir_okay=False))
@click.option("--machine", help="OEE of this machine.")
@click.option("--line", "line_id", help="WIP and work orders of this line.")
@click.option("--start", help="Window start, ISO 8601 (no offset: plant time zone).")
@click.option("--end", help="Window end (exclusive).")
@click.option("--shift", help="A shift name: its instance on --date, else its current or "
              "last one.")
@click.option("--date", help="Production date of the shift instance, YYYY-MM-DD.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--raw", is_flag=True, help="Ignore stored rollups: recompute from telemetry.")
def oee(plant: str, machine: str | None, line_id: str | None, start: str | None,
        end: str | None, shift: str | None, date: str | None, as_json: bool,
        raw: bool) -> None:
    """OEE of a machine, or WIP of a line, over a window, from what InfluxDB holds.
    Without a window: the shift running now (or the last one that ran)."""
    model = load_or_exit(plant)
    if (machine is None) == (line_id is None):
        raise click.UsageError("give exactly one of --machine or --line")
    lo, hi, inst = _window(model, start, end, shift, date)
    store = KpiStore.open(model)  # a KpiError ends the command in one line (shopfloor.cli)
    try:
        engine = Engine(model, store, use_rollups=not raw)
        if machine is not None:
            report: OeeReport | WipReport = engine.oee(machine, lo, hi, inst)
        else:
            report = engine.wip(line_id or "", lo, hi)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
    elif isinstance(report, OeeReport):
        click.echo(oee_table(report))
    else:
        click.echo(wip_table(report))
