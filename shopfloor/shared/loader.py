"""Load and validate a plant file: every error at once, each with its path in the file."""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from shopfloor.shared.errors import PlantFileError
from shopfloor.shared.plant import Plant, Point
from shopfloor.shared.plant_checks import check_plant
from shopfloor.shared.protocols import PROTOCOLS

# libyaml's safe loader is ~10x faster on plant files of 1,000 machines; same semantics.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")
R = TypeVar("R")


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('machines', 'press1', 'points', 2, 'address') -> 'machines.press1.points[2].address'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pydantic_issues(exc: ValidationError) -> list[tuple[str, str]]:
    issues = []
    for err in exc.errors(include_url=False):
        # Drop pydantic's internal tags for function validators ("function-after[...]").
        loc = _without_protocol_tags(
            tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        )
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (typo?)"
        elif err["type"] == "union_tag_invalid":
            loc, message = (*loc, "protocol"), _unknown_protocol(err.get("ctx") or {})
        issues.append((format_loc(loc), message))
    return _once_per_machine(issues)


def _once_per_machine(issues: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An unknown connection protocol is inherited by the machine's points: say it once,
    at the connection, not again at each point."""
    unknown = {(path.removesuffix(".connection.protocol"), message) for path, message in issues
               if path.endswith(".connection.protocol")}
    return [(path, message) for path, message in issues
            if not (path.endswith(".protocol") and ".points[" in path
                    and (path.split(".points[")[0], message) in unknown)]


def _without_protocol_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A connection's or point's protocol union puts the protocol's tag in the path
    (`connection.modbus.host`, `points[2].modbus.address`): the file has no such key."""
    out: list[int | str] = []
    for part in loc:
        after_union = bool(out) and (out[-1] == "connection" or (
            isinstance(out[-1], int) and len(out) > 1 and out[-2] == "points"))
        if after_union and part in PROTOCOLS:
            continue
        out.append(part)
    return tuple(out)


def _unknown_protocol(ctx: dict[str, Any]) -> str:
    return f"unknown protocol {ctx.get('tag')!r} (known: {', '.join(PROTOCOLS)})"


def parse_plant(data: Any, source: str = "<plant>") -> Plant:
    """Validate already-parsed YAML/JSON data; raise PlantFileError listing every problem."""
    if not isinstance(data, dict):
        raise PlantFileError(source, [("", "the plant file must be a mapping (key: value)")])
    try:
        plant = Plant.model_validate(data, context={"points": {}})  # shares equal maps
    except ValidationError as exc:
        raise PlantFileError(source, _pydantic_issues(exc)) from None
    issues = check_plant(plant)
    if issues:
        raise PlantFileError(source, issues)
    _share_equal_parts(plant)
    return plant


def _share_equal_parts(plant: Plant) -> None:
    """Machines of one model have equal register maps: let them hold the same (frozen,
    equal) Point objects instead of a copy each (~30 KB per machine of 20 points, which
    counts at thousands of machines in one edge agent). Likewise pydantic's set of the
    fields the file gave (`model_fields_set`, ~730 bytes each) of every machine and its
    connection: one set per distinct value instead of two per machine (5.7 of 10.3 MiB of
    machine models at 4,000 machines). Sharing is safe: the models are frozen, and
    pydantic copies the set before a `model_copy(update=...)` adds to it."""
    points: dict[Point, Point] = {}
    fields_sets: dict[frozenset[str], set[str]] = {}
    for machine in plant.machines.values():
        machine.points[:] = [points.setdefault(point, point) for point in machine.points]
        for model in (machine, machine.connection):
            given = model.model_fields_set
            shared = fields_sets.setdefault(frozenset(given), given)
            object.__setattr__(model, "__pydantic_fields_set__", shared)


def load_plant(path: str | Path, *, isolated: bool = False) -> Plant:
    """Read, parse and validate a plant file (YAML).

    `isolated`: do all of it in a short-lived child process and take back only the
    validated model (pickled: the models that machines share stay shared). Parsing and
    validating leave garbage behind that a long-running process (the edge agent) would
    keep as fragmented heap for its whole life: the YAML parser's nodes (~130 MB for a
    1,000-machine file), the file's text, the plain data and validation's temporaries.
    Measured at 4,000 machines: the model alone adds 14 MiB to the process, the model
    validated in the process from data parsed in a child 48 MiB (docs/edge.md)."""
    source = str(path)
    return _in_child(_load, source) if isolated else _load(source)


def _load(source: str) -> Plant:
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlantFileError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}"
        raise PlantFileError(source, [("", problem)]) from None
    del text
    if isinstance(data, dict):
        apply_env_secrets(data)
    return parse_plant(data, source)


def _in_child(function: Callable[[T], R], argument: T) -> R:
    """function(argument) in a forked child process (fork: nothing to import again) that
    dies with this one: an agent stopped while it parses leaves nothing behind. What it
    raises is raised here (pickled, like its result)."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        return pool.submit(function, argument).result()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """In the child: the kernel sends SIGKILL when the parent dies (Linux; elsewhere the
    child ends when its work does). A parent already gone ends it at once."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


ENV_SECRETS = {
    "SHOPFLOOR_BROKER_USERNAME": ("broker", "username"),
    "SHOPFLOOR_BROKER_PASSWORD": ("broker", "password"),
    "SHOPFLOOR_BROKER_TLS_CA_FILE": ("broker", "tls_ca_file"),
    "SHOPFLOOR_BROKER_TLS_CERT_FILE": ("broker", "tls_cert_file"),
    "SHOPFLOOR_BROKER_TLS_KEY_FILE": ("broker", "tls_key_file"),
    "SHOPFLOOR_DATABASE_USERNAME": ("database", "username"),
    "SHOPFLOOR_DATABASE_PASSWORD": ("database", "password"),
    "SHOPFLOOR_DATABASE_TOKEN": ("database", "token"),
}
"""Credentials that the environment sets over the plant file, so that one plant file
serves every box (each with its own MQTT user and client certificate, see deploy/) and no
secret sits in it."""


def apply_env_secrets(data: dict[str, Any]) -> None:
    """Set broker/database credentials from ENV_SECRETS variables that are set."""
    for name, (section, key) in ENV_SECRETS.items():
        value = os.environ.get(name)
        if value and isinstance(data.setdefault(section, {}), dict):
            data[section][key] = value


def plant_json_schema() -> str:
    """The JSON Schema of the plant file, for editor completion."""
    return json.dumps(Plant.model_json_schema(), indent=2)
