"""The server's objects match the `openai` package's own types field for field, and the OpenAPI schema declares a
typed answer for every route.

Each object comes from a live server (real engine, tiny model) as raw JSON and is validated by the openai type the
official client parses it into; then every field is compared: a field OpenAI declares must come back unchanged
(no coercion), and a field OpenAI does not declare must be one of this server's documented extensions."""

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItemList, Message
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter
from vllm.engine.arg_utils import AsyncEngineArgs

from harness.live_server import LiveServer
from server.api.app import build_app
from server.core.settings import ServerSettings

# Fields this server adds to OpenAI's objects (README, "API"), by the kind of object that carries them.
EXTENSIONS = {
    "conversation": {"updated_at", "preview"},
    "message": {"created_at", "response_id", "tokens", "finish_reason"},
    "function_call": {"created_at", "response_id"},
    "function_call_output": {"created_at"},
    "response": {"store", "dropped_turns"},
    "model": {"max_model_len", "default_sampling", "parent", "root"},
}


def kind_of(payload: dict[str, Any]) -> str:
    return str(payload.get("object") or payload.get("type"))


def assert_same_fields(payload: Any, parsed: Any, path: str = "$") -> None:
    """`parsed` (the openai type's reading of `payload`) holds every value of `payload` unchanged, field by field."""
    if isinstance(parsed, BaseModel):
        assert isinstance(payload, dict), f"{path}: an object was expected, got {payload!r}"
        declared = type(parsed).model_fields
        for name, value in payload.items():
            if name in declared:
                assert_same_fields(value, getattr(parsed, name), f"{path}.{name}")
            else:
                assert name in EXTENSIONS.get(kind_of(payload), set()), (
                    f"{path}.{name}: not a field of openai's {type(parsed).__name__} nor a documented extension")
        missing = [n for n, field in declared.items() if field.is_required() and n not in payload]
        assert not missing, f"{path}: openai's {type(parsed).__name__} requires {missing}"
    elif isinstance(parsed, list):
        assert isinstance(payload, list) and len(payload) == len(parsed), path
        for index, (sent, read) in enumerate(zip(payload, parsed, strict=True)):
            assert_same_fields(sent, read, f"{path}[{index}]")
    elif isinstance(parsed, dict):
        assert payload == parsed, path
    else:
        assert payload == parsed and type(payload) in (type(parsed), int), (
            f"{path}: {payload!r} reads as {parsed!r}")


def check(payload: dict[str, Any], openai_type: Any) -> None:
    assert_same_fields(payload, TypeAdapter(openai_type).validate_python(payload))


def sse_data(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    return [json.loads(line) for line in lines if line != "[DONE]"]


def test_every_object_matches_the_openai_types(tiny_server: LiveServer) -> None:
    api = httpx.Client(base_url=f"{tiny_server.url}/v1", timeout=120)
    check(api.get("/models").json()["data"][0], Model)
    ask = {"model": "tiny", "max_tokens": 6, "temperature": 0}
    check(api.post("/chat/completions", json={**ask, "messages": [{"role": "user", "content": "Hi"}]}).json(),
          ChatCompletion)
    chunks = sse_data(api.post("/chat/completions", json={
        **ask, "messages": [{"role": "user", "content": "Hi"}], "stream": True,
        "stream_options": {"include_usage": True}}))
    for chunk in chunks:
        check(chunk, ChatCompletionChunk)
    check(api.post("/completions", json={**ask, "prompt": "Once"}).json(), Completion)

    conversation = api.post("/conversations", json={
        "items": [{"role": "system", "content": "Be brief."}], "metadata": {"topic": "types"}}).json()
    check(conversation, Conversation)
    answer = api.post("/responses", json={
        "model": "tiny", "max_output_tokens": 6, "temperature": 0, "input": "Hello",
        "conversation": conversation["id"], "metadata": {"k": "v"}}).json()
    check(answer, Response)
    chained = api.post("/responses", json={
        "model": "tiny", "max_output_tokens": 6, "input": [{"role": "user", "content": "Again"}],
        "previous_response_id": answer["id"], "instructions": "Be brief."}).json()
    check(chained, Response)
    check(api.get(f"/responses/{chained['id']}").json(), Response)
    check(api.get(f"/responses/{chained['id']}/input_items").json(), ResponseItemList)
    items = api.get(f"/conversations/{conversation['id']}/items", params={"order": "asc"}).json()
    assert [item["role"] for item in items["data"]] == ["system", "user", "assistant"]
    check(items, ConversationItemList)
    check(api.get(f"/conversations/{conversation['id']}/items/{items['data'][2]['id']}").json(), Message)
    check(api.post(f"/conversations/{conversation['id']}", json={"metadata": {"topic": "new"}}).json(), Conversation)

    events = sse_data(api.post("/responses", json={
        "model": "tiny", "max_output_tokens": 6, "input": "Stream", "conversation": conversation["id"],
        "stream": True}))
    assert events[0]["type"] == "response.created" and events[-1]["type"] in ("response.completed",
                                                                               "response.incomplete")
    for event in events:
        check(event, ResponseStreamEvent)

    tool = {"type": "function", "name": "get_time", "parameters": {
        "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}
    call_turn = {"model": "tiny", "max_output_tokens": 12, "temperature": 0, "input": "Time?", "tools": [tool],
                 "tool_choice": {"type": "function", "name": "get_time"}, "conversation": conversation["id"]}
    events = sse_data(api.post("/responses", json={**call_turn, "stream": True}))
    assert "response.function_call_arguments.done" in [event["type"] for event in events]
    for event in events:
        check(event, ResponseStreamEvent)
    call = events[-1]["response"]["output"][0]
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "noon"}
    check(api.post("/responses", json={**call_turn, "input": [result], "tool_choice": "none"}).json(), Response)
    items = api.get(f"/conversations/{conversation['id']}/items", params={"order": "asc"}).json()
    assert {"function_call", "function_call_output"} <= {item["type"] for item in items["data"]}
    check(items, ConversationItemList)

    check(api.delete(f"/conversations/{conversation['id']}").json(), ConversationDeletedResource)


def test_a_mismatch_is_caught() -> None:
    """The comparison fails on a coerced value and on an undeclared field (so the test above can fail)."""
    with pytest.raises(AssertionError, match="reads as"):
        check({"id": "m", "object": "model", "created": "1", "owned_by": "me"}, Model)
    with pytest.raises(AssertionError, match="nor a documented extension"):
        check({"id": "m", "object": "model", "created": 1, "owned_by": "me", "secret": 1}, Model)


def test_openapi_declares_a_typed_answer_for_every_route(tmp_path: Any) -> None:
    """/docs and schemathesis read this schema: every operation names the object it answers with (a model in
    the schema's components, not a free-form object)."""
    app = build_app(ServerSettings(embedded_redis_dir=tmp_path), AsyncEngineArgs(model=str(tmp_path)))
    schema = app.openapi()
    def named(answer: dict) -> bool:  # a component, or a union of components (an item of any kind)
        return "$ref" in answer or (bool(answer.get("oneOf")) and all("$ref" in part for part in answer["oneOf"]))

    untyped = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not named(operation["responses"]["200"]["content"]["application/json"]["schema"])
    ]
    assert untyped == []
    assert len(schema["paths"]) >= 11


OPENAPI_COPY = Path(__file__).with_name("openapi.json")


def test_openapi_is_the_checked_in_document(tmp_path: Any) -> None:
    """The API's schema is what tests/openapi.json says, so a change of any route, field or error shape is a
    decision seen in review, not an accident. After a deliberate change: LIMA_WRITE_OPENAPI=1 pytest this test."""
    app = build_app(ServerSettings(embedded_redis_dir=tmp_path), AsyncEngineArgs(model=str(tmp_path)))
    schema = json.loads(json.dumps(app.openapi()))
    if os.environ.get("LIMA_WRITE_OPENAPI") == "1":
        OPENAPI_COPY.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    checked_in = json.loads(OPENAPI_COPY.read_text())
    changed = sorted(f"{path} {method}" for path in {*schema["paths"], *checked_in["paths"]}
                     for method in {*schema["paths"].get(path, {}), *checked_in["paths"].get(path, {})}
                     if schema["paths"].get(path, {}).get(method) != checked_in["paths"].get(path, {}).get(method))
    models = sorted(name for name in {*schema["components"]["schemas"], *checked_in["components"]["schemas"]}
                    if schema["components"]["schemas"].get(name) != checked_in["components"]["schemas"].get(name))
    assert (changed, models) == ([], []), "the API changed: operations and models that differ from tests/openapi.json"
    assert schema == checked_in
