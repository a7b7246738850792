"""Multi-turn candidates from Stack Exchange comment chains (the paper's 20 of 30 extension dialogues).

Under an answer, the asker's comments are follow-up questions and the answerer's replies the assistant's next
turns; comments by anyone else are skipped, and consecutive comments by one person are one turn. In time order,
a dialogue is the question, the answer, then each follow-up that asks something (it has a "?") with the reply
that comes after it; it ends at the first follow-up that is not a question ("Thanks, that worked!") or gets no
reply. The answer goes through the answer style rules (style.py). Each turn then loses its talk about the post
(meta_talk.py: "I've updated my answer", "see my edit", "mark it as the solution"; a follow-up only its edit and
site talk), the sentence or clause cut, counted as a rewrite and listed in the row's `edited_turns`; a reply
with nothing left, or a follow-up left with no question, ends the dialogue. What is left of a reply goes through
the answer rules except the first person (comments are written in it: the paper's authors edited these
dialogues by hand, and so should a person here: the candidates say `edit_needed`). A reply that breaks a rule
ends the dialogue before its exchange. What is left needs at least `min_exchanges` exchanges, the first one
included.

Comments.xml is streamed once per site; only the comments of the site's threads are held.
"""

import re
from collections import defaultdict
from dataclasses import dataclass

from model_prep.curation import meta_talk, style
from model_prep.curation.records import Candidate, Tally
from model_prep.curation.stackexchange import DIALOGUE_SOURCE as SOURCE
from model_prep.curation.stackexchange import LICENCE, Site, Thread, iter_rows
from model_prep.curation.text import Converted, convert, convert_plain

_MENTION = re.compile(r"^(?:@[\w.-]+[:,]?\s*(?:[-\u2013]\s+)?)+")  # "@Robert - ", "@GPierce: "
REPLY_RULES = tuple(rule for rule in style.RULES if rule != style.FIRST_PERSON)


@dataclass
class Comment:
    order: tuple[str, int]  # (creation date, id): the dump's ids are not always in time order
    user: str
    text: Converted


def comment_text(raw: str) -> Converted:
    """A comment as one line of plain text: a leading @mention goes, links keep their text (pointing ones are
    remembered, for the rules)."""
    return convert_plain(_MENTION.sub("", " ".join(raw.split())))


def read_comments(site: Site, wanted: set[str], tally: Tally) -> dict[str, list[Comment]]:
    """The comments under the wanted answers by their asker or answerer, per answer id."""
    path = site.directory / "Comments.xml"
    people = {str(t.answer_id): {t.asker, t.answerer} for t in site.threads if str(t.answer_id) in wanted}
    found: dict[str, list[Comment]] = defaultdict(list)
    rows = 0
    for _, row in iter_rows(path, tally, SOURCE):
        rows += 1
        post = row.get("PostId", "")
        if post in people and row.get("UserId") in people[post] and row.get("Id", "").isdigit():
            found[post].append(Comment((row.get("CreationDate", ""), int(row["Id"])), row["UserId"],
                                       comment_text(row.get("Text", ""))))
    tally.input(SOURCE, path, "read", f"{rows} comments, {sum(map(len, found.values()))} by an asker or answerer "
                                      f"under {len(people)} answers", rows)
    return found


def turns_of(thread: Thread, comments: list[Comment]) -> list[tuple[str, Converted]]:
    """(role, text) in time order, consecutive comments by one person joined."""
    merged: list[tuple[str, Converted]] = []
    for comment in sorted(comments, key=lambda c: c.order):
        role = "user" if comment.user == thread.asker else "assistant"
        if not comment.text.text:
            continue
        if merged and merged[-1][0] == role:
            before = merged[-1][1]
            shift = len(before.text) + 1
            merged[-1] = (role, Converted(f"{before.text} {comment.text.text}", before.pointing_links + [
                (start + shift, end + shift) for start, end in comment.text.pointing_links]))
        else:
            merged.append((role, comment.text))
    return merged


def dialogue(site: str, thread: Thread, comments: list[Comment], tally: Tally, min_exchanges: int
             ) -> Candidate | None:
    """The thread's dialogue, or None with the reason counted."""
    answer = style.review(convert(thread.answer_html))
    if answer.failed is not None:
        tally.remove(SOURCE, f"answer: {answer.failed.rule}", answer.failed.context)
        return None
    conversation = [thread.prompt, answer.text]
    edits: list[dict[str, object]] = []  # what the meta-talk rule cut from the turns kept
    ending = "the asker asked no follow-up question"
    chain = turns_of(thread, comments)
    while chain and chain[0][0] == "assistant":  # the answerer's notes before any follow-up have no question
        chain.pop(0)
    for (_, question), reply in zip(chain[::2], [*chain[1::2], None][:len(chain[::2])], strict=True):
        if "?" not in question.text:
            ending = "the asker's next comment asks nothing"
            break
        asked = meta_talk.trim(question, meta_talk.FOLLOW_UP)
        if "?" not in asked.text.text:
            ending = f"follow-up: {meta_talk.META_TALK}"
            tally.remove(SOURCE, f"exchange cut at a follow-up that breaks a rule: {meta_talk.META_TALK}",
                         asked.cuts[0].example)
            break
        if reply is None:
            ending = "the answerer did not reply to the follow-up"
            break
        answered = meta_talk.trim(reply[1])
        if answered.cuts and not meta_talk.meaningful(answered.text.text):
            ending = f"reply: {meta_talk.META_TALK}"
            tally.remove(SOURCE, f"exchange cut at a reply that breaks a rule: {meta_talk.META_TALK}",
                         answered.cuts[0].example)
            break
        checked = style.review(answered.text, REPLY_RULES)
        failed = checked.failed if checked.text else checked.rewrites[0]  # a one-line reply's cut leaves nothing
        if failed is not None:
            ending = f"reply: {failed.rule}"
            tally.remove(SOURCE, f"exchange cut at a reply that breaks a rule: {failed.rule}", failed.context)
            break
        for turn, (role, trimmed) in enumerate((("follow-up", asked), ("reply", answered)), len(conversation)):
            edits += [{"turn": turn, "role": role, "rule": meta_talk.META_TALK, "removed": cut.removed}
                      for cut in trimmed.cuts]
            if trimmed.cuts:
                tally.rewrite(SOURCE, f"{role}: {meta_talk.META_TALK}", trimmed.cuts[0].example)
        conversation += [asked.text.text, checked.text]
    if len(conversation) < 2 * min_exchanges:
        tally.remove(SOURCE, f"fewer than {min_exchanges} exchanges: {ending}")
        return None
    return Candidate(
        conversations=conversation, source=SOURCE, score=thread.question_score + len(conversation),
        provenance={"site": site, "question_id": thread.question_id, "answer_id": thread.answer_id,
                    "answer_score": thread.answer_score, "asker": thread.asker, "answerer": thread.answerer,
                    "exchanges": len(conversation) // 2, "edit_needed": True, "edited_turns": edits,
                    "licence": LICENCE},
    )


def chains(site: Site, used_questions: set[int], tally: Tally, min_exchanges: int = 2) -> list[Candidate]:
    """The site's dialogue candidates from its threads whose question is not already a single-turn example."""
    threads = []
    for thread in site.threads:
        if thread.question_id in used_questions:
            tally.remove(SOURCE, "question already used as a single-turn example")
        else:
            threads.append(thread)
    if not (site.directory / "Comments.xml").is_file():
        tally.input(SOURCE, site.directory, "skipped", f"no Comments.xml: {len(threads)} answers with comments "
                                                       "cannot become dialogues")
        return []
    comments = read_comments(site, {str(t.answer_id) for t in threads}, tally)
    found = []
    for thread in threads:
        chosen = dialogue(site.name, thread, comments.get(str(thread.answer_id), []), tally, min_exchanges)
        if chosen is not None:
            found.append(chosen)
    return found
