"""`lima prep eval run`: answers from every endpoint, then the judge's verdicts for each protocol, all cached
in the results directory (generations/, judgements/), then summary.json, report.md and the preference chart.

Pairwise: each baseline's answer against the candidate's, judged in both orders to cancel position bias; the
candidate wins only when both orders say so, loses only when both say the baseline, and anything else is a tie.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI
from tqdm.auto import tqdm

from lima.conversations import delete_from_user_turn, turn_request
from model_prep.evaluate.config import Endpoint, EvalConfig
from model_prep.evaluate.judge import judge
from model_prep.evaluate.report import write_results
from model_prep.evaluate.store import Records, read_dialogues, read_prompts

log = logging.getLogger(__name__)
TRANSIENT = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)


class Client:
    """An endpoint's AsyncOpenAI client and model, and whether it takes LIMA's repetition penalty."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.openai = AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key(), max_retries=3,
                                  timeout=600)
        self.model = endpoint.model or ""
        self.repetition_penalty = endpoint.repetition_penalty is not False
        self.structured = endpoint.structured_output is not False

    async def resolve_model(self) -> None:
        if not self.model:
            models = await self.openai.models.list()
            if not models.data:
                raise ValueError(f"endpoint {self.endpoint.name} lists no model; name one with @model")
            self.model = models.data[0].id

    async def call(self, make: Callable[[dict[str, Any]], Awaitable[Any]], config: EvalConfig) -> Any:
        """`make(extra_body)`; if the endpoint refuses repetition_penalty (OpenAI's API has none), drop it for
        this endpoint and try again, unless the user said it must be sent."""
        extra = {"repetition_penalty": config.decoding.repetition_penalty} if self.repetition_penalty else {}
        try:
            return await make(extra)
        except openai.BadRequestError as error:
            if extra and "repetition_penalty" in str(error) and self.endpoint.repetition_penalty is None:
                log.warning("%s does not take repetition_penalty: sending it no more", self.endpoint.name)
                self.repetition_penalty = False
                return await make({})
            raise


class Runner:
    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.limit = asyncio.Semaphore(config.concurrency)
        self.failed_this_run = 0

    async def guarded(self, work: Awaitable[Any]) -> Any:
        """One call under the concurrency limit; a transient failure is logged and left for the next run."""
        async with self.limit:
            try:
                return await work
            except TRANSIENT as error:
                self.failed_this_run += 1
                log.warning("call failed (%s); a rerun will retry it", error)
                return None

    async def gather(self, label: str, jobs: Sequence[Awaitable[Any]]) -> None:
        with tqdm(total=len(jobs), desc=label, unit="call") as progress:
            async def tracked(job: Awaitable[Any]) -> None:
                await self.guarded(job)
                progress.update()

            await asyncio.gather(*(tracked(job) for job in jobs))

    # -- generation ---------------------------------------------------------------------------------------------

    async def generate(self, client: Client, prompts: list[dict[str, Any]], records: Records) -> None:
        decoding = self.config.decoding

        async def answer(prompt: dict[str, Any], sample: int) -> None:
            key = f"{prompt['id']}#{sample}"

            async def make(extra: dict[str, Any]) -> Any:
                return await client.openai.chat.completions.create(
                    model=client.model, messages=[{"role": "user", "content": prompt["text"]}],
                    temperature=decoding.temperature, top_p=decoding.top_p, max_tokens=decoding.max_tokens,
                    extra_body=extra or None)

            try:
                completion = await client.call(make, self.config)
            except openai.APIStatusError as error:  # the endpoint refuses this prompt: recorded, not retried
                records.add({"key": key, "prompt_id": prompt["id"], "sample": sample, "answer": None,
                             "error": f"{error.status_code}: {error.message}"})
                return
            choice = completion.choices[0]
            records.add({"key": key, "prompt_id": prompt["id"], "sample": sample, "answer": choice.message.content,
                         "finish_reason": choice.finish_reason, "model": completion.model})

        jobs = [answer(p, s) for p in prompts for s in range(self.config.samples) if f"{p['id']}#{s}" not in records]
        await self.gather(f"answers from {client.endpoint.name}", jobs)

    async def converse(self, client: Client, dialogue: dict[str, Any], records: Records) -> None:
        """A scripted conversation, one user turn at a time, each turn cached: a resumed run continues the
        same server-side conversation (or, with the chat API, resends the cached turns)."""
        decoding = self.config.decoding
        conversation_id = None
        history: list[dict[str, str]] = []
        for turn, text in enumerate(dialogue["turns"]):
            key = f"{dialogue['id']}#{turn}"
            if (done := records.get(key)) is not None:
                conversation_id = done.get("conversation_id")
                history += [{"role": "user", "content": text}, {"role": "assistant", "content": done["answer"]}]
                continue
            if self.config.multiturn_api == "conversations":
                if conversation_id is None:
                    conversation_id = (await client.openai.conversations.create()).id
                else:  # a turn the server stored but this run did not record (interrupted): take it back
                    await delete_from_user_turn(client.openai, conversation_id, turn)

                async def respond(extra: dict[str, Any], text: str = text, conversation: str = conversation_id) -> Any:
                    return await client.openai.responses.create(**turn_request(
                        conversation, text, model=client.model, temperature=decoding.temperature,
                        top_p=decoding.top_p, max_output_tokens=decoding.max_tokens, extra=extra))

                answer = (await client.call(respond, self.config)).output_text
            else:
                messages = [*history, {"role": "user", "content": text}]

                async def make(extra: dict[str, Any], messages: list[Any] = messages) -> Any:
                    return await client.openai.chat.completions.create(
                        model=client.model, messages=messages, temperature=decoding.temperature,
                        top_p=decoding.top_p, max_tokens=decoding.max_tokens, extra_body=extra or None)

                answer = (await client.call(make, self.config)).choices[0].message.content or ""
            records.add({"key": key, "dialogue": dialogue["id"], "turn": turn, "user": text, "answer": answer,
                         "conversation_id": conversation_id})
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    # -- judging ------------------------------------------------------------------------------------------------

    async def judgements(self, protocol: str, items: list[tuple[str, dict[str, str]]], judge_client: Client,
                         records: Records) -> None:
        """Judge every (key, template fields) not judged yet."""
        async def one(key: str, fields: dict[str, str]) -> None:
            def call() -> Awaitable[dict[str, Any]]:
                return judge(judge_client.openai, judge_client.model, protocol, fields, self.config.judge_retries,
                             self.config.judge_max_tokens, judge_client.structured)

            try:
                result = await call()
            except openai.BadRequestError as error:
                if not (judge_client.structured and "response_format" in str(error)
                        and judge_client.endpoint.structured_output is None):
                    raise
                log.warning("the judge does not take response_format: parsing its free-text verdicts")
                judge_client.structured = False
                result = await call()
            records.add({"key": key, **result})

        jobs = [one(key, fields) for key, fields in items if key not in records]
        await self.gather(f"judge: {protocol}", jobs)


def generators(config: EvalConfig) -> list[Endpoint]:
    return [e for e in (config.candidate, *config.baselines) if e is not None]


async def run(config: EvalConfig) -> dict[str, Any]:
    """Everything the config asks for; returns the summary (also written to OUT/summary.json)."""
    if config.candidate is None:
        raise ValueError("an evaluation needs a candidate endpoint")
    if config.judge is None:
        raise ValueError("an evaluation needs a judge endpoint")
    if "pairwise" in config.protocols and not config.baselines:
        raise ValueError("the pairwise protocol needs at least one baseline")
    prompts = read_prompts(config.test, config.limit) if config.test else []
    sensitive = read_prompts(config.safety_prompts) if config.safety_prompts else [p for p in prompts if p["sensitive"]]
    dialogues = read_dialogues(config.dialogues) if config.dialogues else []
    if "multiturn" in config.protocols and not dialogues:
        raise ValueError("the multiturn protocol needs --dialogues")
    if not prompts and set(config.protocols) - {"multiturn", "safety"}:
        raise ValueError("pairwise, absolute and likert need --test prompts")

    runner = Runner(config)
    clients = {e.name: Client(e) for e in generators(config)}
    judge_client = Client(config.judge)
    for client in (*clients.values(), judge_client):
        await client.resolve_model()
    out = Path(config.out)
    every_prompt = prompts + [p for p in sensitive if p["id"] not in {q["id"] for q in prompts}]
    answers: dict[str, Records] = {}
    opened: list[Records] = []
    try:
        for name, client in clients.items():
            answers[name] = Records(out / "generations" / f"{name}.jsonl")
            opened.append(answers[name])
            await runner.generate(client, every_prompt, answers[name])
        chats: dict[str, Records] = {}
        if "multiturn" in config.protocols:
            for name, client in clients.items():
                chats[name] = Records(out / "generations" / f"{name}.dialogues.jsonl")
                opened.append(chats[name])
                await runner.gather(f"dialogues with {name}", [runner.converse(client, d, chats[name])
                                                               for d in dialogues])
        verdicts: dict[str, Records] = {}
        for protocol in config.protocols:
            verdicts[protocol] = Records(out / "judgements" / f"{protocol}.jsonl")
            opened.append(verdicts[protocol])
            items = judge_items(protocol, config, prompts, sensitive, dialogues, answers, chats)
            await runner.judgements(protocol, items, judge_client, verdicts[protocol])
        return write_results(config, prompts, dialogues, answers, verdicts, runner.failed_this_run)
    finally:
        for records in opened:
            records.close()


def answer_of(records: Records, prompt_id: str, sample: int = 0) -> str | None:
    record = records.get(f"{prompt_id}#{sample}")
    return record["answer"] if record else None


def judge_items(protocol: str, config: EvalConfig, prompts: list[dict[str, Any]], sensitive: list[dict[str, Any]],
                dialogues: list[dict[str, Any]], answers: dict[str, Records], chats: dict[str, Records]
                ) -> list[tuple[str, dict[str, str]]]:
    """(cache key, template fields) of every judgement the protocol needs, where the answers exist."""
    items = []
    candidate = config.candidate.name if config.candidate else ""
    if protocol == "pairwise":
        for baseline in (b.name for b in config.baselines):
            for prompt in prompts:
                mine, theirs = answer_of(answers[candidate], prompt["id"]), answer_of(answers[baseline], prompt["id"])
                if mine is None or theirs is None:
                    continue
                items.append((f"{baseline}|{prompt['id']}|candidate-first",
                              {"question": prompt["text"], "answer_a": mine, "answer_b": theirs}))
                items.append((f"{baseline}|{prompt['id']}|baseline-first",
                              {"question": prompt["text"], "answer_a": theirs, "answer_b": mine}))
    elif protocol in ("absolute", "likert", "safety"):
        pool = sensitive if protocol == "safety" else prompts
        samples = config.samples if protocol == "likert" else 1
        for name in answers:
            for prompt in pool:
                for sample in range(samples):
                    answer = answer_of(answers[name], prompt["id"], sample)
                    if answer is not None:
                        fields = {"question": prompt["text"], "answer": answer}
                        items.append((f"{name}|{prompt['id']}#{sample}", fields))
    elif protocol == "multiturn":
        for name, records in chats.items():
            for dialogue in dialogues:
                shown = []
                for turn, text in enumerate(dialogue["turns"]):
                    record = records.get(f"{dialogue['id']}#{turn}")
                    if record is None:
                        break
                    shown.append(f"User: {text}")
                    items.append((f"{name}|{dialogue['id']}#{turn}",
                                  {"conversation": "\n\n".join(shown), "answer": record["answer"]}))
                    shown.append(f"Assistant: {record['answer']}")
    return items
