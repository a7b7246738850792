"""wikiHow: the public dumps, in each layout they are found in.

- `wikihowAll.csv` (the summarisation dump): one article per row, `headline,title,text`.
- `wikihowSep.csv`: one row per paragraph, `overview,headline,text,sectionLabel,title`; the rows of an article
  follow each other and are joined back into it (overview, then each section's paragraphs).
- scraped CSVs with `title,heading,paragraph`: one row per section, joined the same way.
- JSON lines or a JSON array of objects with `title` and `text`.
A `category` column, where there is one, is used; without it every article is drawn from one pool (the report
says so).

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
from collections.abc import Iterable, Iterator
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
# The CSV layouts read, by the columns they need: an article per row, or a paragraph or section per row.
ARTICLE_COLUMNS = ("title", "text")
PARAGRAPH_COLUMNS = ("title", "text", "sectionlabel")
SECTION_COLUMNS = ("title", "heading", "paragraph")
LAYOUTS = "headline,title,text[,category] | overview,headline,text,sectionLabel,title | title,heading,paragraph"


def iter_articles(path: Path, tally: Tally) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, article) for each article with a title and a text; others are reported and skipped."""
    if path.suffix == ".csv":
        csv.field_size_limit(sys.maxsize)
        with path.open(newline="", encoding="utf-8") as stream:
            reader = csv.DictReader(stream)
            columns = {name.strip().lower(): name for name in reader.fieldnames or []}
            numbered = ((reader.line_num, {key: row.get(name) or "" for key, name in columns.items()})
                        for row in reader)
            if all(c in columns for c in PARAGRAPH_COLUMNS):
                articles = joined(numbered, "sectionlabel", "text", with_headline=True)
            elif all(c in columns for c in SECTION_COLUMNS):
                articles = joined(numbered, "heading", "paragraph")
            elif all(c in columns for c in ARTICLE_COLUMNS):
                articles = numbered
            else:
                found = ", ".join(reader.fieldnames or []) or "none"
                tally.input(SOURCE, path, "unreadable", f"columns found: {found}; expected one of: {LAYOUTS}")
                return
            yield from checked(articles, path, tally, "category" in columns)
        return
    with path.open(encoding="utf-8") as stream:
        if path.suffix == ".json" and stream.read(1) == "[":
            stream.seek(0)
            yield from checked(enumerate(json.load(stream), 1), path, tally, None)
            return
        stream.seek(0)
        yield from checked(json_lines(stream, path, tally, SOURCE), path, tally, None)


def joined(rows: Iterable[tuple[int, dict[str, str]]], section: str, text: str, with_headline: bool = False
           ) -> Iterator[tuple[int, dict[str, str]]]:
    """Articles from consecutive rows with one title: the overview (if any), then each row's paragraph under
    its section's name when that changes."""
    current: dict[str, str] | None = None
    first_line, last_section, parts = 0, "", list[str]()
    for line, row in rows:
        title = row.get("title", "").strip()
        if current is None or title != current["title"]:
            if current is not None:
                yield first_line, current | {"text": "\n\n".join(parts), "headline": ""}
            current, first_line, last_section = dict(row, title=title), line, ""
            parts = [row["overview"].strip()] if row.get("overview", "").strip() else []
        name = row.get(section, "").strip()
        if name and name != last_section and name.lower() != "steps":
            parts.append(name)
        last_section = name
        paragraph = " ".join(p for p in ((row.get("headline", "").strip() if with_headline else ""),
                                         row.get(text, "").strip()) if p)
        if paragraph:
            parts.append(paragraph)
    if current is not None:
        yield first_line, current | {"text": "\n\n".join(parts), "headline": ""}


def checked(articles: Iterable[tuple[int, object]], path: Path, tally: Tally, has_category: bool | None
            ) -> Iterator[tuple[int, dict[str, str]]]:
    """The articles with a title and a text; the file is accounted for in the report once read."""
    count, categories = 0, False
    for line, row in articles:
        if not isinstance(row, dict) or not all(str(row.get(key) or "").strip() for key in ("title", "text")):
            tally.bad_input(SOURCE, path, line, "an article needs a title and a text")
            continue
        count += 1
        categories = categories or bool(row.get("category"))
        yield line, row
    note = "" if categories or has_category else "; no category field: articles drawn from one pool (the paper " \
                                                 "drew a category first, then an article)"
    tally.input(SOURCE, path, "read", f"{count} articles{note}", count)


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
        for _ in iter_articles(path, tally):  # accounts for the file in the report: unreadable, or no article
            pass
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
