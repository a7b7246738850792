"""Pushshift Reddit dumps: zstandard-compressed NDJSON of submissions and comments (monthly RS_/RC_ files or
per-subreddit files; plain .jsonl/.ndjson also read).

r/WritingPrompts: a premise ("[WP] ...") with its best top-level story (train candidates). r/AskReddit:
questions whose title says everything (no body), test candidates. The paper chose these by hand; here they are
ranked by votes into a candidate file, and a keep-list of ids (one per line) picks among them.

Each file is read once, in any order, submissions and comments mixed: a line is parsed only when it names one
of the two subreddits (a month of all of Reddit is mostly other subreddits), the best premises are held on a
heap and the best qualifying story per premise as it streams past; they are matched at the end. Records of
every era are read: missing fields (2005 records have no `over_18` or `selftext`), scores given as strings or
null, and `[deleted]`/`[removed]` bodies are each handled and counted, per file and subreddit, in the report.
"""

import heapq
import io
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import zstandard
from pydantic import BaseModel

from model_prep.curation.records import Candidate, Tally, progress_reader
from model_prep.curation.text import plain_links_removed

WRITING_PROMPTS = "reddit_writingprompts"
ASK_REDDIT = "reddit_askreddit"
LICENCE = "Reddit content via the Pushshift dump (research use)"
GONE = {"", "[deleted]", "[removed]"}
SUBREDDITS = {"writingprompts": WRITING_PROMPTS, "askreddit": ASK_REDDIT}
_WANTED = re.compile(r'"subreddit"\s*:\s*"(writingprompts|askreddit)"', re.I)


def iter_records(path: Path, tally: Tally, counts: Counter[str]) -> Iterator[dict]:
    """The JSON objects of the two subreddits in an NDJSON file, .zst or plain; every other line is counted
    (other subreddits, no subreddit field) and a bad line is reported with its number and skipped."""
    with progress_reader(path) as raw:
        binary = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw) if path.suffix == ".zst" \
            else raw
        for number, line in enumerate(io.TextIOWrapper(binary, encoding="utf-8", errors="replace"), 1):
            if not line.strip():
                continue
            counts["records"] += 1
            wanted = _WANTED.search(line)
            if not wanted and '"subreddit"' in line:
                counts["other subreddits"] += 1
                continue
            try:  # a wanted record, or a rare one without the field: parsed, so a broken line is reported
                record = json.loads(line)
            except json.JSONDecodeError as error:
                tally.bad_input(WRITING_PROMPTS, path, number, f"bad JSON ({error.msg})")
                continue
            if not isinstance(record, dict):
                tally.bad_input(WRITING_PROMPTS, path, number, "not a JSON object")
            elif wanted:
                yield record
            else:
                counts["no subreddit field"] += 1


def dump_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in (".zst", ".jsonl", ".ndjson", ".json"))


def subreddit(record: dict) -> str:
    return str(record.get("subreddit") or "").lower()


def score(record: dict) -> int:
    try:
        return int(record.get("score") or 0)
    except (TypeError, ValueError):
        return 0


class Thresholds(BaseModel):
    prompt_score: int = 50  # a [WP] premise's votes
    story_score: int = 20  # its story's votes
    story_chars: int = 500
    question_score: int = 500  # an AskReddit question's votes
    keep_top: int = 5000  # premises held while the comments stream past


def read_dump(files: list[Path], tally: Tally, limits: Thresholds | None = None
              ) -> tuple[list[Candidate], list[Candidate]]:
    """(WritingPrompts premises with their best top-level story, AskReddit questions), each best first."""
    limits = limits or Thresholds()
    premises: list[tuple[int, str, str]] = []  # heap of (score, id, premise)
    questions = []
    stories: dict[str, dict] = {}  # premise id -> its best qualifying top-level story so far
    for path in files:
        counts: Counter[str] = Counter()
        for record in iter_records(path, tally, counts):
            name = subreddit(record)
            kind = "submissions" if "title" in record else "comments" if "body" in record else "neither"
            counts[f"r/{name} {kind}"] += 1
            if kind == "submissions" and name == "writingprompts":
                entry = premise(record, tally, limits)
                if entry and len(premises) < limits.keep_top:
                    heapq.heappush(premises, entry)
                elif entry:
                    heapq.heappushpop(premises, entry)
            elif kind == "submissions" and name == "askreddit" \
                    and (candidate := ask_reddit_question(record, tally, limits)):
                questions.append(candidate)
            elif kind == "comments" and name == "writingprompts":
                link = str(record.get("link_id", "")).removeprefix("t3_")
                if story_ok(record, limits, counts) and record.get("parent_id") == f"t3_{link}" \
                        and score(record) > score(stories.get(link, {})):
                    stories[link] = record
        tally.input("reddit", path, "read", ", ".join(f"{key} {n}" for key, n in sorted(counts.items())
                                                      if key != "records"), counts["records"])
    candidates = []
    for votes, post_id, text in premises:
        story = stories.get(post_id)
        if story is None:
            tally.remove(WRITING_PROMPTS, f"no story with score >= {limits.story_score} and "
                                          f">= {limits.story_chars} chars")
            continue
        candidates.append(Candidate(
            conversations=[text, plain_links_removed(str(story["body"]))], source=WRITING_PROMPTS, score=votes,
            provenance={"submission_id": post_id, "comment_id": story.get("id"), "story_score": score(story),
                        "licence": LICENCE},
        ))
    return ranked(candidates), ranked(questions)


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.provenance["submission_id"]))


def premise(record: dict, tally: Tally, limits: Thresholds) -> tuple[int, str, str] | None:
    tally.seen[WRITING_PROMPTS] += 1
    title = str(record["title"] or "")
    if not title.startswith("[WP]"):
        tally.remove(WRITING_PROMPTS, "not a [WP] premise")
    elif score(record) < limits.prompt_score or record.get("over_18"):
        tally.remove(WRITING_PROMPTS, f"premise score < {limits.prompt_score} or NSFW")
    else:
        return score(record), str(record.get("id")), title.removeprefix("[WP]").strip()
    return None


def story_ok(record: dict, limits: Thresholds, counts: Counter[str]) -> bool:
    body = str(record.get("body") or "").strip()
    if body in GONE:
        counts["comments deleted or removed"] += 1
        return False
    return (record.get("author") != "AutoModerator" and len(body) >= limits.story_chars
            and score(record) >= limits.story_score)


def ask_reddit_question(record: dict, tally: Tally, limits: Thresholds) -> Candidate | None:
    """A self-contained question (a title ending in '?', no body, not NSFW); a prompt alone."""
    tally.seen[ASK_REDDIT] += 1
    title = " ".join(str(record["title"] or "").split())
    if str(record.get("selftext") or "").strip() not in GONE or not title.endswith("?"):
        tally.remove(ASK_REDDIT, "not self-contained (has a body or is not a question)")
    elif score(record) < limits.question_score or record.get("over_18"):
        tally.remove(ASK_REDDIT, f"score < {limits.question_score} or NSFW")
    else:
        return Candidate(conversations=[title], source=ASK_REDDIT, score=score(record),
                         provenance={"submission_id": str(record.get("id")), "licence": LICENCE})
    return None
