"""Conversations and Responses APIs through the official openai client, against a live server on a real Redis."""

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from harness.live_server import LiveServer
from model_prep.chat_format import chat_token_ids
from tests.conftest import API_KEYS, HISTORY_MAX_ITEMS


@pytest.fixture(scope="module")
def server(replicas: tuple[LiveServer, LiveServer]) -> LiveServer:
    return replicas[0]


def client_for(server: LiveServer, user: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEYS[user], max_retries=0)


@pytest.fixture
def alice(server: LiveServer) -> openai.OpenAI:
    return client_for(server, "alice")


@pytest.fixture
def bob(server: LiveServer) -> openai.OpenAI:
    return client_for(server, "bob")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def texts(client: openai.OpenAI, conversation_id: str) -> list[tuple[str, str]]:
    items = client.conversations.items.list(conversation_id, order="asc", limit=100).data
    return [(item.role, item.content[0].text) for item in items]


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_conversation_crud_and_item_pagination(alice: openai.OpenAI) -> None:
    conversation = alice.conversations.create(
        items=[{"role": "user", "content": f"question {i}"} for i in range(5)], metadata={"title": "five"}
    )
    assert conversation.object == "conversation" and conversation.id.startswith("conv_")
    assert alice.conversations.retrieve(conversation.id).metadata == {"title": "five"}
    assert alice.conversations.update(conversation.id, metadata={"title": "renamed"}).metadata == {"title": "renamed"}

    first = alice.conversations.items.list(conversation.id, limit=2, order="asc")
    assert [item.content[0].text for item in first.data] == ["question 0", "question 1"]
    assert first.has_more
    every = [item.content[0].text for item in alice.conversations.items.list(conversation.id, limit=2, order="asc")]
    assert every == [f"question {i}" for i in range(5)]  # the client followed `after` across three pages
    newest = alice.conversations.items.list(conversation.id, limit=1)  # OpenAI's default order: desc
    assert newest.data[0].content[0].text == "question 4"

    added = alice.conversations.items.create(conversation.id, items=[{"type": "message", "role": "assistant",
                                                                      "content": [{"type": "output_text",
                                                                                   "text": "an answer"}]}])
    item_id = added.data[0].id
    assert alice.conversations.items.retrieve(item_id, conversation_id=conversation.id).content[0].text == "an answer"
    alice.conversations.items.delete(item_id, conversation_id=conversation.id)
    with pytest.raises(openai.NotFoundError):
        alice.conversations.items.retrieve(item_id, conversation_id=conversation.id)

    deleted = alice.conversations.delete(conversation.id)
    assert deleted.deleted and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        alice.conversations.retrieve(conversation.id)


def test_streamed_response_continues_conversation_and_is_stored(alice: openai.OpenAI) -> None:
    conversation = alice.conversations.create(items=[{"role": "system", "content": "Be brief."}])
    alice.responses.create(model="tiny", conversation=conversation.id, input="Hello", max_output_tokens=6)
    with alice.responses.create(
        model="tiny", conversation={"id": conversation.id}, input="More", max_output_tokens=6, stream=True
    ) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          kinds[-1]]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    streamed = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert final.output_text == streamed and final.conversation.id == conversation.id

    stored = texts(alice, conversation.id)
    assert [role for role, _ in stored] == ["system", "user", "assistant", "user", "assistant"]
    assert stored[3] == ("user", "More") and stored[4] == ("assistant", streamed)
    assert alice.responses.retrieve(final.id).output_text == streamed
    alice.responses.delete(final.id)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(final.id)


def test_prompt_from_history_is_the_training_format(
    alice: openai.OpenAI, tokenizer: PreTrainedTokenizerBase
) -> None:
    """The server's prompt has exactly the token ids model_prep's formatting gives the whole conversation."""
    conversation = alice.conversations.create(items=[{"role": "system", "content": "You are LIMA."}])
    messages = [{"role": "system", "content": "You are LIMA."}]
    for question in ("What is a haiku?", "Write one about rain.", "Now one about snow."):
        reply = alice.responses.create(
            model="tiny", conversation=conversation.id, input=question, max_output_tokens=5, temperature=0
        )
        messages.append({"role": "user", "content": question})
        assert reply.usage.input_tokens == len(chat_token_ids(tokenizer, messages))
        assert reply.model_extra["dropped_turns"] == 0
        messages.append({"role": "assistant", "content": reply.output_text})


def test_previous_response_id_chain(alice: openai.OpenAI, tokenizer: PreTrainedTokenizerBase) -> None:
    first = alice.responses.create(model="tiny", input="One", max_output_tokens=4, instructions="Count.")
    second = alice.responses.create(model="tiny", input="Two", max_output_tokens=4, previous_response_id=first.id)
    third = alice.responses.create(model="tiny", input="Three", max_output_tokens=4, previous_response_id=second.id)
    # Instructions apply to their own response only (OpenAI's rule); inputs and outputs carry over.
    expected = [
        {"role": "user", "content": "One"}, {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "Two"}, {"role": "assistant", "content": second.output_text},
        {"role": "user", "content": "Three"},
    ]
    assert third.usage.input_tokens == len(chat_token_ids(tokenizer, expected))
    assert third.previous_response_id == second.id
    inputs = alice.responses.input_items.list(third.id)
    assert [item.content[0].text for item in inputs.data] == ["Three"]


def test_store_false_keeps_nothing(alice: openai.OpenAI) -> None:
    reply = alice.responses.create(model="tiny", input="Forget me", max_output_tokens=3, store=False)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(reply.id)
    with pytest.raises(openai.BadRequestError, match="Previous response") as missing:  # OpenAI's status: 400
        alice.responses.create(model="tiny", input="x", previous_response_id=reply.id)
    assert missing.value.code == "previous_response_not_found"


def test_users_cannot_reach_each_others_history(alice: openai.OpenAI, bob: openai.OpenAI, server: LiveServer) -> None:
    conversation = alice.conversations.create(items=[{"role": "user", "content": "alice's secret"}])
    reply = alice.responses.create(model="tiny", conversation=conversation.id, input="more", max_output_tokens=3)
    item_id = alice.conversations.items.list(conversation.id).data[0].id
    attempts = [
        lambda: bob.conversations.retrieve(conversation.id),
        lambda: bob.conversations.update(conversation.id, metadata={"x": "y"}),
        lambda: bob.conversations.items.list(conversation.id),
        lambda: bob.conversations.items.retrieve(item_id, conversation_id=conversation.id),
        lambda: bob.conversations.items.create(conversation.id, items=[{"role": "user", "content": "hi"}]),
        lambda: bob.conversations.items.delete(item_id, conversation_id=conversation.id),
        lambda: bob.conversations.delete(conversation.id),
        lambda: bob.responses.create(model="tiny", conversation=conversation.id, input="hi", max_output_tokens=2),
        lambda: bob.responses.retrieve(reply.id),
        lambda: bob.responses.delete(reply.id),
        lambda: bob.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                            extra_body={"conversation": conversation.id}),
    ]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    with pytest.raises(openai.BadRequestError, match="Previous response"):  # exactly as for a missing one
        bob.responses.create(model="tiny", previous_response_id=reply.id, input="hi", max_output_tokens=2)
    listed = httpx.get(f"{server.url}/v1/conversations", headers={"Authorization": f"Bearer {API_KEYS['bob']}"})
    assert conversation.id not in {c["id"] for c in listed.json()["data"]}
    assert texts(alice, conversation.id)[0] == ("user", "alice's secret")  # untouched by bob's attempts
    assert alice.responses.retrieve(reply.id).id == reply.id


def test_conversation_listing_newest_first(alice: openai.OpenAI, server: LiveServer) -> None:
    made = [alice.conversations.create(items=[{"role": "user", "content": f"topic {i}"}]).id for i in range(3)]
    headers = {"Authorization": f"Bearer {API_KEYS['alice']}"}
    page = httpx.get(f"{server.url}/v1/conversations", params={"limit": 2}, headers=headers).json()
    assert [c["id"] for c in page["data"]] == made[::-1][:2] and page["has_more"]
    assert page["data"][0]["preview"] == "topic 2"
    after = httpx.get(f"{server.url}/v1/conversations", params={"limit": 1, "after": page["last_id"]},
                      headers=headers).json()
    assert after["data"][0]["id"] == made[0]


def test_keys_are_required(server: LiveServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        reply = httpx.get(f"{server.url}/v1/models", headers=headers)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes need no key
    assert httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer sk-bob-test"}).status_code == 200


def test_chat_completions_can_continue_a_conversation(alice: openai.OpenAI) -> None:
    conversation = alice.conversations.create()
    reply = alice.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
        extra_body={"conversation": conversation.id},
    )
    chunks = list(alice.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Again"}], max_tokens=4, stream=True,
        extra_body={"conversation": conversation.id},
    ))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert texts(alice, conversation.id) == [
        ("user", "Hi"), ("assistant", reply.choices[0].message.content), ("user", "Again"), ("assistant", streamed)
    ]
    with pytest.raises(openai.BadRequestError, match="'n' must be 1"):
        alice.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}], n=2,
                                      extra_body={"conversation": conversation.id})


def test_oldest_turns_dropped_to_fit_the_context(
    alice: openai.OpenAI, server: LiveServer, tokenizer: PreTrainedTokenizerBase
) -> None:
    """The tiny model has 512 tokens of context: six ~90-token turns cannot all fit with 100 to answer."""
    turns = [(f"question {i} " + "words " * 40, f"answer {i} " + "more " * 40) for i in range(6)]
    items = [{"role": "system", "content": "Keep me."}]
    for question, answer in turns:
        items += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    conversation = alice.conversations.create(items=items)
    raw = alice.responses.with_raw_response.create(
        model="tiny", conversation=conversation.id, input="last question", max_output_tokens=100
    )
    reply = raw.parse()
    dropped = reply.model_extra["dropped_turns"]
    assert dropped > 0 and raw.headers["x-lima-dropped-turns"] == str(dropped)
    kept = [{"role": "system", "content": "Keep me."}]
    for question, answer in turns[dropped:]:
        kept += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    kept.append({"role": "user", "content": "last question"})
    assert reply.usage.input_tokens == len(chat_token_ids(tokenizer, kept))  # whole turns, system kept
    assert reply.usage.input_tokens + 100 <= 512
    longer = [*kept[:1], {"role": "user", "content": turns[dropped - 1][0]},
              {"role": "assistant", "content": turns[dropped - 1][1]}, *kept[1:]]
    assert len(chat_token_ids(tokenizer, longer)) + 100 > 512  # one turn fewer dropped would not fit

    with pytest.raises(openai.BadRequestError) as refused:
        alice.responses.create(model="tiny", conversation=conversation.id, input="again", max_output_tokens=100,
                               truncation="disabled")
    assert refused.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_long:
        alice.responses.create(model="tiny", conversation=conversation.id, input="word " * 600)
    assert too_long.value.code == "context_length_exceeded"
    assert len(texts(alice, conversation.id)) == len(items) + 2  # the refused turns stored nothing


def test_aborted_stream_stores_partial_answer_as_incomplete(alice: openai.OpenAI) -> None:
    # The tiny model can write all 400 tokens before the server sees the client go; then there was nothing to
    # abort, and the turn is asked again (an abort that never works still fails every attempt).
    for _ in range(5):
        answer, seen = abort_a_stream(alice)
        if answer.model_extra["finish_reason"] != "length":
            break
    assert answer.status == "incomplete" and answer.content[0].text.startswith(seen)
    assert answer.model_extra["finish_reason"] is None and 0 < answer.model_extra["tokens"] < 400


def abort_a_stream(alice: openai.OpenAI) -> tuple[Any, str]:
    """Stream a long answer into a new conversation and hang up after a few characters; the stored answer."""
    conversation = alice.conversations.create()
    with alice.responses.create(
        model="tiny", conversation=conversation.id, input="Tell me a long story", max_output_tokens=400,
        stream=True, extra_body={"ignore_eos": True},
    ) as stream:
        seen = ""
        for event in stream:
            if event.type == "response.output_text.delta":
                seen += event.delta
                if len(seen) > 10:
                    break  # leaving the block closes the connection mid-answer

    def stored() -> bool:
        return len(alice.conversations.items.list(conversation.id).data) == 2

    wait_for(stored)
    user, answer = alice.conversations.items.list(conversation.id, order="asc").data
    assert user.content[0].text == "Tell me a long story" and user.status == "completed"
    return answer, seen


def test_full_conversation_refuses_the_turn(alice: openai.OpenAI) -> None:
    conversation = alice.conversations.create(
        items=[{"role": "user", "content": str(i)} for i in range(HISTORY_MAX_ITEMS - 1)]
    )
    with pytest.raises(openai.BadRequestError) as full:
        alice.responses.create(model="tiny", conversation=conversation.id, input="one more", max_output_tokens=2)
    assert full.value.code == "conversation_full"
    assert len(texts(alice, conversation.id)) == HISTORY_MAX_ITEMS - 1  # nothing half-written


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "conversation": "conv_a", "previous_response_id": "resp_b"}, None),
        ({"input": "x", "n": 2}, None),
        ({"input": "x", "max_tokens": 5}, None),
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"input": "x", "truncation": "sometimes"}, "truncation"),
    ],
)
def test_response_requests_are_validated(server: LiveServer, body: dict, param: str | None) -> None:
    reply = httpx.post(f"{server.url}/v1/responses", json=body,
                       headers={"Authorization": f"Bearer {API_KEYS['alice']}"})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param:
        assert error["param"] == param


def test_ids_of_other_shapes_are_answered_as_missing_ones(alice: openai.OpenAI, server: LiveServer) -> None:
    """Issue 18: an id that is not of the shape the server issues (a real id with the store's key suffixes, encoded,
    with CR/LF, wildcards, unicode, 10 kB long) reaches no Redis key: each answer is the one a well-formed missing
    id gets (and bob's for alice's real id), with only the id's text different. Never a 5xx."""
    conversation = alice.conversations.create(items=[{"role": "user", "content": "alice's secret"}])
    reply = alice.responses.create(model="tiny", conversation=conversation.id, input="more", max_output_tokens=3)
    item_id = alice.conversations.items.list(conversation.id).data[0].id
    headers = {user: {"Authorization": f"Bearer {API_KEYS[user]}"} for user in API_KEYS}
    http = httpx.Client(base_url=server.url, timeout=60)

    def variants(real: str) -> list[str]:
        return [real + ":ids", real + ":items", real + "%3Aids", real + "\r\nX-Injected: 1", real + "\n", real.upper(),
                real[:-1] + "*", "*", real.split("_")[0] + "_*", real + "é", "κόσμε", real + "a" * 10_000, real[:-1],
                real + "}", real.replace("_", "_{u:x}_")]

    def ask(call: Callable[[str], httpx.Response], real: str, made_up: str, bob_too: bool = True) -> None:
        reference = call(made_up)
        assert reference.status_code in (400, 404), reference.text
        expected = reference.json()
        others = [(value, call(value)) for value in variants(real)]
        if bob_too:  # alice's real id, asked by bob (same call, bob's key)
            others.append((real, call("\0bob\0" + real)))
        for value, answer in others:
            assert answer.status_code == reference.status_code, (value[:80], answer.text[:300])
            body = answer.json()
            body["error"]["message"] = body["error"]["message"].replace(value, made_up)
            assert body == expected, (value[:80], answer.text[:300])

    def as_user(value: str) -> tuple[str, dict[str, str]]:
        if value.startswith("\0bob\0"):
            return value.removeprefix("\0bob\0"), headers["bob"]
        return value, headers["alice"]

    def path(value: str) -> str:
        return quote(value, safe="")

    def route(method: str, template: str, body: dict[str, Any] | None = None) -> Callable[[str], httpx.Response]:
        def call(value: str) -> httpx.Response:
            value, auth = as_user(value)
            return http.request(method, template.format(path(value)), json=body, headers=auth)
        return call

    def posted(url: str, body: Callable[[str], dict[str, Any]]) -> Callable[[str], httpx.Response]:
        def call(value: str) -> httpx.Response:
            value, auth = as_user(value)
            return http.post(url, json=body(value), headers=auth)
        return call

    made_up_conversation, made_up_response, made_up_item = (f"{kind}{uuid.uuid4().hex}" for kind in
                                                            ("conv_", "resp_", "msg_"))
    conversation_routes = [
        route("GET", "/v1/conversations/{}"), route("POST", "/v1/conversations/{}", {"metadata": {"k": "v"}}),
        route("GET", "/v1/conversations/{}/items"),
        route("POST", "/v1/conversations/{}/items", {"items": [{"role": "user", "content": "x"}]}),
        route("GET", "/v1/conversations/{}/items/" + item_id),
        route("DELETE", "/v1/conversations/{}/items/" + item_id), route("DELETE", "/v1/conversations/{}"),
        posted("/v1/responses", lambda c: {"model": "tiny", "input": "hi", "max_output_tokens": 2, "conversation": c}),
        posted("/v1/responses", lambda c: {"model": "tiny", "input": "hi", "max_output_tokens": 2,
                                           "conversation": {"id": c}}),
        posted("/v1/chat/completions", lambda c: {"model": "tiny", "max_tokens": 2, "conversation": c,
                                                  "messages": [{"role": "user", "content": "hi"}]}),
    ]
    for call in conversation_routes:
        ask(call, conversation.id, made_up_conversation)
    item_routes = [
        route("GET", f"/v1/conversations/{conversation.id}/items/{{}}"),
        route("DELETE", f"/v1/conversations/{conversation.id}/items/{{}}"),
        lambda value: http.get(f"/v1/conversations/{conversation.id}/items", params={"after": value},
                               headers=headers["alice"]),  # an unknown cursor: 400, as today
    ]
    for call in item_routes:
        ask(call, item_id, made_up_item, bob_too=False)
    response_routes = [
        route("GET", "/v1/responses/{}"), route("GET", "/v1/responses/{}/input_items"),
        posted("/v1/responses", lambda r: {"model": "tiny", "input": "hi", "max_output_tokens": 2,
                                           "previous_response_id": r}),
        route("DELETE", "/v1/responses/{}"),
    ]
    for call in response_routes:
        ask(call, reply.id, made_up_response)
    # The conversation list's cursor: a malformed one is an unknown one (the first page), never a 5xx.
    listing = http.get("/v1/conversations", params={"after": made_up_conversation}, headers=headers["alice"])
    assert listing.status_code == 200
    for value in variants(conversation.id):
        answer = http.get("/v1/conversations", params={"after": value}, headers=headers["alice"])
        assert (answer.status_code, answer.json()) == (200, listing.json()), value[:80]
    # Nothing was touched: alice's conversation, its item and her response are all still there.
    assert texts(alice, conversation.id)[0] == ("user", "alice's secret")
    assert alice.conversations.items.retrieve(item_id, conversation_id=conversation.id).id == item_id
    assert alice.responses.retrieve(reply.id).id == reply.id
