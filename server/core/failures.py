"""What can go wrong below the routes, in the terms of the part that failed: the store, the engine, admission and
prompt fitting raise these and know nothing of HTTP. errors.py maps each kind to its status and OpenAI error body,
once, for plain responses and for errors sent inside a stream alike."""


class Failure(Exception):
    """A failure a client can act on: a message for people, the request field at fault, a machine-readable code,
    and how many seconds to wait before a retry may succeed."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.retry_after = message, param, code, retry_after


class Invalid(Failure):
    """The request cannot be served as asked: a value out of range, a prompt longer than the context."""


class NotFound(Failure):
    """A model, conversation, item or response that does not exist (or belongs to someone else)."""


class RateLimited(Failure):
    """The caller sent more than their share."""


class QuotaExceeded(Failure):
    """The caller's stored history is at a per-user quota (conversations or bytes): nothing more is stored until
    they delete some."""


class Overloaded(Failure):
    """The server is at capacity: more generations in progress or queued than it takes."""


class Unavailable(Failure):
    """A part the request needs is down: the conversation store, or the engine."""


class Corrupt(Failure):
    """Stored data that cannot be read back."""


class Unauthenticated(Failure):
    """No API key, or one that is nobody's."""


class Forbidden(Failure):
    """The caller is known but may not do this (an admin-only action)."""
