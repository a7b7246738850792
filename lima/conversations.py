"""Client-side use of a server's Conversations API (through the `openai` package): the one module the chat page
(ui/client.py) and the evaluation runner (model_prep/evaluate/run.py) share to send a turn into a stored
conversation and to take turns back."""

from typing import Any

from openai import AsyncOpenAI

from model_prep.chat_format import joined_text


async def delete_from_user_turn(client: AsyncOpenAI, conversation_id: str, turn: int) -> str | None:
    """Delete the conversation's items from its `turn`-th user message on (0 = the first, -1 = the last),
    newest first, so an interruption leaves a shorter conversation rather than a hole; return that message's
    text, or None when there is no such turn (nothing is deleted)."""
    items = [item async for item in client.conversations.items.list(conversation_id, order="asc", limit=100)]
    users = [index for index, item in enumerate(items) if getattr(item, "role", None) == "user"]
    if not users or turn >= len(users):
        return None
    start = users[turn]
    for item in reversed(items[start:]):
        if item.id is not None:
            await client.conversations.items.delete(item.id, conversation_id=conversation_id)
    return joined_text(getattr(items[start], "content", []))


def turn_request(conversation_id: str, text: str, *, model: str | None = None, temperature: float | None = None,
                 top_p: float | None = None, max_output_tokens: int | None = None, instructions: str | None = None,
                 extra: dict[str, Any] | None = None, stream: bool = False) -> dict[str, Any]:
    """The Responses API arguments that send one user message into a stored conversation. Unset values are left
    out, so the model's own decoding applies; the server's extensions (repetition_penalty, loop_guard, ...) go in
    the body as extras."""
    request: dict[str, Any] = {
        "conversation": conversation_id, "input": text, "model": model, "temperature": temperature, "top_p": top_p,
        "max_output_tokens": max_output_tokens, "instructions": instructions, "extra_body": extra or None,
        "stream": stream or None,
    }
    return {name: value for name, value in request.items() if value is not None}
