"""Machine state (pure): from the polled values to the retained state payload.

The state point's code maps to a state and reason (`machines.X.state.codes`); the
product point's code maps to a product id (`machines.X.products`); the work order is
the `control.work_order` point's value. A device that failed
`agent.offline_after_failures` polls in a row is `offline` (reason: the failure kind),
with `since` = the time of its first failed poll; it leaves `offline` on the first
poll it answers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import Machine


@dataclass(frozen=True, slots=True)
class StateView:
    """What the state topic says, apart from timestamps."""

    state: MachineState
    reason: str | None = None
    code: int | None = None
    product: str | None = None
    work_order: str | None = None


def derive_state(
    machine: Machine, values: dict[str, Value], previous: StateView | None
) -> StateView | None:
    """The machine's state from one poll's values; None when the state point was not
    read in this poll and nothing else changed (product / work order keep the previous
    value when their point was not read)."""
    code: int | None
    if machine.state is not None and isinstance(values.get(machine.state.point), int):
        code = int(values[machine.state.point])
        mapped = machine.state.codes.get(code, machine.state.unmapped)
        state, reason = mapped.state, mapped.reason
    elif previous is None:
        return None
    else:
        state, reason, code = previous.state, previous.reason, previous.code
    view = previous or _EMPTY
    # One view built per poll, no intermediate copies: this runs for every poll.
    return StateView(state, reason, code, _product(machine, values, view),
                     _work_order(machine, values, view))


_EMPTY = StateView(MachineState.OFFLINE)
"""Stands for "no previous view" when reading the previous product / work order."""


def _product(machine: Machine, values: dict[str, Value], view: StateView) -> str | None:
    name = machine.control.product
    if name is None or name not in values:
        return view.product
    code = values[name]
    found = next((p.id for p in machine.products if p.code == code), None)
    return found if found is not None else (str(code) if code is not None else None)


def _work_order(machine: Machine, values: dict[str, Value], view: StateView) -> str | None:
    name = machine.control.work_order
    if name is None or name not in values:
        return view.work_order
    text = str(values[name]).strip()
    return text or None


def offline_view(previous: StateView | None, reason: str) -> StateView:
    """The state shown for a device that stopped answering (keeps product/work order)."""
    return StateView(
        MachineState.OFFLINE,
        reason=reason,
        product=previous.product if previous else None,
        work_order=previous.work_order if previous else None,
    )


class StateTracker:
    """Decides when to publish the retained state: on any change of the view.
    `since` moves only when state, reason or code change (not on product / work order)."""

    def __init__(self, last: StateView | None = None, since: dt.datetime | None = None) -> None:
        self.view = last
        self.since = since

    def update(
        self, view: StateView | None, ts: dt.datetime, since: dt.datetime | None = None
    ) -> bytes | None:
        """The state payload to publish, or None when nothing changed."""
        if view is None or view == self.view:
            return None
        old = self.view
        if old is None or (old.state, old.reason, old.code) != (view.state, view.reason, view.code):
            self.since = since or ts
        self.view = view
        assert self.since is not None
        return state_payload(view, ts, self.since)


def state_payload(view: StateView, ts: dt.datetime, since: dt.datetime) -> bytes:
    return StatePayload(
        ts=ts,
        state=view.state,
        reason=view.reason,
        code=view.code,
        product=view.product,
        work_order=view.work_order,
        since=since,
    ).to_json()
