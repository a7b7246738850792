"""ASGI middleware: the HTTP metrics of every request; each request's id, and OpenAI's 500 for an exception that
escaped the app; the request body limit, enforced before any parsing so a huge body cannot cost memory or time."""

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import REQUEST_ID, APIError, error_response, unhandled
from server.core.metrics import IN_FLIGHT, REQUEST_LATENCY, REQUESTS


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with an OpenAI-style 413, whether or not Content-Length is honest."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> APIError:
        return APIError(
            413, f"Request body exceeds the limit of {self.max_bytes} bytes.", code="request_too_large"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(self._too_large())(scope, receive, send)
            return
        # Read the body here (bounded), then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(self._too_large())(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (never the raw path: bounded label sets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            IN_FLIGHT.dec()
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - start)


# A request id a client (or a proxy before it) sent is kept when it is short and plain; else the server makes one.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class UnhandledErrorMiddleware:
    """Gives each request an id (the client's X-Request-Id when it sent a plain one), sent back as X-Request-Id;
    and answers an exception that escaped the app (a bug) with OpenAI's 500 instead of a dropped connection,
    logged once with that id (`errors.unhandled`). Streams report their own errors in-band (streaming.py)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if CLIENT_REQUEST_ID.fullmatch(given) else f"req_{uuid.uuid4().hex}"
        token = REQUEST_ID.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = unhandled(exc, f"{scope['method']} {scope['path']}")
            if not started:
                await error_response(error)(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
