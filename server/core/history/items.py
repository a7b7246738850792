"""Message items as OpenAI's Conversations and Responses APIs show them and the store keeps them, and the request
shapes of those APIs: text messages, and the function calls and results of a tool loop."""

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from model_prep.chat_format import joined_text
from server.core.ids import FUNCTION_CALL, FUNCTION_CALL_OUTPUT, MESSAGE, new_id
from server.core.schema import ChatTool, FunctionDefinition, JSONSchemaFormat, ResponseFormat, TokenLogprob

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
