-- Records a member joining or leaving a room: in the room's members hash
-- (what a snapshot lists) and in this server's node hash (what to remove
-- should this server die). The link announces the change later, with the
-- rest of its interval's changes (feed.rs's `presence_batches`).
-- Everything it writes was written by Rust (feed.rs); see `PresenceScript`
-- in scripts.rs.
-- KEYS: 1 the room's members hash, 2 this server's node hash, 3 the rooms
--       sorted set
-- ARGV: 1 session id, 2 member record, 3 node field, 4 reap record,
--       5 '1' when the member arrives, 6 the room's name
-- Returns how many members the room has now on every server, which tells
-- the link whether this change occupied or vacated the room.
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[3])
end
local members = redis.call('HLEN', KEYS[1])
if members > 0 then
  redis.call('ZADD', KEYS[3], 0, ARGV[6])
else
  redis.call('ZREM', KEYS[3], ARGV[6])
end
return members
