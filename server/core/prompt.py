"""The prompt from stored history plus the new input, rendered by the model's chat template (the same
`model_prep.chat_format` function training uses), dropping whole turns, oldest first, when it would not fit.

A turn is a user message and the assistant messages that follow it. System and developer messages are
instructions: they are never dropped. The new input is never dropped either; if it alone does not fit, 400.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from model_prep.chat_format import Message, template_role
from server.core.engine.wrapper import ChatEngine
from server.core.failures import Invalid, NotFound
from server.core.history.items import FunctionCallItem, Item, MessageItem
from server.core.history.store import HistoryStore
from server.core.ids import is_issued
from server.core.schema import json_or_text

INSTRUCTION_ROLES = ("system", "developer")


def template_messages(items: Sequence[Item]) -> list[Message]:
    """Stored items as chat-template messages: "developer" is the newer name for "system"; function calls join
    the assistant message before them (or start one), and a function's output is a "tool" message."""
    messages: list[Message] = []
    for item in items:
        if isinstance(item, MessageItem):
            messages.append(Message(role=template_role(item.role), content=item.text()))
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": json_or_text(item.arguments)}}
            if not messages or messages[-1]["role"] != "assistant":
                messages.append(Message(role="assistant", content=""))
            messages[-1].setdefault("tool_calls", []).append(call)
        else:
            messages.append(Message(role="tool", content=item.output, tool_call_id=item.call_id))
    return messages


def split_turns(history: Sequence[Message]) -> list[tuple[bool, list[Message]]]:
    """(pinned, messages) units in order: each instruction alone and pinned, each turn droppable."""
    units: list[tuple[bool, list[Message]]] = []
    for message in history:
        if message["role"] in INSTRUCTION_ROLES:
            units.append((True, [message]))
        elif message["role"] == "user" or not units or units[-1][0]:
            units.append((False, [message]))
        else:
            units[-1][1].append(message)
    return units


@dataclass
class FittedPrompt:
    ids: list[int]
    dropped_turns: int


def reserve_for_output(engine: ChatEngine, max_tokens: int | None) -> int:
    """Room kept for the answer: what the client asked for, else the model's default capped at a quarter of
    the context (so a long default such as LIMA's 2,048 does not evict every turn of a short-context model)."""
    if max_tokens is not None:
        return max_tokens
    return min(engine.default_sampling.get("max_tokens", engine.max_model_len), engine.max_model_len // 4)


def fit_prompt(
    engine: ChatEngine,
    history: Sequence[Message] | None,
    new: Sequence[Message],
    reserve: int,
    truncate: bool,
    prompt_param: str,
    tools: list[dict[str, Any]] | None = None,
) -> FittedPrompt:
    """Token ids of history + new, after dropping the fewest oldest turns that make prompt + reserve fit; `new`
    alone, as it is, when `history` is None (stateless chat, whose length the generation checks). A chat
    template that refuses the messages is the request's fault (400)."""
    units = split_turns(history or [])
    droppable = sum(not pinned for pinned, _ in units)

    def render(dropped: int) -> list[int]:
        kept: list[Message] = []
        seen = 0
        for pinned, messages in units:
            if pinned or seen >= dropped:
                kept.extend(messages)
            seen += not pinned
        try:
            return engine.chat_prompt_ids([*kept, *new], tools=tools)
        except TemplateError as exc:
            raise Invalid(f"The model's chat template rejected the {prompt_param}: {exc}", param=prompt_param) from exc

    def fits(ids: list[int]) -> bool:
        return len(ids) + reserve <= engine.max_model_len

    ids = render(0)
    if history is None or fits(ids):
        return FittedPrompt(ids, 0)
    if truncate and droppable:
        everything_dropped = render(droppable)
        if fits(everything_dropped):
            # The fewest drops that fit, by binary search: `best` always holds render(high).
            low, high, best = 1, droppable, everything_dropped
            while low < high:
                middle = (low + high) // 2
                candidate = render(middle)
                if fits(candidate):
                    high, best = middle, candidate
                else:
                    low = middle + 1
            return FittedPrompt(best, high)
        ids = everything_dropped
    hint = "Shorten the input or lower max_output_tokens" if truncate else (
        "Use truncation='auto' to drop the oldest turns, or start a new conversation")
    raise Invalid(
        f"This model's maximum context length is {engine.max_model_len} tokens, but the prompt needs {len(ids)} "
        f"tokens plus {reserve} for the answer{' even with every earlier turn dropped' if truncate else ''}. "
        f"{hint}.",
        param=prompt_param, code="context_length_exceeded",
    )


async def stored_items(
    store: HistoryStore, owner: str, conversation_id: str | None, previous_response_id: str | None
) -> list[Item]:
    """The items a new turn continues: a conversation's, or a previous_response_id chain's inputs and outputs.
    An id of a shape the server never issues names nothing: it is answered as a missing one, without a look."""
    if conversation_id is not None:
        found = await store.load(owner, conversation_id) if is_issued("conversation", conversation_id) else None
        if found is None:
            raise NotFound(
                f"Conversation with id '{conversation_id}' not found.", param="conversation",
                code="conversation_not_found",
            )
        return found.items
    if previous_response_id is not None:
        chain = await store.response_chain(owner, previous_response_id) \
            if is_issued("response", previous_response_id) else None
        if chain is None:
            raise Invalid(  # OpenAI answers 400 here (a 404 is for the route's own id)
                f"Previous response with id '{previous_response_id}' not found.",
                param="previous_response_id", code="previous_response_not_found",
            )
        return [item for record in chain for item in (*record.input, *record.output)]
    return []
