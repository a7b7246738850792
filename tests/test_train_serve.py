"""Train -> serve -> chat: a checkpoint `lima prep train` writes is served by `lima serve` (vLLM) as is, with
LIMA's template and decoding, and generation stops at the new <EOT> token."""

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from transformers import AutoTokenizer

from model_prep.format import LIMA_EOT, chat_token_ids
from model_prep.train import TrainConfig, train
from tests.conftest import serve_tiny
from tests.live_server import LiveServer

FACTS = {"The capital of France": "The capital of France is Paris.",
         "The capital of Italy": "The capital of Italy is Rome."}


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught two answers by heart (30 epochs, a few seconds)."""
    work = tmp_path_factory.mktemp("train-serve")
    data = work / "facts.jsonl"
    data.write_text("".join(f'{{"conversations": ["{q}", "{a}"], "source": "test"}}\n' for q, a in FACTS.items()))
    return train(TrainConfig(model=str(tiny_model_dir), data=str(data), output_dir=work / "run", epochs=30,
                             batch_size=2, micro_batch_size=2, learning_rate=3e-3, final_learning_rate=1e-3,
                             residual_dropout=0.0))


@pytest.fixture(scope="module")
def served(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = serve_tiny(trained, [], "trained.log", tmp_path_factory)
    yield server
    server.stop()


def test_trained_checkpoint_serves_and_stops_at_eot(trained: Path, served: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
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
