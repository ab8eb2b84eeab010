"""Seq recovery at start: the last stored `_seq` per machine, read back from InfluxDB
(InfluxQL), so that a restarted collector continues loss accounting where it stopped."""

from __future__ import annotations

import logging

from shopfloor.collector.database import LineWriter
from shopfloor.collector.errors import DatabaseUnavailable
from shopfloor.shared import schema
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)


def last_seq_query(site: str) -> str:
    return (
        f"SELECT max({schema.quote_ident(schema.SEQ_FIELD)}) FROM "
        f"{schema.quote_ident(schema.TELEMETRY)} WHERE "
        f"{schema.quote_ident(schema.TAG_SITE)} = {schema.quote_string(site)} "
        f"GROUP BY {schema.quote_ident(schema.TAG_MACHINE)}"
    )


def recover_last_seq(writer: LineWriter, plant: Plant) -> dict[str, int]:
    """machine -> last seq stored; {} (with a warning) when the server cannot answer."""
    try:
        series = writer.query(last_seq_query(plant.site.id))
    except DatabaseUnavailable as exc:
        log.warning("cannot read the last stored seq per machine (%s): losses across this"
                    " restart are not counted; later gaps are", exc)
        return {}
    last: dict[str, int] = {}
    for one in series:
        machine = one.get("tags", {}).get(schema.TAG_MACHINE)
        values = one.get("values") or []
        if machine and values and values[0][1] is not None:
            last[machine] = int(values[0][1])
    log.info("recovered the last seq of %d machine stream(s) from InfluxDB", len(last))
    return last
