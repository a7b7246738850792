"""POST /tokenize and /detokenize in vLLM's shapes: a client counts a conversation's tokens, rendered by the same
`model_prep` chat format as generation, before it sends it."""


from fastapi import APIRouter

from server.api.deps import EngineDep
from server.api.protocol import ErrorResponse
from server.api.tokens.protocol import DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse
from server.core.engine.generation import resolve_model

router = APIRouter(tags=["tokens"], responses={400: {"model": ErrorResponse}})


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
