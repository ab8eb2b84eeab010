"""The live KPI engine the collector plugs in (interfaces: `shopfloor.kpi.feed`).

After each durably written batch it takes the telemetry samples (event time) into
per-machine state (`livestate.MachineLive`). Every `collector.kpi_period_s` (wall clock)
it recomputes the dirty minutes and stores them as `oee_rollup` points, writes `oee`
points for the current shift and the rolling window (`collector.rolling_window_s`), a
`shift_final` record once a shift has ended (and again if late samples change it), WIP
per line and buffer, and publishes the current KPIs on retained MQTT topics. Event time
is the plant watermark: the newest sample timestamp seen from any machine. Samples older
than the watermark minus `collector.lateness_s` are counted and left out of live KPIs
(they are stored all the same, and on-demand KPIs see them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shopfloor.kpi import records
from shopfloor.kpi.buckets import Agg
from shopfloor.kpi.calendar import ShiftCalendar, ShiftInstance, ms_to_utc
from shopfloor.kpi.errors import KpiStoreRejected, KpiWorkError
from shopfloor.kpi.feed import Publish, StoredBatch
from shopfloor.kpi.livestate import MINUTE_MS, MachineLive, floor_minute
from shopfloor.kpi.livewip import LineWip
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.oee import OeeResult, compute
from shopfloor.kpi.ondemand import Engine, WipReport, to_ms
from shopfloor.kpi.store import KpiStore
from shopfloor.kpi.wip import Anchor, WipResult
from shopfloor.shared import topics
from shopfloor.shared.admission import TimeAdmission, known_values, point_names
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.errors import ShopfloorError
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)
MAX_PENDING_LINES = 200_000
CLASSIFIED_SPAN_MS = 2 * 86_400_000  # classified downtime read each tick: the last 2 days


def to_sample(payload: Telemetry, ts_ms: int | None = None) -> Sample:
    """A telemetry payload as the engine sees it, exactly as stored: bad points left out.
    `ts_ms`: the payload's ts in ms, when the caller has it already."""
    values = payload.values
    if payload.quality:  # rare: copy only then (the payload is frozen, never changed)
        values = {k: v for k, v in values.items() if k not in payload.quality}
    return Sample(to_ms(payload.ts) if ts_ms is None else ts_ms, values, payload.seq)


class LiveKpi:
    def __init__(self, plant: Plant, store: KpiStore | None = None,
                 publish: Publish | None = None, settings: KpiSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plant = plant
        self.settings = settings or KpiSettings.of(plant)
        self.calendar = ShiftCalendar.of(plant)
        self._store = store
        self.publish = publish
        self.clock = clock
        self.period_s = plant.collector.kpi_period_s
        self.rolling_ms = int(plant.collector.rolling_window_s * 1000)
        self.lateness_ms = int(plant.collector.lateness_s * 1000)
        self.machines = {
            mid: MachineLive(KpiMachineSpec.from_plant(plant, mid), self.calendar, self.settings)
            for mid in plant.machines
        }
        self.lines = {line.id: LineWip(line) for line in plant.lines}
        self._older_memo: dict[str, tuple[int, int, list[Sample]]] = {}
        self.context = max((m.context for m in self.machines.values()), default=0)
        self.watermark: int | None = None
        self.first_watermark: int | None = None
        self.finalized: set[str] = set()
        self._pending: list[str] = []  # KPI points not yet written (InfluxDB down)
        self._touched: list[tuple[int, int]] = []  # recomputed spans not yet finalized
        self._work_warned: dict[str, str] = {}
        self.late_dropped = 0
        self.rejected_batches = 0  # KPI batches InfluxDB refused as bad (logged)
        self.admission = TimeAdmission.of(plant)
        self._points = point_names(plant)
        self.refused = 0  # samples outside the admission rule (shared.admission)
        self.unknown_values = 0  # value keys that are not a point of their machine
        self._last_tick: float | None = None
        self._failures = FailureLog(log, "live KPIs")

    @property
    def store(self) -> KpiStore:
        if self._store is None:
            self._store = KpiStore.open(self.plant)
        return self._store

    # -- input -------------------------------------------------------------------------

    def on_batch(self, batch: StoredBatch) -> None:
        for machine, sample in self.samples_of(batch):
            self.add(machine, sample)
        now = self.clock()
        if self._last_tick is None or now - self._last_tick >= self.period_s:
            self._last_tick = now
            self.tick()

    def samples_of(self, batch: StoredBatch) -> list[tuple[str, Sample]]:
        """The batch's telemetry as samples, through the admission rule (the engine's
        edge): a sample stamped beyond it relative to the batch's write time is refused
        (it would move the watermark, hence shifts and memory, without bound); value keys
        that are not points of the machine are dropped. Both are counted."""
        now_ms = to_ms(batch.written_at)
        out: list[tuple[str, Sample]] = []
        for message in batch.telemetry():
            payload = message.payload
            assert isinstance(payload, Telemetry)
            points = self._points.get(message.machine)
            if points is None or self.admission.refuse(message.ts_ms, now_ms) is not None:
                self.refused += 1
                continue
            sample = to_sample(payload, message.ts_ms)
            values, unknown = known_values(sample.values, points)
            if unknown:
                self.unknown_values += unknown
                sample = replace(sample, values=values)
            out.append((message.machine, sample))
        return out

    def add(self, machine: str, sample: Sample) -> None:
        live = self.machines.get(machine)
        if live is None:
            return
        if self.watermark is not None and sample.ts_ms < self.watermark - self.lateness_ms:
            self.late_dropped += 1
            log.debug("%s: sample at %d ms is later than the lateness limit", machine,
                      sample.ts_ms)
            return
        if live.memory_lo is not None and sample.ts_ms < live.memory_lo:
            self._older_memo.pop(machine, None)  # the store now holds more than we read
        live.add(sample)
        if self.watermark is None or sample.ts_ms > self.watermark:
            self.watermark = sample.ts_ms
            if self.first_watermark is None:
                self.first_watermark = sample.ts_ms

    # -- output ------------------------------------------------------------------------

    def tick(self) -> None:
        """Recompute, store and publish (never raises: failures are logged and retried)."""
        if self.watermark is None:
            return
        try:
            self._tick(self.watermark)
        except ShopfloorError as exc:
            self._failures.failure("%s", exc)
        else:
            self._failures.success()

    def _tick(self, wm: int) -> None:
        site = self.plant.site.id
        classified = self.store.classified(None, wm - CLASSIFIED_SPAN_MS, wm + MINUTE_MS)
        for mid, live in self.machines.items():
            live.classify(classified.get(mid, []))
            live.start(wm - MINUTE_MS)
            self._touched += live.ranges(wm)
            for minute in live.recompute(wm, self._older(live.spec)):
                self._pending += records.rollup_lines(site, live.spec.line, mid,
                                                      minute.start_ms, minute.agg, minute.final)
        for span in self._touched:
            for line_wip in self.lines.values():
                line_wip.invalidate(*span)
        lines, payloads = self._snapshots(wm)
        finals, keys = self._finals(wm, self._touched)
        self._pending += lines + finals
        self._flush()
        self.finalized |= keys
        self._touched.clear()
        self._publish(payloads)
        self._trim(wm)

    def _flush(self) -> None:
        """Write what is pending; on failure keep it (bounded) for the next tick. A
        rollup that is never written only costs the on-demand path a raw recompute. A
        batch InfluxDB refuses as bad (its good points are written, InfluxDB drops the
        bad ones) is not retried: it would block every later KPI point."""
        if len(self._pending) > MAX_PENDING_LINES:
            log.warning("InfluxDB unavailable: dropping %d old KPI points",
                        len(self._pending) - MAX_PENDING_LINES)
            del self._pending[: len(self._pending) - MAX_PENDING_LINES]
        while self._pending:
            batch = self._pending[:5000]
            try:
                self.store.write(batch)
            except KpiStoreRejected as exc:
                self.rejected_batches += 1
                log.error("%s; a batch of %d KPI points is not retried (see docs/oee.md "
                          "'Stored measurements' on field types)", exc, len(batch))
            del self._pending[: len(batch)]

    def _older(self, spec: KpiMachineSpec) -> Callable[[int, int], list[Sample]]:
        """Samples before the in-memory tail, from the store (remembered while the same
        range keeps being asked for, as for a silent machine)."""
        def fetch(lo: int, hi: int) -> list[Sample]:
            memo = self._older_memo.get(spec.id)
            if memo is not None and memo[1] == hi and memo[0] <= lo:
                got = memo[2]
                before = [x for x in got if x.ts_ms < lo][-1:]
                return before + [x for x in got if x.ts_ms >= lo]
            got = self.store.samples(spec, lo, hi)
            self._older_memo[spec.id] = (lo, hi, got)
            return got
        return fetch

    def _ensure(self, live: MachineLive, lo: int, hi: int) -> None:
        """Fill minutes of [lo, hi) missing from the cache from the store."""
        if not live.total(lo, hi)[1]:
            return
        engine = Engine(self.plant, self.store, self.settings)
        a, b = floor_minute(lo), floor_minute(hi)
        minutes: dict[int, list[tuple[int, int, Agg]]] = {}
        for bucket in engine.buckets(live.spec, a, b, live.cuts(a, b)):
            minutes.setdefault(floor_minute(bucket.start_ms), []).append(
                (bucket.start_ms, bucket.end_ms, bucket.agg))
        for t, parts in minutes.items():
            live.fill(t, parts)

    def _window(self, live: MachineLive, lo: int, hi: int) -> Agg:
        """Sum of [lo, hi) from the minute cache, filling missing minutes from the store."""
        self._ensure(live, lo, hi)
        return live.total(lo, hi)[0]

    def _wip(self, line: LineWip, anchors: list[Anchor], start: int, wm: int) -> WipResult:
        for station in line.line.stations:
            self._ensure(self.machines[station], start, wm)

        def totals(station: str, a: int, b: int) -> Agg:
            engine = Engine(self.plant, self.store, self.settings)
            return engine.total(self.machines[station].spec, a, b)[0]

        try:
            result = line.result(anchors, start, wm, self.machines, totals)
        except KpiWorkError as exc:
            self._unanchored(line.line.id, exc)
            result = line.result([], start, wm, self.machines, totals)
        if result is None:  # caches not aligned (e.g. a station just started): ask the store
            result = self._wip_report(line.line.id, start, wm).wip
        return result

    def _wip_report(self, line_id: str, lo: int, hi: int) -> WipReport:
        """WIP on demand; when the stocktake's flow is beyond the work bounds, the change
        only (unanchored), with a warning: live KPIs never stop for one line."""
        engine = Engine(self.plant, self.store, self.settings)
        try:
            return engine.wip(line_id, lo, hi, later_anchor=False)
        except KpiWorkError as exc:
            self._unanchored(line_id, exc)
            return engine.wip(line_id, lo, hi, use_anchors=False)

    def _unanchored(self, line_id: str, exc: KpiWorkError) -> None:
        if self._work_warned.get(line_id) != exc.reason:
            self._work_warned[line_id] = exc.reason
            log.warning("WIP of line %s reported unanchored: %s", line_id, exc.reason)

    def _snapshots(self, wm: int) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        site = self.plant.site.id
        lines: list[str] = []
        payloads: list[tuple[str, dict[str, Any]]] = []
        shift = self.calendar.at(wm)
        end = wm
        for mid, live in self.machines.items():
            if live.spec.state_point is None:
                continue  # no state: no OEE (its counters still count for WIP)
            line = live.spec.line
            payload: dict[str, Any] = {"v": 1, "ts": _iso(wm), "machine": mid, "line": line}
            if shift is not None:
                result = compute(self._window(live, shift.start_ms, end), self.settings)
                lines.append(records.oee_line(site, line, mid, "shift", wm, shift.start_ms,
                                              end, result, shift))
                payload["shift"] = _kpi(result, shift.start_ms, end, shift)
            lo = floor_minute(wm) - self.rolling_ms
            result = compute(self._window(live, lo, end), self.settings)
            lines.append(records.oee_line(site, line, mid, "rolling", wm, lo, end, result))
            payload["rolling"] = _kpi(result, lo, end)
            payloads.append((topics.machine_topic(site, line, mid, topics.KPI), payload))
        start = floor_minute(wm) - self.rolling_ms
        # the stocktakes of every line, read each tick (two queries): a new one counts at
        # the next tick once the watermark has passed it
        anchors = self.store.anchors_by_line(start, wm) if self.lines else {}
        for line_id, line_wip in self.lines.items():
            wip = self._wip(line_wip, anchors.get(line_id, []), start, end)
            lines += records.wip_lines(site, "rolling", wm, wip)
            payloads.append((topics.line_kpi_topic(site, line_id),
                             {"v": 1, "ts": _iso(wm), "wip": wip.as_dict()}))
        return lines, payloads

    def _finals(self, wm: int, touched: list[tuple[int, int]]) -> tuple[list[str], set[str]]:
        """Final shift records: once a shift has ended (plus the context margin), and
        again when late samples changed one that was already final."""
        assert self.first_watermark is not None
        lines: list[str] = []
        keys: set[str] = set()
        since = self.first_watermark - self.context
        lo = min([since] + [t[0] for t in touched])
        for inst in self.calendar.instances(lo - 1, wm):
            if inst.end_ms + self.context > wm or inst.end_ms <= since:
                continue
            changed = any(a < inst.end_ms and inst.start_ms < b for a, b in touched)
            if inst.key in self.finalized and not changed:
                continue
            lines += self._final(inst)
            keys.add(inst.key)
        return lines, keys

    def _final(self, inst: ShiftInstance) -> list[str]:
        site = self.plant.site.id
        out = []
        for mid, live in self.machines.items():
            if live.spec.state_point is None:
                continue
            result = compute(self._window(live, inst.start_ms, inst.end_ms), self.settings)
            out.append(records.oee_line(site, live.spec.line, mid, "shift_final",
                                        inst.start_ms, inst.start_ms, inst.end_ms, result,
                                        inst, final=True))
        for line_model in self.plant.lines:
            report = self._wip_report(line_model.id, inst.start_ms, inst.end_ms)
            out += records.wip_lines(site, "shift_final", inst.start_ms, report.wip, inst)
        log.info("final KPIs of shift %s written", inst.key)
        return out

    def _publish(self, payloads: list[tuple[str, dict[str, Any]]]) -> None:
        if self.publish is None:
            return
        for topic, payload in payloads:
            self.publish(topic, json.dumps(payload, default=str).encode())

    def _trim(self, wm: int) -> None:
        keep = wm - self.rolling_ms - MINUTE_MS
        current = self.calendar.at(wm)
        if current is not None:
            keep = min(keep, current.start_ms)
        for inst in self.calendar.instances(keep - 7 * 86_400_000, wm):
            if inst.key not in self.finalized and inst.end_ms > (self.first_watermark or wm):
                keep = min(keep, inst.start_ms)
        for live in self.machines.values():
            live.trim(floor_minute(keep))


def _iso(ms: int) -> str:
    return ms_to_utc(ms).isoformat().replace("+00:00", "Z")


def _kpi(result: OeeResult, lo: int, hi: int, shift: ShiftInstance | None = None) -> dict:
    out = {"start": _iso(lo), "end": _iso(hi), **result.as_dict()}
    if shift is not None:
        out["shift"] = shift.name
        out["production_date"] = shift.date.isoformat()
    return out
