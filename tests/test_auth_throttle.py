"""Key guessing throttled, without an engine: the failure counter on a real embedded redis-server, behind the same
`current_user` dependency the routes use (a small app on httpx's ASGI transport, which sets the peer address)."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from server.api.deps import AdminDep, UserDep, current_user
from server.api.errors import install_error_handlers
from server.core import metrics
from server.core.auth import APIKeys, AuthThrottle, client_address
from server.core.history.keys import address_key
from server.core.history.redis_server import RedisServer
from server.core.history.store import connect
from server.core.settings import ServerSettings
from server.core.state import ServerState, open_store, without_password

KEYS = {"ann": "sk-ann-right", "bo": "sk-bo-admin"}
RIGHT, WRONG = {"Authorization": "Bearer sk-ann-right"}, {"Authorization": "Bearer sk-guess-123"}
PROXY = "10.0.0.5"


def app_with(throttle: AuthThrottle | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.lima = ServerState(ServerSettings(), APIKeys(KEYS, admins={"bo"}), auth_throttle=throttle)

    @app.get("/whoami")
    async def whoami(user: UserDep) -> dict[str, str]:
        return {"user": user}

    admin = APIRouter()  # as the adapters' routes: the user checked by the router, then the admin by the route

    @admin.get("/admin")
    async def admin_only(user: AdminDep) -> dict[str, str]:
        return {"admin": user}

    app.include_router(admin, dependencies=[Depends(current_user)])
    return app


def failures(outcome: str) -> float:
    return metrics.AUTH_FAILURES.labels(outcome)._value.get()


def run_with_throttle(server: RedisServer, limit: int, window: int,
                      scenario: Callable[[AuthThrottle, Callable[..., Awaitable[httpx.Response]]], Awaitable[Any]],
                      trusted: str = PROXY) -> Any:
    async def main() -> Any:
        client = connect(server.url)
        throttle = AuthThrottle(client, limit, window, [ip_network(trusted)])
        app = app_with(throttle)
        clients: dict[str, httpx.AsyncClient] = {}

        async def get(peer: str, headers: dict[str, str], path: str = "/whoami") -> httpx.Response:
            if peer not in clients:
                transport = httpx.ASGITransport(app=app, client=(peer, 40000))
                clients[peer] = httpx.AsyncClient(transport=transport, base_url="http://lima")
            return await clients[peer].get(path, headers=headers)

        try:
            return await scenario(throttle, get)
        finally:
            for http in clients.values():
                await http.aclose()
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def redis_server(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_past_the_threshold_even_the_right_key_waits_for_the_window(redis_server: RedisServer) -> None:
    rejected, throttled = failures("rejected_key"), failures("throttled")

    async def scenario(throttle: AuthThrottle, get: Callable[..., Awaitable[httpx.Response]]) -> None:
        assert (await get("192.0.2.1", {})).status_code == 401  # a missing key is no guess: not counted
        for _ in range(3):
            answer = await get("192.0.2.1", WRONG)
            assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
        refused = await get("192.0.2.1", RIGHT)  # the right key, after the threshold: still refused
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "too_many_failed_authentications" and error["type"] == "rate_limit_error"
        assert "3 wrong API keys within 2 s" in error["message"] and "sk-" not in refused.text
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 2 and f"Retry in {wait} s" in error["message"]
        # Another address is not affected, and its success resets nobody's count.
        assert (await get("192.0.2.2", RIGHT)).json() == {"user": "ann"}
        assert (await get("192.0.2.2", WRONG)).status_code == 401
        assert (await get("192.0.2.1", WRONG)).status_code == 429  # refused before the key is looked at
        # One key per address, its hash tag a digest: one Redis Cluster slot, no address in the key.
        stored = sorted(await throttle.script.registered_client.keys("lima:*"))
        assert stored == sorted(address_key(a).encode() for a in ("192.0.2.1", "192.0.2.2"))
        assert address_key("192.0.2.1").startswith("lima:{a:") and "192.0.2" not in address_key("192.0.2.1")
        await asyncio.sleep(wait + 0.1)  # the window passes
        assert (await get("192.0.2.1", RIGHT)).json() == {"user": "ann"}
        assert (await get("192.0.2.1", WRONG)).status_code == 401  # a fresh window, counting from one

    run_with_throttle(redis_server, limit=3, window=2, scenario=scenario)
    assert failures("rejected_key") - rejected == 5 and failures("throttled") - throttled == 2


def test_forwarded_for_counts_only_behind_a_trusted_proxy(redis_server: RedisServer) -> None:
    async def scenario(_: AuthThrottle, get: Callable[..., Awaitable[httpx.Response]]) -> None:
        # An untrusted peer forging X-Forwarded-For is counted by its own address, whatever the header says.
        for forged in ("198.51.100.1", "198.51.100.2"):
            assert (await get("192.0.2.9", {**WRONG, "X-Forwarded-For": forged})).status_code == 401
        assert (await get("192.0.2.9", {**RIGHT, "X-Forwarded-For": "198.51.100.3"})).status_code == 429
        # Behind the trusted proxy: the right-most hop that is not a trusted proxy is the client.
        two_wrong = [{**WRONG, "X-Forwarded-For": "203.0.113.7, 198.51.100.50"}] * 2
        for headers in two_wrong:
            assert (await get(PROXY, headers)).status_code == 401
        throttled = await get(PROXY, {**RIGHT, "X-Forwarded-For": "1.1.1.1, 198.51.100.50"})  # forged left hop
        assert throttled.status_code == 429
        other = await get(PROXY, {**RIGHT, "X-Forwarded-For": "203.0.113.7, 198.51.100.51"})
        assert other.json() == {"user": "ann"}

    run_with_throttle(redis_server, limit=2, window=60, scenario=scenario)


def test_admin_routes_count_a_wrong_key_once(redis_server: RedisServer) -> None:
    async def scenario(_: AuthThrottle, get: Callable[..., Awaitable[httpx.Response]]) -> None:
        async def admin(key: str) -> httpx.Response:
            return await get("192.0.2.30", {"Authorization": f"Bearer {key}"}, "/admin")

        assert (await admin("sk-wrong")).status_code == 401
        assert (await admin("sk-ann-right")).status_code == 403  # a user, not an admin (the one failure so far)
        assert (await admin("sk-bo-admin")).json() == {"admin": "bo"}
        assert (await admin("sk-wrong")).status_code == 401
        assert (await admin("sk-bo-admin")).status_code == 429

    run_with_throttle(redis_server, limit=2, window=60, scenario=scenario)


def test_client_address_takes_the_right_most_untrusted_hop() -> None:
    trusted = [ip_network("10.0.0.0/8"), ip_network("::1")]
    assert client_address("192.0.2.1", ["6.6.6.6"], trusted) == "192.0.2.1"  # untrusted peer: header ignored
    assert client_address("10.1.1.1", [], trusted) == "10.1.1.1"
    assert client_address("10.1.1.1", ["6.6.6.6, 203.0.113.7, 10.2.2.2"], trusted) == "203.0.113.7"
    assert client_address("10.1.1.1", ["6.6.6.6", "203.0.113.7,10.2.2.2"], trusted) == "203.0.113.7"  # two headers
    assert client_address("10.1.1.1", ["10.3.3.3, 10.2.2.2"], trusted) == "10.3.3.3"  # all trusted: the left-most
    assert client_address("::1", ["2001:db8:0::1"], trusted) == "2001:db8::1"  # written one way only
    assert client_address("10.1.1.1", ["garbage"], trusted) == "garbage"
    assert client_address(None, ["6.6.6.6"], trusted) == "unknown"


def test_redis_down_fails_open_and_logs_once(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(_: AuthThrottle, get: Callable[..., Awaitable[httpx.Response]]) -> None:
        assert (await get("192.0.2.1", WRONG)).status_code == 401
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="server.core.auth"):
            for _ in range(3):
                assert (await get("192.0.2.1", WRONG)).status_code == 401  # keys still checked, never 429 or 500
            assert (await get("192.0.2.1", RIGHT)).json() == {"user": "ann"}
        outage = [r for r in caplog.records if "not counted while Redis is unavailable" in r.getMessage()]
        assert len(outage) == 1

    run_with_throttle(redis_server, limit=2, window=60, scenario=scenario)


def test_the_throttle_is_on_only_with_keys_and_a_positive_limit(redis_server: RedisServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIMA_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("LIMA_AUTH_FAILURES_PER_WINDOW", "4")
    monkeypatch.setenv("LIMA_AUTH_FAILURE_WINDOW_SECONDS", "9")

    async def throttle_of(settings: ServerSettings, keys: dict[str, str]) -> AuthThrottle | None:
        state = ServerState(settings, APIKeys(keys))
        async with AsyncExitStack() as stack:
            await open_store(state, settings, stack)
        return state.auth_throttle

    settings = ServerSettings(redis_url=redis_server.url)
    assert settings.trusted_networks == (ip_network("127.0.0.1"), ip_network("10.0.0.0/8"))
    throttle = asyncio.run(throttle_of(settings, KEYS))
    assert throttle is not None and (throttle.limit, throttle.window_seconds) == (4, 9)
    assert throttle.trusted_proxies == settings.trusted_networks
    assert asyncio.run(throttle_of(settings, {})) is None  # no keys: one local user, nothing to guess
    assert asyncio.run(throttle_of(settings.model_copy(update={"auth_failures_per_window": 0}), KEYS)) is None
    with pytest.raises(ValueError, match="is neither an IP address"):
        ServerSettings(trusted_proxies="10.0.0.0/33")


def test_redis_passwords_stay_out_of_the_log() -> None:
    assert without_password("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert without_password("rediss://app:s3cret@cache:6380") == "rediss://app:***@cache:6380"
    assert without_password("redis://cache:6379") == "redis://cache:6379"
    assert without_password("unix:///run/redis.sock") == "unix:///run/redis.sock"
