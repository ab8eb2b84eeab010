"""Downtime classifications in the KPIs: time an operator classified as `planned` moves
to planned downtime (PDOT), as `setup` to setup (AUST, L2); `unplanned` (and
unclassified) stays what the state says (L1/L3). Pure: `apply` cuts a machine's segments
at the classified parts' bounds and marks the stop pieces inside them.

Classifications come from the API's `downtime` measurement (`KpiStore.classified`). Only
stop states (stopped, idle) and `offline` are re-attributed: a classification never turns
running or setup time into something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from shopfloor.kpi.timeline import STOPS, Segment
from shopfloor.shared.enums import MachineState
from shopfloor.shared.reasons import Loss

_MOVABLE = (*STOPS, MachineState.OFFLINE)


@dataclass(frozen=True, slots=True)
class Classified:
    """[start_ms, end_ms) of a machine classified with `loss` (planned or setup)."""

    start_ms: int
    end_ms: int
    loss: Loss


def apply(segs: list[Segment], spans: Sequence[Classified]) -> list[Segment]:
    """`segs` with every stop or offline piece inside a span cut out and marked with the
    span's loss (`Segment.loss`); other segments untouched. Only the first piece of an
    episode keeps `episode_start`, so FE and minor stops are not counted twice."""
    wanted = sorted((s for s in spans if s.loss in (Loss.PLANNED, Loss.SETUP)
                     and s.start_ms < s.end_ms), key=lambda s: s.start_ms)
    if not wanted:
        return segs
    out: list[Segment] = []
    for seg in segs:
        if seg.state not in _MOVABLE:
            out.append(seg)
            continue
        out.extend(_cut(seg, wanted))
    return out


def _cut(seg: Segment, spans: Iterable[Classified]) -> list[Segment]:
    bounds = {seg.start_ms, seg.end_ms}
    for span in spans:
        bounds.update(t for t in (span.start_ms, span.end_ms) if seg.start_ms < t < seg.end_ms)
    edges = sorted(bounds)
    pieces = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        loss = next((s.loss for s in spans if s.start_ms <= lo < s.end_ms), None)
        pieces.append(replace(seg, start_ms=lo, end_ms=hi, loss=str(loss) if loss else None,
                              episode_start=seg.episode_start and lo == seg.start_ms))
    return pieces
