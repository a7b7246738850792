"""Request validation and error mapping without an engine: the server's request models and error handlers in a
bare FastAPI app, so every malformed request's OpenAI-style error is checked in milliseconds."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.api.chat.protocol import ChatCompletionRequest
from server.api.completions.protocol import CompletionRequest
from server.api.errors import APIError, install_error_handlers, param_path
from server.api.middleware import UnhandledErrorMiddleware
from server.api.responses.protocol import ResponseRequest
from tests.test_errors import INVALID_FIELDS, USER


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)  # what answers a bug's exception (build_app adds it too)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest) -> dict:
        return {}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> dict:
        return {}

    @app.post("/v1/responses")
    async def responses(body: ResponseRequest) -> dict:
        return {}

    @app.get("/v1/teapot")
    async def teapot() -> dict:
        raise APIError(418, "I'm a teapot.", param="kettle", code="teapot")

    @app.get("/v1/boom")
    async def boom() -> dict:
        raise RuntimeError("internal detail")

    return TestClient(app, raise_server_exceptions=False)


def error_of(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(("body", "param"), INVALID_FIELDS[:-1])  # the last needs the server's --max-choices
def test_invalid_fields_name_the_parameter(client: TestClient, body: dict, param: str) -> None:
    error = error_of(client.post("/v1/chat/completions", json=body), 400)
    assert (error["param"], error["type"], error["code"]) == (param, "invalid_request_error", "invalid_value")
    assert param in error["message"]


def test_missing_field_and_malformed_json(client: TestClient) -> None:
    assert error_of(client.post("/v1/chat/completions", json={}), 400)["message"] == \
        "Missing required parameter: 'messages'."
    malformed = client.post("/v1/chat/completions", content=b'{"messages": [',
                            headers={"content-type": "application/json"})
    error = error_of(malformed, 400)
    assert error["message"].startswith("Request body is not valid JSON") and error["param"] is None


@pytest.mark.parametrize(("path", "body", "param", "words"), [
    ("/v1/completions", {"prompt": ["a", "b"]}, "prompt", "one prompt per request"),
    ("/v1/completions", {"prompt": ""}, "prompt", "must not be empty"),
    ("/v1/responses", {"input": "hi", "n": 2}, None, "'n' is not supported"),
    ("/v1/responses", {"input": "hi", "max_tokens": 5}, None, "max_output_tokens"),
    ("/v1/responses", {"input": []}, "input", "at least 1"),
    ("/v1/chat/completions", {"messages": USER, "conversation": "conv_1", "n": 2}, None, "'n' must be 1"),
    ("/v1/chat/completions", {"messages": USER, "response_format": {"type": "json_schema"}}, "response_format",
     "needs 'json_schema'"),
])
def test_rules_across_fields(client: TestClient, path: str, body: dict, param: str | None, words: str) -> None:
    error = error_of(client.post(path, json=body), 400)
    assert words in error["message"]
    if param:
        assert error["param"] == param


def test_openais_own_codes_come_back_as_the_code(client: TestClient) -> None:
    both = {"input": "hi", "conversation": "conv_1", "previous_response_id": "resp_1"}
    error = error_of(client.post("/v1/responses", json=both), 400)
    assert error["code"] == "mutually_exclusive_parameters" and "'previous_response_id' or 'conversation'" in \
        error["message"]
    error = error_of(client.post("/v1/chat/completions", json={"messages": USER, "audio": {"voice": "x"}}), 400)
    assert (error["code"], error["param"]) == ("unsupported_parameter", "audio")


def test_api_errors_keep_their_status_and_unexpected_ones_hide_the_detail(client: TestClient) -> None:
    assert error_of(client.get("/v1/teapot"), 418) == {
        "message": "I'm a teapot.", "type": "server_error", "param": "kettle", "code": "teapot"}
    boom = error_of(client.get("/v1/boom"), 500)
    assert "internal detail" not in boom["message"] and boom["type"] == "server_error"
    assert error_of(client.get("/v1/nothing"), 404)["type"] == "invalid_request_error"


def test_param_paths_read_like_openais() -> None:
    assert param_path(("body", "messages", 0, "role")) == "messages[0].role"
    assert param_path(("body", "messages", 0, "content", "str")) == "messages[0].content"
    assert param_path(("query", "limit")) == "limit"
    assert param_path(("body",)) is None
