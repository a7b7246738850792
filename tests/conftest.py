"""Live servers shared by the test modules: each starts once per session (vLLM takes ~30 s to start)."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveServer
from tests.tiny_model import build_tiny_llama

REPO = Path(__file__).resolve().parent.parent
# The converted default model is cached here between runs (gitignored); a fresh clone converts it once.
DATA_DIR = Path(os.environ.get("LIMA_TEST_DATA_DIR", REPO / ".cache" / "lima"))
SMALL_ENGINE = ["--kv-cache-memory-bytes", str(256 * 1024**2), "--max-num-seqs", "16"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def start(args: list[str], log_name: str, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    log_path = tmp_path_factory.mktemp("logs") / log_name
    return LiveServer([*args, "--data-dir", str(DATA_DIR)], log_path).wait_ready()


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
