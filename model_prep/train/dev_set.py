"""The dev set the paper chose checkpoints with: loss on its answers (which, the paper notes, does not track
quality) and answers sampled with LIMA's decoding, saved side by side per epoch for a person to read."""

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from model_prep.chat_format import IGNORE, Example, Message, chat_token_ids, encode_example
from model_prep.checkpoints.decoding import LIMA_DECODING
from model_prep.train.batching import micro_batches, summed_loss
from model_prep.train.data import Conversation, load_conversations


@dataclass
class DevSet:
    prompts: list[list[Message]]  # each conversation up to its last user message
    examples: list[Example]  # the whole conversations, for the loss

    @classmethod
    def load(cls, source: str, tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> "DevSet":
        """The dev rows of `source`, in any training format (found from its first record)."""
        return cls.of(load_conversations(source), tokenizer, max_tokens)

    @classmethod
    def of(cls, conversations: list[Conversation], tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> "DevSet":
        examples = [encode_example(tokenizer, c.messages, max_tokens) for c in conversations]
        return cls([c.messages[:-1] for c in conversations], [e for e in examples if e is not None])


@torch.no_grad()
def evaluate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dev: DevSet, max_new_tokens: int,
             seed: int, stop_ids: list[int]) -> dict[str, Any]:
    """Dev loss and one sampled answer per prompt. The training RNG is left as it was (resume stays exact)."""
    model.eval()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        total, labelled = 0.0, 0
        for micro in micro_batches(dev.examples, 4, tokenizer.pad_token_id):
            total += summed_loss(model, {k: v.to(device) for k, v in micro.items()}).item()
            labelled += int((micro["labels"][:, 1:] != IGNORE).sum())
        sampling = {k: v for k, v in LIMA_DECODING.items() if k != "max_new_tokens"}
        answers = []
        for prompt in dev.prompts:
            ids = torch.tensor([chat_token_ids(tokenizer, prompt)], device=device)
            generate: Any = model.generate  # torch's stubs type it as a Tensor attribute
            output = generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=stop_ids, **sampling)
            answers.append({"prompt": prompt[-1]["content"],
                            "answer": tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)})
    return {"dev_loss": total / labelled if labelled else None, "answers": answers}
