"""Redis failures: the shared Redis stopped and restarted under a running server, and the embedded
redis-server killed with SIGKILL (the server restarts it from its append-only file)."""

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
import redis

from harness.live_server import LiveServer
from server.core.history.redis_server import RedisServer
from tests.conftest import API_KEYS
from tests.metrics_scrape import scrape, total


def eventually(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (openai.APIError, httpx.HTTPError):
            pass
        assert time.monotonic() < deadline, "not recovered in time"
        time.sleep(0.3)


def item_texts(client: openai.OpenAI, conversation_id: str) -> list[str]:
    return [i.content[0].text for i in client.conversations.items.list(conversation_id, order="asc", limit=100)]


def test_redis_down_stateless_chat_goes_on_and_history_recovers(
    replicas: tuple[LiveServer, LiveServer], shared_redis: RedisServer
) -> None:
    server = replicas[0]
    alice = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEYS["alice"], max_retries=0)
    conversation = alice.conversations.create()
    before = alice.responses.create(model="tiny", conversation=conversation.id, input="before", max_output_tokens=3)
    errors_before = total(scrape(server.url), "lima_history_errors_total")
    shared_redis.stop()
    try:
        chat = alice.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
        assert chat.choices[0].message.content is not None
        for call in (
            lambda: alice.responses.create(model="tiny", conversation=conversation.id, input="during"),
            lambda: alice.conversations.create(),
            lambda: alice.conversations.items.list(conversation.id),
            lambda: alice.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                  extra_body={"conversation": conversation.id}),
        ):
            with pytest.raises(openai.InternalServerError) as unavailable:
                call()
            assert unavailable.value.status_code == 503
            assert unavailable.value.code == "history_unavailable"
            assert "Redis" in unavailable.value.message and unavailable.value.response.headers["retry-after"]
        ready = httpx.get(f"{server.url}/ready").json()
        assert ready["status"] == "ready" and ready["history"] == "unavailable"
        assert total(scrape(server.url), "lima_history_errors_total") - errors_before >= 4
    finally:
        shared_redis.start()  # same directory: it reloads its append-only file
    eventually(lambda: alice.conversations.retrieve(conversation.id).id == conversation.id)
    assert item_texts(alice, conversation.id) == ["before", before.output_text]  # "during" left nothing
    alice.responses.create(model="tiny", conversation=conversation.id, input="after", max_output_tokens=3)
    assert item_texts(alice, conversation.id)[2] == "after"


def test_embedded_redis_killed_restarts_from_append_only_file(tiny_server: LiveServer) -> None:
    """tiny_server runs without REDIS_URL: its own redis-server, in the --redis-dir the fixture gave it."""
    client = openai.OpenAI(base_url=f"{tiny_server.url}/v1", api_key="no keys configured", max_retries=0)
    conversation = client.conversations.create()
    for turn in range(3):
        client.responses.create(model="tiny", conversation=conversation.id, input=f"turn {turn}", max_output_tokens=3)
    stored = item_texts(client, conversation.id)
    assert len(stored) == 6

    args = tiny_server.process.args
    socket_path = Path(args[args.index("--redis-dir") + 1]) / "redis.sock"
    with redis.Redis(unix_socket_path=str(socket_path)) as direct:
        pid = direct.info("server")["process_id"]
    os.kill(pid, signal.SIGKILL)

    eventually(lambda: item_texts(client, conversation.id) == stored)  # every completed turn survived
    with redis.Redis(unix_socket_path=str(socket_path)) as direct:
        assert direct.info("server")["process_id"] != pid
    client.responses.create(model="tiny", conversation=conversation.id, input="after restart", max_output_tokens=3)
    assert item_texts(client, conversation.id)[6] == "after restart"
    log = tiny_server.log_tail(500_000)
    assert "embedded redis-server died" in log
    assert "NO API KEYS CONFIGURED" in log  # this server has no keys: everyone is the local user, said loudly
