"""Server-sent events: the response, the completions framing (JSON chunks, in-band errors, [DONE]), and
cancellation of non-streamed work when the client disconnects."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import Request
from sse_starlette import EventSourceResponse

from server.api.errors import APIError, ClientDisconnected, as_api_error, unhandled
from server.api.protocol import ErrorResponse
from server.core.failures import Failure

T = TypeVar("T")


def sse_response(events: AsyncIterator[dict[str, str]], shutdown_grace: float,
                 headers: dict[str, str] | None = None) -> EventSourceResponse:
    """Events as {"data": ..., "event": ...}; a ping comment every 15 s keeps idle proxies from cutting the stream.
    On SIGTERM the stream may run on for `shutdown_grace` seconds before it is cut (then stored as incomplete)."""
    return EventSourceResponse(
        events, ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        shutdown_grace_period=shutdown_grace,
    )


async def completion_events(chunks: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """Chat and text completion framing: JSON chunks, an error in-band if one comes, then [DONE]."""
    try:
        async for data in chunks:
            yield {"data": data}
    except (APIError, Failure) as exc:
        # Headers are gone once streaming began: report the error in-band, as OpenAI does.
        yield {"data": ErrorResponse(error=as_api_error(exc).body).model_dump_json()}
    except Exception as exc:  # a bug: said in-band too, so the stream still ends properly
        yield {"data": ErrorResponse(error=unhandled(exc, "a completion stream").body).model_dump_json()}
    yield {"data": "[DONE]"}


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (frees engine capacity for others); then
    ClientDisconnected ends the request quietly (status 499 in the log and metrics, not a 500)."""
    task = asyncio.ensure_future(work)
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while not await request.is_disconnected():
            await asyncio.sleep(0.5)
        disconnected = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if disconnected:
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()
