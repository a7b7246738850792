"""The request object of POST /v1/responses (its answer is the stored ResponseObject:
server/core/history/objects.py)."""

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from server.api.protocol import InputItem, InputMessage, Metadata, issued_id
from server.core.history.items import (
    ConversationRef,
    FunctionTool,
    FunctionToolChoice,
    Item,
    ResponseToolChoice,
    TextParam,
)
from server.core.schema import (
    INT32_MAX,
    ChatTool,
    ChatToolChoice,
    NamedFunction,
    NamedToolChoice,
    SamplingFields,
    Unsupported,
)


class ResponseRequest(SamplingFields):
    """POST /v1/responses. `max_output_tokens` is the Responses name of max_tokens; `n` has no place here."""

    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    conversation: str | ConversationRef | None = None
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
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
    def is_stateful(self) -> bool:
        """Stores the turn or continues stored history (so it needs the conversation store)."""
        return self.store or self.conversation_id is not None or self.previous_response_id is not None

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation

    def input_items(self, count_tokens: Callable[[str], int]) -> list[Item]:
        """The input as stored items, each message with its token count."""
        given = [InputMessage(role="user", content=self.input)] if isinstance(self.input, str) else self.input
        return [item.to_item(tokens=count_tokens(item.text())) if isinstance(item, InputMessage) else issued_id(item)
                for item in given]
