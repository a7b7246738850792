"""`lima prep data build`: the paper's train (1,000 + dialogues), dev (50) and test (300) sets from raw public
dumps, and the ablation sets. Every count defaults to the paper's; a source that is not given, or that has
fewer usable candidates than asked for, is reported as a shortfall rather than failing the build.

Reproducible: every random choice is drawn from `seed` (per source, per site, per post), inputs are read in
sorted order, and rows are written with sorted keys, so the same inputs and seed give the same bytes.
"""

import json
import logging
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from model_prep.curation import authored, dialogues, reddit, sni, stackexchange, wikihow
from model_prep.curation.dedup import Deduplicator
from model_prep.curation.records import Candidate, Tally
from model_prep.curation.reddit import Thresholds as RedditThresholds
from model_prep.curation.report import write_report

log = logging.getLogger(__name__)
SPLITS = ("test", "dev", "train")  # dedup priority: a train row repeating a test prompt goes


class Counts(BaseModel):
    """The paper's Table 1."""

    model_config = ConfigDict(extra="forbid")

    stem: int = 200
    other: int = 200
    wikihow: int = 200
    writing_prompts: int = 150
    sni: int = 50
    authored_train: int = 200
    dev: int = 50
    authored_test: int = 230
    ask_reddit: int = 70
    dialogues: int = 20  # from Stack Exchange comment chains (the other 10 of 30 are hand-written)


class BuildConfig(BaseModel):
    out: Path
    stackexchange: Path | None = Field(None, description="data dump root: one directory per site with Posts.xml")
    wikihow: Path | None = Field(None, description="wikiHow CSV/JSON(L) dump")
    reddit: Path | None = Field(None, description="Pushshift .zst/.jsonl file or directory")
    sni: Path | None = Field(None, description="Super-NaturalInstructions tasks directory")
    authored: list[Path] = Field(default_factory=list, description="hand-written JSONL (optional split field)")
    keep_writing_prompts: Path | None = None  # keep-lists: one id per line, picks among the ranked candidates
    keep_ask_reddit: Path | None = None
    keep_dialogues: Path | None = None
    multi_turn: bool = True
    seed: int = 0
    temperature: float = Field(3.0, gt=0)
    per_site_top: int = Field(500, ge=1, description="top-scoring questions considered per site")
    dialogue_min_exchanges: int = Field(2, ge=2, description="exchanges a dialogue needs, the question's included")
    near_duplicate_threshold: float = Field(0.8, gt=0, le=1)
    reddit_thresholds: RedditThresholds = RedditThresholds()
    counts: Counts = Counts()

    @model_validator(mode="after")
    def some_source(self) -> "BuildConfig":
        if not (self.stackexchange or self.wikihow or self.reddit or self.sni or self.authored):
            raise ValueError("no source given: pass at least one of stackexchange, wikihow, reddit, sni, authored")
        return self

    @model_validator(mode="after")
    def keep_lists_exist(self) -> "BuildConfig":
        """A person's hand choice must not be ignored because its file name was mistyped."""
        for name in ("keep_writing_prompts", "keep_ask_reddit", "keep_dialogues"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"--{name.replace('_', '-')} {path}: no such file")
        return self


def read_keep_list(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def pick(candidates: list[Candidate], count: int, keep: list[str] | None, id_field: str) -> list[Candidate]:
    """The keep-list's candidates in its order (the paper's hand choice), else the `count` best ranked."""
    if keep is None:
        return candidates[:count]
    by_id = {str(c.provenance[id_field]): c for c in candidates}
    missing = [i for i in keep if i not in by_id]
    if missing:
        log.warning("keep-list ids not among the candidates: %s", ", ".join(missing[:10]))
    return [by_id[i] for i in keep if i in by_id]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def write_candidates(out: Path, name: str, ranked: list[Candidate]) -> None:
    """The ranked candidates a person picks from (the paper chose these by hand) into a keep-list."""
    write_jsonl(out / "candidates" / f"{name}.jsonl", [c.row() | {"score": c.score} for c in ranked])


def read_sites(root: Path, tally: Tally, config: BuildConfig, filtered: bool = True,
               keep_top: int | None = None) -> list[stackexchange.Site]:
    directories, skipped = stackexchange.survey(root)
    for path, reason in skipped:
        tally.input(stackexchange.SOURCE, path, "skipped", reason)
    sites = []
    for directory in tqdm(directories, desc="stack exchange sites", unit="site"):
        site = stackexchange.read_site(directory, tally, config.seed, keep_top or config.per_site_top, filtered)
        tally.input(stackexchange.SOURCE, directory / "Posts.xml", "read",
                    f"{site.questions} questions, {len(site.candidates)} answers pass the filters", site.questions)
        sites.append(site)
    if not sites:
        tally.input(stackexchange.SOURCE, root, "unreadable", "no site directory with a Posts.xml")
    return sites


def asked(name: str, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates, marked as filling the build's count `name` (for the shortfall report)."""
    for candidate in candidates:
        candidate.asked_as = name
    return candidates


def problems(report: dict[str, Any]) -> list[str]:
    """What a person should know before training on the build: sets short of their count, unreadable inputs,
    malformed records. `--strict` fails on any of them."""
    found = [f"{name}: {report['written'][name]} of {count} written (report.md says what each rule removed)"
             for name, count in report["asked_for"].items() if report["written"][name] < count]
    found += [f"{i['path']}: {i['detail']}" for i in report["inputs"] if i["status"] == "unreadable"]
    found += [f"{i['path']}: read, but no records in it" for i in report["inputs"]
              if i["status"] == "read" and i["rows"] == 0]
    found += [f"{source}: {entry['malformed']} malformed records skipped (first: "
              f"{next((m for m in report['sources']['malformed_examples']), '?')})"
              for source, entry in report["sources"].items()
              if source != "malformed_examples" and entry["malformed"]]
    return found


def build(config: BuildConfig) -> dict[str, Any]:
    """Write train/dev/test JSONL, the candidate files and the report into `config.out`; return the report."""
    tally = Tally()
    counts = config.counts
    chosen: dict[str, list[Candidate]] = {split: [] for split in SPLITS}
    wanted: dict[str, int] = {}
    sites: list[stackexchange.Site] = []

    if config.stackexchange:
        sites = read_sites(config.stackexchange, tally, config)
        for group, count in (("stem", counts.stem), ("other", counts.other)):
            members = [site for site in sites if site.stem == (group == "stem")]
            rows = stackexchange.temperature_sample(members, count, config.temperature, config.seed)
            for row in rows:
                row.provenance["group"] = group
            chosen["train"] += asked(f"stackexchange {group}", rows)
            wanted[f"stackexchange {group}"] = count
        if config.multi_turn:
            found = []
            for site in tqdm(sites, desc="comment chains", unit="site"):
                used = {c.provenance["question_id"] for c in chosen["train"] if c.provenance.get("site") == site.name}
                found += dialogues.chains(site, used, tally, config.dialogue_min_exchanges)
            found.sort(key=lambda c: (-c.score, c.provenance["answer_id"]))
            write_candidates(config.out, "dialogues", found)
            chosen["train"] += asked("stackexchange dialogues",
                                     pick(found, counts.dialogues, read_keep_list(config.keep_dialogues), "answer_id"))
            wanted["stackexchange dialogues"] = counts.dialogues

    if config.wikihow:
        chosen["train"] += asked("wikihow", wikihow.sample(config.wikihow, counts.wikihow, config.seed, tally))
        wanted["wikihow"] = counts.wikihow

    if config.reddit:
        files = reddit.dump_files(config.reddit)
        stories, questions = reddit.read_dump(files, tally, config.reddit_thresholds)
        write_candidates(config.out, "writing_prompts", stories)
        write_candidates(config.out, "ask_reddit", questions)
        chosen["train"] += asked("reddit writing prompts", pick(
            stories, counts.writing_prompts, read_keep_list(config.keep_writing_prompts), "submission_id"))
        chosen["test"] += asked("reddit ask reddit", pick(
            questions, counts.ask_reddit, read_keep_list(config.keep_ask_reddit), "submission_id"))
        wanted |= {"reddit writing prompts": counts.writing_prompts, "reddit ask reddit": counts.ask_reddit}

    if config.sni:
        chosen["train"] += asked("sni", sni.sample(config.sni, counts.sni, config.seed, tally))
        wanted["sni"] = counts.sni

    if config.authored:
        authored_rows = [row for path in config.authored for row in authored.read(path, tally)]
        unassigned = [c for c, split in authored_rows if split is None]
        random.Random(f"{config.seed}:authored").shuffle(unassigned)
        chosen["dev"] += asked("dev", [c for c, split in authored_rows if split == "dev"] + unassigned[:counts.dev])
        chosen["train"] += asked("authored train", ([c for c, split in authored_rows if split == "train"]
                                                     + unassigned[counts.dev:])[:counts.authored_train])
        chosen["test"] += asked("authored test",
                                [c for c, split in authored_rows if split == "test"][:counts.authored_test])
        wanted |= {"authored train": counts.authored_train, "dev": counts.dev, "authored test": counts.authored_test}

    if not config.multi_turn:
        chosen["train"] = [c for c in chosen["train"] if len(c.conversations) <= 2]

    kept = deduplicated(chosen, tally, config.near_duplicate_threshold)
    random.Random(f"{config.seed}:order").shuffle(kept["train"])
    for split in SPLITS:
        for candidate in kept[split]:
            tally.kept[candidate.source] += 1
        write_jsonl(config.out / f"{split}.jsonl", [c.row() for c in kept[split]])
    return write_report(config.out, tally, kept, wanted, sites, config.temperature)


def deduplicated(chosen: dict[str, list[Candidate]], tally: Tally, threshold: float) -> dict[str, list[Candidate]]:
    dedup = Deduplicator(threshold)
    kept: dict[str, list[Candidate]] = {}
    for split in SPLITS:
        kept[split] = []
        for candidate in chosen[split]:
            reason = dedup.keep(candidate)
            if reason:
                tally.remove(candidate.source, f"{reason} ({split})")
            else:
                kept[split].append(candidate)
    return kept


ABLATIONS = ("se-filtered", "se-unfiltered", "wikihow", "se-scale")


def ablation(kind: str, sizes: list[int], config: BuildConfig) -> list[Path]:
    """The paper's data ablations (7B): 2,000 filtered vs unfiltered Stack Exchange, 2,000 wikiHow, and filtered
    Stack Exchange sets of 2K-32K (each larger set extends the smaller ones: the draws are one sequence)."""
    tally = Tally()
    largest = max(sizes)
    if kind == "wikihow":
        if not config.wikihow:
            raise ValueError("the wikihow ablation needs --wikihow")
        rows = wikihow.sample(config.wikihow, largest, config.seed, tally)
    else:
        if not config.stackexchange:
            raise ValueError(f"the {kind} ablation needs --stackexchange")
        sites = read_sites(config.stackexchange, tally, config, filtered=kind != "se-unfiltered",
                           keep_top=max(config.per_site_top, largest))
        rows = stackexchange.temperature_sample(sites, largest, config.temperature, config.seed)
    written = []
    for size in sorted(sizes):
        if len(rows) < size:
            log.warning("%s: only %d examples for a set of %d", kind, len(rows), size)
        path = config.out / f"{kind}-{size}.jsonl"
        write_jsonl(path, [c.row() for c in rows[:size]])
        written.append(path)
    (config.out / f"{kind}-report.json").write_text(json.dumps(tally.summary(), indent=1, sort_keys=True))
    return written
