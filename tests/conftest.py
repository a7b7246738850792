"""Live servers shared by the test modules: each starts once per session (vLLM takes ~30 s to start)."""

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.redis_server import RedisServer
from tests.live_server import LiveServer, free_port
from tests.tiny_model import build_tiny_llama

REPO = Path(__file__).resolve().parent.parent
# The converted default model is cached here between runs (gitignored); a fresh clone converts it once.
DATA_DIR = Path(os.environ.get("LIMA_TEST_DATA_DIR", REPO / ".cache" / "lima"))
SMALL_ENGINE = ["--kv-cache-memory-bytes", str(256 * 1024**2), "--max-num-seqs", "16"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def launch(args: list[str], log_name: str, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    """Start `lima serve` without waiting; each server gets its own embedded Redis unless --redis-url is given."""
    log_path = tmp_path_factory.mktemp("logs") / log_name
    redis_dir = tmp_path_factory.mktemp("redis")
    return LiveServer([*args, "--data-dir", str(DATA_DIR), "--redis-dir", str(redis_dir)], log_path)


def start(args: list[str], log_name: str, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    return launch(args, log_name, tmp_path_factory).wait_ready()


def serve_tiny(model_dir: Path, extra: list[str], log_name: str, factory: pytest.TempPathFactory) -> LiveServer:
    return start(["--model", str(model_dir), "--served-model-name", "tiny", *SMALL_ENGINE, *extra], log_name, factory)


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve_tiny(tiny_model_dir, ["--max-request-bytes", "65536"], "tiny.log", tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start(["--kv-cache-memory-bytes", str(1024**3), "--max-num-seqs", "16"], "default.log", tmp_path_factory)
    yield server
    server.stop()


# Two users of the history servers; bob's key is given to the server only as its SHA-256 digest.
API_KEYS = {"alice": "sk-alice-test", "bob": "sk-bob-test"}
HISTORY_MAX_ITEMS = 64


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a TCP port, shared by the two history replicas (as REDIS_URL would be)."""
    server = RedisServer(tmp_path_factory.mktemp("shared-redis"), port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def replicas(
    tiny_model_dir: Path, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two `lima serve` processes on one Redis, with API keys: the stateful tests talk to both."""
    keys_file = tmp_path_factory.mktemp("keys") / "api_keys"
    keys_file.write_text(
        f"# user key\nalice {API_KEYS['alice']}\nbob sha256:{hashlib.sha256(API_KEYS['bob'].encode()).hexdigest()}\n"
    )
    args = [
        "--model", str(tiny_model_dir), "--served-model-name", "tiny", *SMALL_ENGINE, "--redis-url", shared_redis.url,
        "--api-keys-file", str(keys_file), "--history-max-items", str(HISTORY_MAX_ITEMS),
    ]
    servers = (launch(args, "replica-a.log", tmp_path_factory), launch(args, "replica-b.log", tmp_path_factory))
    try:
        yield servers[0].wait_ready(), servers[1].wait_ready()
    finally:
        for server in servers:
            server.stop()
