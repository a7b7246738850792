"""The store against a real redis-server (TTL, limits, owners, atomic turns), and turn dropping against the tiny
model's real tokenizer and chat template. No vLLM here: these run in a second."""

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from harness.live_server import free_port
from lima.cli import main
from model_prep.chat_format import Message, chat_token_ids
from server.auth import APIKeys, read_keys_file
from server.errors import APIError, as_api_error
from server.failures import Invalid, Unavailable
from server.history.items import FunctionCallItem, FunctionCallOutputItem, Item, MessageItem
from server.history.migrate import migrate_key_layout
from server.history.objects import StoredResponse
from server.history.prompt import fit_prompt, split_turns, template_messages
from server.history.redis_server import RedisServer
from server.history.store import ConversationFull, HistoryStore, connect


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store(shared_redis: RedisServer) -> Iterator[HistoryStore]:
    yield HistoryStore(connect(shared_redis.url), ttl_seconds=3600, max_items=6)


def turn(question: str, answer: str) -> list[MessageItem]:
    return [MessageItem.of("user", question), MessageItem.of("assistant", answer)]


def test_turns_append_in_order_with_ttl_and_owner(store: HistoryStore) -> None:
    async def scenario() -> None:
        await store.create_conversation("ann", "conv_t1", {"title": "x"}, [MessageItem.of("system", "Be kind.")])
        assert await store.append("ann", "conv_t1", turn("q1", "a1"))
        assert await store.append("ann", "conv_t1", turn("q2", "a2"))
        assert not await store.append("ben", "conv_t1", turn("q3", "a3"))  # another owner: as if missing
        found = await store.load("ann", "conv_t1")
        assert [i.text() for i in found.items] == ["Be kind.", "q1", "a1", "q2", "a2"]
        assert found.conversation.preview == "q1"
        assert await store.load("ben", "conv_t1") is None
        for key in [*store.conversation_keys("ann", "conv_t1"), store.user_index("ann")]:
            assert 3500 < await store.client.ttl(key) <= 3600
        with pytest.raises(ConversationFull):  # 5 items + 2 > 6: refused whole, nothing written
            await store.append("ann", "conv_t1", turn("q3", "a3"))
        assert len((await store.load("ann", "conv_t1")).items) == 5

    run(scenario())


def test_expired_conversations_leave_the_listing(shared_redis: RedisServer) -> None:
    short = HistoryStore(connect(shared_redis.url), ttl_seconds=1, max_items=10)

    async def scenario() -> None:
        await short.create_conversation("cy", "conv_short", {}, turn("q", "a"))
        assert [c.id for c in (await short.list_conversations("cy", 10, None, True))[0]] == ["conv_short"]
        await asyncio.sleep(1.5)
        await short.client.zadd(short.user_index("cy"), {"conv_short": 1})  # index outlives the conversation
        assert (await short.list_conversations("cy", 10, None, True))[0] == []
        assert await short.client.zcard(short.user_index("cy")) == 0

    run(scenario())


def test_response_chain_walks_previous_ids_for_the_owner_only(store: HistoryStore) -> None:
    async def scenario() -> None:
        previous = None
        for index in range(4):
            record = StoredResponse(id=f"resp_c{index}", model="m", previous_response_id=previous, owner="dee")
            await store.save_response(record)
            previous = record.id
        chain = await store.response_chain("dee", "resp_c3")
        assert [r.id for r in chain] == ["resp_c0", "resp_c1", "resp_c2", "resp_c3"]
        assert await store.response_chain("eve", "resp_c3") is None

    run(scenario())


def test_unreachable_redis_is_a_503() -> None:
    dead = HistoryStore(connect("redis://127.0.0.1:1"), ttl_seconds=0, max_items=10)
    with pytest.raises(Unavailable) as error:
        run(dead.load("anyone", "conv_x"))
    failure = as_api_error(error.value)
    assert failure.status == 503 and failure.body.code == "history_unavailable"
    assert failure.headers == {"Retry-After": "2"}


def test_api_keys_file_plain_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# comment\nann sk-ann admin\n\nben sha256:{hashlib.sha256(b'sk-ben').hexdigest()}  # hashed\n")
    keys = APIKeys(*read_keys_file(path))
    assert keys.user_for("Bearer sk-ann") == "ann" and keys.user_for("bearer sk-ben") == "ben"
    assert keys.admins == {"ann"}
    with pytest.raises(APIError):
        keys.user_for("Bearer sk-nobody")
    for wrong in ("only-one-field\n", "ann sk-ann root\n"):
        path.write_text(wrong)
        with pytest.raises(ValueError, match="keys:1"):
            read_keys_file(path)


@dataclass
class TemplateOnlyEngine:
    """What fit_prompt reads from the engine, with the real tokenizer: the tests need no vLLM process."""

    tokenizer: PreTrainedTokenizerBase
    max_model_len: int
    default_sampling: dict[str, Any]

    def chat_prompt_ids(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        return chat_token_ids(self.tokenizer, messages, tools=tools)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def history(turns: int) -> list[Message]:
    messages = [Message(role="system", content="Rules.")]
    for i in range(turns):
        messages += [Message(role="user", content=f"q{i} " + "w " * 30), Message(role="assistant", content=f"a{i}")]
    return messages


def test_split_turns_pins_instructions() -> None:
    units = split_turns([*history(2), Message(role="developer", content="More rules."),
                         Message(role="assistant", content="unprompted")])
    assert [(pinned, [m["role"] for m in ms]) for pinned, ms in units] == [
        (True, ["system"]), (False, ["user", "assistant"]), (False, ["user", "assistant"]), (True, ["developer"]),
        (False, ["assistant"]),
    ]


def test_fit_drops_fewest_oldest_turns(tokenizer: PreTrainedTokenizerBase) -> None:
    new = [Message(role="user", content="now")]
    full = len(chat_token_ids(tokenizer, [*history(10), *new]))
    engine = TemplateOnlyEngine(tokenizer, max_model_len=full, default_sampling={})
    reserve = full // 3
    fitted = fit_prompt(engine, history(10), new, reserve, truncate=True, prompt_param="input")
    kept = [history(10)[0], *history(10)[1 + 2 * fitted.dropped_turns:], *new]
    assert fitted.ids == chat_token_ids(tokenizer, kept)
    assert len(fitted.ids) + reserve <= full
    one_fewer = [history(10)[0], *history(10)[2 * fitted.dropped_turns - 1:], *new]
    assert len(chat_token_ids(tokenizer, one_fewer)) + reserve > full
    assert fit_prompt(engine, history(10), new, 0, truncate=True, prompt_param="input").dropped_turns == 0
    with pytest.raises(Invalid, match="truncation='auto'"):
        fit_prompt(engine, history(10), new, reserve, truncate=False, prompt_param="input")
    with pytest.raises(Invalid, match="every earlier turn dropped"):
        fit_prompt(engine, history(10), [Message(role="user", content="w " * full)], reserve, True, "input")


def test_cached_history_follows_other_replicas_writes(shared_redis: RedisServer) -> None:
    """Two stores (two replicas' caches) on one Redis: appends and removals by one are seen by the other."""
    async def scenario() -> None:
        here, there = (HistoryStore(connect(shared_redis.url), ttl_seconds=0, max_items=50) for _ in range(2))
        await here.create_conversation("gus", "conv_cache", {}, turn("q0", "a0"))

        async def texts(store: HistoryStore) -> list[str]:
            return [item.text() for item in (await store.load("gus", "conv_cache")).items]

        assert await texts(here) == ["q0", "a0"]
        await here.append("gus", "conv_cache", turn("q1", "a1"))  # extends here's cache
        await there.append("gus", "conv_cache", turn("q2", "a2"))  # here's cache is now one revision behind
        assert await texts(here) == ["q0", "a0", "q1", "a1", "q2", "a2"]
        removed = (await there.load("gus", "conv_cache")).items[2].id
        await there.delete_item("gus", "conv_cache", removed)  # a removal: caches must reload in full
        assert await texts(here) == ["q0", "a0", "a1", "q2", "a2"]
        assert await here.load("hal", "conv_cache") is None  # the cache never bypasses the owner check
        await there.delete_conversation("gus", "conv_cache")
        assert await here.load("gus", "conv_cache") is None

    run(scenario())


def test_function_call_items_are_stored_and_replayed_as_tool_messages(store: HistoryStore) -> None:
    call = FunctionCallItem(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    result = FunctionCallOutputItem(call_id="call_1", output='{"sky": "clear"}')
    items = [MessageItem.of("user", "Weather in Paris?"), call, result, MessageItem.of("assistant", "Clear.")]

    async def scenario() -> list[Item]:
        await store.create_conversation("fay", "conv_tools", {}, items[:2])
        assert await store.append("fay", "conv_tools", items[2:])
        found = await store.load("fay", "conv_tools")
        assert found is not None and found.conversation.preview == "Weather in Paris?"
        return found.items

    assert run(scenario()) == items
    assert template_messages(items) == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "call_1"},
        {"role": "assistant", "content": "Clear."},
    ]


def plant_old_layout(old: redis.Redis) -> None:
    """Keys as the server before per-user hash tags wrote them: ann's conversation (TTL 500 s), two chained
    responses and a rate bucket."""
    items = turn("q1", "a1")
    old.hset("lima:conv:conv_old", mapping={"id": "conv_old", "owner": "ann", "created_at": 1,
                                            "updated_at": 1000, "metadata": "{}", "rev": 1, "cut": 0})
    old.rpush("lima:conv:conv_old:ids", *(item.id for item in items))
    old.hset("lima:conv:conv_old:items", mapping={item.id: item.model_dump_json() for item in items})
    old.zadd("lima:user:ann:convs", {"conv_old": 1000})
    for key in ("lima:conv:conv_old", "lima:conv:conv_old:ids", "lima:conv:conv_old:items"):
        old.expire(key, 500)
    old.set("lima:resp:resp_a", StoredResponse(id="resp_a", model="m", owner="ann").model_dump_json())
    old.set("lima:resp:resp_b", StoredResponse(id="resp_b", model="m", owner="ann",
                                               previous_response_id="resp_a").model_dump_json())
    old.hset("lima:rate:ann", mapping={"tokens": 1})


def test_the_old_key_layout_moves_whole_once_and_keeps_ttls(tmp_path: Path) -> None:
    """After the move (as a server does at start), the store finds everything, with its TTLs."""
    server = RedisServer(tmp_path / "redis", port=free_port()).start()
    try:
        old = server.client()
        plant_old_layout(old)

        async def scenario() -> None:
            store = HistoryStore(connect(server.url), ttl_seconds=3600, max_items=50)
            assert await migrate_key_layout(store.client) == (1, 2)
            assert await migrate_key_layout(store.client) == (0, 0)  # the marker: later starts skip the scan
            found = await store.load("ann", "conv_old")
            assert [item.text() for item in found.items] == ["q1", "a1"]
            assert [c.id for c in (await store.list_conversations("ann", 10, None, True))[0]] == ["conv_old"]
            assert [r.id for r in await store.response_chain("ann", "resp_b")] == ["resp_a", "resp_b"]
            assert 400 < await store.client.ttl(HistoryStore.conversation_keys("ann", "conv_old")[0]) <= 500
            assert await store.load("ben", "conv_old") is None
            await store.client.aclose()

        run(scenario())
        assert [key.decode() for key in old.scan_iter("lima:*") if not key.startswith(b"lima:{")] == ["lima:layout"]
    finally:
        server.stop()


def test_lima_history_migrate_moves_the_old_layout_before_servers_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = RedisServer(tmp_path / "redis", port=free_port()).start()
    try:
        plant_old_layout(server.client())
        assert main(["history", "migrate", "--redis-url", server.url]) == 0
        assert "moved 1 conversations and 2 responses" in capsys.readouterr().out
        assert main(["history", "migrate", "--redis-url", server.url]) == 0
        assert "nothing to move" in capsys.readouterr().out

        async def found() -> list[str]:
            store = HistoryStore(connect(server.url), ttl_seconds=3600, max_items=50)
            chain = await store.response_chain("ann", "resp_b")
            await store.client.aclose()
            return [r.id for r in chain]

        assert run(found()) == ["resp_a", "resp_b"]
    finally:
        server.stop()
    # Redis gone: one line saying so, exit 1, no traceback.
    assert main(["history", "migrate", "--redis-url", server.url]) == 1
    assert server.url in capsys.readouterr().out
