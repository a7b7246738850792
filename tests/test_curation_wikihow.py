"""wikiHow scraped from the live site (title,heading,paragraph; one row per step): its residue (title suffixes,
citation marks and badges, each step's heading over its paragraph) is cleaned, counted in the report, and an
article that still shows some is dropped and listed; every clean-up stays linear on adversarial text."""

import csv
import json
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from model_prep.curation import wikihow
from model_prep.curation import wikihow_clean as clean
from model_prep.curation.build import BuildConfig, Counts, build
from model_prep.curation.records import Tally

FILLER = " Give it a minute, check it once more, and move on only when it looks right to you."
RESUME = [  # (heading, paragraph) per step, as the scrape gives them
    ("Choose a template", f"Choose a template or design your own layout in a word processor.[1] X Research source"
                          f"{FILLER}"),
    ("List your experience.", f"List your experience. Start with your most recent job and its dates.[2][3]{FILLER}"),
    ("Proofread", f"Read every line aloud and ask a friend to check the spelling.X Expert Source{FILLER}"),
]
SCRAPE = [
    ("How to Make a Resume (with Pictures) - wikiHow", RESUME),
    ("3 Ways to Cook an Omelette - wikiHow", [
        ("Crack the eggs", f"This wikiHow shows a quick way. Crack three eggs into a bowl. [4] X Trustworthy Source"
                           f"{FILLER}"),
        ("Heat the pan", f"Heat the pan: melt butter over medium heat until it foams.{FILLER}")]),
    ("How to Tie a Tie: 10 Steps (with Pictures) - wikiHow Life", [
        ("Drape the tie.", f"Drape the tie around your collar, the wide end on the right.{FILLER}"),
        ("Cross the wide end", f"cross the  wide end over the narrow one and pull it up through the loop.{FILLER}"),
        ("Tips", "Practise in front of a mirror.[5]")]),
    ("Fold a Paper Plane | wikiHow", [("Fold the paper", f"Fold a sheet in half along its length.{FILLER * 2}")]),
    ("How to Brew Tea - wikiHow", [("Boil water", f"Boil fresh water for the leaves.[6] Research source{FILLER * 2}")]),
    ("How to Whistle - wikiHow", [("Purse your lips", "Purse your lips.[7]")]),
]
RESUME_ANSWER = (f"Choose a template or design your own layout in a word processor.{FILLER}\n\n"
                 f"List your experience. Start with your most recent job and its dates.{FILLER}\n\n"
                 f"Proofread\n\nRead every line aloud and ask a friend to check the spelling.{FILLER}")


def write_scrape(path: Path) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "heading", "paragraph"])
        writer.writerows([title, heading, paragraph] for title, steps in SCRAPE for heading, paragraph in steps)
    return path


def test_a_scraped_csv_gives_clean_rows_and_the_report_counts_each_clean_up(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = build(BuildConfig(out=out, wikihow=write_scrape(tmp_path / "scraped.csv"), counts=Counts(wikihow=10)))
    rows = [json.loads(line)["conversations"] for line in (out / "train.jsonl").read_text().splitlines()]
    answers = {prompt: answer for prompt, answer in rows}
    assert set(answers) == {"How to Make a Resume?", "How to Cook an Omelette?", "How to Tie a Tie?",
                            "How to fold a Paper Plane?"}
    assert answers["How to Make a Resume?"] == RESUME_ANSWER
    assert answers["How to Cook an Omelette?"].startswith("Crack the eggs\n\nThe following answer shows a quick way.")
    tie = answers["How to Tie a Tie?"]
    assert tie.startswith("Drape the tie around") and "Cross the wide end" not in tie and "Tips" not in tie
    for turn in (turn for row in rows for turn in row):
        assert clean.residue(turn) is None and "[" not in turn and "source" not in turn.lower()

    entry = report["sources"]["wikihow"]
    assert entry["rewritten"] == {clean.TITLE_SUFFIX: 6, clean.TITLE_COUNT: 1, clean.CITATIONS: 4,
                                  clean.REPEATED_HEADING: 4, clean.SECTIONS: 1, clean.THIS_ARTICLE: 1}
    assert entry["removed"] == {"scrape residue left: reference badge": 1, "shorter than 200 chars after clean-up": 1}
    assert entry["read"] == 6 and entry["kept"] == 4
    text = (out / "report.md").read_text()
    for rule, count in entry["rewritten"].items():
        assert f"| wikihow | 6 | {rule} | 0 | {count} |" in text
    assert "| wikihow | 6 | scrape residue left: reference badge | 1 | 0 |" in text
    assert "Boil fresh water for the leaves. »Research source«" in text  # the dropped article, shown


@pytest.mark.parametrize(("title", "prompt"), [
    ("How to Make a Resume (with Pictures) - wikiHow", "How to Make a Resume?"),
    ("How to Make a Resume (with Pictures) - wikiHow?", "How to Make a Resume?"),
    ("3 Ways to Make a Resume - wikiHow", "How to Make a Resume?"),  # the same article, the same prompt
    ("How to Write a Cover Letter: 14+ Easy Methods", "How to Write a Cover Letter?"),
    ("How to Draw a Cat: 15 Steps (with Pictures) | wikiHow", "How to Draw a Cat?"),
    ("How to Tie a Tie: Step-by-Step Guide for 4 Easy Knots", "How to Tie a Tie?"),
    ("How to Knit (with Examples)", "How to Knit?"),
    ("How to Make Tea (Step-by-Step)", "How to Make Tea?"),
    ("Easy Ways to Boil an Egg", "How to Boil an Egg?"),
    ("12 Steps to Write a Novel", "How to Write a Novel?"),
    ("Cook an Omelette", "How to cook an Omelette?"),  # the paper's form; wikiHow's capitals otherwise kept
    ("How to Play Minecraft: Pocket Edition", "How to Play Minecraft: Pocket Edition?"),  # a colon of the title
    ("How to Use a Modem (DSL)", "How to Use a Modem (DSL)?"),
])
def test_a_title_becomes_the_papers_prompt(title: str, prompt: str) -> None:
    assert wikihow.prompt(title, Tally()) == prompt


@pytest.mark.parametrize(("text", "cleaned"), [
    ("Pick one.[1] X Research source Then go.", "Pick one. Then go."),
    ("Pick one [2]. Then go.", "Pick one. Then go."),
    ("Pick a templateX Research source and go.", "Pick a template and go."),
    ("It works.[2][3]Next step.", "It works. Next step."),
    ("It works.[3](https://example.org/ref) Yes.", "It works. Yes."),
    ("Done. X Expert Source\nAsk a friend X Trustworthy Source.", "Done.\nAsk a friend."),
    ("Set a[2] = 5, then m[1][2] += 1 and read a[2].x.", "Set a[2] = 5, then m[1][2] += 1 and read a[2].x."),
    ("Call `arr[2]` here[4].", "Call `arr[2]` here."),
    ("Step [optional] of the [2020] edition.", "Step [optional] of the [2020] edition."),
])
def test_citation_residue_goes_and_code_and_other_brackets_stay(text: str, cleaned: str) -> None:
    assert clean.citations_removed(text)[0] == cleaned


def test_a_heading_repeated_as_its_paragraphs_start_is_kept_once() -> None:
    text = ("Choose a template\n\nChoose a template or design your own.\n\nList it.\n\nlist  it: start now.\n\n"
            "Choose\n\nChooser beware: a different word.")
    cleaned, example = clean.repeated_headings_removed(text)
    assert cleaned == ("Choose a template or design your own.\n\nlist  it: start now.\n\nChoose\n\n"
                       "Chooser beware: a different word.")
    assert example.startswith(" »Choose a template« Choose a template or design")


@pytest.mark.parametrize(("text", "rule"), [
    ("Boil water.[6] It helps.", "citation mark or badge"),
    ("Boil water. Research source", "reference badge"),
    ("Boil water. Go to source", "reference badge"),
    ("See other wikiHow articles.", "names wikiHow"),
    ("How to Boil Water (with Pictures)?", "title suffix"),
    ("How to Boil Water: 10 Steps?", "title suffix"),
    ("Set a[2] = 1 and find a trustworthy source.", None),
])
def test_residue_names_what_the_scrape_left(text: str, rule: str | None) -> None:
    found = clean.residue(text)
    assert (found and found.rule) == rule


PIECES = ["[", "]", "1", "[12]", " ", "  ", "\t", "\n", "\n\n", "X", "X Research source", " Expert Source", "Go to",
          " source", "(", ")", "(with Pictures", ":", ": 10 ", "Easy ", "Steps", ".", "?", "-", " - wikiHow", "|",
          "`", "```", "a", "Ways to ", "How to ", "=", "(https://", "This ", "article", "Tips"]
CLEAN_UPS = [clean.citations_removed, clean.title_suffix_removed, clean.count_made_how_to,
             clean.repeated_headings_removed, clean.this_article_rewritten, clean.sections_removed, clean.residue,
             lambda text: wikihow.prompt(text, Tally())]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12))
@example(["["]).via("a run of brackets")
@example(["[12]", " "]).via("marks and spaces")
@example([": 10 ", "Easy ", "Steps"]).via("stacked title suffixes")
@example(["a", "\n\n"]).via("one-line paragraphs")
@example(["`"]).via("code spans")
def test_every_clean_up_is_linear_on_100_kB_of_adversarial_text(pieces: list[str]) -> None:
    """A pattern that backtracks takes seconds to hours on 100 kB of its worst text; a linear one milliseconds."""
    unit = "".join(pieces)
    text = unit * (100_000 // len(unit) + 1)
    for clean_up in CLEAN_UPS:
        started = time.perf_counter()
        clean_up(text)
        assert time.perf_counter() - started < 0.5, (clean_up, unit)
