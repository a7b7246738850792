"""The embedded redis-server's lifetime, and the ways to name a shared one (REDIS_URL, Sentinel)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from harness.live_server import free_port
from harness.redis_sentinel import LocalSentinels
from server.core.failures import Unavailable
from server.core.history.items import MessageItem
from server.core.history.keys import conversation_keys
from server.core.history.redis_server import RedisServer, RedisServerError, redis_server_binary
from server.core.history.store import HistoryStore, connect
from server.core.settings import ServerSettings

# Ids of the shape the server issues (server/core/ids.py): the store refuses any other.
CONV_FAILOVER = "conv_" + b"failover".hex().rjust(32, "0")
CONV_SENTINEL = "conv_" + b"sentinel".hex().rjust(32, "0")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_append_only_file_survives_stop_and_start(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    server.client().set("turn", "kept")
    with pytest.raises(RedisServerError, match="already running"):
        RedisServer(tmp_path).start()  # a second server on the same directory is refused, not shared by accident
    pid = server.pid
    server.stop()
    assert not alive(pid)
    assert (tmp_path / "appendonly.aof").exists()
    server.start()
    try:
        assert server.client().get("turn") == b"kept"
    finally:
        server.stop()


def test_redis_server_dies_with_its_owner_even_on_kill_9(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom pathlib import Path\n"
         "from server.core.history.redis_server import RedisServer\n"
         f"server = RedisServer(Path({str(tmp_path)!r})).start()\nprint(server.pid, flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    redis_pid = int(owner.stdout.readline())
    assert alive(redis_pid)
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while alive(redis_pid):
        assert time.monotonic() < deadline, "redis-server outlived the process that started it"
        time.sleep(0.1)


def test_redis_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://db.internal:6380/2")
    assert ServerSettings().redis_url == "redis://db.internal:6380/2"
    monkeypatch.setenv("LIMA_REDIS_URL", "unix:///run/redis.sock")
    assert ServerSettings().redis_url == "unix:///run/redis.sock"  # the project's own name wins


def test_sentinel_url_finds_the_master(tmp_path: Path) -> None:
    master = RedisServer(tmp_path / "master", port=free_port()).start()
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor lima 127.0.0.1 {master.port} 1\n")
    sentinel = subprocess.Popen([redis_server_binary(), str(config), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis(port=sentinel_port) as probe:
                    if probe.execute_command("SENTINEL", "get-master-addr-by-name", "lima"):
                        break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "sentinel did not come up"
            time.sleep(0.1)

        async def through_sentinel() -> list[str]:
            store = HistoryStore(connect(f"redis+sentinel://127.0.0.1:{sentinel_port}/lima"), 0, 10)
            await store.create_conversation("ivy", CONV_SENTINEL, {}, [])
            return [conversation.id for conversation in (await store.list_conversations("ivy", 5, None, True))[0]]

        assert asyncio.run(through_sentinel()) == [CONV_SENTINEL]
        # It wrote to the master the sentinel named.
        assert master.client().exists(conversation_keys("ivy", CONV_SENTINEL)[0])
    finally:
        sentinel.send_signal(signal.SIGTERM)
        sentinel.wait(timeout=10)
        master.stop()


def test_sentinel_url_needs_a_master_name() -> None:
    with pytest.raises(ValueError, match="names the master"):
        connect("redis+sentinel://127.0.0.1:26379")


def test_sentinel_failover_after_the_master_dies_loses_no_completed_turn(tmp_path: Path) -> None:
    """A master killed (SIGKILL) in the middle of a run of turns: the store follows the replica the sentinels
    promote, refusing turns with 503 meanwhile; every turn it acknowledged is still there."""
    sentinels = LocalSentinels(tmp_path, appendfsync="always").start()
    try:
        old_master = sentinels.master.port

        async def scenario() -> tuple[list[int], int, float, list[str]]:
            store = HistoryStore(connect(sentinels.url), ttl_seconds=0, max_items=5000)
            completed, failed, killed_at, recovered_at = [], 0, 0.0, 0.0
            try:
                await store.create_conversation("ivy", CONV_FAILOVER, {}, [])
                index = 0
                while len(completed) < 60 or not recovered_at:
                    if index == 20:
                        sentinels.kill_master()
                        killed_at = time.monotonic()
                    try:
                        await store.append("ivy", CONV_FAILOVER, [MessageItem.of("user", f"q{index}"),
                                                                    MessageItem.of("assistant", f"a{index}")])
                        completed.append(index)
                        if killed_at and not recovered_at:
                            recovered_at = time.monotonic()
                    except Unavailable:
                        failed += 1
                    assert time.monotonic() - (killed_at or time.monotonic()) < 60, "no new master within 60 s"
                    index += 1
                    await asyncio.sleep(0.02)
                found = await store.load("ivy", CONV_FAILOVER)
                return completed, failed, recovered_at - killed_at, [item.text() for item in found.items]
            finally:
                await store.client.aclose()

        completed, failed, switch_seconds, texts = asyncio.run(scenario())
        print(f"sentinel failover: {failed} turns refused (503) in {switch_seconds:.1f} s; {len(completed)} stored")
        assert sentinels.master_port() != old_master, "the sentinels promoted the replica"
        assert texts == [text for index in completed for text in (f"q{index}", f"a{index}")]
    finally:
        sentinels.stop()
