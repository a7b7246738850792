"""Requests at the edges, against the tiny model's live server: every numeric and list field of every request
model gets values at and beyond its edges (0, -1, the bounds and one past them, 2**31, 2**63, 2**64, 2**80, NaN,
Infinity, empty and oversized lists), streamed and not. Every answer is below 500, an error is OpenAI's error
object, a stream ends properly (no reset, no in-band server error), and the server answers a normal request
afterwards. The legal extremes are served, not refused. A property-based test then mixes several edges in one
request."""

import json
import math
from collections.abc import Iterator
from typing import Any, get_args, get_origin

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from harness.live_server import LiveServer
from server.api.chat.protocol import ChatCompletionRequest
from server.api.completions.protocol import CompletionRequest
from server.api.conversations.protocol import ConversationCreate
from server.api.responses.protocol import ResponseRequest
from server.api.tokens.protocol import DetokenizeRequest, TokenizeRequest
from server.core.schema import INT32_MAX, INT64_MAX, INT64_MIN

INTS = [0, -1, 1, INT32_MAX, INT32_MAX + 1, INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, 2**64, 2**80,
        -(2**70)]
FLOATS = [0.0, -0.0, -1.0, 1.0, 2.0, 2.000001, -2.000001, 100.0, 100.5, -100.5, 1e308, -1e308, 5e-324,
          math.nan, math.inf, -math.inf]
MESSAGE = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
ITEM = {"role": "user", "content": "hi"}

# Each request model, its route, a small valid body, and the values each numeric and list field is sent.
BASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "tiny", "messages": [MESSAGE], "max_tokens": 2}),
    "completions": ("/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2}),
    "responses": ("/v1/responses", {"model": "tiny", "input": "hi", "max_output_tokens": 2, "store": False}),
    "conversations": ("/v1/conversations", {"items": [ITEM]}),
    "tokenize": ("/tokenize", {"prompt": "hi"}),
    "detokenize": ("/detokenize", {"tokens": [1, 2]}),
}
MODELS: dict[str, type[BaseModel]] = {
    "chat": ChatCompletionRequest, "completions": CompletionRequest, "responses": ResponseRequest,
    "conversations": ConversationCreate, "tokenize": TokenizeRequest, "detokenize": DetokenizeRequest,
}
SAMPLING_NUMBERS = {
    "temperature": FLOATS, "top_p": FLOATS, "presence_penalty": FLOATS, "frequency_penalty": FLOATS,
    "repetition_penalty": FLOATS, "min_p": FLOATS, "seed": INTS, "top_k": INTS, "min_tokens": INTS,
    "loop_guard": INTS, "max_tokens": INTS, "n": INTS,
    "logit_bias": [{str(i): 1} for i in (0, -1, INT32_MAX, 2**64)] + [{"5": v} for v in FLOATS]
    + [{str(i): 1 for i in range(1025)}, {"9" * 5000: 1}],
    "stop": [[], ["x"] * 17, ["x" * 10000]],
}
LISTS = [[], [MESSAGE] * 2000]
FIELDS: dict[str, dict[str, list[Any]]] = {
    "chat": {**SAMPLING_NUMBERS, "max_completion_tokens": INTS, "top_logprobs": INTS, "messages": LISTS,
             "tools": [[], [TOOL] * 129]},
    "completions": {**SAMPLING_NUMBERS, "logprobs": INTS, "best_of": INTS,
                    "prompt": [[], [0], [-1], [2**64], [INT32_MAX], list(range(5000)), ["a", "b"]]},
    "responses": {**SAMPLING_NUMBERS,  # max_tokens and n too: refused there, whatever the value, but never a 5xx
                  "max_output_tokens": INTS, "top_logprobs": INTS, "input": [[], [ITEM] * 2000],
                  "tools": [[], [{"type": "function", "name": "f"}] * 129]},
    "conversations": {"items": [[], [ITEM] * 2000]},
    "tokenize": {"messages": [[], [MESSAGE] * 2000]},
    "detokenize": {"tokens": [[], [-1], [2**64], [INT64_MIN - 1], list(range(10000))]},
}
NO_STREAM = {"conversations", "tokenize", "detokenize"}  # routes that do not stream
# Values the schema allows at its edges: they must be served (a field's chosen defaults and settings aside).
LEGAL = {
    "temperature": [0.0, 2.0], "top_p": [5e-324, 1.0], "presence_penalty": [-2.0, 2.0],
    "frequency_penalty": [-2.0, 2.0], "repetition_penalty": [5e-324, 10.0], "min_p": [0.0, 1.0],
    "seed": [INT64_MIN, INT64_MAX, 0], "top_k": [-1, 0, 1], "min_tokens": [0, 2], "loop_guard": [0, 100],
    "logit_bias": [{"0": -100}, {"1": 100}], "stop": [[], ["x"] * 16], "n": [1, 16],
}


def numeric_or_list(annotation: Any) -> bool:
    """Whether a field's type is (or may be) a number or a list: the fields this test must reach."""
    origin = get_origin(annotation)
    if annotation in (int, float) or origin in (list, dict):
        return True
    return any(numeric_or_list(arg) for arg in get_args(annotation) if arg is not type(None))


def test_every_numeric_and_list_field_is_covered() -> None:
    """The table above reaches every such field of every request model (a new field must be added to it)."""
    ignored = {"metadata", "include", "modalities", "stream_options", "tool_choice", "parallel_tool_calls",
               "response_format", "text", "conversation", "echo", "stream", "logprobs"}
    for name, model in MODELS.items():
        wanted = {field for field, info in model.model_fields.items()
                  if numeric_or_list(info.annotation) and field not in ignored}
        if name == "completions":
            wanted.add("logprobs")  # an integer here, a boolean in chat
        missing = wanted - set(FIELDS[name])
        assert not missing, f"{name}: no edge values for {sorted(missing)}"


def body_text(body: dict[str, Any]) -> str:
    return json.dumps(body, allow_nan=True)  # NaN and Infinity as the JavaScript literals clients send


Sent = list[int]  # the count of requests sent, for the note


def check(client: httpx.Client, path: str, body: dict[str, Any], sent: Sent) -> int:
    """One request; asserts the answer's shape; returns its status."""
    sent[0] += 1
    where = f"{path} {body_text(body)[:300]}"
    if body.get("stream"):
        with client.stream("POST", path, content=body_text(body), headers={"Content-Type": "application/json"}
                           ) as reply:
            text = "".join(reply.iter_text())  # a reset would raise here
        status = reply.status_code
        if status == 200:
            data = [line.removeprefix("data: ") for line in text.splitlines() if line.startswith("data: ")]
            assert data, where
            if path == "/v1/responses":
                last = json.loads(data[-1])["type"]
                assert last in ("response.completed", "response.incomplete", "response.failed"), where
            else:
                assert data[-1] == "[DONE]", where
            assert '"server_error"' not in text, f"{where}: {text[-500:]}"
            return status
        body_json = json.loads(text)
    else:
        reply = client.post(path, content=body_text(body), headers={"Content-Type": "application/json"})
        status = reply.status_code
        body_json = reply.json()
    assert status < 500, f"{where}: {status} {body_json}"
    if status >= 400:
        assert set(body_json) == {"error"} and {"message", "type", "param", "code"} <= set(body_json["error"]), where
    return status


def still_serving(client: httpx.Client, sent: Sent) -> None:
    assert check(client, "/v1/chat/completions", BASES["chat"][1], sent) == 200


@pytest.fixture(scope="module")
def client(tiny_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tiny_server.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def sent() -> Iterator[Sent]:
    counter = [0]
    yield counter
    print(f"\nedge requests sent: {counter[0]}")


@pytest.mark.parametrize("name", list(BASES))
def test_every_edge_value_gets_an_answer_below_500(client: httpx.Client, sent: Sent, name: str) -> None:
    path, base = BASES[name]
    for field, values in FIELDS[name].items():
        for value in values:
            for stream in (False,) if name in NO_STREAM else (False, True):
                body = {**base, field: value, **({"stream": True} if stream else {})}
                if field == "top_logprobs":
                    body["logprobs" if name == "chat" else "include"] = True if name == "chat" else [
                        "message.output_text.logprobs"]
                check(client, path, body, sent)
        still_serving(client, sent)


@pytest.mark.parametrize("name", ["chat", "completions", "responses"])
def test_the_legal_extremes_are_served(client: httpx.Client, sent: Sent, name: str) -> None:
    path, base = BASES[name]
    for field, values in LEGAL.items():
        if name == "responses" and field == "n":
            continue
        for value in values:
            for stream in (False, True):
                body = {**base, field: value, "stream": stream}
                assert check(client, path, body, sent) == 200, f"{field}={value!r} refused"


EDGE_FIELDS = {name: FIELDS[name] for name in ("chat", "completions", "responses")}


@st.composite
def mixed_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(EDGE_FIELDS)))
    fields = draw(st.lists(st.sampled_from(sorted(EDGE_FIELDS[name])), min_size=2, max_size=5, unique=True))
    body = {**BASES[name][1], "stream": draw(st.booleans())}
    for field in fields:
        body[field] = draw(st.sampled_from(EDGE_FIELDS[name][field]))
    return BASES[name][0], body


@given(request_=mixed_requests())
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_mixed_edges_in_one_request_get_an_answer_below_500(client: httpx.Client, sent: Sent,
                                                            request_: tuple[str, dict[str, Any]]) -> None:
    path, body = request_
    check(client, path, body, sent)


def test_the_server_answers_after_the_edges(client: httpx.Client, sent: Sent) -> None:
    still_serving(client, sent)
    assert client.get("/v1/conversations", params={"limit": 101}).status_code == 400
    for limit in (0, -1, 2**80):
        reply = client.get("/v1/conversations", params={"limit": limit})
        assert reply.status_code == 400 and reply.json()["error"]["param"] == "limit"
