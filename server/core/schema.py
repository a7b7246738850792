"""The OpenAI-shaped values the core reads and produces: the sampling fields every generating request carries,
function tools and their calls, structured-output formats, token logprobs. The HTTP layer's request and answer
models (server/api/) are built from these."""

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from server.core.ids import new_id

# Integer bounds the engine takes (its requests are serialized as 64-bit integers; token counts as 32-bit ones).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON, as the model wrote it


class ToolCall(BaseModel):
    id: str = Field(default_factory=lambda: new_id("call_"))
    type: Literal["function"] = "function"
    function: FunctionCall


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
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)  # and at most the context left (checked per request)
    n: int = Field(1, ge=1, le=128)  # OpenAI's bound; the server's --max-choices is checked per request
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    # The engine's integer range (vLLM's own server declares the same): 64-bit signed, as OpenAI documents it.
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0)  # vLLM extra; LIMA uses 1.2
    # vLLM extra: -1 or 0 is off; else at most the vocabulary's size (checked per request).
    top_k: int | None = Field(None, ge=-1, le=INT32_MAX)
    min_p: float | None = Field(None, ge=0.0, le=1.0)  # vLLM extra
    min_tokens: int | None = Field(None, ge=0, le=INT32_MAX)  # vLLM extra
    ignore_eos: bool | None = None  # vLLM extra: generate exactly max_tokens (benchmarks)
    # LIMA extra: stop once a sentence was written this many times (0: off); None: the server's --loop-guard.
    loop_guard: int | None = Field(None, ge=0, le=100)
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    # Token id (as a string, in the vocabulary: checked per request) -> bias added to its logit, -100 (never) to
    # 100 (always), OpenAI's range; at most 1,024 of them.
    logit_bias: Annotated[dict[str, Annotated[float, Field(ge=-100, le=100)]], Field(max_length=1024)] | None = None
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


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    """A generated token's logprob and its most likely alternatives (chat and Responses shape)."""

    top_logprobs: list[TopLogprob]


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    """A piece of a streamed tool call: the first for a call carries its id and name, later ones arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None
