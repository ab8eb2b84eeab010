"""Run one benchmark: `python -m benchmarks NAME [ARGS...]` (see `python -m benchmarks`).
Each benchmark is a module `benchmarks/NAME.py` with a `main(argv: list[str]) -> None`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not m.name.startswith("_"))


def run() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print("usage: ./dev.sh bench NAME [ARGS...]\nbenchmarks: " + ", ".join(names))
        sys.exit(0 if len(sys.argv) < 2 else 2)
    module = importlib.import_module(f"benchmarks.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    run()
