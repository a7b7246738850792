"""Data curation on small inputs in each real format (tests/curation_fixtures.py): every filter removes what it
should and keeps what it should, malformed input is reported with file and line and skipped, and the build is
reproducible byte for byte."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from lima.cli import main
from model_prep.curation import authored, reddit, sni, stackexchange, wikihow
from model_prep.curation.build import BuildConfig, Counts, ablation, build
from model_prep.curation.dedup import Deduplicator
from model_prep.curation.records import Candidate, Tally
from model_prep.curation.text import html_to_markdown
from tests import curation_fixtures as fixtures

SMALL = Counts(stem=1, other=5, wikihow=3, writing_prompts=5, sni=5, authored_train=10, dev=2, authored_test=5,
               ask_reddit=5, dialogues=5)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {"stackexchange": fixtures.write_stackexchange(root / "se"),
            "wikihow": fixtures.write_wikihow(root / "wikihow.csv"),
            "reddit": fixtures.write_reddit(root / "RS_2020-01.zst"),
            "sni": fixtures.write_sni(root / "tasks"),
            "authored": fixtures.write_authored(root / "authored.jsonl")}


def test_html_becomes_markdown_with_code_and_lists_and_without_links_or_images() -> None:
    text = html_to_markdown(fixtures.answer_html("square root", sentences=1))
    assert "```\ndef check(n):\n    return n % 2 == 0\n```" in text
    assert "- first step\n- second step" in text
    assert "See the classic argument for details." in text  # the link's text stays
    assert "http" not in text and "<" not in text and "diagram" not in text and "![" not in text


def test_each_stack_exchange_filter_removes_what_it_should(sources: dict[str, Path]) -> None:
    tally = Tally()
    site = stackexchange.read_site(sources["stackexchange"] / "math.stackexchange.com", tally, seed=0)
    assert site.name == "math" and site.stem and site.questions == 9
    kept = {c.provenance["question_id"]: c for c in site.candidates}
    assert sorted(kept) == [1, 18]
    assert tally.removed["stackexchange"] == {
        "question closed": 1, "title too short to stand alone": 1, "question depends on an image": 1,
        "no answer with score >= 10": 1, "length 1200-4096 chars": 1, "first person": 1,
        "refers to other answers or questions": 1,
    }
    assert kept[1].provenance["answer_id"] == 2  # accepted (score 40) beats a higher-voted answer
    assert kept[18].provenance["answer_id"] == 20  # accepted has 3 votes: the top answer (25) is taken
    answer = kept[1].conversations[1]
    assert 1200 <= len(answer) <= 4096 and "```" in answer and "- first step" in answer
    assert [c.score for c in site.candidates] == [90, 40]  # best question first
    for candidate in site.candidates:  # prompt: the title or the body, chosen per post from the seed
        assert candidate.conversations[0] == (
            "Why is the square root of two irrational?" if candidate.provenance["question_id"] == 1
            else "How is the determinant of a matrix computed by hand?"
        ) or candidate.provenance["prompt"] == "body"
    again = stackexchange.read_site(sources["stackexchange"] / "math.stackexchange.com", Tally(), seed=0)
    assert [c.conversations for c in again.candidates] == [c.conversations for c in site.candidates]


def test_only_the_top_questions_are_held(sources: dict[str, Path]) -> None:
    tally = Tally()
    site = stackexchange.read_site(sources["stackexchange"] / "math.stackexchange.com", tally, seed=0, keep_top=2)
    assert [c.provenance["question_id"] for c in site.candidates] == [1]  # 1 (90) and 10 (60, no answer) held
    assert tally.removed["stackexchange"]["not among the site's top-scoring questions"] == 4


def test_broken_xml_is_reported_with_its_line_and_the_rows_before_it_kept(sources: dict[str, Path]) -> None:
    tally = Tally()
    site = stackexchange.read_site(sources["stackexchange"] / "physics.stackexchange.com", tally, seed=0)
    assert [c.conversations[0] for c in site.candidates] == ["Why is the sky blue during the day?"]
    (message,) = tally.malformed
    assert message.endswith("physics.stackexchange.com/Posts.xml:5: broken XML (unclosed token)")


def test_a_bad_field_is_reported_with_its_line(sources: dict[str, Path]) -> None:
    tally = Tally()
    site = stackexchange.read_site(sources["stackexchange"] / "cooking.stackexchange.com", tally, seed=0)
    assert [c.provenance["question_id"] for c in site.candidates] == [1]
    (message,) = tally.malformed
    assert message.endswith("cooking.stackexchange.com/Posts.xml:5: post 3: bad field invalid literal for int() "
                            "with base 10: 'many'")


def test_temperature_sampling_flattens_site_sizes() -> None:
    def site(name: str, questions: int) -> stackexchange.Site:
        candidates = [Candidate(conversations=[f"{name} {i}", "a"], source="stackexchange") for i in range(3000)]
        return stackexchange.Site(name, Path(name), True, questions, candidates)

    sites = [site("big", 1_000_000), site("mid", 8_000), site("small", 1_000)]
    drawn = Counter(c.conversations[0].split()[0] for c in stackexchange.temperature_sample(sites, 2000, 3.0, 0))
    weights = {"big": 100.0, "mid": 20.0, "small": 10.0}  # size^(1/3)
    for name, weight in weights.items():
        assert drawn[name] / 2000 == pytest.approx(weight / 130, abs=0.03)
    by_size = Counter(c.conversations[0].split()[0] for c in stackexchange.temperature_sample(sites, 2000, 1.0, 0))
    assert by_size["small"] < 10  # τ = 1 is plain size-proportional: the small site almost vanishes


def test_wikihow_draws_a_category_first_then_an_article(tmp_path: Path) -> None:
    rows = [{"title": f"Bake bread {i}", "text": fixtures.WIKIHOW_TEXT, "category": "Food"} for i in range(300)]
    rows += [{"title": f"Fold a plane {i}", "text": fixtures.WIKIHOW_TEXT, "category": "Hobbies"} for i in range(3)]
    path = tmp_path / "wikihow.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    chosen = wikihow.sample(path, 6, seed=1, tally=Tally())
    categories = Counter(c.provenance["category"] for c in chosen)
    assert categories["Hobbies"] >= 1 and sum(categories.values()) == 6  # 1 % of articles, drawn by category


def test_wikihow_rewrites_and_cleans_and_reports_bad_rows(sources: dict[str, Path]) -> None:
    tally = Tally()
    chosen = wikihow.sample(sources["wikihow"], 4, seed=0, tally=tally)
    by_prompt = {c.conversations[0]: c.conversations[1] for c in chosen}
    assert set(by_prompt) == {"How to Cook an Omelette?", "How to Boil an Egg?", "How to fold a Paper Plane?"}
    answer = by_prompt["How to Cook an Omelette?"]
    assert answer.startswith("Whisk well.\nThe following answer explains each step.")
    assert "This article" not in answer and "http" not in answer and "See the video for the folding step." in answer
    assert tally.removed["wikihow"] == {"shorter than 200 chars after clean-up": 1}
    assert tally.malformed == [f"{sources['wikihow']}:6: an article needs a title and a text"]


def test_reddit_premises_stories_and_questions_from_a_zst_dump(sources: dict[str, Path]) -> None:
    tally = Tally()
    stories, questions = reddit.read_dump([sources["reddit"]], tally)
    (story,) = stories
    assert story.conversations == ["The last lighthouse on Mars", fixtures.STORY.strip()]  # not the reply
    assert story.provenance["comment_id"] == "c1"
    assert [q.conversations for q in questions] == [["What is the best advice you have ever received?"]]
    assert tally.removed["reddit_writingprompts"] == {"not a [WP] premise": 1, "premise score < 50 or NSFW": 1}
    assert tally.removed["reddit_askreddit"] == {"not self-contained (has a body or is not a question)": 1,
                                                 "score < 500 or NSFW": 1}
    assert tally.malformed == [f"{sources['reddit']}:4: bad JSON (Expecting property name enclosed in double quotes)"]


def test_sni_keeps_english_generation_tasks_only(sources: dict[str, Path]) -> None:
    tally = Tally()
    (task,) = sni.sample(sources["sni"], 50, seed=0, tally=tally)
    assert task.provenance["task"] == "task001_summarize_a_passage"
    assert task.conversations[0].startswith("In this task you summarize a passage.\n\nPassage number")
    assert tally.removed["sni"] == {"not a generation task": 1, "not English": 1,
                                    "no instance with an output of >= 40 chars": 1}
    assert len(tally.malformed) == 1 and "task005_broken.json:1: not a task file" in tally.malformed[0]


def test_hand_written_rows_are_validated_line_by_line(sources: dict[str, Path]) -> None:
    tally = Tally()
    rows = authored.read(sources["authored"], tally)
    assert len(rows) == 11
    assert Counter(split for _, split in rows) == {None: 6, "train": 3, "test": 2}
    path = sources["authored"]
    assert tally.malformed == [
        f"{path}:12: message 0: roles must alternate user, assistant, ... starting with user",
        f"{path}:13: turn 1 is empty",
        f"{path}:14: a test row is a prompt alone (one turn)",
        f"{path}:15: bad JSON (Expecting value)",
    ]


def test_duplicates_are_removed_by_prompt_with_test_first() -> None:
    dedup = Deduplicator()

    def row(prompt: str) -> Candidate:
        return Candidate(conversations=[prompt, "answer"], source="authored")

    long = fixtures.LONG_PROMPT
    assert dedup.keep(row("What is the capital of France?")) is None
    assert dedup.keep(row("what is the capital of france")) == "exact duplicate"
    assert dedup.keep(row(f"{long} spring.")) is None
    assert dedup.keep(row(f"{long} autumn.")) == "near duplicate"
    assert dedup.keep(row("What is the capital of Italy?")) is None  # similar, not a near duplicate
    assert dedup.keep(row("Write a poem about the sea at night.")) is None


def run_build(sources: dict[str, Path], out: Path, seed: int = 0) -> dict:
    return build(BuildConfig(out=out, stackexchange=sources["stackexchange"], wikihow=sources["wikihow"],
                             reddit=sources["reddit"], sni=sources["sni"], authored=[sources["authored"]],
                             seed=seed, counts=SMALL))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_writes_the_splits_with_provenance_and_a_report(sources: dict[str, Path], tmp_path: Path) -> None:
    report = run_build(sources, tmp_path / "a")
    train, dev, test = (read_rows(tmp_path / "a" / f"{split}.jsonl") for split in ("train", "dev", "test"))
    assert report["splits"] == {"train": len(train), "dev": len(dev), "test": len(test)}
    assert Counter(r["source"] for r in train) == {
        "stackexchange": 2, "stackexchange_dialogue": 1, "wikihow": 2, "reddit_writingprompts": 1, "sni": 1,
        "authored": 5,
    }
    assert Counter(r["source"] for r in test) == {"authored": 2, "reddit_askreddit": 1}
    assert len(dev) == 2
    groups = Counter(r["provenance"]["group"] for r in train if r["source"] == "stackexchange")
    assert groups == {"stem": 1, "other": 1}  # stem=1 from math+physics, other=5 but cooking has only one
    (dialogue,) = [r for r in train if r["source"] == "stackexchange_dialogue"]
    assert dialogue["conversations"][2:] == ["Does this also work for a 4x4 matrix?",
                                             "Yes, expand along any row; the cost grows fast."]
    for row in train + dev:
        assert len(row["conversations"]) % 2 == 0 and row["provenance"]
    test_prompts = {r["conversations"][0] for r in test}
    assert not test_prompts & {r["conversations"][0] for r in train + dev}
    removed = report["sources"]["authored"]["removed"]
    assert removed == {"exact duplicate (train)": 1, "near duplicate (train)": 1}
    assert report["sources"]["stackexchange"]["malformed"] == 2  # broken physics XML, cooking bad score
    assert {"stem", "other"} <= {site["group"] for site in report["stackexchange_sites"]}
    assert "es.stackoverflow" not in {site["site"] for site in report["stackexchange_sites"]}  # excluded
    text = (tmp_path / "a" / "report.md").read_text()
    # 11 questions read: 9 on math, 1 on cooking (its other row has a bad score), 1 on physics before the break
    assert report["sources"]["stackexchange"]["read"] == 11
    assert "| stackexchange | 11 | first person | 1 | 0 |" in text and "broken XML" in text
    for image in ("lengths.png", "sites.png"):
        assert (tmp_path / "a" / image).read_bytes().startswith(b"\x89PNG")
    candidates = read_rows(tmp_path / "a" / "candidates" / "writing_prompts.jsonl")
    assert candidates[0]["provenance"]["submission_id"] == "wp1" and candidates[0]["score"] == 900


def test_same_seed_same_bytes(sources: dict[str, Path], tmp_path: Path) -> None:
    run_build(sources, tmp_path / "a")
    run_build(sources, tmp_path / "b")
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "report.json", "lengths.png", "sites.png",
                 "candidates/dialogues.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    run_build(sources, tmp_path / "c", seed=1)
    assert (tmp_path / "c" / "train.jsonl").read_bytes() != (tmp_path / "a" / "train.jsonl").read_bytes()


def test_keep_lists_pick_among_the_candidates(sources: dict[str, Path], tmp_path: Path) -> None:
    keep = tmp_path / "keep.txt"
    keep.write_text("# hand-picked\nmissing-id\n")
    config = BuildConfig(out=tmp_path / "out", reddit=sources["reddit"], keep_writing_prompts=keep, counts=SMALL)
    report = build(config)
    assert report["by_source"]["train"] == {}  # the only story was not on the keep-list
    keep.write_text("wp1\n")
    assert build(config)["by_source"]["train"] == {"reddit_writingprompts": 1}


def test_no_multi_turn_leaves_out_dialogues(sources: dict[str, Path], tmp_path: Path) -> None:
    report = build(BuildConfig(out=tmp_path, stackexchange=sources["stackexchange"], multi_turn=False,
                               counts=SMALL))
    assert "stackexchange_dialogue" not in report["by_source"]["train"]


def test_ablation_sets(sources: dict[str, Path], tmp_path: Path) -> None:
    config = BuildConfig(out=tmp_path, stackexchange=sources["stackexchange"], wikihow=sources["wikihow"])
    one, two, three = (read_rows(p) for p in ablation("se-scale", [1, 2, 3], config))
    assert one == two[:1] and two == three[:2]  # each larger set extends the smaller
    (filtered,) = ablation("se-filtered", [50], config)
    (unfiltered,) = ablation("se-unfiltered", [50], config)
    assert len(read_rows(filtered)) == 4 and len(read_rows(unfiltered)) == 7  # the answer filters dropped 3
    (how_to,) = ablation("wikihow", [2], config)
    assert all(r["source"] == "wikihow" for r in read_rows(how_to))
    with pytest.raises(ValueError, match="needs --wikihow"):
        ablation("wikihow", [2], BuildConfig(out=tmp_path, stackexchange=sources["stackexchange"]))


def test_command_line(sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prep", "data", "build", "--out", str(tmp_path), "--sni", str(sources["sni"]),
                 "--count", "sni=1"]) == 0
    assert len(read_rows(tmp_path / "train.jsonl")) == 1
    assert main(["prep", "data", "build", "--out", str(tmp_path), "--count", "bogus=1",
                 "--sni", str(sources["sni"])]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["prep", "data", "build", "--out", str(tmp_path)]) == 2
    assert "no source given" in capsys.readouterr().err


def test_random_module_state_does_not_leak_into_the_build(sources: dict[str, Path], tmp_path: Path) -> None:
    random.seed(123)
    run_build(sources, tmp_path / "a")
    random.seed(456)
    run_build(sources, tmp_path / "b")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()
