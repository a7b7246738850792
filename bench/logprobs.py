"""Is an engine configuration's arithmetic right? Teacher-forced log-probabilities against a float32 server.

    python bench/logprobs.py [--lima NAME="[ENV=VALUE ...] [lima serve flags]" ...] [--texts 12] [--tokens 160]

A greedy answer is the wrong probe: one near tie (two next tokens within bf16's rounding) flips the string and
everything after it, though the arithmetic is as right as any other kernel set's. This script asks instead how
far each configuration's probabilities are from float32's on the same tokens. Every server runs the embedded
default model and scores the same fixed texts (the shipped sample's first conversations, rendered with the
model's chat template, cut to --tokens tokens) through `/v1/completions` with `echo` and `logprobs`, as a user
gets them over HTTP. For every token after the first: |log p(config) - log p(float32)| of the text's token, and
whether both rank the same next token first. Prints mean / p95 / max per configuration, and which are as close
to float32 as eager bf16 is (mean and p95 at most 10 % above eager bf16's: the rule this project uses to call a
configuration right).

Default configurations: `float32` (the reference, eager), `eager-bf16`, `compiled-bf16`, `compiled-float32` (what
a CPU without native bf16 is served), and `lima` (`lima serve` with its defaults on this CPU).
"""

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve import STARTUP, start_servers
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model
from model_prep.evaluate.stats import percentile

SAMPLES = Path(__file__).resolve().parent.parent / "model_prep" / "sample" / "lima_sample.jsonl"
REFERENCE = "float32"
BASELINE = "eager-bf16"
CONFIGURATIONS = [
    f"{REFERENCE}=--dtype float32 --enforce-eager",
    f"{BASELINE}=--dtype bfloat16 --enforce-eager",
    "compiled-bf16=--dtype bfloat16 --no-enforce-eager",
    "compiled-float32=--dtype float32 --no-enforce-eager",
]
AS_CLOSE = 1.10  # a configuration is right when its mean and p95 are at most 10 % above eager bf16's


@dataclass
class Scored:
    """One text as one server scored it: each token's log-probability and the token it ranked first."""
    logprobs: list[float]
    top: list[str]


def texts(model: Path, count: int, tokens: int) -> list[list[int]]:
    """The sample's first `count` conversations as the chat template renders them, each cut to `tokens` ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()][:count]
    rendered = []
    for row in rows:
        turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": text}
                 for i, text in enumerate(row["conversations"])]
        ids = tokenizer.apply_chat_template(turns, tokenize=True, return_dict=True)["input_ids"]
        rendered.append(list(ids)[:tokens])
    return rendered


def score(url: str, ids: list[int]) -> Scored:
    """Teacher-forced: the text is the prompt, echoed with each token's log-probability and its top rival."""
    body = {"model": DEFAULT_MODEL_NAME, "prompt": ids, "max_tokens": 1, "temperature": 0, "echo": True,
            "logprobs": 1}
    choice = httpx.post(f"{url}/v1/completions", json=body, timeout=600).raise_for_status().json()["choices"][0]
    entries = choice["logprobs"]
    count = len(ids)  # the echoed prompt; the one generated token after it is not part of the text
    logprobs = entries["token_logprobs"][1:count]  # the first token has none
    tops = [max(alternatives, key=alternatives.get) for alternatives in entries["top_logprobs"][1:count]]
    return Scored(logprobs, tops)


def compare(config: list[Scored], reference: list[Scored]) -> dict[str, float]:
    gaps = [abs(a - b) for mine, ref in zip(config, reference, strict=True)
            for a, b in zip(mine.logprobs, ref.logprobs, strict=True)]
    same_top = [a == b for mine, ref in zip(config, reference, strict=True)
                for a, b in zip(mine.top, ref.top, strict=True)]
    return {"tokens": len(gaps), "mean": statistics.fmean(gaps), "p95": percentile(gaps, 0.95), "max": max(gaps),
            "same_top": sum(same_top) / len(same_top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lima", nargs="+", default=CONFIGURATIONS, metavar="NAME=SPEC",
                        help=f"configurations: NAME=\"[ENV=VALUE ...] [flags]\"; must include {REFERENCE} and "
                             f"{BASELINE}")
    parser.add_argument("--texts", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=160, help="tokens per text (the first is not scored)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench/logprobs"))
    args = parser.parse_args()
    names = {spec.partition("=")[0] for spec in args.lima}
    if not {REFERENCE, BASELINE} <= names:
        parser.error(f"--lima must name a {REFERENCE} and a {BASELINE} configuration (the reference and the bar)")
    args.logs.mkdir(parents=True, exist_ok=True)
    model = ensure_default_model(args.data_dir)
    inputs = texts(model, args.texts, args.tokens)
    started = time.perf_counter()
    servers = start_servers(model, args.lima, [], args.logs, 512 * 1024**2)  # a float32 8k context fits
    try:
        scored = {name: [score(server.url, ids) for ids in inputs] for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()

    print(f"\n{DEFAULT_MODEL_NAME}, {len(inputs)} texts, {sum(map(len, inputs)) - len(inputs)} scored tokens, "
          f"{os.cpu_count()} CPUs, {time.perf_counter() - started:.0f} s in all")
    print("start-up (start to ready): " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in STARTUP.items()))
    results = {name: compare(runs, scored[REFERENCE]) for name, runs in scored.items() if name != REFERENCE}
    bar = results[BASELINE]
    print(f"\n|log p - log p({REFERENCE})| in nats per token:\n")
    print("| configuration | mean | p95 | max | same top token | as close as eager bf16 |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        right = r["mean"] <= bar["mean"] * AS_CLOSE and r["p95"] <= bar["p95"] * AS_CLOSE
        print(f"| {name} | {r['mean']:.4f} | {r['p95']:.4f} | {r['max']:.4f} | {r['same_top']:.1%} | "
              f"{'yes' if right else 'no'} |")


if __name__ == "__main__":
    main()
