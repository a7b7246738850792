"""Multi-turn candidates from Stack Exchange comment chains (the paper's 20 of 30 extension dialogues).

Under an answer, a comment by the asker is a follow-up question and the answerer's reply is the assistant's
next turn; comments by anyone else are skipped. A dialogue needs at least one such follow-up exchange. The
paper then edited these into the assistant's style by hand: they are candidates, ranked by exchanges and votes.
"""

import re
from collections import defaultdict
from pathlib import Path

from model_prep.curation.records import Candidate, Tally
from model_prep.curation.stackexchange import iter_rows
from model_prep.curation.text import plain_links_removed

SOURCE = "stackexchange_dialogue"
_MENTION = re.compile(r"^@\w+[:,]?\s*")


def comment_text(raw: str) -> str:
    return _MENTION.sub("", plain_links_removed(" ".join(raw.split())))


def chains(site_dir: Path, candidates: list[Candidate], tally: Tally) -> list[Candidate]:
    """Dialogues for the candidates (single-turn rows of this site) whose answers have a follow-up exchange."""
    by_answer = {str(c.provenance["answer_id"]): c for c in candidates}
    comments: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    path = site_dir / "Comments.xml"
    if not path.is_file():
        return []
    for _, row in iter_rows(path, tally, SOURCE):
        if row.get("PostId") in by_answer and row.get("Text") and row.get("Id", "").isdigit():
            comments[row["PostId"]].append((int(row["Id"]), row))
    dialogues = []
    for answer_id, thread in comments.items():
        tally.seen[SOURCE] += 1
        single = by_answer[answer_id]
        speakers = {single.provenance["asker"]: "user", single.provenance["answerer"]: "assistant"}
        turns = list(single.conversations)
        comment_ids = []
        for comment_id, row in sorted(thread, key=lambda item: item[0]):
            role = speakers.get(row.get("UserId", ""))
            expected = "user" if len(turns) % 2 == 0 else "assistant"
            if role == expected and (text := comment_text(row["Text"])):
                turns.append(text)
                comment_ids.append(comment_id)
        if len(turns) % 2:
            turns.pop()
            comment_ids.pop()
        if len(turns) < 4:
            tally.remove(SOURCE, "no follow-up exchange between asker and answerer")
            continue
        dialogues.append(Candidate(
            conversations=turns, source=SOURCE, score=single.score + len(turns),
            provenance={**single.provenance, "comment_ids": comment_ids, "edit_needed": True},
        ))
    return dialogues
