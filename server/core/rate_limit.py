"""Per-user rate limits, checked before a generation starts: a token bucket per user in Redis (shared by every
replica), refilled at `per_minute` / 60 tokens a second up to `burst`; a request without a token gets 429 with the
seconds until the next one. If Redis cannot be reached the request is let through (the store's own routes report the
outage).
"""

import logging
import math

from server.core import metrics
from server.core.failures import RateLimited
from server.core.history.keys import rate_key
from server.core.history.store import REDIS_UNAVAILABLE, RedisClient

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: refill per second, burst. Redis' clock, so every replica agrees. Returns
# {1, 0} when a token was taken, else {0, milliseconds until one is there}.
TAKE_TOKEN = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or t
tokens = math.min(burst, tokens + (t - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait}
"""


class RateLimiter:
    def __init__(self, client: RedisClient, per_minute: int, burst: int | None) -> None:
        self.script = client.register_script(TAKE_TOKEN)
        self.rate = per_minute / 60
        self.burst = burst or per_minute

    async def take(self, user: str) -> float:
        """0 when the user may go on, else the seconds to wait."""
        allowed, wait_ms = await self.script(keys=[rate_key(user)], args=[self.rate, self.burst])
        return 0.0 if allowed else wait_ms / 1000




async def enforce(limiter: RateLimiter, user: str) -> None:
    """RateLimited (429) when `user` has no token left; let through when Redis cannot be reached (the store's own
    routes report the outage)."""
    try:
        wait = await limiter.take(user)
    except REDIS_UNAVAILABLE as exc:
        log.warning("rate limit not checked, Redis unavailable: %s", exc)
        return
    if wait > 0:
        metrics.REJECTED.labels("rate_limited").inc()
        raise RateLimited(f"Rate limit reached: {limiter.rate * 60:g} requests per minute (burst "
                          f"{limiter.burst}). Retry in {wait:.1f} s.", code="rate_limit_exceeded",
                          retry_after=max(1, math.ceil(wait)))
