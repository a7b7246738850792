"""What routes declare they need: the loaded engine (503 until it is), the conversation store, the settings."""

from typing import Annotated

from fastapi import Depends, Request

from server.engine.wrapper import ChatEngine
from server.errors import APIError
from server.history.store import HistoryStore
from server.settings import ServerSettings


def get_engine(request: Request) -> ChatEngine:
    state = request.app.state
    if state.engine is None:
        reason = state.engine_error or "the model is loading"
        raise APIError(503, f"Not ready: {reason}.", code="not_ready", headers={"Retry-After": "5"})
    if not state.engine.is_healthy:
        raise APIError(503, "The engine has stopped; the server must be restarted.", code="engine_dead")
    return state.engine


def get_store(request: Request) -> HistoryStore:
    store = request.app.state.store
    if store is None:
        raise APIError(
            503, f"The conversation store is not available: {request.app.state.store_error}. Stateless "
            "/v1/chat/completions keeps working.", code="history_unavailable",
        )
    return store


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


EngineDep = Annotated[ChatEngine, Depends(get_engine)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
StoreDep = Annotated[HistoryStore, Depends(get_store)]
