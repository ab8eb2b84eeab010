"""Results of the system tests, for docs/reliability.md: each scenario appends one JSON
object (one line) to the file named by $SHOPFLOOR_RELIABILITY_OUT, when it is set
(`./dev.sh bench reliability` sets it, runs these tests and renders the page)."""

from __future__ import annotations

import json
import os
from typing import Any

ENV = "SHOPFLOOR_RELIABILITY_OUT"


def record(kind: str, **fields: Any) -> None:
    """Append one result (kind = "fault" or "hostile") to the results file, if any."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"kind": kind, **fields}, default=str) + "\n")
