"""The same tiny Llama at tensor_parallel_size 2 and 1 gives the same greedy tokens.

On the CPU backend the server binds one core per rank itself (VLLM_CPU_OMP_THREADS_BIND), so this needs
at least two usable cores.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.live_server import LiveServer, stopped_together
from tests.conftest import TINY_DTYPE, launch, tiny_args

PROMPTS = ["The capital of France is", "Alignment teaches", "def add(a, b):", "Write a short poem about"]

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="tensor_parallel_size=2 needs two CPU cores (one per rank)"
)


@pytest.fixture(scope="module")
def tp_servers(
    tiny_model_dir: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """The tiny model at TP=2 and TP=1, both in float32: bf16 reductions split over two ranks round differently,
    so only float32 makes equal greedy tokens a fair expectation on every CPU. TP=1 is the session's tiny server
    when that one runs in float32."""
    servers = [launch(tiny_args(tiny_model_dir, "--tensor-parallel-size", "2", dtype="float32"), "tp2.log",
                      tmp_path_factory)]
    with stopped_together(servers):
        if TINY_DTYPE == "float32":
            tp1 = request.getfixturevalue("tiny_server")
        else:
            servers.append(tp1 := launch(tiny_args(tiny_model_dir, dtype="float32"), "tp1.log", tmp_path_factory))
        yield servers[0].wait_ready(), tp1.wait_ready()


def greedy(server: LiveServer, prompt: str) -> str:
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 32, "temperature": 0, "repetition_penalty": 1.0}
    response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


@pytest.mark.live
def test_tp2_and_tp1_generate_the_same_greedy_tokens(tp_servers: tuple[LiveServer, LiveServer]) -> None:
    tp2, tp1 = tp_servers
    assert "VLLM_CPU_OMP_THREADS_BIND=" in tp2.log_tail(1_000_000)  # set by the server itself
    assert "dtype=torch.float32" in tp2.log_tail(1_000_000)
    for prompt in PROMPTS:
        assert greedy(tp2, prompt) == greedy(tp1, prompt), prompt
