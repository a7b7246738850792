"""The server's state in one typed object, and the lifetimes of its parts: the engine loads in the background
(and the server stops if it fails or dies), the conversation store opens on REDIS_URL or on an embedded
redis-server this process starts, restarts if it dies, and stops; if Redis is down, the state says why.

The HTTP layer holds it as `app.state.lima` and reaches it through server/api/deps.py only."""

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster
from vllm.engine.arg_utils import AsyncEngineArgs

from server.core.auth import APIKeys, AuthThrottle
from server.core.engine.admission import Admission
from server.core.engine.args import lora_module_paths
from server.core.engine.wrapper import ChatEngine
from server.core.history.migrate import migrate_key_layout
from server.core.history.redis_server import RedisServer, RedisServerError
from server.core.history.store import HistoryStore, connect
from server.core.metrics import declare_series
from server.core.rate_limit import RateLimiter
from server.core.settings import ServerSettings

log = logging.getLogger(__name__)
ENGINE_CHECK_SECONDS = 1.0


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


async def load_engine(state: ServerState, engine_args: AsyncEngineArgs, stop_server: Callable[[], None],
                      served_routes: tuple[str, ...]) -> None:
    """Start the engine (`served_routes`: the generating routes, whose metric series are declared for each
    served model), then watch it."""
    try:
        engine = await asyncio.to_thread(ChatEngine, engine_args, lora_module_paths(state.settings.lora_modules),
                                       state.settings.log_prompts)
        await engine.load_adapters()
        declare_series(served_routes, [*engine.model_names, *engine.adapters])
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
