-- Puts a room on the list of rooms with members, or takes it off, unless a
-- later change of the same room is already there: changes of one room are
-- made in its slot (`presence.lua`, `reap.lua`) and reach this slot from
-- several servers, in any order. All three keys are in the list's slot.
-- See `ListingScript` in scripts.rs.
-- KEYS: 1 the rooms sorted set, 2 the versions hash, 3 the room's vacated
--       mark
-- ARGV: 1 the room's name, 2 when the change was made (microseconds),
--       3 '1' when the room has members, 4 how long the vacated mark
--       lasts, in seconds
local version = tonumber(ARGV[2])
local seen = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or redis.call('GET', KEYS[3]) or '0')
if version < seen then
  return 0
end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('DEL', KEYS[3])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4])
end
return 1
