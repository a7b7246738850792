"""A client that hangs up mid-stream aborts its engine request: generation stops, capacity is freed."""

import contextlib
import time

import httpx

from harness.live_server import LiveServer, wait_for
from tests.metrics_scrape import scrape, total

MAX_TOKENS = 480  # the tiny model's window is 512: an unaborted request would generate all of these


def test_disconnect_mid_stream_aborts_the_engine_request(tiny_server: LiveServer) -> None:
    before = scrape(tiny_server.url)
    body = {
        "messages": [{"role": "user", "content": "go on forever"}], "max_tokens": MAX_TOKENS, "stream": True,
        "temperature": 1.0,
    }
    with httpx.stream("POST", f"{tiny_server.url}/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # got a token: hang up now

    assert wait_for(
        lambda: total(scrape(tiny_server.url), "lima_generation_aborted_total") == total(
            before, "lima_generation_aborted_total") + 1
    ), "the server never noticed the disconnect"
    assert wait_for(lambda: total(scrape(tiny_server.url), "vllm:num_requests_running") == 0)
    generated = total(scrape(tiny_server.url), "vllm:generation_tokens_total")
    time.sleep(1.0)
    after = scrape(tiny_server.url)
    assert total(after, "vllm:generation_tokens_total") == generated, "the engine kept generating"
    assert generated - total(before, "vllm:generation_tokens_total") < MAX_TOKENS


def test_disconnect_during_non_streaming_request_aborts_too(tiny_server: LiveServer) -> None:
    before = scrape(tiny_server.url)
    body = {"messages": [{"role": "user", "content": "long"}], "max_tokens": MAX_TOKENS, "temperature": 1.0,
            "n": 16}
    with contextlib.suppress(httpx.ReadTimeout):  # the client gives up: the server must notice
        httpx.post(f"{tiny_server.url}/v1/chat/completions", json=body, timeout=0.3)
    assert wait_for(lambda: total(scrape(tiny_server.url), "lima_generation_aborted_total")
                    == total(before, "lima_generation_aborted_total") + 1)
    assert wait_for(lambda: total(scrape(tiny_server.url), "vllm:num_requests_running") == 0)
    # Recorded as the client closing the request (499), not as a server error.
    after = scrape(tiny_server.url)
    assert total(after, "lima_http_requests_total", status="499") == total(
        before, "lima_http_requests_total", status="499") + 1
    assert total(after, "lima_http_requests_total", status="500") == total(before, "lima_http_requests_total",
                                                                           status="500")
