"""Fuzz every route of the server's own OpenAPI schema with schemathesis (generated valid and invalid
requests): no 5xx, no crash. The tiny model answers, so generation requests are cheap."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.live_server import LiveServer


@pytest.fixture(scope="module")
def api_schema(tiny_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{tiny_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_route_answers_5xx(case: schemathesis.Case, tiny_server: LiveServer) -> None:
    case.call_and_validate(base_url=tiny_server.url, checks=[not_a_server_error], timeout=60)


def test_the_server_is_still_up_after_the_fuzzing(tiny_server: LiveServer) -> None:
    assert httpx.get(f"{tiny_server.url}/ready", timeout=10).status_code == 200
