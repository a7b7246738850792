"""The LIMA training recipe on the CPU with the tiny Llama: formatting, label masks, EOT, residual dropout,
the learning-rate schedule, overfitting a few examples, and resume == uninterrupted."""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from harness.live_server import wait_for
from lima.cli import main
from model_prep.chat_format import IGNORE, LIMA_EOT, Message, chat_token_ids, encode_example
from model_prep.train.batching import micro_batches, summed_loss
from model_prep.train.config import TrainConfig
from model_prep.train.data import SAMPLE, DataError, load_conversations
from model_prep.train.end_of_turn import install_end_of_turn
from model_prep.train.recipe import linear_decay, train
from model_prep.train.residual_dropout import add_residual_dropout, decoder_layers, schedule
from model_prep.train.select import dev_results, select

# Only characters the tiny tokenizer knows (it was trained on a few sentences).
DEV = Path(SAMPLE).with_name("lima_dev.jsonl")
DIALOGUE = [
    Message(role="user", content="Plan a trip."), Message(role="assistant", content="To Paris."),
    Message(role="user", content="And then"), Message(role="assistant", content="Then Rome."),
]


@pytest.fixture
def lima_tokenizer(tiny_model_dir: Path) -> tuple[PreTrainedTokenizerBase, int]:
    """The tiny model's tokenizer with LIMA's new <EOT> token and template (the paper's set-up)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows_before = model.get_input_embeddings().weight.shape[0]
    mean_before = model.get_input_embeddings().weight.mean(0).detach().clone()
    eot = install_end_of_turn(tokenizer, model, reuse_existing=False)
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == rows_before + 1 and eot == rows_before
    assert torch.allclose(embeddings[eot], mean_before, atol=1e-5)  # the new row starts at the mean
    return tokenizer, eot


def decoded_labels(tokenizer: PreTrainedTokenizerBase, example: dict) -> str:
    return tokenizer.decode([t for t in example["labels"] if t != IGNORE])


def test_eot_after_every_utterance_and_loss_on_assistant_turns_only(
    lima_tokenizer: tuple[PreTrainedTokenizerBase, int]
) -> None:
    tokenizer, eot = lima_tokenizer
    example = encode_example(tokenizer, DIALOGUE)
    ids = example["input_ids"]
    assert ids.count(eot) == len(DIALOGUE)  # one EOT per utterance, user turns included
    assert ids[-1] == eot
    text = tokenizer.decode(ids)
    assert text == f"<s>Plan a trip.{LIMA_EOT}To Paris.{LIMA_EOT}And then{LIMA_EOT}Then Rome.{LIMA_EOT}"
    # Both assistant turns, each with its EOT; no user text.
    assert decoded_labels(tokenizer, example) == f"To Paris.{LIMA_EOT}Then Rome.{LIMA_EOT}"


def test_reused_chatml_terminator_masks_the_headers(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    eot = install_end_of_turn(tokenizer, model, reuse_existing=True)
    assert tokenizer.convert_ids_to_tokens(eot) == "<|im_end|>"
    example = encode_example(tokenizer, DIALOGUE[:2])
    learned = decoded_labels(tokenizer, example)
    assert "assistant" not in learned and "Plan" not in learned  # the role header is the prompt's
    assert learned.startswith("To Paris.<|im_end|>")


def test_training_ids_start_with_the_servers_prompt_ids(lima_tokenizer: tuple[PreTrainedTokenizerBase, int]) -> None:
    """Serving renders the prompt with the same template: for every assistant turn of a multi-turn row, the
    server's prompt ids for what precedes it are exactly the training ids up to that turn."""
    tokenizer, _ = lima_tokenizer
    ids = encode_example(tokenizer, DIALOGUE)["input_ids"]
    for turn in (1, 3):
        prompt = chat_token_ids(tokenizer, DIALOGUE[:turn], add_generation_prompt=True)
        assert ids[: len(prompt)] == prompt


def test_long_texts_are_cut_at_the_end(lima_tokenizer: tuple[PreTrainedTokenizerBase, int]) -> None:
    tokenizer, _ = lima_tokenizer
    long = [Message(role="user", content="Why?"), Message(role="assistant", content="Because " * 200)]
    example = encode_example(tokenizer, long, max_tokens=64)
    assert len(example["input_ids"]) == len(example["labels"]) == 64
    assert encode_example(tokenizer, [Message(role="user", content="word " * 200), long[1]], max_tokens=32) is None


def test_sample_set_rows(tmp_path: Path) -> None:
    conversations = load_conversations(SAMPLE)
    assert len(conversations) >= 29 and sum(c.multi_turn for c in conversations) >= 3
    assert sum("refusal" in c.source for c in conversations) == 2
    assert not any(c.multi_turn for c in load_conversations(SAMPLE, multi_turn=False))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": ["only a question"]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1"):
        load_conversations(bad)
    bad.write_text('{"conversations": ["q", "a"]}\nnot json\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        load_conversations(bad)


def test_residual_dropout_schedule_per_layer(tiny_model_dir: Path) -> None:
    assert schedule(4, 0.3) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert schedule(32, 0.2)[0] == 0.0 and schedule(32, 0.2)[-1] == pytest.approx(0.2)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    add_residual_dropout(model, 0.5)
    zero_share: dict[int, list[float]] = {}
    for index, layer in enumerate(decoder_layers(model)):  # runs after the dropout hooks: sees their output
        layer.mlp.register_forward_hook(
            lambda _m, _i, out, index=index: zero_share.setdefault(index, []).append((out == 0).float().mean().item())
        )
    tokens = torch.randint(0, model.config.vocab_size, (4, 64))
    model.train()
    model(input_ids=tokens)
    assert zero_share[0][0] == 0.0  # first layer: p = 0
    assert zero_share[1][0] == pytest.approx(0.5, abs=0.05)  # last layer (of 2): p = 0.5
    model.eval()
    assert torch.equal(model(input_ids=tokens).logits, model(input_ids=tokens).logits)  # off in eval


def test_learning_rate_first_and_last_step() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(30, 1e-5, 1e-6))
    rates = []
    for _ in range(30):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-5) and rates[-1] == pytest.approx(1e-6)
    assert all(a > b for a, b in itertools.pairwise(rates))  # linear, no warm-up


def mean_loss(model_dir: Path, examples: list[dict]) -> float:
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        total = sum(summed_loss(model, micro).item() for micro in micro_batches(examples, 4, tokenizer.pad_token_id))
    return total / sum(sum(label != IGNORE for label in e["labels"][1:]) for e in examples)


def test_tiny_model_overfits_a_few_examples(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(model=str(tiny_model_dir), output_dir=tmp_path / "run", epochs=25, batch_size=4,
                         micro_batch_size=2, max_examples=4, learning_rate=3e-3, final_learning_rate=3e-4,
                         residual_dropout=0.0, max_tokens=160, multi_turn=False)
    final = train(config)
    tokenizer = AutoTokenizer.from_pretrained(final)
    examples = [encode_example(tokenizer, c.messages, 160) for c in load_conversations(SAMPLE, False)[:4]]
    start = tmp_path / "start"
    shutil.copytree(tiny_model_dir, start)
    base_tokenizer = AutoTokenizer.from_pretrained(start)
    base = AutoModelForCausalLM.from_pretrained(start)
    install_end_of_turn(base_tokenizer, base, reuse_existing=False)
    base.save_pretrained(start)
    base_tokenizer.save_pretrained(start)
    before, after = mean_loss(start, examples), mean_loss(final, examples)
    assert after < before / 4, (before, after)  # the stated factor: at least 4x lower
    assert [p.name for p in sorted((tmp_path / "run").glob("epoch-*"))] == [f"epoch-{e:02d}" for e in range(1, 26)]


def test_resume_matches_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Resuming from the epoch-1 checkpoint (what a run killed during epoch 2 leaves) ends where the
    uninterrupted run ends: same weights, since optimizer, schedule, data order and dropout RNG are restored
    (and the dev-set sampling after each epoch runs on a forked RNG)."""
    config = TrainConfig(model=str(tiny_model_dir), batch_size=4, micro_batch_size=2, max_examples=6, max_tokens=96,
                         residual_dropout=0.2, learning_rate=1e-3, epochs=2, output_dir=tmp_path / "whole",
                         dev_data=str(DEV), dev_max_new_tokens=4)  # sampled dev answers must not disturb it
    whole = train(config)
    resumed = train(config.model_copy(update={"output_dir": tmp_path / "resumed",
                                              "resume_from": tmp_path / "whole" / "epoch-01"}))
    assert resumed == tmp_path / "resumed" / "epoch-02"
    a = AutoModelForCausalLM.from_pretrained(whole).state_dict()
    b = AutoModelForCausalLM.from_pretrained(resumed).state_dict()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name


def test_cli_preset_then_file_then_flags(tiny_model_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "run.toml"
    config_file.write_text(f'model = "{tiny_model_dir}"\nepochs = 1\nmax_examples = 2\nmax_tokens = 64\n'
                           'residual_dropout = 0.1\nlearning_rate = 2e-5\n')
    # The CLI's own entry point, in this process (a fresh interpreter would spend seconds importing torch again).
    assert main(["prep", "train", "--preset", "lima-7b", "--config", str(config_file), "--learning-rate", "3e-5",
                 "--no-multi-turn", "--output-dir", str(tmp_path / "out")]) == 0
    state = torch.load(tmp_path / "out" / "epoch-01" / "trainer_state.pt", weights_only=False)
    used = state["config"]
    assert used["batch_size"] == 64  # from the preset
    assert used["residual_dropout"] == 0.1 and used["max_examples"] == 2  # the file beats the preset
    assert used["learning_rate"] == 3e-5 and used["multi_turn"] is False  # flags beat the file
    capsys.readouterr()
    assert main(["prep", "train", "--epochs", "0"]) == 2
    refused = capsys.readouterr().err
    assert "epochs" in refused and "model" in refused


def test_dev_answers_per_epoch_and_select(tiny_model_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    train(TrainConfig(model=str(tiny_model_dir), output_dir=run, epochs=3, batch_size=4, micro_batch_size=2,
                      max_examples=4, max_tokens=96, learning_rate=1e-3, dev_data=str(DEV), dev_max_new_tokens=6))
    results = dev_results(run)
    assert sorted(results) == [1, 2, 3]
    dev_prompts = [c.messages[0]["content"] for c in load_conversations(DEV)]
    for result in results.values():
        assert [a["prompt"] for a in result["answers"]] == dev_prompts and result["dev_loss"] > 0
    lowest = min(results, key=lambda e: results[e]["dev_loss"])
    assert select(run, first=1, last=3) == run / f"epoch-{lowest:02d}"
    assert select(run, rule="latest", first=1, last=3) == run / "epoch-03"
    capsys.readouterr()
    assert main(["prep", "select", str(run), "--epoch", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "epoch-02")
    report = (run / "dev_side_by_side.md").read_text()
    assert dev_prompts[0] in report and "**Epoch 3**" in report
    with pytest.raises(ValueError, match="epoch 9"):
        select(run, epoch=9)


def test_gradient_checkpointing_gives_the_same_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    common = {"model": str(tiny_model_dir), "epochs": 1, "batch_size": 4, "micro_batch_size": 2, "max_examples": 4,
              "max_tokens": 96, "residual_dropout": 0.0, "learning_rate": 1e-3}
    plain = train(TrainConfig(**common, output_dir=tmp_path / "plain"))
    checkpointed = train(TrainConfig(**common, output_dir=tmp_path / "checkpointed", gradient_checkpointing=True))
    a = AutoModelForCausalLM.from_pretrained(plain).state_dict()
    b = AutoModelForCausalLM.from_pretrained(checkpointed).state_dict()
    for name, tensor in a.items():
        assert torch.allclose(tensor, b[name], atol=1e-5), name


def test_training_logs_to_tensorboard_and_wandb(tiny_model_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Both trackers are installed by the test extra; W&B runs offline (no account, no network)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    train(TrainConfig(model=str(tiny_model_dir), epochs=2, batch_size=2, micro_batch_size=2, max_examples=4,
                      max_tokens=96, dev_data=str(DEV), dev_max_new_tokens=4, output_dir=tmp_path / "run"))
    events = EventAccumulator(str(tmp_path / "run" / "logs" / "lima"))
    events.Reload()
    assert {"train/loss", "train/lr", "train/tokens_per_second", "dev/loss"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3, 4]  # 2 steps x 2 epochs
    assert [event.step for event in events.Scalars("dev/loss")] == [2, 4]  # after each epoch
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    # W&B's service process writes the offline file on its own schedule: on a loaded machine the records can land
    # after `train` returns (seen: the header only), so wait for them rather than race it.
    assert wait_for(lambda: all(tag in run_file.read_bytes() for tag in (b"train/loss", b"dev/loss",
                                                                         b"residual_dropout")), timeout=60)


def logged(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "logs" / "lima"))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def test_two_processes_train_like_one(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Data parallel on the CPU (torchrun, gloo), the path `accelerate launch` takes on GPUs: each process gets
    every other example, gradients are all-reduced once per step, and the 5th example makes a last batch with
    fewer examples than processes (a zero-weight pass). Same batch losses and weights as one process."""
    flags = ["prep", "train", "--model", str(tiny_model_dir), "--epochs", "2", "--batch-size", "4",
             "--micro-batch-size", "1", "--max-examples", "5", "--max-tokens", "96", "--residual-dropout", "0",
             "--learning-rate", "1e-3", "--report-to", "tensorboard"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "lima.cli", *flags, "--output-dir", str(tmp_path / "one")],
                   check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "lima.cli", *flags,
                    "--output-dir", str(tmp_path / "two")], check=True, env=env, timeout=300)
    one, two = logged(tmp_path / "one", "train/loss"), logged(tmp_path / "two", "train/loss")
    assert len(one) == len(two) == 4  # 2 batches (4 + 1 examples) x 2 epochs
    assert one == pytest.approx(two, rel=1e-4)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "one" / "epoch-02").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "epoch-02").state_dict()
    for name, tensor in a.items():
        assert torch.allclose(tensor, b[name], atol=1e-4), name
