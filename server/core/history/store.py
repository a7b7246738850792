"""Conversations, their items and stored responses in Redis (redis-py's asyncio client).

Key layout: keys.py, which builds every key name; every key of a conversation expires together `ttl` after its
last write.

Every write that belongs to one turn is one Lua script (scripts.py), so a turn is stored whole or not at all, and
the owner check happens inside it: another user's id behaves exactly like a missing one. Each script checks
everything (key types included) before its first write, so one that fails leaves Redis unchanged.
"""

import functools
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as redis
from pydantic import ValidationError
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, ReadOnlyError, ResponseError, TimeoutError

from server.core import metrics
from server.core.failures import Corrupt, Invalid, QuotaExceeded, Unavailable
from server.core.history.items import ITEM, Item, MessageItem
from server.core.history.keys import conversation_keys, response_key, sizes_key, user_index, user_prefix
from server.core.history.objects import Conversation, StoredResponse
from server.core.history.scripts import (
    APPEND,
    CORRUPT,
    CREATE,
    DELETE_CONVERSATION,
    DELETE_ITEM,
    DELETE_RESPONSE,
    LOAD,
    RESPONSE_CHAIN,
    SAVE_RESPONSE,
    UPDATE_METADATA,
)
from server.core.ids import is_issued

# What "the store is unavailable" means everywhere (503 for requests, fail-open for the rate limit).
REDIS_UNAVAILABLE = (ConnectionError, TimeoutError, BusyLoadingError, ReadOnlyError, OSError)
P = ParamSpec("P")
CACHED_CONVERSATIONS = 512
T = TypeVar("T")

class ConversationFull(Invalid):
    def __init__(self, conversation_id: str, max_items: int) -> None:
        super().__init__(
            f"Conversation '{conversation_id}' already holds the maximum of {max_items} items; "
            "start a new conversation or delete items.", param="conversation", code="conversation_full",
        )

# What the scripts answer when a write would pass a per-user quota (scripts.py).
OVER_CONVERSATIONS, OVER_BYTES = -3, -4


def conversation_quota_exceeded(most: int) -> QuotaExceeded:
    return QuotaExceeded(
        f"Conversation quota exceeded: {most:,} conversations per user (--max-conversations-per-user). "
        "Delete conversations to make room.", code="quota_exceeded",
    )


def bytes_quota_exceeded(most: int, used: int, needed: int, param: str | None) -> QuotaExceeded:
    return QuotaExceeded(
        f"Stored history quota exceeded: {most:,} bytes per user (--max-stored-bytes-per-user); this request "
        f"needs {needed:,} more and {used:,} are in use. Delete conversations or responses to make room.",
        param=param, code="quota_exceeded",
    )


def decided(quota: str, allowed: bool) -> None:
    metrics.QUOTA_DECISIONS.labels(quota, "allowed" if allowed else "refused").inc()


def store_errors_as_503(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Redis down, restarting or read-only: a clear 503 for this request; the client reconnects on the next.
    A key of the wrong type (a script's LIMA_CORRUPT check, or Redis' WRONGTYPE): Corrupt, naming what is wrong.
    Every operation is timed and every such failure counted (lima_history_* metrics)."""

    operation = method.__name__
    metrics.HISTORY_ERRORS.labels(operation)  # the series exist at zero from the start, for alerts
    metrics.HISTORY_LATENCY.labels(operation)

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        except REDIS_UNAVAILABLE as exc:
            metrics.HISTORY_ERRORS.labels(operation).inc()
            raise Unavailable(
                f"The conversation store (Redis) is unavailable ({str(exc).rstrip('.')}). Nothing was stored "
                "by this request; stateless /v1/chat/completions keeps working. Retry shortly.",
                code="history_unavailable", retry_after=2,
            ) from exc
        except ResponseError as exc:
            if not str(exc).startswith(CORRUPT) and "WRONGTYPE" not in str(exc):
                raise
            metrics.HISTORY_ERRORS.labels(operation).inc()
            what = str(exc).removeprefix(CORRUPT).strip() if str(exc).startswith(CORRUPT) else "a key of the wrong type"
            raise Corrupt(f"The conversation store holds corrupt data ({what}); nothing was written.") from exc
        finally:
            metrics.HISTORY_LATENCY.labels(operation).observe(time.perf_counter() - started)

    return wrapper


# One Redis, a Sentinel-managed master, or a cluster: the store uses what they have in common.
RedisClient = redis.Redis | RedisCluster


def connect(url: str) -> RedisClient:
    """redis://, rediss://, unix:// as redis-py reads them; redis+sentinel://h1:26379,h2:26379/master[/db];
    redis+cluster://h1:p1,h2:p2 (Redis Cluster, any nodes of it: redis-py's cluster client finds the rest and
    follows slot moves and failovers)."""
    # A pooled connection that died with a Redis restart is retried on a fresh one, briefly: when Redis is
    # really down the caller gets its 503 within about half a second.
    options: dict[str, Any] = {
        "socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=3),
        "retry_on_error": [ConnectionError, TimeoutError],
    }
    if url.startswith("redis+cluster://"):
        startup = [ClusterNode(host, int(port or 6379))
                   for host, _, port in (node.partition(":") for node in url.removeprefix("redis+cluster://")
                                         .strip("/").split(","))]
        return RedisCluster(startup_nodes=startup, **options)
    if not url.startswith("redis+sentinel://"):
        return redis.Redis.from_url(url, **options)
    hosts, _, path = url.removeprefix("redis+sentinel://").partition("/")
    master, _, db = path.partition("/")
    if not master:
        raise ValueError("a Sentinel URL names the master: redis+sentinel://host:26379[,host:port]/mymaster[/db]")
    nodes = [(host, int(port or 26379)) for host, _, port in (node.partition(":") for node in hosts.split(","))]
    return Sentinel(nodes, **options).master_for(master, db=int(db or 0))


def now_ms() -> int:
    return int(time.time() * 1000)


def conversation_object(fields: dict[bytes, bytes] | list[bytes]) -> Conversation:
    """The conversation object from its hash (HGETALL as a dict, or as the flat list Lua returns)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    value = {key.decode(): raw.decode() for key, raw in fields.items()}
    return Conversation(
        id=value["id"], created_at=int(value["created_at"]), metadata=json.loads(value.get("metadata", "{}")),
        updated_at=int(value.get("updated_at", 0)) // 1000, preview=value.get("preview", ""),
    )


def stored_record(raw: bytes | str) -> StoredResponse:
    """A stored response read back; one that does not parse is reported as corrupt, not as a server fault."""
    try:
        return StoredResponse.model_validate_json(raw)
    except ValidationError as exc:
        raise Corrupt(f"A stored response is unreadable: {exc.errors()[0]['msg']}") from exc


@dataclass
class StoredConversation:
    conversation: Conversation
    items: list[Item]


class HistoryStore:
    def __init__(self, client: RedisClient, ttl_seconds: int, max_items: int, max_conversations_per_user: int = 0,
                 max_stored_bytes_per_user: int = 0) -> None:
        """max_conversations_per_user, max_stored_bytes_per_user: the per-user quotas (0 = no cap)."""
        self.client = client
        self.ttl = ttl_seconds
        self.max_items = max_items
        self.max_conversations = max_conversations_per_user
        self.max_bytes = max_stored_bytes_per_user
        self._load = client.register_script(LOAD)
        self._create = client.register_script(CREATE)
        self._append = client.register_script(APPEND)
        self._update_metadata = client.register_script(UPDATE_METADATA)
        self._delete_conversation = client.register_script(DELETE_CONVERSATION)
        self._delete_item = client.register_script(DELETE_ITEM)
        self._response_chain = client.register_script(RESPONSE_CHAIN)
        self._save_response = client.register_script(SAVE_RESPONSE)
        self._delete_response = client.register_script(DELETE_RESPONSE)
        # conversation key -> (revision, items): this process's copy of recently used histories.
        self._cache: OrderedDict[str, tuple[int, list[Item]]] = OrderedDict()

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except REDIS_UNAVAILABLE:
            return False

    @store_errors_as_503
    async def create_conversation(
        self, owner: str, conversation_id: str, metadata: dict[str, str], items: Sequence[Item]
    ) -> Conversation:
        if len(items) > self.max_items:
            raise ConversationFull(conversation_id, self.max_items)
        now = now_ms()
        fields: dict[str, Any] = {
            "id": conversation_id, "owner": owner, "created_at": now // 1000, "updated_at": now,
            "metadata": json.dumps(metadata),
        }
        if preview := preview_of(items):
            fields["preview"] = preview
        pairs = [value for item in items for value in (item.id, item.model_dump_json())]
        created, *usage = await self._create(
            keys=[*conversation_keys(owner, conversation_id), user_index(owner), sizes_key(owner)],
            args=[owner, conversation_id, self.ttl, now, now // 1000, fields["metadata"], preview_of(items),
                  self.max_conversations, self.max_bytes, user_prefix(owner), *pairs],
        )
        if created == OVER_CONVERSATIONS:
            decided("conversations", allowed=False)
            raise conversation_quota_exceeded(self.max_conversations)
        if created == OVER_BYTES:
            if self.max_conversations:
                decided("conversations", allowed=True)
            decided("stored_bytes", allowed=False)
            raise bytes_quota_exceeded(self.max_bytes, usage[0], usage[1], None)
        if not created:  # ids are uuid4s: only a store already holding this id's keys gets here
            raise Corrupt(f"The conversation store already holds keys of the new conversation '{conversation_id}'; "
                          "nothing was written.")
        if self.max_conversations:
            decided("conversations", allowed=True)
        if self.max_bytes:
            decided("stored_bytes", allowed=True)
        return conversation_object({k.encode(): str(v).encode() for k, v in fields.items()})

    @store_errors_as_503
    async def load(self, owner: str, conversation_id: str) -> StoredConversation | None:
        """The conversation and all its items in order, in one round trip; None if missing or not the owner's.

        Items already cached by this process are not sent again when the conversation only grew since: a turn
        at 200 stored turns then moves two items, not four hundred. Redis' revision number decides, so a
        replica's cache never serves a stale or another user's history."""
        keys = conversation_keys(owner, conversation_id)
        rev, cached = self._cache.get(keys[0], (-1, []))
        found = await self._load(keys=keys, args=[owner, rev, len(cached)])
        if found is None:
            self._cache.pop(keys[0], None)
            return None
        meta, raw_items, first_sent = found
        items = [
            *(cached if first_sent else ()),
            *(ITEM.validate_json(raw) for raw in raw_items if raw is not None),
        ]
        fields = dict(zip(meta[::2], meta[1::2], strict=True))
        self._remember(keys[0], int(fields.get(b"rev", 0)), items)
        return StoredConversation(conversation_object(fields), items)

    def _remember(self, key: str, rev: int, items: list[Item]) -> None:
        self._cache[key] = (rev, items)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHED_CONVERSATIONS:
            self._cache.popitem(last=False)

    async def get_conversation(self, owner: str, conversation_id: str) -> Conversation | None:
        found = await self.load(owner, conversation_id)
        return found.conversation if found else None

    @store_errors_as_503
    async def append(
        self, owner: str, conversation_id: str, items: Sequence[Item], response: StoredResponse | None = None
    ) -> bool:
        """Add one turn's items (and its response record) atomically; False if the conversation is gone."""
        pairs = [value for item in items for value in (item.id, item.model_dump_json())]
        keys = conversation_keys(owner, conversation_id)
        count, *rev = await self._append(
            keys=[*keys, user_index(owner), sizes_key(owner),
                  *([response_key(owner, response.id)] if response else [])],
            args=[owner, conversation_id, self.max_items, self.ttl, now_ms(), preview_of(items),
                  response.model_dump_json() if response else "", response.id if response else "", self.max_bytes,
                  user_prefix(owner), *pairs],
        )
        if count == -2:
            raise ConversationFull(conversation_id, self.max_items)
        if count == OVER_BYTES:
            decided("stored_bytes", allowed=False)
            raise bytes_quota_exceeded(self.max_bytes, rev[0], rev[1], "conversation")
        if count < 0:
            self._cache.pop(keys[0], None)
            return False
        if self.max_bytes:
            decided("stored_bytes", allowed=True)
        known_rev, known_items = self._cache.get(keys[0], (-1, []))
        if rev and known_rev == rev[0] - 1:  # nobody else wrote in between: the cache stays whole
            self._remember(keys[0], rev[0], [*known_items, *items])
        return True

    @store_errors_as_503
    async def update_metadata(
        self, owner: str, conversation_id: str, metadata: dict[str, str]
    ) -> Conversation | None:
        fields = await self._update_metadata(
            keys=conversation_keys(owner, conversation_id)[:1], args=[owner, json.dumps(metadata)]
        )
        return conversation_object(fields) if fields else None

    @store_errors_as_503
    async def delete_conversation(self, owner: str, conversation_id: str) -> bool:
        keys = [*conversation_keys(owner, conversation_id), user_index(owner), sizes_key(owner)]
        return bool(await self._delete_conversation(keys=keys, args=[owner, conversation_id]))

    @store_errors_as_503
    async def delete_item(self, owner: str, conversation_id: str, item_id: str) -> Conversation | None:
        """The conversation after the item's removal; None if either is missing (an item id of another shape is)."""
        if not is_issued("item", item_id):
            return None
        fields = await self._delete_item(keys=[*conversation_keys(owner, conversation_id), sizes_key(owner)],
                                         args=[owner, item_id, conversation_id])
        return conversation_object(fields) if fields else None

    @store_errors_as_503
    async def list_conversations(
        self, owner: str, limit: int, after: str | None, newest_first: bool
    ) -> tuple[list[Conversation], bool]:
        """One page of the caller's conversations by last activity, and whether more follow."""
        index = user_index(owner)
        start = 0
        if after is not None and is_issued("conversation", after):  # an unknown cursor (or malformed): the top
            rank = await (self.client.zrevrank if newest_first else self.client.zrank)(index, after)
            start = 0 if rank is None else int(cast(int, rank)) + 1
        read = self.client.zrevrange if newest_first else self.client.zrange
        ids = [cast(bytes, raw).decode() for raw in await read(index, start, start + limit)]
        async with self.client.pipeline(transaction=False) as pipe:
            for conversation_id in ids[:limit]:
                if is_issued("conversation", conversation_id):  # else read as expired, and dropped below
                    pipe.hgetall(conversation_keys(owner, conversation_id)[0])
            found = iter(await pipe.execute())
            hashes = [next(found) if is_issued("conversation", cid) else {} for cid in ids[:limit]]
        expired = [cid for cid, fields in zip(ids, hashes, strict=False) if not fields]
        if expired:  # their keys timed out (TTL); drop them from the index too
            await self.client.zrem(index, *expired)
        return [conversation_object(fields) for fields in hashes if fields], len(ids) > limit

    @store_errors_as_503
    async def save_response(self, record: StoredResponse) -> None:
        """Store a response made outside a conversation (one script: the byte quota is checked and counted)."""
        saved, *usage = await self._save_response(
            keys=[response_key(record.owner, record.id), sizes_key(record.owner)],
            args=[record.model_dump_json(), record.id, self.ttl, self.max_bytes, user_prefix(record.owner)],
        )
        if self.max_bytes:
            decided("stored_bytes", allowed=saved != OVER_BYTES)
        if saved == OVER_BYTES:
            raise bytes_quota_exceeded(self.max_bytes, usage[0], usage[1], None)

    @store_errors_as_503
    async def get_response(self, owner: str, response_id: str) -> StoredResponse | None:
        raw = await self.client.get(response_key(owner, response_id))
        record = stored_record(cast(bytes, raw)) if raw else None
        return record if record and record.owner == owner else None

    @store_errors_as_503
    async def delete_response(self, owner: str, response_id: str) -> bool:
        """False if missing or another user's (one script: the owner check and the byte count go with it)."""
        return bool(await self._delete_response(keys=[response_key(owner, response_id), sizes_key(owner)],
                                                args=[owner, response_id]))

    @store_errors_as_503
    async def response_chain(self, owner: str, response_id: str) -> list[StoredResponse] | None:
        """The response and its previous_response_id ancestors, oldest first; None if missing."""
        # A record that is not JSON, or a key of the wrong type on the way: Corrupt (store_errors_as_503).
        chain = await self._response_chain(keys=[response_key(owner, response_id)],
                                           args=[f"{user_prefix(owner)}resp:", owner, self.max_items])
        return [stored_record(raw) for raw in reversed(chain)] if chain else None


def preview_of(items: Sequence[Item]) -> str:
    """The first user message's text, shortened: the title a conversation list shows."""
    return next((item.text()[:120] for item in items if isinstance(item, MessageItem) and item.role == "user"), "")
