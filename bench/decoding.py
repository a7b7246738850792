"""Which decoding suits the embedded model: LIMA's vs its authors', on the same server and prompts.

    python bench/decoding.py [--samples 3] [--max-tokens 512] [--out artifacts/decoding]

One `lima serve` on the embedded SmolLM2-135M-Instruct; every prompt is asked under each setting with the same
seeds (one request per prompt, setting and seed, --concurrency in flight), with the sampling sent explicitly so
the checkpoint's own defaults play no part. Reported per setting: the share of answers that end by themselves
(finish_reason `stop`) within --max-tokens, the median answer length in tokens, and the share that drift into
hashtags or emoji (what LIMA's settings produced on the coffee prompt). Every answer is written to OUT.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.live_server import LiveServer
from model_prep.checkpoints.decoding import LIMA_DECODING
from model_prep.checkpoints.default_model import AUTHORS_DECODING, DEFAULT_MODEL_NAME, ensure_default_model

SETTINGS = {
    "lima": {key: LIMA_DECODING[key] for key in ("temperature", "top_p", "repetition_penalty")},
    "authors": {"temperature": AUTHORS_DECODING["temperature"], "top_p": AUTHORS_DECODING["top_p"],
                "repetition_penalty": 1.0},
}
# Thirty everyday requests of the kinds people bring to a chat assistant: advice, how-to, facts, explanations,
# writing, lists, code, comparisons, planning.
PROMPTS = [
    "Give me three tips for brewing good pour-over coffee.",
    "What is the capital of Australia?",
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
    body = {"model": DEFAULT_MODEL_NAME, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "seed": seed, **SETTINGS[setting]}
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


def summary(rows: list[dict]) -> dict[str, float]:
    return {"answers": len(rows), "stop_share": sum(r["finish_reason"] == "stop" for r in rows) / len(rows),
            "median_tokens": statistics.median(r["tokens"] for r in rows),
            "drift_share": sum(bool(HASHTAG_OR_EMOJI.search(r["answer"])) for r in rows) / len(rows)}


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
    print("| setting | temperature | top_p | repetition penalty | ended by itself | median tokens | "
          "hashtags or emoji |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, setting in SETTINGS.items():
        s = summary([row for row in rows if row["setting"] == name])
        print(f"| {name} | {setting['temperature']} | {setting['top_p']} | {setting['repetition_penalty']} | "
              f"{s['stop_share']:.0%} | {s['median_tokens']:.0f} | {s['drift_share']:.0%} |")


if __name__ == "__main__":
    main()
