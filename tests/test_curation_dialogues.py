"""The dialogue rule for talk about the post (meta_talk.py): replies like those real comment chains hold (written
anew here) lose the sentence or clause that talks about the edit, the answer's own text or the site; a reply
with nothing else goes with its exchange; natural first person stays; every row says what was cut, and the
report counts the rule with examples. The splitter and the patterns stay linear on adversarial 100 kB text."""

import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_prep.curation import dialogues, meta_talk, stackexchange, style
from model_prep.curation.build import BuildConfig, Counts, build
from model_prep.curation.meta_talk import META_TALK
from model_prep.curation.records import Tally
from model_prep.curation.stackexchange import DIALOGUE_SOURCE
from model_prep.curation.text import Converted, convert_plain
from tests import curation_fixtures as fixtures

CUT = [  # (reply, what is left)
    ("Yes, it is 44 lovelace per byte. I've updated my answer to show the formula.",
     "Yes, it is 44 lovelace per byte."),
    ("I made some edits. The deposit is two ADA.", "The deposit is two ADA."),
    ("I tried editing the answer, but the table would not render.", "The table would not render."),
    ("I added a note in the answer about the deposit. It comes back when you deregister.",
     "It comes back when you deregister."),
    ("For the purposes of this answer, a slot is one second.", "A slot is one second."),
    ("See my edit for the full command. It needs the socket path.", "It needs the socket path."),
    ("As I wrote in the answer, the deposit comes back.", "The deposit comes back."),
    ("So the epoch starts at slot 4924800, I have edited my answer to mention this.",
     "So the epoch starts at slot 4924800."),
    ("The answer now includes the mainnet parameters. The fee is 0.17 ADA.", "The fee is 0.17 ADA."),
    ("There is more to the formula but that is out of the scope of this question.", "There is more to the formula."),
    ("It is the same on the testnet. Maybe ask this as its own question?", "It is the same on the testnet."),
    ("If it works for you, mark it as the accepted answer. The node needs a restart first.",
     "The node needs a restart first."),
    ("I can't say for sure. Hope someone from the foundation will answer this.", "I can't say for sure."),
]
KEPT = [  # first person and words near the rule's that a natural reply uses
    "I think the fee is fixed at 0.17 ADA plus a part per byte.",
    "I would use cardano-cli for that, since it signs offline.",
    "The answer is that you need nothing more than the example above.",
    "I forgot your last question: yes, every pool gets one VRF result per slot.",
    "You can update the response headers in the POST request handler.",
    "The edit distance between the two strings is three.",
    "Add the answer to the running total before the next step.",
    "I edited /etc/nix/nix.conf and restarted the daemon, which fixed it.",
    "That's a great question.",
]


@pytest.mark.parametrize(("reply", "left"), CUT)
def test_meta_talk_is_cut_from_a_reply_and_recorded(reply: str, left: str) -> None:
    trimmed = meta_talk.trim(Converted(reply))
    assert trimmed.text.text == left
    assert trimmed.cuts and all(cut.removed in reply and "»" in cut.example for cut in trimmed.cuts)


@pytest.mark.parametrize("reply", KEPT)
def test_natural_first_person_and_near_misses_stay(reply: str) -> None:
    assert meta_talk.trim(Converted(reply)) == meta_talk.Trimmed(Converted(reply))


def test_a_follow_up_loses_its_edit_and_site_talk_but_may_refer_to_the_answer() -> None:
    trimmed = meta_talk.trim(Converted("Thanks, I added the log to the question. Why does it stop?"),
                             meta_talk.FOLLOW_UP)
    assert trimmed.text.text == "Thanks. Why does it stop?"
    assert [cut.removed for cut in trimmed.cuts] == ["I added the log to the question"]
    natural = "In your answer the fee is 0.17 ADA; is that per transaction?"
    assert not meta_talk.trim(Converted(natural), meta_talk.FOLLOW_UP).cuts
    assert meta_talk.trim(Converted(natural)).text.text == natural  # nor does a reply's rule see "your answer"


def test_pointing_links_move_with_their_text_and_code_is_not_matched() -> None:
    reply = convert_plain("See my edit. The spec is [here](https://x.example); run `see my edit.` to check.")
    trimmed = meta_talk.trim(reply)
    assert trimmed.text.text == "The spec is here; run `see my edit.` to check."
    assert [trimmed.text.text[s:e] for s, e in trimmed.text.pointing_links] == ["here"]


def write_site(site: Path) -> Path:
    """A site in the dumps' layout whose comment chains hold meta-talk: cut in three turns, a reply that is
    nothing else, a follow-up that only asks for an edit; a natural first-person reply, and one that the answer
    rules' credits-line cut would leave empty."""
    site.mkdir(parents=True)

    def thread(post_id: int, title: str) -> list[str]:
        return [fixtures.question(post_id, title, 20),
                fixtures.post(Id=post_id + 1, PostTypeId=2, ParentId=post_id, Score=5, OwnerUserId=8,
                              CommentCount=6, Body=fixtures.answer_html(title.split()[2]))]

    rows = [*thread(30, "How is the fee of a transaction computed on this chain?"),
            *thread(40, "What does a pool's pledge change for its rewards?"),
            *thread(50, "Why does a wallet need a collateral input for scripts?"),
            *thread(60, "How many blocks does a small pool mint per epoch?"),
            *thread(70, "Is there a standard for the API of browser wallets?")]
    (site / "Posts.xml").write_text(fixtures.xml_rows(rows))
    comment = fixtures.comment
    (site / "Comments.xml").write_text(fixtures.xml_rows([
        comment(301, 31, 7, "Does the fee depend on the size of the transaction?", 0),
        comment(302, 31, 8, "Yes: 155381 lovelace plus 44 per byte. I've updated my answer to show the formula.", 1),
        comment(303, 31, 7, "Thanks, I added the error message to the question. Why does my node reject it?", 2),
        comment(304, 31, 8, "I think the node checks the fee against the protocol parameters first.", 3),
        comment(305, 31, 7, "And does the deposit come back?", 4),
        comment(306, 31, 8, "Yes, when you deregister the key, I have edited my answer to mention this.", 5),
        comment(401, 41, 7, "Does a higher pledge raise the rewards?", 0),
        comment(402, 41, 8, "A little: the influence factor a0 scales it.", 1),
        comment(403, 41, 7, "Where is a0 set?", 2),
        comment(404, 41, 8, "I've updated my answer.", 3),
        comment(501, 51, 7, "Could you edit your answer to include the command for the testnet?", 0),
        comment(502, 51, 8, "Sure, it is the same with the testnet magic number.", 1),
        comment(601, 61, 7, "Is that the same on the testnet?", 0),
        comment(602, 61, 8, "I would expect the same, since I think the leader schedule uses one formula.", 1),
        comment(701, 71, 7, "Does every wallet follow it?", 0),
        comment(702, 71, 8, "See also the CIP-30 spec for the wallet API.", 1),  # a credits line: nothing left
    ]))
    return site


def test_comment_chains_lose_their_meta_talk_and_say_what_was_cut(tmp_path: Path) -> None:
    site = stackexchange.read_site(write_site(tmp_path / "cardano.stackexchange.com"), Tally(), seed=0)
    tally = Tally()
    found = {d.provenance["answer_id"]: d for d in dialogues.chains(site, set(), tally)}
    assert sorted(found) == [31, 41, 61]
    assert found[31].conversations[2:] == [
        "Does the fee depend on the size of the transaction?", "Yes: 155381 lovelace plus 44 per byte.",
        "Thanks. Why does my node reject it?", "I think the node checks the fee against the protocol parameters first.",
        "And does the deposit come back?", "Yes, when you deregister the key."]
    assert found[31].provenance["edited_turns"] == [
        {"turn": 3, "role": "reply", "rule": META_TALK, "removed": "I've updated my answer to show the formula."},
        {"turn": 4, "role": "follow-up", "rule": META_TALK, "removed": "I added the error message to the question"},
        {"turn": 7, "role": "reply", "rule": META_TALK, "removed": "I have edited my answer to mention this"}]
    assert found[41].provenance["exchanges"] == 2  # the exchange whose reply is only "I've updated my answer." went
    assert found[41].conversations[3] == "A little: the influence factor a0 scales it."
    assert found[61].provenance["edited_turns"] == [] and found[61].conversations[3].startswith("I would expect")
    assert all(d.provenance["edit_needed"] for d in found.values())  # a person still reads every dialogue
    assert tally.rewritten[DIALOGUE_SOURCE] == {f"reply: {META_TALK}": 2, f"follow-up: {META_TALK}": 1}
    removed = tally.removed[DIALOGUE_SOURCE]
    assert removed[f"exchange cut at a reply that breaks a rule: {META_TALK}"] == 1  # "I've updated my answer."
    assert removed[f"exchange cut at a follow-up that breaks a rule: {META_TALK}"] == 1  # "Could you edit..."
    assert removed[f"fewer than 2 exchanges: follow-up: {META_TALK}"] == 1
    assert removed[f"exchange cut at a reply that breaks a rule: {style.CREDITS}"] == 1  # never an empty turn


def test_the_build_report_counts_the_rule_with_examples(tmp_path: Path) -> None:
    write_site(tmp_path / "se" / "cardano.stackexchange.com")
    report = build(BuildConfig(out=tmp_path / "out", stackexchange=tmp_path / "se", counts=Counts(dialogues=5)))
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert {r["provenance"]["answer_id"]: len(r["provenance"]["edited_turns"]) for r in rows} == {31: 3, 41: 0, 61: 0}
    entry = report["sources"][DIALOGUE_SOURCE]
    assert entry["rewritten"][f"reply: {META_TALK}"] == 2
    assert any("»updated my answer«" in e for e in entry["examples"][f"rewritten: reply: {META_TALK}"])
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"| {DIALOGUE_SOURCE} | 5 | reply: {META_TALK} | 0 | 2 |" in text
    assert f"| {DIALOGUE_SOURCE} | 5 | exchange cut at a reply that breaks a rule: {META_TALK} | 1 | 0 |" in text
    assert f"**{DIALOGUE_SOURCE}, rewritten: reply: {META_TALK}**" in text and "»edited my answer«" in text


TOKENS = [" ", "  ", "\n", "\t", ".", "?", "!", ",", ";", " - ", " but ", ":", "`", "```", "(", ")", "[", "]", "'",
          "edit", "edits", "my", "answer", "the", "post", "question", "see", "added", "to", "accept", "it", "as",
          "mark", "someone", "will", "updated", "I", "If", "aaaaaaaaaaaaaaaaaaaa", "@user", "\u2019", "\u2014"]


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=16))
def test_the_rule_takes_linear_time_on_adversarial_text(pieces: list[str]) -> None:
    unit = "".join(pieces)
    text = unit * (100_000 // len(unit) + 1)
    started = time.perf_counter()
    meta_talk.sentence_spans(text)
    for pattern in (meta_talk.REPLY, meta_talk.FOLLOW_UP):
        meta_talk.trim(Converted(text), pattern)
    assert time.perf_counter() - started < 2.0, f"{len(text)} characters of {unit!r}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*TOKENS, "[here](u)", "[there](v)"]), max_size=40))
def test_a_cut_only_removes_text_and_links_keep_their_words(pieces: list[str]) -> None:
    converted = convert_plain("".join(pieces))
    trimmed = meta_talk.trim(converted)
    assert len(trimmed.text.text) <= len(converted.text)
    assert all(trimmed.text.text[s:e] in {"here", "there"} for s, e in trimmed.text.pointing_links)
    if not trimmed.cuts:
        assert trimmed.text == converted
