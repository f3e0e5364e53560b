"""The Redis side of presence across processes, as Lua scripts (each one atomic).

Keys (one Redis, not a cluster: the sweep and the resync name room keys themselves):

- ``streamzy:presence:room:{room}``: hash, user id -> how many processes have them there;
  its length is the room's online count;
- ``streamzy:presence:proc:{process}``: set of "room:user" this process has counted, so a
  process counts a person once (SADD/SREM guard every change: all of them are idempotent)
  and what a dead process counted can be taken back;
- ``streamzy:presence:procs``: sorted set, process -> last heartbeat (Redis's own clock);
- ``streamzy:presence:people``: hash, user id -> public profile (JSON) for join answers.
"""

from __future__ import annotations

PREFIX = "streamzy:presence:"
PROCS = PREFIX + "procs"
PEOPLE = PREFIX + "people"


def room_key(room_id: int) -> str:
    return f"{PREFIX}room:{room_id}"


def process_key(process: str) -> str:
    return f"{PREFIX}proc:{process}"


# KEYS: room hash, process set, people. ARGV: "room:user", user id, profile JSON.
# Returns {1 if the person just came online in the room (first process), online count}.
ENTER = """
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  local n = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  return {n == 1 and 1 or 0, redis.call('HLEN', KEYS[1])}
end
return {0, redis.call('HLEN', KEYS[1])}
"""

# KEYS: room hash, process set. ARGV: "room:user", user id.
# Returns {1 if the person just went offline in the room (last process), online count}.
LEAVE = """
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  local n = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
  if n <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[2])
    return {1, redis.call('HLEN', KEYS[1])}
  end
end
return {0, redis.call('HLEN', KEYS[1])}
"""

# KEYS: room hash, people. ARGV: how many. Returns {count, profile JSON...} (the first
# entries HSCAN gives; all of them in a small room).
READ = """
local limit = tonumber(ARGV[1])
local out = {redis.call('HLEN', KEYS[1])}
local items = redis.call('HSCAN', KEYS[1], '0', 'COUNT', limit)[2]
local ids = {}
for i = 1, #items, 2 do
  if #ids >= limit then break end
  ids[#ids + 1] = items[i]
end
if #ids > 0 then
  local profiles = redis.call('HMGET', KEYS[2], unpack(ids))
  for i = 1, #ids do out[#out + 1] = profiles[i] or '' end
end
return out
"""

_TAKE_BACK = """
local function take_back(member)
  local sep = string.find(member, ':', 1, true)
  local user = string.sub(member, sep + 1)
  local key = '""" + PREFIX + """room:' .. string.sub(member, 1, sep - 1)
  local n = redis.call('HINCRBY', key, user, -1)
  if n <= 0 then
    redis.call('HDEL', key, user)
    return true
  end
  return false
end
"""

# ARGV: this process, seconds of silence after which a process counts as dead.
# Heartbeat, then take back what dead processes counted. Returns the "room:user" entries
# that went offline.
TICK = _TAKE_BACK + """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', '""" + PROCS + """', now, ARGV[1])
local gone = {}
local dead = redis.call('ZRANGEBYSCORE', '""" + PROCS + """', '-inf', now - tonumber(ARGV[2]))
for _, process in ipairs(dead) do
  local key = '""" + PREFIX + """proc:' .. process
  for _, member in ipairs(redis.call('SMEMBERS', key)) do
    if take_back(member) then gone[#gone + 1] = member end
  end
  redis.call('DEL', key)
  redis.call('ZREM', '""" + PROCS + """', process)
end
return gone
"""

# KEYS: this process's set, people. ARGV: "room:user", profile JSON, ... (everything this
# process holds now). Makes Redis agree with it (after an outage, a restart of Redis or a
# sweep of this process while it was paused). Returns {"room:user", "1"|"0", ...}: who
# came online or went offline in the room by it.
RESYNC = _TAKE_BACK + """
local want = {}
for i = 1, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
local changes = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not want[member] then
    redis.call('SREM', KEYS[1], member)
    if take_back(member) then
      changes[#changes + 1] = member
      changes[#changes + 1] = '0'
    end
  end
end
for member, profile in pairs(want) do
  local sep = string.find(member, ':', 1, true)
  local user = string.sub(member, sep + 1)
  redis.call('HSET', KEYS[2], user, profile)
  if redis.call('SADD', KEYS[1], member) == 1 then
    local key = '""" + PREFIX + """room:' .. string.sub(member, 1, sep - 1)
    if redis.call('HINCRBY', key, user, 1) == 1 then
      changes[#changes + 1] = member
      changes[#changes + 1] = '1'
    end
  end
end
return changes
"""
