"""Turning a reading into a telemetry sample (pure): deadband, payload.

Deadband: a point with `deadband > 0` is left out of a telemetry message while its
value differs from the last *published* value by less than the deadband. It is
included again when the change reaches the deadband, when its quality changes, and at
least every `HEARTBEAT_POLLS` polls, so that a quiet value still shows it is alive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydantic_core import to_json

from shopfloor.shared.contract import SCHEMA_VERSION
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.plant import Point

HEARTBEAT_POLLS = 60
"""A deadbanded point is published at least once every this many polls."""


class DeadbandFilter:
    """Remembers the last published value of each deadbanded point of one machine."""

    def __init__(self, points: Sequence[Point], heartbeat_polls: int = HEARTBEAT_POLLS) -> None:
        self._deadband = {p.name: p.deadband for p in points if p.deadband > 0}
        self._heartbeat = heartbeat_polls
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    @property
    def active(self) -> bool:
        """Whether any point has a deadband (else `apply` returns its values)."""
        return bool(self._deadband)

    def apply(self, values: dict[str, Value]) -> dict[str, Value]:
        """The values to publish (in the same order); updates what was last
        published. Only the deadbanded points are looked at (most points have none);
        without any, `values` itself."""
        if not self._deadband:
            return values
        out = dict(values)
        last, skipped, heartbeat = self._last, self._skipped, self._heartbeat
        for name, band in self._deadband.items():  # runs every poll: kept flat
            value = out.get(name)
            if value.__class__ is not float and (
                    value.__class__ is not int):  # absent, bool, text: as it is
                continue
            before = last.get(name)
            if before is None or abs(value - before) >= band \
                    or skipped.get(name, 0) + 1 >= heartbeat:
                last[name] = float(value)  # type: ignore[arg-type]
                skipped[name] = 0
            else:
                skipped[name] = skipped.get(name, 0) + 1
                del out[name]
        return out

    def forget(self, names: set[str]) -> None:
        """Points that went bad: publish them again as soon as they are good."""
        for name in names:
            self._last.pop(name, None)


_HEAD = b'{"v":%d,"ts":"' % SCHEMA_VERSION


def telemetry_payload(
    ts: dt.datetime,
    seq: int,
    values: dict[str, Value],
    bad: set[str],
    epoch: int | None = None,
) -> bytes:
    """The JSON telemetry message (contract.Telemetry) for one poll of one machine.

    Byte for byte what `Telemetry(...).to_json()` gives (a test compares both for every
    type), without building a model per sample: the values go through pydantic-core's
    own serialiser (same number and string formatting), the frame around them is fixed.
    `ts` must be UTC."""
    quality = to_json({n: "bad" for n in sorted(bad)}) if bad else b"{}"
    stream = b'","seq":%d' % seq if epoch is None else b'","seq":%d,"epoch":%d' % (seq, epoch)
    return b"".join((
        _HEAD, _iso_utc(ts), stream, b',"values":', to_json(values), b',"quality":', quality, b"}"
    ))


class _Second:
    """The last second `_iso_utc` formatted: its fields and its ISO text."""

    key: tuple[int, ...] = ()
    text = b""


def _iso_utc(ts: dt.datetime) -> bytes:
    """ISO 8601 as pydantic writes an aware UTC datetime: `...T20:00:00.123456Z`, the
    fraction left out when it is zero. The text up to the second is formatted once per
    second (the polls of one second share it), found by the second's fields (a tuple of
    six ints: a third of the cost of comparing datetimes, which makes a datetime per
    sample); `ts` must be UTC."""
    key = (ts.second, ts.minute, ts.hour, ts.day, ts.month, ts.year)
    if key != _Second.key:
        _Second.key, _Second.text = key, ts.replace(microsecond=0, tzinfo=None).isoformat().encode()
    us = ts.microsecond
    return _Second.text + b".%06dZ" % us if us else _Second.text + b"Z"
