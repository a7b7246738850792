"""Fuzz every route of the server's own OpenAPI schema with schemathesis (generated valid and invalid requests,
through hypothesis): no 5xx, no crash; and every id-taking route with ids crafted to reach another user's data.
The tiny model answers, so generation requests are cheap.
(schemathesis' pytest plugin does not work with pytest 9, so it is switched off in pyproject.toml and each
operation's strategy is driven here.)"""

import operator
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import openai
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from harness.live_server import LiveServer
from tests.conftest import API_KEYS
from tests.metrics_scrape import scrape, total

EXAMPLES_PER_ROUTE = 25


def test_no_route_answers_5xx_and_the_server_stays_up(tiny_server: LiveServer) -> None:
    before = total(scrape(tiny_server.url), "lima_http_requests_total")
    schema = schemathesis.openapi.from_url(f"{tiny_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15  # every route of the API, ops and extensions included

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=tiny_server.url, checks=[not_a_server_error], timeout=60)

        no_server_error()
    sent = total(scrape(tiny_server.url), "lima_http_requests_total") - before
    assert sent >= 5 * len(operations), f"only {sent} requests reached the server"
    assert total(scrape(tiny_server.url), "lima_http_requests_total", status="500") == 0
    assert httpx.get(f"{tiny_server.url}/ready", timeout=10).status_code == 200


# Appended to another user's real id: the store's own key names, wildcards, injection and cluster hash-tag text.
SUFFIXES = [":ids", ":items", ":convs", ":rate", ":sizes", "*", "?", "[a-z]", "\r\nX-Injected: 1", "\n", "\0", "}",
            "{u:0}", "/..", "%3Aids", "é", "\u202e", " "]
ISOLATION_EXAMPLES_PER_TARGET = 30


def same_answer_as(missing: httpx.Response, made_up_id: str, value: str, answer: httpx.Response) -> bool:
    """`answer` (to `value`) is `missing`'s answer (to `made_up_id`, well-formed), the id's own text aside."""
    if answer.status_code != missing.status_code:
        return False
    expected, body = missing.json(), answer.json()
    expected["error"]["message"] = expected["error"]["message"].replace(made_up_id, "<id>")
    body["error"]["message"] = body["error"]["message"].replace(value, "<id>")
    return bool(body == expected)


def fuzz_one_target(description: str, call: Callable[[str], httpx.Response], real_id: str, made_up_id: str,
                    secret: str, longest: int) -> int:
    """Another user's `real_id` verbatim, then ids crafted from it and random ones (up to `longest` characters);
    returns the requests sent."""
    missing = call(made_up_id)
    assert missing.status_code in (400, 404), (description, missing.text[:300])
    verbatim = call(real_id)  # another user's real id: must read as missing
    assert same_answer_as(missing, made_up_id, real_id, verbatim), (description, verbatim.text[:300])
    sent = 2
    prefix = real_id.split("_")[0]
    crafted = st.one_of(
        st.builds(operator.add, st.just(real_id), st.sampled_from(SUFFIXES)),
        st.builds(operator.add, st.just(real_id), st.text(max_size=12)),  # unicode and control characters
        st.text(min_size=1, max_size=40),
        st.sampled_from(["*", f"{prefix}_*", real_id * 3, real_id + "x" * (longest - len(real_id))]),
        st.uuids().map(lambda u: f"{prefix}_{u.hex}"),  # well-formed, missing
    )

    @given(value=crafted)
    @settings(max_examples=ISOLATION_EXAMPLES_PER_TARGET, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def isolated(value: str) -> None:
        nonlocal sent
        answer = call(value)
        sent += 1
        assert answer.status_code < 500, (description, value[:80], answer.text[:300])
        assert secret not in answer.text, (description, value[:80])
        # The not-found answer is the same whatever was sent (a "/" in a path id is routing's own 404).
        if answer.status_code == 404 and "/" not in value:
            assert same_answer_as(missing, made_up_id, value, answer), (description, value[:80], answer.text[:300])

    isolated()
    return sent


def test_crafted_ids_from_another_user_reach_no_data_and_read_as_missing(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    """Issue 18: alice stores a conversation and a response (on one replica); bob (on the other) sends, to every
    route and body field that takes an id, ids crafted from alice's real ones (key-name suffixes, wildcards, CR/LF,
    NUL, unicode, 100 kB) and random ones. Never a 5xx, never a byte of alice's data, and alice's real ids read
    exactly as missing ones (status and body, apart from the id's own text). The routes come from the OpenAPI
    schema, so a new route that takes an id is fuzzed too."""
    secret = f"alice-secret-{uuid.uuid4().hex}"
    alice = openai.OpenAI(base_url=f"{replicas[0].url}/v1", api_key=API_KEYS["alice"], max_retries=0)
    conversation = alice.conversations.create(items=[{"role": "user", "content": secret}])
    response = alice.responses.create(model="tiny", conversation=conversation.id, input=secret, max_output_tokens=3)
    real = {"conversation_id": conversation.id, "response_id": response.id,
            "item_id": alice.conversations.items.list(conversation.id).data[0].id}
    http = httpx.Client(base_url=replicas[1].url, timeout=120, headers={"Authorization": f"Bearer {API_KEYS['bob']}"})

    def made_up(kind: str) -> str:
        return f"{real[kind].split('_')[0]}_{uuid.uuid4().hex}"

    # (description, id kind, call, longest id): a URL carries at most 64 kB (httpx's limit), a body 100 kB here
    targets: list[tuple[str, str, Callable[[str], httpx.Response], int]] = []
    schema = httpx.get(f"{replicas[1].url}/openapi.json", timeout=30).json()
    for template, methods in schema["paths"].items():
        for name in re.findall(r"{(\w+)}", template):
            assert name in real, f"{template}: a new id-taking route; give the fuzz a real id of its kind"
            for method in methods:
                def call(value: str, template: str = template, name: str = name, method: str = method
                         ) -> httpx.Response:
                    # the other path parameters are alice's real ids: only `name` is crafted
                    filled = {key: quote(value if key == name else real[key], safe="") for key in real}
                    body = None
                    if method == "post":  # the routes' own bodies: only the id can be wrong
                        body = ({"items": [{"role": "user", "content": "x"}]} if template.endswith("/items")
                                else {"metadata": {"k": "v"}})
                    return http.request(method.upper(), template.format(**filled), json=body)
                targets.append((f"{method.upper()} {template} ({name})", name, call, 60_000))
    for field, kind, path in [("conversation", "conversation_id", "/v1/responses"),
                              ("previous_response_id", "response_id", "/v1/responses"),
                              ("conversation", "conversation_id", "/v1/chat/completions")]:
        def posted(value: str, field: str = field, path: str = path) -> httpx.Response:
            body: dict[str, Any] = {"model": "tiny", "max_tokens": 2, "max_output_tokens": 2, field: value}
            body["messages" if path.endswith("completions") else "input"] = (
                [{"role": "user", "content": "hi"}] if path.endswith("completions") else "hi")
            return http.post(path, json=body)
        targets.append((f"POST {path} ({field})", kind, posted, 100_000))
    assert len(targets) >= 12, [target[0] for target in targets]

    tried = sum(fuzz_one_target(description, call, real[kind], made_up(kind), secret, longest)
                for description, kind, call, longest in targets)
    print(f"isolation fuzz: {tried} requests from bob over {len(targets)} id-taking targets, no 5xx, no leak")
    assert tried >= len(targets) * ISOLATION_EXAMPLES_PER_TARGET
    # alice's data is whole afterwards
    assert [item.content[0].text for item in alice.conversations.items.list(conversation.id, order="asc").data][:1] \
        == [secret]
    assert alice.responses.retrieve(response.id).id == response.id
