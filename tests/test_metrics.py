"""/metrics speaks Prometheus' text format, carries our and vLLM's metrics, and the counters move."""

import httpx

from harness.live_server import LiveServer
from tests.metrics_scrape import scrape, total

CHAT = "/v1/chat/completions"


def test_metric_names_are_exposed(tiny_server: LiveServer) -> None:
    response = httpx.get(f"{tiny_server.url}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain")
    names = {name for name, _ in scrape(tiny_server.url)}
    ours = {
        "lima_http_requests_total", "lima_http_request_duration_seconds_bucket", "lima_http_requests_in_flight",
        "lima_time_to_first_token_seconds_bucket", "lima_prompt_tokens_total", "lima_generation_tokens_total",
    }
    engine = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}
    assert ours <= names
    assert engine <= names


def test_counters_move_with_traffic(tiny_server: LiveServer) -> None:
    before = scrape(tiny_server.url)
    body = {"messages": [{"role": "user", "content": "count me"}], "max_tokens": 5, "temperature": 0,
            "ignore_eos": True}
    for stream in (False, True):
        assert httpx.post(f"{tiny_server.url}{CHAT}", json={**body, "stream": stream}, timeout=60).status_code == 200
    httpx.post(f"{tiny_server.url}{CHAT}", json={"messages": []}, timeout=60)
    after = scrape(tiny_server.url)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("lima_http_requests_total", route=CHAT, status="200") == 2
    assert moved("lima_http_requests_total", route=CHAT, status="400") == 1
    assert moved("lima_http_request_duration_seconds_count", route=CHAT) == 3
    assert moved("lima_time_to_first_token_seconds_count", route=CHAT) == 2
    assert moved("lima_generation_tokens_total", route=CHAT) == 10
    assert moved("lima_prompt_tokens_total", route=CHAT) > 0
    assert moved("vllm:generation_tokens_total") >= 10
