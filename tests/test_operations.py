"""Operations on live servers: back-pressure (503 at capacity), per-user rate limits in Redis (429), 100 clients
hanging up mid-stream, graceful shutdown on SIGTERM, and an engine process that dies. Where a request must
outlast the test's next step, the default model (SmolLM2, ~20 tokens/s here) serves it; else the tiny one."""

import hashlib
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from harness.live_server import LiveServer, stopped_together, wait_for
from server.core.history.keys import conversation_keys
from server.core.history.redis_server import RedisServer
from tests.conftest import launch
from tests.metrics_scrape import scrape, total

LONG = {"messages": [{"role": "user", "content": "go on"}], "max_tokens": 480, "ignore_eos": True, "stream": True,
        "temperature": 1.0}
KEYS = {"carol": "sk-carol", "dave": "sk-dave", "erin": "sk-erin", "frank": "sk-frank"}
DEFAULT_ENGINE = ["--kv-cache-memory-bytes", str(1024**3)]
pytestmark = pytest.mark.live


def first_token(lines: Iterator[str]) -> Iterator[str]:
    """Read an SSE stream up to its first generated text; returns the rest of the lines."""
    for line in lines:
        if ('"content":"' in line and '"content":""' not in line) or "response.output_text.delta" in line:
            return lines
    return lines


def kv_bytes_per_token(model_dir: Path, bytes_per_element: int) -> int:
    """Keys and values of every layer for one token: 2 x layers x KV heads x head size x element size."""
    config = json.loads((model_dir / "config.json").read_text())
    head_size = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_size * bytes_per_element


@pytest.fixture(scope="module")
def module_servers(
    shared_redis: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, LiveServer]]:
    """This module's own servers, launched at once so that their starts overlap:
    `limited` (default model): one sequence at a time, two generations pending at most, 12 requests a minute;
    its engine is killed by the last test that uses it.
    `sigterm-60`, `sigterm-0.5` (default model): history in the shared Redis, each stopped by its test with
    that shutdown timeout.
    `cannot-start` (tiny model): a KV cache for half of one full-length sequence at 2 bytes an element (bf16, the
    smallest dtype the engine may pick here; float32 holds half as many tokens), so whatever the CPU and dtype,
    its engine must fail to start."""
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text("".join(f"{user} sha256:{hashlib.sha256(key.encode()).hexdigest()}\n"
                            for user, key in KEYS.items()))
    limited = [*DEFAULT_ENGINE, "--max-num-seqs", "1", "--max-pending-requests", "2", "--rate-limit-per-minute",
               "12", "--rate-limit-burst", "3", "--api-keys-file", str(keys)]
    max_len = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    too_small = kv_bytes_per_token(tiny_model_dir, 2) * max_len // 2
    servers: dict[str, LiveServer] = {}
    with stopped_together(servers.values()):
        servers["cannot-start"] = launch(["--model", str(tiny_model_dir), "--kv-cache-memory-bytes", str(too_small)],
                                         "cannot-start.log", tmp_path_factory)
        servers["limited"] = launch(limited, "limited.log", tmp_path_factory)
        for timeout in (60, 0.5):
            args = [*DEFAULT_ENGINE, "--redis-url", shared_redis.url, "--shutdown-timeout-seconds", str(timeout)]
            servers[f"sigterm-{timeout}"] = launch(args, f"sigterm-{timeout}.log", tmp_path_factory)
        yield servers


def test_an_engine_that_cannot_start_exits_with_status_1_and_the_reason(module_servers: dict[str, LiveServer]
                                                                        ) -> None:
    """Instead of hanging half-alive."""
    server = module_servers["cannot-start"]
    status = server.process.wait(timeout=300)
    log = server.log_tail(1_000_000)
    assert status == 1, log[-3000:]
    assert "the engine failed to start" in log


@pytest.fixture
def limited_server(module_servers: dict[str, LiveServer]) -> LiveServer:
    return module_servers["limited"].wait_ready()


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[user]}"}


def test_over_capacity_is_a_503_with_retry_after_not_a_longer_queue(limited_server: LiveServer) -> None:
    url = f"{limited_server.url}/v1/chat/completions"
    before = total(scrape(limited_server.url), "lima_requests_rejected_total", reason="overloaded")
    with httpx.Client(timeout=60) as client, client.stream("POST", url, json=LONG, headers=headers("carol")) as one:
        assert one.status_code == 200
        with client.stream("POST", url, json=LONG, headers=headers("dave")) as two:
            assert two.status_code == 200  # queued behind the first (one sequence at a time)
            assert total(scrape(limited_server.url), "lima_generations_pending") == 2
            started = time.monotonic()
            third = httpx.post(url, json={**LONG, "stream": False}, headers=headers("dave"), timeout=60)
            assert time.monotonic() - started < 2  # refused at once, not after the queue
            assert third.status_code == 503 and third.headers["retry-after"] == "1"
            assert third.json()["error"]["code"] == "server_overloaded"
            first_token(two.iter_lines())
    assert total(scrape(limited_server.url), "lima_requests_rejected_total", reason="overloaded") == before + 1
    assert wait_for(lambda: total(scrape(limited_server.url), "lima_generations_pending") == 0)


def test_per_user_rate_limit_is_a_429_and_other_users_go_on(limited_server: LiveServer) -> None:
    url = f"{limited_server.url}/v1/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    statuses = [httpx.post(url, json=body, headers=headers("erin"), timeout=60).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # a burst of 3, then one token every 5 s
    refused = httpx.post(url, json=body, headers=headers("erin"), timeout=60)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 5
    assert httpx.get(f"{limited_server.url}/v1/models", headers=headers("erin")).status_code == 200  # reads: free
    assert httpx.post(url, json=body, headers=headers("frank"), timeout=60).status_code == 200
    time.sleep(int(refused.headers["retry-after"]) + 0.5)
    assert httpx.post(url, json=body, headers=headers("erin"), timeout=60).status_code == 200
    assert total(scrape(limited_server.url), "lima_requests_rejected_total", reason="rate_limited") >= 2


def test_a_hundred_clients_hanging_up_mid_stream(default_server: LiveServer) -> None:
    # The default model: its 480 tokens take ~25 s, so every answer is still running when its client hangs up
    # (the tiny model in bf16 can finish one in under a second, before the hang-up is noticed).
    url = f"{default_server.url}/v1/chat/completions"
    before = total(scrape(default_server.url), "lima_generation_aborted_total")
    for _ in range(100):
        with httpx.stream("POST", url, json=LONG, timeout=60) as response:
            first_token(response.iter_lines())
    assert wait_for(lambda: total(scrape(default_server.url), "lima_generation_aborted_total") >= before + 95)
    assert wait_for(lambda: total(scrape(default_server.url), "vllm:num_requests_running") == 0)
    assert wait_for(lambda: total(scrape(default_server.url), "lima_generations_pending") == 0)
    reply = httpx.post(url, json={"messages": [{"role": "user", "content": "Paris"}], "max_tokens": 4}, timeout=60)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]


def sigterm_mid_answer(server: LiveServer, shared_redis: RedisServer, max_tokens: int
                       ) -> tuple[list[str] | httpx.HTTPError, int, list[dict]]:
    """A default-model server (~20 tokens/s) streams one stored turn and gets SIGTERM after its first token.
    Returns what the client read after the signal (or the error that cut the stream), the exit status, and the
    conversation's stored items."""
    with server.wait_ready():
        base = f"{server.url}/v1"
        conversation = httpx.post(f"{base}/conversations", json={}).json()["id"]
        turn = {"input": "go on", "conversation": conversation, "stream": True, "max_output_tokens": max_tokens,
                "temperature": 1.0, "ignore_eos": True}
        with httpx.Client(timeout=120) as client, client.stream("POST", f"{base}/responses", json=turn) as stream:
            rest = first_token(stream.iter_lines())
            server.process.send_signal(signal.SIGTERM)
            assert wait_for(lambda: refused(server.url), timeout=10), "still accepting connections after SIGTERM"
            try:
                after: list[str] | httpx.HTTPError = list(rest)
            except httpx.HTTPError as error:
                after = error
        status = server.process.wait(timeout=60)
    return after, status, redis_items(shared_redis, conversation)


def test_sigterm_finishes_in_flight_streams_flushes_history_and_exits_0(
    module_servers: dict[str, LiveServer], shared_redis: RedisServer
) -> None:
    # 150 tokens take ~8 s: in flight when SIGTERM arrives, done well within the 60 s allowed.
    events, status, items = sigterm_mid_answer(module_servers["sigterm-60"], shared_redis, max_tokens=150)
    assert not isinstance(events, Exception), f"the stream was cut: {events!r}"
    # It ran to its 150-token limit (OpenAI calls that "incomplete: max_output_tokens").
    assert '"reason": "max_output_tokens"' in events[-2] and "response.incomplete" in events[-2]
    assert status == 0
    assert [item["role"] for item in items] == ["user", "assistant"]
    assert (items[1]["tokens"], items[1]["finish_reason"]) == (150, "length")


def test_sigterm_past_the_timeout_cuts_streams_and_stores_them_incomplete(
    module_servers: dict[str, LiveServer], shared_redis: RedisServer
) -> None:
    # 480 tokens take ~25 s: the server closes the stream at the 0.5 s deadline.
    cut, status, items = sigterm_mid_answer(module_servers["sigterm-0.5"], shared_redis, max_tokens=480)
    assert isinstance(cut, httpx.HTTPError)
    assert status == 0
    assert [item["role"] for item in items] == ["user", "assistant"] and items[1]["status"] == "incomplete"
    assert items[1]["tokens"] < 480 and items[1]["finish_reason"] != "length"


def refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def redis_items(redis_server: RedisServer, conversation: str) -> list[dict]:
    import json

    import redis

    from server.core.auth import LOCAL_USER

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    _, ids_key, items_key = conversation_keys(LOCAL_USER, conversation)
    ids = client.lrange(ids_key, 0, -1)
    items = client.hgetall(items_key)
    client.close()
    return [json.loads(items[i]) for i in ids]


def test_an_engine_that_dies_makes_the_server_not_ready_then_exit_1(limited_server: LiveServer) -> None:
    """The limited server's last use: its engine process is killed."""
    engines = [p for p in psutil.Process(limited_server.process.pid).children(recursive=True)
               if "EngineCore" in " ".join(p.cmdline()) or p.name().startswith("VLLM::Engine")]
    assert engines, "no engine process found"
    for engine in engines:
        engine.kill()
    assert limited_server.process.wait(timeout=60) == 1
    assert "the engine process died" in limited_server.log_tail()


def test_short_soak_serves_every_request_with_flat_memory(tiny_server: LiveServer) -> None:
    """The short version of bench/soak.py: 8 streaming clients for 30 s after a warm-up."""
    import asyncio

    from harness.soak import soak

    report = asyncio.run(soak(tiny_server.url, tiny_server.process.pid, clients=8, seconds=30, max_tokens=32,
                              warmup_seconds=5))
    print(report)
    assert report["failed"] == 0, report["failures"]
    assert report["served"] >= 50 and report["ttft_p99_ms"] is not None
    growth = report["memory_end"]["server_mb"] - report["memory_start"]["server_mb"]
    assert growth < 50, f"the server process grew by {growth:.0f} MB in 30 s"
