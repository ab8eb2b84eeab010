"""Recovery at start, read back from InfluxDB (InfluxQL): the last stored `_seq` (and
`_epoch`) per machine, so that a restarted collector continues loss accounting where it stopped, and
the last `machine_state` point per machine, so that the first state change after a
restart still writes the duration of the state it ends (durations.py)."""

from __future__ import annotations

import logging
from typing import Any

from shopfloor.collector.durations import OpenState
from shopfloor.shared import schema
from shopfloor.shared.enums import MachineState
from shopfloor.shared.influx import DatabaseUnavailable, LineWriter
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)
_STATES = {str(state) for state in MachineState}


def last_seq_query(site: str) -> str:
    """The latest telemetry row per machine (its seq and epoch belong together). The
    latest by time, not max(seq): a stray seq of 2^63-1 or an older epoch's higher seqs
    must not become the stream's position."""
    return (
        f"SELECT {schema.quote_ident(schema.SEQ_FIELD)}, "
        f"{schema.quote_ident(schema.EPOCH_FIELD)} FROM "
        f"{schema.quote_ident(schema.TELEMETRY)} WHERE "
        f"{schema.quote_ident(schema.TAG_SITE)} = {schema.quote_string(site)} "
        f"GROUP BY {schema.quote_ident(schema.TAG_MACHINE)} ORDER BY time DESC LIMIT 1"
    )


def _series(writer: LineWriter, query: str, consequence: str) -> list[dict[str, Any]]:
    """The query's series; [] (with a warning saying `consequence`) when the server
    cannot answer."""
    try:
        return writer.query(query)
    except DatabaseUnavailable as exc:
        log.warning("cannot read back from InfluxDB at start (%s): %s", exc, consequence)
        return []


def recover_last_seq(writer: LineWriter, plant: Plant) -> tuple[dict[str, int], dict[str, int]]:
    """(machine -> last seq stored, machine -> its epoch when it had one); empty (with a
    warning) when the server cannot answer."""
    series = _series(writer, last_seq_query(plant.site.id),
                     "losses across this restart are not counted; later gaps are")
    last: dict[str, int] = {}
    epochs: dict[str, int] = {}
    for machine, row in _latest_rows(series):
        seq, epoch = row.get(schema.SEQ_FIELD), row.get(schema.EPOCH_FIELD)
        if seq is not None:
            last[machine] = int(seq)
            if epoch is not None:
                epochs[machine] = int(epoch)
    log.info("recovered the last seq of %d machine stream(s) from InfluxDB", len(last))
    return last, epochs


def _latest_rows(series: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(machine, first row as a dict) per series grouped by machine (a column no point
    has is absent: read with .get)."""
    rows = []
    for one in series:
        machine = one.get("tags", {}).get(schema.TAG_MACHINE)
        values = one.get("values") or []
        if machine and values:
            rows.append((machine, dict(zip(one.get("columns", []), values[0], strict=False))))
    return rows


def last_state_query(site: str) -> str:
    """The latest machine_state row per machine: one row, so state and reason belong
    together (`last()` per field would pair a state with an older row's reason)."""
    return (
        f"SELECT {schema.quote_ident('state')}, {schema.quote_ident('reason')} FROM "
        f"{schema.quote_ident(schema.MACHINE_STATE)} WHERE "
        f"{schema.quote_ident(schema.TAG_SITE)} = {schema.quote_string(site)} "
        f"GROUP BY {schema.quote_ident(schema.TAG_MACHINE)} ORDER BY time DESC LIMIT 1"
    )


def recover_last_states(writer: LineWriter, plant: Plant) -> dict[str, OpenState]:
    """machine -> its last stored state (since = the point's time, ms); {} (with a
    warning) when the server cannot answer: then the first state change of each machine
    after this start writes no duration."""
    series = _series(writer, last_state_query(plant.site.id),
                     "the states open across this restart get no duration")
    last: dict[str, OpenState] = {}
    for machine, row in _latest_rows(series):
        if row.get("state") in _STATES:
            last[machine] = OpenState(int(row["time"]), MachineState(row["state"]),
                                      row.get("reason"))
    log.info("recovered the last state of %d machine(s) from InfluxDB", len(last))
    return last
