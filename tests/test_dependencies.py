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
