"""What an evaluation run needs: OpenAI-compatible endpoints (candidate, baselines, judge), the prompt sets,
the protocols and LIMA's decoding. From flags (`name=URL[@model]`) or a TOML/YAML file with the same fields."""

import os
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field

Protocol = Literal["pairwise", "absolute", "likert", "safety", "multiturn"]
PROTOCOLS: tuple[Protocol, ...] = get_args(Protocol)


class Endpoint(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # None: the first model the endpoint lists
    api_key_env: str | None = None  # the environment variable holding its key (never the key itself)
    # LIMA decodes with repetition penalty 1.2; OpenAI's own API has no such field. None: send it, and drop it
    # for this endpoint if the endpoint refuses it.
    repetition_penalty: bool | None = None
    # As a judge: constrain the verdict with response_format (a JSON schema). None: try, and fall back to
    # parsing free text if the endpoint refuses it.
    structured_output: bool | None = None

    @classmethod
    def parse(cls, spec: str) -> "Endpoint":
        """`name=URL[@model]`, e.g. `lima=http://127.0.0.1:8000/v1` or `gpt=https://api.openai.com/v1@gpt-4o`."""
        name, sep, rest = spec.partition("=")
        if not sep or not rest:
            raise ValueError(f"endpoint {spec!r}: expected name=URL[@model]")
        url, _, model = rest.partition("@")
        return cls(name=name, base_url=url, model=model or None)

    def api_key(self) -> str:
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ValueError(f"endpoint {self.name}: ${self.api_key_env} is not set")
            return key
        return os.environ.get("OPENAI_API_KEY", "none")


class Decoding(BaseModel):
    """LIMA's decoding (all its results): nucleus 0.9, temperature 0.7, repetition penalty 1.2, 2,048 tokens."""

    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.2
    max_tokens: int = Field(2048, ge=1)


class EvalConfig(BaseModel):
    out: Path
    test: Path | None = Field(None, description="LIMA-format JSONL, JSONL of {prompt}, or one prompt per line")
    candidate: Endpoint | None = None
    baselines: list[Endpoint] = Field(default_factory=list)
    judge: Endpoint | None = None
    protocols: list[Protocol] = list(PROTOCOLS)
    safety_prompts: Path | None = Field(None, description="sensitive prompts (default: test rows marked sensitive)")
    dialogues: Path | None = Field(None, description="scripted multi-turn conversations: JSONL of {id, turns}")
    multiturn_api: Literal["conversations", "chat"] = "conversations"
    samples: int = Field(1, ge=1, description="answers per prompt (the ablations used 5)")
    decoding: Decoding = Decoding()
    judge_max_tokens: int = Field(64, ge=1)
    judge_retries: int = Field(2, ge=0, description="new tries for a reply the judge garbled")
    concurrency: int = Field(8, ge=1)
    bootstrap: int = Field(1000, ge=100)
    seed: int = 0
    limit: int | None = Field(None, ge=1, description="only the first N prompts")
