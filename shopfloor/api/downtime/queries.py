"""InfluxQL of the downtime events: finished downtime states (`state_duration`) and the
stored parts (`downtime`), by site and optionally line or machine, over [lo, hi) in ms.
Identifiers are schema constants, values go through `quote_string`."""

from __future__ import annotations

from shopfloor.api.downtime.events import DOWNTIME_STATES
from shopfloor.shared import schema
from shopfloor.shared.schema import quote_ident, quote_string


def _scope(site: str, line: str | None, machine: str | None) -> str:
    parts = [f"{quote_ident(schema.TAG_SITE)} = {quote_string(site)}"]
    if line is not None:
        parts.append(f"{quote_ident(schema.TAG_LINE)} = {quote_string(line)}")
    if machine is not None:
        parts.append(f"{quote_ident(schema.TAG_MACHINE)} = {quote_string(machine)}")
    return " AND ".join(parts)


def finished(site: str, line: str | None, machine: str | None, lo_ms: int, hi_ms: int) -> str:
    """Finished stopped/idle/offline states starting in [lo, hi), tags as columns."""
    states = " OR ".join(f"{quote_ident(schema.TAG_STATE)} = {quote_string(str(s))}"
                         for s in sorted(DOWNTIME_STATES))
    return (f"SELECT {quote_ident(schema.DURATION_FIELD)} FROM "
            f"{quote_ident(schema.STATE_DURATION)} WHERE {_scope(site, line, machine)} "
            f"AND ({states}) AND time >= {lo_ms}ms AND time < {hi_ms}ms GROUP BY "
            f"{quote_ident(schema.TAG_LINE)}, {quote_ident(schema.TAG_MACHINE)}, "
            f"{quote_ident(schema.TAG_STATE)}, {quote_ident(schema.TAG_REASON)}")


def stored(site: str, line: str | None, machine: str | None, lo_ms: int, hi_ms: int,
           event: str | None = None) -> str:
    """Stored part points in [lo, hi) (of one event when given), tags as columns."""
    where = _scope(site, line, machine)
    if event is not None:
        where += f" AND \"event\" = {quote_string(event)}"
    return (f"SELECT * FROM {quote_ident(schema.DOWNTIME)} WHERE {where} "
            f"AND time >= {lo_ms}ms AND time < {hi_ms}ms")
