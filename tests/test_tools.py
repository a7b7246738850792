"""Function calling through the official `openai` client, on real model output: a named function and
"required" with the embedded default model (structured outputs make the answer a call, whatever the model), and
"auto" with vLLM's hermes parser on a tiny model this test teaches to answer in that format; in chat completions
and the Responses API, streamed and not, and stored in conversations and response chains."""

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
    ]
    for fields, words in cases:
        with pytest.raises(openai.BadRequestError, match=words):
            client.chat.completions.create(model=DEFAULT, messages=ASK, max_tokens=5, **fields)
    with pytest.raises(openai.BadRequestError, match="tool_call_id"):
        client.chat.completions.create(model=DEFAULT, messages=[*ASK, {"role": "tool", "content": "x"}])
    for fields, words in [
        ({"tools": [RESPONSES_WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "does not match"),
        ({"tools": [RESPONSES_WEATHER]}, "--tool-call-parser"),
        ({"tool_choice": "required"}, "tools"),
        ({"tools": [{"type": "web_search"}]}, "function"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "function_call_output"),
        ({"input": [{"type": "function_call_output", "call_id": "call_nope", "output": "x"}]}, "No tool call found"),
    ]:
        with pytest.raises(openai.BadRequestError, match=words):
            client.responses.create(**{"model": DEFAULT, "input": "What is the weather in Paris?", "store": False,
                                       "max_output_tokens": 5, **fields})


def test_a_chat_tool_loop_is_stored_in_the_conversation(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    chat = {"model": DEFAULT, "tools": [WEATHER, TIME], "max_tokens": 80, "temperature": 0,
            "extra_body": {"conversation": conversation.id}}
    reply = client.chat.completions.create(messages=ASK, tool_choice="required", **chat)
    (call, *_) = reply.choices[0].message.tool_calls
    result = '{"temperature_c": 21, "sky": "clear"}'
    answer = client.chat.completions.create(
        messages=[{"role": "tool", "tool_call_id": call.id, "content": result}], tool_choice="none", **chat)
    assert answer.choices[0].message.content
    items = client.conversations.items.list(conversation.id, order="asc").data
    kinds = [item.type for item in items]
    assert kinds[:2] == ["message", "function_call"] and "function_call_output" in kinds, kinds
    stored_call = items[1]
    assert (stored_call.call_id, stored_call.name, stored_call.arguments) == (
        call.id, call.function.name, call.function.arguments)
    output = next(item for item in items if item.type == "function_call_output")
    assert (output.call_id, output.output) == (call.id, result)
    assert items[-1].type == "message" and items[-1].role == "assistant"


RESPONSES_WEATHER = {"type": "function", **WEATHER["function"]}


def test_responses_call_a_function_and_continue_from_its_output(client: openai.OpenAI) -> None:
    ask = {"model": DEFAULT, "input": "What is the weather in Paris?", "tools": [RESPONSES_WEATHER],
           "tool_choice": {"type": "function", "name": "get_weather"}, "max_output_tokens": 40, "temperature": 0}
    response = client.responses.create(**ask)
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id and call.id
    assert isinstance(json.loads(call.arguments)["city"], str)
    assert response.tool_choice.name == "get_weather" and response.tools[0].name == "get_weather"

    events = list(client.responses.create(stream=True, **ask))
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"], kinds
    assert events[2].item.type == "function_call" and events[2].item.name == "get_weather"
    deltas = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    (done,) = [event for event in events if event.type == "response.function_call_arguments.done"]
    final = events[-1].response
    assert kinds[-1] == "response.completed" and deltas == done.arguments == final.output[0].arguments
    assert done.item_id == events[2].item.id == final.output[0].id
    assert final.output[0].call_id == events[2].item.call_id

    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature_c": 21}'}
    follow = client.responses.create(model=DEFAULT, previous_response_id=response.id, input=[result],
                                     tools=[RESPONSES_WEATHER], tool_choice="none", max_output_tokens=30,
                                     temperature=0)
    assert follow.output[0].type == "message" and follow.output_text
    (sent,) = client.responses.input_items.list(follow.id).data
    assert sent.type == "function_call_output" and sent.call_id == call.call_id

    required = client.responses.create(**{**ask, "tool_choice": "required", "max_output_tokens": 80})
    assert required.output and all(item.type == "function_call" and item.name == "get_weather"
                                   for item in required.output)


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

    responses = {"model": "tiny", "tools": [RESPONSES_WEATHER], "max_output_tokens": 150, "temperature": 0,
                 "extra_body": {"repetition_penalty": 1.0}}
    (call,) = client.responses.create(input=ASK[0]["content"], **responses).output
    assert (call.type, call.name, json.loads(call.arguments)) == ("function_call", "get_weather", {"city": "Paris"})
    answer = client.responses.create(input="The capital of France", **responses)
    assert [item.type for item in answer.output] == ["message"]
    assert answer.output_text == TAUGHT["The capital of France"]
    events = list(client.responses.create(input=ASK[0]["content"], stream=True, **responses))
    streamed = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(streamed) == {"city": "Paris"} and events[-1].response.output[0].arguments == streamed
