"""The answer style rules, each on the kind of sentence real Stack Exchange dumps hold (the patterns found on
sites this project had never seen, written anew here) next to near misses the rule must leave alone; the small
rewrites; and what the build does with them on a site, its comment chains, and the audit."""

from pathlib import Path

import pytest

from model_prep.curation import dialogues, stackexchange, style
from model_prep.curation.audit import audit, findings
from model_prep.curation.records import Tally
from model_prep.curation.text import convert
from tests import curation_fixtures as fixtures

PROSE = ("Grind the beans just before brewing, because ground coffee loses its aroma within minutes. Use about "
         "sixty grams per litre of water, and adjust the grind until the brew takes four minutes. ") * 3

REMOVED = [
    (style.FIRST_PERSON, "My favourite ratio is a little stronger."),
    (style.FIRST_PERSON, "In my experience the grind matters most."),
    (style.FIRST_PERSON, "IMHO the ratio matters more."),
    (style.COMMENTS, "As pointed out in a comment, the ratio depends on the roast."),
    (style.COMMENTS, "There is more on this in the comments below."),
    (style.OTHER_POSTS, "See the answers to other questions for details."),
    (style.OTHER_POSTS, "This was answered here in How fine should espresso be ground."),
    (style.OTHER_POSTS, "As mentioned in the accepted answer, temperature matters."),
    (style.OTHER_POSTS, "Patrick's answer covers the chemistry."),
    (style.OTHER_USERS, "As @maria says, use filtered water."),
    (style.OTHER_USERS, "Gustavo points out that hard water scales the boiler."),
    (style.OTHER_SITES, "More details from Bram on crypto.se about the cipher."),
    (style.OTHER_SITES, "There is a long discussion over on Seasoned Advice."),
    (style.OTHER_SITES, "This came up on meta last year."),
    (style.OTHER_SITES, "A related question at parenting SE has more."),
    (style.OTHER_SITES, "Thanks for the upvotes."),
    (style.THANKS, "Thank you for asking this."),
    (style.EDIT_NOTE, "Edits on that are welcome."),
    (style.EDIT_NOTE, "The ratio (edit: by weight) is what counts."),
    (style.REMOVED, "Notice, carefully in the above picture, that the crema is thin."),
    (style.REMOVED, "As shown below, the puck cracks at the edge."),
    (style.REMOVED, "The recipe is in this link and works well."),
    (style.REMOVED, "This was measured in a study[2] in 2010."),
    (style.REMOVED, "Here's an article that explains the chemistry."),
]
KEPT = [
    "Imagine the water as a solvent that picks up flavour.",  # I-words that are not "I"
    "Thanks to its acidity, a light roast tastes brighter.",  # "thanks to" a thing, not a person
    "The grind should be finer for espresso, i.e. like powdered sugar.",
    "Comment out the heater line in the config to test without it.",  # the verb, not the site's comments
    "A meta-analysis of these studies found a small effect.",
    "Price tags on grinders vary a lot.",
    "Email the roaster at shop@example.com for the roast date.",  # an address, not an @mention
    "The list in the manual gives the order of the steps.",
    "Store the beans in an opaque container.",
]


@pytest.mark.parametrize(("rule", "sentence"), REMOVED)
def test_each_rule_removes_its_pattern_and_names_it(rule: str, sentence: str) -> None:
    review = style.review(f"{PROSE}\n\n{sentence}\n\n{PROSE}")
    assert not review.kept
    assert rule in {m.rule for m in review.matches}, review.matches
    assert "»" in review.failed.context and "«" in review.failed.context


@pytest.mark.parametrize("sentence", KEPT)
def test_near_misses_are_kept(sentence: str) -> None:
    review = style.review(f"{PROSE}\n\n{sentence}\n\n{PROSE}")
    assert review.kept and not review.matches, review.matches


def test_code_is_never_matched() -> None:
    text = f"{PROSE}\n\n```\n# I moved this per @maria's comment above, see the link below\nfor I in range(3):\n" \
           f"    my_list = [I]  # Edit: thanks\n```\n\nInline `my_var` too."
    assert style.review(text).kept and not style.find(text)


@pytest.mark.parametrize(("tail", "rule"), [
    ("Edit: the ratio above is by weight, not by volume.", style.EDIT_NOTE),
    ("**Update:** newer grinders clump less.", style.EDIT_NOTE),
    ("Reference & Image Credits: the roaster's brewing guide", style.CREDITS),
    ("Sources:\n\n- Coffee chemistry, chapter 2\n- The roaster's FAQ", style.CREDITS),
    ("Hope this helps!", style.THANKS),
    ("[1] Thanks to Jonas for that insight.", style.CREDITS),  # a footnote line
])
def test_a_trailing_note_is_cut_and_counted_as_a_rewrite(tail: str, rule: str) -> None:
    body = f"{PROSE}\n\n- weigh the beans\n- grind them\n\n```\nratio = 60 / 1000\n```"
    review = style.review(f"{body}\n\n{tail}")
    assert review.kept and review.text == body  # the list and the code block are intact
    assert rule in [m.rule for m in review.rewrites]


def test_a_credits_line_inside_the_answer_goes_alone_and_a_long_edit_section_drops_the_answer() -> None:
    review = style.review(f"{PROSE}\n\nSource: the roaster's guide\n\n{PROSE}")
    assert review.kept and "Source" not in review.text and review.text.count("Grind the beans") == 6
    long_edit = style.review(f"{PROSE}\n\nEdit: {PROSE}{PROSE}")  # most of the answer: not a small cut
    assert not long_edit.kept and long_edit.failed.rule == style.EDIT_NOTE


def test_links_whose_text_only_points_lean_on_nothing_once_removed() -> None:
    pointing = convert(f"<p>{PROSE}</p><p>The full recipe is <a href='https://x.example'>here</a>.</p>")
    assert pointing.text.endswith("The full recipe is here.") and len(pointing.pointing_links) == 1
    review = style.review(pointing)
    assert not review.kept and review.failed.rule == style.REMOVED and review.failed.text == "here"
    named = convert(f"<p>{PROSE}</p><p>See <a href='https://x.example'>the roaster's brewing guide</a>.</p>")
    assert style.review(named).kept and not named.pointing_links


def test_a_site_counts_each_rule_with_examples_and_keeps_the_clean_and_the_rewritten(tmp_path: Path) -> None:
    site_dir = fixtures.write_style_site(tmp_path / "security.stackexchange.com")
    tally = Tally()
    site = stackexchange.read_site(site_dir, tally, seed=0)
    kept = {c.provenance["question_id"]: c.conversations[1] for c in site.candidates}
    assert sorted(kept) == [1, 3]  # clean, and clean after its trailing edit note was cut
    assert not kept[3].endswith("welcome.") and "Edit" not in kept[3]
    removed = tally.removed["stackexchange"]
    for rule in (style.COMMENTS, style.OTHER_POSTS, style.OTHER_USERS, style.OTHER_SITES, style.REMOVED):
        assert removed[rule] == 1, (rule, removed)
    assert tally.rewritten["stackexchange"] == {style.EDIT_NOTE: 1}
    examples = tally.summary()["stackexchange"]["examples"]
    assert any("»crypto.se«" in e for e in examples[f"removed: {style.OTHER_SITES}"])
    assert any("»above picture«" in e for e in examples[f"removed: {style.REMOVED}"])


def test_comment_chains_become_dialogues_the_papers_way(tmp_path: Path) -> None:
    site_dir = fixtures.write_style_site(tmp_path / "security.stackexchange.com")
    tally = Tally()
    site = stackexchange.read_site(site_dir, tally, seed=0)
    found = dialogues.chains(site, used_questions={1}, tally=tally)
    assert [d.provenance["answer_id"] for d in found] == [31]
    (dialogue,) = found
    assert dialogue.conversations[2:] == [
        "Does the same hold for a passphrase of six words? And what if an attacker knows the word list?",
        "Yes: six words from a list of 7,776 give about 77 bits, and the count assumes the list is known.",
        "How long would that take to crack offline?",
        "At a trillion guesses a second, longer than the age of the universe.",
    ]  # @mention gone; two comments by the asker in a row are one turn; ordered by date, not by id
    assert dialogue.provenance["edit_needed"] and dialogue.provenance["exchanges"] == 3
    why = tally.removed["stackexchange_dialogue"]
    assert why["question already used as a single-turn example"] == 1
    assert why["fewer than 2 exchanges: the asker's next comment asks nothing"] == 1  # "Thanks, that worked."
    assert why["fewer than 2 exchanges: the answerer did not reply to the follow-up"] == 1
    assert why[f"exchange cut at a reply that breaks a rule: {style.COMMENTS}"] == 1
    assert why[f"answer has fewer than {stackexchange.MIN_THREAD_COMMENTS} comments"] >= 1
    (comments_input,) = [i for i in tally.inputs if i["path"].endswith("Comments.xml")]
    assert comments_input["status"] == "read" and comments_input["rows"] == 12


def test_the_audit_marks_rule_hits_and_borderline_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"conversations": ["How fine?", f"{PROSE} The chart above shows it."], "source": "wikihow"},
            {"conversations": ["How long?", "Four minutes; we usually stir once."], "source": "authored"},
            {"conversations": ["How hot?", "Just off the boil."], "source": "authored"}]
    fixtures.write_jsonl(tmp_path / "train.jsonl", rows)
    counts = audit(tmp_path)
    printed = capsys.readouterr().out
    assert counts["rows"] == 3 and counts["marked rows"] == 2 and counts[style.REMOVED] == 1
    assert "train.jsonl:1 wikihow: 1 mark" in printed and "chart above«" in printed
    assert "train.jsonl:2 authored: 1 mark" in printed and "[borderline]" in printed and "»we«" in printed
    assert "train.jsonl:3 authored: no marks" in printed
    assert [f.kind for f in findings(rows[0])] == [style.REMOVED]
    with pytest.raises(FileNotFoundError, match="is it a build's output"):
        audit(tmp_path / "nothing")


def test_a_comment_loses_its_mention_and_keeps_its_pointing_links_for_the_rules() -> None:
    text = dialogues.comment_text("@Robert - the two books are [here](http://a.example) and [there](http://b.example).")
    assert text.text == "the two books are here and there."
    assert [text.text[s:e] for s, e in text.pointing_links] == ["here", "there"]
    assert style.review(text, dialogues.REPLY_RULES).failed.rule == style.REMOVED
    assert dialogues.comment_text("@GPierce:  Wikipedia is tertiary.").text == "Wikipedia is tertiary."
