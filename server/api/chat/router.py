"""POST /v1/chat/completions over HTTP: stateless chat, streamed over SSE or returned whole; with the `conversation`
extension it continues a stored conversation and appends the turn, like the Responses API (service.py owns the
request; this module shapes its answer)."""

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.api.chat.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChoiceLogprobs,
)
from server.api.chat.service import ROUTE, ChatService
from server.api.deps import AdmissionDep, EngineDep, SettingsDep, UserDep, get_store
from server.api.protocol import DROPPED_TURNS_HEADER, ErrorResponse, Usage, usage_of
from server.api.streaming import completion_events, sse_response, until_disconnect
from server.core.engine.generation import ChoiceDelta
from server.core.turns import Turn

router = APIRouter(tags=["chat"])


def chat_choice(choice: ChoiceDelta, turn: Turn) -> ChatChoice:
    """A whole answer: its text, or with tools its content and the calls the model made."""
    if turn.tools is None:
        message = AssistantMessage(content=choice.text)
    else:
        stream = turn.calls.get(choice.index)
        message = AssistantMessage(content=choice.text or None, tool_calls=stream.calls if stream and stream.calls
                                   else None)
    return ChatChoice(index=choice.index, message=message, finish_reason=choice.finish_reason,
                      logprobs=choice_logprobs(choice))


def choice_logprobs(delta: ChoiceDelta) -> ChoiceLogprobs | None:
    return ChoiceLogprobs(content=delta.logprobs) if delta.logprobs is not None else None


async def chat_chunks(turn: Turn, model: str, include_usage: bool) -> AsyncIterator[str]:
    generation = turn.generation
    created = int(time.time())

    def chunk(choices: list[ChatChunkChoice], usage: Usage | None = None) -> str:
        return ChatCompletionChunk(
            id=generation.request_id, created=created, model=model, choices=choices, usage=usage
        ).model_dump_json()

    yield chunk(
        [ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content="")) for i in range(generation.params.n)]
    )
    pending_finish: list[ChatChunkChoice] = []
    async for delta in turn.deltas():
        choice = ChatChunkChoice(index=delta.index, delta=ChatDelta(content=delta.text or None,
                                                                    tool_calls=delta.tool_calls),
                                 finish_reason=delta.finish_reason, logprobs=choice_logprobs(delta))
        if delta.finish_reason and turn.persists:
            # The last chunk waits until the turn is stored, so a client that saw it can rely on the history.
            pending_finish.append(choice)
        elif delta.text or delta.tool_calls or delta.finish_reason or delta.logprobs:
            yield chunk([choice])
    await turn.save()
    if pending_finish:
        yield chunk(pending_finish)
    if include_usage:
        yield chunk([], usage_of(generation))


@router.post(ROUTE, response_model=ChatCompletion, responses={400: {"model": ErrorResponse}})
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, user: UserDep, engine: EngineDep, settings: SettingsDep,
    admission: AdmissionDep,
) -> Any:
    store = get_store(request) if body.conversation else None
    started = await ChatService(engine, settings, admission, store, user).start(body)
    turn = started.turn
    headers = {DROPPED_TURNS_HEADER: str(started.dropped_turns)} if started.dropped_turns is not None else None
    if body.stream:
        return sse_response(completion_events(chat_chunks(turn, started.model, body.include_usage)),
                            settings.shutdown_timeout_seconds, headers)
    choices, _ = await until_disconnect(request, turn.collect())
    completion = ChatCompletion(
        id=turn.generation.request_id, model=started.model, choices=[chat_choice(c, turn) for c in choices],
        usage=usage_of(turn.generation),
    )
    return JSONResponse(completion.model_dump(), headers=headers)
