"""Tunable behaviour of the simulated machines, in virtual seconds. One `Behaviour`
applies to a whole simulator; each machine draws its own values from its seeded RNG."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviour:
    """Rates and durations of the machine model (all times in virtual seconds).

    Cycle time = ideal cycle time x 100 / speed % x uniform(1, 1 + cycle_jitter).
    Minor stops (jams) and breakdowns are drawn at each cycle end with probability
    cycle time / MTBF (mean running time between them).
    """

    default_cycle_time_s: float = 2.0
    """Ideal cycle time of a machine without products."""
    cycle_jitter: float = 0.08
    reject_rate_min: float = 0.005
    reject_rate_max: float = 0.04
    """Each machine's reject (scrap) rate is drawn once, uniform in [min, max]."""
    jam_mtbf_s: float = 900.0
    jam_duration_s: tuple[float, float] = (5.0, 40.0)
    breakdown_mtbf_s: float = 4 * 3600.0
    repair_s: tuple[float, float] = (120.0, 900.0)
    auto_ack_s: tuple[float, float] = (10.0, 90.0)
    """After a repair, the alarm waits for an acknowledge; a simulated operator gives it
    after this long if no one writes the alarm_ack point first."""
    setup_s: tuple[float, float] = (60.0, 300.0)
    """Duration of a changeover after a product change."""
    buffer_capacity: int = 50
    """Capacity of a buffer the line does not list in `buffer_capacity`."""
    buffer_fill: float = 0.5
    """Initial fill of each buffer (fraction of capacity)."""
    min_speed_pct: float = 1.0
    """Speed setpoints below this run at this speed (a cycle never takes forever)."""
