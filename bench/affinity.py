"""What conversation affinity buys: two `lima serve` replicas behind the shipped HAProxy config, with its
conversation routing and with plain round-robin, side by side in one run.

    python bench/affinity.py [--conversations 16] [--turns 10] [--rounds 3] [--max-tokens 32]

Two replicas of the embedded default model share one redis-server; each engine is bound to a core of its own
(VLLM_CPU_OMP_THREADS_BIND), so the two are comparable on a 2-core machine. Two balancers run at once over the
same replicas: the shipped config (a conversation hashed to one replica) and the same file with routing off
(`harness.balancer.render(affinity=False)`: every request round-robin). Each round runs --conversations
concurrent conversations of --turns streamed Responses turns through one balancer, then through the other
(the order alternates by round); every conversation's first message is unique, so no conversation finds
another's history in a cache. Per turn it records the time to the first text delta, the prompt tokens and those
vLLM's prefix cache served (`usage.input_tokens_details.cached_tokens`), and which replica answered.
Prints TTFT p50/p99 at the last turn, the prefix-cache hit rate at the last turn and over all turns, and how
often a conversation changed replica.
"""

import argparse
import asyncio
import collections
import dataclasses
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.balancer import LocalBalancer
from harness.live_server import LiveServer, stopped_together
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model
from model_prep.evaluate.stats import percentile
from server.core.history.redis_server import RedisServer

QUESTION = "Give me one practical tip for learning to cook at home, in two sentences. "


@dataclasses.dataclass
class Turn:
    number: int
    replica: str
    ttft: float
    prompt_tokens: int
    cached_tokens: int


async def streamed_turn(http: httpx.AsyncClient, body: dict, number: int) -> Turn:
    started = time.perf_counter()
    ttft = None
    async with http.stream("POST", "/v1/responses", json=body) as reply:
        reply.raise_for_status()
        replica = reply.headers["x-lima-replica"]
        async for line in reply.aiter_lines():
            if ttft is None and '"response.output_text.delta"' in line:
                ttft = time.perf_counter() - started
            if line.startswith("data: ") and ('"response.completed"' in line or '"response.incomplete"' in line):
                usage = json.loads(line.removeprefix("data: "))["response"]["usage"]
    assert ttft is not None, "no text in the answer"
    return Turn(number, replica, ttft, usage["input_tokens"], usage["input_tokens_details"]["cached_tokens"])


async def conversation(http: httpx.AsyncClient, label: str, turns: int, max_tokens: int) -> list[Turn]:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    done = []
    for number in range(1, turns + 1):
        text = f"{label} {time.time_ns()}: {QUESTION}" if number == 1 else f"Turn {number}: another one. {QUESTION}"
        body = {"model": DEFAULT_MODEL_NAME, "conversation": conversation_id, "input": text, "stream": True,
                "max_output_tokens": max_tokens, "temperature": 0.7, "ignore_eos": True}
        done.append(await streamed_turn(http, body, number))
    return done


async def one_round(url: str, label: str, conversations: int, turns: int, max_tokens: int) -> list[list[Turn]]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        return await asyncio.gather(*(conversation(http, f"{label} conversation {index}", turns, max_tokens)
                                      for index in range(conversations)))


def summary(name: str, runs: list[list[Turn]], turns: int) -> str:
    last = [run[-1] for run in runs]
    every = [turn for run in runs for turn in run]
    firsts = [turn.ttft for turn in last]
    moved = sum(a.replica != b.replica for run in runs for a, b in itertools.pairwise(run))
    busiest = max(collections.Counter(turn.replica for turn in every).values()) / len(every)
    return (f"| {name} | {statistics.median(firsts) * 1e3:.0f} | {percentile(firsts, 0.99) * 1e3:.0f} | "
            f"{sum(t.cached_tokens for t in last) / sum(t.prompt_tokens for t in last):.0%} | "
            f"{sum(t.cached_tokens for t in every) / sum(t.prompt_tokens for t in every):.0%} | "
            f"{statistics.median(t.prompt_tokens for t in last):.0f} | "
            f"{moved / (len(runs) * (turns - 1)):.0%} | {busiest:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per balancer, alternating which goes first")
    parser.add_argument("--max-tokens", type=int, default=32, help="answer length (ignore_eos)")
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench"))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")),
                        help="where the default model is converted once (as `lima serve --data-dir`)")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    cores = sorted(os.sched_getaffinity(0))
    model = ensure_default_model(args.data_dir)  # once, before two replicas would both convert it
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        redis = RedisServer(root / "redis", port=0).start()
        replicas = [
            LiveServer(["--model", str(model), "--redis-url", redis.url, "--kv-cache-memory-bytes", str(2 * 1024**3)],
                       args.logs / f"affinity-replica-{index}.log",
                       env={"VLLM_CPU_OMP_THREADS_BIND": str(cores[index % len(cores)])})
            for index in range(2)]
        results: dict[str, list[list[Turn]]] = {"conversation affinity": [], "round-robin": []}
        try:
            with stopped_together(replicas):
                for replica in replicas:
                    replica.wait_ready(timeout=900)
                urls = [replica.url for replica in replicas]
                with LocalBalancer(urls, root, affinity=True) as affinity, \
                        LocalBalancer(urls, root, affinity=False) as round_robin:
                    balancers = [("conversation affinity", affinity.url), ("round-robin", round_robin.url)]
                    asyncio.run(one_round(affinity.url, "warm-up", 2, 2, args.max_tokens))
                    for index in range(args.rounds):
                        for name, url in balancers[index % 2:] + balancers[:index % 2]:
                            started = time.perf_counter()
                            results[name] += asyncio.run(one_round(url, f"{name} round {index}", args.conversations,
                                                                   args.turns, args.max_tokens))
                            print(f"round {index} {name}: {time.perf_counter() - started:.0f} s", flush=True)
        finally:
            redis.stop()

    print(f"\n{DEFAULT_MODEL_NAME}, 2 replicas (one core each of {len(cores)}), {args.conversations} concurrent "
          f"conversations x {args.turns} turns x {args.rounds} rounds, {args.max_tokens}-token answers\n")
    print(f"| balancer | TTFT p50 at turn {args.turns} (ms) | TTFT p99 (ms) | prefix-cache hits at turn {args.turns} "
          f"| prefix-cache hits, all turns | prompt tokens at turn {args.turns} | turns on another replica "
          "| turns on the busier replica |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        print(summary(name, runs, args.turns))
    raw = {name: [[dataclasses.asdict(turn) for turn in run] for run in runs] for name, runs in results.items()}
    (args.logs / "affinity.json").write_text(json.dumps(raw))


if __name__ == "__main__":
    main()
