"""Every input accounted for: what was read, what was skipped and why, layouts recognised or named as not, and
a build short of its counts says so (and fails with --strict)."""

import csv
from pathlib import Path

import pytest

from lima.cli import main
from model_prep.curation import reddit, wikihow
from model_prep.curation.build import BuildConfig, Counts, build, problems
from model_prep.curation.records import Tally
from tests import curation_fixtures as fixtures


def test_every_stack_exchange_entry_is_read_or_skipped_with_its_reason(tmp_path: Path) -> None:
    root = fixtures.write_stackexchange(tmp_path / "se")
    report = build(BuildConfig(out=tmp_path / "out", stackexchange=root, counts=Counts(stem=1, other=1)))
    status = {Path(i["path"]).name: (i["status"], i["detail"]) for i in report["inputs"]}
    assert status["math.meta.stackexchange.com"] == ("skipped", "a meta site (about the site itself, not its subject)")
    assert status["chemistry.stackexchange.com.7z"][0] == "skipped" and "extract it first" in status[
        "chemistry.stackexchange.com.7z"][1]
    assert status["biology.stackexchange.com"] == ("skipped", "no Posts.xml (found: Users.xml)")
    assert status["es.stackoverflow.com"][0] == "skipped" and "excluded" in status["es.stackoverflow.com"][1]
    read = [i for i in report["inputs"] if i["status"] == "read" and i["path"].endswith("Posts.xml")]
    assert sorted(Path(i["path"]).parent.name for i in read) == [
        "cooking.stackexchange.com", "math.stackexchange.com", "physics.stackexchange.com"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Inputs" in text and "a meta site" in text


def test_one_site_directory_is_read_as_a_dump_of_one_site(tmp_path: Path) -> None:
    root = fixtures.write_stackexchange(tmp_path / "se")
    report = build(BuildConfig(out=tmp_path / "out", stackexchange=root / "cooking.stackexchange.com",
                               counts=Counts(stem=0, other=1)))
    assert report["written"]["stackexchange other"] == 1


def test_wikihow_paragraph_rows_are_joined_back_into_articles_without_a_category(tmp_path: Path) -> None:
    path = fixtures.write_wikihow_sections(tmp_path / "wikihowSep.csv")
    tally = Tally()
    articles = list(wikihow.iter_articles(path, tally))
    assert [(line, row["title"]) for line, row in articles] == [(2, "How to Brew Tea"), (5, "Roast Coffee at Home")]
    tea = articles[0][1]["text"]
    assert tea.startswith("Tea rewards a little care.\n\nStep 0. Fill the kettle") and tea.count("Step ") == 3
    coffee = articles[1][1]["text"].split("\n\n")
    assert coffee[0] == "Choosing" and coffee[3] == "Roasting"  # a section's name once, where it starts
    (note,) = tally.inputs
    assert note["status"] == "read" and note["rows"] == 2 and "no category field" in note["detail"]
    chosen = wikihow.sample(path, 2, seed=0, tally=Tally())
    assert sorted(c.conversations[0] for c in chosen) == ["How to Brew Tea?", "How to roast Coffee at Home?"]


def test_scraped_title_heading_paragraph_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "scraped.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["title", "heading", "paragraph"])
        writer.writerows([["How to Brew Tea", "Heat the water", fixtures.PARAGRAPH * 2],
                          ["How to Brew Tea", "Steep", fixtures.PARAGRAPH * 2]])
    (_, article), = wikihow.iter_articles(path, Tally())
    assert article["text"].split("\n\n")[0] == "Heat the water" and article["text"].count("Fill the kettle") == 4


def test_an_unknown_layout_names_the_columns_it_found_and_the_ones_it_knows(tmp_path: Path) -> None:
    path = tmp_path / "wiki.csv"
    path.write_text("name,body\nTea,Boil water.\n")
    tally = Tally()
    assert list(wikihow.iter_articles(path, tally)) == []
    (note,) = tally.inputs
    assert note["status"] == "unreadable"
    assert "columns found: name, body; expected one of: headline,title,text" in note["detail"]


def test_a_short_build_warns_for_each_shortfall_and_strict_fails_it(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    unknown = tmp_path / "wiki.csv"
    unknown.write_text("name,body\nTea,Boil water.\n")
    sni = fixtures.write_sni(tmp_path / "tasks")
    args = ["prep", "data", "build", "--out", str(tmp_path / "out"), "--wikihow", str(unknown), "--sni", str(sni),
            "--count", "wikihow=3", "--count", "sni=50"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "WARNING: wikihow: 0 of 3 written" in err and "WARNING: sni: 1 of 50 written" in err
    assert f"WARNING: {unknown}: columns found: name, body" in err
    assert main([*args, "--strict"]) == 1
    assert "--strict: 4 problem(s)" in capsys.readouterr().err  # 2 shortfalls, 1 layout, 1 broken task file
    report = build(BuildConfig(out=tmp_path / "ok", sni=sni, counts=Counts(sni=1)))
    assert [p for p in problems(report) if "written" in p] == []


def test_a_pushshift_month_is_read_once_per_file_across_record_layouts(tmp_path: Path) -> None:
    month = fixtures.write_month(tmp_path / "pushshift")
    tally = Tally()
    stories, questions = reddit.read_dump(reddit.dump_files(month), tally, reddit.Thresholds(story_score=20))
    assert [(s.provenance["submission_id"], s.provenance["comment_id"]) for s in stories] == [
        ("new1", "s1"), ("old1", "s3")]  # comments read before their submissions; the removed story skipped
    assert [q.conversations for q in questions] == [["What skill took you longest to learn?"]]
    assert tally.removed["reddit_writingprompts"] == {"premise score < 50 or NSFW": 1}  # the null score
    by_file = {Path(i["path"]).name: i for i in tally.inputs}
    assert by_file["RC_2019-01.zst"]["rows"] == 8 and by_file["RS_2019-01.zst"]["rows"] == 10
    assert by_file["RC_2019-01.zst"]["detail"] == (
        "comments deleted or removed 1, other subreddits 5, r/writingprompts comments 3")
    assert by_file["RS_2019-01.zst"]["detail"] == (
        "no subreddit field 1, other subreddits 5, r/askreddit submissions 1, r/writingprompts submissions 3")
