"""What routes declare they need: the loaded engine (503 until it is), the conversation store, the settings; the
one way into the server's state."""

from typing import Annotated

from fastapi import Depends, Request

from server.engine.wrapper import ChatEngine
from server.errors import APIError
from server.history.store import HistoryStore
from server.settings import ServerSettings
from server.state import ServerState, state_of


def get_state(request: Request) -> ServerState:
    return state_of(request.app)


def get_engine(request: Request) -> ChatEngine:
    state = get_state(request)
    if state.engine is None:
        reason = state.engine_error or "the model is loading"
        raise APIError(503, f"Not ready: {reason}.", code="not_ready", headers={"Retry-After": "5"})
    if not state.engine.is_healthy:
        raise APIError(503, "The engine has stopped; the server must be restarted.", code="engine_dead")
    return state.engine


def get_store(request: Request) -> HistoryStore:
    store = get_state(request).store
    if store is None:
        raise APIError(
            503, f"The conversation store is not available: {get_state(request).store_error}. Stateless "
            "/v1/chat/completions keeps working.", code="history_unavailable",
        )
    return store


def get_settings(request: Request) -> ServerSettings:
    return get_state(request).settings


EngineDep = Annotated[ChatEngine, Depends(get_engine)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
StoreDep = Annotated[HistoryStore, Depends(get_store)]
