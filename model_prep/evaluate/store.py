"""The on-disk cache that makes a run resumable: one JSONL file per stage, a record per finished call, written
and flushed as soon as the call returns. A rerun reads the keys already there and makes only the missing calls;
a last line cut off by a crash is ignored (that call is made again)."""

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Records:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        unreadable = False
        if path.is_file():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    record = json.loads(line)
                    self.records[record["key"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    unreadable = True
                    log.warning("%s:%d: unreadable record dropped (an interrupted write); it will be redone",
                                path, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        if unreadable:  # rewrite without it, so appends start on a clean line
            path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                    for r in self.records.values()), encoding="utf-8")
        self.file = path.open("a", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records[record["key"]] = record
        self.file.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self.file.flush()
        return record

    def close(self) -> None:
        self.file.close()


def text_id(text: str) -> str:
    """A prompt's id when its file gives none: stable under reordering and edits elsewhere in the file."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_prompts(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Prompts from LIMA-format JSONL (the first turn), JSONL of {"prompt"} (optional "id", "sensitive"), or
    plain text with one prompt per line."""
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: bad JSON ({error.msg})") from error
            text = row.get("prompt") or (row.get("conversations") or [None])[0]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path}:{number}: a row needs a prompt or conversations")
            prompts.append({"id": str(row.get("id") or text_id(text)), "text": text,
                            "sensitive": bool(row.get("sensitive"))})
        else:
            prompts.append({"id": text_id(line), "text": line.strip(), "sensitive": False})
    ids = [p["id"] for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: two prompts share an id (or the same text appears twice)")
    return prompts[:limit]


def read_dialogues(path: Path) -> list[dict[str, Any]]:
    """Scripted conversations: JSONL of {"id", "turns": [user message, ...]}."""
    dialogues = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns = row["turns"]
            if not turns or not all(isinstance(t, str) and t.strip() for t in turns):
                raise ValueError
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}:{number}: a dialogue is {{\"id\", \"turns\": [non-empty strings]}}") from error
        dialogues.append({"id": str(row.get("id") or text_id("\n".join(turns))), "turns": turns})
    return dialogues
