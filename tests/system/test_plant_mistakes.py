"""Plant files with every kind of mistake, one per row: each is refused (PlantFileError,
never a traceback), and its error names the path of the mistake in the file. Extends
tests/shared/test_plant.py (which checks several mistakes at once) with a table."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.shared.test_plant import EXAMPLE, errors_of
from tests.system.report import record

Data = dict[str, Any]


def _set(path: str, value: Any) -> Callable[[Data], None]:
    """A mutation setting `a.b[2].c` (dots, list indices) to value."""
    def apply(data: Data) -> None:
        keys: list[Any] = []
        for part in path.split("."):
            name, _, rest = part.partition("[")
            keys.append(name)
            keys += [int(i) for i in rest.rstrip("]").split("][") if i] if rest else []
        target = data
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return apply


def _drop(path: str) -> Callable[[Data], None]:
    def apply(data: Data) -> None:
        *head, last = path.split(".")
        target = data
        for k in head:
            target = target[k]
        del target[last]
    return apply


P = "machines.press1"
# (kind of mistake, mutation, path the error must name, words in the message)
MISTAKES: list[tuple[str, Callable[[Data], None], str, str]] = [
    ("wrong schema version", _set("version", 2), "version", "1"),
    ("missing required section", _drop("lines"), "lines", "required"),
    ("missing required field", _drop(f"{P}.connection"), f"{P}.connection", "required"),
    ("unknown key (typo)", _set(f"{P}.pollinterval", 1), f"{P}.pollinterval", "unknown key"),
    ("wrong type", _set("site.id", ["a"]), "site.id", "string"),
    ("bad identifier", _set("site.id", "has space"), "site.id", "pattern"),
    ("empty machines", _set("machines", {}), "machines", "at least 1"),
    ("port out of range", _set("broker.port", 70000), "broker.port", "65535"),
    ("keepalive too short", _set("broker.keepalive_s", 1), "broker.keepalive_s", "5"),
    ("negative poll interval", _set(f"{P}.poll_interval_s", -1), f"{P}.poll_interval_s", "0"),
    ("Modbus unit id out of range", _set(f"{P}.connection.device_id", 300),
     f"{P}.connection.device_id", "247"),
    ("RTU without serial settings", _set(f"{P}.connection.transport", "rtu"),
     f"{P}.connection", "serial"),
    ("unknown register table", _set(f"{P}.points[0].table", "eeprom"), f"{P}.points[0].table",
     "holding"),
    ("unknown data type", _set(f"{P}.points[0].type", "uint17"), f"{P}.points[0].type",
     "uint16"),
    ("unknown byte order", _set(f"{P}.points[3].order", "XYZW"), f"{P}.points[3].order",
     "ABCD"),
    ("register address out of range", _set(f"{P}.points[0].address", 65536),
     f"{P}.points[0].address", "65535"),
    ("overlapping registers", _set(f"{P}.points[1].address", 0), f"{P}.points[1].address",
     "overlaps"),
    ("duplicate point name", _set(f"{P}.points[1].name", "state"), f"{P}.points", "state"),
    ("min above max", _set(f"{P}.points[4].min", 1000), f"{P}.points[4]", "max"),
    ("unknown machine state", _set(f"{P}.state.codes", {1: {"state": "dancing"}}),
     f"{P}.state.codes[1].state", "running"),
    ("state point unknown", _set(f"{P}.state.point", "nope"), f"{P}.state.point", "nope"),
    ("signed counter", _set(f"{P}.points[1].type", "int32"), f"{P}.counters.total", "uint"),
    ("control point not writable", _set(f"{P}.control.speed", "temperature"),
     f"{P}.control.speed", "writable"),
    ("duplicate product id", _set(f"{P}.products[1].id", "A"), f"{P}.products", "'A'"),
    ("machine on unknown line", _set(f"{P}.line", "line9"), f"{P}.line", "line9"),
    ("station not a machine", _set("lines[0].stations[0]", "ghost"), "lines[0].stations[0]",
     "ghost"),
    ("buffer after the last station", _set("lines[0].buffer_capacity", {"pack1": 5}),
     "lines[0].buffer_capacity.pack1", "upstream"),
    ("two machines on one device", _set("machines.weld1.connection.device_id", 1),
     "machines.weld1.connection", "same device"),
    ("agent polls unknown machine", _set("agents[0].machines[0]", "ghost"),
     "agents[0].machines[0]", "ghost"),
    ("outbox bound too small", _set("agents[0].queue.max_samples", 10),
     "agents[0].queue.max_samples", "100"),
    ("unknown queue policy", _set("agents[0].queue.when_full", "panic"),
     "agents[0].queue.when_full", "drop_oldest"),
    ("bad time of day", _set("calendar.shifts[0].start", "25:00"), "calendar.shifts[0].start",
     "time"),
    ("shift of zero length", _set("calendar.shifts[0].end", "06:00"), "calendar.shifts[0].end",
     "same time"),
    ("unknown weekday", _set("calendar.shifts[0].days", ["funday"]),
     "calendar.shifts[0].days[0]", "mon"),
    ("unknown time zone", _set("site.timezone", "Mars/Olympus"), "site.timezone", "Mars"),
    ("API key not hashed", _set("api.keys", [{"name": "k", "hash": "secret", "role": "admin"}]),
     "api.keys[0].hash", "pattern"),
    ("unknown API role", _set("api.keys", [{"name": "k", "hash": "sha256:" + "0" * 64,
                                            "role": "root"}]), "api.keys[0].role", "viewer"),
    ("API key on unknown line", _set("api.keys", [{"name": "k", "hash": "sha256:" + "0" * 64,
                                                   "role": "viewer", "lines": ["line9"]}]),
     "api.keys[0].lines[0]", "line9"),
    ("collector batch of zero", _set("collector.batch_max_values", 0),
     "collector.batch_max_values", "1"),
]


@pytest.mark.parametrize(("kind", "mutate", "path", "words"), MISTAKES,
                         ids=[m[0] for m in MISTAKES])
def test_mistake_is_refused_naming_its_path(kind: str, mutate: Callable[[Data], None],
                                            path: str, words: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    mutate(data)
    errors = errors_of(copy.deepcopy(data))
    messages = {p: m for p, m in errors}
    record("hostile", target="plant file", mistake=kind, refused=True,
           errors=[f"{p}: {m}" for p, m in errors][:3])
    assert path in messages, errors
    assert words.lower() in messages[path].lower(), errors
    assert all(p for p, _ in errors), errors  # every error names a path
