"""The request and answer objects of POST /v1/chat/completions (OpenAI's shapes, with the `conversation` extension)."""

import time
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from server.api.protocol import ChatMessage, Usage
from server.core.schema import (
    INT32_MAX,
    ChatTool,
    ChatToolChoice,
    DeltaToolCall,
    SamplingFields,
    TokenLogprob,
    ToolCall,
    Unsupported,
)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    # Function calling: "required" or a named function is a call whatever the model (structured outputs);
    # "auto" needs the server's --tool-call-parser. With tools and no tool_choice, "auto" (OpenAI's default).
    tools: Annotated[list[ChatTool], Field(min_length=1, max_length=128)] | None = None  # type: ignore[assignment]
    tool_choice: ChatToolChoice | None = None  # type: ignore[assignment]
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # Extension: continue a stored conversation (its items come before `messages`; the turn is appended).
    conversation: str | None = None
    # OpenAI's hints (stored completions, tags): accepted, no effect on the answer.
    metadata: dict[str, str] | None = None
    store: bool | None = None
    # Documented by OpenAI, not served by this text-only model server.
    audio: Unsupported = None
    modalities: list[Literal["text"]] | None = None
    prediction: Unsupported = None
    web_search_options: Unsupported = None
    functions: Unsupported = None
    function_call: Unsupported = None
    reasoning_effort: Unsupported = None
    verbosity: Unsupported = None

    @model_validator(mode="after")
    def _newest_limit_wins(self) -> "ChatCompletionRequest":
        # OpenAI renamed max_tokens to max_completion_tokens; honour whichever the client sent.
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        if self.conversation is not None and self.n != 1:
            raise ValueError("a conversation continues with one answer: 'n' must be 1 with 'conversation'")
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("'top_logprobs' needs 'logprobs': true")
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise ValueError("a 'tool_choice' that asks for a call needs 'tools'")
        return self

    @property
    def top_logprobs_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
