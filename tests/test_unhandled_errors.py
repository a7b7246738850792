"""A bug never ends a request in a dropped connection: over real HTTP (uvicorn on a local port), a route that raises
answers OpenAI's 500 with the request's id, a stream that raises mid-way says so in-band and still ends with
[DONE], each is logged once with that id and counted in lima_unhandled_errors_total, and the server answers the
next request."""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from server.api.errors import install_error_handlers
from server.api.middleware import MetricsMiddleware, UnhandledErrorMiddleware
from server.api.streaming import completion_events, sse_response


def unhandled_count() -> float:
    return REGISTRY.get_sample_value("lima_unhandled_errors_total") or 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware)

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("internal detail")

    @app.get("/stream-boom")
    async def stream_boom() -> object:
        async def chunks() -> AsyncIterator[str]:
            yield '{"first": true}'
            await asyncio.sleep(0)
            raise KeyError("internal detail")

        return sse_response(completion_events(chunks()), shutdown_grace=1)

    @app.get("/fine")
    async def fine() -> dict:
        return {"ok": True}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_a_raising_route_answers_500_with_its_request_id(url: str, caplog: pytest.LogCaptureFixture) -> None:
    before = unhandled_count()
    with caplog.at_level(logging.ERROR, logger="server.api.errors"):
        reply = httpx.get(f"{url}/boom", headers={"X-Request-Id": "trace-42"}, timeout=30)
    assert reply.status_code == 500 and reply.headers["x-request-id"] == "trace-42"
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "server_error")
    assert "internal detail" not in error["message"] and "trace-42" in error["message"]
    logged = [record for record in caplog.records if "unhandled error" in record.getMessage()]
    assert len(logged) == 1 and "trace-42" in logged[0].getMessage() and logged[0].exc_info is not None
    assert unhandled_count() == before + 1
    fine = httpx.get(f"{url}/fine", timeout=30)
    assert fine.json() == {"ok": True} and fine.headers["x-request-id"].startswith("req_")


def test_a_stream_that_raises_ends_with_an_error_and_done(url: str, caplog: pytest.LogCaptureFixture) -> None:
    before = unhandled_count()
    with caplog.at_level(logging.ERROR, logger="server.api.errors"), \
            httpx.stream("GET", f"{url}/stream-boom", headers={"X-Request-Id": "trace-43"}, timeout=30) as reply:
        data = [line.removeprefix("data: ") for line in reply.iter_lines() if line.startswith("data: ")]
    assert reply.status_code == 200 and data[0] == '{"first": true}' and data[-1] == "[DONE]"
    assert '"server_error"' in data[1] and "trace-43" in data[1] and "internal detail" not in data[1]
    logged = [record for record in caplog.records if "unhandled error" in record.getMessage()]
    assert len(logged) == 1 and "trace-43" in logged[0].getMessage()
    assert unhandled_count() == before + 1
    assert httpx.get(f"{url}/fine", timeout=30).status_code == 200


def test_a_plain_request_id_is_kept_and_anything_else_replaced(url: str) -> None:
    assert httpx.get(f"{url}/fine", headers={"X-Request-Id": "a" * 65}, timeout=30).headers["x-request-id"] \
        .startswith("req_")
    assert httpx.get(f"{url}/fine", headers={"X-Request-Id": "bad id; drop"}, timeout=30).headers["x-request-id"] \
        .startswith("req_")
