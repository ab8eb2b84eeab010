"""Property-based run over the served OpenAPI document (schemathesis strategies, driven
by hypothesis here): whatever is sent with a valid admin key, the API never answers 5xx.
Bounded to a few examples per operation."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import ApiEnv
from tests.api.test_auth import documented_routes, stream_query

MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(api_env: ApiEnv) -> Any:
    return schemathesis.openapi.from_url(f"{api_env.api.url}/openapi.json")


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in documented_routes()])
def test_no_server_errors(api_schema: Any, api_env: ApiEnv, method: str, path: str) -> None:
    operation = api_schema[path][method]
    headers = {"X-API-Key": api_env.keys["admin"]}
    seen: list[int] = []

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(query=stream_query(path)))
    def run(case: Any) -> None:
        response = case.call(base_url=api_env.api.url, headers=headers, timeout=10)
        seen.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path,
                                            response.text[:500])

    run()
    assert seen, "no request was made"
