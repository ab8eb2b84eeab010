"""Pure pieces of the agent: deadband, state derivation, backoff, schedule, command checks."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from shopfloor.edge.commands import check_command, extract_id
from shopfloor.edge.drivers.modbus.plan import plan_reads
from shopfloor.edge.poller import _next_tick
from shopfloor.edge.sample import DeadbandFilter
from shopfloor.edge.state import StateTracker, derive_state, offline_view
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import Command, CommandStatus
from shopfloor.shared.enums import ControlAction, MachineState
from shopfloor.shared.plant import Machine, Role
from shopfloor.shared.protocols.modbus import ModbusPoint as Point

T0 = dt.datetime(2026, 11, 25, 20, 0, tzinfo=dt.UTC)


def machine() -> Machine:
    from tests.edge.conftest import machine_spec

    return Machine.model_validate(machine_spec(5020))


def test_deadband_skips_small_changes_and_sends_heartbeat() -> None:
    point = Point(name="t", address=0, type="float32", deadband=0.5)
    flt = DeadbandFilter([point], heartbeat_polls=4)
    sent = [("t" in flt.apply({"t": v})) for v in (20.0, 20.2, 20.4, 20.6, 20.7, 20.8, 20.9, 21.0)]
    # 20.0 first; 20.2/20.4 within band; 20.6 crosses (>= 0.5 from 20.0); 20.7..20.9 within
    # band of 20.6; 21.0 is the 4th poll after 20.6 -> heartbeat (also within band).
    assert sent == [True, False, False, True, False, False, False, True]


def test_deadband_passes_points_without_band_and_resends_after_bad() -> None:
    banded = Point(name="t", address=0, type="float32", deadband=1.0)
    plain = Point(name="n", address=2)
    flt = DeadbandFilter([banded, plain])
    assert flt.apply({"t": 1.0, "n": 5}) == {"t": 1.0, "n": 5}
    assert flt.apply({"t": 1.1, "n": 5}) == {"n": 5}
    flt.forget({"t"})
    assert flt.apply({"t": 1.1}) == {"t": 1.1}


def test_decode_block_marks_nan_bad() -> None:
    f = Point(name="f", address=0, type="float32")
    n = Point(name="n", address=2)
    (block,) = plan_reads([f, n])
    values, bad = block.decoder.decode(bytes.fromhex("7fc0 0000 0007"))
    assert values == {"n": 7} and bad == {"f"}


def test_state_from_codes_product_and_work_order() -> None:
    m = machine()
    view = derive_state(m, {"state": 1, "product": 2, "work_order": "WO-1"}, None)
    assert view is not None
    assert (view.state, view.reason, view.code, view.product, view.work_order) == (
        MachineState.RUNNING,
        None,
        1,
        "B",
        "WO-1",
    )
    unmapped = derive_state(m, {"state": 99}, view)
    assert unmapped is not None and unmapped.reason == "unmapped_code" and unmapped.product == "B"
    assert derive_state(m, {"temperature": 1.0}, None) is None


def test_tracker_publishes_on_change_and_moves_since_only_on_state_change() -> None:
    m = machine()
    tracker = StateTracker()
    first = derive_state(m, {"state": 1, "product": 1}, None)
    assert tracker.update(first, T0) is not None
    assert tracker.update(derive_state(m, {"state": 1, "product": 1}, tracker.view), T0) is None
    later = T0 + dt.timedelta(seconds=5)
    assert tracker.update(derive_state(m, {"state": 1, "product": 2}, tracker.view), later)
    assert tracker.since == T0  # product change keeps since
    failed_at = T0 + dt.timedelta(seconds=7)
    payload = tracker.update(offline_view(tracker.view, "device_timeout"), later, since=failed_at)
    assert payload is not None and b'"offline"' in payload and tracker.since == failed_at


def test_backoff_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 4, 4, 4, 4]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(
    ("previous", "interval", "now", "expected"),
    [
        (10.0, 1.0, 10.2, 11.0),
        (10.0, 1.0, 12.5, 13.0),  # two ticks missed: skipped, not caught up
        (10.0, 0.5, 10.0, 10.5),
    ],
)
def test_next_tick(previous: float, interval: float, now: float, expected: float) -> None:
    assert _next_tick(previous, interval, now) == pytest.approx(expected)


def cmd(point: str, value: object, expires_in_s: float = 60,
        action: ControlAction = ControlAction.SETPOINT, role: Role | None = Role.ADMIN) -> Command:
    return Command(
        id="c1", point=point, value=value, expires_at=T0 + dt.timedelta(seconds=expires_in_s),
        control_action=action, role=role,
    )


@pytest.mark.parametrize(
    ("command", "status", "words"),
    [
        (cmd("speed_pct", 50, -1), CommandStatus.EXPIRED, "expired"),
        (cmd("nope", 1), CommandStatus.REJECTED, "unknown point"),
        (cmd("temperature", 1.0), CommandStatus.REJECTED, "not writable"),
        (cmd("speed_pct", 121), CommandStatus.REJECTED, "above max"),
        (cmd("speed_pct", 9), CommandStatus.REJECTED, "below min"),
        (cmd("speed_pct", "fast"), CommandStatus.REJECTED, "takes a uint16"),
        (cmd("speed_pct", True), CommandStatus.REJECTED, "takes a uint16"),
        (cmd("speed_pct", 50.5), CommandStatus.REJECTED, "integer"),
        (cmd("run", 1), CommandStatus.REJECTED, "takes a bool"),
        (cmd("work_order", 7), CommandStatus.REJECTED, "takes a string"),
        (cmd("speed_pct", 50, 7 * 86400), CommandStatus.REJECTED, "ahead"),
        (cmd("speed_pct", 50, role=None), CommandStatus.REJECTED, "no role"),
        (cmd("run", True), CommandStatus.REJECTED, "action_point"),
        (cmd("run", False, action=ControlAction.START), CommandStatus.REJECTED, "wrong_value"),
        (cmd("speed_pct", 50, action=ControlAction.START), CommandStatus.REJECTED, "wrong_point"),
        (cmd("work_order", "X", action=ControlAction.CHANGEOVER, role=Role.OPERATOR),
         CommandStatus.REJECTED, "forbidden"),
        (cmd("speed_pct", 50, role=Role.VIEWER), CommandStatus.REJECTED, "forbidden"),
    ],
)
def test_check_command_refusals(command: Command, status: CommandStatus, words: str) -> None:
    refusal = check_command(machine(), command, T0)
    assert refusal is not None
    assert refusal[0] is status and words in refusal[1]


@pytest.mark.parametrize(
    "command", [cmd("speed_pct", 50, role=Role.OPERATOR),
                cmd("run", True, action=ControlAction.START, role=Role.OPERATOR),
                cmd("work_order", "X", action=ControlAction.CHANGEOVER, role=Role.SUPERVISOR)]
)
def test_check_command_accepts(command: Command) -> None:
    assert check_command(machine(), command, T0) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"id": "abc", "point": 3}', "abc"),
        (b'{"point": 3}', None),
        (b"not json", None),
        (b"[1, 2]", None),
        (b'{"id": 5}', None),
    ],
)
def test_extract_id(raw: bytes, expected: str | None) -> None:
    assert extract_id(raw) == expected


def test_telemetry_payload_follows_the_contract() -> None:
    from shopfloor.edge.sample import telemetry_payload
    from shopfloor.shared.contract import Telemetry, parse

    values = {"i": -3, "u": 2**64 - 1, "f": 1.5, "b": False, "s": "WO-1"}
    message = parse(Telemetry, telemetry_payload(T0, 7, values, {"x"}))
    assert (message.seq, message.values, message.quality, message.ts) == (
        7,
        values,
        {"x": "bad"},
        T0,
    )
