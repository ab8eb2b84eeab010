"""Which code a simulated machine writes to its state point: the model's (state, reason)
is looked up in the machine's own `state.codes` map from the plant file, so every code
the simulator writes is one the plant file defines.

Pure: no I/O. Lookup order for a (state, reason): the exact pair; a code of the same
state whose reason contains the wanted reason's key word; any code of the same state;
any `stopped` code; any code at all (0 if the map is empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import StateMap

# Reasons the model produces, with the words that identify them in a plant's code map.
OPERATOR_STOP = "operator_stop"
JAM = "jam"
STARVED = "starved"
BLOCKED = "blocked"
CHANGEOVER = "changeover"
MAINTENANCE = "maintenance"
_KEYWORDS = {
    OPERATOR_STOP: ("operator", "manual"),
    JAM: ("jam", "minor", "short"),
    STARVED: ("starv", "no_material", "empty"),
    BLOCKED: ("block", "full"),
    CHANGEOVER: ("change", "setup"),
    MAINTENANCE: ("mainten", "planned"),
}
_NOT_BREAKDOWN = {OPERATOR_STOP, JAM, STARVED, BLOCKED}
DEFAULT_BREAKDOWNS = ("breakdown",)


@dataclass(frozen=True)
class StateCodes:
    """A machine's code map, indexed for the model's lookups."""

    codes: dict[int, tuple[MachineState, str | None]] = field(default_factory=dict)

    @classmethod
    def from_map(cls, state_map: StateMap | None) -> StateCodes:
        if state_map is None:
            return cls()
        return cls({code: (sc.state, sc.reason) for code, sc in state_map.codes.items()})

    def code_for(self, state: MachineState, reason: str | None = None) -> int:
        """The code for (state, reason); never a code outside the map (0 if it is empty)."""
        for matches in (
            lambda s, r: s is state and r == reason,
            lambda s, r: s is state and _same_kind(r, reason),
            lambda s, r: s is state and r is None,
            lambda s, r: s is state,
            lambda s, r: s is MachineState.STOPPED,
        ):
            found = next((c for c, (s, r) in sorted(self.codes.items()) if matches(s, r)), None)
            if found is not None:
                return found
        return min(self.codes, default=0)

    def breakdown_reasons(self) -> tuple[str, ...]:
        """Reasons of `stopped` codes that are faults (not operator stop, jam, starved,
        blocked): the breakdowns the model draws from."""
        reasons = sorted(
            {
                r
                for s, r in self.codes.values()
                if s is MachineState.STOPPED and r and _kind(r) not in _NOT_BREAKDOWN
            }
        )
        return tuple(reasons) or DEFAULT_BREAKDOWNS


def _kind(reason: str | None) -> str | None:
    """The model reason a plant's reason text stands for, by key word (None if none)."""
    if reason is None:
        return None
    text = reason.lower()
    return next((k for k, words in _KEYWORDS.items() if any(w in text for w in words)), None)


def _same_kind(plant_reason: str | None, wanted: str | None) -> bool:
    return wanted is not None and _kind(plant_reason) == _kind(wanted) is not None
