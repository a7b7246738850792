"""The FastAPI application: middleware, routes, error handlers, and the engine's lifetime.

The engine loads in the background so /health answers at once and /ready tells when the model is up.
If it fails to load, the server stops (exit status 1, so a supervisor restarts it) after logging why.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from vllm.engine.arg_utils import AsyncEngineArgs

from server.engine import ChatEngine
from server.errors import install_error_handlers
from server.metrics import MetricsMiddleware, declare_routes
from server.middleware import BodyLimitMiddleware
from server.routes import chat, completions, models, ops
from server.settings import ServerSettings

log = logging.getLogger(__name__)


async def load_engine(app: FastAPI, engine_args: AsyncEngineArgs, stop_server: Callable[[], None]) -> None:
    try:
        app.state.engine = await asyncio.to_thread(ChatEngine, engine_args)
        log.info("engine ready: serving %s (context %d tokens)", app.state.engine.model_name,
                 app.state.engine.max_model_len)
    except Exception as exc:
        app.state.engine_error = f"{type(exc).__name__}: {exc}"
        log.exception("the engine failed to start; stopping the server")
        stop_server()


def build_app(
    settings: ServerSettings, engine_args: AsyncEngineArgs, stop_server: Callable[[], None] = lambda: None
) -> FastAPI:
    """The app; `stop_server` is called if the engine cannot start (the CLI makes uvicorn exit)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = None
        app.state.engine_error = None
        loading = asyncio.create_task(load_engine(app, engine_args, stop_server))
        try:
            yield
        finally:
            await loading  # an engine still starting is finished, then shut down: no orphan processes
            if app.state.engine is not None:
                app.state.engine.shutdown()

    app = FastAPI(title="LIMA chat server", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    for module in (chat, completions, models, ops):
        app.include_router(module.router)
    declare_routes((chat.ROUTE, completions.ROUTE))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware)
    return app
