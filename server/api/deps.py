"""What routes declare they need, as FastAPI dependencies: the user a request's key names, the loaded engine (503
until it is), an admission slot's keeper, the conversation store, the settings; the one way into the server's
state (`app.state.lima`, server/core/state.py)."""

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.applications import Starlette

from server.core import rate_limit
from server.core.auth import authenticate, check_admin
from server.core.engine.admission import Admission
from server.core.engine.wrapper import ChatEngine
from server.core.failures import Unavailable
from server.core.history.store import HistoryStore
from server.core.settings import ServerSettings
from server.core.state import ServerState


def state_of(app: Starlette) -> ServerState:
    return cast(ServerState, app.state.lima)


def get_state(request: Request) -> ServerState:
    return state_of(request.app)


def get_engine(request: Request) -> ChatEngine:
    state = get_state(request)
    if state.engine is None:
        reason = state.engine_error or "the model is loading"
        raise Unavailable(f"Not ready: {reason}.", code="not_ready", retry_after=5)
    if not state.engine.is_healthy:
        raise Unavailable("The engine has stopped; the server must be restarted.", code="engine_dead")
    return state.engine


def get_store(request: Request) -> HistoryStore:
    state = get_state(request)
    if state.store is None:
        raise Unavailable(
            f"The conversation store is not available: {state.store_error}. Stateless /v1/chat/completions keeps "
            "working.", code="history_unavailable",
        )
    return state.store


def get_settings(request: Request) -> ServerSettings:
    return get_state(request).settings


def get_admission(request: Request) -> Admission:
    get_engine(request)  # 503 until the engine is up: the limit comes from its batch size
    admission = get_state(request).admission
    assert admission is not None  # set together with the engine, which get_engine checked
    return admission


async def current_user(request: Request) -> str:
    state = get_state(request)
    return await authenticate(state.api_keys, state.auth_throttle, request.client.host if request.client else None,
                              request.headers.getlist("x-forwarded-for"), request.headers.get("authorization"))


UserDep = Annotated[str, Depends(current_user)]


async def admin_user(request: Request, user: UserDep) -> str:
    """The user, who must be an admin (403 otherwise)."""
    check_admin(get_state(request).api_keys, user)
    return user


async def enforce_rate_limit(request: Request, user: UserDep) -> None:
    """Dependency of the generating routes (POST only)."""
    limiter = get_state(request).rate_limiter
    if limiter is not None and request.method == "POST":
        await rate_limit.enforce(limiter, user)


AdminDep = Annotated[str, Depends(admin_user)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
EngineDep = Annotated[ChatEngine, Depends(get_engine)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
StoreDep = Annotated[HistoryStore, Depends(get_store)]
