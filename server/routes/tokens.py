"""POST /tokenize and /detokenize in vLLM's shapes: a client counts a conversation's tokens, rendered by the same
`model_prep` chat format as generation, before it sends it."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from server.deps import EngineDep
from server.engine.generation import resolve_model
from server.protocol import ChatMessage, ErrorResponse

router = APIRouter(tags=["tokens"], responses={400: {"model": ErrorResponse}})


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


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, engine: EngineDep) -> TokenizeResponse:
    resolve_model(body.model, engine)
    if body.messages is not None:
        messages = [message.as_template_message() for message in body.messages]
        ids = engine.chat_prompt_ids(messages, add_generation_prompt=body.add_generation_prompt)
    else:
        ids = engine.tokenizer.encode(body.prompt, add_special_tokens=body.add_special_tokens)
    strs = engine.tokenizer.convert_ids_to_tokens(ids) if body.return_token_strs else None
    return TokenizeResponse(count=len(ids), max_model_len=engine.max_model_len, tokens=ids, token_strs=strs)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, engine: EngineDep) -> DetokenizeResponse:
    resolve_model(body.model, engine)
    engine.check_token_ids(body.tokens, "tokens")
    return DetokenizeResponse(prompt=engine.tokenizer.decode(body.tokens))
