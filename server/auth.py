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


def admin_user(request: Request) -> str:
    """The user, who must be an admin (403 otherwise; with no keys file there is none)."""
    user = current_user(request)
    if user not in get_state(request).api_keys.admins:
        raise APIError(403, "Only an admin may change the served adapters: mark the user `admin` in the keys file "
                       "(`user_id key admin`).", code="permission_denied")
    return user


AdminDep = Annotated[str, Depends(admin_user)]
