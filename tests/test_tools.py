"""Function calling through the official `openai` client, on real model output: a named function and
"required" with the embedded default model (structured outputs make the answer a call, whatever the model), and
"auto" with vLLM's hermes parser on a tiny model this test teaches to answer in that format."""

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from harness.live_server import LiveServer
from model_prep.train.recipe import train
from tests.conftest import launch, tiny_args
from tests.test_train_serve import facts_config

DEFAULT = "SmolLM2-135M-Instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False},
    },
}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                       "required": ["zone"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def client(default_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key="unused", max_retries=0)


def test_a_named_function_is_always_called_with_valid_arguments(client: openai.OpenAI) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    reply = client.chat.completions.create(model=DEFAULT, messages=ASK, tools=[WEATHER, TIME], tool_choice=named,
                                           max_tokens=40, temperature=0)
    (call,) = reply.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert reply.choices[0].message.content is None and reply.choices[0].finish_reason == "stop"

    stream = client.chat.completions.create(model=DEFAULT, messages=ASK, tools=[WEATHER, TIME], tool_choice=named,
                                            max_tokens=40, temperature=0, stream=True)
    pieces = [call for chunk in stream if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "get_weather" and pieces[0].id
    assert "".join(piece.function.arguments or "" for piece in pieces) == call.function.arguments


def test_required_calls_one_of_the_tools_and_the_result_goes_back(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=DEFAULT, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", max_tokens=80, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.function.name in ("get_weather", "get_time")
        assert isinstance(json.loads(call.function.arguments), dict)
    streamed = [call for chunk in client.chat.completions.create(
        model=DEFAULT, messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=80, temperature=0,
        stream=True) if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert [c.function.name for c in streamed] == [c.function.name for c in choice.message.tool_calls]

    call = choice.message.tool_calls[0]
    follow_up = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21, "sky": "clear"}'}]
    answer = client.chat.completions.create(model=DEFAULT, messages=follow_up, tools=[WEATHER, TIME],
                                            tool_choice="none", max_tokens=30, temperature=0)
    assert answer.choices[0].message.content and answer.choices[0].message.tool_calls is None


def test_tool_requests_that_cannot_be_served_are_a_400(client: openai.OpenAI) -> None:
    cases = [
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "does not match"),
        ({"tools": [WEATHER]}, "--tool-call-parser"),  # "auto" (the default) on a server without a parser
        ({"tool_choice": "required"}, "tools"),
        ({"tools": [WEATHER], "tool_choice": "required", "extra_body": {"conversation": "conv_x"}}, "conversation"),
    ]
    for fields, words in cases:
        with pytest.raises(openai.BadRequestError, match=words):
            client.chat.completions.create(model=DEFAULT, messages=ASK, max_tokens=5, **fields)
    with pytest.raises(openai.BadRequestError, match="tool_call_id"):
        client.chat.completions.create(model=DEFAULT, messages=[*ASK, {"role": "tool", "content": "x"}])


HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TAUGHT = {"What is the weather in Paris?": HERMES_CALL, "The capital of France": "The capital of France is Paris."}


@pytest.fixture(scope="module")
def hermes_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A tiny model that answers the weather question with a hermes-format call, served with vLLM's parser."""
    checkpoint = train(facts_config(tiny_model_dir, tmp_path_factory.mktemp("hermes"), facts=TAUGHT))
    server = launch(tiny_args(checkpoint, "--enable-auto-tool-choice", "--tool-call-parser", "hermes"),
                    "hermes.log", tmp_path_factory)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.mark.live
def test_auto_reads_the_models_own_calls_with_vllms_parser(hermes_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=f"{hermes_server.url}/v1", api_key="unused", max_retries=0)
    greedy = {"model": "tiny", "tools": [WEATHER], "max_tokens": 150, "temperature": 0,
              "extra_body": {"repetition_penalty": 1.0}}
    reply = client.chat.completions.create(messages=ASK, **greedy)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    plain = client.chat.completions.create(messages=[{"role": "user", "content": "The capital of France"}],
                                           **greedy)
    assert plain.choices[0].message.content == TAUGHT["The capital of France"]
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "stop"

    pieces = [call for chunk in client.chat.completions.create(messages=ASK, stream=True, **greedy)
              if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "get_weather"
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Paris"}
