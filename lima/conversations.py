"""Client-side use of a server's Conversations API (through the `openai` package), shared by the chat page and
the evaluation runner."""

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
