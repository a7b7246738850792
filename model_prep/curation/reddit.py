"""Pushshift Reddit dumps: zstandard-compressed NDJSON of submissions and comments (monthly RS_/RC_ files or
per-subreddit files; plain .jsonl/.ndjson also read).

r/WritingPrompts: a premise ("[WP] ...") with its best top-level story (train candidates). r/AskReddit:
questions whose title says everything (no body), test candidates. The paper chose these by hand; here they are
ranked by votes into a candidate file, and a keep-list of ids (one per line) picks among them.
Memory stays flat: only the `keep_top` best premises are held while the comments stream past.
"""

import heapq
import io
import json
from collections.abc import Iterator
from pathlib import Path

import zstandard

from model_prep.curation.records import Candidate, Tally
from model_prep.curation.text import plain_links_removed

WRITING_PROMPTS = "reddit_writingprompts"
ASK_REDDIT = "reddit_askreddit"
LICENCE = "Reddit content via the Pushshift dump (research use)"
GONE = {"", "[deleted]", "[removed]"}


def iter_records(path: Path, tally: Tally, source: str) -> Iterator[dict]:
    """JSON objects of an NDJSON file, .zst or plain; a bad line is reported with its number and skipped."""
    with path.open("rb") as raw:
        binary = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(raw) if path.suffix == ".zst" \
            else raw
        for number, line in enumerate(io.TextIOWrapper(binary, encoding="utf-8", errors="replace"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                tally.bad_input(source, path, number, f"bad JSON ({error.msg})")
                continue
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


def writing_prompts(files: list[Path], tally: Tally, min_prompt_score: int = 50, min_story_score: int = 20,
                    min_story_chars: int = 500, keep_top: int = 5000) -> list[Candidate]:
    """Premises with their highest-voted top-level story, best premise first."""
    heap: list[tuple[int, str, str]] = []  # (score, id, premise)
    for path in files:
        for record in iter_records(path, tally, WRITING_PROMPTS):
            if subreddit(record) != "writingprompts" or "title" not in record:
                continue
            tally.seen[WRITING_PROMPTS] += 1
            title = str(record["title"])
            if not title.startswith("[WP]"):
                tally.remove(WRITING_PROMPTS, "not a [WP] premise")
            elif score(record) < min_prompt_score or record.get("over_18"):
                tally.remove(WRITING_PROMPTS, f"premise score < {min_prompt_score} or NSFW")
            else:
                entry = (score(record), str(record.get("id")), title.removeprefix("[WP]").strip())
                if len(heap) < keep_top:
                    heapq.heappush(heap, entry)
                else:
                    heapq.heappushpop(heap, entry)
    premises = {post_id: (votes, text) for votes, post_id, text in heap}
    stories: dict[str, dict] = {}
    for path in files:
        for record in iter_records(path, Tally(), WRITING_PROMPTS):  # malformed lines were reported above
            link = str(record.get("link_id", "")).removeprefix("t3_")
            if link not in premises or record.get("parent_id") != f"t3_{link}" or "body" not in record:
                continue
            body = str(record["body"]).strip()
            if body in GONE or record.get("author") == "AutoModerator" or len(body) < min_story_chars:
                continue
            if score(record) >= min_story_score and score(record) > score(stories.get(link, {})):
                stories[link] = record
    candidates = []
    for post_id, (votes, premise) in premises.items():
        story = stories.get(post_id)
        if story is None:
            tally.remove(WRITING_PROMPTS, f"no story with score >= {min_story_score} and >= {min_story_chars} chars")
            continue
        candidates.append(Candidate(
            conversations=[premise, plain_links_removed(str(story["body"]))], source=WRITING_PROMPTS, score=votes,
            provenance={"submission_id": post_id, "comment_id": story.get("id"), "story_score": score(story),
                        "licence": LICENCE},
        ))
    return sorted(candidates, key=lambda c: (-c.score, c.provenance["submission_id"]))


def ask_reddit(files: list[Path], tally: Tally, min_score: int = 500) -> list[Candidate]:
    """Self-contained questions (a title ending in '?', no body, not NSFW), best first; prompts only."""
    candidates = []
    for path in files:
        for record in iter_records(path, Tally(), ASK_REDDIT):  # malformed lines: reported by writing_prompts
            if subreddit(record) != "askreddit" or "title" not in record:
                continue
            tally.seen[ASK_REDDIT] += 1
            title = " ".join(str(record["title"]).split())
            if str(record.get("selftext", "")).strip() not in GONE or not title.endswith("?"):
                tally.remove(ASK_REDDIT, "not self-contained (has a body or is not a question)")
            elif score(record) < min_score or record.get("over_18"):
                tally.remove(ASK_REDDIT, f"score < {min_score} or NSFW")
            else:
                candidates.append(Candidate(conversations=[title], source=ASK_REDDIT, score=score(record),
                                            provenance={"submission_id": str(record.get("id")), "licence": LICENCE}))
    return sorted(candidates, key=lambda c: (-c.score, c.provenance["submission_id"]))
