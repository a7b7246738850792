"""OpenAI request and response shapes of chat and text completions (what this server honours), with ranges
declared on the fields. One module of ~440 lines on purpose: requests first, then answers, which reuse the
requests' pieces (tool calls, logprobs), so a reader checks a field's way in and out in one place."""

import json
import time
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from model_prep.chat_format import Message

Role = Literal["system", "developer", "user", "assistant", "tool"]


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


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON, as the model wrote it


class ToolCall(BaseModel):
    id: str = Field(default_factory=lambda: new_id("call_"))
    type: Literal["function"] = "function"
    function: FunctionCall


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


def json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class FunctionDefinition(BaseModel):
    name: str = Field(..., pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema
    strict: bool | None = None


class ChatTool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


ChatToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


def not_supported(value: Any, info: ValidationInfo) -> Any:
    """A documented OpenAI field that would change the answer and that this server cannot honour: refused by name
    (400, code unsupported_parameter) instead of silently ignored. Empty values ask for nothing and pass."""
    if value in (None, False, [], {}):
        return value
    raise PydanticCustomError(
        "unsupported_parameter", "Unsupported parameter: '{field}' is not supported by this server.",
        {"field": info.field_name},
    )


def no_tool_choice(value: Any, info: ValidationInfo) -> Any:
    """Without tools, "none" and "auto" ask for plain text; anything else asks for a tool call."""
    return value if value in ("none", "auto") else not_supported(value, info)


Unsupported = Annotated[Any, AfterValidator(not_supported)]
ToolChoice = Annotated[Any, AfterValidator(no_tool_choice)]


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
    """Fields shared by chat and text completions and responses. None means: the model's generation config decides.

    Fields OpenAI does not define are ignored, as vLLM does (and counted: lima_ignored_request_fields_total)."""

    model_config = ConfigDict(extra="allow")

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
    top_k: int | None = Field(None, ge=-1)  # vLLM extra (-1 or 0: off)
    min_p: float | None = Field(None, ge=0.0, le=1.0)  # vLLM extra
    min_tokens: int | None = Field(None, ge=0)  # vLLM extra
    ignore_eos: bool | None = None  # vLLM extra: generate exactly max_tokens (benchmarks)
    # LIMA extra: stop once a sentence was written this many times (0: off); None: the server's --loop-guard.
    loop_guard: int | None = Field(None, ge=0, le=100)
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    # Token id (as a string) -> bias added to its logit, -100 (never) to 100 (always).
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    # OpenAI's hints: accepted, they do not change the answer here.
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    parallel_tool_calls: bool | None = None
    # Function calling is served on chat completions (ChatCompletionRequest declares these again); elsewhere
    # asking for a tool call is refused, not answered with plain text.
    tools: Unsupported = None
    tool_choice: ToolChoice = None

    @property
    def include_usage(self) -> bool:
        return self.stream and self.stream_options is not None and self.stream_options.include_usage

    @property
    def top_logprobs_count(self) -> int | None:
        """How many alternatives to return with each token's logprob; None: no logprobs."""
        return None

    @property
    def prompt_logprobs_count(self) -> int | None:
        """Alternatives per prompt token (completions' `echo` with `logprobs`); None: no prompt logprobs."""
        return None

    @property
    def ignored_fields(self) -> list[str]:
        return list(self.model_extra or {})

    @field_validator("logit_bias")
    @classmethod
    def _token_ids(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        if bias is not None and not all(key.isdigit() for key in bias):
            raise ValueError("logit_bias keys are token ids (digits, as strings)")
        return bias


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
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


class CompletionRequest(SamplingFields):
    prompt: str | list[int] | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    best_of: int | None = Field(None, ge=1, le=1)  # vLLM's engine samples n; best_of > 1 is not served
    suffix: Unsupported = None

    @property
    def top_logprobs_count(self) -> int | None:
        return self.logprobs

    @property
    def prompt_logprobs_count(self) -> int | None:
        return self.logprobs if self.echo else None

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


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # How many prompt tokens vLLM's prefix cache served (earlier turns of a conversation, usually).
    prompt_tokens_details: PromptTokensDetails | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    """A generated token's logprob and its most likely alternatives (chat and Responses shape)."""

    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None = None


class CompletionLogprobs(BaseModel):
    """The text completions shape: parallel lists, alternatives as token -> logprob maps."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]

    @classmethod
    def of(cls, logprobs: list[TokenLogprob | None], offset: int = 0, unscored: str = "") -> "CompletionLogprobs":
        """None entries are tokens without a logprob (an echo's first prompt token, `unscored`)."""
        tokens, offsets = [], []
        for entry in logprobs:
            tokens.append(entry.token if entry else unscored)
            offsets.append(offset)
            offset += len(tokens[-1])
        return cls(
            tokens=tokens, text_offset=offsets,
            token_logprobs=[entry.logprob if entry else None for entry in logprobs],
            top_logprobs=[{top.token: top.logprob for top in entry.top_logprobs} if entry else None
                          for entry in logprobs],
        )


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


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    """A piece of a streamed tool call: the first for a call carries its id and name, later ones arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


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


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: CompletionLogprobs | None = None


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
    # A LoRA adapter's: the served base model it applies to, and where it was loaded from (vLLM's fields).
    parent: str | None = None
    root: str | None = None


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
