"""OpenAI request and response shapes of chat and text completions (what this server honours), with ranges
declared on the fields. One module of ~440 lines on purpose: requests first, then answers, which reuse the
requests' pieces (tool calls, logprobs), so a reader checks a field's way in and out in one place."""

from collections.abc import Sequence
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from model_prep.chat_format import Message, joined_text, template_role
from server.core.engine.generation import Generation
from server.core.history.items import FunctionCallItem, FunctionCallOutputItem, Identified, Item, ItemRole, MessageItem
from server.core.ids import FUNCTION_CALL, FUNCTION_CALL_OUTPUT, new_id
from server.core.schema import ToolCall, json_or_text

Role = Literal["system", "developer", "user", "assistant", "tool"]


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Role
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers
    # Last, so that its check sees the fields above: None only for an assistant message with tool calls.
    content: str | list[TextPart] | None = Field(None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_unless_calls(cls, content: Any, info: ValidationInfo) -> Any:
        if content is None and not (info.data.get("role") == "assistant" and info.data.get("tool_calls")):
            raise PydanticCustomError("missing", "Field required")
        return content

    @model_validator(mode="after")
    def _tool_fields(self) -> "ChatMessage":
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs the 'tool_call_id' it answers")
        return self

    def text(self) -> str:
        return joined_text(self.content or "")

    def as_template_message(self) -> Message:
        message = Message(role=template_role(self.role), content=self.text())
        if self.tool_calls:  # chat templates read the arguments as an object
            message["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": json_or_text(call.function.arguments)}}
                for call in self.tool_calls
            ]
        if self.tool_call_id:
            message["tool_call_id"] = self.tool_call_id
        return message


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # How many prompt tokens vLLM's prefix cache served (earlier turns of a conversation, usually).
    prompt_tokens_details: PromptTokensDetails | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


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
    role: ItemRole
    content: str | Annotated[list[ContentPart], Field(min_length=1)]

    def text(self) -> str:
        return joined_text(self.content)

    def to_item(self, tokens: int | None = None) -> MessageItem:
        return MessageItem.of(self.role, self.text(), tokens=tokens)


def input_item_type(value: Any) -> str:
    """An input item's tag, from its type; a bare `{"role", "content"}` is a message. (Tags are named the way
    pydantic names its own tagged unions, so an error's location reads `input[0].role`, without the tag.)"""
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return f"tagged-union[{kind}]"


# What a Responses request may send as input: messages, and the calls and function results of a tool loop.
InputItem = Annotated[
    Annotated[InputMessage, Tag("tagged-union[message]")]
    | Annotated[FunctionCallItem, Tag("tagged-union[function_call]")]
    | Annotated[FunctionCallOutputItem, Tag("tagged-union[function_call_output]")],
    Discriminator(input_item_type, custom_error_type="invalid_item",
                  custom_error_message="input items are messages, function_call or function_call_output items"),
]


def issued_id(item: FunctionCallItem | FunctionCallOutputItem) -> FunctionCallItem | FunctionCallOutputItem:
    """A call or output sent as input, under an id this server issues: like OpenAI, the server names what it
    stores; an `id` the client sent (any string, perhaps one already in the conversation) is not kept."""
    prefix = FUNCTION_CALL if isinstance(item, FunctionCallItem) else FUNCTION_CALL_OUTPUT
    return item.model_copy(update={"id": new_id(prefix)})


def input_items(given: Sequence[InputMessage | FunctionCallItem | FunctionCallOutputItem]) -> list[Item]:
    """Input items as the store keeps them: messages in their stored shape, calls and outputs as they are, each
    under a new id of the server's."""
    return [item.to_item() if isinstance(item, InputMessage) else issued_id(item) for item in given]


class Deleted(BaseModel):
    id: str
    object: Literal["conversation.deleted", "response.deleted"]
    deleted: Literal[True] = True


Entry = TypeVar("Entry", bound=Identified)


class Page(BaseModel, Generic[Entry]):
    """One page of a list route, as OpenAI shapes them."""

    object: Literal["list"] = "list"
    data: list[Entry]
    first_id: str | None
    last_id: str | None
    has_more: bool

    @classmethod
    def of(cls, data: Sequence[Entry], has_more: bool) -> "Page[Entry]":
        ids = [entry.id for entry in data]
        return cls(data=list(data), first_id=ids[0] if ids else None, last_id=ids[-1] if ids else None,
                   has_more=has_more)


def usage_of(generation: Generation) -> Usage:
    """The OpenAI usage block of a finished generation."""
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=generation.cached_tokens),
    )


# Set on stateful replies: how many of the oldest turns were left out of the prompt to fit the context.
DROPPED_TURNS_HEADER = "X-Lima-Dropped-Turns"
