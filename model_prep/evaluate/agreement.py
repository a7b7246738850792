"""`lima prep eval agreement A B`: the paper's tie-discounted accuracy between two raters' pairwise labels.

A rater's labels are a CSV with `id` and `label` columns (a/b/tie, win/loss/tie or 1/2/tie; human raters), or a
results directory of `lima prep eval run` (its pairwise verdicts, item `baseline|prompt_id`, a = the candidate).
"""

import csv
from pathlib import Path

from model_prep.evaluate.report import pairwise_outcome
from model_prep.evaluate.store import Records

OUTCOME_LABEL = {"win": "a", "loss": "b", "tie": "tie"}


def read_labels(path: Path) -> dict[str, str]:
    if path.is_dir():
        records = Records(path / "judgements" / "pairwise.jsonl")
        records.close()
        items: dict[str, dict[str, str | None]] = {}
        for key, record in records.records.items():
            baseline, prompt_id, order = key.split("|")
            items.setdefault(f"{baseline}|{prompt_id}", {})[order] = record["verdict"]
        labels = {}
        for item, orders in items.items():
            outcome = pairwise_outcome(orders.get("candidate-first"), orders.get("baseline-first"))
            if outcome is not None:
                labels[item] = OUTCOME_LABEL[outcome]
        return labels
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if not reader.fieldnames or not {"id", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a label file is a CSV with 'id' and 'label' columns")
        return {row["id"]: row["label"] for row in reader if row["label"].strip()}
