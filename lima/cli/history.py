"""`lima history migrate`: move stored conversations and responses of the key layout before per-user hash tags to
the current one, before upgraded servers start (they also do it at start-up; this lets an operator do it first,
see what moved, and keep the servers' start fast)."""

import argparse
import asyncio
import os
from collections.abc import Sequence

from redis.exceptions import RedisError

from server.core.history.migrate import migrate_key_layout
from server.core.history.store import connect


async def migrate(url: str) -> tuple[int, int]:
    client = connect(url)
    try:
        return await migrate_key_layout(client)
    finally:
        await client.aclose()


def history(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="lima history", description="Maintenance of the conversation store.")
    commands = parser.add_subparsers(dest="command", required=True)
    move = commands.add_parser("migrate", help="move keys of the old layout (lima:conv:<id>, lima:resp:<id>) to "
                                               "per-user hash tags; safe to run while servers run, and again")
    move.add_argument("--redis-url", default=os.environ.get("LIMA_REDIS_URL") or os.environ.get("REDIS_URL"),
                      required=not (os.environ.get("LIMA_REDIS_URL") or os.environ.get("REDIS_URL")),
                      help="the Redis the servers share (REDIS_URL or LIMA_REDIS_URL); redis://, rediss://, "
                           "unix://, redis+sentinel://")
    args = parser.parse_args(argv)
    if args.redis_url.startswith("redis+cluster://"):
        parser.error("a Redis Cluster never held the old layout (servers before per-user hash tags could not use "
                     "one): migrate the single Redis first, then move its data into the cluster, e.g. with "
                     "`redis-cli --cluster import`")
    try:
        conversations, responses = asyncio.run(migrate(args.redis_url))
    except (RedisError, ValueError) as exc:
        print(f"lima history migrate: {args.redis_url}: {exc}", flush=True)
        return 1
    if conversations or responses:
        print(f"moved {conversations} conversations and {responses} responses to the per-user key layout")
    else:
        print("nothing to move: the store is in the current key layout")
    return 0
