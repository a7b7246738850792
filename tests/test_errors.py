"""Every bad request gets a precise OpenAI-style error, and the server keeps serving."""

import httpx
import pytest

from harness.live_server import LiveServer

USER = [{"role": "user", "content": "hello"}]


def post(server: LiveServer, body: object, path: str = "/v1/chat/completions") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60)


def assert_error(response: httpx.Response, status: int, param: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    if code:
        assert error["code"] == code
    return error


def test_malformed_json(tiny_server: LiveServer) -> None:
    response = httpx.post(
        f"{tiny_server.url}/v1/chat/completions", content=b'{"messages": [', timeout=30,
        headers={"content-type": "application/json"},
    )
    error = assert_error(response, 400, None)
    assert error["type"] == "invalid_request_error" and "JSON" in error["message"]


def test_unknown_model(tiny_server: LiveServer) -> None:
    error = assert_error(post(tiny_server, {"model": "gpt-9", "messages": USER}), 404, "model", "model_not_found")
    assert "gpt-9" in error["message"]


# Bad fields and the parameter the error must name; all but the last are refused by the request models alone
# (test_request_validation.py checks those without an engine); n over --max-choices needs the server's settings.
INVALID_FIELDS = [
    ({"messages": []}, "messages"),
    ({}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": USER, "n": 0}, "n"),
    ({"messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"messages": USER, "temperature": 5}, "temperature"),
    ({"messages": USER, "top_p": 0}, "top_p"),
    ({"messages": USER, "n": 1000}, "n"),
]


@pytest.mark.parametrize(("body", "param"), INVALID_FIELDS)
def test_invalid_fields_name_the_parameter(tiny_server: LiveServer, body: dict, param: str) -> None:
    assert_error(post(tiny_server, body), 400, param)


def test_max_tokens_over_context_window(tiny_server: LiveServer) -> None:
    error = assert_error(
        post(tiny_server, {"messages": USER, "max_tokens": 5000}), 400, "max_tokens", "context_length_exceeded"
    )
    assert "512" in error["message"]  # the tiny model's context window


def test_prompt_over_context_window(tiny_server: LiveServer) -> None:
    long_text = "The capital of France is Paris. " * 300
    assert_error(
        post(tiny_server, {"messages": [{"role": "user", "content": long_text}]}), 400, "messages",
        "context_length_exceeded",
    )
    assert_error(
        post(tiny_server, {"prompt": long_text}, "/v1/completions"), 400, "prompt", "context_length_exceeded"
    )


def test_oversized_body_is_refused_before_parsing(tiny_server: LiveServer) -> None:
    huge = {"messages": [{"role": "user", "content": "x" * 70_000}]}  # server limit: 65536 bytes
    assert_error(post(tiny_server, huge), 413, None, "request_too_large")


def test_oversized_chunked_body_without_content_length(tiny_server: LiveServer) -> None:
    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    response = httpx.post(f"{tiny_server.url}/v1/chat/completions", content=chunks(), timeout=30)
    assert_error(response, 413, None, "request_too_large")


def test_completions_rejects_batched_prompts(tiny_server: LiveServer) -> None:
    assert_error(post(tiny_server, {"prompt": ["a", "b"]}, "/v1/completions"), 400, "prompt")


def test_unknown_route_is_an_openai_error(tiny_server: LiveServer) -> None:
    assert_error(httpx.get(f"{tiny_server.url}/v1/nothing", timeout=10), 404, None)


def test_server_survives_a_hundred_bad_requests(tiny_server: LiveServer) -> None:
    bad = [b"{", b"[]", b'{"messages": 5}', b'{"messages": [{"role": "tool", "content": "x"}]}', b"\xff\xfe"]
    with httpx.Client(timeout=30) as http:
        for i in range(100):
            response = http.post(
                f"{tiny_server.url}/v1/chat/completions", content=bad[i % len(bad)],
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, response.text
        good = http.post(f"{tiny_server.url}/v1/chat/completions", json={"messages": USER, "max_tokens": 3})
    assert good.status_code == 200
    assert good.json()["choices"][0]["message"]["content"] is not None
    assert tiny_server.process.poll() is None
