"""The API under a property-based run of its own OpenAPI document (schemathesis) with
every kind of key — none, an invalid one, and a valid key of each role — on every
documented operation: never a 5xx; an operation the key's role may not use is refused
(401/403, or 422 for a malformed body) whatever the request, and no command reaches the
edge (the stand-in edge of tests/api records every command that arrives on `.../cmd`). Extends
tests/api/test_schema.py (admin key only) and tests/api/test_auth.py (fixed bodies)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from shopfloor.shared.plant import Role
from tests.api.conftest import ApiEnv, api_env  # noqa: F401 - the module's API fixture
from tests.api.test_auth import BODIES, documented_roles, documented_routes, stream_query
from tests.system.report import record

EXAMPLES = 5
KEYS = [None, "not-a-valid-key", *(r.value for r in Role)]


@pytest.fixture(scope="module")
def schema(api_env: ApiEnv) -> Any:  # noqa: F811 - the imported fixture
    return schemathesis.openapi.from_url(f"{api_env.api.url}/openapi.json")


def may(key: str | None, permission: str) -> bool:
    if permission == "none":
        return True
    roles = {r.value: perms for r, perms in documented_roles().items()}
    return key in roles and permission in roles[key]


def cases(operation: Any, path: str) -> Any:
    """Valid requests (random ids, and the plant's real machine and line), and requests
    that break the schema (schemathesis' negative mode), where the operation has any."""
    real = {k: v for k, v in (("machine", "pack1"), ("line", "line1"), ("command_id", "x"),
                              ("rule", "machine_stopped"))
            if "{" + k + "}" in path}
    query = stream_query(path)  # a stream of server-sent events: one that ends at once
    options = [operation.as_strategy(GenerationMode.POSITIVE, query=query)]
    if real:
        options.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real,
                                             query=query))
    with contextlib.suppress(Exception):  # an operation without inputs has no negative
        options.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(options)


def property_run(schema: Any, env: ApiEnv, key: str | None, method: str, path: str,
                 allowed: bool, statuses: Counter[int]) -> None:
    headers = {} if key is None else {"X-API-Key": env.keys.get(key, key)}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(schema[path][method], path))
    def run(case: Any) -> None:
        response = case.call(base_url=env.api.url, headers=headers, timeout=15)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (key, method, case.formatted_path,
                                             response.text[:300])
        if not allowed:  # refused; without a valid key a body is never read (401); with
            # a key of another role a body that is not even JSON is refused before the
            # role is checked (FastAPI parses it first): 422, never executed either
            assert response.status_code in (401, 403, 422), (
                key, method, case.formatted_path, response.status_code)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_every_operation_with_every_key(schema: Any, api_env: ApiEnv,  # noqa: F811
                                        key: str | None) -> None:
    env = api_env
    statuses: Counter[int] = Counter()
    routes = documented_routes()
    forbidden = [(m, p) for m, p, perm in routes if not may(key, perm)]
    received, acted = len(env.edge.received), len(env.edge.alarm_actions)
    for method, path in forbidden:  # first the refused ones: nothing may reach the edge
        property_run(schema, env, key, method, path, False, statuses)
        if method == "POST":  # and a request that would be valid but for the key
            _valid_request(env, key, path, statuses)
    time.sleep(0.5)  # a command would have arrived at the stand-in edge by now
    assert len(env.edge.received) == received, env.edge.received[received:]
    assert len(env.edge.alarm_actions) == acted, env.edge.alarm_actions[acted:]
    for method, path, perm in routes:
        if may(key, perm):
            property_run(schema, env, key, method, path, True, statuses)
    record("hostile", target=f"API, key: {key or 'none'}", sent=sum(statuses.values()),
           by_status=dict(sorted(statuses.items())), forbidden_operations=len(forbidden),
           commands_reaching_edge_when_forbidden=0)
    assert sum(statuses.values()) >= len(routes)


def _valid_request(env: ApiEnv, key: str | None, path: str, statuses: Counter[int]) -> None:
    url = path.format(machine="pack1", line="line1", command_id="x", event_id="pack1:1",
                      rule="machine_stopped")
    body = BODIES.get(path.rsplit("/", 1)[-1])
    with env.client(key) as client:
        status = client.post(url, json=body).status_code
    statuses[status] += 1
    assert status in (401, 403), (key, path, status)
