"""OpenAI request and response shapes (the subset this server honours), with ranges declared on the fields."""

import time
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_prep.chat_format import Message

Role = Literal["system", "developer", "user", "assistant"]


def template_role(role: str) -> str:
    """The chat template's role for an OpenAI role: "developer" is OpenAI's newer name for "system"."""
    return "system" if role == "developer" else role


def joined_text(content: str | Iterable[Any]) -> str:
    """A message's text: the string itself, or its text parts joined (models with `.text`, or stored dicts)."""
    if isinstance(content, str):
        return content
    parts: Iterable[Any] = content
    return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part.text) for part in parts)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    role: Role
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        return joined_text(self.content)

    def as_template_message(self) -> Message:
        return Message(role=template_role(self.role), content=self.text())


class StreamOptions(BaseModel):
    include_usage: bool = False


class JSONSchemaFormat(BaseModel):
    name: str = Field(..., min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(..., alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's structured output: the answer is constrained (by vLLM's grammar backend) to JSON or a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs 'json_schema' with a 'schema'")
        return self


class SamplingFields(BaseModel):
    """Fields shared by chat and text completions. None means: the model's generation config decides."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)  # vLLM extra; LIMA uses 1.2
    min_tokens: int | None = Field(None, ge=0)  # vLLM extra
    ignore_eos: bool | None = None  # vLLM extra: generate exactly max_tokens (benchmarks)
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)

    @property
    def include_usage(self) -> bool:
        return self.stream and self.stream_options is not None and self.stream_options.include_usage


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    # Extension: continue a stored conversation (its items come before `messages`; the turn is appended).
    conversation: str | None = None

    @model_validator(mode="after")
    def _newest_limit_wins(self) -> "ChatCompletionRequest":
        # OpenAI renamed max_tokens to max_completion_tokens; honour whichever the client sent.
        if self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        if self.conversation is not None and self.n != 1:
            raise ValueError("a conversation continues with one answer: 'n' must be 1 with 'conversation'")
        return self


class CompletionRequest(SamplingFields):
    prompt: str | list[int] | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[int] | list[str]) -> str | list[int]:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise ValueError("send one prompt per request (a list of several prompts is not supported)")
            return str(prompt[0]) or cls._one_prompt("")
        prompt = cast(str | list[int], prompt)
        if not prompt:
            raise ValueError("prompt must not be empty")
        return prompt


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


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


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "lima"
    max_model_len: int
    # The model's own decoding defaults (LIMA's for model_prep checkpoints), for UIs to show.
    default_sampling: dict[str, Any] = Field(default_factory=dict)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
