"""The one chat formatting function: training renders examples with it, the server renders prompts with it.

The chat template stored in the tokenizer is the single source of truth; rendering to text and then encoding
without extra special tokens gives the same ids whether the caller is a trainer or the server.
"""

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

if TYPE_CHECKING:  # the type only: importing transformers takes seconds
    from transformers import PreTrainedTokenizerBase


class Message(TypedDict):
    role: str
    content: str
    tool_calls: NotRequired[list[dict[str, Any]]]  # an assistant's function calls (serving only)
    tool_call_id: NotRequired[str]  # a tool result's call (serving only)


def render_chat(
    tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Message], add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The conversation as the model sees it, ending with the assistant's turn header when asked; `tools` (OpenAI
    function definitions) go to the template, which shows them to the model its own way."""
    plain: Any = [dict(message) for message in messages]  # transformers types messages as str -> str only
    rendered = tokenizer.apply_chat_template(
        plain, tools=cast(Any, tools), tokenize=False, add_generation_prompt=add_generation_prompt)
    return str(rendered)


def chat_token_ids(
    tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Message], add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    """Token ids of `render_chat`; the template already holds every special token it wants."""
    return tokenizer.encode(render_chat(tokenizer, messages, add_generation_prompt, tools), add_special_tokens=False)


# LIMA's format: every utterance followed by the end-of-turn token, nothing else (the speaker alternates).
# Instructions (system messages), if any, are an utterance like the others, placed first.
LIMA_EOT = "<EOT>"
# Turn terminators of common chat templates (ChatML, Llama 3, Phi-3) and LIMA's own.
TURN_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end|>", LIMA_EOT)
LIMA_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}{{ message['content'] }}" + LIMA_EOT + "{% endfor %}"
)


class Example(TypedDict):
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken


IGNORE = -100


def encode_example(
    tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Message], max_tokens: int = 2048
) -> Example | None:
    """Token ids of the whole conversation (exactly the ids the server renders for the same messages) and
    labels that keep every assistant turn, its end-of-turn token included, and mask everything else.

    Texts over `max_tokens` are cut at the end (the tail of the last turns is lost); a conversation whose
    first assistant token would be cut off has nothing to learn from and gives None.
    """
    text = render_chat(tokenizer, messages, add_generation_prompt=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    spans = []  # character spans of assistant turns: from after the generation prompt to the turn's end
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            start = len(render_chat(tokenizer, messages[:index], add_generation_prompt=True)) if index else 0
            end = len(render_chat(tokenizer, messages[: index + 1], add_generation_prompt=False))
            spans.append((start, end))
    labels = [
        token if any(start <= offset[0] < end for start, end in spans) else IGNORE
        for token, offset in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    ids, labels = ids[:max_tokens], labels[:max_tokens]
    if all(label == IGNORE for label in labels):
        return None
    return Example(input_ids=ids, labels=labels)


def template_role(role: str) -> str:
    """The chat template's role for an OpenAI role: "developer" is OpenAI's newer name for "system"."""
    return "system" if role == "developer" else role


def joined_text(content: str | Iterable[Any]) -> str:
    """A message's text: the string itself, or its text parts joined (models with `.text`, or stored dicts)."""
    if isinstance(content, str):
        return content
    parts: Iterable[Any] = content
    return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part.text) for part in parts)
