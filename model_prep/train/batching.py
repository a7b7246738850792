"""Padded, length-grouped micro-batches and the summed next-token loss on labelled tokens: shared by training
and the dev-set evaluation."""

from collections.abc import Iterator

import torch

from model_prep.chat_format import IGNORE, Example


def micro_batches(batch: list[Example], size: int, pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """The batch sorted by length and cut into padded micro-batches (length grouping)."""
    ordered = sorted(batch, key=lambda example: len(example["input_ids"]))
    for start in range(0, len(ordered), size):
        chunk = ordered[start:start + size]
        width = max(len(example["input_ids"]) for example in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        labels = torch.full((len(chunk), width), IGNORE)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, example in enumerate(chunk):
            length = len(example["input_ids"])
            ids[row, :length] = torch.tensor(example["input_ids"])
            labels[row, :length] = torch.tensor(example["labels"])
            mask[row, :length] = 1
        yield {"input_ids": ids, "labels": labels, "attention_mask": mask}


def summed_loss(model: torch.nn.Module, micro: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum (not mean) of the next-token losses on labelled tokens, so the caller can divide by the batch's."""
    logits = model(input_ids=micro["input_ids"], attention_mask=micro["attention_mask"]).logits
    targets = micro["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
    )
