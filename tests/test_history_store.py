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
from prometheus_client import REGISTRY
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from harness.live_server import free_port
from lima.cli import main
from model_prep.chat_format import Message, chat_token_ids
from server.api.conversations.protocol import ConversationCreate
from server.api.errors import as_api_error
from server.api.protocol import input_items
from server.core.auth import APIKeys, RejectedKey, read_keys_file
from server.core.failures import Corrupt, Invalid, NotFound, QuotaExceeded, Unavailable
from server.core.history.items import FunctionCallItem, FunctionCallOutputItem, Item, MessageItem
from server.core.history.keys import conversation_keys, response_key, sizes_key, user_index
from server.core.history.migrate import migrate_key_layout
from server.core.history.objects import StoredResponse
from server.core.history.redis_server import RedisServer
from server.core.history.store import ConversationFull, HistoryStore, connect
from server.core.ids import (
    CONVERSATION,
    FUNCTION_CALL,
    FUNCTION_CALL_OUTPUT,
    ITEM_PREFIXES,
    MESSAGE,
    PREFIXES,
    RESPONSE,
    checked,
    is_issued,
    new_id,
)
from server.core.prompt import fit_prompt, split_turns, template_messages

# Ids of the shape the server issues (server/core/ids.py): the store refuses any other.
CONV_CACHE = "conv_" + b"cache".hex().rjust(32, "0")
CONV_OLD = "conv_" + b"old".hex().rjust(32, "0")
CONV_SHORT = "conv_" + b"short".hex().rjust(32, "0")
CONV_T1 = "conv_" + b"t1".hex().rjust(32, "0")
CONV_TOOLS = "conv_" + b"tools".hex().rjust(32, "0")
CONV_X = "conv_" + b"x".hex().rjust(32, "0")
RESP_A = "resp_" + b"a".hex().rjust(32, "0")
RESP_B = "resp_" + b"b".hex().rjust(32, "0")


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def store(shared_redis: RedisServer) -> Iterator[HistoryStore]:
    yield HistoryStore(connect(shared_redis.url), ttl_seconds=3600, max_items=6)


def turn(question: str, answer: str) -> list[MessageItem]:
    return [MessageItem.of("user", question), MessageItem.of("assistant", answer)]


def test_turns_append_in_order_with_ttl_and_owner(store: HistoryStore) -> None:
    async def scenario() -> None:
        await store.create_conversation("ann", CONV_T1, {"title": "x"}, [MessageItem.of("system", "Be kind.")])
        assert await store.append("ann", CONV_T1, turn("q1", "a1"))
        assert await store.append("ann", CONV_T1, turn("q2", "a2"))
        assert not await store.append("ben", CONV_T1, turn("q3", "a3"))  # another owner: as if missing
        found = await store.load("ann", CONV_T1)
        assert [i.text() for i in found.items] == ["Be kind.", "q1", "a1", "q2", "a2"]
        assert found.conversation.preview == "q1"
        assert await store.load("ben", CONV_T1) is None
        for key in [*conversation_keys("ann", CONV_T1), user_index("ann")]:
            assert 3500 < await store.client.ttl(key) <= 3600
        with pytest.raises(ConversationFull):  # 5 items + 2 > 6: refused whole, nothing written
            await store.append("ann", CONV_T1, turn("q3", "a3"))
        assert len((await store.load("ann", CONV_T1)).items) == 5

    run(scenario())


def test_expired_conversations_leave_the_listing(shared_redis: RedisServer) -> None:
    short = HistoryStore(connect(shared_redis.url), ttl_seconds=1, max_items=10)

    async def scenario() -> None:
        await short.create_conversation("cy", CONV_SHORT, {}, turn("q", "a"))
        assert [c.id for c in (await short.list_conversations("cy", 10, None, True))[0]] == [CONV_SHORT]
        await asyncio.sleep(1.5)
        await short.client.zadd(user_index("cy"), {CONV_SHORT: 1})  # index outlives the conversation
        assert (await short.list_conversations("cy", 10, None, True))[0] == []
        assert await short.client.zcard(user_index("cy")) == 0

    run(scenario())


def test_response_chain_walks_previous_ids_for_the_owner_only(store: HistoryStore) -> None:
    async def scenario() -> None:
        previous = None
        for index in range(4):
            record = StoredResponse(id=f"resp_{index:032x}", model="m", previous_response_id=previous, owner="dee")
            await store.save_response(record)
            previous = record.id
        chain = await store.response_chain("dee", f"resp_{3:032x}")
        assert [r.id for r in chain] == [f"resp_{index:032x}" for index in range(4)]
        assert await store.response_chain("eve", f"resp_{3:032x}") is None

    run(scenario())


def test_unreachable_redis_is_a_503() -> None:
    dead = HistoryStore(connect("redis://127.0.0.1:1"), ttl_seconds=0, max_items=10)
    with pytest.raises(Unavailable) as error:
        run(dead.load("anyone", CONV_X))
    failure = as_api_error(error.value)
    assert failure.status == 503 and failure.body.code == "history_unavailable"
    assert failure.headers == {"Retry-After": "2"}


def test_api_keys_file_plain_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# comment\nann sk-ann admin\n\nben sha256:{hashlib.sha256(b'sk-ben').hexdigest()}  # hashed\n")
    keys = APIKeys(*read_keys_file(path))
    assert keys.user_for("Bearer sk-ann") == "ann" and keys.user_for("bearer sk-ben") == "ben"
    assert keys.admins == {"ann"}
    with pytest.raises(RejectedKey):
        keys.user_for("Bearer sk-nobody")
    rejected = as_api_error(RejectedKey("Incorrect API key provided.", code="invalid_api_key"))
    assert rejected.status == 401 and rejected.headers == {"WWW-Authenticate": "Bearer"}
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
        await here.create_conversation("gus", CONV_CACHE, {}, turn("q0", "a0"))

        async def texts(store: HistoryStore) -> list[str]:
            return [item.text() for item in (await store.load("gus", CONV_CACHE)).items]

        assert await texts(here) == ["q0", "a0"]
        await here.append("gus", CONV_CACHE, turn("q1", "a1"))  # extends here's cache
        await there.append("gus", CONV_CACHE, turn("q2", "a2"))  # here's cache is now one revision behind
        assert await texts(here) == ["q0", "a0", "q1", "a1", "q2", "a2"]
        removed = (await there.load("gus", CONV_CACHE)).items[2].id
        await there.delete_item("gus", CONV_CACHE, removed)  # a removal: caches must reload in full
        assert await texts(here) == ["q0", "a0", "a1", "q2", "a2"]
        assert await here.load("hal", CONV_CACHE) is None  # the cache never bypasses the owner check
        await there.delete_conversation("gus", CONV_CACHE)
        assert await here.load("gus", CONV_CACHE) is None

    run(scenario())


def test_function_call_items_are_stored_and_replayed_as_tool_messages(store: HistoryStore) -> None:
    call = FunctionCallItem(call_id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    result = FunctionCallOutputItem(call_id="call_1", output='{"sky": "clear"}')
    items = [MessageItem.of("user", "Weather in Paris?"), call, result, MessageItem.of("assistant", "Clear.")]

    async def scenario() -> list[Item]:
        await store.create_conversation("fay", CONV_TOOLS, {}, items[:2])
        assert await store.append("fay", CONV_TOOLS, items[2:])
        found = await store.load("fay", CONV_TOOLS)
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
    old.hset(f"lima:conv:{CONV_OLD}", mapping={"id": CONV_OLD, "owner": "ann", "created_at": 1,
                                            "updated_at": 1000, "metadata": "{}", "rev": 1, "cut": 0})
    old.rpush(f"lima:conv:{CONV_OLD}:ids", *(item.id for item in items))
    old.hset(f"lima:conv:{CONV_OLD}:items", mapping={item.id: item.model_dump_json() for item in items})
    old.zadd("lima:user:ann:convs", {CONV_OLD: 1000})
    for key in (f"lima:conv:{CONV_OLD}", f"lima:conv:{CONV_OLD}:ids", f"lima:conv:{CONV_OLD}:items"):
        old.expire(key, 500)
    old.set(f"lima:resp:{RESP_A}", StoredResponse(id=RESP_A, model="m", owner="ann").model_dump_json())
    old.set(f"lima:resp:{RESP_B}", StoredResponse(id=RESP_B, model="m", owner="ann",
                                               previous_response_id=RESP_A).model_dump_json())
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
            found = await store.load("ann", CONV_OLD)
            assert [item.text() for item in found.items] == ["q1", "a1"]
            assert [c.id for c in (await store.list_conversations("ann", 10, None, True))[0]] == [CONV_OLD]
            assert [r.id for r in await store.response_chain("ann", RESP_B)] == [RESP_A, RESP_B]
            assert 400 < await store.client.ttl(conversation_keys("ann", CONV_OLD)[0]) <= 500
            assert await store.load("ben", CONV_OLD) is None
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
            chain = await store.response_chain("ann", RESP_B)
            await store.client.aclose()
            return [r.id for r in chain]

        assert run(found()) == [RESP_A, RESP_B]
    finally:
        server.stop()
    # Redis gone: one line saying so, exit 1, no traceback.
    assert main(["history", "migrate", "--redis-url", server.url]) == 1
    assert server.url in capsys.readouterr().out


def test_ids_module_accepts_exactly_the_issued_shapes() -> None:
    for kind, prefixes in PREFIXES.items():
        for prefix in prefixes:
            issued = new_id(prefix)
            assert is_issued(kind, issued) and checked(kind, issued) == issued
            for other in set(PREFIXES) - {kind}:
                assert not is_issued(other, issued)
    good = new_id(CONVERSATION)
    for bad in [good + ":ids", good + ":items", good + "\n", good + "\r\n", good.upper(), "CONV_" + good[5:],
                good[:-1], good + "0", good[:-1] + "g", good[:-1] + "*", good[:-1] + "\u0660", good[:-1] + "\uff10",
                " " + good, "conv_", "", "conv_" + "a" * 10_000, CONV_T1.replace("conv_", "resp_"), None, 1]:
        assert not is_issued("conversation", bad), bad
    assert ITEM_PREFIXES == (MESSAGE, FUNCTION_CALL, FUNCTION_CALL_OUTPUT)
    with pytest.raises(NotFound) as missing:
        checked("conversation", good + ":ids")
    failure = as_api_error(missing.value)
    assert (failure.status, failure.body.code) == (404, "conversation_not_found")
    with pytest.raises(NotFound):  # the key builders are the last line of defence
        conversation_keys("ann", good + ":ids")
    with pytest.raises(NotFound):
        response_key("ann", "resp_*")


def test_input_items_get_ids_the_server_issues() -> None:
    """A client cannot name a stored item: calls and outputs it sends get new ids (as OpenAI names items itself)."""
    sent = ConversationCreate.model_validate({"items": [
        {"type": "function_call", "id": "x:ids", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "id": "fco_" + "0" * 32, "call_id": "c1", "output": "ok"},
        {"role": "user", "content": "hi", "id": "mine"},
    ]})
    stored = input_items(sent.items)
    assert [item.id[:item.id.index("_") + 1] for item in stored] == [FUNCTION_CALL, FUNCTION_CALL_OUTPUT, MESSAGE]
    assert all(is_issued("item", item.id) for item in stored) and stored[1].id != "fco_" + "0" * 32


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own: the checks below compare digests of the whole keyspace."""
    server = RedisServer(tmp_path_factory.mktemp("own-redis"), port=free_port()).start()
    yield server
    server.stop()


def snapshot(client: redis.Redis) -> tuple[Any, ...]:
    """Everything Redis holds: its digest (keys, types, values), and each key's serialized value and TTL or none."""
    keys = sorted(client.scan_iter("*"))
    return (client.execute_command("DEBUG", "DIGEST"), [(key, client.dump(key), client.ttl(key) > 0) for key in keys])


OWNER = "olga"
CONV = new_id(CONVERSATION)
NEW_CONV = new_id(CONVERSATION)
RESPONSE_ID = new_id(RESPONSE)
conv_key, ids_key, items_key = conversation_keys(OWNER, CONV)
index_key = user_index(OWNER)
owner_response_key = response_key(OWNER, RESPONSE_ID)
owner_sizes_key = sizes_key(OWNER)


def planted_as(kind: str) -> Any:
    """Replaces a key with one of the wrong type (a corrupt store: no request can make one once ids are checked)."""
    def plant(client: redis.Redis, key: str) -> None:
        client.delete(key)
        {"string": lambda: client.set(key, "x"), "hash": lambda: client.hset(key, "x", "1"),
         "list": lambda: client.rpush(key, "x"), "zset": lambda: client.zadd(key, {"x": 1})}[kind]()
    return plant


def append_with_response(store: HistoryStore, _: str) -> Any:
    return store.append(OWNER, CONV, turn("q", "a"), StoredResponse(id=RESPONSE_ID, model="m", owner=OWNER))


def capped(store: HistoryStore, conversations: int = 0, stored_bytes: int = 0) -> HistoryStore:
    """The same store with per-user quotas (its conversation's two items take a few hundred bytes)."""
    return HistoryStore(store.client, store.ttl, store.max_items, conversations, stored_bytes)


def save_response(store: HistoryStore, _: str) -> Any:
    return store.save_response(StoredResponse(id=RESPONSE_ID, model="m", owner=OWNER))


def stale_entry(client: redis.Redis, key: str) -> None:
    """An entry of a conversation that expired: a reconciliation would drop it, a refused write must not."""
    if key == index_key:
        client.zadd(key, {new_id(CONVERSATION): 1})
    else:
        client.hset(key, new_id(CONVERSATION), 50)


# (what is planted, where, the operation (given the first item's id), what it must raise or return): each
# leaves Redis exactly as it was.
CORRUPTIONS: dict[str, tuple[Any, str, Any, Any]] = {
    "append: index is a string": (planted_as("string"), index_key, append_with_response, Corrupt),
    "append: response is a hash": (planted_as("hash"), owner_response_key, append_with_response, Corrupt),
    "append: items are a list": (planted_as("list"), items_key, append_with_response, Corrupt),
    "append: ids are a string": (planted_as("string"), ids_key, append_with_response, Corrupt),
    "append: revision not a number": (lambda c, k: c.hset(k, "rev", "x"), conv_key, append_with_response, Corrupt),
    "append: full": (lambda c, k: c.rpush(k, *"abcd"), ids_key, append_with_response, ConversationFull),
    "append: another owner": (lambda c, k: c.hset(k, "owner", "other"), conv_key, append_with_response, False),
    "create: index is a string": (planted_as("string"), index_key,
                                  lambda s, _: s.create_conversation(OWNER, NEW_CONV, {}, turn("q", "a")), Corrupt),
    "create: items are a list": (planted_as("list"), conversation_keys(OWNER, NEW_CONV)[2],
                                 lambda s, _: s.create_conversation(OWNER, NEW_CONV, {}, turn("q", "a")), Corrupt),
    "update metadata: conversation is a list": (planted_as("list"), conv_key,
                                                lambda s, _: s.update_metadata(OWNER, CONV, {"k": "v"}), Corrupt),
    "delete conversation: index is a string": (planted_as("string"), index_key,
                                               lambda s, _: s.delete_conversation(OWNER, CONV), Corrupt),
    "delete conversation: items are a list": (planted_as("list"), items_key,
                                              lambda s, _: s.delete_conversation(OWNER, CONV), Corrupt),
    "delete item: items are a list": (planted_as("list"), items_key, lambda s, item: s.delete_item(OWNER, CONV, item),
                                      Corrupt),
    "delete item: revision not a number": (lambda c, k: c.hset(k, "rev", "1.5"), conv_key,
                                           lambda s, item: s.delete_item(OWNER, CONV, item), Corrupt),
    "load: ids are a string": (planted_as("string"), ids_key, lambda s, _: s.load(OWNER, CONV), Corrupt),
    "append: sizes are a string": (planted_as("string"), owner_sizes_key, append_with_response, Corrupt),
    "append: a byte count not a number": (lambda c, k: c.hset(k, CONV, "x"), owner_sizes_key, append_with_response,
                                          Corrupt),
    "append: over the byte quota": (stale_entry, owner_sizes_key,
                                    lambda s, _: append_with_response(capped(s, 0, 100), _), QuotaExceeded),
    "create: over the conversation quota": (stale_entry, index_key, lambda s, _: capped(s, 1).create_conversation(
        OWNER, NEW_CONV, {}, turn("q", "a")), QuotaExceeded),
    "create: over the byte quota": (stale_entry, owner_sizes_key, lambda s, _: capped(s, 0, 100).create_conversation(
        OWNER, NEW_CONV, {}, turn("q", "a")), QuotaExceeded),
    "save response: sizes are a list": (planted_as("list"), owner_sizes_key, save_response, Corrupt),
    "save response: over the byte quota": (stale_entry, owner_sizes_key,
                                           lambda s, _: save_response(capped(s, 0, 100), _), QuotaExceeded),
    "delete response: sizes are a string": (planted_as("string"), owner_sizes_key,
                                            lambda s, _: s.delete_response(OWNER, RESPONSE_ID), Corrupt),
    "delete conversation: a byte count not a number": (lambda c, k: c.hset(k, "total", "1e3"), owner_sizes_key,
                                                       lambda s, _: s.delete_conversation(OWNER, CONV), Corrupt),
    "delete item: sizes are a string": (planted_as("string"), owner_sizes_key,
                                        lambda s, item: s.delete_item(OWNER, CONV, item), Corrupt),
    "response chain: response is a hash": (planted_as("hash"), owner_response_key,
                                           lambda s, _: s.response_chain(OWNER, RESPONSE_ID), Corrupt),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_failing_script_writes_nothing(own_redis: RedisServer, case: str) -> None:
    """Redis keeps a script's writes made before an error: so every check comes before the first write."""
    plant, key, operation, expected = CORRUPTIONS[case]
    client = own_redis.client()
    client.flushall()
    store = HistoryStore(connect(own_redis.url), ttl_seconds=3600, max_items=6)

    async def scenario() -> None:
        await store.create_conversation(OWNER, CONV, {"k": "v"}, turn("q0", "a0"))
        first = (await store.load(OWNER, CONV)).items[0].id
        plant(client, key)
        before = snapshot(client)
        if isinstance(expected, type):
            with pytest.raises(expected) as failure:
                await operation(store, first)
            if expected is Corrupt:
                assert "wrong type" in failure.value.message or "holds a" in failure.value.message \
                    or "integer" in failure.value.message
                assert as_api_error(failure.value).status == 500
        else:
            assert await operation(store, first) == expected
        assert snapshot(client) == before, f"{case}: Redis changed"
        await store.client.aclose()

    run(scenario())


def quota_decisions(quota: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("lima_quota_decisions_total", {"quota": quota, "outcome": outcome}) or 0.0


def stored_bytes(client: redis.Redis, owner: str) -> dict[str, int]:
    """What the user really stores, read key by key: conv id -> the HSTRLEN sum of its items hash, resp id -> the
    record's STRLEN, and their total (what the sizes hash must say)."""
    prefix = user_index(owner).removesuffix("convs")
    found: dict[str, int] = {}
    for raw in client.scan_iter(f"{prefix}*"):
        key = raw.decode()
        if key.endswith(":items"):
            found[key.split(":")[-2]] = sum(client.hstrlen(key, field) for field in client.hkeys(key))
        elif key.startswith(f"{prefix}resp:"):
            found[key.split(":")[-1]] = client.strlen(key)
    return {**{name: size for name, size in found.items() if size}, "total": sum(found.values())}


def sizes_hash(client: redis.Redis, owner: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(sizes_key(owner)).items()}


def test_the_conversation_quota_refuses_past_the_cap_and_counts_expired_ones_out(own_redis: RedisServer) -> None:
    client = own_redis.client()
    client.flushall()
    store = HistoryStore(connect(own_redis.url), ttl_seconds=3600, max_items=6, max_conversations_per_user=2)
    first, second, third, fourth = (new_id(CONVERSATION) for _ in range(4))

    async def scenario() -> None:
        await store.create_conversation("quinn", first, {}, turn("q", "a"))
        await store.create_conversation("quinn", second, {}, [])
        await store.create_conversation("rae", third, {}, [])  # another user's count is their own
        allowed, refused = quota_decisions("conversations", "allowed"), quota_decisions("conversations", "refused")
        before = snapshot(client)
        with pytest.raises(QuotaExceeded) as over:
            await store.create_conversation("quinn", third, {}, turn("q", "a"))
        assert snapshot(client) == before  # nothing written
        failure = as_api_error(over.value)
        assert (failure.status, failure.body.code, failure.body.type) == (403, "quota_exceeded", "permission_error")
        assert failure.body.message == ("Conversation quota exceeded: 2 conversations per user "
                                        "(--max-conversations-per-user). Delete conversations to make room.")
        assert quota_decisions("conversations", "refused") == refused + 1
        assert await store.delete_conversation("quinn", first)
        await store.create_conversation("quinn", third, {}, [])  # room again
        assert quota_decisions("conversations", "allowed") == allowed + 1
        # `second` expires (its keys time out; the index entry lingers): it no longer counts, and leaves the index.
        client.delete(*conversation_keys("quinn", second))
        await store.create_conversation("quinn", fourth, {}, [])
        assert sorted(m.decode() for m in client.zrange(user_index("quinn"), 0, -1)) == sorted([third, fourth])
        with pytest.raises(QuotaExceeded):
            await store.create_conversation("quinn", new_id(CONVERSATION), {}, [])
        await store.client.aclose()

    run(scenario())


def test_stored_bytes_are_counted_exactly_capped_and_given_back(own_redis: RedisServer) -> None:
    client = own_redis.client()
    client.flushall()
    cap = 6000
    store = HistoryStore(connect(own_redis.url), ttl_seconds=3600, max_items=50, max_stored_bytes_per_user=cap)
    conv, other, alone, chained = (new_id(CONVERSATION), new_id(CONVERSATION), new_id(RESPONSE), new_id(RESPONSE))

    def counted() -> dict[str, int]:
        assert sizes_hash(client, "sam") == stored_bytes(client, "sam")  # the counts are the stored bytes, exactly
        return sizes_hash(client, "sam")

    async def scenario() -> None:
        await store.create_conversation("sam", conv, {}, [MessageItem.of("system", "Be brief."), *turn("q0", "é" * 50)])
        await store.append("sam", conv, turn("q1", "a1"), StoredResponse(id=chained, model="m", owner="sam",
                                                                       input=turn("q1", "a1")[:1]))
        await store.save_response(StoredResponse(id=alone, model="m", owner="sam"))
        await store.create_conversation("sam", other, {}, turn("x", "y"))
        sizes = counted()
        assert set(sizes) == {conv, other, alone, chained, "total"}
        assert 0 < client.ttl(sizes_key("sam")) <= 3600
        # Past the cap: refused whole, nothing written, the error names the limit and the usage.
        allowed, refused = quota_decisions("stored_bytes", "allowed"), quota_decisions("stored_bytes", "refused")
        before = snapshot(client)
        big = turn("q2", "w" * (cap - sizes["total"]))
        with pytest.raises(QuotaExceeded) as over:
            await store.append("sam", conv, big, StoredResponse(id=new_id(RESPONSE), model="m", owner="sam"))
        assert snapshot(client) == before
        failure = as_api_error(over.value)
        assert (failure.status, failure.body.code, failure.body.param) == (403, "quota_exceeded", "conversation")
        assert "6,000 bytes per user (--max-stored-bytes-per-user)" in failure.body.message
        assert f"{sizes['total']:,} are in use" in failure.body.message
        with pytest.raises(QuotaExceeded):
            await store.save_response(StoredResponse(id=new_id(RESPONSE), model="m", owner="sam",
                                                     input=[MessageItem.of("user", "w" * cap)]))
        with pytest.raises(QuotaExceeded):
            await store.create_conversation("sam", new_id(CONVERSATION), {}, big)
        assert snapshot(client) == before
        assert quota_decisions("stored_bytes", "refused") == refused + 3
        assert len((await store.load("sam", conv)).items) == 5
        # Removals give the bytes back.
        item = (await store.load("sam", conv)).items[2]
        await store.delete_item("sam", conv, item.id)
        assert counted()[conv] == sizes[conv] - len(item.model_dump_json().encode())
        assert await store.delete_response("sam", alone) and not await store.delete_response("tom", chained)
        assert alone not in counted()
        assert await store.delete_conversation("sam", other)
        assert set(counted()) == {conv, chained, "total"}  # the conversation's response records stay stored
        # `conv` expires behind the store's back: its bytes count again once a write needs them.
        fresh = turn("q", "w" * (cap - counted()[chained] - 600))  # 600: room for the JSON around the text
        needed = sum(len(item.model_dump_json().encode()) for item in fresh)
        client.delete(*conversation_keys("sam", conv))
        assert sizes_hash(client, "sam")["total"] + needed > cap >= stored_bytes(client, "sam")["total"] + needed
        await store.create_conversation("sam", other, {}, fresh)
        assert set(sizes_hash(client, "sam")) == {other, chained, "total"}
        assert counted()["total"] == sizes_hash(client, "sam")[chained] + needed
        assert quota_decisions("stored_bytes", "allowed") == allowed + 1
        await store.client.aclose()

    run(scenario())
