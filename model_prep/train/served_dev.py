"""The dev set answered by a live server that serves a LoRA run's epochs as adapters of one base
(`lima serve --model RUN/base --enable-lora --lora-modules epoch-01=RUN/epoch-01 ...`): every epoch at once,
batched by vLLM, instead of a slow in-process generation per epoch. The answers go into each epoch's dev.json;
the dev loss training recorded there is kept (the server does not compute it: vLLM's CPU LoRA kernels cannot
serve the prompt logprobs it would take)."""

import asyncio
import json
import re
from pathlib import Path

import openai
from transformers import AutoTokenizer

from model_prep.chat_format import Message
from model_prep.train.dev_set import DevSet

EPOCH_DIR = re.compile(r"epoch-(\d+)$")
PARALLEL_REQUESTS = 16


def served_epochs(client: openai.OpenAI, run_dir: Path) -> dict[int, str]:
    """epoch -> the served adapter whose root is RUN/epoch-NN (vLLM's `root` of an adapter's model card)."""
    found = {}
    for card in client.models.list().data:
        root = Path(str((card.model_extra or {}).get("root") or ""))
        match = EPOCH_DIR.match(root.name)
        if match and root.resolve().parent == run_dir.resolve():
            found[int(match.group(1))] = card.id
    if not found:
        raise ValueError(f"the server serves no adapter from {run_dir}/epoch-*: start it with --enable-lora "
                         f"--lora-modules epoch-01={run_dir}/epoch-01 ...")
    return found


async def epoch_answers(client: openai.AsyncOpenAI, model: str, dev: DevSet, max_new_tokens: int, seed: int,
                        limit: asyncio.Semaphore) -> list[dict[str, str]]:
    """One answer per dev prompt with the server's decoding (the base's generation config: LIMA's), seeded."""
    async def answer(prompt: list[Message]) -> dict[str, str]:
        async with limit:
            reply = await client.chat.completions.create(
                model=model, messages=prompt, max_tokens=max_new_tokens, seed=seed)  # type: ignore[arg-type]
        return {"prompt": prompt[-1]["content"], "answer": reply.choices[0].message.content or ""}

    return list(await asyncio.gather(*(answer(prompt) for prompt in dev.prompts)))


def answer_dev_from_server(run_dir: Path, url: str, dev_data: str, api_key: str | None = None,
                           max_new_tokens: int = 2048, max_tokens: int = 2048, seed: int = 0) -> list[int]:
    """Write RUN/epoch-NN/dev.json for every epoch the server at `url` serves; returns those epochs."""
    base_url = f"{url.rstrip('/')}/v1"
    epochs = served_epochs(openai.OpenAI(base_url=base_url, api_key=api_key or "unused"), run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / f"epoch-{min(epochs):02d}")
    dev = DevSet.load(dev_data, tokenizer, max_tokens)

    async def answer_all() -> list[list[dict[str, str]]]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "unused", timeout=600)
        limit = asyncio.Semaphore(PARALLEL_REQUESTS)
        try:
            return list(await asyncio.gather(*(epoch_answers(client, epochs[e], dev, max_new_tokens, seed, limit)
                                               for e in sorted(epochs))))
        finally:
            await client.close()

    for epoch, answers in zip(sorted(epochs), asyncio.run(answer_all()), strict=True):
        path = run_dir / f"epoch-{epoch:02d}" / "dev.json"
        recorded = json.loads(path.read_text()) if path.exists() else {}
        results = {"epoch": epoch, "dev_loss": recorded.get("dev_loss"), "answered_by": epochs[epoch],
                   "answers": answers}
        path.write_text(json.dumps(results, indent=1))
    return sorted(epochs)
