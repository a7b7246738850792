"""The objects the Conversations and Responses routes return and the store keeps, as OpenAI's `openai` package
types them, field for field (tests/test_openai_types.py checks it); this server's extensions are marked."""

import time
from typing import Literal

from pydantic import BaseModel, Field

from server.core.history.items import ConversationRef, FunctionTool, Identified, Item, ResponseToolChoice, TextParam


class Conversation(Identified):
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str] = Field(default_factory=dict)
    # Extensions for conversation lists (OpenAI has none): last activity and the first user message.
    updated_at: int = 0
    preview: str = ""


class InputTokensDetails(BaseModel):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> "ResponseUsage":
        return cls(input_tokens=prompt_tokens, output_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens,
                   input_tokens_details=InputTokensDetails(cached_tokens=cached_tokens))


class ResponseError(BaseModel):
    code: str
    message: str


class IncompleteDetails(BaseModel):
    # This server's: "client_disconnected", the client went away and the partial answer was kept; "repetition",
    # the loop guard ended an answer that kept writing the same sentence.
    reason: Literal["max_output_tokens", "content_filter", "client_disconnected", "repetition"]


class ResponseObject(BaseModel):
    """A Responses API response: `in_progress` while it streams, then completed, incomplete or failed."""

    id: str
    object: Literal["response"] = "response"
    created_at: int = Field(default_factory=lambda: int(time.time()))
    status: Literal["in_progress", "completed", "incomplete", "failed"] = "in_progress"
    completed_at: int | None = None
    model: str
    output: list[Item] = Field(default_factory=list)
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: ConversationRef | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    parallel_tool_calls: bool = True
    tool_choice: ResponseToolChoice = "auto"
    tools: list[FunctionTool] = Field(default_factory=list)
    text: TextParam = Field(default_factory=TextParam)
    truncation: Literal["auto", "disabled"] = "disabled"
    metadata: dict[str, str] = Field(default_factory=dict)
    user: str | None = None
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    # Extensions: whether the response is kept for GET and previous_response_id, and how many of the oldest
    # turns were left out so the prompt fits the context window.
    store: bool = True
    dropped_turns: int = 0


class StoredResponse(ResponseObject):
    """The record the store keeps: the response, its owner, and the input items a previous_response_id chain
    replays into the next prompt."""

    owner: str
    input: list[Item] = Field(default_factory=list)

    def public(self) -> ResponseObject:
        """The response as the API shows it, without the owner and the input."""
        return ResponseObject.model_validate(self.model_dump(exclude={"owner", "input"}))
