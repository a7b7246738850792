"""The store's Lua scripts: every write that belongs to one turn is one script, so a turn is stored whole or not
at all, and the owner check happens inside it (another user's id behaves exactly like a missing one).

Redis does not roll a script back when it fails half-way: a write made before an error stays. So every script
does all its reads and checks first, the type of every key it touches included, and writes only once nothing
can fail: a conversation that is missing, another user's, full or corrupt (a key of the wrong type, a revision
that is not an integer) leaves Redis exactly as it was. Corruption is answered with an error reply
"LIMA_CORRUPT <what>" (store.py makes it a Corrupt failure)."""

CORRUPT = "LIMA_CORRUPT"

# Prepended to each script. check_types(spec): spec[i] = {type, name} for KEYS[i] (absent KEYS are skipped);
# returns the error reply to give if a key exists with another type, else nil. integer_field(key, field, name):
# the same for a hash field that HINCRBY will count on.
CHECKS = """
local function check_types(spec)
  for i, want in ipairs(spec) do
    if KEYS[i] then
      local kind = redis.call('TYPE', KEYS[i]).ok
      if kind ~= 'none' and kind ~= want[1] then
        return redis.error_reply('LIMA_CORRUPT the ' .. want[2] .. ' key holds a ' .. kind .. ', not a ' .. want[1])
      end
    end
  end
  return nil
end
local function integer_field(key, field, name)
  local value = redis.call('HGET', key, field)
  if value and not string.match(value, '^%-?%d+$') then
    return redis.error_reply('LIMA_CORRUPT the conversation ' .. name .. ' is not an integer')
  end
  return nil
end
local CONV, IDS, ITEMS = {'hash', 'conversation'}, {'list', 'item list'}, {'hash', 'item'}
local INDEX, RESPONSE = {'zset', 'conversation index'}, {'string', 'response'}
"""

# A missing owner (no such conversation) or another owner both read as "not found". ARGV: owner, the revision
# and item count this process has cached (-1, 0: none). Items are sent from the cached count on when nothing
# was removed since that revision (appends only), else all of them. Returns {hash, items, first index sent}.
LOAD = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
bad = integer_field(KEYS[1], 'rev', 'revision') or integer_field(KEYS[1], 'cut', 'cut revision')
if bad then return bad end
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

# KEYS: conv, ids, items, user index. ARGV: owner, conv id, ttl, now ms, created_at (s), metadata JSON, preview
# ('' = none), then item id / item JSON pairs. Returns 1; 0 if the conversation already exists (nothing written).
CREATE = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX})
if bad then return bad end
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'owner', ARGV[1], 'created_at', ARGV[5], 'updated_at', ARGV[4],
           'metadata', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'preview', ARGV[7]) end
for i = 8, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1
"""

# KEYS: conv, ids, items, user index, and the response record's key when there is one. ARGV: owner, conv id,
# max items, ttl, now ms, preview, response JSON ('' = none), then item id / item JSON pairs. Returns
# {item count, revision}; {-1} if missing, {-2} if the items would pass the maximum.
APPEND = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX, RESPONSE})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
bad = integer_field(KEYS[1], 'rev', 'revision')
if bad then return bad end
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
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[7]) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {count, rev}
"""

# KEYS: conv. ARGV: owner, metadata JSON.
UPDATE_METADATA = CHECKS + """
local bad = check_types({CONV})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'metadata', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: conv, ids, items, user index. ARGV: owner, conv id.
DELETE_CONVERSATION = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
return 1
"""

# KEYS: conv, ids, items. ARGV: owner, item id.
DELETE_ITEM = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
bad = integer_field(KEYS[1], 'rev', 'revision')
if bad then return bad end
if redis.call('LREM', KEYS[2], 0, ARGV[2]) == 0 then return false end  -- nothing removed: nothing written
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[1], 'cut', redis.call('HINCRBY', KEYS[1], 'rev', 1))
return redis.call('HGETALL', KEYS[1])
"""

# previous_response_id chains, newest first, walked inside Redis: one round trip whatever the length. KEYS: the
# newest record. ARGV: the owner's response key prefix (same hash tag, so the same slot), owner, most records.
# Only ids of the issued shape are followed (records are written from checked ids; this keeps it so).
# Returns false if the newest is missing or not the owner's.
RESPONSE_CHAIN = CHECKS + """
local chain = {}
local key = KEYS[1]
local issued = '^resp_' .. string.rep('[0-9a-f]', 32) .. '$'
while key and #chain < tonumber(ARGV[3]) do
  local kind = redis.call('TYPE', key).ok
  if kind ~= 'string' and kind ~= 'none' then
    return redis.error_reply('LIMA_CORRUPT the response key holds a ' .. kind .. ', not a string')
  end
  local raw = redis.call('GET', key)
  if not raw then break end
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' then return redis.error_reply('LIMA_CORRUPT a stored response is not JSON') end
  if record.owner ~= ARGV[2] then break end
  table.insert(chain, raw)
  key = nil
  local previous = record.previous_response_id
  if type(previous) == 'string' and string.match(previous, issued) then key = ARGV[1] .. previous end
end
if #chain == 0 then return false end
return chain
"""
