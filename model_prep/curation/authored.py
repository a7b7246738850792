"""Hand-written examples (the paper's authors' groups A and B): JSONL passed through with validation.

A row is LIMA's `{"conversations": [user, assistant, ...]}` or `{"messages": [{"role", "content"}, ...]}`,
with an optional `"split"` of train, dev or test. Train and dev rows end with an assistant turn; test rows are
a prompt alone. Roles must alternate starting with the user, no turn may be empty or over MAX_TURN_CHARS.
"""

from pathlib import Path

from model_prep.curation.records import Candidate, Tally, json_lines

SOURCE = "authored"
MAX_TURN_CHARS = 20_000
SPLITS = ("train", "dev", "test")


def turns_of(row: dict) -> list[str]:
    if "conversations" in row:
        turns = row["conversations"]
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise ValueError("conversations must be a list of strings")
        return turns
    messages = row.get("messages")
    if not isinstance(messages, list):
        raise ValueError("a row needs conversations or messages")
    expected = ("user", "assistant")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") != expected[index % 2]:
            raise ValueError(f"message {index}: roles must alternate user, assistant, ... starting with user")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"message {index}: content must be a string")
    return [m["content"] for m in messages]


def validated(row: object) -> tuple[list[str], str | None]:
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    turns = turns_of(row)
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    if not turns:
        raise ValueError("no turns")
    for index, turn in enumerate(turns):
        if not turn.strip():
            raise ValueError(f"turn {index} is empty")
        if len(turn) > MAX_TURN_CHARS:
            raise ValueError(f"turn {index} is longer than {MAX_TURN_CHARS} characters")
    if split == "test" and len(turns) != 1:
        raise ValueError("a test row is a prompt alone (one turn)")
    if split != "test" and len(turns) % 2:
        raise ValueError("a train or dev row must end with an assistant turn")
    return turns, split


def read(path: Path, tally: Tally) -> list[tuple[Candidate, str | None]]:
    """The valid rows with their requested split (None: the build decides)."""
    rows = []
    with path.open(encoding="utf-8") as stream:
        for number, raw in json_lines(stream, path, tally, SOURCE):
            tally.seen[SOURCE] += 1
            try:
                turns, split = validated(raw)
            except ValueError as error:
                tally.bad_input(SOURCE, path, number, str(error))
                continue
            provenance = {"file": path.name, "line": number, "licence": raw.get("licence", "as supplied")}
            if raw.get("source"):
                provenance["original_source"] = raw["source"]
            rows.append((Candidate(conversations=turns, source=SOURCE, provenance=provenance), split))
    return rows
