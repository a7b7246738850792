"""How often do two engine configurations' greedy answers part, and where? 30 prompts, token by token.

    python bench/same_answers.py [--lima NAME="[ENV=VALUE ...] [flags]" ...] [--max-tokens 128]

The prompts are the first user turns of model_prep/sample (29 training examples + the first of the dev set).
Both servers run the embedded default model; `lima` has today's defaults (compiled), each --lima variant what it
says (default: `eager`, `--enforce-eager`). Greedy decoding (temperature 0), so every difference comes from the
arithmetic; but a greedy string is not a test of correctness: two kernel sets round differently, and at a near
tie (two next tokens within bf16's rounding of each other) the answer takes another path and never comes back.
Whether a configuration computes the same distribution is what bench/logprobs.py measures. Prints how many
answers are identical, where the others first differ, how many end by themselves and how much they repeat, and
writes every answer to --out for reading side by side.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serve import start_servers
from model_prep.checkpoints.default_model import DEFAULT_MODEL_NAME, ensure_default_model

END_OF_TURN = "<|im_end|>"  # SmolLM2's, returned as the answer's last token when it ends by itself
SAMPLES = Path(__file__).resolve().parent.parent / "model_prep" / "sample"


def prompts(count: int) -> list[str]:
    rows = [json.loads(line) for name in ("lima_sample.jsonl", "lima_dev.jsonl")
            for line in (SAMPLES / name).read_text().splitlines() if line.strip()]
    return [row["conversations"][0] for row in rows][:count]


def answer(url: str, prompt: str, max_tokens: int) -> list[str]:
    """The answer's tokens as the server returns them (logprobs carry one entry per token)."""
    body = {"model": DEFAULT_MODEL_NAME, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": max_tokens, "logprobs": True}
    choice = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).raise_for_status().json()["choices"][0]
    return [entry["token"] for entry in choice["logprobs"]["content"]]


def repeated_4grams(tokens: list[str]) -> float:
    words = "".join(tokens).split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lima", nargs="+", default=["eager=--enforce-eager"])
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LIMA_DATA_DIR", ".cache/lima")))
    parser.add_argument("--logs", type=Path, default=Path("artifacts/bench"))
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench/answers.json"))
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    servers = start_servers(ensure_default_model(args.data_dir), args.lima, [], args.logs, 512 * 1024**2)
    try:
        answers = {name: [answer(server.url, p, args.max_tokens) for p in prompts(args.prompts)]
                   for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    args.out.write_text(json.dumps({"prompts": prompts(args.prompts),
                                    "answers": {name: ["".join(tokens) for tokens in texts]
                                                for name, texts in answers.items()}}, indent=1))
    for name, texts in answers.items():  # the two signs of a small model going wrong: no end, and loops
        ended = sum(END_OF_TURN in tokens for tokens in texts)
        print(f"{name}: {ended} of {len(texts)} answers end (end-of-turn) within {args.max_tokens} tokens; "
              f"repeated 4-grams {statistics.mean(map(repeated_4grams, texts)):.1%} of an answer's on average")
    ours = answers["lima"]
    for name in answers.keys() - {"lima"}:
        theirs = answers[name]
        same = sum(a == b for a, b in zip(ours, theirs, strict=True))
        firsts = [next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
                  for a, b in zip(ours, theirs, strict=True) if a != b]
        print(f"lima vs {name}: {same} of {len(ours)} greedy answers identical ({args.max_tokens} tokens at most); "
              f"the others first differ at token {sorted(firsts)}; answers in {args.out}")


if __name__ == "__main__":
    main()
