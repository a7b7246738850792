"""The FastAPI application: middleware, routes, error handlers, and the engine's lifetime.

The engine loads in the background so /health answers at once and /ready tells when the model is up.
If it fails to load, the server stops (exit status 1, so a supervisor restarts it) after logging why.
The conversation store is REDIS_URL's server, or an embedded redis-server this process starts, restarts if it
dies, and stops; if Redis is down, stateful routes answer 503 and stateless chat goes on.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from redis.asyncio.cluster import RedisCluster
from vllm.engine.arg_utils import AsyncEngineArgs

from server.auth import APIKeys, AuthThrottle, current_user
from server.engine.admission import Admission, RateLimiter, enforce_rate_limit
from server.engine.args import lora_module_paths
from server.engine.wrapper import ChatEngine
from server.errors import install_error_handlers
from server.history.migrate import migrate_key_layout
from server.history.redis_server import RedisServer, RedisServerError
from server.history.store import HistoryStore, connect
from server.metrics import MetricsMiddleware, declare_series
from server.middleware import BodyLimitMiddleware
from server.routes import adapters, chat, completions, conversations, models, ops, responses, tokens
from server.settings import ServerSettings
from server.state import ServerState

log = logging.getLogger(__name__)
ENGINE_CHECK_SECONDS = 1.0
SERVED_ROUTES = (chat.ROUTE, completions.ROUTE, responses.ROUTE)  # the routes that generate


async def load_engine(state: ServerState, engine_args: AsyncEngineArgs, stop_server: Callable[[], None]) -> None:
    try:
        engine = await asyncio.to_thread(ChatEngine, engine_args, lora_module_paths(state.settings.lora_modules),
                                       state.settings.log_prompts)
        await engine.load_adapters()
        declare_series(SERVED_ROUTES, [*engine.model_names, *engine.adapters])
        limit = state.settings.max_pending_requests or 4 * engine.max_num_seqs
        state.admission = Admission(limit)
        state.engine = engine
        log.info("engine ready: serving %s (context %d tokens, at most %d generations pending)",
                 engine.model_name, engine.max_model_len, limit)
    except Exception as exc:
        state.engine_error = f"the engine failed to start: {type(exc).__name__}: {exc}"
        log.exception("the engine failed to start; stopping the server")
        stop_server()
        return
    await watch_engine(state, engine, stop_server)


async def watch_engine(state: ServerState, engine: ChatEngine, stop_server: Callable[[], None]) -> None:
    """vLLM cannot restart a dead engine process inside this one: /ready turns 503 at once, and the server
    exits with status 1 so its supervisor (systemd, Docker, Kubernetes) starts a fresh one."""
    while engine.is_healthy:
        await asyncio.sleep(ENGINE_CHECK_SECONDS)
    state.engine_error = "the engine process died"
    log.error("the engine process died; stopping the server (exit status 1) so that it is restarted")
    stop_server()


async def open_store(state: ServerState, settings: ServerSettings, stack: AsyncExitStack) -> None:
    """The store on REDIS_URL, else on an embedded redis-server; a failure leaves it None with the reason."""
    url = settings.redis_url
    try:
        if url is None:
            server = RedisServer(settings.embedded_redis_dir, appendfsync=settings.redis_appendfsync)
            await asyncio.to_thread(server.start)
            stack.callback(server.stop)
            supervisor = asyncio.create_task(server.supervise())
            stack.callback(supervisor.cancel)
            state.redis_server, url = server, server.url
        client = connect(url)
        stack.push_async_callback(client.aclose)
        store = state.store = HistoryStore(client, settings.history_ttl_seconds, settings.history_max_items,
                                           settings.max_conversations_per_user, settings.max_stored_bytes_per_user)
        if settings.rate_limit_per_minute:
            state.rate_limiter = RateLimiter(client, settings.rate_limit_per_minute, settings.rate_limit_burst)
        if state.api_keys.enabled and settings.auth_failures_per_window:
            state.auth_throttle = AuthThrottle(client, settings.auth_failures_per_window,
                                               settings.auth_failure_window_seconds, settings.trusted_networks)
        if not await store.ping():
            log.warning("Redis at %s does not answer yet; stateful routes answer 503 until it does (keys of the "
                        "old layout, if any, move at the next start)", without_password(url))
        elif not isinstance(client, RedisCluster):  # a cluster never held the old layout
            await migrate_key_layout(client)
    except (RedisServerError, ValueError) as exc:
        state.store_error = str(exc)
        log.error("no conversation store: %s (stateless chat completions still work)", exc)
        if state.api_keys.enabled and settings.auth_failures_per_window:
            log.warning("failed authentications are not counted (no Redis): API keys are checked without the "
                        "throttle")


def without_password(url: str) -> str:
    """A Redis URL fit for a log: its password, if any, replaced by ***."""
    scheme, sep, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{hosts}"


def build_app(
    settings: ServerSettings, engine_args: AsyncEngineArgs, stop_server: Callable[[], None] = lambda: None
) -> FastAPI:
    """The app; `stop_server` is called if the engine cannot start (the CLI makes uvicorn exit)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state.lima = ServerState(settings, api_keys)
        engine_task = asyncio.create_task(load_engine(state, engine_args, stop_server))
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
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(MetricsMiddleware)
    return app
