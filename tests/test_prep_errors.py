"""Every `lima prep` subcommand meets a person's mistake (a missing or malformed file, a bad value) with one line
on stderr and exit status 2, never a traceback; a source that yields nothing is reported, not dropped silently."""

import subprocess
import sys
from pathlib import Path

import pytest

from lima.cli import main

BAD_FILES = {"bad.txt": "hello\n", "bad.jsonl": '{"foo": 1}\n', "bad.json": '[{"foo": 1}', "bad.gguf": "not gguf",
             "bad.csv": "id,label\n1,maybe\n", "bad.toml": "epochs = [", "bad.yaml": "epochs: [1"}
REFUSED = [
    "train --model MODEL --data bad.jsonl",
    "train --model MODEL --data bad.json",
    "train --model MODEL --data absent.jsonl",
    "train --model absent/model --data lima_sample.jsonl",
    "train --model MODEL --data-format nope",
    "train --model MODEL --epochs none",
    "train --model MODEL --config bad.txt",
    "train --model MODEL --config bad.toml",
    "train --model MODEL --config bad.yaml",
    "train --model MODEL --data lima_sample.jsonl --dev-data bad.jsonl",
    "import-gguf bad.gguf out",
    "import-gguf absent.gguf out",
    "default-model --data-dir bad.txt",
    "merge empty out",
    "merge absent out",
    "select empty",
    "select absent",
    "data build --out out --stackexchange absent",
    "data build --out out --stackexchange bad.txt",
    "data build --out out --count stem",
    "data build --out out --count nothing=1 --authored bad.jsonl",
    "data build --out out --count stem=many --authored bad.jsonl",
    "data build --out out --authored absent.jsonl",
    "data build --out out --keep-dialogues absent.txt --authored bad.jsonl",
    "data ablation se-scale --out out --wikihow absent.csv",
    "data audit empty",
    "eval run --config bad.txt",
    "eval run --config bad.toml",
    "eval run --out out --test bad.txt",
    "eval agreement bad.csv bad.csv",
    "eval agreement absent.csv bad.csv",
]
# Inputs a build reads record by record: a bad record is skipped and named in the report, and the build goes on.
REPORTED = [
    "data build --out out --authored bad.jsonl",
    "data build --out out --wikihow bad.txt",
    "data build --out out --reddit bad.jsonl",
    "data build --out out --sni bad.txt",
]


@pytest.fixture
def workdir(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, content in BAD_FILES.items():
        (tmp_path / name).write_text(content)
    (tmp_path / "empty").mkdir()
    (tmp_path / "lima_sample.jsonl").write_text('{"conversations": ["q", "a"]}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def argv(command: str, tiny_model_dir: Path) -> list[str]:
    return ["prep", *command.replace("MODEL", str(tiny_model_dir)).split()]


@pytest.mark.parametrize("command", REFUSED)
def test_a_mistake_is_one_line_and_status_2(command: str, workdir: Path, tiny_model_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv(command, tiny_model_dir)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("lima prep ") and "\n" not in error and "Traceback" not in error, error


@pytest.mark.parametrize("command", REPORTED)
def test_a_bad_record_of_a_source_is_reported_by_the_build(command: str, workdir: Path, tiny_model_dir: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv(command, tiny_model_dir)) == 0
    error = capsys.readouterr().err
    assert "Traceback" not in error and "WARNING" in error
    bad_file = command.split()[-1]
    assert f"{bad_file}" in (workdir / "out" / "report.md").read_text()  # the inputs table: what it held


def test_the_console_shows_no_traceback(workdir: Path) -> None:
    """The reported case, as a user's shell sees it: a JSON array in no training format."""
    done = subprocess.run([sys.executable, "-m", "lima.cli", "prep", "train", "--model", "absent/model", "--data",
                           "bad.json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lima prep train: bad.json:1:12: not JSON (Expecting ',' delimiter)"], done.stderr
