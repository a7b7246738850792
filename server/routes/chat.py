"""POST /v1/chat/completions: stateless chat, streamed over SSE or returned whole."""

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from jinja2 import TemplateError

from server.deps import EngineDep, SettingsDep
from server.errors import APIError
from server.generation import Generation, resolve_model, start_generation
from server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ErrorResponse,
    Usage,
)
from server.streaming import sse_response, until_disconnect

ROUTE = "/v1/chat/completions"
router = APIRouter(tags=["chat"])


def usage_of(generation: Generation) -> Usage:
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )


async def chat_chunks(generation: Generation, model: str, include_usage: bool) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> str:
        return ChatCompletionChunk(
            id=generation.request_id, created=created, model=model, choices=choices, usage=usage
        ).model_dump_json()

    yield chunk(
        [ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content="")) for i in range(generation.params.n)]
    )
    async for delta in generation.deltas():
        if delta.text or delta.finish_reason:
            yield chunk([ChatChunkChoice(
                index=delta.index, delta=ChatDelta(content=delta.text or None), finish_reason=delta.finish_reason
            )])
    if include_usage:
        yield chunk([], usage_of(generation))


@router.post(ROUTE, response_model=ChatCompletion, responses={400: {"model": ErrorResponse}})
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, engine: EngineDep, settings: SettingsDep
) -> ChatCompletion:
    model = resolve_model(body.model, engine)
    try:
        prompt_ids = engine.chat_prompt_ids([message.as_template_message() for message in body.messages])
    except TemplateError as exc:
        raise APIError(400, f"The model's chat template rejected the messages: {exc}", param="messages") from exc
    generation = start_generation(body, engine, ROUTE, "chatcmpl", prompt_ids, "messages", settings.max_choices)
    if body.stream:
        return sse_response(chat_chunks(generation, model, body.include_usage))
    choices = await until_disconnect(request, generation.collect())
    return ChatCompletion(
        id=generation.request_id,
        model=model,
        choices=[
            ChatChoice(index=c.index, message=AssistantMessage(content=c.text), finish_reason=c.finish_reason)
            for c in choices
        ],
        usage=usage_of(generation),
    )
