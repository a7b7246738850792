"""`lima prep data audit OUT`: every kept row of a build, with what a person should look at marked.

A row's assistant turns are searched for the style rules (style.py: the build applied them to Stack Exchange
answers only, so on other sources they are news) and for borderline words that often, not always, mean the
paper's rule is broken ("above", "link", "we", "edit"...). Each mark is shown in a line of context, so a person
can read down the list and strike what should go (a keep-list or a hand edit of the JSONL).
"""

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from model_prep.curation import style

SPLITS = ("train", "dev", "test")


@dataclass
class Finding:
    kind: str  # a style rule's name, or "borderline"
    context: str


def findings(row: dict[str, Any]) -> list[Finding]:
    """Marks in the assistant turns (odd positions) of one row, rules first."""
    found = []
    for turn in row.get("conversations", [])[1::2]:
        rules = style.find(turn)
        ruled = {(m.start, m.end) for m in rules}
        found += [Finding(m.rule, style.highlight(turn, m, 50)) for m in rules]
        found += [Finding("borderline", style.highlight(turn, m, 50)) for m in style.borderline(turn)
                  if not any(s <= m.start < e for s, e in ruled)]
    return found


def rows(out: Path, splits: tuple[str, ...]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for split in splits:
        path = out / f"{split}.jsonl"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield path.name, number, json.loads(line)


def label(row: dict[str, Any]) -> str:
    provenance = row.get("provenance", {})
    ids = ", ".join(f"{key} {provenance[key]}" for key in ("site", "question_id", "answer_id", "submission_id", "file",
                                                           "line", "task") if key in provenance)
    return f"{row.get('source', '?')}" + (f" ({ids})" if ids else "")


def audit(out: Path, splits: tuple[str, ...] = SPLITS, only_marked: bool = False,
          stream: TextIO | None = None) -> Counter[str]:
    """Print the rows and their marks; return how many rows, marked rows and marks of each kind there were."""
    if not any((out / f"{split}.jsonl").is_file() for split in splits):
        raise FileNotFoundError(f"{out}: no {', '.join(f'{s}.jsonl' for s in splits)}: is it a build's output?")
    stream = stream or sys.stdout
    counts: Counter[str] = Counter()
    for name, number, row in rows(out, splits):
        marks = findings(row)
        counts["rows"] += 1
        counts["marked rows"] += bool(marks)
        counts.update(mark.kind for mark in marks)
        if marks or not only_marked:
            print(f"{name}:{number} {label(row)}: {len(marks) or 'no'} mark{'s' if len(marks) != 1 else ''}",
                  file=stream)
            for mark in marks:
                print(f"    [{mark.kind}] {mark.context}", file=stream)
    print(f"\n{counts['rows']} rows, {counts['marked rows']} with marks: "
          + ", ".join(f"{kind} {n}" for kind, n in counts.most_common() if kind not in ("rows", "marked rows")),
          file=stream)
    return counts
