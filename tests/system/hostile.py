"""Hypothesis strategies for hostile MQTT input on every topic the collector and the edge
read: telemetry, state and agent status (the collector; reused from
tests/collector/strategies.py and extended) and the machines' command topics (the edge).
Every generated message is one that must be refused; each carries the class it is
counted under."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from shopfloor.collector.messages import Reason
from shopfloor.shared import topics
from shopfloor.shared.contract import MAX_PAYLOAD_BYTES
from shopfloor.shared.plant import Plant
from tests.collector.helpers import telemetry
from tests.collector.strategies import malformed

Hostile = tuple[str, bytes, str]  # topic, payload, "collector:<reason>" or "edge:command"
FUTURE = "2099-01-01T00:00:00Z"
PAST = "2000-01-01T00:00:00Z"


def collector_input(plant: Plant) -> st.SearchStrategy[Hostile]:
    """The collector's malformed-input strategy, plus a wrong schema version on each of
    its topics and unknown machines / agents on state and status topics."""
    site = plant.site.id
    good = json.loads(telemetry(plant, "weld1", 1).to_json())
    state = {"ts": PAST, "since": PAST, "state": "running"}
    status = {"online": True, "agent": "edge1"}
    wrong_version = st.tuples(
        st.one_of(st.integers(2, 10**6), st.integers(max_value=0), st.just("1"), st.none()),
        st.sampled_from([
            (topics.machine_topic(site, "line1", "weld1", topics.TELEMETRY), good),
            (topics.machine_topic(site, "line1", "weld1", topics.STATE), state),
            (topics.status_topic(site, "edge1"), status),
        ]),
    ).map(lambda t: (t[1][0], json.dumps({**t[1][1], "v": t[0]}).encode(), Reason.PAYLOAD))
    ghost = st.from_regex(r"\A[a-z][a-z0-9]{0,8}\Z").filter(lambda m: m not in plant.machines)
    unknown_state = ghost.map(lambda m: (
        topics.machine_topic(site, "line1", m, topics.STATE), json.dumps(state).encode(),
        Reason.UNKNOWN_MACHINE))
    unknown_agent = ghost.filter(lambda a: plant.agent(a) is None).map(lambda a: (
        topics.status_topic(site, a), json.dumps(status).encode(), Reason.UNKNOWN_AGENT))
    return st.one_of(malformed(plant), wrong_version, unknown_state, unknown_agent).map(
        lambda t: (t[0], t[1], f"collector:{t[2].value}"))


def _command(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": "fz1", "action": "write", "point": "speed_pct", "value": 100,
            "expires_at": FUTURE, "requested_by": "fuzz", **fields}


def command_input(plant: Plant) -> st.SearchStrategy[Hostile]:
    """Commands the edge must refuse: not JSON, not an object, missing or wrongly typed
    fields, a wrong schema version, a bad id, expired, an unknown or read-only point, a
    value of the wrong type or out of range, too big. None of them may reach a device."""
    cmd_topics = [topics.machine_topic(plant.site.id, m.line, mid, topics.CMD)
                  for mid, m in plant.machines.items()]
    ids = st.from_regex(r"\Afz[A-Za-z0-9_.:-]{1,20}\Z")
    junk = st.one_of(st.none(), st.integers(), st.text(max_size=12), st.lists(st.integers(),
                     max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
    read_only = [p.name for p in plant.machines["press1"].points if not p.writable]

    def cmd(**fields: Any) -> bytes:
        return json.dumps(_command(**fields)).encode()

    payloads = st.one_of(
        st.binary(max_size=200).filter(lambda b: not b.strip().startswith(b"{")),
        junk.map(lambda j: json.dumps([j]).encode()),
        st.sampled_from(["id", "point", "value", "expires_at"]).map(
            lambda f: json.dumps({k: v for k, v in _command().items() if k != f}).encode()),
        st.tuples(st.sampled_from(["id", "point", "value", "expires_at", "action"]), junk)
        .map(lambda t: cmd(**{t[0]: _never_valid(t[0], t[1])})),
        st.integers(2, 99).map(lambda v: cmd(v=v)),
        st.text(alphabet=" /#+$!'\"", min_size=1, max_size=8).map(lambda i: cmd(id=i)),
        ids.map(lambda i: cmd(id=i, expires_at=PAST)),
        st.tuples(ids, st.text(max_size=16).filter(lambda p: plant.machines["press1"].point(p)
                                                   is None)).map(
            lambda t: cmd(id=t[0], point=t[1])),
        st.tuples(ids, st.sampled_from(read_only)).map(lambda t: cmd(id=t[0], point=t[1])),
        st.tuples(ids, st.one_of(st.integers(121, 10**30), st.integers(max_value=9),
                                 st.floats(allow_nan=False).filter(lambda f: not 10 <= f <= 120)))
        .map(lambda t: cmd(id=t[0], value=t[1])),
        st.tuples(ids, st.one_of(st.booleans(), st.text(max_size=8))).map(
            lambda t: cmd(id=t[0], value=t[1])),
        st.just(b'{"id": "fz-big", "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}'),
    )
    return st.tuples(st.sampled_from(cmd_topics), payloads).map(
        lambda t: (t[0], t[1], "edge:command"))


def _never_valid(field: str, junk: Any) -> Any:
    """Junk that can never be a valid value of `field` (a string gets a space and a NUL,
    which no id, point name, action or timestamp has; a value gets wrapped in a list)."""
    if field == "value":
        return [junk]
    if field == "expires_at" and isinstance(junk, int):
        return -abs(junk) - 1  # pydantic reads a number as epoch seconds: keep it past
    return f"{junk} \x00" if isinstance(junk, str) else junk
