"""Training rows in the formats people have them in, each turned into one list of chat messages.

- `lima`: the published LIMA release, `{"conversations": [user, assistant, user, ...], "source": ...}`.
- `openai`: OpenAI's chat fine-tuning rows, `{"messages": [{"role": "system|user|assistant", "content": ...}]}`.
- `sharegpt`: `{"conversations": [{"from": "system|human|gpt", "value": ...}], "system": ...}`.
- `alpaca`: `{"instruction", "input", "output", "history": [[user, assistant], ...], "system"}`; LLaMA-Factory's
  conversion of the LIMA train set is this, one JSON array whose `history` holds a dialogue's earlier turns.

Each as JSON lines or one JSON array, read here so that a bad record is named by its line (JSON lines) or its
number (an array); Parquet files and `datasets` ids are read by the `datasets` library. The format is found from
the first record, or named (`--data-format`); every record must then be in it. A system message, where a row
has one, comes first and reaches the chat template like any other message, as it does when serving.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from model_prep.chat_format import Message

SAMPLE = Path(__file__).parents[1] / "sample" / "lima_sample.jsonl"
DataFormat = Literal["auto", "lima", "openai", "sharegpt", "alpaca"]
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")
# What each format expects, for the error that names a record in none of them.
EXPECTED = {
    "lima": '{"conversations": ["user", "assistant", ...]}',
    "openai": '{"messages": [{"role": "system|user|assistant", "content": "..."}, ...]}',
    "sharegpt": '{"conversations": [{"from": "system|human|gpt", "value": "..."}, ...]}',
    "alpaca": '{"instruction": "...", "input": "...", "output": "...", "history": [["user", "assistant"], ...]}',
}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant"}
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class DataError(ValueError):
    """A training file that cannot be used, worded for the person who made it: where, and what was expected."""


@dataclass
class Conversation:
    messages: list[Message]
    source: str

    @property
    def multi_turn(self) -> bool:
        return sum(message["role"] == "assistant" for message in self.messages) > 1


def _text(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {what} is empty or not text")
    return value


def from_lima(row: dict[str, Any], where: str) -> list[Message]:
    turns = row["conversations"]
    if not isinstance(turns, list):
        raise DataError(f"{where}: 'conversations' must be a list of utterances")
    roles = ("user", "assistant")
    return [Message(role=roles[index % 2], content=_text(turn, where, f"utterance {index}"))
            for index, turn in enumerate(turns)]


def from_openai(row: dict[str, Any], where: str) -> list[Message]:
    messages = row["messages"]
    if not isinstance(messages, list):
        raise DataError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    converted = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in OPENAI_ROLES:
            role = message.get("role") if isinstance(message, dict) else message
            raise DataError(f"{where}: message {index} has role {role!r}; training takes "
                            f"{', '.join(OPENAI_ROLES)}")
        content = message.get("content")
        if isinstance(content, list):  # content parts: the text ones, in order
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict)
                              and part.get("type") == "text")
        converted.append(Message(role=OPENAI_ROLES[message["role"]],
                                 content=_text(content, where, f"message {index}'s content")))
    return converted


def from_sharegpt(row: dict[str, Any], where: str) -> list[Message]:
    converted = [Message(role="system", content=_text(row["system"], where, "'system'"))] if row.get("system") else []
    for index, turn in enumerate(row["conversations"]):
        speaker = turn.get("from", turn.get("role")) if isinstance(turn, dict) else None
        if speaker not in SHAREGPT_ROLES:
            raise DataError(f"{where}: turn {index} is from {speaker!r}; training takes "
                            f"{', '.join(SHAREGPT_ROLES)}")
        value = turn.get("value", turn.get("content"))
        converted.append(Message(role=SHAREGPT_ROLES[speaker], content=_text(value, where, f"turn {index}'s value")))
    return converted


def from_alpaca(row: dict[str, Any], where: str) -> list[Message]:
    converted = [Message(role="system", content=_text(row["system"], where, "'system'"))] if row.get("system") else []
    history = row.get("history") or []
    if not isinstance(history, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in history):
        raise DataError(f"{where}: 'history' must be a list of [user, assistant] pairs")
    for index, (question, answer) in enumerate(history):
        converted += [Message(role="user", content=_text(question, where, f"history {index}'s user turn")),
                      Message(role="assistant", content=_text(answer, where, f"history {index}'s answer"))]
    instruction = _text(row["instruction"], where, "'instruction'")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise DataError(f"{where}: 'input' is not text")
    prompt = f"{instruction}\n{extra}" if extra.strip() else instruction
    return [*converted, Message(role="user", content=prompt),
            Message(role="assistant", content=_text(row["output"], where, "'output'"))]


READERS: dict[str, Callable[[dict[str, Any], str], list[Message]]] = {
    "lima": from_lima, "openai": from_openai, "sharegpt": from_sharegpt, "alpaca": from_alpaca}


def detect(row: object) -> str | None:
    """The format a record is in, by the fields it has; None when it is in none of them."""
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list):
        return "openai"
    turns = row.get("conversations")
    if isinstance(turns, list) and turns:
        return "lima" if isinstance(turns[0], str) else "sharegpt" if isinstance(turns[0], dict) else None
    if "instruction" in row and "output" in row:
        return "alpaca"
    return None


def in_no_format(where: str) -> DataError:
    formats = "; ".join(f"{name} {shape}" for name, shape in EXPECTED.items())
    return DataError(f"{where}: a record in none of the training formats; expected one of: {formats}")


def checked(messages: list[Message], where: str) -> list[Message]:
    """An optional system message, then user and assistant in turn, ending with the assistant's answer."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if len(body) < 2:
        raise DataError(f"{where}: a training row needs a user message and the assistant's answer")
    for index, message in enumerate(body):
        expected = ("user", "assistant")[index % 2]
        if message["role"] != expected:
            raise DataError(f"{where}: message {index + len(messages) - len(body)} is the {message['role']}'s; "
                            f"expected the {expected}'s (after an optional system message, user and assistant take "
                            "turns)")
    if body[-1]["role"] != "assistant":
        raise DataError(f"{where}: {len(body)} turns; a training row ends with the assistant's answer")
    return messages


def conversation_of(row: object, where: str, data_format: str) -> Conversation:
    found = detect(row)
    if found is None or data_format not in ("auto", found):
        if data_format == "auto" or found is None:
            raise in_no_format(where)
        raise DataError(f"{where}: a {found} record in a {data_format} file; {data_format} expects "
                        f"{EXPECTED[data_format]}")
    assert isinstance(row, dict)  # detect() found a format
    return Conversation(checked(READERS[found](row, where), where), str(row.get("source", "unknown")))


def local_records(path: Path) -> Iterator[tuple[str, object]]:
    """(where, record) of a JSON array or a JSON-lines file, `where` naming the record's line or number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg})") from exc
        yield from ((f"{path} record {number}", record) for number, record in enumerate(records, 1))
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not JSON ({exc.msg}); expected one JSON record per line or one "
                                "JSON array of records") from exc


def records(source: str | Path) -> Iterator[tuple[str, object]]:
    path = Path(source)
    if path.suffix in LOCAL_SUFFIXES and not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix in (".jsonl", ".json"):
        yield from local_records(path)
        return
    try:
        import datasets
    except ImportError as exc:
        raise DataError(f"{source}: not a local .jsonl or .json file, and reading Parquet or a data set id needs "
                        "`datasets`") from exc
    rows = (datasets.load_dataset("parquet", data_files=str(path), split="train") if path.suffix == ".parquet"
            else datasets.load_dataset(str(source), split="train"))
    yield from ((f"{source} row {number}", row) for number, row in enumerate(rows, 1))


def load_conversations(source: str | Path = SAMPLE, multi_turn: bool = True, data_format: str = "auto"
                       ) -> list[Conversation]:
    """Every record as a conversation, all in the first record's format (or the one named); multi_turn=False
    leaves out the dialogues (the paper's zero-shot model)."""
    if data_format not in get_args(DataFormat):
        raise DataError(f"data format {data_format!r}: use one of {', '.join(get_args(DataFormat))}")
    conversations: list[Conversation] = []
    for where, row in records(source):
        if data_format == "auto":
            data_format = detect(row) or "auto"
        conversations.append(conversation_of(row, where, data_format))
    if not conversations:
        raise DataError(f"{source}: no records")
    return [c for c in conversations if multi_turn or not c.multi_turn]
