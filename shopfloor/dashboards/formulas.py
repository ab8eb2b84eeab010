"""InfluxQL expressions of the KPIs over any window, from the additive per-minute
aggregates in `oee_rollup` (docs/oee.md): ratios are computed from sums, never averaged.
Times in the rollup are in ms, ideal-time sums in s; every expression below is in
seconds or a ratio (0..1)."""

from __future__ import annotations

from shopfloor.shared import schema

ROLLUP = schema.OEE_ROLLUP


def s(field: str) -> str:
    return f'sum("{field}")'


PBT_OBS_MS = f'({s("pot_ms")} - {s("pdot_ms")} - {s("unk_ms")})'
"""Observed planned busy time: POT - PDOT - UNK (ms)."""
RT_MS = f'({s("apt_ms")} + {s("l3_ms")})'
"""Run time: APT + minor stops (ms)."""

OEE = f'{s("fpt_s")} * 1000 / {PBT_OBS_MS}'
AVAILABILITY = f"{RT_MS} / {PBT_OBS_MS}"
PERFORMANCE = f'{s("nrt_s")} * 1000 / {RT_MS}'
QUALITY = f'{s("fpt_s")} / {s("nrt_s")}'

PRODUCED = f'{s("pq")} + {s("pq_unattributed")} + {s("pq_unplanned")}'
SCRAP = f'{s("sq")} + {s("sq_unattributed")} + {s("sq_unplanned")}'


def whole_parts(expression: str) -> str:
    """A count of parts as shown: whole parts. Rollups hold fractions (a counter pair cut
    by a minute boundary is split in proportion) so that they add up; like the API and
    MQTT, a panel rounds only on the way out. Rates (parts per hour) stay unrounded."""
    return f"round({expression})"

SIX_LOSSES_S = {
    "L1 unplanned stops": f'{s("l1_ms")} / 1000',
    "L2 setup": f'{s("aust_ms")} / 1000',
    "L3 minor stops": f'{s("l3_ms")} / 1000',
    "L4 speed loss": f'{s("apt_ms")} / 1000 - {s("nrt_s")}',
    "L5 quality loss": s("l5_s"),
    "L6 startup loss": s("l6_s"),
}

MTTR_S = f'{s("l1_stopped_ms")} / 1000 / {s("fe")}'
MTBF_S = f'({s("apt_ms")} + {s("aust_ms")}) / 1000 / {s("fe")}'


CURRENT_WINDOW = "shift"
"""`oee`/`wip` snapshots of the current shift instance (tag window; docs/oee.md)."""
ROLLING_WINDOW = "rolling"
FRESH = "time > now() - 10m"
"""Snapshots are rewritten every collector kpi period (10 s by default); older than this
means the collector is not computing them: show nothing rather than stale figures."""


def window_is(window: str) -> str:
    return f"\"{schema.TAG_WINDOW}\" = '{window}'"


def select(*columns: tuple[str, str]) -> str:
    """`SELECT expr AS "name", ...` for (name, expression) pairs."""
    return "SELECT " + ", ".join(f'{expr} AS "{name}"' for name, expr in columns)
