"""What server-side history costs: the store's own time per turn, and TTFT at turn 10 against the client
resending the whole history to the same server.

    python bench/history.py [--samples 300] [--ttft-samples 20] [--max-tokens 64]

1. Store overhead (in process, the embedded redis-server on a unix socket with its append-only file, as `lima
   serve` runs it): one turn's `load` (conversation + items) plus `append` (user item + answer + response
   record, one Lua script), p50/p99 over --samples conversations, with 10 and with 200 stored turns (2 items
   each; answers of ~1,500 characters, LIMA-like). `cold`: the first turn this process sees of the conversation
   (every item crosses the wire: a new replica, a restart); `warm`: the next turn (only what changed since this
   process's last look). Compared with the engine's own time per turn, measured on the live server below (a
   --max-tokens answer, client-resend path, median).
2. TTFT at turn 10 on one `lima serve` (embedded default model), interleaved, same 9 earlier turns:
     server-side   POST /v1/responses {conversation, input, stream}: history loaded from Redis, stored after
     client-resend POST /v1/chat/completions {messages: all 19, stream}: no store involved
   and, for vLLM's prefix cache, on the server-side path:
     turn 1        a new conversation's first turn (the same question, no history)
     unseen        turn 10 of a history no request has sent before (its first message is unique), so the
                   prefix cache has none of it: what the cache saves the usual turn 10
   with the share of turn 10's prompt tokens the prefix cache served (usage.input_tokens_details.cached_tokens).
Prints the tables and the ratios against the goals (store p50 < 1 ms and < 2 % of a turn; TTFT within +5 %).
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME
from model_prep.evaluate.stats import percentile
from server.core.history.items import MessageItem
from server.core.history.objects import StoredResponse
from server.core.history.redis_server import RedisServer
from server.core.history.store import HistoryStore, connect
from server.core.ids import CONVERSATION, RESPONSE, new_id

QUESTION = "How should I plan a two-week trip through Japan in spring, and what should I book in advance? "
ANSWER = ("Spring is the busiest season in Japan because of the cherry blossoms, so plan early. " * 18)[:1500]

RESPONSES_TEXT = re.compile(r'"type": "response\.output_text\.delta"')
CHAT_TEXT = re.compile(r'"content":"[^"]')  # the first chunk's empty content does not count


def stored_turns(count: int) -> list[MessageItem]:
    return [item for i in range(count) for item in (MessageItem.of("user", f"{i}. {QUESTION}"),
                                                       MessageItem.of("assistant", ANSWER))]


async def store_overhead(store: HistoryStore, turns: int, samples: int) -> dict[str, list[float]]:
    """Per sample a new conversation of `turns` turns; `cold` times its first turn in this process (every item
    comes over the wire), `warm` the next one (this process served the last turn: only what changed moves)."""
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(samples):
        conversation_id = new_id(CONVERSATION)
        await store.create_conversation("bench", conversation_id, {}, stored_turns(turns))
        for kind in ("cold", "warm"):
            new_turn = stored_turns(1)
            response = StoredResponse(id=new_id(RESPONSE), model="bench", owner="bench",
                                      input=new_turn[:1], output=new_turn[1:])
            started = time.perf_counter()
            await store.load("bench", conversation_id)
            await store.append("bench", conversation_id, new_turn, response)
            timings[kind].append(time.perf_counter() - started)
        await store.delete_conversation("bench", conversation_id)  # untimed
    return timings


async def measure_store(samples: int) -> dict[int, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            store = HistoryStore(connect(server.url), ttl_seconds=3600, max_items=1000)
            return {turns: await store_overhead(store, turns, samples) for turns in (10, 200)}
        finally:
            server.stop()


async def first_token(http: httpx.AsyncClient, path: str, body: dict, marker: re.Pattern
                      ) -> tuple[float, float, float | None]:
    """(TTFT, whole turn, share of the prompt from the prefix cache) for one streamed request; `marker` finds
    the first event with text. The share is read from a Responses stream's final usage (None for chat)."""
    started = time.perf_counter()
    ttft = None
    cached_share = None
    async with http.stream("POST", path, json=body) as reply:
        reply.raise_for_status()
        async for line in reply.aiter_lines():
            if ttft is None and marker.search(line):
                ttft = time.perf_counter() - started
            if line.startswith("data: ") and ('"response.completed"' in line or '"response.incomplete"' in line):
                usage = json.loads(line.removeprefix("data: "))["response"]["usage"]
                cached_share = usage["input_tokens_details"]["cached_tokens"] / usage["input_tokens"]
    assert ttft is not None, f"no text from {path}"
    return ttft, time.perf_counter() - started, cached_share


Timing = tuple[float, float, float | None]


async def measure_ttft(url: str, samples: int, max_tokens: int) -> dict[str, list[Timing]]:
    history = [{"role": item.role, "content": item.text()} for item in stored_turns(9)]
    sampling = {"temperature": 0.7, "top_p": 0.9, "ignore_eos": True}
    results: dict[str, list[Timing]] = {"server-side": [], "client-resend": [], "turn 1": [], "unseen": []}
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:

        async def responses_turn(items: list[dict], text: str) -> dict:
            conversation = (await http.post("/v1/conversations", json={"items": items})).json()["id"]
            return {"model": DEFAULT_MODEL_NAME, "conversation": conversation, "input": text, "stream": True,
                    "max_output_tokens": max_tokens, **sampling}

        for index in range(samples + 1):  # the first round warms up (prefix cache, allocator) and is dropped
            question = {"role": "user", "content": f"Turn 10, sample {index}: and what about Kyoto?"}
            unseen = [{"role": "user", "content": f"Sample {index} {time.time_ns()}. {history[0]['content']}"},
                      *history[1:]]
            client_resend = {"model": DEFAULT_MODEL_NAME, "messages": [*history, question], "stream": True,
                             "max_tokens": max_tokens, **sampling}
            ask = question["content"]
            runs = [("server-side", "/v1/responses", await responses_turn(history, ask), RESPONSES_TEXT),
                    ("client-resend", "/v1/chat/completions", client_resend, CHAT_TEXT),
                    ("turn 1", "/v1/responses", await responses_turn([], ask), RESPONSES_TEXT),
                    ("unseen", "/v1/responses", await responses_turn(unseen, ask), RESPONSES_TEXT)]
            for name, path, body, marker in runs[index % 4:] + runs[:index % 4]:
                timing = await first_token(http, path, body, marker)
                if index:
                    results[name].append(timing)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300, help="store turns timed per history length")
    parser.add_argument("--ttft-samples", type=int, default=20, help="turn-10 requests per path")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)

    store = asyncio.run(measure_store(args.samples))
    with tempfile.TemporaryDirectory() as redis_dir:
        server = LiveServer(["--kv-cache-memory-bytes", str(2 * 1024**3), "--redis-dir", redis_dir],
                            args.logs / "history-lima.log").wait_ready(timeout=900)
        try:
            ttft = asyncio.run(measure_ttft(server.url, args.ttft_samples, args.max_tokens))
        finally:
            server.stop()

    turn_seconds = statistics.median(total for _, total, _ in ttft["client-resend"])
    print(f"\n{DEFAULT_MODEL_NAME}, {os.cpu_count()} CPUs; engine time per turn ({args.max_tokens}-token answer, "
          f"median): {turn_seconds * 1e3:.0f} ms\n")
    print("| stored turns | cache | store p50 (ms) | store p99 (ms) | p50 share of a turn |")
    print("|---:|---|---:|---:|---:|")
    for turns, by_kind in store.items():
        for kind, timings in by_kind.items():
            p50 = statistics.median(timings)
            print(f"| {turns} | {kind} | {p50 * 1e3:.3f} | {percentile(timings, 0.99) * 1e3:.3f} | "
                  f"{p50 / turn_seconds:.3%} |")
    print("\n| request | TTFT p50 (ms) | TTFT p99 (ms) | prompt share from the prefix cache (median) |")
    print("|---|---:|---:|---:|")
    for name, timings in ttft.items():
        firsts = [first for first, _, _ in timings]
        shares = [share for _, _, share in timings if share is not None]
        cached = f"{statistics.median(shares):.0%}" if shares else "n/a"
        print(f"| {name} | {statistics.median(firsts) * 1e3:.0f} | {percentile(firsts, 0.99) * 1e3:.0f} | {cached} |")
    server_side, client_resend = ([first for first, _, _ in ttft[name]] for name in ("server-side", "client-resend"))
    ratio = statistics.median(server_side) / statistics.median(client_resend)
    print(f"\nTTFT p50 ratio server-side / client-resend: {ratio:.3f}x (goal <= 1.05x)")


if __name__ == "__main__":
    main()
