"""The same tiny Llama at tensor_parallel_size 2 and 1 gives the same greedy tokens.

On the CPU backend the server binds one core per rank itself (VLLM_CPU_OMP_THREADS_BIND), so this needs
at least two usable cores.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import serve_tiny
from tests.live_server import LiveServer

PROMPTS = ["The capital of France is", "Alignment teaches", "def add(a, b):", "Write a short poem about"]

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="tensor_parallel_size=2 needs two CPU cores (one per rank)"
)


@pytest.fixture(scope="module")
def tp2_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve_tiny(tiny_model_dir, ["--tensor-parallel-size", "2"], "tp2.log", tmp_path_factory)
    yield server
    server.stop()


def greedy(server: LiveServer, prompt: str) -> str:
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 32, "temperature": 0, "repetition_penalty": 1.0}
    response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["text"]


def test_tp2_and_tp1_generate_the_same_greedy_tokens(tiny_server: LiveServer, tp2_server: LiveServer) -> None:
    assert "VLLM_CPU_OMP_THREADS_BIND=" in tp2_server.log_tail(1_000_000)  # set by the server itself
    for prompt in PROMPTS:
        assert greedy(tp2_server, prompt) == greedy(tiny_server, prompt), prompt
