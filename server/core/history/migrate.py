"""The key layout before per-user hash tags (lima:conv:<id>, lima:user:<owner>:convs, lima:resp:<id>) moved to the
current one (store.py) at start-up, so an upgraded server finds every stored conversation and response. Each
conversation and response moves in one script (renamed with its TTL), so replicas starting together cannot
move one twice or lose one; a marker key makes later starts skip the scan."""

import json
import logging

from server.core.history.keys import conversation_keys, response_key, user_index
from server.core.history.store import RedisClient
from server.core.ids import is_issued

log = logging.getLogger(__name__)

LAYOUT_KEY = "lima:layout"
LAYOUT = "2"  # per-user hash tags

# KEYS: old conv, old ids, old items, new conv, new ids, new items, new user index. ARGV: conv id.
MOVE_CONVERSATION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 3]) end
end
redis.call('ZADD', KEYS[7], redis.call('HGET', KEYS[4], 'updated_at') or 0, ARGV[1])
local ttl = redis.call('PTTL', KEYS[4])
local index_ttl = redis.call('PTTL', KEYS[7])
if ttl > 0 and (index_ttl == -1 or index_ttl < ttl) then
  redis.call('PEXPIRE', KEYS[7], ttl)
end
return 1
"""

# KEYS: old response, new response.
MOVE_RESPONSE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
"""


async def migrate_key_layout(client: RedisClient) -> tuple[int, int]:
    """Move every conversation and response kept in the old layout; returns how many of each moved. Needs a
    single Redis (a Sentinel master included): Redis Cluster was never served with the old layout."""
    if await client.get(LAYOUT_KEY) == LAYOUT.encode():
        return 0, 0
    move_conversation = client.register_script(MOVE_CONVERSATION)
    move_response = client.register_script(MOVE_RESPONSE)
    conversations = responses = 0
    async for raw in client.scan_iter(match="lima:conv:*", count=1000):
        key = raw.decode()
        if key.endswith((":ids", ":items")):
            continue
        conversation_id = key.removeprefix("lima:conv:")
        raw_owner = await client.hget(key, "owner")
        if raw_owner is None or not is_issued("conversation", conversation_id):  # no API route could reach it
            continue
        owner = raw_owner.decode() if isinstance(raw_owner, bytes) else str(raw_owner)
        new = conversation_keys(owner, conversation_id)
        conversations += await move_conversation(
            keys=[key, f"{key}:ids", f"{key}:items", *new, user_index(owner)], args=[conversation_id])
    async for raw in client.scan_iter(match="lima:resp:*", count=1000):
        key = raw.decode()
        record = await client.get(key)
        if record is None:
            continue
        owner = json.loads(record).get("owner")
        response_id = key.removeprefix("lima:resp:")
        if owner is None or not is_issued("response", response_id):
            continue
        responses += await move_response(keys=[key, response_key(owner, response_id)])
    stale = [raw async for raw in client.scan_iter(match="lima:user:*:convs", count=1000)]
    stale += [raw async for raw in client.scan_iter(match="lima:rate:*", count=1000)]
    if stale:  # old indexes (their conversations moved above) and rate buckets (refilled in a minute)
        await client.delete(*stale)
    await client.set(LAYOUT_KEY, LAYOUT)
    if conversations or responses:
        log.info("moved %d conversations and %d responses to the per-user key layout", conversations, responses)
    return conversations, responses
