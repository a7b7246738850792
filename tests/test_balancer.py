"""The shipped HAProxy configuration in front of the two history replicas (real haproxy, real engines, one real
Redis): a conversation's turns reach one replica, a previous_response_id chain follows its responses, stateless
calls spread, and when a conversation's replica leaves, the other continues it from Redis."""

import collections
from collections.abc import Iterator

import httpx
import openai
import pytest

from harness.balancer import LocalBalancer, haproxy_binary
from harness.live_server import LiveServer
from tests.conftest import API_KEYS

pytestmark = pytest.mark.skipif(
    haproxy_binary() is None,
    reason="Debian's haproxy is not installed (make test installs it when it runs as root with apt-get)",
)
REPLICA = "x-lima-replica"  # set by the shipped config: the server that answered


@pytest.fixture(scope="module")
def balancer(replicas: tuple[LiveServer, LiveServer], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[LocalBalancer]:
    with LocalBalancer([s.url for s in replicas], tmp_path_factory.mktemp("haproxy")) as running:
        yield running


@pytest.fixture
def client(balancer: LocalBalancer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{balancer.url}/v1", api_key=API_KEYS["alice"], max_retries=0)


def turn(client: openai.OpenAI, **fields: object) -> tuple[str, openai.types.responses.Response]:
    """One Responses turn through the balancer: which replica answered, and the response."""
    raw = client.responses.with_raw_response.create(model="tiny", max_output_tokens=4, temperature=0, **fields)
    return raw.headers[REPLICA], raw.parse()


def test_each_conversation_stays_on_one_replica_and_conversations_spread(client: openai.OpenAI) -> None:
    replicas_by_conversation = {}
    for index in range(16):
        conversation = client.conversations.create()
        seen = {turn(client, conversation=conversation.id, input=f"c{index} t{t}")[0] for t in range(3)}
        # OpenAI's object form of the parameter routes the same way as the bare id.
        seen.add(turn(client, conversation={"id": conversation.id}, input=f"c{index} t3")[0])
        assert len(seen) == 1, f"conversation {index} answered by {seen}"
        replicas_by_conversation[conversation.id] = seen.pop()
    # 16 random ids on two replicas: all on one would happen once in 2**15 runs.
    assert set(replicas_by_conversation.values()) == {"lima1", "lima2"}


def test_a_response_chain_follows_its_responses_streamed_or_not(client: openai.OpenAI) -> None:
    for chain in range(4):
        first_replica, previous = turn(client, input=f"chain {chain}")
        for step in range(3):
            streamed = step == 1
            raw = client.responses.with_raw_response.create(
                model="tiny", input=f"chain {chain} step {step}", previous_response_id=previous.id,
                max_output_tokens=4, temperature=0, stream=streamed)
            assert raw.headers[REPLICA] == first_replica
            if streamed:
                *_, last = raw.parse()  # response.completed, or response.incomplete at max_output_tokens
                previous = last.response
            else:
                previous = raw.parse()
            assert raw.headers["x-lima-response-id"] == previous.id


def test_stateless_calls_spread_over_both_replicas(balancer: LocalBalancer) -> None:
    answered = collections.Counter(
        httpx.post(f"{balancer.url}/v1/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {API_KEYS['alice']}"},
                   json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                   ).headers[REPLICA] for _ in range(8))
    assert set(answered) == {"lima1", "lima2"}, answered


def test_a_body_larger_than_the_balancer_reads_is_still_served(balancer: LocalBalancer) -> None:
    """Past tune.bufsize (64 KiB) the body is not parsed for routing: least connections, answered by a replica."""
    reply = httpx.post(f"{balancer.url}/v1/responses", timeout=120,
                       headers={"Authorization": f"Bearer {API_KEYS['alice']}"},
                       json={"model": "tiny", "input": "word " * 20_000, "store": False, "max_output_tokens": 2})
    assert reply.headers[REPLICA] in {"lima1", "lima2"}
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "input"  # over the tiny context


def test_a_conversation_moves_whole_when_its_replica_leaves(client: openai.OpenAI, balancer: LocalBalancer) -> None:
    conversation = client.conversations.create()
    home, first = turn(client, conversation=conversation.id, input="first")
    balancer.drain(home)
    try:
        other, second = turn(client, conversation=conversation.id, input="second")
        assert other != home
        # The other replica read the whole conversation from Redis: the first turn is in its prompt.
        assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    finally:
        balancer.ready(home)
    back, _ = turn(client, conversation=conversation.id, input="third")
    assert back == home  # consistent hashing: the conversation returns once its replica is back
    items = client.conversations.items.list(conversation.id, order="asc")
    assert [item.content[0].text for item in items.data if item.role == "user"] == ["first", "second", "third"]
