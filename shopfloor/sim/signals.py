"""Synthetic analogue signals of a simulated machine: electrical power, energy and
temperature as exact functions of virtual time and the machine's load history.

Pure and independent of how often they are sampled: energy integrates the mean power of
each load segment exactly; temperature follows a first-order lag towards a load-dependent
target; the small noise on top is a hash of (machine salt, whole second), not a draw from
an RNG, so sampling more or less often never changes the machine's random sequence.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

AMBIENT_C = 22.0
THERMAL_TAU_S = 600.0
_MASK64 = (1 << 64) - 1


def noise(salt: int, second: int) -> float:
    """A deterministic pseudo-random number in [-1, 1) for (salt, second)."""
    x = ((salt ^ (second * 0x9E3779B97F4A7C15)) * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 29
    return (x / 2**63) - 1.0


@dataclass
class Signals:
    """Power (kW), energy (kWh) and temperature (degC) of one machine. `load` is 0..1:
    1 while producing, lower while idle, near 0 while stopped."""

    idle_kw: float
    rated_kw: float
    temp_rise_c: float
    salt: int
    since_s: float
    load: float = 0.0
    energy_kwh: float = 0.0
    temp_c: float = AMBIENT_C

    @classmethod
    def draw(cls, rng: random.Random, start_s: float) -> Signals:
        """A machine with its own ratings, drawn from its RNG."""
        return cls(
            idle_kw=rng.uniform(0.3, 1.5),
            rated_kw=rng.uniform(5.0, 30.0),
            temp_rise_c=rng.uniform(15.0, 45.0),
            salt=rng.getrandbits(63),
            since_s=start_s,
            energy_kwh=rng.uniform(0.0, 50_000.0),
            temp_c=AMBIENT_C + rng.uniform(0.0, 10.0),
        )

    def mean_power_kw(self, load: float | None = None) -> float:
        load = self.load if load is None else load
        return self.idle_kw + (self.rated_kw - self.idle_kw) * load

    def _target_c(self) -> float:
        return AMBIENT_C + self.temp_rise_c * self.load

    def set_load(self, now_s: float, load: float) -> None:
        """Close the current load segment at `now_s` and start one at `load`."""
        if load == self.load:
            return
        self.energy_kwh = self.energy_at(now_s)
        self.temp_c = self._lagged_temp(now_s)
        self.since_s = max(now_s, self.since_s)
        self.load = load

    def energy_at(self, now_s: float) -> float:
        """Energy counter (kWh) at `now_s` (not before the current segment's start)."""
        hours = max(0.0, now_s - self.since_s) / 3600.0
        return self.energy_kwh + self.mean_power_kw() * hours

    def _lagged_temp(self, now_s: float) -> float:
        target = self._target_c()
        decay = math.exp(-max(0.0, now_s - self.since_s) / THERMAL_TAU_S)
        return target + (self.temp_c - target) * decay

    def temperature_at(self, now_s: float) -> float:
        """Temperature (degC) with +-0.15 degC measurement noise."""
        return self._lagged_temp(now_s) + 0.15 * noise(self.salt, int(now_s))

    def power_at(self, now_s: float) -> float:
        """Electrical power (kW) with +-3 % noise while loaded."""
        wobble = 0.03 * self.mean_power_kw() * noise(self.salt + 1, int(now_s))
        return max(0.0, self.mean_power_kw() + wobble)
