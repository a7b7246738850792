"""The answer of the LoRA adapter routes (vLLM's request shapes are used as they are)."""

from typing import Literal

from pydantic import BaseModel


class AdapterChange(BaseModel):
    object: Literal["lora_adapter"] = "lora_adapter"
    name: str
    status: Literal["loaded", "unloaded"]
    message: str  # vLLM's
