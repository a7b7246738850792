"""The store's Lua scripts: every write that belongs to one turn is one script, so a turn is stored whole or not
at all, and the owner check happens inside it (another user's id behaves exactly like a missing one).

Redis does not roll a script back when it fails half-way: a write made before an error stays. So every script
does all its reads and checks first, the type of every key it touches included, and writes only once nothing
can fail: a conversation that is missing, another user's, full, over a quota or corrupt (a key of the wrong type, a
revision or byte count that is not an integer) leaves Redis exactly as it was. Corruption is answered with an
error reply "LIMA_CORRUPT <what>" (store.py makes it a Corrupt failure).

Per-user quotas: the conversations a user has are the members of their index (ZCARD); the bytes they store are
counted in their sizes hash (field conv id -> bytes of that conversation's item JSON, field resp id -> bytes of
that response record, field `total` -> the sum), added to by every write and subtracted from by every removal.
Expired conversations and responses linger in both until reconciled: when a write would pass a cap, the entries
whose keys no longer exist are left out and the check is made again; the stale entries are dropped (and `total`
corrected) only when the write then goes ahead, so a refused write writes nothing at all."""

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
local INDEX, RESPONSE, SIZES = {'zset', 'conversation index'}, {'string', 'response'}, {'hash', 'stored-bytes'}
local CONV_ID = '^conv_' .. string.rep('[0-9a-f]', 32) .. '$'
local RESP_ID = '^resp_' .. string.rep('[0-9a-f]', 32) .. '$'
local NOT_A_COUNT = 'LIMA_CORRUPT a stored-bytes count is not an integer'

-- The counts of `fields` in the sizes hash (0 when absent), or nil and the error reply when one is not an integer.
local function counts(sizes, fields)
  local values = redis.call('HMGET', sizes, unpack(fields))
  local found = {}
  for i = 1, #fields do
    local value = values[i]
    if value and not string.match(value, '^%-?%d+$') then return nil, redis.error_reply(NOT_A_COUNT) end
    found[i] = tonumber(value or '0')
  end
  return found
end

-- Reads only: the bytes in use once the entries of expired conversations and responses are left out, and those
-- entries (prefix: the user's key prefix, where their keys live); nil, nil and the error reply on a bad count.
local function live_bytes(sizes, prefix)
  local flat = redis.call('HGETALL', sizes)
  local used, stale = 0, {}
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    if field ~= 'total' then
      local key = nil
      if string.match(field, CONV_ID) then key = prefix .. 'conv:' .. field
      elseif string.match(field, RESP_ID) then key = prefix .. 'resp:' .. field end
      if key and redis.call('EXISTS', key) == 1 then
        if not string.match(value, '^%-?%d+$') then return nil, nil, redis.error_reply(NOT_A_COUNT) end
        used = used + tonumber(value)
      else
        table.insert(stale, field)
      end
    end
  end
  return used, stale
end

-- Reads only. Whether `adding` more bytes fit under `cap` (0 = no cap) given `total` (the sizes hash's count);
-- returns fits, the bytes in use, and the reconciliation to apply before writing (nil when none was needed).
local function bytes_fit(sizes, prefix, cap, total, adding)
  if cap == 0 or adding <= 0 or total + adding <= cap then return true, total, nil end
  local used, stale, bad = live_bytes(sizes, prefix)
  if bad then return nil, nil, nil, bad end
  return used + adding <= cap, used, {used = used, stale = stale}
end

-- Writes: the reconciliation bytes_fit found (stale entries dropped, total corrected); returns the new total.
local function reconcile(sizes, fix, total)
  if not fix then return total end
  for _, field in ipairs(fix.stale) do redis.call('HDEL', sizes, field) end
  redis.call('HSET', sizes, 'total', fix.used)
  return fix.used
end

-- Writes: `bytes` fewer under `field` (nil: all of it; never below 0) and in the total.
local function remove_bytes(sizes, field, bytes)
  local have = tonumber(redis.call('HGET', sizes, field) or '0')
  local gone = have
  if bytes and bytes < have then gone = bytes end
  if gone == have then redis.call('HDEL', sizes, field) else redis.call('HINCRBY', sizes, field, -gone) end
  local total = tonumber(redis.call('HGET', sizes, 'total') or '0')
  if total - gone > 0 then redis.call('HSET', sizes, 'total', total - gone) else redis.call('HDEL', sizes, 'total') end
end
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

# KEYS: conv, ids, items, user index, sizes. ARGV: owner, conv id, ttl, now ms, created_at (s), metadata JSON,
# preview ('' = none), most conversations per user (0 = no cap), most stored bytes per user (0 = no cap), the
# user's key prefix, then item id / item JSON pairs. Returns {1, conversations before, bytes in use before};
# {0} if the conversation already exists; {-3, conversations} past the conversation quota; {-4, bytes in use,
# bytes needed} past the byte quota (nothing written in each case).
CREATE = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX, SIZES})
if bad then return bad end
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then return {0} end
local prefix, most = ARGV[10], tonumber(ARGV[8])
local conversations, gone = redis.call('ZCARD', KEYS[4]), {}
if most > 0 and conversations >= most then  -- expired conversations linger in the index: leave them out
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if not string.match(id, CONV_ID) or redis.call('EXISTS', prefix .. 'conv:' .. id) == 0 then
      table.insert(gone, id)
    end
  end
  conversations = conversations - #gone
  if conversations >= most then return {-3, conversations} end
end
local adding = 0
for i = 12, #ARGV, 2 do adding = adding + #ARGV[i] end
local found, bad_count = counts(KEYS[5], {'total'})
if bad_count then return bad_count end
local fits, used, fix, bad_bytes = bytes_fit(KEYS[5], prefix, tonumber(ARGV[9]), found[1], adding)
if bad_bytes then return bad_bytes end
if not fits then return {-4, used, adding} end
for _, id in ipairs(gone) do redis.call('ZREM', KEYS[4], id) end
local total = reconcile(KEYS[5], fix, found[1])
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'owner', ARGV[1], 'created_at', ARGV[5], 'updated_at', ARGV[4],
           'metadata', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'preview', ARGV[7]) end
for i = 11, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
if adding > 0 then redis.call('HSET', KEYS[5], ARGV[2], adding, 'total', total + adding) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {1, conversations, used}
"""

# KEYS: conv, ids, items, user index, sizes, and the response record's key when there is one. ARGV: owner, conv
# id, max items, ttl, now ms, preview, response JSON ('' = none), response id ('' = none), most stored bytes per
# user (0 = no cap), the user's key prefix, then item id / item JSON pairs. Returns {item count, revision};
# {-1} if missing, {-2} if the items would pass the maximum, {-4, bytes in use, bytes needed} past the byte quota.
APPEND = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX, SIZES, RESPONSE})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {-1} end
bad = integer_field(KEYS[1], 'rev', 'revision')
if bad then return bad end
local count = redis.call('LLEN', KEYS[2]) + (#ARGV - 10) / 2
if count > tonumber(ARGV[3]) then return {-2} end
local added = 0
for i = 12, #ARGV, 2 do added = added + #ARGV[i] end
local record = KEYS[6] and ARGV[8] ~= ''
local found, bad_count = counts(KEYS[5], {'total', ARGV[2], record and ARGV[8] or 'total'})
if bad_count then return bad_count end
local replaced = 0  -- a record saved again replaces its bytes
if record and redis.call('EXISTS', KEYS[6]) == 1 then replaced = found[3] end
local adding = added + (record and #ARGV[7] or 0) - replaced
local fits, used, fix, bad_bytes = bytes_fit(KEYS[5], ARGV[10], tonumber(ARGV[9]), found[1], adding)
if bad_bytes then return bad_bytes end
if not fits then return {-4, used, adding} end
local total = reconcile(KEYS[5], fix, found[1])
for i = 11, #ARGV, 2 do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSETNX', KEYS[1], 'preview', ARGV[6]) end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
if added > 0 then redis.call('HINCRBY', KEYS[5], ARGV[2], added) end
if record then
  redis.call('SET', KEYS[6], ARGV[7])
  redis.call('HSET', KEYS[5], ARGV[8], #ARGV[7])
end
if adding ~= 0 then redis.call('HSET', KEYS[5], 'total', total + adding) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {count, rev}
"""

# A response stored outside a conversation. KEYS: the record's key, sizes. ARGV: response JSON, response id, ttl
# (0 = none), most stored bytes per user (0 = no cap), the user's key prefix. Returns {1, bytes in use before};
# {-4, bytes in use, bytes needed} past the byte quota (nothing written).
SAVE_RESPONSE = CHECKS + """
local bad = check_types({RESPONSE, SIZES})
if bad then return bad end
local found, bad_count = counts(KEYS[2], {'total', ARGV[2]})
if bad_count then return bad_count end
local replaced = 0  -- a record saved again replaces its bytes
if redis.call('EXISTS', KEYS[1]) == 1 then replaced = found[2] end
local adding = #ARGV[1] - replaced
local fits, used, fix, bad_bytes = bytes_fit(KEYS[2], ARGV[5], tonumber(ARGV[4]), found[1], adding)
if bad_bytes then return bad_bytes end
if not fits then return {-4, used, adding} end
local total = reconcile(KEYS[2], fix, found[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], #ARGV[1], 'total', total + adding)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 2 do redis.call('EXPIRE', KEYS[i], ttl) end
end
return {1, used}
"""

# KEYS: the record's key, sizes. ARGV: owner, response id. Returns 1, or 0 if missing or another user's.
DELETE_RESPONSE = CHECKS + """
local bad = check_types({RESPONSE, SIZES})
if bad then return bad end
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' then return redis.error_reply('LIMA_CORRUPT a stored response is not JSON') end
if record.owner ~= ARGV[1] then return 0 end
local _, bad_count = counts(KEYS[2], {'total', ARGV[2]})
if bad_count then return bad_count end
redis.call('DEL', KEYS[1])
remove_bytes(KEYS[2], ARGV[2], nil)
return 1
"""

# KEYS: conv. ARGV: owner, metadata JSON.
UPDATE_METADATA = CHECKS + """
local bad = check_types({CONV})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'metadata', ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: conv, ids, items, user index, sizes. ARGV: owner, conv id. Its response records stay (and stay counted).
DELETE_CONVERSATION = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, INDEX, SIZES})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
local _, bad_count = counts(KEYS[5], {'total', ARGV[2]})
if bad_count then return bad_count end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[2])
remove_bytes(KEYS[5], ARGV[2], nil)
return 1
"""

# KEYS: conv, ids, items, sizes. ARGV: owner, item id, conv id.
DELETE_ITEM = CHECKS + """
local bad = check_types({CONV, IDS, ITEMS, SIZES})
if bad then return bad end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return false end
bad = integer_field(KEYS[1], 'rev', 'revision')
if bad then return bad end
local _, bad_count = counts(KEYS[4], {'total', ARGV[3]})
if bad_count then return bad_count end
if redis.call('LREM', KEYS[2], 0, ARGV[2]) == 0 then return false end  -- nothing removed: nothing written
remove_bytes(KEYS[4], ARGV[3], redis.call('HSTRLEN', KEYS[3], ARGV[2]))
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
