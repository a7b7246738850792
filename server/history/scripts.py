"""The store's Lua scripts: every write that belongs to one turn is one script, so a turn is stored whole or not
at all, and the owner check happens inside it (another user's id behaves exactly like a missing one)."""

# A missing owner (no such conversation) or another owner both read as "not found". ARGV: owner, the revision
# and item count this process has cached (-1, 0: none). Items are sent from the cached count on when nothing
# was removed since that revision (appends only), else all of them. Returns {hash, items, first index sent}.
LOAD = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
local cut = tonumber(redis.call('HGET', KEYS[1], 'cut') or '0')
local cached = tonumber(ARGV[2])
local from = 0
if cached >= cut and cached <= rev then from = tonumber(ARGV[3]) end
local ids = redis.call('LRANGE', KEYS[2], from, -1)
local meta = redis.call('HGETALL', KEYS[1])
if #ids == 0 then return {meta, {}, from} end
return {meta, redis.call('HMGET', KEYS[3], unpack(ids)), from}
"""

# KEYS: conv, ids, items, user index, response. ARGV: owner, conv id, max items, ttl, now ms, preview,
# response JSON ('' = none), then item id / item JSON pairs. Returns {item count, revision}; {-1} if missing,
# {-2} if the items would pass the maximum.
APPEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
local count = redis.call('LLEN', KEYS[2]) + (#ARGV - 7) / 2
if count > tonumber(ARGV[3]) then return {-2} end
for i = 8, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSETNX', KEYS[1], 'preview', ARGV[6]) end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
if ARGV[7] ~= '' then redis.call('SET', KEYS[5], ARGV[7]) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {count, rev}
"""

UPDATE_METADATA = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'metadata', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

DELETE_CONVERSATION = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
return 1
"""

DELETE_ITEM = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
if redis.call('LREM', KEYS[2], 0, ARGV[2]) == 0 then return false end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'cut', redis.call('HINCRBY', KEYS[1], 'rev', 1))
return redis.call('HGETALL', KEYS[1])
"""

# previous_response_id chains, newest first, walked inside Redis: one round trip whatever the length. KEYS: the
# newest record. ARGV: the owner's response key prefix (same hash tag, so the same slot), owner, most records.
# Returns false if the newest is missing or not the owner's.
RESPONSE_CHAIN = """
local chain = {}
local key = KEYS[1]
while key and #chain < tonumber(ARGV[3]) do
  local raw = redis.call('GET', key)
  if not raw then break end
  local record = cjson.decode(raw)
  if record.owner ~= ARGV[2] then break end
  table.insert(chain, raw)
  key = nil
  if record.previous_response_id ~= cjson.null and record.previous_response_id then
    key = ARGV[1] .. record.previous_response_id
  end
end
if #chain == 0 then return false end
return chain
"""
