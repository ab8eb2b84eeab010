"""A plant with webhooks pointing at real receivers, the engine, and transitions it made."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.alarms.engine import Engine, Record
from shopfloor.alarms.notify.notifier import Notifier
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import parse_plant
from tests.alarms.notify.receiver import Receiver
from tests.harness.plants import example_data

SECRET = "s3cr3t-for-the-webhook-tests"
LEAD_SECRET = "another-secret-for-the-lead"
ENV = {"OPS_HOOK_SECRET": SECRET, "LEAD_HOOK_SECRET": LEAD_SECRET}
T0 = time.time() - 3600.0
"""Event times of the transitions (an hour ago, so that `now` is after all of them)."""


def plant_with(ops: Receiver, lead: Receiver, state_dir: Path,
               ops_settings: dict[str, Any] | None = None, **settings: Any
               ) -> dict[str, Any]:
    """The example plant's data with two webhooks (ops: every alarm; lead: critical
    ones and the escalation)."""
    data = example_data()
    data["alarms"] = {"defaults": {"machine_stopped": {"after_s": 60, "clear_after_s": 10},
                                   "agent_offline": {"enabled": False}}}
    data["notifications"] = {
        "webhooks": [
            {"id": "ops", "url": ops.url, "secret_env": "OPS_HOOK_SECRET", "timeout_s": 1,
             **(ops_settings or {})},
            {"id": "lead", "url": lead.url, "secret_env": "LEAD_HOOK_SECRET",
             "severities": ["critical"]},
        ],
        "escalations": [{"after_s": 300, "to": "lead", "rules": ["machine_stopped"]}],
        "state_dir": str(state_dir), "retry_max_s": 0.5, **settings,
    }
    return data


def stopped(engine: Engine, machine: str, at: float) -> list[Record]:
    """The machine stops at `at`: the raise of machine_stopped, 60 s later."""
    since = dt.datetime.fromtimestamp(at, dt.UTC)
    engine.on_state(machine, StatePayload(ts=since, state=MachineState.STOPPED, since=since))
    return engine.tick(at + 61)


def running(engine: Engine, machine: str, at: float) -> list[Record]:
    """The machine runs again at `at`: the clear, 10 s later."""
    since = dt.datetime.fromtimestamp(at, dt.UTC)
    engine.on_state(machine, StatePayload(ts=since, state=MachineState.RUNNING, since=since))
    return engine.tick(at + 11)


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    ops, lead = Receiver(SECRET), Receiver(LEAD_SECRET)
    yield ops, lead
    ops.close()
    lead.close()


class Component:
    """The engine and a notifier as the alarm service holds them (started, stoppable)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        plant = parse_plant(data, "<test>")
        self.engine = Engine(plant, T0)
        self.notifier = Notifier(plant, lambda m, r: self.engine.instances.get((m, r)),
                                 env=ENV)  # type: ignore[arg-type]
        self.notifier.start()
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.notifier.stop()


@pytest.fixture
def component_factory(receivers: tuple[Receiver, Receiver], tmp_path: Path
                      ) -> Iterator[Any]:
    started: list[Component] = []

    def start(**settings: Any) -> Component:
        component = Component(plant_with(*receivers, tmp_path / "state", **settings))
        started.append(component)
        return component

    yield start
    for component in started:
        component.stop()
