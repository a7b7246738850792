"""This server vs vLLM's own OpenAI server on the same checkpoint: streaming chat, A/B interleaved.

    python bench/serve.py [--concurrency 1 8 32] [--rounds 2] [--requests 2] [--max-tokens 64]

Both servers run the embedded default model (SmolLM2-135M-Instruct) at the same time on this machine; each
round sends the same closed-loop load to each server in turn (order alternating), so drift in the machine's
speed hits both alike. Every request generates exactly --max-tokens tokens (ignore_eos) with LIMA's decoding.
Peers:
  vllm-defaults  `python -m vllm.entrypoints.openai.api_server` with its own defaults; only
                 --kv-cache-memory-bytes is given, because its default memory share does not start here.
  vllm-matched   the same, plus the settings `lima serve` picks on this CPU (float32, eager, both cores).
Prints output tokens/s, TTFT p50/p99 and request latency p50 per server and concurrency, and the ratios.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model
from model_prep.evaluate.stats import percentile

KV_BYTES = str(2 * 1024**3)
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


def start_servers(model: Path, peers: list[str], logs: Path) -> dict[str, LiveServer]:
    common = ["--model", str(model), "--served-model-name", DEFAULT_MODEL_NAME, "--kv-cache-memory-bytes", KV_BYTES]
    servers = {"lima": LiveServer(common, logs / "lima.log")}
    if "vllm-defaults" in peers:
        servers["vllm-defaults"] = LiveServer(
            common, logs / "vllm-defaults.log", env=OFFLINE, command=VLLM_SERVER, ready_path="/health"
        )
    if "vllm-matched" in peers:
        servers["vllm-matched"] = LiveServer(
            [*common, "--dtype", "float32", "--enforce-eager"], logs / "vllm-matched.log",
            env={**OFFLINE, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}, command=VLLM_SERVER, ready_path="/health",
        )
    for server in servers.values():
        server.wait_ready(timeout=900)
    return servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per round")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--peers", nargs="+", default=["vllm-defaults", "vllm-matched"],
                        choices=["vllm-defaults", "vllm-matched"])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    servers = start_servers(ensure_default_model(args.data_dir), args.peers, args.logs)
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
    print("| server | concurrency | output tok/s | TTFT p50 (ms) | TTFT p99 (ms) | latency p50 (s) | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for (name, concurrency), s in results.items():
        print(f"| {name} | {concurrency} | {s.tokens / s.seconds:.1f} | {percentile(s.ttft, 0.5) * 1e3:.0f} | "
              f"{percentile(s.ttft, 0.99) * 1e3:.0f} | {percentile(s.latency, 0.5):.2f} | {s.failures} |")
    print("\n| concurrency | peer | tok/s ratio (lima / peer) | TTFT p50 ratio (lima / peer) |")
    print("|---:|---|---:|---:|")
    for concurrency in args.concurrency:
        ours = results[("lima", concurrency)]
        for peer in args.peers:
            theirs = results[(peer, concurrency)]
            print(f"| {concurrency} | {peer} | {(ours.tokens / ours.seconds) / (theirs.tokens / theirs.seconds):.2f}x "
                  f"| {statistics.median(ours.ttft) / statistics.median(theirs.ttft):.2f}x |")


if __name__ == "__main__":
    main()
