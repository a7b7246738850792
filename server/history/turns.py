"""One exchange with the model that ends in the store: its input items and the answer are written together
when the answer completes, or, if the client goes away mid-answer, with the partial answer marked incomplete.
An engine error stores nothing: the client was told the turn failed and may retry it."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from server.engine.generation import ChoiceDelta, Generation
from server.failures import NotFound
from server.history.items import ItemStatus, MessageItem, OutputText
from server.history.objects import IncompleteDetails, ResponseObject, ResponseUsage, StoredResponse
from server.history.store import HistoryStore
from server.protocol import TokenLogprob, new_id

log = logging.getLogger(__name__)

# Saves of interrupted turns run on after the request's task is cancelled; held here until they finish.
_background_saves: set[asyncio.Task[Any]] = set()


def response_status(finish_reason: str | None, interrupted: bool) -> tuple[ItemStatus, IncompleteDetails | None]:
    """OpenAI's status and incomplete_details for how the answer ended."""
    if interrupted:
        return "incomplete", IncompleteDetails(reason="client_disconnected")
    if finish_reason == "length":
        return "incomplete", IncompleteDetails(reason="max_output_tokens")
    return "completed", None


@dataclass
class Turn:
    generation: Generation
    store: HistoryStore | None
    owner: str
    conversation_id: str | None
    input_items: list[MessageItem]
    # The Responses API object (without output and status yet); None for chat completions.
    response: ResponseObject | None = None
    store_response: bool = False
    output_id: str = field(default_factory=lambda: new_id("msg_"))
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None

    async def deltas(self) -> AsyncIterator[ChoiceDelta]:
        """The generation's deltas, remembered; a cancelled turn (client gone) is saved as incomplete."""
        try:
            async for delta in self.generation.deltas():
                self.parts.append(delta.text)
                self.logprobs += delta.logprobs or []
                self.finish_reason = delta.finish_reason or self.finish_reason
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            if self.persists:
                task = asyncio.ensure_future(self.save(interrupted=True))
                _background_saves.add(task)
                task.add_done_callback(_log_failed_save)
            raise

    @property
    def persists(self) -> bool:
        return self.conversation_id is not None or self.store_response

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def finished(self, interrupted: bool = False) -> tuple[MessageItem, ResponseObject | None]:
        """The assistant item and the final response object (None for chat completions)."""
        status, details = response_status(self.finish_reason, interrupted)
        wanted = self.generation.params.logprobs is not None
        output = MessageItem(
            id=self.output_id, role="assistant", status=status,
            content=[OutputText(text=self.text, logprobs=self.logprobs if wanted else None)],
            response_id=self.generation.request_id, tokens=self.generation.completion_tokens,
            finish_reason=self.finish_reason,
        )
        if self.response is None:
            return output, None
        return output, self.response.model_copy(update={
            "status": status,
            "incomplete_details": details,
            "completed_at": int(time.time()) if status == "completed" else None,
            "output": [output],
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
            if not await self.store.append(self.owner, self.conversation_id, [*self.input_items, output], record):
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
