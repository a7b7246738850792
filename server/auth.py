"""API keys (bearer tokens) -> user ids. Only SHA-256 digests of keys are held, in memory; Redis sees user ids.

No keys configured means one local user and no authentication, announced loudly at startup.
"""

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from server.deps import get_state
from server.errors import APIError
from server.settings import ServerSettings

log = logging.getLogger(__name__)

LOCAL_USER = "local"
HASHED_PREFIX = "sha256:"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def read_keys_file(path: Path) -> dict[str, str]:
    """`user_id key` per line; blank lines and # comments skipped."""
    keys: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected `user_id key`, got {len(parts)} fields")
        keys[parts[0]] = parts[1]
    return keys


class APIKeys:
    def __init__(self, user_keys: dict[str, str]) -> None:
        self.users_by_digest: dict[str, str] = {}
        for user, key in user_keys.items():
            if not key:
                raise ValueError(f"the API key of user '{user}' is empty")
            hashed = key.removeprefix(HASHED_PREFIX) if key.startswith(HASHED_PREFIX) else digest(key)
            self.users_by_digest[hashed] = user

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> "APIKeys":
        keys = dict(settings.api_keys)
        if settings.api_keys_file is not None:
            keys.update(read_keys_file(settings.api_keys_file))
        api_keys = cls(keys)
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
            raise APIError(
                401, "Missing API key: send it as 'Authorization: Bearer <key>'.", code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        presented = digest(token.strip())
        for known, user in self.users_by_digest.items():
            if hmac.compare_digest(known, presented):
                return user
        raise APIError(
            401, "Incorrect API key provided.", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )


def current_user(request: Request) -> str:
    return get_state(request).api_keys.user_for(request.headers.get("authorization"))


UserDep = Annotated[str, Depends(current_user)]
