"""API keys (bearer tokens) -> user ids. Only SHA-256 digests of keys are held, in memory; Redis sees user ids.

No keys configured means one local user and no authentication, announced loudly at startup.

Key guessing is throttled: wrong keys are counted per client address in Redis (shared by every replica) over a
window that starts with the first failure; past `--auth-failures-per-window`, every request from that address gets
429 with the seconds until the window ends, before its key is looked at (a right key too: else guessing would go
on). If Redis cannot be reached, keys are still checked, without the throttle.
"""

import hashlib
import hmac
import logging
import math
from collections.abc import Sequence
from ipaddress import ip_address
from pathlib import Path

from server.core import metrics
from server.core.failures import Forbidden, RateLimited, Unauthenticated
from server.core.history.keys import address_key
from server.core.history.store import REDIS_UNAVAILABLE, RedisClient
from server.core.settings import IPNetwork, ServerSettings

log = logging.getLogger(__name__)

LOCAL_USER = "local"
HASHED_PREFIX = "sha256:"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


ADMIN = "admin"


def read_keys_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """`user_id key [admin]` per line; blank lines and # comments skipped. Returns the keys and the admins."""
    keys: dict[str, str] = {}
    admins: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3) or parts[2:] not in ([], [ADMIN]):
            raise ValueError(f"{path}:{number}: expected `user_id key` or `user_id key admin`, got {len(parts)} "
                             f"fields{' ending ' + repr(parts[2]) if len(parts) == 3 else ''}")
        keys[parts[0]] = parts[1]
        if parts[2:] == [ADMIN]:
            admins.add(parts[0])
    return keys, admins


class APIKeys:
    def __init__(self, user_keys: dict[str, str], admins: set[str] | None = None) -> None:
        # Users who may change what the server serves (load and unload LoRA adapters); keys file only.
        self.admins = admins or set()
        self.users_by_digest: dict[str, str] = {}
        for user, key in user_keys.items():
            if not key:
                raise ValueError(f"the API key of user '{user}' is empty")
            hashed = key.removeprefix(HASHED_PREFIX) if key.startswith(HASHED_PREFIX) else digest(key)
            self.users_by_digest[hashed] = user

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> "APIKeys":
        keys, admins = dict(settings.api_keys), set[str]()
        if settings.api_keys_file is not None:
            from_file, admins = read_keys_file(settings.api_keys_file)
            keys.update(from_file)
        api_keys = cls(keys, admins)
        if not api_keys.enabled:
            log.warning(
                "\n%s\nNO API KEYS CONFIGURED: every client is the single user '%s' and can read every stored "
                "conversation. Set LIMA_API_KEYS or --api-keys-file before exposing this server.\n%s",
                "!" * 100, LOCAL_USER, "!" * 100,
            )
        return api_keys

    @property
    def enabled(self) -> bool:
        return bool(self.users_by_digest)

    def user_for(self, authorization: str | None) -> str:
        if not self.enabled:
            return LOCAL_USER
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Missing API key: send it as 'Authorization: Bearer <key>'.", code="invalid_api_key")
        presented = digest(token.strip())
        for known, user in self.users_by_digest.items():
            if hmac.compare_digest(known, presented):
                return user
        raise RejectedKey("Incorrect API key provided.", code="invalid_api_key")


class RejectedKey(Unauthenticated):
    """A key was presented and is nobody's (a missing key is not a guess, and is not counted)."""


# KEYS[1] an address's failures; ARGV: the window in ms, '1' to count a failure ('0' to only look). Returns
# {failures in the window, milliseconds until it ends}. The window starts with the first failure (Redis' clock).
AUTH_FAILURES = """
local count
if ARGV[2] == '1' then
  count = redis.call('INCR', KEYS[1])
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
  end
else
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return {count, redis.call('PTTL', KEYS[1])}
"""


class AuthThrottle:
    def __init__(self, client: RedisClient, limit: int, window_seconds: int,
                 trusted_proxies: Sequence[IPNetwork] = ()) -> None:
        self.script = client.register_script(AUTH_FAILURES)
        self.limit = limit
        self.window_seconds = window_seconds
        self.trusted_proxies = tuple(trusted_proxies)
        self.redis_down = False  # logged once per outage

    async def _count(self, address: str, failed: bool) -> tuple[int, int] | None:
        try:
            count, ttl_ms = await self.script(keys=[address_key(address)],
                                              args=[self.window_seconds * 1000, int(failed)])
        except REDIS_UNAVAILABLE as exc:
            if not self.redis_down:
                self.redis_down = True
                log.warning("failed authentications are not counted while Redis is unavailable (%s); API keys are "
                            "still checked", exc)
            return None
        if self.redis_down:
            self.redis_down = False
            log.info("Redis answers again: failed authentications are counted again")
        return int(count), int(ttl_ms)

    async def wait(self, address: str) -> int:
        """0 when `address` may try a key, else the seconds until its window ends."""
        counted = await self._count(address, failed=False)
        if counted is None or counted[0] < self.limit:
            return 0
        ttl_ms = counted[1]
        return max(1, math.ceil(ttl_ms / 1000)) if ttl_ms > 0 else self.window_seconds

    async def failed(self, address: str) -> None:
        await self._count(address, failed=True)

    def client_address(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        return client_address(peer, forwarded_for, self.trusted_proxies)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client: the peer, unless the peer is a trusted proxy; then the right-most X-Forwarded-For hop that is not
    a trusted proxy itself (hops left of it could be forged by the client), or the left-most when all are."""

    def normal(address: str) -> str:
        try:
            return str(ip_address(address))
        except ValueError:
            return address  # not an address (a proxy's "unknown", say): counted as it is

    def is_trusted(address: str) -> bool:
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in trusted)

    if peer is None:
        return "unknown"
    if not is_trusted(peer):
        return normal(peer)
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return normal(hop)
    return normal(hops[0]) if hops else normal(peer)


async def authenticate(keys: APIKeys, throttle: AuthThrottle | None, peer: str | None, forwarded_for: Sequence[str],
                       authorization: str | None) -> str:
    """The user a request's Authorization header names; a throttled address is refused before its key is looked
    at, and a wrong key is counted against the address."""
    if not keys.enabled:
        return keys.user_for(None)
    address = ""
    if throttle is not None:
        address = throttle.client_address(peer, forwarded_for)
        if wait := await throttle.wait(address):
            metrics.AUTH_FAILURES.labels("throttled").inc()
            raise RateLimited(
                f"Too many failed authentications from your address ({throttle.limit} wrong API keys within "
                f"{throttle.window_seconds} s): its requests are refused, whatever their key, until the window "
                f"ends. Retry in {wait} s.", code="too_many_failed_authentications", retry_after=wait,
            )
    try:
        return keys.user_for(authorization)
    except RejectedKey:
        metrics.AUTH_FAILURES.labels("rejected_key").inc()
        if throttle is not None:
            await throttle.failed(address)
        raise


def check_admin(keys: APIKeys, user: str) -> None:
    """Forbidden unless `user` is an admin (with no keys file there is none)."""
    if user not in keys.admins:
        raise Forbidden("Only an admin may change the served adapters: mark the user `admin` in the keys file "
                        "(`user_id key admin`).", code="permission_denied")
