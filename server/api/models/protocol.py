"""The answer of GET /v1/models."""

import time
from typing import Any, Literal

from pydantic import BaseModel, Field


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
