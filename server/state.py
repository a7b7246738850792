"""The server's state in one typed object (`app.state.lima`): settings, keys, the engine and the store as they
come and go. Routes and dependencies reach it through deps.py only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from server.auth import APIKeys, AuthThrottle
    from server.engine.admission import Admission, RateLimiter
    from server.engine.wrapper import ChatEngine
    from server.history.redis_server import RedisServer
    from server.history.store import HistoryStore
    from server.settings import ServerSettings


@dataclass
class ServerState:
    settings: ServerSettings
    api_keys: APIKeys
    engine: ChatEngine | None = None  # None while it loads, or when it failed to (engine_error says why)
    engine_error: str | None = None
    admission: Admission | None = None  # its limit comes from the engine's batch size
    store: HistoryStore | None = None  # None when Redis could not be set up (store_error says why)
    store_error: str | None = None
    redis_server: RedisServer | None = None  # the embedded one, when REDIS_URL names none
    rate_limiter: RateLimiter | None = None
    auth_throttle: AuthThrottle | None = None  # with API keys and a Redis only


def state_of(app: Starlette) -> ServerState:
    return cast(ServerState, app.state.lima)
