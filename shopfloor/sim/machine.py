"""The pure model of one simulated machine: a discrete-event state machine advanced on
virtual time that the caller passes in (no clock, no sockets, its own seeded RNG).

Phases: CYCLE (producing one part), STARVED (upstream buffer empty), BLOCKED (finished
part, downstream buffer full), JAM (minor stop), REPAIR (breakdown being repaired),
AWAIT_ACK (repaired, alarm waiting for acknowledge), SETUP (changeover after a product
change), HALTED (run off or maintenance on). `Line` (line.py) owns the buffers and calls
`step` at each machine's `due` time in global time order.

Controls (written over Modbus): run, speed_pct, product, maintenance, work_order, and
alarm acknowledge. The category shown on the state point is derived in `state()`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from shopfloor.shared.enums import MachineState
from shopfloor.sim import codes as reasons
from shopfloor.sim.params import Behaviour
from shopfloor.sim.signals import Signals
from shopfloor.sim.spec import SimMachineSpec

INF = math.inf


class Phase(StrEnum):
    CYCLE = "cycle"
    STARVED = "starved"
    BLOCKED = "blocked"
    JAM = "jam"
    REPAIR = "repair"
    AWAIT_ACK = "await_ack"
    SETUP = "setup"
    HALTED = "halted"


_LOAD = {
    Phase.CYCLE: 1.0,
    Phase.STARVED: 0.25,
    Phase.BLOCKED: 0.25,
    Phase.SETUP: 0.3,
    Phase.AWAIT_ACK: 0.1,
    Phase.JAM: 0.1,
    Phase.REPAIR: 0.02,
    Phase.HALTED: 0.02,
}


@dataclass
class Buffer:
    """Parts waiting between two stations."""

    capacity: int
    count: int = 0

    @property
    def full(self) -> bool:
        return self.count >= self.capacity


@dataclass
class Controls:
    """Setpoints as last written (engineering values)."""

    run: bool = True
    speed_pct: float = 100.0
    product: int | None = None
    maintenance: bool = False
    work_order: str = ""


class MachineModel:
    """One machine. `due` is the virtual time (s) of its next own event (inf: waiting)."""

    def __init__(
        self, spec: SimMachineSpec, behaviour: Behaviour, rng: random.Random, start_s: float
    ) -> None:
        self.spec = spec
        self.behaviour = behaviour
        self.rng = rng
        self.upstream: Buffer | None = None
        self.downstream: Buffer | None = None
        self.controls = Controls(
            speed_pct=spec.clamp_speed(100.0),
            product=spec.first_product,
            work_order=f"WO-{rng.randrange(100000, 999999)}",
        )
        self.reject_rate = rng.uniform(behaviour.reject_rate_min, behaviour.reject_rate_max)
        self.total = rng.randrange(0, min(1 << spec.total_bits, 1_000_000))
        self.reject = rng.randrange(0, min(1 << spec.reject_bits, 10_000))
        self.signals = Signals.draw(rng, start_s)
        self.phase = Phase.HALTED
        self.due = INF
        self.since_s = start_s
        self.holding_part = False
        self.finished_part = False
        self.fault: str | None = None
        self.repaired_at = -INF
        self.setup_left_s = 0.0
        self.last_cycle_s = 0.0
        self.changes = 0
        """Incremented at every event, so the I/O shell knows when to re-encode."""
        self._start(start_s)

    # ----- queries -------------------------------------------------------------
    def state(self) -> tuple[MachineState, str | None]:
        """The (category, reason) the machine shows now."""
        if self.controls.maintenance:
            return MachineState.PLANNED_STOP, reasons.MAINTENANCE
        if not self.controls.run:
            return MachineState.STOPPED, reasons.OPERATOR_STOP
        return _PHASE_STATE.get(self.phase, (MachineState.STOPPED, self.fault))  # type: ignore[return-value]

    def state_code(self) -> int:
        state, reason = self.state()
        return self.spec.codes.code_for(state, reason)

    def alarm_code(self) -> int:
        """The state code of the active fault, 0 when there is none."""
        if self.fault is None:
            return 0
        return self.spec.codes.code_for(MachineState.STOPPED, self.fault)

    @property
    def ideal_cycle_s(self) -> float:
        product = self.controls.product
        return self.spec.cycle_times_s.get(
            product if product is not None else -1, self.behaviour.default_cycle_time_s
        )

    # ----- events --------------------------------------------------------------
    def _start(self, now_s: float) -> None:
        self._try_cycle(now_s)
        if self.phase is Phase.CYCLE:  # desynchronise machines: start mid-cycle
            self.due = now_s + self.rng.uniform(0.0, self.last_cycle_s)

    def step(self, now_s: float) -> None:
        """Handle the event due at `now_s` (the end of the current phase). A jam is
        cleared by itself; a halted machine forgets its jam."""
        phase = self.phase
        if phase is Phase.CYCLE:
            self._finish_cycle(now_s)
        elif phase is Phase.REPAIR:
            self.repaired_at = now_s
            low, high = self.behaviour.auto_ack_s
            self._enter(Phase.AWAIT_ACK, now_s, now_s + self.rng.uniform(low, high))
        elif phase is Phase.SETUP:
            self.setup_left_s = 0.0
            self._resume(now_s)
        elif phase in (Phase.AWAIT_ACK, Phase.JAM):
            self.fault = None  # the simulated operator acknowledged / cleared the jam
            self._resume(now_s)

    def wake(self, now_s: float) -> bool:
        """Retry a machine waiting on a buffer; True when it changed phase."""
        if self.phase is Phase.STARVED and self.upstream and self.upstream.count > 0:
            self._try_cycle(now_s)
            return True
        if self.phase is Phase.BLOCKED and self.downstream and not self.downstream.full:
            self._push(now_s)
            self._try_cycle(now_s)
            return True
        return False

    def _enter(self, phase: Phase, now_s: float, due: float = INF) -> None:
        self.phase = phase
        self.due = due
        self.since_s = now_s
        self.changes += 1
        self.signals.set_load(now_s, _LOAD[phase])

    def _halted(self) -> bool:
        return self.controls.maintenance or not self.controls.run

    def _try_cycle(self, now_s: float) -> None:
        """Start a cycle if a part is at hand (or can be taken from upstream)."""
        if self._halted():
            self._enter(Phase.HALTED, now_s)
            return
        if not self.holding_part:
            if self.upstream is not None and self.upstream.count == 0:
                self._enter(Phase.STARVED, now_s)
                return
            if self.upstream is not None:
                self.upstream.count -= 1
            self.holding_part = True
        low = 1.0
        high = 1.0 + self.behaviour.cycle_jitter
        speed = max(self.controls.speed_pct, self.behaviour.min_speed_pct)
        self.last_cycle_s = self.ideal_cycle_s * 100.0 / speed * self.rng.uniform(low, high)
        self._enter(Phase.CYCLE, now_s, now_s + self.last_cycle_s)

    def _finish_cycle(self, now_s: float) -> None:
        self.holding_part = False
        self.total = (self.total + 1) % (1 << self.spec.total_bits)
        if self.rng.random() < self.reject_rate:
            self.reject = (self.reject + 1) % (1 << self.spec.reject_bits)
        else:
            self.finished_part = True
        if self.finished_part and self.downstream is not None and self.downstream.full:
            self._enter(Phase.BLOCKED, now_s)
            return
        self._push(now_s)
        self._after_cycle(now_s)

    def _push(self, now_s: float) -> None:
        if self.finished_part and self.downstream is not None:
            self.downstream.count += 1
        self.finished_part = False

    def _after_cycle(self, now_s: float) -> None:
        """Roll for a breakdown or a minor stop, else start the next cycle."""
        b = self.behaviour
        if self.rng.random() < self.last_cycle_s / b.breakdown_mtbf_s:
            self.fault = self.rng.choice(self.spec.codes.breakdown_reasons())
            repair = self.rng.uniform(*b.repair_s)
            self._enter(Phase.REPAIR, now_s, now_s + repair)
        elif self.rng.random() < self.last_cycle_s / b.jam_mtbf_s:
            self._enter(Phase.JAM, now_s, now_s + self.rng.uniform(*b.jam_duration_s))
        else:
            self._try_cycle(now_s)

    # ----- controls ------------------------------------------------------------
    def set_run(self, now_s: float, run: bool) -> None:
        """Run on/off. Off aborts the cycle in progress (the part stays in the machine)."""
        if run == self.controls.run:
            return
        self.controls.run = run
        self._halt_or_resume(now_s)

    def set_maintenance(self, now_s: float, on: bool) -> None:
        """Maintenance on: planned stop; off: back to what the machine was doing."""
        if on == self.controls.maintenance:
            return
        self.controls.maintenance = on
        self._halt_or_resume(now_s)

    def set_speed(self, now_s: float, speed_pct: float) -> None:
        """New speed setpoint (%); it applies from the next cycle on."""
        self.controls.speed_pct = float(speed_pct)
        self.changes += 1

    def set_work_order(self, now_s: float, work_order: str) -> None:
        self.controls.work_order = work_order
        self.changes += 1

    def set_product(self, now_s: float, product: int) -> None:
        """Product change: a changeover (SETUP) of a drawn duration, then running."""
        if product == self.controls.product:
            return
        self.controls.product = product
        self.setup_left_s = self.rng.uniform(*self.behaviour.setup_s)
        if self.phase is Phase.HALTED:
            self.changes += 1
            return
        if self.phase in (Phase.REPAIR, Phase.AWAIT_ACK):
            self.changes += 1  # the changeover starts once the fault is cleared
            return
        self._enter(Phase.SETUP, now_s, now_s + self.setup_left_s)

    def acknowledge(self, now_s: float) -> bool:
        """Alarm acknowledge: clears a repaired fault at once (and restarts the machine
        unless it is halted). A fault still under repair is not cleared (returns False)."""
        if self.phase is Phase.HALTED and self.fault is not None and now_s >= self.repaired_at:
            self.fault = None
            self.changes += 1
            return True
        if self.phase is not Phase.AWAIT_ACK:
            return False
        self.fault = None
        self._resume(now_s)
        return True

    def _halt_or_resume(self, now_s: float) -> None:
        if self._halted():
            if self.phase is Phase.SETUP:
                self.setup_left_s = max(0.0, self.due - now_s)
            if self.phase is Phase.REPAIR:
                self.repaired_at = self.due  # the repair goes on while halted
            self._enter(Phase.HALTED, now_s)
        elif self.phase is Phase.HALTED:
            self._resume(now_s)

    def _resume(self, now_s: float) -> None:
        """Leave HALTED/AWAIT_ACK: an unrepaired fault first, then a pending setup."""
        if self.fault is not None and self.phase is Phase.HALTED:
            if now_s < self.repaired_at:
                self._enter(Phase.REPAIR, now_s, self.repaired_at)
            else:
                ack_s = self.rng.uniform(*self.behaviour.auto_ack_s)
                self._enter(Phase.AWAIT_ACK, now_s, now_s + ack_s)
            return
        if self.setup_left_s > 0:
            self._enter(Phase.SETUP, now_s, now_s + self.setup_left_s)
            return
        if self.finished_part and self.downstream is not None and self.downstream.full:
            self._enter(Phase.BLOCKED, now_s)
            return
        self._push(now_s)
        self._try_cycle(now_s)


_PHASE_STATE: dict[Phase, tuple[MachineState, str | None]] = {
    Phase.CYCLE: (MachineState.RUNNING, None),
    Phase.STARVED: (MachineState.IDLE, reasons.STARVED),
    Phase.BLOCKED: (MachineState.IDLE, reasons.BLOCKED),
    Phase.JAM: (MachineState.STOPPED, reasons.JAM),
    Phase.SETUP: (MachineState.SETUP, reasons.CHANGEOVER),
    Phase.HALTED: (MachineState.STOPPED, reasons.OPERATOR_STOP),
}
