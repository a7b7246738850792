"""One error shape for everything: OpenAI's {"error": {message, type, param, code}} with a matching status.

The core raises failures in its own terms (server/core/failures.py), and so do the routers; `as_api_error` is the
one place that gives each kind its status."""

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.api.protocol import ErrorBody, ErrorResponse
from server.core.failures import (
    Corrupt,
    Failure,
    Forbidden,
    Invalid,
    NotFound,
    Overloaded,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from server.core.metrics import UNHANDLED_ERRORS

log = logging.getLogger(__name__)
# The id of the request being served (set by middleware.py for each one; also its X-Request-Id answer header).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class APIError(Exception):
    """An error a client can act on; raised anywhere in a request and rendered by `api_error_handler`."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(
            message=message, type=ERROR_TYPES.get(status, "server_error"), param=param, code=code
        )
        self.headers = headers


FAILURE_STATUS: dict[type[Failure], int] = {
    Invalid: 400, Unauthenticated: 401, Forbidden: 403, NotFound: 404, QuotaExceeded: 403, RateLimited: 429,
    Overloaded: 503, Unavailable: 503, Corrupt: 500,
}


def as_api_error(error: APIError | Failure) -> APIError:
    """A failure as the OpenAI error it is for clients (an APIError is one already)."""
    if isinstance(error, APIError):
        return error
    status = next(status for kind, status in FAILURE_STATUS.items() if isinstance(error, kind))
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return APIError(status, error.message, param=error.param, code=error.code, headers=headers or None)


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=error.body).model_dump(), status_code=error.status, headers=error.headers
    )


def param_path(loc: Sequence[Any]) -> str | None:
    """('body', 'messages', 0, 'role') -> 'messages[0].role' (OpenAI's way to point at a field)."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union", "str", "list[", "literal")):
            path += f".{part}" if path else str(part)
    return path or None


# Request checks that raise one of OpenAI's own error codes as their error type; it becomes the answer's `code`.
OPENAI_CODES = ("unsupported_parameter", "mutually_exclusive_parameters")


def validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    # A union reports one error per member; the deepest one on the same field that is not "wrong type for this
    # member" says what is actually wrong (an empty list for `str | list`: too short, not "not a string").
    first = max((e for e in errors if e.get("loc", ())[:2] == errors[0].get("loc", ())[:2]),
                key=lambda e: (len(e.get("loc", ())), not str(e.get("type", "")).endswith("_type")))
    if first.get("type") == "json_invalid":
        return APIError(400, f"Request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".strip())
    param = param_path(first.get("loc", ()))
    message = first.get("msg", "invalid request")
    code = "invalid_value"
    if first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first.get("type") in OPENAI_CODES:
        code = str(first["type"])
    elif param:
        message = f"Invalid value for '{param}': {message}"
    return APIError(400, message, param=param, code=code)


async def api_error_handler(_: Request, exc: APIError | Failure) -> JSONResponse:
    return error_response(as_api_error(exc))


async def validation_error_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(validation_error(exc))


async def http_error_handler(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(APIError(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)))


def unhandled(exc: BaseException, where: str) -> APIError:
    """An exception nothing below foresaw (a bug): logged once, with the request's id, and counted; the client gets
    OpenAI's 500, as an answer or inside the stream that had begun."""
    UNHANDLED_ERRORS.inc()
    log.error("unhandled error in %s (request %s)", where, REQUEST_ID.get(), exc_info=exc)
    return APIError(500, f"The server had an error while processing your request (request {REQUEST_ID.get()}).",
                    code="server_error")


class ClientDisconnected(Exception):
    """The client hung up before a non-streamed answer was ready; its work was cancelled."""


CLIENT_CLOSED_REQUEST = 499  # nginx's status for this; nobody reads it, but logs and metrics do


async def client_disconnected_handler(_request: Request, _exc: Exception) -> Response:
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def install_error_handlers(app: FastAPI) -> None:
    handlers: dict[type[Exception], Any] = {  # Starlette types a handler's exception as Exception only
        ClientDisconnected: client_disconnected_handler, APIError: api_error_handler, Failure: api_error_handler,
        RequestValidationError: validation_error_handler, StarletteHTTPException: http_error_handler,
    }  # anything else is a bug: UnhandledErrorMiddleware (middleware.py) answers it
    for exception, handler in handlers.items():
        app.add_exception_handler(exception, handler)
