"""Where the committed dashboard JSON files and Grafana provisioning live, and how to read
them: no Grafana SDK needed, so `verify`, `push` and `shopfloor local up` work in an
install without the `grafana` extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "dashboards"
PROVISIONING_DIR = DASHBOARD_DIR / "provisioning"


def load_committed(out_dir: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """The JSON files as they are on disk (what Grafana and `push` use), by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(out_dir.glob("*.json"))
    }
