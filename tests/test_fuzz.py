"""Fuzz every route of the server's own OpenAPI schema with schemathesis (generated valid and invalid requests,
through hypothesis): no 5xx, no crash. The tiny model answers, so generation requests are cheap.
(schemathesis' pytest plugin does not work with pytest 9, so it is switched off in pyproject.toml and each
operation's strategy is driven here.)"""

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from harness.live_server import LiveServer
from tests.metrics_scrape import scrape, total

EXAMPLES_PER_ROUTE = 25


def test_no_route_answers_5xx_and_the_server_stays_up(tiny_server: LiveServer) -> None:
    before = total(scrape(tiny_server.url), "lima_http_requests_total")
    schema = schemathesis.openapi.from_url(f"{tiny_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every route of the API, ops and extensions included

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=tiny_server.url, checks=[not_a_server_error], timeout=60)

        no_server_error()
    sent = total(scrape(tiny_server.url), "lima_http_requests_total") - before
    assert sent >= 5 * len(operations), f"only {sent} requests reached the server"
    assert total(scrape(tiny_server.url), "lima_http_requests_total", status="500") == 0
    assert httpx.get(f"{tiny_server.url}/ready", timeout=10).status_code == 200
