"""OpenAI's Responses API (text and function calls): POST /v1/responses continues a conversation or a
previous_response_id chain from the store, streams OpenAI's Responses events, and stores the turn; GET/DELETE
stored responses."""

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from server.api.deps import AdmissionDep, EngineDep, SettingsDep, StoreDep, UserDep, get_store
from server.api.errors import APIError, as_api_error, unhandled
from server.api.protocol import DROPPED_TURNS_HEADER, Deleted, ErrorResponse, Page
from server.api.responses.protocol import ResponseRequest
from server.api.responses.service import ROUTE, ResponsesService
from server.api.streaming import sse_response, until_disconnect
from server.core.failures import Failure, NotFound
from server.core.history.items import (
    FunctionCallItem,
    Item,
    MessageItem,
    OutputText,
)
from server.core.history.objects import ResponseError, ResponseObject
from server.core.schema import DeltaFunctionCall
from server.core.turns import Turn

# Names a stored response on its reply, stream or not: a load balancer keeps a previous_response_id chain on the
# replica that holds its prefix cache by remembering where each id was answered (deploy/haproxy/haproxy.cfg).
RESPONSE_ID_HEADER = "X-Lima-Response-Id"
router = APIRouter(tags=["responses"], responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}})


@router.post(ROUTE, response_model=ResponseObject, responses={200: {"content": {"text/event-stream": {}}}})
async def create_response(
    body: ResponseRequest, request: Request, user: UserDep, engine: EngineDep, settings: SettingsDep,
    admission: AdmissionDep,
) -> Any:
    store = get_store(request) if body.is_stateful else None
    turn, response = await ResponsesService(engine, settings, admission, store, user).start(body)
    headers = {DROPPED_TURNS_HEADER: str(response.dropped_turns)}
    if body.store:
        headers[RESPONSE_ID_HEADER] = response.id
    if body.stream:
        return sse_response(response_events(turn, response), settings.shutdown_timeout_seconds, headers)
    _, final = await until_disconnect(request, turn.collect())
    assert final is not None  # a turn started with a response object finishes with one
    return JSONResponse(final.model_dump(mode="json"), headers=headers)


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
    except (APIError, Failure, Exception) as failure:  # anything else is a bug, said in-band all the same
        exc = as_api_error(failure) if isinstance(failure, APIError | Failure) else unhandled(failure, ROUTE)
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


def response_not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id", code="response_not_found")


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
