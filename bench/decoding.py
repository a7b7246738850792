"""Which decoding suits the embedded model: a grid of sampling settings, judged by what a person sees.

    python bench/decoding.py [--samples 3] [--max-tokens 512] [--out artifacts/decoding]

One `lima serve` on the embedded SmolLM2-135M-Instruct (its loop guard off, as the API's is by default); every
prompt is asked under each setting with the same seeds (one request per prompt, setting and seed,
--concurrency in flight), with the sampling sent explicitly so the checkpoint's own defaults play no part.
Reported per setting: the share of answers with a loop (a sentence repeated 3+ times, the sentences the
server's loop guard reads), the share of repeated word 4-grams, the share that end by themselves
(finish_reason `stop`) within --max-tokens, the median answer length in tokens, and the share that drift into
hashtags or emoji. The setting chosen follows RULE (printed with the table); every answer is written to OUT.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from model_prep.checkpoints.decoding import LIMA_DECODING
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model
from server.core.engine.loop_guard import WORD, most_repeated

LIMA = {key: LIMA_DECODING[key] for key in ("temperature", "top_p", "repetition_penalty")}
# vLLM's anti-repetition levers: repetition_penalty (divides repeated tokens' logits), frequency_penalty
# (subtracts per occurrence) and presence_penalty (once per token seen), around the model card's temperature 0.2
# and LIMA's 0.7, with top_p and min_p cut-offs.
SETTINGS: dict[str, dict[str, Any]] = {
    "lima": LIMA,
    "card": {"temperature": 0.2, "top_p": 0.9},
    "card+rp1.1": {"temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.1},
    "card+rp1.2": {"temperature": 0.2, "top_p": 0.9, "repetition_penalty": 1.2},
    "card+fp0.5": {"temperature": 0.2, "top_p": 0.9, "frequency_penalty": 0.5},
    "card+pp0.5": {"temperature": 0.2, "top_p": 0.9, "presence_penalty": 0.5},
    "t0.5+rp1.1": {"temperature": 0.5, "top_p": 0.9, "repetition_penalty": 1.1},
    "t0.5+rp1.2": {"temperature": 0.5, "top_p": 0.9, "repetition_penalty": 1.2},
    "t0.5+fp0.3": {"temperature": 0.5, "top_p": 0.9, "frequency_penalty": 0.3},
    "t0.7+rp1.1": {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1},
    "t0.7+minp0.1+rp1.1": {"temperature": 0.7, "min_p": 0.1, "repetition_penalty": 1.1},
}
LEVERS = ("temperature", "top_p", "min_p", "repetition_penalty", "frequency_penalty", "presence_penalty")
LOOP_REPEATS = 3  # a sentence this many times is a loop
RULE = ("fewest answers with a loop; among the settings within 3 points of that, the most that end by "
        "themselves; among those within 3 points of that, the shortest median answer")
TOLERANCE = 0.03
# Thirty everyday requests of the kinds people bring to a chat assistant: advice, how-to, facts, explanations,
# writing, lists, code, comparisons, planning.
PROMPTS = [
    "How do I make a good cup of pour-over coffee? Give me the steps.",
    "What is the capital of France?",
    "Explain how a refrigerator works.",
    "Write a haiku about autumn leaves.",
    "How do I make a sourdough starter?",
    "What are the main causes of inflation?",
    "Write a short, polite email asking my landlord to fix a leaking tap.",
    "Why is the sky blue?",
    "Give me a packing list for a weekend camping trip.",
    "What is the difference between a virus and a bacterium?",
    "Write a Python function that reverses a string.",
    "How can I improve my sleep?",
    "Summarize the plot of Romeo and Juliet in a few sentences.",
    "What should I consider when buying a used car?",
    "Explain photosynthesis to a ten-year-old.",
    "Suggest a name for a bakery that sells only bread.",
    "How many continents are there, and which are they?",
    "What are some good exercises for lower back pain?",
    "Write a short story about a robot who learns to paint.",
    "How do I change a flat tyre on a bicycle?",
    "Compare renting and buying a home.",
    "What is machine learning, in two sentences?",
    "Plan a three-day trip to Rome for a first-time visitor.",
    "How do vaccines work?",
    "Give me five ideas for a child's birthday party.",
    "What is the boiling point of water at sea level?",
    "How can I be more productive when working from home?",
    "Explain what a prime number is, with examples.",
    "Write a thank-you note to a teacher.",
    "What are the health benefits of walking every day?",
]
HASHTAG_OR_EMOJI = re.compile(r"(?:^|\s)#\w|[\U0001F300-\U0001FAFF\u2600-\u27BF]")


async def answer(http: httpx.AsyncClient, url: str, prompt: str, setting: str, seed: int, max_tokens: int) -> dict:
    neutral = {"top_p": 1.0, "repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
               "min_p": 0.0}
    body = {"model": DEFAULT_MODEL_NAME, "messages": [{"role": "user", "content": prompt}], "loop_guard": 0,
            "max_tokens": max_tokens, "seed": seed, **neutral, **SETTINGS[setting]}
    reply = (await http.post(f"{url}/v1/chat/completions", json=body)).raise_for_status().json()
    choice = reply["choices"][0]
    return {"prompt": prompt, "setting": setting, "seed": seed, "finish_reason": choice["finish_reason"],
            "tokens": reply["usage"]["completion_tokens"], "answer": choice["message"]["content"]}


async def run(url: str, samples: int, max_tokens: int, concurrency: int) -> list[dict]:
    slots = asyncio.Semaphore(concurrency)

    async def one(http: httpx.AsyncClient, prompt: str, setting: str, seed: int) -> dict:
        async with slots:
            return await answer(http, url, prompt, setting, seed, max_tokens)

    async with httpx.AsyncClient(timeout=1800) as http:
        return await asyncio.gather(*(one(http, prompt, setting, seed) for seed in range(samples)
                                      for prompt in PROMPTS for setting in SETTINGS))


def repeated_4gram_share(text: str) -> float:
    """The share of the answer's word 4-grams that occurred earlier in it (0 for a text under 5 words)."""
    words = WORD.findall(text.lower())
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def summary(rows: list[dict]) -> dict[str, float]:
    return {"answers": len(rows),
            "loop_share": sum(most_repeated(r["answer"]) >= LOOP_REPEATS for r in rows) / len(rows),
            "repeated_4grams": statistics.mean(repeated_4gram_share(r["answer"]) for r in rows),
            "stop_share": sum(r["finish_reason"] == "stop" for r in rows) / len(rows),
            "median_tokens": statistics.median(r["tokens"] for r in rows),
            "drift_share": sum(bool(HASHTAG_OR_EMOJI.search(r["answer"])) for r in rows) / len(rows)}


def chosen(summaries: dict[str, dict[str, float]]) -> str:
    """The setting RULE picks."""
    fewest_loops = min(s["loop_share"] for s in summaries.values())
    candidates = {n: s for n, s in summaries.items() if s["loop_share"] <= fewest_loops + TOLERANCE}
    most_ended = max(s["stop_share"] for s in candidates.values())
    candidates = {n: s for n, s in candidates.items() if s["stop_share"] >= most_ended - TOLERANCE}
    return min(candidates, key=lambda n: candidates[n]["median_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3, help="seeds per prompt and setting")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("--out", type=Path, default=Path("artifacts/decoding"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = ensure_default_model(args.data_dir)
    server = LiveServer(["--model", str(model), "--kv-cache-memory-bytes", str(2 * 1024**3), "--redis-dir",
                         str(args.out / "redis")], args.out / "server.log")
    with server:
        rows = asyncio.run(run(server.wait_ready(timeout=900).url, args.samples, args.max_tokens, args.concurrency))
    with (args.out / "answers.jsonl").open("w") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    print(f"\n{len(PROMPTS)} prompts x {args.samples} seeds per setting, {DEFAULT_MODEL_NAME}, max_tokens "
          f"{args.max_tokens}; answers in {args.out / 'answers.jsonl'}\n")
    summaries = {name: summary([row for row in rows if row["setting"] == name]) for name in SETTINGS}
    print("| setting | " + " | ".join(LEVERS) + " | loops | repeated 4-grams | ended by itself | median tokens | "
          "hashtags or emoji |")
    print("|---|" + "---:|" * (len(LEVERS) + 5))
    for name, s in summaries.items():
        levers = " | ".join(str(SETTINGS[name].get(lever, "")) for lever in LEVERS)
        print(f"| {name} | {levers} | {s['loop_share']:.0%} | {s['repeated_4grams']:.0%} | {s['stop_share']:.0%} | "
              f"{s['median_tokens']:.0f} | {s['drift_share']:.0%} |")
    print(f"\nRule: {RULE}.\nChosen: {chosen(summaries)} {SETTINGS[chosen(summaries)]}")


if __name__ == "__main__":
    main()
