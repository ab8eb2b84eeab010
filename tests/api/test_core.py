"""Pure parts of the API, tested directly: plant-file checks of control values (with
hypothesis), downtime episodes, InfluxQL building, idempotency, keys, settings."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.api import control, queries
from shopfloor.api.config import settings_from_plant
from shopfloor.api.control import Action
from shopfloor.api.episodes import Change, downtime
from shopfloor.api.errors import ConfigError, Conflict, Forbidden, Invalid, TooManyRequests
from shopfloor.api.idempotency import IdempotencyStore, check_key, fingerprint
from shopfloor.api.live import LiveView
from shopfloor.api.security import Principal, authenticate, hash_key, new_key
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import ApiKey, Plant, Role
from tests.harness.plants import EXAMPLE

PLANT = load_plant(EXAMPLE)
PRESS = PLANT.machines["press1"]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@given(st.integers(-1000, 1000))
def test_speed_setpoint_accepted_exactly_within_min_max(value: int) -> None:
    if 10 <= value <= 120:
        assert control.write(PRESS, "speed_pct", value).value == value
    else:
        with pytest.raises(Invalid) as err:
            control.write(PRESS, "speed_pct", value)
        assert err.value.code == "out_of_range"


@given(st.one_of(st.booleans(), st.text(max_size=3), st.floats(allow_nan=True).filter(
    lambda f: f != int(f) if f == f and abs(f) != float("inf") else True)))
def test_non_integer_values_refused_for_integer_points(value: object) -> None:
    with pytest.raises(Invalid) as err:
        control.write(PRESS, "speed_pct", value)  # type: ignore[arg-type]
    assert err.value.code == "wrong_type"


def test_control_plans() -> None:
    assert control.plan(PRESS, Action.START)[0] == control.WriteRequest("run", True)
    assert control.plan(PRESS, Action.MAINTENANCE_OFF)[0].value is False
    changeover = control.plan_changeover(PRESS, "C", "WO-1")
    assert [(w.point, w.value) for w in changeover] == [("product", 3), ("work_order", "WO-1")]
    with pytest.raises(Invalid):
        control.plan_changeover(PRESS, 9, None)
    with pytest.raises(Invalid) as err:
        control.write(PRESS, "run", 1)
    assert err.value.code == "wrong_type"
    bare = PRESS.model_copy(update={"control": PRESS.control.model_copy(update={"run": None})})
    with pytest.raises(Invalid) as err:
        control.plan(bare, Action.STOP)
    assert err.value.code == "not_supported"


def test_maintenance_interlock() -> None:
    operator = Principal("op", Role.OPERATOR)
    start = control.WriteRequest("run", True)
    with pytest.raises(Conflict):
        control.check_rules(operator, PRESS, Action.START, start, True)
    control.check_rules(operator, PRESS, Action.STOP, control.WriteRequest("run", False), True)
    assert control.check_rules(operator, PRESS, Action.START, start, False).action is Action.START
    control.check_rules(Principal("m", Role.MAINTENANCE), PRESS, Action.START, start, True)
    control.check_rules(Principal("a", Role.ADMIN), PRESS, Action.START, start, True)


def test_setpoint_of_an_action_point_is_that_action() -> None:
    admin, operator = Principal("a", Role.ADMIN), Principal("op", Role.OPERATOR)
    for point, value in [("run", True), ("maintenance", False), ("product", 2),
                         ("alarm_ack", True), ("work_order", "W")]:
        with pytest.raises(Invalid) as err:
            control.check_rules(admin, PRESS, Action.SETPOINT,
                                control.WriteRequest(point, value), False)
        assert err.value.code == "action_point"
    speed = control.WriteRequest("speed_pct", 50)
    assert control.check_rules(operator, PRESS, Action.SETPOINT, speed, True).action \
        is Action.SETPOINT
    points = [p.model_copy(update={"free_setpoint": p.name in ("run", "maintenance")})
              for p in PRESS.points]
    lax = PRESS.model_copy(update={"points": points})
    run = control.WriteRequest("run", True)
    assert control.check_rules(operator, lax, Action.SETPOINT, run, False).action is Action.START
    with pytest.raises(Conflict):
        control.check_rules(operator, lax, Action.SETPOINT, run, True)
    with pytest.raises(Forbidden):
        control.check_rules(operator, lax, Action.SETPOINT,
                            control.WriteRequest("maintenance", False), False)


def _at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_downtime_episodes_cut_to_window_and_merged() -> None:
    changes = [Change(_at(5), "running", None), Change(_at(20), "idle", "starved"),
               Change(_at(25), "idle", "starved"), Change(_at(30), "setup", "changeover")]
    episodes = downtime(Change(_at(-30), "stopped", "jam"), changes, _at(0), _at(40))
    assert [(e.state, e.reason, e.duration_s, e.ongoing) for e in episodes] == [
        ("stopped", "jam", 300, False), ("idle", "starved", 600, False),
        ("setup", "changeover", 600, True)]
    assert downtime(None, [], _at(0), _at(10)) == []


@given(st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["running", "stopped", "idle"])),
                max_size=20))
def test_downtime_never_exceeds_window_and_never_overlaps(raw: list[tuple[int, str]]) -> None:
    changes = [Change(_at(m), s, None) for m, s in raw]
    episodes = downtime(Change(_at(-1), "stopped", None), changes, _at(0), _at(60))
    assert sum(e.duration_s for e in episodes) <= 3600
    for a, b in zip(episodes, episodes[1:], strict=False):
        assert a.end <= b.start
    assert all(e.state != "running" and e.duration_s > 0 for e in episodes)


@given(st.text(string.printable, max_size=30))
def test_queries_quote_every_caller_string(text: str) -> None:
    window = queries.Window(_at(0), _at(60))
    q = queries.audit("site", queries.AuditFilter(requested_by=text, machine=text), window,
                      10, 0)
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    assert f'"requested_by" = {quoted}' in q and f'"machine" = {quoted}' in q


def test_history_query_and_window_limits() -> None:
    window = queries.Window.of(_at(0), _at(60), dt.timedelta(hours=1), _at(100))
    q = queries.history("s", "press1", ["speed_pct"], window, 60, queries.Aggregation.MAX, 5, 0)
    assert 'max("speed_pct") AS "speed_pct"' in q and "GROUP BY time(60s)" in q
    for start, end in [(_at(60), _at(0)), (T0.replace(tzinfo=None), _at(1)),
                       (dt.datetime(1800, 1, 1, tzinfo=dt.UTC), _at(0))]:
        with pytest.raises(Invalid):
            queries.Window.of(start, end, dt.timedelta(hours=1), _at(100))


def test_idempotency_store_replays_and_refuses_reuse() -> None:
    async def scenario() -> None:
        clock = [0.0]
        store = IdempotencyStore(ttl_s=10, clock=lambda: clock[0])
        first, future = store.begin("k", "key1", fingerprint("POST", "/a", {"v": 1}))
        assert first
        again, same = store.begin("k", "key1", fingerprint("POST", "/a", {"v": 1}))
        assert not again and same is future
        with pytest.raises(Conflict):
            store.begin("k", "key1", fingerprint("POST", "/a", {"v": 2}))
        assert store.begin("other-key-owner", "key1", "x")[0]
        store.finish("k", "key1", (200, {"ok": True}))
        assert (await same) == (200, {"ok": True})
        clock[0] = 11
        assert store.begin("k", "key1", "anything")[0]  # expired: acts again

    asyncio.run(scenario())
    with pytest.raises(Invalid):
        check_key("\n")


def test_idempotency_in_flight_keys_are_never_evicted_and_each_api_key_is_bounded() -> None:
    async def scenario() -> None:
        clock = [0.0]
        store = IdempotencyStore(ttl_s=100, capacity=3, clock=lambda: clock[0])
        first, in_flight = store.begin("victim", "slow", "p")
        assert first
        for i in range(3):  # another client's flood: bounded by its own API key
            clock[0] += 1
            store.begin("flood", f"k{i}", "p")
            store.finish("flood", f"k{i}", (200, {}))
        for i in range(3, 50):
            with pytest.raises(TooManyRequests) as full:
                store.begin("flood", f"k{i}", "p")
            assert full.value.headers["Retry-After"] == str(int(100 - (clock[0] - 1)))
        retry, same = store.begin("victim", "slow", "p")  # still in flight: no second act
        assert not retry and same is in_flight
        store.begin("victim", "b", "p")
        store.begin("victim", "c", "p")
        with pytest.raises(TooManyRequests):  # its own bound: refused, never forgetting
            store.begin("victim", "d", "p")
        clock[0] = 1000  # every key past its TTL, but "slow" is still in flight
        assert store.begin("victim", "slow", "p") == (False, in_flight)
        store.finish("victim", "slow", (200, {"ok": True}))
        assert store.begin("flood", "k0", "p")[0]  # expired: acts again

    asyncio.run(scenario())


def test_keys_hashed_and_compared() -> None:
    secret = new_key()
    assert len(secret) >= 40 and secret != new_key()
    keys = [ApiKey(name="a", hash=hash_key("other"), role=Role.VIEWER),
            ApiKey(name="b", hash=hash_key(secret), role=Role.SUPERVISOR, lines=["line1"])]
    principal = authenticate(secret, keys)
    assert principal == Principal("b", Role.SUPERVISOR, frozenset({"line1"}))
    assert authenticate(secret + "x", keys) is None


def _plant(**api: object) -> Plant:
    data = PLANT.model_dump(mode="json", exclude_none=True)
    data["api"] = {**data["api"], **api}
    return Plant.model_validate(data)


def test_settings_refuse_unsafe_secrets_outside_dev_mode() -> None:
    good = {"name": "mes", "role": "operator", "hash": hash_key(new_key())}
    placeholder = {"name": "x", "role": "admin", "hash": hash_key("changeme")}
    assert settings_from_plant(_plant(dev_mode=False, keys=[good])).keys
    with pytest.raises(ConfigError, match="api.keys is empty"):
        settings_from_plant(_plant(dev_mode=False, keys=[]))
    with pytest.raises(ConfigError, match="placeholder"):
        settings_from_plant(_plant(dev_mode=False, keys=[good, placeholder]))
    assert settings_from_plant(_plant(dev_mode=True, keys=[placeholder])).dev_mode
    data = _plant(dev_mode=False, keys=[good]).model_dump(mode="json", exclude_none=True)
    data["broker"]["password"] = "secret"
    data["broker"]["username"] = "u"
    with pytest.raises(ConfigError, match="broker.password"):
        settings_from_plant(Plant.model_validate(data))


def test_settings_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_API_PORT", "9123")
    settings = settings_from_plant(_plant(dev_mode=True))
    assert settings.port == 9123
    assert settings_from_plant(_plant(dev_mode=True), port=9000).port == 9000


def _topic(kind: str, machine: str = "press1", site: str = "demo") -> str:
    return f"shopfloor/v1/{site}/line1/{machine}/{kind}"


def _state(state: str, reason: str | None = None) -> bytes:
    body = {"v": 1, "ts": "2026-01-01T00:00:00Z", "since": "2026-01-01T00:00:00Z",
            "state": state, **({"reason": reason} if reason else {})}
    return json.dumps(body).encode()


def _sample(second: int, **values: object) -> bytes:
    return json.dumps({"v": 1, "ts": f"2026-01-01T00:00:{second:02d}Z", "seq": second,
                       "values": values}).encode()


def test_live_view_keeps_the_newest_values_and_ignores_the_rest() -> None:
    live = LiveView(PLANT, clock=lambda: T0.timestamp() + 60)  # the samples' own time
    assert live.apply(_topic("telemetry"), _sample(5, speed_pct=80, maintenance=False))
    assert live.apply(_topic("telemetry"), _sample(3, speed_pct=10))  # older: no effect
    assert live.machine("press1").values["speed_pct"] == 80
    assert not live.apply(_topic("telemetry", site="other"), _sample(6, speed_pct=1))
    assert not live.apply(_topic("telemetry", machine="ghost"), _sample(6, speed_pct=1))
    assert not live.apply(_topic("state"), b"{not json")
    assert live.rejected == 1
    assert live.apply("shopfloor/v1/demo/edge/edge1/status",
                      b'{"v": 1, "online": false, "agent": "edge1"}')
    assert live.online("press1") is False and live.online("weld1") is False


def test_maintenance_from_the_point_or_else_the_state() -> None:
    live = LiveView(PLANT)
    live.apply(_topic("state"), _state("planned_stop", "maintenance"))
    assert not live.in_maintenance("press1")  # has a maintenance point: it decides
    live.note_write("press1", "maintenance", True)
    assert live.in_maintenance("press1")
    bare = PLANT.model_copy(update={"machines": {
        **PLANT.machines, "press1": PRESS.model_copy(update={
            "control": PRESS.control.model_copy(update={"maintenance": None})})}})
    live = LiveView(bare)
    live.apply(_topic("state"), _state("planned_stop", "maintenance"))
    assert live.in_maintenance("press1")
    live.apply(_topic("state"), _state("running"))
    assert not live.in_maintenance("press1")
