"""Back-pressure, checked before a generation starts: at most `limit` generations in progress or queued in this
process; past it a request gets 503 with Retry-After at once, instead of joining a queue whose wait grows without
bound. A slot is given back when its generation ends (finished, aborted, failed) or, should it never start
streaming, when it is dropped.
"""

from collections.abc import Callable

from server.core import metrics
from server.core.failures import Overloaded


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0

    def admit(self) -> Callable[[], None]:
        """A slot, or 503; returns the (idempotent) release of the slot."""
        if self.pending >= self.limit:
            metrics.REJECTED.labels("overloaded").inc()
            raise Overloaded(f"The server is at capacity ({self.limit} generations in progress or queued). "
                             "Retry shortly.", code="server_overloaded", retry_after=1)
        self.pending += 1
        metrics.PENDING.set(self.pending)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.pending -= 1
                metrics.PENDING.set(self.pending)

        return release
