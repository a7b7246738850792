"""POST /v1/chat/completions: stateless chat, streamed over SSE or returned whole; with the `conversation`
extension it continues a stored conversation and appends the turn, like the Responses API."""

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from jinja2 import TemplateError

from server.auth import UserDep
from server.deps import EngineDep, SettingsDep, get_store
from server.engine.admission import AdmissionDep
from server.engine.generation import ChoiceDelta, resolve_model, start_generation, usage_of
from server.engine.streaming import completion_events, sse_response, until_disconnect
from server.engine.tools import tool_calling
from server.errors import APIError
from server.history.items import chat_items
from server.history.prompt import DROPPED_TURNS_HEADER, fit_prompt, reserve_for_output, stored_items, template_messages
from server.history.turns import Turn
from server.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChoiceLogprobs,
    ErrorResponse,
    Usage,
)

ROUTE = "/v1/chat/completions"
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
    model = resolve_model(body.model, engine)
    tools = tool_calling(body.tools, body.tool_choice, body.parallel_tool_calls, settings.auto_tool_parser,
                         engine.tokenizer)
    definitions = [tool.model_dump(exclude_none=True) for tool in body.tools] if body.tools else None
    new_messages = [message.as_template_message() for message in body.messages]
    store = get_store(request) if body.conversation else None
    dropped_turns = 0
    try:
        if store is None:
            prompt_ids = engine.chat_prompt_ids(new_messages, tools=definitions)
        else:
            history = template_messages(await stored_items(store, user, body.conversation, None))
            fitted = fit_prompt(engine, history, new_messages, reserve_for_output(engine, body.max_tokens),
                                truncate=True, prompt_param="messages", tools=definitions)
            prompt_ids, dropped_turns = fitted.ids, fitted.dropped_turns
    except TemplateError as exc:
        raise APIError(400, f"The model's chat template rejected the messages: {exc}", param="messages") from exc
    generation = start_generation(body, engine, model, ROUTE, "chatcmpl-", prompt_ids, "messages",
                                  settings.max_choices, admission, tools, settings.loop_guard)
    input_items = [item for message in body.messages for item in chat_items(message)] if store else []
    turn = Turn(generation, store, user, body.conversation, input_items, tools=tools)
    headers = {DROPPED_TURNS_HEADER: str(dropped_turns)} if store else None
    if body.stream:
        return sse_response(completion_events(chat_chunks(turn, model, body.include_usage)),
                            settings.shutdown_timeout_seconds, headers)
    choices, _ = await until_disconnect(request, turn.collect())
    completion = ChatCompletion(
        id=generation.request_id, model=model, choices=[chat_choice(c, turn) for c in choices],
        usage=usage_of(generation),
    )
    return JSONResponse(completion.model_dump(), headers=headers)
