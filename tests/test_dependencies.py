"""The dependency rule (docs/architecture.md), checked on the source like an import
linter: every `import` / `from ... import` anywhere in a module (inside functions and
`if TYPE_CHECKING:` blocks too) must stay within what its package may use."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "shopfloor"

MAY_IMPORT = {
    "shared": {"shopfloor.shared"},
    "kpi": {"shopfloor.kpi", "shopfloor.shared"},
    **{component: {f"shopfloor.{component}", "shopfloor.shared", "shopfloor.kpi"}
       for component in ("edge", "collector", "api", "dashboards", "sim", "alarms")},
}
"""package -> the shopfloor packages its modules may import (besides third parties)."""
EVERYONE = {"shopfloor.__version__"}


def shopfloor_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "shopfloor":  # `from shopfloor import api`
                found += [(node.lineno, f"shopfloor.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == "shopfloor"]


def violations(package: str) -> list[str]:
    allowed = MAY_IMPORT[package] | EVERYONE
    out = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for line, name in shopfloor_imports(path):
            if not any(name == a or name.startswith(f"{a}.") for a in allowed):
                out.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_what_the_rule_allows(package):
    assert violations(package) == []


def test_the_check_sees_every_form_of_import(tmp_path, monkeypatch):
    """The checker itself: a module importing the collector in each way is caught."""
    pkg = tmp_path / "shopfloor" / "kpi"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import shopfloor.collector.sinks\n"
        "from shopfloor import api\n"
        "from shopfloor.shared import plant\n"
        "if TYPE_CHECKING:\n    from shopfloor.edge.agent import Agent\n"
        "def f():\n    from shopfloor.collector.service import Collector\n"
        "from . import sibling\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "shopfloor")
    assert [v.split(" imports ")[1] for v in violations("kpi")] == [
        "shopfloor.collector.sinks", "shopfloor.api", "shopfloor.edge.agent",
        "shopfloor.collector.service",
    ]


PROTOCOL_LIBRARIES = {"modbus": {"pymodbus"}, "opcua": {"asyncua"}}
"""A field protocol's client library: imported by its edge driver (and the simulator)."""


def all_imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (absolute), third parties included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def protocol_leaks(package: Path) -> list[str]:
    """Imports of a field protocol outside its own driver folder, in the edge: the edge's
    core (poller, stream, outbox, commands, agent...) speaks to devices only through
    `edge/drivers/base.py`; a driver folder is imported by no other part of the edge."""
    drivers = package / "edge" / "drivers"
    protocols = sorted(p.name for p in drivers.iterdir() if (p / "__init__.py").exists())
    out = []
    for path in sorted((package / "edge").rglob("*.py")):
        own = next((p for p in protocols if (drivers / p) in path.parents), None)
        for line, name in all_imports(path):
            for protocol in protocols:
                if protocol == own:
                    continue
                private = (f"shopfloor.edge.drivers.{protocol}",
                           f"shopfloor.shared.protocols.{protocol}",
                           *PROTOCOL_LIBRARIES.get(protocol, ()))
                if protocol == "modbus":
                    private += ("shopfloor.shared.codec",)  # the register codec
                if any(name == p or name.startswith(f"{p}.") for p in private):
                    out.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return out


def test_field_protocols_stay_in_their_driver_folders():
    assert protocol_leaks(PACKAGE) == []


def test_the_protocol_check_sees_a_leak(tmp_path):
    """The checker itself: the poller importing Modbus is caught, the driver is not."""
    edge = tmp_path / "shopfloor" / "edge"
    (edge / "drivers" / "modbus").mkdir(parents=True)
    (edge / "drivers" / "modbus" / "__init__.py").write_text("import pymodbus\n")
    (edge / "poller.py").write_text(
        "def f():\n    from shopfloor.edge.drivers.modbus.bus import Bus\n"
        "import pymodbus.client\nfrom shopfloor.shared.codec import decode\n"
        "from shopfloor.shared.protocols.modbus import ModbusPoint\n"
    )
    assert sorted(v.split(" imports ")[1] for v in protocol_leaks(tmp_path / "shopfloor")) == [
        "pymodbus.client", "shopfloor.edge.drivers.modbus.bus", "shopfloor.shared.codec",
        "shopfloor.shared.protocols.modbus",
    ]


KNOWN_COLLISIONS = {"Batch", "Change", "Collector", "Engine", "Episode", "Event", "MachineLive",
                    "Outcome", "Product", "Reason", "Refusal", "_Model"}
"""Class names still defined in more than one module (to rename in turn). The list may
only shrink: a new collision fails the test below."""


def test_no_new_class_name_collides():
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    collisions = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert {n: p for n, p in collisions.items() if n not in KNOWN_COLLISIONS} == {}
