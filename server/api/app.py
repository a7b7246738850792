"""The FastAPI application: middleware, the routers of each API, error handlers, and the lifespan that holds the
server's state (server/core/state.py: the engine loads in the background so /health answers at once and /ready
tells when the model is up; if it fails to load, the server stops with exit status 1 after logging why).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from vllm.engine.arg_utils import AsyncEngineArgs

from server.api.adapters import router as adapters
from server.api.chat import router as chat
from server.api.completions import router as completions
from server.api.conversations import router as conversations
from server.api.deps import current_user, enforce_rate_limit
from server.api.errors import install_error_handlers
from server.api.middleware import BodyLimitMiddleware, MetricsMiddleware, UnhandledErrorMiddleware
from server.api.models import router as models
from server.api.ops import router as ops
from server.api.responses import router as responses
from server.api.tokens import router as tokens
from server.core.auth import APIKeys
from server.core.settings import ServerSettings
from server.core.state import ServerState, load_engine, open_store

log = logging.getLogger(__name__)
SERVED_ROUTES = (chat.ROUTE, completions.ROUTE, responses.ROUTE)  # the routes that generate


def build_app(
    settings: ServerSettings, engine_args: AsyncEngineArgs, stop_server: Callable[[], None] = lambda: None
) -> FastAPI:
    """The app; `stop_server` is called if the engine cannot start (the CLI makes uvicorn exit)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state.lima = ServerState(settings, api_keys)
        engine_task = asyncio.create_task(load_engine(state, engine_args, stop_server, SERVED_ROUTES))
        async with AsyncExitStack() as stack:
            await open_store(state, settings, stack)
            try:
                yield
            finally:
                if state.engine is not None:  # loaded: stop watching it
                    engine_task.cancel()
                # An engine still starting is finished, then shut down: no orphan processes.
                await asyncio.gather(engine_task, return_exceptions=True)
                if state.engine is not None:
                    state.engine.shutdown()

    api_keys = APIKeys.from_settings(settings)  # a bad keys file stops the server before it starts
    if settings.log_prompts:
        log.warning("\n%s\n--log-prompts IS ON: every prompt's text is written to this log (for debugging only; "
                    "turn it off before serving real users).\n%s", "!" * 100, "!" * 100)
    app = FastAPI(title="LIMA chat server", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(ops.router)
    for module in (models, tokens, conversations, adapters):
        app.include_router(module.router, dependencies=[Depends(current_user)])
    for module in (chat, completions, responses):  # the generating routes
        app.include_router(module.router, dependencies=[Depends(current_user), Depends(enforce_rate_limit)])
    # Outermost last: the metrics count every answer, the 413s and 500s included; every answer has a request id.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(MetricsMiddleware)
    return app
