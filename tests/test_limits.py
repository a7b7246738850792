"""Back-pressure and rate limits without an engine: the admission counter, and the token-bucket script on a real
embedded redis-server shared by two limiters (as two replicas share it)."""

import asyncio
import time
from pathlib import Path

import pytest

from server.api.errors import as_api_error
from server.core.engine.admission import Admission
from server.core.failures import Overloaded
from server.core.history.redis_server import RedisServer
from server.core.history.store import connect
from server.core.rate_limit import RateLimiter


def test_admission_refuses_past_the_limit_and_release_is_idempotent() -> None:
    admission = Admission(limit=2)
    first, _ = admission.admit(), admission.admit()
    with pytest.raises(Overloaded) as refused:
        admission.admit()
    failure = as_api_error(refused.value)
    assert failure.status == 503 and failure.headers == {"Retry-After": "1"}
    assert failure.body.code == "server_overloaded"
    first()
    first()  # a slot given back twice (finished, then dropped) counts once
    assert admission.pending == 1
    admission.admit()
    assert admission.pending == 2


def test_token_bucket_is_per_user_shared_by_replicas_and_refills(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()

    async def scenario() -> list[float]:
        clients = [connect(server.url), connect(server.url)]
        # 600 a minute = one token every 0.1 s, bursts of 3; two limiters = two replicas on one Redis.
        replica_a, replica_b = (RateLimiter(client, per_minute=600, burst=3) for client in clients)
        try:
            waits = [await replica_a.take("kim"), await replica_b.take("kim"), await replica_a.take("kim"),
                     await replica_b.take("kim")]
            assert await replica_a.take("lee") == 0  # another user has a bucket of their own
            await asyncio.sleep(waits[-1] + 0.05)
            waits.append(await replica_b.take("kim"))  # refilled after the wait it was told
            return waits
        finally:
            for client in clients:
                await client.aclose()

    try:
        started = time.monotonic()
        waits = asyncio.run(scenario())
    finally:
        server.stop()
    assert waits[:3] == [0, 0, 0]  # the burst
    assert 0 < waits[3] <= 0.1  # the fourth waits for the next token, at most one refill period
    assert waits[4] == 0
    assert time.monotonic() - started < 5
