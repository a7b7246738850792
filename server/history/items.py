"""Message items as OpenAI's Conversations and Responses APIs show them and the store keeps them, and the request
shapes of those APIs: text messages, and the function calls and results of a tool loop."""

import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from server.history.ids import FUNCTION_CALL, FUNCTION_CALL_OUTPUT, MESSAGE
from server.protocol import (
    ChatMessage,
    ChatTool,
    ChatToolChoice,
    FunctionDefinition,
    JSONSchemaFormat,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    SamplingFields,
    TokenLogprob,
    Unsupported,
    joined_text,
    new_id,
)

ItemRole = Literal["user", "assistant", "system", "developer"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


class Identified(BaseModel):
    """An object list routes can page through (OpenAI pages by id)."""

    id: str


class InputText(BaseModel):
    type: Literal["input_text"] = "input_text"
    text: str


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # with include=["message.output_text.logprobs"]


class MessageItem(Identified):
    """A message item: OpenAI's fields, then this server's extensions (when it was written, by which response,
    its token count, and how the answer ended), which the store keeps with it."""

    id: str = Field(default_factory=lambda: new_id(MESSAGE))
    type: Literal["message"] = "message"
    role: ItemRole
    status: ItemStatus = "completed"
    content: list[Annotated[InputText | OutputText, Field(discriminator="type")]]
    created_at: int = Field(default_factory=lambda: int(time.time()))
    response_id: str | None = None
    tokens: int | None = None
    finish_reason: str | None = None

    @classmethod
    def of(cls, role: str, text: str, **fields: Any) -> "MessageItem":
        """A message with one text part: output text for the assistant, input text for everyone else."""
        part = OutputText(text=text) if role == "assistant" else InputText(text=text)
        return cls.model_validate({"role": role, "content": [part], **fields})

    def text(self) -> str:
        return joined_text(self.content)


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


class FunctionCallItem(Identified):
    """A call the model made (Responses API); its answer comes back as a FunctionCallOutputItem."""

    id: str = Field(default_factory=lambda: new_id(FUNCTION_CALL))
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str  # JSON, as the model wrote it
    status: ItemStatus = "completed"
    created_at: int = Field(default_factory=lambda: int(time.time()))
    response_id: str | None = None


class FunctionCallOutputItem(Identified):
    """A function's result, sent by the client for the call with the same `call_id`."""

    id: str = Field(default_factory=lambda: new_id(FUNCTION_CALL_OUTPUT))
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    output: str
    status: ItemStatus = "completed"
    created_at: int = Field(default_factory=lambda: int(time.time()))


# Every kind of item a conversation or a response keeps, told apart by `type`.
Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, Field(discriminator="type")]
ITEM = TypeAdapter(Item)


def chat_items(message: ChatMessage) -> list[Item]:
    """A chat message as the items a conversation keeps: a tool's answer is a function_call_output; an assistant's
    calls are function_call items after its text (if it has any)."""
    if message.role == "tool":
        assert message.tool_call_id is not None  # the request's check
        return [FunctionCallOutputItem(call_id=message.tool_call_id, output=message.text())]
    calls = message.tool_calls or []
    items: list[Item] = [MessageItem.of(message.role, message.text())] if message.text() or not calls else []
    return [*items, *(FunctionCallItem(call_id=call.id, name=call.function.name, arguments=call.function.arguments)
                      for call in calls)]


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


class ConversationCreate(BaseModel):
    items: list[InputItem] = Field(default_factory=list)
    metadata: Metadata | None = None


class ItemsCreate(BaseModel):
    items: Annotated[list[InputItem], Field(min_length=1)]


class FunctionTool(BaseModel):
    """A function tool the Responses way: chat's `function` fields, flat. (Built-in tools such as web search are
    not served: a request naming one is refused.)"""

    type: Literal["function"]
    name: str = Field(..., pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def as_chat_tool(self) -> ChatTool:
        return ChatTool(type="function", function=FunctionDefinition(**self.model_dump(exclude={"type"})))


class FunctionToolChoice(BaseModel):
    type: Literal["function"]
    name: str


ResponseToolChoice = Literal["none", "auto", "required"] | FunctionToolChoice


class ConversationUpdate(BaseModel):
    metadata: Metadata


class ConversationRef(BaseModel):
    id: str


class TextFormatText(BaseModel):
    type: Literal["text"] = "text"

    def as_response_format(self) -> ResponseFormat | None:
        return None


class TextFormatJSONObject(BaseModel):
    type: Literal["json_object"] = "json_object"

    def as_response_format(self) -> ResponseFormat | None:
        return ResponseFormat(type="json_object")


class TextFormatJSONSchema(BaseModel):
    """Responses' flat form of chat's `response_format.json_schema`."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    type: Literal["json_schema"] = "json_schema"
    name: str = Field(..., min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(..., alias="schema")
    description: str | None = None
    strict: bool | None = None

    def as_response_format(self) -> ResponseFormat | None:
        return ResponseFormat(type="json_schema", json_schema=JSONSchemaFormat.model_validate(
            {"name": self.name, "schema": self.schema_, "description": self.description, "strict": self.strict}))


TextFormat = Annotated[TextFormatText | TextFormatJSONObject | TextFormatJSONSchema, Field(discriminator="type")]


class TextParam(BaseModel):
    format: TextFormat = Field(default_factory=TextFormatText)


class ResponseRequest(SamplingFields):
    """POST /v1/responses. `max_output_tokens` is the Responses name of max_tokens; `n` has no place here."""

    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    conversation: str | ConversationRef | None = None
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = Field(None, ge=1)
    # OpenAI's default is "disabled" (400 when the context overflows); a chat product drops the oldest turns.
    truncation: Literal["auto", "disabled"] = "auto"
    metadata: Metadata | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # What to add to the output: only the output text's logprobs are served.
    include: list[Literal["message.output_text.logprobs"]] | None = None
    # Structured output, the Responses way (chat's `response_format`).
    text: TextParam | None = None
    # Function tools: "auto" (the default with tools) needs the server's --tool-call-parser, as in chat.
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None  # type: ignore[assignment]
    tool_choice: ResponseToolChoice | None = None  # type: ignore[assignment]
    background: Unsupported = None
    max_tool_calls: Unsupported = None
    prompt: Unsupported = None
    reasoning: Unsupported = None

    @model_validator(mode="after")
    def _responses_rules(self) -> "ResponseRequest":
        if self.n != 1:
            raise ValueError("the Responses API returns one output; 'n' is not supported")
        if self.conversation is not None and self.previous_response_id is not None:
            raise PydanticCustomError(  # OpenAI's words and code
                "mutually_exclusive_parameters", "Mutually exclusive parameters: Ensure you are only providing one "
                "of: 'previous_response_id' or 'conversation'.")
        if self.max_tokens is not None:
            raise ValueError("the Responses API limits the answer with 'max_output_tokens', not 'max_tokens'")
        self.max_tokens = self.max_output_tokens
        if self.text is not None:
            self.response_format = self.text.format.as_response_format()
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise ValueError("a 'tool_choice' that asks for a call needs 'tools'")
        return self

    @property
    def chat_tools(self) -> list[ChatTool] | None:
        return [tool.as_chat_tool() for tool in self.tools] if self.tools else None

    @property
    def chat_tool_choice(self) -> ChatToolChoice | None:
        if isinstance(self.tool_choice, FunctionToolChoice):
            return NamedToolChoice(type="function", function=NamedFunction(name=self.tool_choice.name))
        return self.tool_choice

    @property
    def top_logprobs_count(self) -> int | None:
        if self.include and "message.output_text.logprobs" in self.include:
            return self.top_logprobs or 0
        return None

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation

    def input_items(self, count_tokens: Callable[[str], int]) -> list[Item]:
        """The input as stored items, each message with its token count."""
        given = [InputMessage(role="user", content=self.input)] if isinstance(self.input, str) else self.input
        return [item.to_item(tokens=count_tokens(item.text())) if isinstance(item, InputMessage) else issued_id(item)
                for item in given]
