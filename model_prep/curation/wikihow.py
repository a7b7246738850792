"""wikiHow: the public dumps, in each layout they are found in.

- `wikihowAll.csv` (the summarisation dump): one article per row, `headline,title,text`.
- `wikihowSep.csv`: one row per paragraph, `overview,headline,text,sectionLabel,title`; the rows of an article
  follow each other and are joined back into it (overview, then each section's paragraphs).
- scraped CSVs with `title,heading,paragraph`: one row per section or per step, joined the same way. A scrape
  of the live site carries its residue (citation marks, reference badges, title suffixes, each step's heading
  repeated over its paragraph): wikihow_clean.py takes it out, and an article that still shows some is dropped.
- JSON lines or a JSON array of objects with `title` and `text`.
A `category` column, where there is one, is used; without it every article is drawn from one pool (the report
says so).

Sampling is the paper's: a category first (uniformly), then an article in it. Two streaming passes keep
memory flat: the first counts articles per category, the second reservoir-samples in each category as many
articles as its draws asked for (with a margin for the ones the clean-up rejects). Every clean-up is counted in
the report (articles it changed, with examples), and so is every article dropped.
"""

import csv
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from model_prep.curation import wikihow_clean as clean
from model_prep.curation.records import Candidate, Tally, json_lines
from model_prep.curation.text import plain_links_removed

SOURCE = "wikihow"
LICENCE = "CC BY-NC-SA 3.0 (wikiHow)"
NO_CATEGORY = "(none)"
MIN_CHARS = 200
OVERSAMPLE = 3
# The answer's clean-ups, in order: sections first (a "Tips" heading over "Tips for..." still ends the article),
# citations before headings (a footnote mark must not hide a heading's repeat).
BODY_CLEAN_UPS: tuple[tuple[str, Callable[[str], clean.Change]], ...] = (
    (clean.SECTIONS, clean.sections_removed), (clean.CITATIONS, clean.citations_removed),
    (clean.REPEATED_HEADING, clean.repeated_headings_removed), (clean.THIS_ARTICLE, clean.this_article_rewritten))
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


def cleaned(tally: Tally, rule: str, clean_up: Callable[[str], clean.Change], text: str) -> str:
    """The text after one clean-up, counted under its rule when it changed anything."""
    text, example = clean_up(text)
    if example:
        tally.rewrite(SOURCE, rule, example)
    return text


def prompt(title: str, tally: Tally) -> str:
    """The paper's prompt, "How to cook an omelette?": the title without the site's suffixes, "How to" in front
    (a title that lacks it gets it, its first letter lowered)."""
    title = cleaned(tally, clean.TITLE_SUFFIX, clean.title_suffix_removed, " ".join(title.split()))
    title = cleaned(tally, clean.TITLE_COUNT, clean.count_made_how_to, title).rstrip("?.")
    if not title.lower().startswith("how to"):
        title = f"How to {title[:1].lower()}{title[1:]}"
    return f"{title}?"


def as_candidate(row: dict[str, str], line: int, path: Path, tally: Tally) -> Candidate | None:
    """The article as an example, or None (counted in the report) when clean-up leaves it too short or some
    of the scrape is still in it."""
    asked = prompt(str(row["title"]), tally)
    body = "\n".join(part for part in (str(row.get("headline") or "").strip(), str(row["text"]).strip()) if part)
    for rule, clean_up in BODY_CLEAN_UPS:
        body = cleaned(tally, rule, clean_up, body)
    body = plain_links_removed(body)
    if found := clean.residue(asked) or clean.residue(body):
        tally.remove(SOURCE, f"scrape residue left: {found.rule}", found.context)
        return None
    if len(body) < MIN_CHARS:
        tally.remove(SOURCE, f"shorter than {MIN_CHARS} chars after clean-up")
        return None
    return Candidate(conversations=[asked, body], source=SOURCE,
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
            candidate = as_candidate(row, line, path, tally)
            if candidate is None:
                continue
            chosen.append(candidate)
            taken += 1
    rng.shuffle(chosen)
    return chosen
