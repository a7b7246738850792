"""What the chat UI does, through the server's public OpenAI-compatible API only (the official `openai` client):
list models and conversations, stream an answer into a conversation, regenerate, edit, rename, delete.

Kept free of Gradio so it is tested directly against a live server, and so any other front end can reuse it.
Asynchronous, so that cancelling the task that streams an answer (the Stop button) closes the connection at
once, and the server aborts the generation.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import openai

from lima.conversations import delete_from_user_turn, turn_request
from model_prep.chat_format import joined_text

TITLE_KEY = "title"
UNTITLED = "New chat"


class UIError(Exception):
    """A server or connection problem, worded for the person chatting."""


def readable(exc: Exception) -> UIError:
    if isinstance(exc, openai.AuthenticationError):
        return UIError("The server refused the API key. Enter a valid key in Settings.")
    if isinstance(exc, openai.NotFoundError):
        return UIError(f"Not found: {exc.message}")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") or exc.message
        return UIError(f"The server answered {exc.status_code}: {message}")
    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
        return UIError("Cannot reach the server. Is it running? The chat works again as soon as it is back.")
    return UIError(f"Unexpected error: {exc}")


@dataclass
class Settings:
    """Generation settings; None means the model's own default (LIMA's decoding for LIMA checkpoints)."""

    model: str | None = None
    system_prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    loop_guard: int | None = None  # stop an answer once a sentence was written this many times; 0: never


# How the page says why an answer stopped before it ended by itself (Responses' incomplete_details.reason).
STOPPED_NOTES = {
    "repetition": "Stopped: the answer kept repeating the same sentence. Regenerate it, or ask differently.",
    "max_output_tokens": "Stopped at the max tokens limit (Settings).",
}


@dataclass
class ModelInfo:
    id: str
    max_model_len: int
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConversationSummary:
    id: str
    title: str
    updated_at: int


class ChatClient:
    """One use: `async with ChatClient(url, key) as chat: ...` (the HTTP connections close at the end)."""

    def __init__(self, server_url: str, api_key: str | None = None, timeout: float = 600) -> None:
        self.server_url = server_url.rstrip("/")
        base = self.server_url if self.server_url.endswith("/v1") else f"{self.server_url}/v1"
        # The server ignores the key when it has none configured; the client library insists on one.
        self.openai = openai.AsyncOpenAI(base_url=base, api_key=api_key or "no-key", max_retries=0, timeout=timeout)

    async def __aenter__(self) -> "ChatClient":
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.openai.close()

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await function(*args, **kwargs)
        except openai.APIError as exc:
            raise readable(exc) from exc

    async def models(self) -> list[ModelInfo]:
        page = await self._call(self.openai.models.list)
        return [
            ModelInfo(card.id, (card.model_extra or {}).get("max_model_len", 0),
                      (card.model_extra or {}).get("default_sampling", {}))
            for card in page.data
        ]

    async def conversations(self, limit: int = 100) -> list[ConversationSummary]:
        """The caller's conversations, most recently active first (the server's listing extension)."""
        reply = await self._call(self.openai.get, "/conversations", cast_to=object,
                                 options={"params": {"limit": limit}})
        return [
            ConversationSummary(c["id"], c["metadata"].get(TITLE_KEY) or c.get("preview") or UNTITLED,
                                c.get("updated_at", c["created_at"]))
            for c in reply["data"]
        ]

    async def new_conversation(self, title: str | None = None) -> str:
        metadata = {TITLE_KEY: title[:512]} if title else {}
        return (await self._call(self.openai.conversations.create, metadata=metadata)).id

    async def rename(self, conversation_id: str, title: str) -> None:
        await self._call(self.openai.conversations.update, conversation_id, metadata={TITLE_KEY: title[:512]})

    async def delete(self, conversation_id: str) -> None:
        await self._call(self.openai.conversations.delete, conversation_id)

    async def items(self, conversation_id: str) -> list[Any]:
        """Every stored item, oldest first (the client follows the pages)."""
        try:
            return [item async for item in self.openai.conversations.items.list(conversation_id, order="asc",
                                                                                  limit=100)]
        except openai.APIError as exc:
            raise readable(exc) from exc

    async def messages(self, conversation_id: str) -> list[dict[str, str]]:
        """The conversation as chat messages (role, content), oldest first; instructions left out."""
        return [
            {"role": item.role, "content": joined_text(item.content)}
            for item in await self.items(conversation_id)
            if item.type == "message" and item.role in ("user", "assistant")
        ]

    async def stream_reply(self, conversation_id: str, text: str, settings: Settings) -> AsyncIterator[str]:
        """Send one user message into the conversation; yields the answer's text as it grows, and at the end a
        note after it when it was stopped (STOPPED_NOTES). Cancelling or closing the iterator closes the
        connection, and the server aborts the generation."""
        extra = {name: value for name, value in (("repetition_penalty", settings.repetition_penalty),
                                                 ("loop_guard", settings.loop_guard)) if value is not None}
        request = turn_request(conversation_id, text, model=settings.model, temperature=settings.temperature,
                               top_p=settings.top_p, max_output_tokens=settings.max_tokens,
                               instructions=settings.system_prompt or None, extra=extra, stream=True)
        stream = await self._call(self.openai.responses.create, **request)
        answer = ""
        try:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    answer += event.delta
                    yield answer
                elif event.type == "error":
                    raise UIError(f"The server stopped the answer: {event.message}")
                elif event.type == "response.incomplete":
                    details = event.response.incomplete_details
                    note = STOPPED_NOTES.get(details.reason or "") if details else None
                    if note:
                        yield f"{answer}\n\n*{note}*"
                elif event.type == "response.failed":
                    error = event.response.error
                    raise UIError(f"The answer failed: {error.message if error else 'unknown error'}")
        except openai.APIError as exc:
            raise readable(exc) from exc
        finally:
            await stream.close()

    async def take_back_last_turn(self, conversation_id: str) -> str | None:
        """Delete the last user message and everything after it; returns its text (None if there is none).
        Regenerate resends it as is, edit-and-resend with new text."""
        return await self._call(delete_from_user_turn, self.openai, conversation_id, -1)
