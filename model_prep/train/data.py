"""Training rows in the published LIMA format: {"conversations": [user, assistant, user, ...], "source": ...}.

Local JSONL (read here, so a bad line is reported with its number) or Parquet and `datasets` ids (read by the
`datasets` library, when installed and reachable). Each row becomes a list of chat messages.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_prep.chat_format import Message

SAMPLE = Path(__file__).parents[1] / "sample" / "lima_sample.jsonl"


class DataError(ValueError):
    pass


@dataclass
class Conversation:
    messages: list[Message]
    source: str

    @property
    def multi_turn(self) -> bool:
        return len(self.messages) > 2


def conversation_of(row: dict[str, Any], where: str) -> Conversation:
    turns = row.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2:
        raise DataError(f"{where}: 'conversations' must be a list of at least two utterances")
    if len(turns) % 2:
        raise DataError(f"{where}: {len(turns)} utterances; a training row ends with the assistant's answer")
    for index, turn in enumerate(turns):
        if not isinstance(turn, str) or not turn.strip():
            raise DataError(f"{where}: utterance {index} is empty or not text")
    roles = ("user", "assistant")
    return Conversation(
        [Message(role=roles[index % 2], content=turn) for index, turn in enumerate(turns)],
        str(row.get("source", "unknown")),
    )


def read_rows(source: str | Path) -> list[dict[str, Any]]:
    path = Path(source)
    if path.suffix in (".jsonl", ".json") and path.exists():
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        return rows
    try:
        import datasets
    except ImportError as exc:
        raise DataError(f"{source}: not a local .jsonl file, and reading Parquet or a hub id needs `datasets`") from exc
    if path.suffix == ".parquet":
        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    return list(datasets.load_dataset(str(source), split="train"))


def load_conversations(source: str | Path = SAMPLE, multi_turn: bool = True) -> list[Conversation]:
    """Every row as a conversation; multi_turn=False leaves out the dialogues (the paper's zero-shot model)."""
    conversations = [conversation_of(row, f"{source} row {index}") for index, row in enumerate(read_rows(source))]
    return [c for c in conversations if multi_turn or not c.multi_turn]
