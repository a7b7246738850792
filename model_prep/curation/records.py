"""What every source reader produces (candidates in LIMA's row format with provenance) and the tally of what
each rule removed and which input lines were malformed, for the build report."""

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

log = logging.getLogger(__name__)
MAX_MALFORMED_LISTED = 200
EXAMPLES_PER_RULE = 5


class Candidate(BaseModel):
    """One example: `conversations` alternates user, assistant, ... (a test prompt is the user turn alone)."""

    conversations: list[str]
    source: str
    provenance: dict[str, Any] = Field(default_factory=dict)  # site, post ids, licence, filters passed
    score: float = 0.0  # the source's own ranking (votes), higher first
    asked_as: str = ""  # which of the build's counts it fills (not written: the report counts shortfalls by it)

    def row(self) -> dict[str, Any]:
        return {"conversations": self.conversations, "source": self.source, "provenance": self.provenance}


class Tally:
    """Per source: how many records were read, how many each rule removed or rewrote (with a few examples, the
    matched words marked), how many were kept; malformed input with its file and line."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet  # a second pass over the same files: their problems were reported by the first
        self.seen: Counter[str] = Counter()
        self.kept: Counter[str] = Counter()
        self.removed: dict[str, Counter[str]] = defaultdict(Counter)
        self.rewritten: dict[str, Counter[str]] = defaultdict(Counter)
        self.examples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.malformed: list[str] = []
        self.malformed_count: Counter[str] = Counter()
        self.inputs: list[dict[str, Any]] = []  # every file or directory met: read (rows), skipped or unreadable

    def input(self, source: str, path: object, status: str, detail: str = "", rows: int | None = None) -> None:
        """Account for one input: `read` (with the rows it gave), `skipped` (on purpose) or `unreadable`."""
        if self.quiet:
            return
        self.inputs.append({"source": source, "path": str(path), "status": status, "detail": detail, "rows": rows})
        if status == "unreadable":
            log.warning("%s: %s (skipped)", path, detail)

    def remove(self, source: str, rule: str, example: str = "") -> None:
        self.removed[source][rule] += 1
        self._example(source, f"removed: {rule}", example)

    def rewrite(self, source: str, rule: str, example: str) -> None:
        self.rewritten[source][rule] += 1
        self._example(source, f"rewritten: {rule}", example)

    def _example(self, source: str, key: str, example: str) -> None:
        if example and len(shown := self.examples[source][key]) < EXAMPLES_PER_RULE:
            shown.append(example)

    def bad_input(self, source: str, path: object, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        self.malformed_count[source] += 1
        if len(self.malformed) < MAX_MALFORMED_LISTED:
            self.malformed.append(f"{where}: {problem}")
        if not self.quiet:
            log.warning("%s: %s (skipped)", where, problem)

    def summary(self) -> dict[str, Any]:
        sources = sorted(set(self.seen) | set(self.kept) | set(self.removed) | set(self.malformed_count))
        return {
            source: {"read": self.seen[source], "removed": dict(sorted(self.removed[source].items())),
                     "rewritten": dict(sorted(self.rewritten[source].items())),
                     "examples": {key: list(shown) for key, shown in sorted(self.examples[source].items())},
                     "kept": self.kept[source], "malformed": self.malformed_count[source]}
            for source in sources
        } | {"malformed_examples": self.malformed}


def json_lines(lines: Iterable[str], path: object, tally: Tally, source: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank JSON line; a line that does not parse is reported and skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            tally.bad_input(source, path, number, f"bad JSON ({error.msg})")


def progress_reader(path: Path) -> Any:
    """The file opened for binary reading, its reads counted on a progress bar (several GB for a large site)."""
    return tqdm.wrapattr(path.open("rb"), "read", total=path.stat().st_size, desc=f"{path.parent.name}/{path.name}",
                         leave=False)
