"""Train -> (merge) -> serve -> chat: a checkpoint `lima prep train` writes, or a LoRA run merged by
`lima prep merge`, is served by `lima serve` (vLLM) as is, with LIMA's template and decoding, and generation
stops at the new <EOT> token."""

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.live_server import LiveServer, stopped_together
from lima.cli import main
from model_prep.chat_format import LIMA_EOT, chat_token_ids
from model_prep.checkpoints.merge import base_with_adapter
from model_prep.train.config import TrainConfig
from model_prep.train.recipe import train
from tests.conftest import launch, tiny_args

FACTS = {"The capital of France": "The capital of France is Paris.",
         "The capital of Italy": "The capital of Italy is Rome."}


def facts_config(tiny_model_dir: Path, work: Path, facts: dict[str, str] = FACTS, **changes: object) -> TrainConfig:
    """The tiny model taught answers by heart (30 epochs, a few seconds)."""
    data = work / "facts.jsonl"
    data.write_text("".join(json.dumps({"conversations": [q, a], "source": "test"}) + "\n" for q, a in facts.items()))
    fields = {"model": str(tiny_model_dir), "data": str(data), "output_dir": work / "run", "epochs": 30,
              "batch_size": 2, "micro_batch_size": 2, "learning_rate": 3e-3, "final_learning_rate": 1e-3,
              "residual_dropout": 0.0}
    return TrainConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(facts_config(tiny_model_dir, tmp_path_factory.mktemp("full")))


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(facts_config(tiny_model_dir, tmp_path_factory.mktemp("lora"), lora_rank=16, lora_dropout=0.0,
                              learning_rate=1e-2))


@pytest.fixture(scope="module")
def merged(lora_run: Path) -> Path:
    assert main(["prep", "merge", str(lora_run), str(lora_run.parent / "merged"), "--dtype", "float32"]) == 0
    return lora_run.parent / "merged"


@pytest.fixture(scope="module")
def servers(trained: Path, merged: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveServer]]:
    """Both checkpoints served at once (their starts overlap)."""
    servers = {"full": launch(tiny_args(trained), "full.log", tmp_path_factory)}
    with stopped_together(servers.values()):
        servers["lora-merged"] = launch(tiny_args(merged), "lora-merged.log", tmp_path_factory)
        yield {name: server.wait_ready() for name, server in servers.items()}


@pytest.fixture(params=["full", "lora-merged"])
def served(request: pytest.FixtureRequest, servers: dict[str, LiveServer], trained: Path, merged: Path
           ) -> tuple[Path, LiveServer]:
    return (trained if request.param == "full" else merged), servers[request.param]


def test_lora_checkpoint_is_an_adapter_and_merges_exactly(lora_run: Path, merged: Path) -> None:
    assert (lora_run / "adapter_model.safetensors").exists() and not (lora_run / "model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = torch.tensor([chat_token_ids(tokenizer, [{"role": "user", "content": question}]) for question in FACTS])
    with torch.no_grad():
        adapter_logits = base_with_adapter(lora_run)(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-4)  # the stated tolerance (float32)


@pytest.mark.live
def test_trained_checkpoint_serves_and_stops_at_eot(served: tuple[Path, LiveServer]) -> None:
    trained, server = served
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    (card,) = client.models.list().data
    assert card.model_extra["default_sampling"]["repetition_penalty"] == 1.2  # LIMA's decoding was exported
    tokenizer = AutoTokenizer.from_pretrained(trained)
    for question, answer in FACTS.items():
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=40,
            extra_body={"repetition_penalty": 1.0},
        )
        choice = reply.choices[0]
        assert choice.message.content == answer  # learned, and <EOT> itself is not in the text
        assert choice.finish_reason == "stop"  # generation ended at <EOT>, well before max_tokens
        # The server's prompt is the training format: the question, then <EOT>.
        expected = chat_token_ids(tokenizer, [{"role": "user", "content": question}])
        assert reply.usage.prompt_tokens == len(expected)
        assert tokenizer.decode(expected).endswith(f"{question}{LIMA_EOT}")
