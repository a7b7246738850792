"""The store on a real Redis Cluster (redis-server processes in cluster mode, joined by redis-cli): every key of a
user in one slot, so each turn's script runs on one node; and a master's failover in the middle of a run."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from harness.live_server import stopped_together
from harness.redis_cluster import LocalRedisCluster
from server.core.failures import Unavailable
from server.core.history.items import MessageItem
from server.core.history.keys import user_index
from server.core.history.objects import StoredResponse
from server.core.history.store import HistoryStore, connect
from server.core.rate_limit import RateLimiter
from tests.conftest import launch, tiny_args

USERS = [f"user-{index}" for index in range(8)]

# Ids of the shape the server issues (server/core/ids.py): the store refuses any other.
CONV_C = "conv_" + b"c".hex().rjust(32, "0")
CONV_F = "conv_" + b"f".hex().rjust(32, "0")
RESP_1 = "resp_" + b"1".hex().rjust(32, "0")
RESP_2 = "resp_" + b"2".hex().rjust(32, "0")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """Three masters, each with a replica (a failover needs one)."""
    started = LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas_per_master=1).start()
    try:
        yield started
    finally:
        started.stop()


def turn(question: str, answer: str) -> list[MessageItem]:
    return [MessageItem.of("user", question), MessageItem.of("assistant", answer)]


def test_every_operation_works_with_users_spread_over_the_masters(cluster: LocalRedisCluster) -> None:
    masters = {cluster.master_of(user_index(user)).port for user in USERS}
    assert len(masters) >= 2, "the users' slots should land on more than one master"

    async def scenario() -> None:
        store = HistoryStore(connect(cluster.url), ttl_seconds=3600, max_items=50)
        limiter = RateLimiter(store.client, per_minute=60, burst=2)
        try:
            for user in USERS:
                await store.create_conversation(user, CONV_C, {"k": "v"}, [MessageItem.of("system", "Hi.")])
                assert await store.append(user, CONV_C, turn("q1", "a1"))
                first = StoredResponse(id=RESP_1, model="m", owner=user, input=turn("q", "a")[:1])
                await store.save_response(first)
                second = StoredResponse(id=RESP_2, model="m", owner=user, previous_response_id=RESP_1)
                assert await store.append(user, CONV_C, turn("q2", "a2"), second)
                found = await store.load(user, CONV_C)
                assert [item.text() for item in found.items] == ["Hi.", "q1", "a1", "q2", "a2"]
                chain = await store.response_chain(user, RESP_2)
                assert [record.id for record in chain] == [RESP_1, RESP_2]
                assert [c.id for c in (await store.list_conversations(user, 10, None, True))[0]] == [CONV_C]
                assert await store.delete_item(user, CONV_C, found.items[1].id) is not None
                assert [await limiter.take(user) for _ in range(3)][:2] == [0.0, 0.0]
            assert await store.load("someone-else", CONV_C) is None
        finally:
            await store.client.aclose()

    asyncio.run(scenario())


def test_a_failover_of_the_users_master_loses_no_completed_turn(cluster: LocalRedisCluster) -> None:
    user = "failover-user"
    master = cluster.master_of(user_index(user))

    async def scenario() -> tuple[list[int], int, list[str]]:
        store = HistoryStore(connect(cluster.url), ttl_seconds=0, max_items=5000)
        completed: list[int] = []
        failed = 0
        try:
            await store.create_conversation(user, CONV_F, {}, [])
            for index in range(150):
                if index == 30:  # the replica of the user's master takes over, mid-run
                    replica = cluster.replica_of(master)
                    with replica.client() as client:
                        client.execute_command("CLUSTER", "FAILOVER")
                try:
                    if await store.append(user, CONV_F, turn(f"q{index}", f"a{index}")):
                        completed.append(index)
                except Unavailable:
                    failed += 1
                await asyncio.sleep(0.01)
            found = await store.load(user, CONV_F)
            return completed, failed, [item.text() for item in found.items]
        finally:
            await store.client.aclose()

    completed, failed, texts = asyncio.run(scenario())
    assert cluster.master_of(user_index(user)).port != master.port, "the failover happened"
    assert texts == [text for index in completed for text in (f"q{index}", f"a{index}")]  # whole turns, in order
    print(f"failover: {len(completed)} turns stored, {failed} refused with 503 during the switch")
    assert failed <= 10 and len(completed) >= 140, (failed, len(completed))


@pytest.mark.live
def test_two_servers_on_the_cluster_continue_one_conversation(
    cluster: LocalRedisCluster, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    servers = [launch(tiny_args(tiny_model_dir, "--redis-url", cluster.url), f"cluster-{name}.log", tmp_path_factory)
               for name in ("a", "b")]
    with stopped_together(servers):
        a, b = (openai.OpenAI(base_url=f"{s.wait_ready().url}/v1", api_key="unused", max_retries=0) for s in servers)
        conversation = a.conversations.create()
        replies = [(a, b)[turn % 2].responses.create(model="tiny", conversation=conversation.id, input=f"turn {turn}",
                                                     max_output_tokens=4, temperature=0) for turn in range(4)]
        stored = [(item.role, item.content[0].text)
                  for item in b.conversations.items.list(conversation.id, order="asc", limit=100)]
        expected = [pair for turn, reply in enumerate(replies)
                    for pair in (("user", f"turn {turn}"), ("assistant", reply.output_text))]
        assert stored == expected
        assert b.responses.retrieve(replies[0].id).output_text == replies[0].output_text
