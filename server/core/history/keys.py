"""Every Redis key name the server uses, built here only, from ids of the shape the server issues (ids.py): the
builders refuse any other, so no request can reach Redis with a key of its own making.

{u:<tag>} is the owner's hash tag (16 hex digits of the SHA-256 of the user id): all of one user's keys share
one Redis Cluster slot, so each script and transaction of the store touches a single node.
  lima:{u:<tag>}:conv:<conv_id>        HASH   id, owner, created_at, updated_at, metadata (JSON), preview,
                                              rev (+1 per write), cut (rev of the last item removal)
  lima:{u:<tag>}:conv:<conv_id>:ids    LIST   item ids, oldest first
  lima:{u:<tag>}:conv:<conv_id>:items  HASH   item id -> item JSON (role, content, status, response id, ...)
  lima:{u:<tag>}:convs                 ZSET   conv_id scored by last write (ms): the user's conversation list
  lima:{u:<tag>}:resp:<resp_id>        STRING response JSON: owner, input and output items, previous_response_id
  lima:{u:<tag>}:sizes                 HASH   conv_id -> bytes of its item JSON, resp_id -> bytes of that record,
                                              total -> their sum: the stored-bytes quota (scripts.py)
  lima:{u:<tag>}:rate                  HASH   the user's rate-limit bucket (core/rate_limit.py)
  lima:{a:<tag>}:authfail              STRING failed authentications from one client address (core/auth.py);
                                              <tag>: 16 hex digits of the SHA-256 of the address
"""

import hashlib

from server.core.ids import checked


def _tag(value: str) -> str:
    """A hash tag from any string (ids may hold any character, a `}` included, so the tag is a digest)."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def user_prefix(owner: str) -> str:
    """The start of every key of `owner`: its hash tag makes them one Redis Cluster slot."""
    return f"lima:{{u:{_tag(owner)}}}:"


def conversation_keys(owner: str, conversation_id: str) -> list[str]:
    """A conversation's keys; NotFound for an id the server never issues (no route may reach Redis with one)."""
    base = f"{user_prefix(owner)}conv:{checked('conversation', conversation_id)}"
    return [base, f"{base}:ids", f"{base}:items"]


def user_index(owner: str) -> str:
    return f"{user_prefix(owner)}convs"


def sizes_key(owner: str) -> str:
    """The user's stored-bytes counts (the byte quota): conv id / resp id -> bytes, and their `total`."""
    return f"{user_prefix(owner)}sizes"


def response_key(owner: str, response_id: str) -> str:
    """A response record's key; NotFound for an id the server never issues."""
    return f"{user_prefix(owner)}resp:{checked('response', response_id)}"


def rate_key(owner: str) -> str:
    return f"{user_prefix(owner)}rate"


def address_key(address: str) -> str:
    """An address's failure counter: one Redis Cluster slot of its own."""
    return f"lima:{{a:{_tag(address)}}}:authfail"
