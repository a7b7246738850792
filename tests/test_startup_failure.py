"""An engine that cannot start stops the server with status 1 and says why, instead of hanging half-alive."""

import json
from pathlib import Path

import pytest

from tests.conftest import launch

pytestmark = pytest.mark.live


def kv_bytes_per_token(model_dir: Path, bytes_per_element: int) -> int:
    """Keys and values of every layer for one token: 2 x layers x KV heads x head size x element size."""
    config = json.loads((model_dir / "config.json").read_text())
    head_size = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_size * bytes_per_element


def test_engine_failure_exits_with_status_1_and_the_reason(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A KV cache for half of one full-length sequence at 2 bytes per element (bf16, the smallest dtype the engine
    # may pick here; float32 holds half as many tokens): whatever the CPU and dtype, vLLM must refuse to start.
    max_len = json.loads((tiny_model_dir / "config.json").read_text())["max_position_embeddings"]
    too_small = kv_bytes_per_token(tiny_model_dir, 2) * max_len // 2
    with launch(["--model", str(tiny_model_dir), "--kv-cache-memory-bytes", str(too_small)], "fail.log",
                tmp_path_factory) as server:
        status = server.process.wait(timeout=300)
        log = server.log_tail(1_000_000)
    assert status == 1, log[-3000:]
    assert "the engine failed to start" in log
