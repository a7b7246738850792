"""This server vs vLLM's own OpenAI server on the same checkpoint: streaming chat, A/B interleaved.

    python bench/serve.py [--concurrency 1 8 32] [--rounds 2] [--requests 2] [--max-tokens 64]
                          [--lima NAME="[ENV=VALUE ...] [lima serve flags]" ...] [--peers ...]

Both servers run the embedded default model (SmolLM2-135M-Instruct) at the same time on this machine; each
round sends the same closed-loop load to each server in turn (order alternating), so drift in the machine's
speed hits both alike. Every request generates exactly --max-tokens tokens (ignore_eos) with LIMA's decoding.
Servers: `lima` (this server with its defaults; more `lima serve` variants with --lima, e.g.
  --lima "eager=--enforce-eager" "one-core=VLLM_CPU_NUM_OF_RESERVED_CPU=1"), and the peers:
  vllm-defaults  `python -m vllm.entrypoints.openai.api_server` with its own defaults; only
                 --kv-cache-memory-bytes is given, because its default memory share does not start here.
  vllm-matched   the same, plus the settings `lima serve` picks on this CPU (its dtype and CPU defaults).
Prints each server's start-up time (start to ready; servers start one after another), output tokens/s,
TTFT p50/p99 and request latency p50 per server and concurrency, and the ratios of `lima` to every other.
"""

import argparse
import asyncio
import functools
import json
import os
import re
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model
from model_prep.evaluate.stats import percentile
from server.core.engine.args import cpu_defaults

PROMPTS = [
    "Explain how a refrigerator works.",
    "Write a short story about a lighthouse keeper.",
    "What are the main causes of inflation?",
    "Give me advice for my first marathon.",
    "Describe the water cycle to a ten-year-old.",
    "Why is the sky blue?",
    "How do I make a sourdough starter?",
    "Compare Python and Rust for a command-line tool.",
]
VLLM_SERVER = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
STARTUP: dict[str, float] = {}
OFFLINE = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


@dataclass
class Sample:
    ttft: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    failures: int = 0


async def one_request(http: httpx.AsyncClient, url: str, prompt: str, max_tokens: int, sample: Sample) -> None:
    body = {
        "model": DEFAULT_MODEL_NAME, "messages": [{"role": "user", "content": prompt}], "stream": True,
        "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0.7, "top_p": 0.9,
        "repetition_penalty": 1.2, "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            sample.failures += 1
            return
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                sample.tokens += chunk["usage"]["completion_tokens"]
    sample.ttft.append(first if first is not None else float("nan"))
    sample.latency.append(time.perf_counter() - start)


async def run_round(url: str, concurrency: int, requests: int, max_tokens: int, sample: Sample) -> None:
    async def client(index: int) -> None:
        for r in range(requests):
            await one_request(http, url, PROMPTS[(index + r) % len(PROMPTS)], max_tokens, sample)

    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(concurrency)))
        sample.seconds += time.perf_counter() - start


def lima_variant(spec: str) -> tuple[str, dict[str, str], list[str]]:
    """NAME=[ENV=VALUE ...] [flags] -> (name, env, flags)."""
    name, _, rest = spec.partition("=")
    words = shlex.split(rest)
    env = dict(word.split("=", 1) for word in words if re.match(r"^[A-Z_][A-Z0-9_]*=", word))
    return name, env, [word for word in words if not re.match(r"^[A-Z_][A-Z0-9_]*=", word)]


def start_servers(model: Path, variants: list[str], peers: list[str], logs: Path, kv_cache_bytes: int
                  ) -> dict[str, LiveServer]:
    """Start every server and wait for it before starting the next, so each start-up time is its own."""
    common = ["--model", str(model), "--served-model-name", DEFAULT_MODEL_NAME,
              "--kv-cache-memory-bytes", str(kv_cache_bytes)]
    plans: dict[str, Callable[[], LiveServer]] = {}
    for name, env, flags in map(lima_variant, ["lima=", *variants]):
        redis_dir = ["--redis-dir", str(logs / f"{name}-redis")]  # each its own embedded Redis
        plans[name] = functools.partial(LiveServer, [*common, *redis_dir, *flags], logs / f"{name}.log", env=env)
    if "vllm-defaults" in peers:
        plans["vllm-defaults"] = functools.partial(
            LiveServer, common, logs / "vllm-defaults.log", env=OFFLINE, command=VLLM_SERVER, ready_path="/health"
        )
    if "vllm-matched" in peers:  # what `lima serve` picks on this CPU, given to vLLM's server: engine for engine
        chosen, env = cpu_defaults({}, 0, logs / "compile-cache", environ={})
        plans["vllm-matched"] = functools.partial(
            LiveServer, [*common, "--dtype", chosen["dtype"]], logs / "vllm-matched.log", env={**OFFLINE, **env},
            command=VLLM_SERVER, ready_path="/health",
        )
    servers: dict[str, LiveServer] = {}
    try:
        for name, plan in plans.items():
            start = time.perf_counter()
            servers[name] = plan().wait_ready(timeout=900)
            STARTUP[name] = time.perf_counter() - start
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--lima", nargs="+", default=[], metavar="NAME=SPEC",
                        help="more `lima serve` variants: NAME=\"[ENV=VALUE ...] [flags]\"")
    parser.add_argument("--peers", nargs="*", default=["vllm-defaults", "vllm-matched"],
                        choices=["vllm-defaults", "vllm-matched"])
    parser.add_argument("--kv-cache-bytes", type=int, default=2 * 1024**3, help="each server's KV cache")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    servers = start_servers(ensure_default_model(args.data_dir), args.lima, args.peers, args.logs,
                            args.kv_cache_bytes)
    results: dict[tuple[str, int], Sample] = {}
    try:
        for concurrency in args.concurrency:
            for server in servers.values():  # warm-up, not measured
                asyncio.run(run_round(server.url, min(concurrency, 4), 1, 8, Sample()))
            for round_index in range(args.rounds):
                order = list(servers.items())
                order = order if round_index % 2 == 0 else order[::-1]
                for name, server in order:
                    sample = results.setdefault((name, concurrency), Sample())
                    asyncio.run(run_round(server.url, concurrency, args.requests, args.max_tokens, sample))
    finally:
        for server in servers.values():
            server.stop()

    print(f"\n{args.rounds} rounds x {args.requests} requests per client, {args.max_tokens} output tokens each, "
          f"streaming chat, {DEFAULT_MODEL_NAME}, {os.cpu_count()} CPUs\n")
    print("start-up (start to ready): " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in STARTUP.items()))
    print("\n| server | concurrency | output tok/s | TTFT p50 (ms) | TTFT p99 (ms) | latency p50 (s) | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, concurrency), s in sorted(results.items(), key=lambda item: item[0][1]):
        print(f"| {name} | {concurrency} | {s.tokens / s.seconds:.1f} | {percentile(s.ttft, 0.5) * 1e3:.0f} | "
              f"{percentile(s.ttft, 0.99) * 1e3:.0f} | {percentile(s.latency, 0.5):.2f} | {s.failures} |")
    print("\n| concurrency | other | tok/s ratio (lima / other) | TTFT p50 ratio (lima / other) |")
    print("|---:|---|---:|---:|")
    for concurrency in args.concurrency:
        ours = results[("lima", concurrency)]
        for other in servers.keys() - {"lima"}:
            theirs = results[(other, concurrency)]
            print(f"| {concurrency} | {other} | {(ours.tokens / ours.seconds) / (theirs.tokens / theirs.seconds):.2f}x "
                  f"| {statistics.median(ours.ttft) / statistics.median(theirs.ttft):.2f}x |")


if __name__ == "__main__":
    main()
