"""Stack Exchange data dump: one directory per site holding `Posts.xml` (and `Comments.xml` for dialogues).

Posts are read with expat in 1 MiB chunks, so memory does not grow with the file: per site only the
`keep_top` highest-scoring questions seen so far are held, each with its best answer so far (answers follow
their question in the dump, which is ordered by post id). After the pass, the chosen answer goes through the
paper's filters: score >= 10, the style rules (style.py: no first person, nothing that leans on the site,
other users or a removed link; small cuts counted as rewrites), then 1,200-4,096 characters of Markdown. The
prompt is the title or the question's body, at random.
"""

import heapq
import random
import tomllib
import xml.parsers.expat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from model_prep.curation import style
from model_prep.curation.records import Candidate, Tally, progress_reader
from model_prep.curation.text import convert, html_to_markdown

SOURCE = "stackexchange"
LICENCE = "CC BY-SA 4.0 (Stack Exchange data dump)"
CHUNK = 1 << 20
SITES_FILE = Path(__file__).with_name("stackexchange_sites.toml")
MIN_ANSWER_SCORE = 10
DIALOGUE_SOURCE = "stackexchange_dialogue"
MIN_THREAD_SCORE = 2  # an answer whose comment chain may become a dialogue: a few votes, two comments or more
MIN_THREAD_COMMENTS = 2
MIN_CHARS, MAX_CHARS = 1200, 4096
LENGTH_RULE = f"length {MIN_CHARS}-{MAX_CHARS} chars"


def iter_rows(path: Path, tally: Tally, source: str = SOURCE) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, attributes) of every <row> element, streamed, with a progress bar in bytes. Broken XML is reported
    with its line; the rows before it are kept and the rest of that file is skipped (expat cannot resynchronise)."""
    rows: list[tuple[int, dict[str, str]]] = []
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True

    def start(name: str, attributes: dict[str, str]) -> None:
        if name == "row":
            rows.append((parser.CurrentLineNumber, attributes))

    parser.StartElementHandler = start
    with progress_reader(path) as stream:
        try:
            while chunk := stream.read(CHUNK):
                parser.Parse(chunk, False)
                yield from rows
                rows.clear()
            parser.Parse(b"", True)
        except xml.parsers.expat.ExpatError as error:
            yield from rows
            tally.bad_input(source, path, error.lineno, f"broken XML ({xml.parsers.expat.ErrorString(error.code)})")
            return
    yield from rows


def site_name(directory: Path) -> str:
    """`math.stackexchange.com` -> `math`, `stackoverflow.com` -> `stackoverflow`."""
    return directory.name.removesuffix(".com").removesuffix(".stackexchange").removesuffix(".net")


SITE_LISTS = tomllib.loads(SITES_FILE.read_text())
STEM_SITES = frozenset(SITE_LISTS["stem"])
SITES_EXCLUDED = frozenset(SITE_LISTS["exclude"])


@dataclass(order=True)
class Question:
    score: int
    post_id: int
    title: str = field(compare=False)
    body: str = field(compare=False)
    accepted_id: str = field(compare=False)
    owner: str = field(compare=False)
    answer: dict[str, str] | None = field(default=None, compare=False)
    threads: list[dict[str, str]] = field(default_factory=list, compare=False)  # answers with a comment chain


@dataclass
class Thread:
    """An answer with comments under it, and its question: a dialogue candidate (dialogues.py)."""

    question_id: int
    question_score: int
    prompt: str
    asker: str
    answer_id: int
    answer_score: int
    answer_html: str
    answerer: str


def self_contained(row: dict[str, str]) -> str | None:
    """Why a question cannot stand alone as a prompt, or None. Closed questions, questions built around an
    image, and titles too short to say what is asked are dropped."""
    if row.get("ClosedDate"):
        return "question closed"
    if "<img" in row.get("Body", ""):
        return "question depends on an image"
    if len(row.get("Title", "").split()) < 4:
        return "title too short to stand alone"
    return None


def better_answer(row: dict[str, str], current: dict[str, str] | None, accepted_id: str) -> bool:
    """The accepted answer wins when it has the score; otherwise the highest-scoring one."""
    if current is None:
        return True
    rank = (row["Id"] == accepted_id, int(row.get("Score", 0)))
    return rank > (current["Id"] == accepted_id, int(current.get("Score", 0)))


@dataclass
class Site:
    name: str
    directory: Path
    stem: bool
    questions: int  # every question in the dump: the site's size for temperature sampling
    candidates: list[Candidate]
    threads: list[Thread] = field(default_factory=list)


def read_site(directory: Path, tally: Tally, seed: int, keep_top: int = 500, filtered: bool = True) -> Site:
    """The site's candidates, best question score first. `filtered=False` skips the answer filters (the
    paper's unfiltered ablation) but still takes the top answer with score >= 10."""
    name = site_name(directory)
    heap: list[Question] = []
    by_id: dict[str, Question] = {}
    questions = 0
    for line, row in iter_rows(directory / "Posts.xml", tally):
        try:
            kind, score = row.get("PostTypeId"), int(row.get("Score", "0"))
            if kind == "1":
                questions += 1
                tally.seen[SOURCE] += 1
                reason = self_contained(row)
                if reason:
                    tally.remove(SOURCE, reason)
                    continue
                question = Question(score, int(row["Id"]), row["Title"], row.get("Body", ""),
                                    row.get("AcceptedAnswerId", ""), row.get("OwnerUserId", ""))
                if len(heap) < keep_top:
                    heapq.heappush(heap, question)
                elif question > heap[0]:
                    by_id.pop(str(heapq.heapreplace(heap, question).post_id), None)
                    tally.remove(SOURCE, "not among the site's top-scoring questions")
                else:
                    tally.remove(SOURCE, "not among the site's top-scoring questions")
                    continue
                by_id[row["Id"]] = question
            elif kind == "2" and (parent := by_id.get(row.get("ParentId", ""))) is not None:
                question = parent
                answer = {key: row.get(key, "") for key in ("Id", "Score", "Body", "OwnerUserId")}
                if score >= MIN_ANSWER_SCORE and better_answer(row, question.answer, question.accepted_id):
                    question.answer = answer
                if thread_eligible(row, question, tally):
                    question.threads.append(answer)
        except (KeyError, ValueError) as error:
            tally.bad_input(SOURCE, directory / "Posts.xml", line, f"post {row.get('Id', '?')}: bad field {error}")
    candidates = []
    for question in sorted(heap, reverse=True):
        if question.answer is None:
            tally.remove(SOURCE, f"no answer with score >= {MIN_ANSWER_SCORE}")
            continue
        text = styled(question.answer["Body"], tally, SOURCE) if filtered else html_to_markdown(
            question.answer["Body"])
        if text is None:
            continue
        if filtered and not MIN_CHARS <= len(text) <= MAX_CHARS:
            tally.remove(SOURCE, LENGTH_RULE)
            continue
        use_title, prompt = question_prompt(question, seed, name)
        candidates.append(Candidate(
            conversations=[prompt, text], source=SOURCE,
            score=question.score,
            provenance={"site": name, "question_id": question.post_id, "answer_id": int(question.answer["Id"]),
                        "answer_score": int(question.answer["Score"]), "prompt": "title" if use_title else "body",
                        "asker": question.owner, "answerer": question.answer["OwnerUserId"],
                        "licence": LICENCE, "filters": [*style.RULES, LENGTH_RULE] if filtered else []},
        ))
    threads = [Thread(question.post_id, question.score, question_prompt(question, seed, name)[1], question.owner,
                      int(answer["Id"]), int(answer["Score"] or 0), answer["Body"], answer["OwnerUserId"])
               for question in sorted(heap, reverse=True) for answer in question.threads]
    return Site(name, directory, name in STEM_SITES, questions, candidates, threads)


def question_prompt(question: Question, seed: int, site: str) -> tuple[bool, str]:
    """(title chosen, prompt): the title or the question's body, drawn per post from the seed."""
    description = html_to_markdown(question.body)
    use_title = random.Random(f"{seed}:{site}:{question.post_id}").random() < 0.5 or not description
    return use_title, question.title if use_title else description


def thread_eligible(row: dict[str, str], question: Question, tally: Tally) -> bool:
    """Whether an answer's comments may hold a dialogue: it has votes, comments (when the dump counts them: older
    layouts do not) and both people are known (a deleted user has no id to follow)."""
    tally.seen[DIALOGUE_SOURCE] += 1
    comments = row.get("CommentCount")
    if comments is not None and int(comments) < MIN_THREAD_COMMENTS:
        tally.remove(DIALOGUE_SOURCE, f"answer has fewer than {MIN_THREAD_COMMENTS} comments")
    elif int(row.get("Score", "0")) < MIN_THREAD_SCORE:
        tally.remove(DIALOGUE_SOURCE, f"answer score < {MIN_THREAD_SCORE}")
    elif not question.owner or not row.get("OwnerUserId"):
        tally.remove(DIALOGUE_SOURCE, "asker or answerer deleted (no user id)")
    elif question.owner == row.get("OwnerUserId"):
        tally.remove(DIALOGUE_SOURCE, "the asker answered their own question")
    else:
        return True
    return False


def styled(html: str, tally: Tally, source: str) -> str | None:
    """The answer as Markdown after the style rules, or None when one drops it (counted, with an example)."""
    review = style.review(convert(html))
    for rewrite in review.rewrites:
        tally.rewrite(source, rewrite.rule, rewrite.context)
    if review.failed is not None:
        tally.remove(source, review.failed.rule, review.failed.context)
        return None
    return review.text


def temperature_sample(sites: list[Site], count: int, temperature: float, seed: int) -> list[Candidate]:
    """`count` candidates: each draw picks a site with p ∝ size^(1/τ), then its best unused candidate; a site
    with none left leaves the draw."""
    rng = random.Random(seed)
    queues = {site.name: list(site.candidates) for site in sites if site.candidates}
    weights = {site.name: site.questions ** (1 / temperature) for site in sites}
    chosen: list[Candidate] = []
    while len(chosen) < count and queues:
        names = sorted(queues)
        name = rng.choices(names, [weights[n] for n in names])[0]
        chosen.append(queues[name].pop(0))
        if not queues[name]:
            del queues[name]
    return chosen


def survey(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The site directories to read under a dump root (or the root itself when it is one site), and every other
    entry with why it is skipped, in a fixed order."""
    if (root / "Posts.xml").is_file():
        return [root], []
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (a Stack Exchange dump root, one directory per site)")
    sites, skipped = [], []
    for entry in sorted(root.iterdir()):
        name = site_name(entry)
        if entry.suffix == ".7z":
            skipped.append((entry, "a 7z archive: extract it first (7z x FILE -oDIR), then point here at the DIR"))
        elif not entry.is_dir():
            skipped.append((entry, "not a site directory"))
        elif "meta" in name.split("."):
            skipped.append((entry, "a meta site (about the site itself, not its subject)"))
        elif name in SITES_EXCLUDED:
            skipped.append((entry, f"excluded ({SITES_FILE.name}: exclude)"))
        elif not (entry / "Posts.xml").is_file():
            found = ", ".join(sorted(p.name for p in entry.iterdir())[:6]) or "nothing"
            skipped.append((entry, f"no Posts.xml (found: {found})"))
        else:
            sites.append(entry)
    return sites, skipped
