"""POST /v1/completions: raw text completion (no chat template), streamed or whole."""

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response

from server.deps import EngineDep, SettingsDep
from server.engine.admission import AdmissionDep
from server.engine.generation import Generation, resolve_model, start_generation, usage_of
from server.engine.streaming import completion_events, sse_response, until_disconnect
from server.protocol import Completion, CompletionChoice, CompletionRequest, ErrorResponse

ROUTE = "/v1/completions"
router = APIRouter(tags=["completions"])


async def completion_chunks(generation: Generation, model: str, include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())
    async for delta in generation.deltas():
        if delta.text or delta.finish_reason:
            yield Completion(
                id=generation.request_id, created=created, model=model,
                choices=[CompletionChoice(index=delta.index, text=delta.text, finish_reason=delta.finish_reason)],
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
    model = resolve_model(body.model, engine)
    prompt_ids = engine.text_prompt_ids(body.prompt) if isinstance(body.prompt, str) else [int(t) for t in body.prompt]
    generation = start_generation(body, engine, ROUTE, "cmpl-", prompt_ids, "prompt", settings.max_choices, admission)
    if body.stream:
        return sse_response(completion_events(completion_chunks(generation, model, body.include_usage)),
                            settings.shutdown_timeout_seconds)
    choices = await until_disconnect(request, generation.collect())
    return Completion(
        id=generation.request_id,
        model=model,
        choices=[CompletionChoice(index=c.index, text=c.text, finish_reason=c.finish_reason) for c in choices],
        usage=usage_of(generation),
    )
