"""The request and answer objects of POST /v1/completions (OpenAI's legacy text completions)."""

import time
from typing import Literal, cast

from pydantic import BaseModel, Field, field_validator

from server.api.protocol import Usage
from server.core.schema import SamplingFields, TokenLogprob, Unsupported


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
