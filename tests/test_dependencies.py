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


def all_imports(path: Path, with_names: bool = False) -> list[tuple[int, str]]:
    """Every module a file imports (absolute), third parties included; `with_names`: also
    every `module.name` it imports from one (so that `from shopfloor.shared.protocols.
    modbus import codec` names the codec)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if with_names:
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
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
        "import pymodbus.client\nfrom shopfloor.shared.protocols.modbus.codec import decode\n"
        "from shopfloor.shared.protocols.modbus import ModbusPoint\n"
    )
    assert sorted(v.split(" imports ")[1] for v in protocol_leaks(tmp_path / "shopfloor")) == [
        "pymodbus.client", "shopfloor.edge.drivers.modbus.bus",
        "shopfloor.shared.protocols.modbus", "shopfloor.shared.protocols.modbus.codec",
    ]


MODBUS_ONLY = ("shopfloor.shared.protocols.modbus.codec", "shopfloor.shared.protocols.modbus.enums",
               "pymodbus")
"""Modbus-only code: the register codec (byte and word orders, register counts), Modbus's
enums (tables, byte orders, transports) and the Modbus library."""
MODBUS_HOMES = ("shared/protocols/modbus/", "edge/drivers/modbus/", "sim/")
"""Where Modbus-only code may be used: Modbus's own folders, and the simulator (it serves
Modbus devices)."""


def modbus_leaks(package: Path) -> list[str]:
    """Imports of Modbus-only code anywhere in the package outside MODBUS_HOMES: the
    protocol-neutral parts (plant model, contract, collector, API, KPIs, the edge's core)
    and any other protocol never see registers."""
    out = []
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).as_posix().startswith(MODBUS_HOMES):
            continue
        for line, name in all_imports(path, with_names=True):
            if any(name == m or name.startswith(f"{m}.") for m in MODBUS_ONLY):
                out.append(f"{path.relative_to(package.parent)}:{line} imports {name}")
    return out


def test_modbus_only_code_stays_in_the_modbus_folders_and_the_simulator():
    assert modbus_leaks(PACKAGE) == []
    from shopfloor.shared import enums
    assert not {"Table", "ByteOrder", "Transport"} & set(vars(enums))


def test_the_modbus_check_sees_every_leak(tmp_path):
    """The checker itself: the collector importing the codec or Modbus's enums in any
    form is caught; the simulator and the Modbus folders are not."""
    package = tmp_path / "shopfloor"
    for folder in ("collector", "sim", "shared/protocols/modbus", "shared/protocols/opcua"):
        (package / folder).mkdir(parents=True)
    uses = ("from shopfloor.shared.protocols.modbus.codec import decode\n"
            "from shopfloor.shared.protocols.modbus import enums\n"
            "def f():\n    import pymodbus.client\n")
    for module in ("collector/encode.py", "sim/registers.py", "shared/protocols/modbus/x.py",
                   "shared/protocols/opcua/y.py"):
        (package / module).write_text(uses)
    leaks = modbus_leaks(package)
    assert {leak.split(":")[0] for leak in leaks} == {
        "shopfloor/collector/encode.py", "shopfloor/shared/protocols/opcua/y.py"}
    assert sorted({leak.split(" imports ")[1] for leak in leaks}) == [
        "pymodbus.client", "shopfloor.shared.protocols.modbus.codec",
        "shopfloor.shared.protocols.modbus.codec.decode",
        "shopfloor.shared.protocols.modbus.enums"]


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


MQTT_FOUNDATION = "shared/mqtt.py"
PAHO_CLIENT_MODULE = "paho.mqtt.client"
CONNECTION_SETTINGS = {"connect", "connect_async", "connect_srv", "username_pw_set", "tls_set",
                       "tls_set_context", "tls_insecure_set", "will_set", "will_clear",
                       "reconnect_delay_set", "max_inflight_messages_set", "loop_start",
                       "loop_forever"}
"""paho client methods that set how a component meets the broker (credentials, TLS, will,
session, reconnect rhythm): only the foundation calls them."""


def _paho_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names bound to paho's Client class, names bound to the paho.mqtt.client module)."""
    classes, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == PAHO_CLIENT_MODULE:
            classes |= {a.asname or a.name for a in node.names if a.name == "Client"}
        elif isinstance(node, ast.ImportFrom) and node.module == "paho.mqtt":
            modules |= {a.asname or a.name for a in node.names if a.name == "client"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == PAHO_CLIENT_MODULE and a.asname}
    return classes, modules


def _names_a_class(node: ast.expr, classes: set[str], modules: set[str]) -> bool:
    if isinstance(node, ast.Name):
        return node.id in classes
    if isinstance(node, ast.Attribute) and node.attr == "Client":
        return ast.unparse(node.value) in modules | {PAHO_CLIENT_MODULE}
    return False


def mqtt_violations(package: Path) -> list[str]:
    """Who constructs a paho client (paho's `Client` or any subclass of it in the
    package) or sets its connection, other than the foundation."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(package.rglob("*.py"))}
    subclasses: set[str] = set()
    grew = True
    while grew:  # subclasses of subclasses, across modules
        grew = False
        for tree in trees.values():
            classes, modules = _paho_names(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.ClassDef) and node.name not in subclasses
                        and any(_names_a_class(b, classes | subclasses, modules)
                                for b in node.bases)):
                    subclasses.add(node.name)
                    grew = True
    out = []
    for path, tree in trees.items():
        where = str(path.relative_to(package))
        if where == MQTT_FOUNDATION:
            continue
        classes, modules = _paho_names(tree)
        uses_paho = bool(classes or modules) or any(
            isinstance(n, ast.ImportFrom) and (n.module or "").startswith("paho")
            for n in ast.walk(tree))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _names_a_class(node.func, classes | subclasses, modules):
                out.append(f"{where}:{node.lineno} constructs a paho client")
            elif (uses_paho and isinstance(node.func, ast.Attribute)
                  and node.func.attr in CONNECTION_SETTINGS):
                out.append(f"{where}:{node.lineno} calls {node.func.attr}")
    return out


def test_only_the_mqtt_foundation_builds_and_connects_paho_clients():
    """docs/architecture.md, "MQTT connections": one place sets client id, credentials,
    TLS, session, will and reconnect rhythm for every component."""
    assert mqtt_violations(PACKAGE) == []


def test_the_mqtt_check_sees_every_way_to_build_a_client(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "mqtt.py").write_text(
        "from paho.mqtt.client import Client\nclass Base(Client): ...\nc = Client()\n")
    (tmp_path / "a.py").write_text(
        "import paho.mqtt.client as mqtt\n"
        "from paho.mqtt.client import Client as PahoClient\n"
        "import paho.mqtt.client\n"
        "c1 = mqtt.Client()\nc2 = PahoClient()\nc3 = paho.mqtt.client.Client()\n"
        "class Fast(mqtt.Client): ...\n"
        "c4 = Fast()\n"
        "c1.tls_set()\nc1.username_pw_set('u')\n"
    )
    (tmp_path / "b.py").write_text(
        "from shared.mqtt import Base\nfrom paho.mqtt.enums import MQTTErrorCode\n"
        "class Faster(Base): ...\nx = Faster()\nimport sqlite3\n")
    (tmp_path / "c.py").write_text("import sqlite3\nsqlite3.connect(':memory:')\n")
    found = mqtt_violations(tmp_path)
    assert found == [
        "a.py:4 constructs a paho client", "a.py:5 constructs a paho client",
        "a.py:6 constructs a paho client", "a.py:8 constructs a paho client",
        "a.py:9 calls tls_set", "a.py:10 calls username_pw_set",
        "b.py:4 constructs a paho client",
    ]
