"""Server-sent events in OpenAI's framing: one JSON object per event, errors as an event, then [DONE]."""

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import Request
from sse_starlette import EventSourceResponse

from server.errors import APIError
from server.protocol import ErrorResponse

T = TypeVar("T")


def sse_response(events: AsyncIterator[str]) -> EventSourceResponse:
    async def framed() -> AsyncIterator[dict[str, str]]:
        try:
            async for data in events:
                yield {"data": data}
        except APIError as exc:
            # Headers are gone once streaming began: report the error in-band, as OpenAI does.
            yield {"data": ErrorResponse(error=exc.body).model_dump_json()}
        yield {"data": "[DONE]"}

    return EventSourceResponse(framed(), ping=15, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (frees engine capacity for others)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(0.5)
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    finally:
        watcher.cancel()
