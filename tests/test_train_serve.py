"""Train -> (merge) -> serve -> chat: a checkpoint `lima prep train` writes, or a LoRA run merged by
`lima prep merge`, is served by `lima serve` (vLLM) as is, with LIMA's template and decoding, and generation
stops at the new <EOT> token; a LoRA run's adapters are also served unmerged, beside their base, and answer as
the merged checkpoint does."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
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
from tests.metrics_scrape import scrape, total

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


ADAPTER = "facts-lora"  # the last epoch's
EARLIER_EPOCHS = ("10", "20")  # served too, for `lima prep select --server`
KEYS = "root sk-root admin\nann sk-ann\n"  # root may load and unload adapters, ann may not


@pytest.fixture(scope="module")
def servers(trained: Path, merged: Path, lora_run: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, LiveServer]]:
    """The checkpoints served at once (their starts overlap): the full fine-tune, the merged LoRA run, and the
    LoRA run unmerged: its base with the last epoch's adapter beside it."""
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(KEYS)
    servers = {"full": launch(tiny_args(trained), "full.log", tmp_path_factory)}
    with stopped_together(servers.values()):
        servers["lora-merged"] = launch(tiny_args(merged), "lora-merged.log", tmp_path_factory)
        servers["lora-adapters"] = launch(tiny_args(
            lora_run.parent / "base", "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2", "--lora-modules",
            f"{ADAPTER}={lora_run}", *(f"epoch-{e}={lora_run.parent / f'epoch-{e}'}" for e in EARLIER_EPOCHS),
            "--api-keys-file", str(keys)), "lora-adapters.log", tmp_path_factory)
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


@pytest.mark.live
def test_an_adapter_served_unmerged_answers_as_the_merged_checkpoint(
    servers: dict[str, LiveServer], lora_run: Path
) -> None:
    url = servers["lora-adapters"].url
    ann = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-ann", max_retries=0)
    merged = openai.OpenAI(base_url=f"{servers['lora-merged'].url}/v1", api_key="unused", max_retries=0)
    cards = {card.id: card.model_extra for card in ann.models.list().data}
    assert set(cards) == {"tiny", ADAPTER, "epoch-10", "epoch-20"} and cards[ADAPTER]["parent"] == "tiny"
    assert cards[ADAPTER]["root"] == str(lora_run)
    greedy = {"temperature": 0, "max_tokens": 40, "extra_body": {"repetition_penalty": 1.0}}
    for question, answer in FACTS.items():
        ask = [{"role": "user", "content": question}]
        unmerged = ann.chat.completions.create(model=ADAPTER, messages=ask, **greedy)
        assert unmerged.model == ADAPTER and unmerged.choices[0].finish_reason == "stop"
        assert unmerged.choices[0].message.content == answer == \
            merged.chat.completions.create(model="tiny", messages=ask, **greedy).choices[0].message.content
        assert ann.chat.completions.create(model="tiny", messages=ask, **greedy).choices[0].message.content != answer
        stored = ann.responses.create(model=ADAPTER, input=question, max_output_tokens=40, temperature=0,
                                      extra_body={"repetition_penalty": 1.0})
        assert (stored.model, stored.output_text) == (ADAPTER, answer)
        assert ann.responses.retrieve(stored.id).model == ADAPTER
    generated = total(scrape(url), "lima_generation_tokens_total", model=ADAPTER)
    assert generated >= 2 * len(FACTS), "the metrics name the adapter that generated"
    with pytest.raises(openai.NotFoundError, match=ADAPTER):
        ann.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}], max_tokens=2)


@pytest.mark.live
def test_only_an_admin_loads_and_unloads_adapters_at_run_time(servers: dict[str, LiveServer], lora_run: Path
                                                              ) -> None:
    url = servers["lora-adapters"].url
    early = {"lora_name": "epoch-1", "lora_path": str(lora_run.parent / "epoch-01")}
    refused = httpx.post(f"{url}/v1/load_lora_adapter", json=early, headers={"Authorization": "Bearer sk-ann"})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    root = {"Authorization": "Bearer sk-root"}
    loaded = httpx.post(f"{url}/v1/load_lora_adapter", json=early, headers=root, timeout=60)
    assert loaded.status_code == 200 and loaded.json()["status"] == "loaded", loaded.text
    ann = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-ann", max_retries=0)
    assert "epoch-1" in {card.id for card in ann.models.list().data}
    reply = ann.chat.completions.create(model="epoch-1", messages=[{"role": "user", "content": "The capital of Italy"}],
                                        max_tokens=5, temperature=0)
    assert reply.model == "epoch-1"
    again = httpx.post(f"{url}/v1/load_lora_adapter", json=early, headers=root, timeout=60)
    assert again.status_code == 400 and "already been loaded" in again.json()["error"]["message"]
    missing = httpx.post(f"{url}/v1/load_lora_adapter", headers=root, timeout=60,
                         json={"lora_name": "gone", "lora_path": str(lora_run.parent / "nowhere")})
    assert missing.status_code in (400, 404) and missing.json()["error"]["message"]
    unloaded = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "epoch-1"}, headers=root)
    assert unloaded.status_code == 200 and unloaded.json()["status"] == "unloaded"
    assert "epoch-1" not in {card.id for card in ann.models.list().data}
    with pytest.raises(openai.NotFoundError):
        ann.chat.completions.create(model="epoch-1", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    gone = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "epoch-1"}, headers=root)
    assert gone.status_code == 404


@pytest.mark.live
def test_select_answers_the_dev_set_on_the_server_for_every_served_epoch(
    servers: dict[str, LiveServer], lora_run: Path, tmp_path: Path
) -> None:
    run, url = lora_run.parent, servers["lora-adapters"].url
    dev_data = tmp_path / "dev.jsonl"
    dev_data.write_text("".join(json.dumps({"conversations": [q, a], "source": "dev"}) + "\n"
                                for q, a in FACTS.items()))
    (run / "epoch-20" / "dev.json").write_text(json.dumps({"epoch": 20, "dev_loss": 0.5, "answers": []}))
    assert main(["prep", "select", str(run), "--server", url, "--api-key", "sk-ann", "--dev-data", str(dev_data),
                 "--dev-max-new-tokens", "12", "--epoch", "30"]) == 0
    results = {epoch: json.loads((run / f"epoch-{epoch:02d}" / "dev.json").read_text()) for epoch in (10, 20, 30)}
    assert [r["answered_by"] for r in results.values()] == ["epoch-10", "epoch-20", ADAPTER]
    assert [r["dev_loss"] for r in results.values()] == [None, 0.5, None]  # training's loss is kept
    assert [answer["prompt"] for answer in results[30]["answers"]] == list(FACTS)
    # The last epoch knows its answers so well that LIMA's sampling (top_p 0.9) keeps only the learned tokens.
    assert [answer["answer"] for answer in results[30]["answers"]] == list(FACTS.values())
    side_by_side = (run / "dev_side_by_side.md").read_text()
    assert all(f"**Epoch {epoch}**" in side_by_side for epoch in (10, 20, 30))


@pytest.mark.live
def test_prompt_logprobs_are_refused_where_they_would_stop_the_engine(servers: dict[str, LiveServer]) -> None:
    url = servers["lora-adapters"].url
    headers = {"Authorization": "Bearer sk-ann"}
    echo = {"model": ADAPTER, "prompt": "The capital of", "max_tokens": 1, "echo": True, "logprobs": 0}
    refused = httpx.post(f"{url}/v1/completions", json=echo, headers=headers, timeout=60)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "echo", refused.text
    plain = httpx.post(f"{url}/v1/completions", json={**echo, "echo": False}, headers=headers, timeout=60)
    assert plain.status_code == 200 and plain.json()["choices"][0]["logprobs"]
