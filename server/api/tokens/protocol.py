"""The request and answer objects of POST /tokenize and /detokenize (vLLM's shapes)."""

from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from server.api.protocol import ChatMessage


class TokenizeRequest(BaseModel):
    """A text `prompt`, or chat `messages` rendered by the model's chat template."""

    model: str | None = None
    prompt: str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_generation_prompt: bool = True  # messages only: end with the assistant's turn header
    add_special_tokens: bool = True  # prompt only (a chat template holds its own special tokens)
    return_token_strs: bool = False

    @model_validator(mode="after")
    def _one_input(self) -> "TokenizeRequest":
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send either 'prompt' or 'messages'")
        return self


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(BaseModel):
    model: str | None = None
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str
