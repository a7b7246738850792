"""The training formats people have their data in (the published LIMA JSONL, OpenAI chat, ShareGPT, Alpaca with
LLaMA-Factory's `history`), each as JSON lines or one JSON array, read to the same conversations; a record in no
format is refused in one line naming the file, the record and what each format expects."""

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lima.cli import main
from model_prep.chat_format import IGNORE, Message, chat_token_ids, encode_example
from model_prep.train.data import SAMPLE, DataError, load_conversations
from model_prep.train.end_of_turn import install_end_of_turn

SYSTEM = "Answer as a patient teacher."


def lima_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def as_alpaca(row: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's conversion of a LIMA row: earlier turns in `history`, the last exchange in the fields."""
    turns = row["conversations"]
    return {"instruction": turns[-2], "input": "", "output": turns[-1],
            "history": [[turns[i], turns[i + 1]] for i in range(0, len(turns) - 2, 2)]}


def as_openai(row: dict[str, Any]) -> dict[str, Any]:
    roles = ("user", "assistant")
    return {"messages": [{"role": roles[i % 2], "content": turn} for i, turn in enumerate(row["conversations"])]}


def as_sharegpt(row: dict[str, Any]) -> dict[str, Any]:
    speakers = ("human", "gpt")
    return {"conversations": [{"from": speakers[i % 2], "value": turn} for i, turn in enumerate(row["conversations"])]}


def write(path: Path, rows: list[dict[str, Any]], array: bool) -> Path:
    path.write_text(json.dumps(rows, indent=2) if array else "".join(json.dumps(row) + "\n" for row in rows))
    return path


def messages_of(path: Path, data_format: str = "auto") -> list[list[Message]]:
    return [c.messages for c in load_conversations(path, data_format=data_format)]


@pytest.mark.parametrize("convert", [as_alpaca, as_openai, as_sharegpt], ids=["alpaca", "openai", "sharegpt"])
@pytest.mark.parametrize("array", [False, True], ids=["jsonl", "json-array"])
def test_every_format_reads_to_the_same_conversations_as_the_lima_jsonl(tmp_path: Path, convert: Any,
                                                                          array: bool) -> None:
    rows = lima_rows()
    expected = messages_of(SAMPLE)
    assert sum(len(m) > 2 for m in expected) >= 3  # the sample has multi-turn dialogues
    path = write(tmp_path / f"data.{'json' if array else 'jsonl'}", [convert(row) for row in rows], array)
    assert messages_of(path) == expected
    assert messages_of(path, convert.__name__.removeprefix("as_")) == expected


def test_llama_factory_lima_json_array_gives_multi_turn_conversations(tmp_path: Path) -> None:
    """The train set as LLaMA-Factory ships it: one JSON array; rows with `history` are the dialogues."""
    path = write(tmp_path / "lima.json", [as_alpaca(row) for row in lima_rows()], array=True)
    conversations = load_conversations(path)
    assert [c.multi_turn for c in conversations] == [len(row["conversations"]) > 2 for row in lima_rows()]
    assert len(load_conversations(path, multi_turn=False)) == sum(not c.multi_turn for c in conversations)


def test_system_prompts_come_first_in_openai_sharegpt_and_alpaca(tmp_path: Path) -> None:
    openai_row = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Why?"},
                               {"role": "assistant", "content": [{"type": "text", "text": "Because."}]}]}
    sharegpt_row = {"system": SYSTEM, "conversations": [{"from": "human", "value": "Why?"},
                                                        {"from": "gpt", "value": "Because."}]}
    alpaca_row = {"system": SYSTEM, "instruction": "Why?", "input": "", "output": "Because."}
    expected = [[Message(role="system", content=SYSTEM), Message(role="user", content="Why?"),
                 Message(role="assistant", content="Because.")]]
    for name, row in (("openai", openai_row), ("sharegpt", sharegpt_row), ("alpaca", alpaca_row)):
        assert messages_of(write(tmp_path / f"{name}.jsonl", [row], array=False)) == expected, name


def test_alpaca_input_joins_the_instruction() -> None:
    from model_prep.train.data import from_alpaca

    messages = from_alpaca({"instruction": "Summarise this.", "input": "A long text.", "output": "Short."}, "row")
    assert messages[0] == Message(role="user", content="Summarise this.\nA long text.")


def test_a_system_prompt_is_trained_as_it_is_served(tiny_model_dir: Path) -> None:
    """The system message reaches the chat template in training exactly as the server renders it: the prompt
    ids the server would build for [system, user] start the training ids, and carry no loss."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    install_end_of_turn(tokenizer, AutoModelForCausalLM.from_pretrained(tiny_model_dir), reuse_existing=False)
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="Plan a trip."),
                Message(role="assistant", content="To Paris.")]
    example = encode_example(tokenizer, messages)
    assert example is not None
    prompt = chat_token_ids(tokenizer, messages[:2], add_generation_prompt=True)
    assert example["input_ids"][:len(prompt)] == prompt
    assert "Be brief." in tokenizer.decode(prompt)
    assert all(label == IGNORE for label in example["labels"][:len(prompt)])
    assert any(label != IGNORE for label in example["labels"][len(prompt):])


@pytest.mark.parametrize(("content", "data_format", "message"), [
    ('{"prompt": "q", "completion": "a"}\n', "auto",
     r"bad\.jsonl:1: a record in none of the training formats; expected one of: lima .*openai .*sharegpt .*alpaca"),
    ('{"conversations": ["q", "a"]}\n{"conversations": ["q", "a"]\n', "auto", r"bad\.jsonl:2: not JSON"),
    ('[{"conversations": ["q", "a"]}, {"text": "x"}]', "auto", r"bad\.jsonl record 2: a record in none"),
    ('[{"conversations": ["q", "a"]},\n {"conversations": ["q" "a"]}]', "auto", r"bad\.jsonl:2:\d+: not JSON"),
    ('{"conversations": ["only a question"]}\n', "auto", r"bad\.jsonl:1: a training row needs a user message"),
    ('{"conversations": ["q", "a", "q2"]}\n', "auto", r"bad\.jsonl:1: .*ends with the assistant's answer"),
    ('{"conversations": ["q", ""]}\n', "auto", r"bad\.jsonl:1: utterance 1 is empty"),
    ('{"messages": [{"role": "tool", "content": "x"}]}\n', "auto", r"bad\.jsonl:1: message 0 has role 'tool'"),
    ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}\n', "auto",
     r"message 0 is the assistant's; expected the user's"),
    ('{"conversations": [{"from": "narrator", "value": "x"}]}\n', "auto", r"turn 0 is from 'narrator'"),
    ('{"instruction": "q", "output": "a", "history": [["only one"]]}\n', "auto", r"'history' must be a list of"),
    ('{"conversations": ["q", "a"]}\n', "openai", r"bad\.jsonl:1: a lima record in a openai file"),
    ('{"conversations": ["q", "a"]}\n{"messages": [{"role": "user", "content": "q"}]}\n', "auto",
     r"bad\.jsonl:2: a openai record in a lima file"),
    ("", "auto", r"bad\.jsonl: no records"),
])
def test_bad_records_are_named_with_what_was_expected(tmp_path: Path, content: str, data_format: str,
                                                      message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_conversations(path, data_format=data_format)


def test_missing_and_undecodable_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_conversations(tmp_path / "absent.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes('{"conversations": ["caf\xe9", "a"]}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_conversations(tmp_path / "latin1.jsonl")


def test_train_refuses_a_file_in_no_format_in_one_line_before_loading_a_model(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path / "lima.json", [{"question": "q", "answer": "a"}], array=True)
    assert main(["prep", "train", "--model", str(tmp_path / "no-model"), "--data", str(bad)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"lima prep train: {bad} record 1: a record in none of the training formats")
    assert "\n" not in error and "alpaca" in error
    assert main(["prep", "train", "--model", str(tmp_path / "no-model")]) == 2
    assert capsys.readouterr().err.strip() == f"lima prep train: --model {tmp_path / 'no-model'}: no such model " \
                                              "directory"


def test_train_runs_on_an_openai_jsonl_with_a_system_prompt(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, *as_openai(row)["messages"]]}
            for row in lima_rows()[:2]]
    data = write(tmp_path / "chat.jsonl", rows, array=False)
    out = tmp_path / "run"
    assert main(["prep", "train", "--model", str(tiny_model_dir), "--data", str(data), "--data-format", "openai",
                 "--epochs", "1", "--batch-size", "2", "--max-tokens", "64", "--report-to", "--output-dir",
                 str(out)]) == 0
    assert (out / "epoch-01" / "model.safetensors").is_file()
