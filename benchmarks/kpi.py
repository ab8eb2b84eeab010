"""KPI benchmark: `./dev.sh bench kpi [--days 30] [--live-hours 24]`.

1. Writes `--days` of 1 Hz history for one machine (press1 of the example plant) into a
   real InfluxDB as the collector writes it (telemetry line protocol, ms precision), and
   the per-minute `oee_rollup` points the live engine stores (computed here by the same
   pure engine, day by day; its throughput is printed too).
2. On demand: OEE of the machine over the whole history (rollups + raw edges) and over
   one day from raw telemetry alone. Target: the whole history in <= 1 s.
3. Live engine cost per sample: the collector's KPI sink fed `--live-hours` of samples in
   batches of 100, ticking every `collector.kpi_period_s` of event time (recompute,
   rollups, shift/rolling OEE, WIP, writes to InfluxDB), and ingest alone (no ticks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

import httpx

from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.collector.sinks import WrittenBatch
from shopfloor.kpi.aggregate import aggregate, context_ms
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.ondemand import Engine
from shopfloor.kpi.records import rollup_lines
from shopfloor.kpi.store import KpiStore, chunks
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.loader import parse_plant
from tests.harness.plants import example_data
from tests.harness.services import InfluxDB

MACHINE = "press1"
DAY_MS = 86_400_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def history(start_ms: int, seconds: int, seed: int = 1) -> list[Sample]:
    """A plausible 1 Hz timeline: runs, stops, idles, setups with product changes, scrap,
    short data gaps; 32-bit counters."""
    rnd = random.Random(seed)
    out: list[Sample] = []
    t, total, reject, product, seq, wo = 0, 0, 0, 1, 0, 1
    while t < seconds:
        state = rnd.choices([1, 0, 2, 10, 20, 30, 40], [60, 4, 8, 10, 3, 2, 1])[0]
        length = rnd.randint(20, 1500) if state == 1 else rnd.randint(5, 600)
        if state == 30:
            product = rnd.choice([1, 2, 3])
            wo += 1
        if rnd.random() < 0.01:
            t += rnd.randint(5, 120)  # the edge lost its link for a while
        for _ in range(length):
            if t >= seconds:
                break
            out.append(Sample(start_ms + t * 1000, {
                "state": state, "total_count": total, "reject_count": reject,
                "product": product, "work_order": f"WO{wo}"}, seq))
            seq += 1
            t += 1
            if state == 1 and rnd.random() < 0.45:
                total += 1
                if rnd.random() < 0.02:
                    reject += 1
    return out


def telemetry_line(site: str, s: Sample) -> str:
    v = s.values
    return (f"telemetry,line=line1,machine={MACHINE},site={site} state={v['state']}i,"
            f"total_count={v['total_count']}i,reject_count={v['reject_count']}i,"
            f"product={v['product']}i,work_order=\"{v['work_order']}\",_seq={s.seq}i "
            f"{s.ts_ms}")


def write_raw(url: str, db: str, lines: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for batch in chunks(lines, 5000):
            r = http.post("/write", params={"db": db, "precision": "ms"},
                          content="\n".join(batch).encode())
            r.raise_for_status()


def rollups(plant, samples: list[Sample], start_ms: int, days: int) -> tuple[list[str], float]:  # noqa: ANN001
    spec = KpiMachineSpec.from_plant(plant, MACHINE)
    settings = KpiSettings.of(plant)
    cal = ShiftCalendar.of(plant)
    margin = context_ms(spec, settings)
    lines: list[str] = []
    began = time.perf_counter()
    times = [s.ts_ms for s in samples]
    import bisect
    for d in range(days):
        lo, hi = start_ms + d * DAY_MS, start_ms + (d + 1) * DAY_MS
        a = max(0, bisect.bisect_left(times, lo - margin) - 1)
        b = bisect.bisect_left(times, hi + margin) + 1
        for bucket in aggregate(spec, samples[a:b], cal, lo, hi, 60_000, settings):
            lines += rollup_lines(plant.site.id, "line1", MACHINE, bucket.start_ms,
                                  bucket.agg, final=True)
    return lines, time.perf_counter() - began


def timed(label: str, fn, repeat: int = 3):  # noqa: ANN001, ANN201
    best, result = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    print(f"  {label:<58} {best * 1000:9.1f} ms (best of {repeat})")
    return result


def live_cost(plant, store: KpiStore, samples: list[Sample], ticks: bool,  # noqa: ANN001
              size: int = 10) -> tuple[float, int]:
    """µs per sample fed through the sink in batches of `size` (10 = one batch per
    10 s of event time at 1 Hz), and how many ticks ran."""
    event_s = [0.0]
    sink = LiveKpi(plant, store, clock=(lambda: event_s[0]) if ticks else (lambda: 0.0))
    if not ticks:
        sink.period_s = float("inf")
    batches = []
    for i in range(0, len(samples), size):
        part = samples[i:i + size]
        batches.append((part[-1].ts_ms / 1000, WrittenBatch([ParsedMessage(
            Kind.TELEMETRY, plant.site.id,
            Telemetry(ts=EPOCH + dt.timedelta(milliseconds=s.ts_ms), seq=s.seq,
                      values=dict(s.values)), line="line1", machine=MACHINE)
            for s in part], dt.datetime.now(dt.UTC))))
    event_s[0] = batches[0][0]
    sink.on_batch(batches[0][1])  # the first call ticks once: fills caches from the store
    ticks_before = sink._last_tick
    count = 0
    began = time.perf_counter()
    for now_s, batch in batches[1:]:
        event_s[0] = now_s
        sink.on_batch(batch)
        count += sink._last_tick != ticks_before
        ticks_before = sink._last_tick
    spent = time.perf_counter() - began
    return spent / (len(samples) - len(batches[0][1].messages)) * 1e6, count


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench kpi")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--live-hours", type=float, default=24.0)
    args = parser.parse_args(argv)
    data = example_data()
    with tempfile.TemporaryDirectory() as tmp:
        influx = InfluxDB(Path(tmp) / "influxdb")
        influx.start()
        try:
            data["database"] = {"url": influx.url, "database": "bench"}
            data["collector"]["kpi_period_s"] = 10
            plant = parse_plant(data)
            run(plant, influx, args.days, args.live_hours)
        finally:
            influx.stop()


def run(plant, influx: InfluxDB, days: int, live_hours: float) -> None:  # noqa: ANN001
    start = int(dt.datetime(2026, 10, 1, tzinfo=dt.UTC).timestamp() * 1000)
    store = KpiStore.open(plant)
    print(f"KPI benchmark: {days} days of 1 Hz history, machine {MACHINE}, "
          f"InfluxDB {influx.url}")
    began = time.perf_counter()
    samples = history(start, days * 86_400)
    raw = [telemetry_line(plant.site.id, s) for s in samples]
    write_raw(influx.url, "bench", raw)
    print(f"  wrote {len(raw):,} telemetry points in {time.perf_counter() - began:.1f} s")
    lines, spent = rollups(plant, samples, start, days)
    print(f"  pure engine: {len(samples):,} samples -> {len(lines):,} rollup points in "
          f"{spent:.1f} s ({len(samples) / spent:,.0f} samples/s)")
    write_raw(influx.url, "bench", lines)
    time.sleep(5)  # let InfluxDB settle (snapshot/compaction after the bulk write)
    engine = Engine(plant, store)
    end = start + days * DAY_MS
    lo, hi = start + 3_600_000 + 17_000, end - 3_600_000 - 23_000  # not minute-aligned
    report = timed(f"on demand, {days} days (rollups + raw edges)",
                   lambda: engine.oee(MACHINE, lo, hi))
    r = report.result
    print(f"    -> {report.rollup_minutes:,} rollup minutes; A {r.availability:.4f} "
          f"P {r.performance:.4f} Q {r.quality:.4f} OEE {r.oee:.4f} coverage {r.coverage:.4f}")
    day_lo = start + (days // 3) * DAY_MS
    spec = KpiMachineSpec.from_plant(plant, MACHINE)
    timed("on demand, 1 day from raw telemetry only",
          lambda: engine.raw(spec, day_lo, day_lo + DAY_MS), repeat=1)
    timed("on demand, WIP of line1 over 1 day (rollups)",
          lambda: engine.wip("line1", day_lo, day_lo + DAY_MS), repeat=1)
    live = samples[-int(live_hours * 3600):]
    us, _ = live_cost(plant, store, live, ticks=False, size=100)
    print(f"  live engine, ingest only (batches of 100)          {us:9.1f} us/sample")
    us, ticks = live_cost(plant, store, live, ticks=True)
    per_tick = us * (len(live) - 10) / max(ticks, 1) / 1000
    print(f"  live engine, tick every 10 s of event time         {us:9.1f} us/sample "
          f"({len(live):,} samples, {ticks:,} ticks, {per_tick:.1f} ms per tick: recompute, "
          "rollups, shift/rolling OEE of 4 machines, WIP of line1, InfluxDB writes)")
    store.close()
