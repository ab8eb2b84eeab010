"""The one backoff of every component: capped, jittered, restartable."""

from __future__ import annotations

import ast
import itertools
import random
from pathlib import Path

import pytest

from shopfloor.shared.backoff import Backoff


def test_delays_double_up_to_the_cap_with_equal_jitter() -> None:
    backoff = Backoff(0.2, 5.0, random.Random(7))
    delays = list(itertools.islice(backoff.delays(), 10))
    ceilings = [min(5.0, 0.2 * 2**i) for i in range(10)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_delays_restart_from_the_base() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    assert next(backoff.delays()) <= 1.0


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(2.0, 1.0)


PACKAGE = Path(__file__).resolve().parents[2] / "shopfloor"
RETRY_WORDS = ("backoff", "delay", "retry", "wait", "sleep")


SIMPLE_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return)


def _doubles(node: ast.AST) -> bool:
    """`x * 2`, `2 * x`, `x *= 2`, `2 ** n`."""
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Mult):
        operands = [node.value]
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Pow):
        operands = [node.left, node.right]
    else:
        return False
    return any(isinstance(o, ast.Constant) and o.value == 2 for o in operands)


def hand_written_backoffs(package: Path) -> list[str]:
    """Statements that double something and name a delay, outside shared/backoff.py."""
    out = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        if where == "shared/backoff.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, SIMPLE_STATEMENTS) and any(map(_doubles, ast.walk(node)))
                    and any(word in ast.unparse(node).lower() for word in RETRY_WORDS)):
                out.append((node.lineno, where))
    return [f"{where}:{line}" for line, where in sorted(out, key=lambda x: (x[1], x[0]))]


def test_no_second_backoff_is_written_by_hand() -> None:
    """Every retry loop takes its delays from shared/backoff.py (docs/architecture.md)."""
    assert hand_written_backoffs(PACKAGE) == []


def test_the_backoff_check_sees_doubling_delays(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "backoff_s = 0.5\nbackoff_s = min(backoff_s * 2, 10.0)\ndelay *= 2\n"
        "wait = base * 2 ** tries\nwidth = count * 2\nawait asyncio.sleep(2 * pause)\n")
    assert hand_written_backoffs(tmp_path) == ["a.py:2", "a.py:3", "a.py:4", "a.py:6"]
