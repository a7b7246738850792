"""The ids this server issues for what it stores, and the one check every id a client sends passes before it goes
anywhere near Redis: the exact shape `new_id` gives (a prefix, then the 32 lowercase hex digits of a uuid4).

A client cannot choose any of these ids: conversations, responses and items are named by the server (input items
sent with an `id` of their own are given a new one, as OpenAI does). So anything of another shape cannot name a
stored object, and is answered exactly as a well-formed id that names nothing: with the route's own "not found".
Key names (store.py) are built from checked ids only: the key builders refuse any other with `checked`'s
not-found, which is the routes' own, so a route's path id needs no check of its own. Body fields whose missing
answer differs (`conversation`, `previous_response_id` in server/core/prompt.py) check with `is_issued`.
"""

import re
import uuid
from typing import Literal

from server.core.failures import NotFound

CONVERSATION = "conv_"
RESPONSE = "resp_"
MESSAGE = "msg_"
FUNCTION_CALL = "fc_"
FUNCTION_CALL_OUTPUT = "fco_"
ITEM_PREFIXES = (MESSAGE, FUNCTION_CALL, FUNCTION_CALL_OUTPUT)

Kind = Literal["conversation", "response", "item"]
PREFIXES: dict[Kind, tuple[str, ...]] = {
    "conversation": (CONVERSATION,), "response": (RESPONSE,), "item": ITEM_PREFIXES,
}
HEX_DIGITS = 32  # uuid.uuid4().hex
SHAPES: dict[Kind, re.Pattern[str]] = {
    kind: re.compile(f"(?:{'|'.join(map(re.escape, prefixes))})[0-9a-f]{{{HEX_DIGITS}}}")
    for kind, prefixes in PREFIXES.items()
}
# What a not-found answer says for each kind (the routes' own words; see checked()).
NOT_FOUND = {"conversation": "Conversation", "response": "Response", "item": "Item"}


def is_issued(kind: Kind, value: object) -> bool:
    """True if `value` has the exact shape of a `kind` id this server issues (fullmatch: no trailing newline)."""
    return isinstance(value, str) and SHAPES[kind].fullmatch(value) is not None


def checked(kind: Kind, value: str) -> str:
    """`value` if it is an issued id of `kind`, else the kind's not-found failure, worded as the routes word a
    missing id: what every key name is built through, so a malformed id never reaches Redis."""
    if not is_issued(kind, value):
        raise NotFound(f"{NOT_FOUND[kind]} with id '{value}' not found.", param=f"{kind}_id", code=f"{kind}_not_found")
    return value


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"
