"""One exchange with the model that ends in the store: its input items and the answer are written together
when the answer completes, or, if the client goes away mid-answer, with the partial answer marked incomplete.
An engine error stores nothing: the client was told the turn failed and may retry it."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from server.core.engine.generation import REPETITION, ChoiceDelta, Generation
from server.core.engine.tools import ToolCalling, ToolCallStream
from server.core.failures import NotFound
from server.core.history.items import FunctionCallItem, Item, ItemStatus, MessageItem, OutputText
from server.core.history.objects import IncompleteDetails, ResponseObject, ResponseUsage, StoredResponse
from server.core.history.store import HistoryStore
from server.core.ids import FUNCTION_CALL, MESSAGE, new_id
from server.core.schema import TokenLogprob

log = logging.getLogger(__name__)

# Saves of interrupted turns run on after the request's task is cancelled; held here until they finish.
_background_saves: set[asyncio.Task[Any]] = set()


def response_status(finish_reason: str | None, interrupted: bool) -> tuple[ItemStatus, IncompleteDetails | None]:
    """OpenAI's status and incomplete_details for how the answer ended (`finish_reason` as stored: REPETITION
    for an answer the loop guard ended)."""
    if interrupted:
        return "incomplete", IncompleteDetails(reason="client_disconnected")
    if finish_reason == "length":
        return "incomplete", IncompleteDetails(reason="max_output_tokens")
    if finish_reason == REPETITION:
        return "incomplete", IncompleteDetails(reason="repetition")
    return "completed", None


@dataclass
class Turn:
    generation: Generation
    store: HistoryStore | None
    owner: str
    conversation_id: str | None
    input_items: list[Item]
    # The Responses API object (without output and status yet); None for chat completions.
    response: ResponseObject | None = None
    store_response: bool = False
    tools: ToolCalling | None = None
    output_id: str = field(default_factory=lambda: new_id(MESSAGE))
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    calls: dict[int, ToolCallStream] = field(default_factory=dict)  # per choice, with tools
    # The first choice's output items in the order they began: "message", or a call's index.
    order: list[str | int] = field(default_factory=list)
    call_item_ids: dict[int, str] = field(default_factory=dict)

    async def deltas(self) -> AsyncIterator[ChoiceDelta]:
        """The generation's deltas (with tools: content and tool call pieces), remembered; a cancelled turn
        (client gone) is saved as incomplete."""
        try:
            async for delta in self.generation.deltas():
                if self.tools is not None:
                    stream = self.calls.setdefault(delta.index, self.tools.stream())
                    content, tool_calls, finish_reason = stream.delta(delta.text, delta.token_ids,
                                                                      delta.finish_reason)
                    delta = replace(delta, text=content, tool_calls=tool_calls, finish_reason=finish_reason)
                if delta.index == 0:
                    self._remember(delta)
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            if self.persists:
                task = asyncio.ensure_future(self.save(interrupted=True))
                _background_saves.add(task)
                task.add_done_callback(_log_failed_save)
            raise

    def _remember(self, delta: ChoiceDelta) -> None:
        self.parts.append(delta.text)
        self.logprobs += delta.logprobs or []
        self.finish_reason = delta.stop_reason or delta.finish_reason or self.finish_reason
        if delta.text and "message" not in self.order:
            self.order.append("message")
        for call in delta.tool_calls or []:
            if call.index not in self.order:
                self.order.append(call.index)

    def call_item_id(self, index: int) -> str:
        """The function_call item id of the first choice's call `index` (the same streamed and stored)."""
        return self.call_item_ids.setdefault(index, new_id(FUNCTION_CALL))

    @property
    def persists(self) -> bool:
        return self.conversation_id is not None or self.store_response

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def output_items(self, status: ItemStatus) -> list[Item]:
        """The first choice's output items in the order they began: its message (unless the answer was only
        calls), then or before its function calls."""
        wanted = self.generation.params.logprobs is not None
        message = MessageItem(
            id=self.output_id, role="assistant", status=status,
            content=[OutputText(text=self.text, logprobs=self.logprobs if wanted else None)],
            response_id=self.generation.request_id, tokens=self.generation.completion_tokens,
            finish_reason=self.finish_reason,
        )
        stream = self.calls.get(0)
        calls = stream.calls if stream else []
        items: dict[str | int, Item] = {index: FunctionCallItem(
            id=self.call_item_id(index), call_id=call.id, name=call.function.name, arguments=call.function.arguments,
            status=status, response_id=self.generation.request_id,
        ) for index, call in enumerate(calls)}
        if self.text or not calls:
            items["message"] = message
        return [items[key] for key in [*self.order, *(key for key in items if key not in self.order)] if key in items]

    def finished(self, interrupted: bool = False) -> tuple[list[Item], ResponseObject | None]:
        """The output items and the final response object (None for chat completions)."""
        status, details = response_status(self.finish_reason, interrupted)
        output = self.output_items(status)
        if self.response is None:
            return output, None
        return output, self.response.model_copy(update={
            "status": status,
            "incomplete_details": details,
            "completed_at": int(time.time()) if status == "completed" else None,
            "output": output,
            "usage": ResponseUsage.of(
                self.generation.prompt_tokens, self.generation.completion_tokens, self.generation.cached_tokens),
        })

    async def collect(self) -> tuple[list[ChoiceDelta], ResponseObject | None]:
        """The whole answer (non-streaming), saved before it is returned, and the final response object."""
        choices = await self.generation.collect(self.deltas())
        return choices, await self.save()

    async def save(self, interrupted: bool = False) -> ResponseObject | None:
        """Write the turn (one atomic script); returns the final response object."""
        output, response = self.finished(interrupted)
        if not self.persists or self.store is None:
            return response
        record = StoredResponse(
            **dict(response), owner=self.owner, input=self.input_items
        ) if response and self.store_response else None
        if self.conversation_id is not None:
            if not await self.store.append(self.owner, self.conversation_id, [*self.input_items, *output], record):
                raise NotFound(
                    f"Conversation '{self.conversation_id}' was deleted while this answer was generated; "
                    "the answer was not stored.", param="conversation", code="conversation_not_found",
                )
        elif record is not None:
            await self.store.save_response(record)
        return response


def _log_failed_save(task: asyncio.Task[Any]) -> None:
    _background_saves.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("could not store an interrupted turn: %s", task.exception())
