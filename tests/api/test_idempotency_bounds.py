"""Idempotency-Key bounds over real HTTP (the real API on mosquitto and InfluxDB, the
edge stand-in answering): one API key's flood of keys is refused with 429 and
Retry-After and evicts nothing — not another key's answers, not its own key still in
flight — and a retry of a key in flight never acts twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiEnv
from tests.api.harness import ApiServer, free_port, wait_for

BOUND = 5
SP = "/api/v1/machines/{}/setpoint"


@pytest.fixture(scope="module")
def bounded(api_env: ApiEnv) -> Iterator[ApiServer]:
    """A second API on the same plant with room for BOUND keys per API key."""
    server = ApiServer(api_env.plant, free_port(), idempotency_keys_per_api_key=BOUND,
                       mqtt_client_id=f"bounded-{uuid.uuid4().hex[:8]}",
                       state_dir=api_env.workdir / "bounded-state")
    yield server.start()
    server.stop()


def _client(env: ApiEnv, api: ApiServer, role: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, timeout=30, headers={"X-API-Key": env.keys[role]})


def _post(client: httpx.Client, key: str, value: int, machine: str = "press1") -> Any:
    return client.post(SP.format(machine), json={"point": "speed_pct", "value": value},
                       headers={"Idempotency-Key": key})


def test_one_keys_flood_cannot_evict_another_keys_answers(api_env: ApiEnv,
                                                          bounded: ApiServer) -> None:
    with _client(api_env, bounded, "supervisor") as victim, \
            _client(api_env, bounded, "operator") as flooder:
        answered = _post(victim, "victim-1", 71)
        assert answered.status_code == 200, answered.text
        statuses = [_post(flooder, f"flood-{i}", 60 + i % 40).status_code for i in range(40)]
        assert statuses[:BOUND - 0] == [200] * BOUND and set(statuses[BOUND:]) == {429}
        refused = _post(flooder, "flood-more", 50)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "too_many_requests"
        sent = len(api_env.edge.received)
        again = _post(victim, "victim-1", 71)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == answered.json() and len(api_env.edge.received) == sent
        first = _post(flooder, "flood-0", 60)  # the flooder's own answers are kept too
        assert first.headers.get("Idempotent-Replayed") == "true"


def test_retry_of_a_key_in_flight_never_acts_twice(api_env: ApiEnv,
                                                   bounded: ApiServer) -> None:
    api_env.edge.mode["paint1"] = "silent"
    try:
        with _client(api_env, bounded, "maintenance") as client, ThreadPoolExecutor(4) as pool:
            slow = pool.submit(_post, client, "in-flight", 64, "paint1")
            wait_for(lambda: any(c.value == 64 for _, c in api_env.edge.silent),
                     what="the command at the edge")
            others = [_post(client, f"other-{i}", 50 + i) for i in range(20)]
            assert {r.status_code for r in others} == {200, 429}
            retries = [pool.submit(_post, client, "in-flight", 64, "paint1") for _ in range(3)]
            first = slow.result(30)
            answers = [r.result(30) for r in retries]
    finally:
        api_env.edge.mode.pop("paint1")
    assert first.status_code == 504
    assert all(a.json() == first.json() for a in answers)
    assert all(a.headers["Idempotent-Replayed"] == "true" for a in answers)
    assert sum(1 for _, c in api_env.edge.silent if c.value == 64) == 1
