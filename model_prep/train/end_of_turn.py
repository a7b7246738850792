"""LIMA's end-of-turn token: a new special token after every utterance, or the tokenizer's own terminator."""

from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from model_prep.chat_format import LIMA_CHAT_TEMPLATE, LIMA_EOT, TURN_MARKERS


def install_end_of_turn(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, reuse_existing: bool) -> int:
    """Set the chat template training and serving share, and return the end-of-turn id.

    reuse_existing: keep the tokenizer's chat template and its turn terminator (e.g. ChatML's <|im_end|>), which
    an instruct model already knows. Otherwise (the paper): add <EOT> as a new special token, distinct from the
    pretraining EOS, with its embedding rows initialised to the mean of the existing ones, and LIMA's template.
    """
    if reuse_existing:
        template = tokenizer.chat_template or ""
        marker = next((m for m in TURN_MARKERS if m in template and m in tokenizer.get_vocab()), None)
        if marker is None:
            raise ValueError("the tokenizer has no chat template with an end-of-turn token to reuse "
                             f"(looked for {', '.join(TURN_MARKERS)}); train with a new <EOT> token instead")
        return token_id(tokenizer, marker)
    if LIMA_EOT not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [LIMA_EOT]})
    tokenizer.chat_template = LIMA_CHAT_TEMPLATE
    if len(tokenizer) > embedding_rows(model):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return token_id(tokenizer, LIMA_EOT)


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int):
        raise ValueError(f"{token!r} is not one token of this tokenizer")
    return found


def embedding_rows(model: Any) -> int:
    """How many token embeddings the model has (torch types the input embeddings as any Module)."""
    return int(model.get_input_embeddings().num_embeddings)


def spread_rows(model: Any, token_ids: list[int], seed: int) -> None:
    """Give these tokens' input and output rows a random direction with the other rows' mean norm. For LoRA, which
    leaves the rows frozen: a row at the mean (near zero in norm) gets a logit no adapter can raise, while a row
    like any other token's is one the adapters learn to predict, as they learn the answers' words."""
    generator = torch.Generator().manual_seed(seed)
    layers = [model.get_input_embeddings(), model.get_output_embeddings()]
    tables = {id(layer.weight): layer.weight for layer in layers if layer is not None}  # tied: one table
    with torch.no_grad():
        for table in tables.values():
            others = torch.ones(table.shape[0], dtype=torch.bool)
            others[token_ids] = False
            norm = table[others].norm(dim=1).mean()
            rows = torch.randn(len(token_ids), table.shape[1], generator=generator)
            table[token_ids] = (rows / rows.norm(dim=1, keepdim=True) * norm).to(table.dtype)
