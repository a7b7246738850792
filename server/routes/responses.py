"""OpenAI's Responses API (text and function calls): POST /v1/responses continues a conversation or a
previous_response_id chain from the store, streams OpenAI's Responses events, and stores the turn; GET/DELETE
stored responses."""

import itertools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from jinja2 import TemplateError
from pydantic import BaseModel

from model_prep.chat_format import Message
from server.auth import UserDep
from server.deps import EngineDep, SettingsDep, StoreDep, get_store
from server.engine.admission import AdmissionDep
from server.engine.generation import resolve_model, start_generation
from server.engine.streaming import sse_response, until_disconnect
from server.engine.tools import tool_calling
from server.errors import APIError, as_api_error
from server.failures import Failure, Invalid
from server.history.ids import RESPONSE
from server.history.items import (
    ConversationRef,
    FunctionCallItem,
    FunctionCallOutputItem,
    Item,
    MessageItem,
    OutputText,
    ResponseRequest,
    TextParam,
)
from server.history.objects import Deleted, Page, ResponseError, ResponseObject
from server.history.prompt import DROPPED_TURNS_HEADER, fit_prompt, reserve_for_output, stored_items, template_messages
from server.history.turns import Turn
from server.protocol import DeltaFunctionCall, ErrorResponse

ROUTE = "/v1/responses"
# Names a stored response on its reply, stream or not: a load balancer keeps a previous_response_id chain on the
# replica that holds its prefix cache by remembering where each id was answered (deploy/haproxy/haproxy.cfg).
RESPONSE_ID_HEADER = "X-Lima-Response-Id"
router = APIRouter(tags=["responses"], responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}})


@router.post(ROUTE, response_model=ResponseObject, responses={200: {"content": {"text/event-stream": {}}}})
async def create_response(
    body: ResponseRequest, request: Request, user: UserDep, engine: EngineDep, settings: SettingsDep,
    admission: AdmissionDep,
) -> Any:
    model = resolve_model(body.model, engine)
    tools = tool_calling(body.chat_tools, body.chat_tool_choice, body.parallel_tool_calls, settings.auto_tool_parser,
                         engine.tokenizer)
    definitions = [tool.model_dump(exclude_none=True) for tool in body.chat_tools or []] or None
    conversation_id = body.conversation_id
    stateful = body.store or conversation_id is not None or body.previous_response_id is not None
    store = get_store(request) if stateful else None
    history = await stored_items(store, user, conversation_id, body.previous_response_id) if store else []
    instructions = [Message(role="system", content=body.instructions)] if body.instructions else []
    input_items = body.input_items(lambda text: len(engine.tokenizer.encode(text, add_special_tokens=False)))
    check_call_outputs(history, input_items)
    try:
        fitted = fit_prompt(
            engine, [*instructions, *template_messages(history)], template_messages(input_items),
            reserve_for_output(engine, body.max_tokens), truncate=body.truncation == "auto", prompt_param="input",
            tools=definitions,
        )
    except TemplateError as exc:
        raise APIError(400, f"The model's chat template rejected the input: {exc}", param="input") from exc
    generation = start_generation(body, engine, model, ROUTE, RESPONSE, fitted.ids, "input", settings.max_choices,
                                  admission, tools, settings.loop_guard)
    response = ResponseObject(
        id=generation.request_id, model=model, instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        conversation=ConversationRef(id=conversation_id) if conversation_id else None,
        max_output_tokens=body.max_output_tokens, temperature=generation.params.temperature,
        top_p=generation.params.top_p, top_logprobs=body.top_logprobs, truncation=body.truncation, store=body.store,
        metadata=body.metadata or {}, user=body.user, text=body.text or TextParam(), dropped_turns=fitted.dropped_turns,
        tools=body.tools or [], tool_choice=body.tool_choice or "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False,
    )
    turn = Turn(generation, store, user, conversation_id, input_items, response=response, store_response=body.store,
                tools=tools)
    headers = {DROPPED_TURNS_HEADER: str(fitted.dropped_turns)}
    if body.store:
        headers[RESPONSE_ID_HEADER] = response.id
    if body.stream:
        return sse_response(response_events(turn, response), settings.shutdown_timeout_seconds, headers)
    _, final = await until_disconnect(request, turn.collect())
    assert final is not None  # a turn started with a response object finishes with one
    return JSONResponse(final.model_dump(mode="json"), headers=headers)


def check_call_outputs(history: Sequence[Item], input_items: Sequence[Item]) -> None:
    """Each function_call_output answers a call made earlier (OpenAI's check, words and param)."""
    calls = {item.call_id for item in [*history, *input_items] if isinstance(item, FunctionCallItem)}
    for item in input_items:
        if isinstance(item, FunctionCallOutputItem) and item.call_id not in calls:
            raise Invalid(f"No tool call found for function call output with call_id {item.call_id}.", param="input")


async def response_events(turn: Turn, response: ResponseObject) -> AsyncIterator[dict[str, str]]:
    """OpenAI's Responses stream: created, in_progress; each output item added as it begins (the message with its
    content part; a function call) and its text or arguments deltas; then, after the turn is stored, each item's
    done events and completed or incomplete; an error event and response.failed on error."""
    sequence = itertools.count()
    opened: list[str] = []  # the ids of the items added so far: their output_index is their place here

    def event(kind: str, **fields: Any) -> dict[str, str]:
        return {"event": kind, "data": json.dumps({"type": kind, "sequence_number": next(sequence), **fields})}

    def dumped(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json")

    def added(item: MessageItem | FunctionCallItem) -> Iterator[dict[str, str]]:
        opened.append(item.id)
        yield event("response.output_item.added", output_index=len(opened) - 1, item=dumped(item))
        if isinstance(item, MessageItem):
            yield event("response.content_part.added", item_id=item.id, output_index=len(opened) - 1,
                        content_index=0, part=dumped(OutputText(text="")))

    def where(item_id: str) -> dict[str, Any]:
        return {"item_id": item_id, "output_index": opened.index(item_id)}

    message = MessageItem(id=turn.output_id, role="assistant", status="in_progress", content=[])
    yield event("response.created", response=dumped(response))
    yield event("response.in_progress", response=dumped(response))
    if turn.tools is None:  # the answer is a message: it begins now
        for added_event in added(message):
            yield added_event
    try:
        async for delta in turn.deltas():
            if delta.text or delta.logprobs:
                for added_event in added(message) if message.id not in opened else ():
                    yield added_event
                yield event("response.output_text.delta", **where(message.id), content_index=0, delta=delta.text,
                            logprobs=[dumped(entry) for entry in delta.logprobs or []])
            for call in delta.tool_calls or []:
                item_id = turn.call_item_id(call.index)
                function = call.function or DeltaFunctionCall()
                if item_id not in opened:
                    for added_event in added(FunctionCallItem(id=item_id, call_id=call.id or "", name=function.name
                                                              or "", arguments="", status="in_progress")):
                        yield added_event
                if function.arguments:
                    yield event("response.function_call_arguments.delta", **where(item_id), delta=function.arguments)
        final = await turn.save()
    except (APIError, Failure) as failure:
        exc = as_api_error(failure)
        yield event("error", code=exc.body.code, message=exc.body.message, param=exc.body.param)
        failed = response.model_copy(update={
            "status": "failed", "error": ResponseError(code=exc.body.code or "server_error", message=exc.body.message)})
        yield event("response.failed", response=dumped(failed))
        return
    assert final is not None
    for item in final.output:
        if item.id not in opened and isinstance(item, MessageItem | FunctionCallItem):  # e.g. an empty answer
            for added_event in added(item if isinstance(item, FunctionCallItem) else message):
                yield added_event
        if isinstance(item, MessageItem):
            part = item.content[0]
            logprobs = part.logprobs if isinstance(part, OutputText) else None
            yield event("response.output_text.done", **where(item.id), content_index=0, text=item.text(),
                        logprobs=[dumped(entry) for entry in logprobs or []])
            yield event("response.content_part.done", **where(item.id), content_index=0, part=dumped(part))
        elif isinstance(item, FunctionCallItem):
            yield event("response.function_call_arguments.done", **where(item.id), arguments=item.arguments)
        yield event("response.output_item.done", output_index=opened.index(item.id), item=dumped(item))
    yield event(f"response.{final.status}", response=dumped(final))


def response_not_found(response_id: str) -> APIError:
    return APIError(404, f"Response with id '{response_id}' not found.", param="response_id",
                    code="response_not_found")


@router.get(f"{ROUTE}/{{response_id}}")
async def get_response(response_id: str, user: UserDep, store: StoreDep) -> ResponseObject:
    record = await store.get_response(user, response_id)
    if record is None:
        raise response_not_found(response_id)
    return record.public()


@router.get(f"{ROUTE}/{{response_id}}/input_items")
async def list_input_items(
    response_id: str, user: UserDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
) -> Page[Item]:
    record = await store.get_response(user, response_id)
    if record is None:
        raise response_not_found(response_id)
    items = record.input if order == "asc" else record.input[::-1]
    return Page.of(items[:limit], len(items) > limit)


@router.delete(f"{ROUTE}/{{response_id}}")
async def delete_response(response_id: str, user: UserDep, store: StoreDep) -> Deleted:
    if not await store.delete_response(user, response_id):
        raise response_not_found(response_id)
    return Deleted(id=response_id, object="response.deleted")
