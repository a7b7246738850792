"""POST /v1/completions: raw text completion (no chat template), streamed or whole; `echo` puts the prompt
before the answer, with its tokens' logprobs when `logprobs` is asked for."""

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response

from server.api.completions.protocol import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest
from server.api.completions.service import ROUTE, CompletionService
from server.api.deps import AdmissionDep, EngineDep, SettingsDep
from server.api.protocol import ErrorResponse, usage_of
from server.api.streaming import completion_events, sse_response, until_disconnect
from server.core.engine.generation import ChoiceDelta, Generation
from server.core.schema import TokenLogprob

router = APIRouter(tags=["completions"])


@dataclass
class Choices:
    """Turns engine deltas into completion choices: the echoed prompt goes before each choice's first delta, and
    logprob text offsets run on across a choice's chunks."""

    generation: Generation
    echo: str | None
    first_prompt_token: str = ""
    offsets: dict[int, int] = field(default_factory=dict)

    def choice(self, delta: ChoiceDelta) -> CompletionChoice:
        text = delta.text
        logprobs: list[TokenLogprob | None] | None = None if delta.logprobs is None else list(delta.logprobs)
        first = delta.index not in self.offsets
        if first and self.echo is not None:
            text = self.echo + text
            if logprobs is not None:
                logprobs = [*(self.generation.prompt_logprobs or []), *logprobs]
        offset = self.offsets.get(delta.index, 0)
        self.offsets[delta.index] = offset + len(text)
        return CompletionChoice(
            index=delta.index, text=text, finish_reason=delta.finish_reason,
            logprobs=CompletionLogprobs.of(logprobs, offset, self.first_prompt_token) if logprobs is not None else None,
        )


async def completion_chunks(choices: Choices, model: str, include_usage: bool) -> AsyncIterator[str]:
    generation = choices.generation
    created = int(time.time())
    async for delta in generation.deltas():
        if delta.text or delta.finish_reason or delta.logprobs:
            yield Completion(
                id=generation.request_id, created=created, model=model, choices=[choices.choice(delta)],
            ).model_dump_json()
    if include_usage:
        yield Completion(
            id=generation.request_id, created=created, model=model, choices=[], usage=usage_of(generation)
        ).model_dump_json()


@router.post(ROUTE, response_model=Completion, responses={400: {"model": ErrorResponse}})
async def create_completion(
    body: CompletionRequest, request: Request, engine: EngineDep, settings: SettingsDep,
    admission: AdmissionDep,
) -> Completion | Response:
    generation, echo = CompletionService(engine, settings, admission).start(body)
    choices = Choices(generation, echo, engine.tokenizer.decode(generation.prompt_ids[:1]))
    if body.stream:
        return sse_response(completion_events(completion_chunks(choices, generation.model, body.include_usage)),
                            settings.shutdown_timeout_seconds)
    collected = await until_disconnect(request, generation.collect())
    return Completion(
        id=generation.request_id, model=generation.model, choices=[choices.choice(c) for c in collected],
        usage=usage_of(generation),
    )
