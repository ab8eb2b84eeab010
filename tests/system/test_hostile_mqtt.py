"""10,000 hostile MQTT messages (hypothesis) on every topic the collector and the edge
read — telemetry, state, agent status, commands — while the whole chain runs. Nothing
crashes; every message is dead-lettered or refused and counted (the /metrics counters of
both processes equal what was sent, per class); no command reaches a device; the
machines' real data keeps being stored exactly once."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.collector.helpers import Publisher, wait_for
from tests.system.chain import Chain
from tests.system.hostile import Hostile, collector_input, command_input
from tests.system.report import record

MESSAGES = 10_000
REFUSED = ("rejected", "expired", "dead_letter")  # the edge's command outcomes for refusals
CONTROLS = ("run", "speed_pct", "product", "maintenance", "work_order")


@pytest.fixture
def fuzz_chain(tmp_path: Any, mosquitto: Any, influxdb: Any) -> Iterator[Chain]:
    chain = Chain(tmp_path, mosquitto, influxdb).start()
    try:
        wait_for(chain.healthy, 30)
        yield chain
    finally:
        chain.stop()


def generate(strategy: st.SearchStrategy[Hostile], count: int,
             per_example: int = 50) -> list[Hostile]:
    """`count` hostile messages, drawn `per_example` at a time (hypothesis' per-example
    overhead would otherwise dominate), derandomized so that a CI run is repeatable."""
    made: list[Hostile] = []

    @settings(max_examples=count // per_example, deadline=None, database=None,
              phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(strategy, min_size=per_example, max_size=per_example))
    def draw(items: list[Hostile]) -> None:
        made.extend(items)

    while len(made) < count:
        draw()
    return made[:count]


def machine_controls(chain: Chain) -> dict[str, dict[str, Any]]:
    """The simulated machines' control setpoints, from the simulator itself."""
    reply = httpx.get(f"http://127.0.0.1:{chain.control_port}/machines", timeout=5).json()
    return {m: {k: v.get(k) for k in CONTROLS} for m, v in reply.items()}


def edge_outcomes(chain: Chain) -> dict[str, float]:
    return {o: chain.edge_metric_labelled("shopfloor_edge_commands_total", outcome=o)
            for o in (*REFUSED, "done", "failed", "error")}


def collector_dead(chain: Chain) -> Counter[str]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{chain.plant.collector.metrics_port}/metrics",
                     timeout=5).text
    return Counter({f"collector:{s.labels['reason']}": s.value
                    for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "shopfloor_collector_dead_letters_total"})


@pytest.mark.slow
def test_10000_hostile_messages_are_refused_and_counted(fuzz_chain: Chain) -> None:
    chain = fuzz_chain
    commands = MESSAGES // 4  # the collector reads three kinds of topic, the edge one
    items = [*generate(collector_input(chain.plant), MESSAGES - commands),
             *generate(command_input(chain.plant), commands)]
    sent = Counter(label for _, _, label in items)
    controls_before = machine_controls(chain)
    dead_before, edge_before = collector_dead(chain), edge_outcomes(chain)
    pub = Publisher(chain.broker.port)
    try:
        for start in range(0, len(items), 500):  # bounded: paho's queue is unbounded
            pub.publish_many([(t, p) for t, p, _ in items[start:start + 500]])
    finally:
        pub.close()
    expected_collector = {k: v for k, v in sent.items() if k.startswith("collector:")}
    expected_edge = sent["edge:command"]

    def counted() -> tuple[Counter[str], float]:
        dead = collector_dead(chain)
        dead.subtract(dead_before)
        outcomes = edge_outcomes(chain)
        refused = sum(outcomes[o] - edge_before[o] for o in REFUSED)
        return +dead, refused

    with contextlib.suppress(AssertionError):  # the comparison below says what is missing
        wait_for(lambda: sum(counted()[0].values()) >= sum(expected_collector.values())
                 and counted()[1] >= expected_edge, 60, every_s=0.5)
    dead, refused = counted()
    outcomes = edge_outcomes(chain)
    record("hostile", target="MQTT (collector + edge)", sent=len(items),
           by_class=dict(sorted(sent.items())), collector_dead_lettered=dict(sorted(dead.items())),
           edge_refused=refused, edge_done=outcomes["done"] - edge_before["done"],
           edge_outcomes={o: outcomes[o] - edge_before[o] for o in outcomes})
    assert len(items) == MESSAGES
    assert (dict(dead), refused) == (
        {k: float(v) for k, v in expected_collector.items()}, expected_edge), outcomes
    for outcome in ("done", "failed", "error"):
        assert outcomes[outcome] == edge_before[outcome], outcome  # nothing reached a device
    assert machine_controls(chain) == controls_before
    assert chain.edge.alive and chain.collector.alive
    wait_for(chain.healthy, 20)
    audit = chain.audit(timeout_s=30, machines=["press1", "weld1", "paint1"])
    assert audit.exactly_once, audit
