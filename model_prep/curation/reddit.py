"""Pushshift Reddit dumps: zstandard-compressed NDJSON of submissions and comments (monthly RS_/RC_ files or
per-subreddit files; plain .jsonl/.ndjson also read).

r/WritingPrompts: a premise ("[WP] ...") with its best top-level story (train candidates). r/AskReddit:
questions whose title says everything (no body), test candidates. The paper chose these by hand; here they are
ranked by votes into a candidate file, and a keep-list of ids (one per line) picks among them.
Memory stays flat: only the `keep_top` best premises are held while the comments stream past.
"""

import heapq
import io
from collections.abc import Iterator
from pathlib import Path

import zstandard
from pydantic import BaseModel

from model_prep.curation.records import Candidate, Tally, json_lines, progress_reader
from model_prep.curation.text import plain_links_removed

WRITING_PROMPTS = "reddit_writingprompts"
ASK_REDDIT = "reddit_askreddit"
LICENCE = "Reddit content via the Pushshift dump (research use)"
GONE = {"", "[deleted]", "[removed]"}


def iter_records(path: Path, tally: Tally, source: str) -> Iterator[dict]:
    """JSON objects of an NDJSON file, .zst or plain; a bad line is reported with its number and skipped."""
    with progress_reader(path) as raw:
        binary = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw) if path.suffix == ".zst" \
            else raw
        lines = io.TextIOWrapper(binary, encoding="utf-8", errors="replace")
        for number, record in json_lines(lines, path, tally, source):
            if isinstance(record, dict):
                yield record
            else:
                tally.bad_input(source, path, number, "not a JSON object")


def dump_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in (".zst", ".jsonl", ".ndjson", ".json"))


def subreddit(record: dict) -> str:
    return str(record.get("subreddit", "")).lower()


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
    """(WritingPrompts premises with their best top-level story, AskReddit questions), each best first. Pass 1
    reads the submissions of both, pass 2 the comments on the premises kept."""
    limits = limits or Thresholds()
    premises: list[tuple[int, str, str]] = []  # heap of (score, id, premise)
    questions = []
    for path in files:
        for record in iter_records(path, tally, WRITING_PROMPTS):
            if "title" not in record:
                continue
            if subreddit(record) == "writingprompts":
                entry = premise(record, tally, limits)
                if entry and len(premises) < limits.keep_top:
                    heapq.heappush(premises, entry)
                elif entry:
                    heapq.heappushpop(premises, entry)
            elif subreddit(record) == "askreddit" and (candidate := ask_reddit_question(record, tally, limits)):
                questions.append(candidate)
    by_id = {post_id: (votes, text) for votes, post_id, text in premises}
    stories: dict[str, dict] = {}
    for path in files:
        for record in iter_records(path, Tally(quiet=True), WRITING_PROMPTS):
            link = str(record.get("link_id", "")).removeprefix("t3_")
            if link in by_id and record.get("parent_id") == f"t3_{link}" and story_ok(record, limits) \
                    and score(record) > score(stories.get(link, {})):
                stories[link] = record
    candidates = []
    for post_id, (votes, text) in by_id.items():
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
    title = str(record["title"])
    if not title.startswith("[WP]"):
        tally.remove(WRITING_PROMPTS, "not a [WP] premise")
    elif score(record) < limits.prompt_score or record.get("over_18"):
        tally.remove(WRITING_PROMPTS, f"premise score < {limits.prompt_score} or NSFW")
    else:
        return score(record), str(record.get("id")), title.removeprefix("[WP]").strip()
    return None


def story_ok(record: dict, limits: Thresholds) -> bool:
    body = str(record.get("body", "")).strip()
    return (body not in GONE and record.get("author") != "AutoModerator" and len(body) >= limits.story_chars
            and score(record) >= limits.story_score)


def ask_reddit_question(record: dict, tally: Tally, limits: Thresholds) -> Candidate | None:
    """A self-contained question (a title ending in '?', no body, not NSFW); a prompt alone."""
    tally.seen[ASK_REDDIT] += 1
    title = " ".join(str(record["title"]).split())
    if str(record.get("selftext", "")).strip() not in GONE or not title.endswith("?"):
        tally.remove(ASK_REDDIT, "not self-contained (has a body or is not a question)")
    elif score(record) < limits.question_score or record.get("over_18"):
        tally.remove(ASK_REDDIT, f"score < {limits.question_score} or NSFW")
    else:
        return Candidate(conversations=[title], source=ASK_REDDIT, score=score(record),
                         provenance={"submission_id": str(record.get("id")), "licence": LICENCE})
    return None
