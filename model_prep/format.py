"""The one chat formatting function: training renders examples with it, the server renders prompts with it.

The chat template stored in the tokenizer is the single source of truth; rendering to text and then encoding
without extra special tokens gives the same ids whether the caller is a trainer or the server.
"""

from collections.abc import Sequence
from typing import TypedDict

from transformers import PreTrainedTokenizerBase


class Message(TypedDict):
    role: str
    content: str


def render_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], add_generation_prompt: bool = True
) -> str:
    """The conversation as the model sees it, ending with the assistant's turn header when asked."""
    return tokenizer.apply_chat_template(
        list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


def chat_token_ids(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], add_generation_prompt: bool = True
) -> list[int]:
    """Token ids of `render_chat`; the template already holds every special token it wants."""
    return tokenizer.encode(render_chat(tokenizer, messages, add_generation_prompt), add_special_tokens=False)
