"""Request shapes of OpenAI's Conversations and Responses APIs (text messages only), and the stored item form."""

import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from server.protocol import SamplingFields, joined_text, new_id

Item = dict[str, Any]


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    # OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
    if len(metadata) > 16:
        raise ValueError("at most 16 metadata pairs")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise ValueError(f"metadata key '{key[:64]}': keys are at most 64 characters, values at most 512")
    return metadata


Metadata = Annotated[dict[str, str], AfterValidator(check_metadata)]


class ContentPart(BaseModel):
    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(BaseModel):
    """A message item as clients send it: `{"role", "content"}`, optionally with `"type": "message"`."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Annotated[list[ContentPart], Field(min_length=1)]

    def text(self) -> str:
        return joined_text(self.content)

    def to_item(self, tokens: int | None = None) -> Item:
        return message_item(self.role, self.text(), tokens=tokens)


def message_item(
    role: str,
    text: str,
    *,
    status: str = "completed",
    response_id: str | None = None,
    tokens: int | None = None,
    finish_reason: str | None = None,
    item_id: str | None = None,
) -> Item:
    """A stored message item: OpenAI's shape plus when it was written, by which response, and its token count."""
    part = {"type": "output_text", "text": text, "annotations": []} if role == "assistant" else {
        "type": "input_text", "text": text}
    return {
        "id": item_id or new_id("msg_"), "type": "message", "role": role, "status": status, "content": [part],
        "created_at": int(time.time()), "response_id": response_id, "tokens": tokens, "finish_reason": finish_reason,
    }


class ConversationCreate(BaseModel):
    items: list[InputMessage] = Field(default_factory=list)
    metadata: Metadata | None = None


class ConversationUpdate(BaseModel):
    metadata: Metadata


class ItemsCreate(BaseModel):
    items: Annotated[list[InputMessage], Field(min_length=1)]


class ConversationRef(BaseModel):
    id: str


class ResponseRequest(SamplingFields):
    """POST /v1/responses. `max_output_tokens` is the Responses name of max_tokens; `n` has no place here."""

    input: str | Annotated[list[InputMessage], Field(min_length=1)]
    instructions: str | None = None
    conversation: str | ConversationRef | None = None
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = Field(None, ge=1)
    # OpenAI's default is "disabled" (400 when the context overflows); a chat product drops the oldest turns.
    truncation: Literal["auto", "disabled"] = "auto"
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _responses_rules(self) -> "ResponseRequest":
        if self.n != 1:
            raise ValueError("the Responses API returns one output; 'n' is not supported")
        if self.conversation is not None and self.previous_response_id is not None:
            raise ValueError("'conversation' and 'previous_response_id' cannot be used together")
        if self.max_tokens is not None:
            raise ValueError("the Responses API limits the answer with 'max_output_tokens', not 'max_tokens'")
        self.max_tokens = self.max_output_tokens
        return self

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation

    def input_messages(self) -> list[InputMessage]:
        if isinstance(self.input, str):
            return [InputMessage(role="user", content=self.input)]
        return self.input
