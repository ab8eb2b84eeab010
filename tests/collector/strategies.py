"""Hypothesis strategies for malformed collector input, each with the dead-letter reason
the collector must give it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from shopfloor.collector.messages import Reason
from shopfloor.shared import topics
from shopfloor.shared.contract import MAX_PAYLOAD_BYTES
from shopfloor.shared.plant import Plant
from tests.collector.helpers import telemetry

Malformed = tuple[str, bytes, Reason]
junk = st.one_of(st.none(), st.integers(), st.text(max_size=20),
                 st.lists(st.integers(), max_size=3))


def _good(plant: Plant, machine: str, seq: int) -> dict[str, Any]:
    return json.loads(telemetry(plant, machine, seq).to_json())


def malformed(plant: Plant) -> st.SearchStrategy[Malformed]:
    site = plant.site.id
    press = topics.machine_topic(site, "line1", "press1", topics.TELEMETRY)
    state_topic = topics.machine_topic(site, "line1", "press1", topics.STATE)
    status = topics.status_topic(site, "edge1")
    seqs = st.integers(1, 10**6)

    random_bytes = st.binary(max_size=300).filter(lambda b: not b.strip().startswith(b"{"))
    letters = st.text(alphabet="abcxyz", min_size=1, max_size=8)
    not_a_value = {  # per field, values the contract must refuse (pydantic is lax otherwise)
        "ts": st.one_of(st.none(), letters, st.lists(st.integers(), max_size=2)),
        "seq": st.one_of(st.none(), letters, st.integers(max_value=-1),
                         st.floats(0.1, 0.9).map(lambda f: 7 + f)),
        "values": st.one_of(st.none(), st.integers(), letters, st.lists(st.integers())),
        "quality": st.one_of(st.none(), letters,
                             letters.map(lambda p: {p: "good"})),
    }
    wrong_type = st.tuples(seqs, st.sampled_from(sorted(not_a_value))).flatmap(
        lambda t: not_a_value[t[1]].map(lambda bad: {**_good(plant, "weld1", t[0]), t[1]: bad}))
    missing = st.tuples(seqs, st.sampled_from(["ts", "seq"])).map(
        lambda t: {k: v for k, v in _good(plant, "weld1", t[0]).items() if k != t[1]})
    huge_seq = st.integers(2**63, 2**80).map(lambda s: {**_good(plant, "weld1", 1), "seq": s})
    extra_key = st.text(min_size=1, max_size=10).filter(
        lambda k: k not in {"ts", "seq", "values", "quality", "v"}).map(
        lambda k: {**_good(plant, "weld1", 1), k: 1})
    unknown_machine = st.from_regex(r"\Aghost[a-z0-9]{1,8}\Z").map(
        lambda m: (topics.machine_topic(site, "line1", m, topics.TELEMETRY),
                   telemetry(plant, "press1", 1).to_json(), Reason.UNKNOWN_MACHINE))
    wrong_line = st.sampled_from(["line2", "lineX"]).map(
        lambda line: (topics.machine_topic(site, line, "press1", topics.TELEMETRY),
                      telemetry(plant, "press1", 1).to_json(), Reason.WRONG_LINE))
    huge_int_value = st.integers(2**63, 2**70).map(
        lambda v: (topics.machine_topic(site, "line1", "pack1", topics.TELEMETRY),
                   json.dumps({**_good(plant, "pack1", 5), "values": {"alarm_code": v}}).encode(),
                   Reason.POINT))
    bad_state = st.one_of(st.text(max_size=10), st.integers()).map(
        lambda s: json.dumps({"ts": "2026-11-25T08:00:00Z", "since": "2026-11-25T08:00:00Z",
                              "state": s if s not in ("running", "stopped", "idle", "setup",
                                                      "planned_stop", "offline") else 5}))
    bad_status = junk.map(lambda j: json.dumps({"online": [j], "agent": "edge1"}))  # a list
    too_big = st.just(MAX_PAYLOAD_BYTES).map(lambda n: b"{" + b" " * n + b"}")

    as_json = st.one_of(wrong_type, missing, huge_seq, extra_key).map(
        lambda d: (press, json.dumps(d).encode(), Reason.PAYLOAD))
    return st.one_of(
        random_bytes.map(lambda b: (press, b, Reason.PAYLOAD)),
        as_json,
        unknown_machine,
        wrong_line,
        huge_int_value,
        bad_state.map(lambda s: (state_topic, s.encode(), Reason.PAYLOAD)),
        bad_status.map(lambda s: (status, s.encode(), Reason.PAYLOAD)),
        too_big.map(lambda b: (press, b, Reason.PAYLOAD)),
    )
