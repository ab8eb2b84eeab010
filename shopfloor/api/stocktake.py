"""WIP stocktakes: a physical count of a line, the anchor the WIP engine counts from
(docs/oee.md "WIP"). Stored in InfluxDB measurement `wip_anchor` (schema.WIP_ANCHOR):

    wip_anchor,site=S,line=L,buffer=_line count=42i T      # the whole line
    wip_anchor,site=S,line=L,buffer=press1 count=20i T     # buffer after station press1

all points of one stocktake at the same time T (ms). `LINE_TOTAL` ("_line") cannot be a
station id (ids start with a letter or digit). The KPI engine reads them
(`shopfloor.kpi.store.KpiStore.anchors`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from shopfloor.api.errors import Invalid
from shopfloor.kpi.store import LINE_TOTAL
from shopfloor.shared import schema
from shopfloor.shared.plant import Api, Line

TAG_BUFFER = schema.TAG_BUFFER


@dataclass(frozen=True, slots=True)
class Stocktake:
    line: str
    at: dt.datetime
    count: int
    buffers: dict[str, int] = field(default_factory=dict)

    @property
    def ts_ms(self) -> int:
        return int(self.at.timestamp() * 1000)


def check(line: Line, count: int, buffers: dict[str, int], at: dt.datetime,
          now: dt.datetime, api: Api) -> None:
    """Buffers are named by their upstream station (every station but the last) and,
    when given, must add up to the line's count; a count is taken at most
    `api.stocktake_max_age_s` ago (an older anchor would make every later WIP count from
    then) and at most `api.stocktake_max_ahead_s` ahead (clock skew)."""
    earliest = now - dt.timedelta(seconds=api.stocktake_max_age_s)
    latest = now + dt.timedelta(seconds=api.stocktake_max_ahead_s)
    if not earliest <= at <= latest:
        raise Invalid(f"at: {at.isoformat()} is not between {_iso(earliest)} "
                      f"(api.stocktake_max_age_s before now) and {_iso(latest)}", "bad_time")
    upstream = line.stations[:-1]
    for name, value in buffers.items():
        if name not in upstream:
            raise Invalid(f"no buffer after {name!r} on line {line.id}; buffers: "
                          f"{', '.join(upstream) or 'none'}", "unknown_buffer")
        if value < 0:
            raise Invalid(f"buffer {name} count must be >= 0", "out_of_range")
    if buffers and sum(buffers.values()) != count:
        raise Invalid(f"buffer counts add up to {sum(buffers.values())}, not {count}",
                      "inconsistent_count")


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_lines(site: str, take: Stocktake) -> list[str]:
    entries = {LINE_TOTAL: take.count, **take.buffers}
    out = []
    for buffer, count in entries.items():
        tags = {schema.TAG_SITE: site, schema.TAG_LINE: take.line, TAG_BUFFER: buffer}
        text = schema.line(schema.WIP_ANCHOR, tags, {"count": int(count)}, take.ts_ms)
        assert text is not None
        out.append(text)
    return out
