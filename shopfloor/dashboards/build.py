"""Dashboards as code -> JSON files in dashboards/ (committed; Grafana's provisioning
reads them). `render_all` is pure; `write_all` and `stale` are the file-system shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from shopfloor.dashboards import alarms, audit, health, line_flow, machine, overview
from shopfloor.dashboards.files import DASHBOARD_DIR, load_committed

__all__ = ["CATALOG", "DASHBOARD_DIR", "load_committed", "render_all", "stale", "write_all"]

CATALOG: dict[str, Callable[[], Dashboard]] = {
    "plant-overview": overview.dashboard,
    "machine-detail": machine.dashboard,
    "line-flow": line_flow.dashboard,
    "control-audit": audit.dashboard,
    "system-health": health.dashboard,
    "alarms": alarms.dashboard,
}
"""File stem -> dashboard builder, in menu order."""


def _number_panels(panels: list[dict[str, Any]], start: int = 1) -> int:
    """Give every panel (rows' nested panels included) a unique id, in order."""
    next_id = start
    for panel in panels:
        panel["id"] = next_id
        next_id = _number_panels(panel.get("panels", []), next_id + 1)
    return next_id


def render(builder: Callable[[], Dashboard]) -> dict[str, Any]:
    """One dashboard as Grafana's JSON model (plain dicts, panel ids assigned)."""
    model: dict[str, Any] = json.loads(json.dumps(builder().build(), cls=JSONEncoder))
    _number_panels(model.get("panels", []))
    return model


def to_text(model: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline (clean diffs)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text, for every dashboard in CATALOG."""
    return {f"{stem}.json": to_text(render(builder)) for stem, builder in CATALOG.items()}


def write_all(out_dir: Path = DASHBOARD_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(out_dir: Path = DASHBOARD_DIR) -> list[str]:
    """Names of JSON files that are missing or differ from a fresh build."""
    out = []
    for name, text in render_all().items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out
