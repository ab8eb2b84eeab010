"""The rule engine: one instance per machine x enabled rule (and per collector x site
rule), fed with the machine state, agent status and KPI messages and the downtime and
collector stats rows the KPIs and dashboards use, advanced on a clock tick. Pure (no I/O, no
clock of its own): every method takes event times and returns the `Record`s of what
changed, which the component publishes (retained) and stores.

After a restart the engine is restored from the retained alarm payloads (`restore`)
before it sees any state: a state it saw before then changes nothing (same condition,
same `since`), so no transition is repeated, and one it missed is applied on its own
event time, so none is lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shopfloor.alarms import inputs
from shopfloor.alarms.debounce import Change, Debounce, Edge, advance, step
from shopfloor.alarms.inputs import LineKpi, MachineKpi, StatsPoint, StoredDowntime
from shopfloor.alarms.lifecycle import Alarm, Event, Transition, apply, expire
from shopfloor.shared.alarm_rules import SITE_LINE, Rule, RuleKind, rules_for, site_rules
from shopfloor.shared.contract import AgentStatus, AlarmPayload, AlarmTransition, StatePayload
from shopfloor.shared.enums import EventKind
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import event_id, qualifies, tree_of
from shopfloor.shared.schema import to_ms

SILENT_PERIODS = 3
"""An agent whose status has not come for this many status periods counts as offline."""


@dataclass(slots=True)
class Instance:
    line: str
    machine: str
    rule: Rule
    debounce: Debounce
    alarm: Alarm


@dataclass(frozen=True, slots=True)
class Record:
    """What changed: the instance after the transition."""

    instance: Instance
    transition: Transition


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class Engine:
    def __init__(self, plant: Plant, started_at: float) -> None:
        self.site = plant.site.id
        self.instances: dict[tuple[str, RuleKind], Instance] = {}
        upstream = {s for line in plant.lines for s in line.stations[:-1]}
        for machine_id, machine in plant.machines.items():
            for kind, rule in rules_for(plant.alarms, machine.line, machine_id).items():
                if kind is RuleKind.BUFFER_WIP and machine_id not in upstream:
                    continue  # no buffer after this machine
                self.instances[machine_id, kind] = Instance(
                    machine.line, machine_id, rule, Debounce(), Alarm())
        self._site_rules = site_rules(plant.alarms)
        self._dead_letters: dict[str, int] = {}  # collector -> count at its last point
        self._states: dict[str, StatePayload] = {}  # machine -> its latest state
        self._trees = {line.id: tree_of(plant.downtime, line.id, plant.collector.minor_stop_s)
                       for line in plant.lines}
        self._agent_machines = {a.id: list(a.machines) for a in plant.agents}
        self._silent_after = {a.id: SILENT_PERIODS * a.status_period_s for a in plant.agents}
        self._last_status = {a.id: started_at for a in plant.agents}

    def restore(self, payload: AlarmPayload) -> None:
        """Take back an instance's state from its retained payload (at start only)."""
        if payload.line == SITE_LINE:
            instance = self._site_instance(payload.machine, payload.rule)
        else:
            instance = self.instances.get((payload.machine, payload.rule))
        if instance is None:
            return  # a rule since switched off
        instance.debounce = Debounce(payload.condition, payload.condition_since.timestamp(),
                                     payload.raised)
        until = payload.shelved_until
        instance.alarm = Alarm(payload.state, payload.raised,
                               None if until is None else until.timestamp(),
                               payload.last.at.timestamp() if payload.last else 0.0,
                               payload.last_command_id)

    def on_state(self, machine: str, state: StatePayload) -> list[Record]:
        """The machine's condition, and its maintenance mode: entering it takes every
        alarm of the machine out of service (before the state's own condition), leaving
        it puts them back (after), both at the state's `since`. The state is also kept
        for downtime_unclassified (the ongoing stop)."""
        last = self._states.get(machine)
        if last is None or state.since >= last.since:
            self._states[machine] = state
        at = state.since.timestamp()
        records = self._service(machine, state.maintenance, at) if state.maintenance else []
        instance = self.instances.get((machine, RuleKind.MACHINE_STOPPED))
        if instance is not None:
            records += self._observe(instance, state.state in instance.rule.states, at)
        if not state.maintenance:
            records += self._service(machine, False, at)
        return records

    def _service(self, machine: str, out: bool, at: float) -> list[Record]:
        kind = EventKind.REMOVE_FROM_SERVICE if out else EventKind.RETURN_TO_SERVICE
        records: list[Record] = []
        for rule in RuleKind:
            instance = self.instances.get((machine, rule))
            if instance is not None:
                instance.alarm, transition = apply(instance.alarm, Event(kind, at))
                if transition is not None:
                    records.append(Record(instance, transition))
        return records

    def on_status(self, status: AgentStatus, received_at: float) -> list[Record]:
        if status.agent not in self._agent_machines:
            return []
        at = status.ts.timestamp() if status.ts else received_at
        self._last_status[status.agent] = max(self._last_status[status.agent], at)
        return self._agent_condition(status.agent, not status.online, at)

    def on_kpi(self, machine: str, kpi: MachineKpi) -> list[Record]:
        """A machine's retained KPIs: coverage_low and shift_kpi_low, at the KPI's `ts`."""
        at = kpi.ts.timestamp()
        records: list[Record] = []
        for kind, condition in ((RuleKind.COVERAGE_LOW, inputs.coverage_low),
                                (RuleKind.SHIFT_KPI_LOW, inputs.shift_kpi_low)):
            instance = self.instances.get((machine, kind))
            if instance is not None:
                records += self._observe(instance, condition(instance.rule, kpi), at)
        return records

    def on_line_kpi(self, kpi: LineKpi) -> list[Record]:
        """A line's retained WIP: buffer_wip of each buffer's upstream station."""
        if kpi.wip is None:
            return []
        records: list[Record] = []
        for buffer in kpi.wip.buffers:
            instance = self.instances.get((buffer.upstream, RuleKind.BUFFER_WIP))
            if instance is not None:
                records += self._observe(
                    instance, inputs.buffer_outside(instance.rule, buffer.wip),
                    kpi.ts.timestamp())
        return records

    def on_downtime(self, stored: StoredDowntime, now: float) -> list[Record]:
        """Unclassified downtime, as read at `now`: the stored unclassified parts within
        the rule's lookback and the ongoing stop once it is an event (it lasted the
        line's threshold) that neither its PLC reason nor a person classified. The
        condition holds from the oldest one's start (or from when it was last seen
        absent, if later: an event the API wrote late does not reach back before what
        was already decided); it is gone at `now`."""
        records: list[Record] = []
        for (machine, kind), instance in self.instances.items():
            if kind is not RuleKind.DOWNTIME_UNCLASSIFIED:
                continue
            starts = [t for t in stored.unclassified.get(machine, ())
                      if t >= now - instance.rule.lookback_s]
            ongoing = self._ongoing_unclassified(instance, stored.classified, now)
            if ongoing is not None:
                starts.append(ongoing)
            at = max(min(starts), instance.debounce.since) if starts else now
            records += self._observe(instance, bool(starts), at)
        return records

    def _ongoing_unclassified(self, instance: Instance, classified: frozenset[str],
                              now: float) -> float | None:
        """The start of the machine's ongoing stop if it is an unclassified event."""
        state = self._states.get(instance.machine)
        if state is None:
            return None
        start_ms = to_ms(state.since)
        tree = self._trees[instance.line]
        if not qualifies(state.state, now - start_ms / 1000, tree) \
                or tree.initial(state.reason) is not None \
                or event_id(instance.machine, start_ms) in classified:
            return None
        return start_ms / 1000

    def on_stats(self, collector: str, point: StatsPoint) -> list[Record]:
        """One collector_stats point (in time order per collector): collector_lag and
        dead_letters of that collector, at the point's time."""
        increase = inputs.dead_letter_increase(self._dead_letters.get(collector),
                                               point.dead_letters)
        self._dead_letters[collector] = point.dead_letters
        records: list[Record] = []
        lag = self._site_instance(collector, RuleKind.COLLECTOR_LAG)
        if lag is not None:
            late = point.lag_p99_s is not None and point.lag_p99_s > lag.rule.max_lag_s
            records += self._observe(lag, late, point.at)
        dead = self._site_instance(collector, RuleKind.DEAD_LETTERS)
        if dead is not None:
            records += self._observe(dead, increase >= dead.rule.min_increase, point.at)
        return records

    def _site_instance(self, collector: str, kind: RuleKind) -> Instance | None:
        """The instance of a site rule for one collector, made when first needed."""
        rule = self._site_rules.get(kind)
        if rule is None:
            return None
        instance = self.instances.get((collector, kind))
        if instance is None:
            instance = Instance(SITE_LINE, collector, rule, Debounce(), Alarm())
            self.instances[collector, kind] = instance
        return instance

    def tick(self, now: float) -> list[Record]:
        """Silent agents, on-/off-delays and shelves that ended by `now`."""
        records: list[Record] = []
        for agent, last in self._last_status.items():
            silent_since = last + self._silent_after[agent]
            if now >= silent_since:
                records += self._agent_condition(agent, True, silent_since)
        for instance in self.instances.values():
            instance.debounce, change = advance(instance.rule, instance.debounce, now)
            records += self._changes(instance, [change] if change else [])
            instance.alarm, transition = expire(instance.alarm, now)
            if transition is not None:
                records.append(Record(instance, transition))
        return records

    def act(self, machine: str, kind: RuleKind, event: Event) -> Record | None:
        """A person's action (ack, shelve, ...); LifecycleError when not allowed."""
        instance = self.instances[machine, kind]
        instance.alarm, transition = apply(instance.alarm, event)
        return None if transition is None else Record(instance, transition)

    def _agent_condition(self, agent: str, offline: bool, at: float) -> list[Record]:
        records: list[Record] = []
        for machine in self._agent_machines[agent]:
            instance = self.instances.get((machine, RuleKind.AGENT_OFFLINE))
            if instance is not None:
                records += self._observe(instance, offline, at)
        return records

    def _observe(self, instance: Instance, condition: bool, at: float) -> list[Record]:
        before = instance.debounce
        instance.debounce, changes = step(instance.rule, before, condition, at)
        return self._changes(instance, changes)

    def _changes(self, instance: Instance, changes: list[Change]) -> list[Record]:
        records = []
        for change in changes:
            kind = EventKind.RAISE if change.edge is Edge.RAISE else EventKind.CLEAR
            instance.alarm, transition = apply(instance.alarm, Event(kind, change.at))
            if transition is not None:
                records.append(Record(instance, transition))
        return records


def payload_of(site: str, instance: Instance, transition: Transition | None,
               now: float) -> AlarmPayload:
    last = None if transition is None else AlarmTransition(
        kind=transition.kind, at=_ts(transition.at), by=transition.by,
        from_state=transition.from_state, to_state=transition.to_state,
        comment=transition.comment, command_id=transition.command_id)
    return AlarmPayload(
        site=site, line=instance.line, machine=instance.machine, rule=instance.rule.kind,
        severity=instance.rule.severity, state=instance.alarm.state,
        condition=instance.debounce.condition,
        condition_since=_ts(instance.debounce.since), raised=instance.debounce.active,
        shelved_until=(None if instance.alarm.shelved_until is None
                       else _ts(instance.alarm.shelved_until)), last=last,
        last_command_id=instance.alarm.command_id, ts=_ts(now))

