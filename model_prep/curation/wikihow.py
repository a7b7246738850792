"""wikiHow: the public dumps as CSV (wikihowAll.csv: headline, title, text [, category]) or JSON lines/array.

Sampling is the paper's: a category first (uniformly), then an article in it. Two streaming passes keep
memory flat: the first counts articles per category, the second reservoir-samples in each category as many
articles as its draws asked for (with a margin for the ones the clean-up rejects).
"""

import csv
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from model_prep.curation.records import Candidate, Tally, json_lines
from model_prep.curation.text import plain_links_removed

SOURCE = "wikihow"
LICENCE = "CC BY-NC-SA 3.0 (wikiHow)"
NO_CATEGORY = "(none)"
MIN_CHARS = 200
OVERSAMPLE = 3
_THIS_ARTICLE = re.compile(r"\bThis article\b")
_SECTIONS = re.compile(r"\n(Tips|Warnings|Things You'll Need|References|Sources and Citations|Video)\n.*", re.S)


def iter_articles(path: Path, tally: Tally) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, article) for each article with a title and a text; others are reported and skipped."""
    if path.suffix == ".csv":
        csv.field_size_limit(sys.maxsize)
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            for row in reader:
                yield from _checked(reader.line_num, row, path, tally)
        return
    with path.open(encoding="utf-8") as stream:
        if path.suffix == ".json" and stream.read(1) == "[":
            stream.seek(0)
            for index, row in enumerate(json.load(stream), 1):
                yield from _checked(index, row, path, tally)
            return
        stream.seek(0)
        for number, row in json_lines(stream, path, tally, SOURCE):
            yield from _checked(number, row, path, tally)


def _checked(line: int, row: object, path: Path, tally: Tally) -> Iterator[tuple[int, dict[str, str]]]:
    if not isinstance(row, dict) or not str(row.get("title") or "").strip() or not str(row.get("text") or "").strip():
        tally.bad_input(SOURCE, path, line, "an article needs a title and a text")
        return
    yield line, row


def category(row: dict[str, str]) -> str:
    return str(row.get("category") or NO_CATEGORY).split(",")[0].strip() or NO_CATEGORY


def as_candidate(row: dict[str, str], line: int, path: Path) -> Candidate | None:
    title = " ".join(str(row["title"]).split()).rstrip("?.")
    if not title.lower().startswith("how to"):
        title = f"How to {title[0].lower()}{title[1:]}"
    body = "\n".join(part for part in (str(row.get("headline") or "").strip(), str(row["text"]).strip()) if part)
    body = _SECTIONS.sub("", plain_links_removed(_THIS_ARTICLE.sub("The following answer", body)))
    if len(body) < MIN_CHARS:
        return None
    return Candidate(conversations=[f"{title}?", body], source=SOURCE,
                     provenance={"file": path.name, "line": line, "category": category(row), "licence": LICENCE,
                                 "filters": [f"at least {MIN_CHARS} chars", "links and images removed"]})


def sample(path: Path, count: int, seed: int, tally: Tally) -> list[Candidate]:
    sizes = Counter(category(row) for _, row in iter_articles(path, Tally(quiet=True)))  # pass 1: sizes
    if not sizes:
        return []
    rng = random.Random(seed)
    wanted: Counter[str] = Counter()
    for _ in range(min(count, sum(sizes.values()))):  # a category with no article left is not drawn again
        wanted[rng.choice(sorted(c for c in sizes if wanted[c] < sizes[c]))] += 1
    reservoirs: dict[str, list[tuple[int, dict[str, str]]]] = {name: [] for name in wanted}
    seen: Counter[str] = Counter()
    for line, row in iter_articles(path, tally):  # pass 2: reservoir sampling per category
        tally.seen[SOURCE] += 1
        name = category(row)
        if name not in reservoirs:
            continue
        seen[name] += 1
        capacity = wanted[name] * OVERSAMPLE
        if len(reservoirs[name]) < capacity:
            reservoirs[name].append((line, row))
        elif (slot := rng.randrange(seen[name])) < capacity:
            reservoirs[name][slot] = (line, row)
    chosen = []
    for name in sorted(reservoirs):
        taken = 0
        for line, row in sorted(reservoirs[name], key=lambda item: item[0]):
            if taken == wanted[name]:
                break
            candidate = as_candidate(row, line, path)
            if candidate is None:
                tally.remove(SOURCE, f"shorter than {MIN_CHARS} chars after clean-up")
                continue
            chosen.append(candidate)
            taken += 1
    rng.shuffle(chosen)
    return chosen
