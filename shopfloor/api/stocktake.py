"""WIP stocktakes: a physical count of a line, the anchor the WIP engine counts from
(docs/oee.md "WIP"). Stored in InfluxDB measurement `wip_anchor` (schema.WIP_ANCHOR):

    wip_anchor,site=S,line=L,buffer=_line count=42i T      # the whole line
    wip_anchor,site=S,line=L,buffer=press1 count=20i T     # buffer after station press1

all points of one stocktake at the same time T (ms). `LINE_TOTAL` ("_line") cannot be a
station id (ids start with a letter or digit). The WIP engine reads the latest stocktake
at or before a moment with `latest_query` and `parse_latest` (pure, no I/O here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from shopfloor.api.errors import Invalid
from shopfloor.shared import schema
from shopfloor.shared.plant import Line
from shopfloor.shared.schema import quote_ident, quote_string

LINE_TOTAL = "_line"
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


MAX_AHEAD = dt.timedelta(minutes=5)  # clock skew allowed for a stocktake's time
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def check(line: Line, count: int, buffers: dict[str, int], at: dt.datetime,
          now: dt.datetime) -> None:
    """Buffers are named by their upstream station (every station but the last) and,
    when given, must add up to the line's count; a count cannot be taken in the future."""
    if not EARLIEST <= at <= now + MAX_AHEAD:
        raise Invalid(f"at must lie between {EARLIEST:%Y-%m-%d} and now", "bad_time")
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


def to_lines(site: str, take: Stocktake) -> list[str]:
    entries = {LINE_TOTAL: take.count, **take.buffers}
    out = []
    for buffer, count in entries.items():
        tags = {schema.TAG_SITE: site, schema.TAG_LINE: take.line, TAG_BUFFER: buffer}
        text = schema.line(schema.WIP_ANCHOR, tags, {"count": int(count)}, take.ts_ms)
        assert text is not None
        out.append(text)
    return out


def latest_query(site: str, line: str, at_ms: int) -> str:
    """The latest stocktake at or before `at_ms` (every buffer's newest point; the caller
    keeps those with the newest time: see `parse_latest`)."""
    return (f"SELECT last({quote_ident('count')}) AS {quote_ident('count')} FROM "
            f"{quote_ident(schema.WIP_ANCHOR)} WHERE {quote_ident(schema.TAG_SITE)} = "
            f"{quote_string(site)} AND {quote_ident(schema.TAG_LINE)} = {quote_string(line)} "
            f"AND time <= {int(at_ms)}ms GROUP BY {quote_ident(TAG_BUFFER)}")


def parse_latest(series: list[dict[str, Any]]) -> tuple[int, int, dict[str, int]] | None:
    """(ts_ms, line count, buffers) of the newest stocktake, from `latest_query`'s series
    (queried with epoch=ms); None when there is none."""
    points = []
    for s in series:
        buffer = (s.get("tags") or {}).get(TAG_BUFFER, "")
        for ts, count in s.get("values", []):
            points.append((int(ts), buffer, int(count)))
    if not points:
        return None
    newest = max(ts for ts, _, _ in points)
    current = {b: c for ts, b, c in points if ts == newest}
    total = current.pop(LINE_TOTAL, sum(current.values()))
    return newest, total, current
