-- Records a member joining or leaving a room: in the room's members hash
-- (what a snapshot lists) and in what the room holds of this server's
-- members (what to remove should this server die). Both keys are in the
-- room's slot. The link announces the change later, with the rest of its
-- interval's changes (feed.rs's `presence_batches`), and updates the list
-- of rooms with what this returns (`listing.lua`).
-- Everything it writes was written by Rust (feed.rs); see `PresenceScript`
-- in scripts.rs.
-- KEYS: 1 the room's members hash, 2 the room's hash of this server's
--       members
-- ARGV: 1 session id, 2 member record, 3 the departure to announce should
--       this server die, 4 '1' when the member arrives
-- Returns how many members the room has now on every server, which tells
-- the link whether this change occupied or vacated the room, and when it
-- happened (Redis's clock, in microseconds), which orders the room's
-- entries in the list of rooms.
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local time = redis.call('TIME')
return { redis.call('HLEN', KEYS[1]), tonumber(time[1]) * 1000000 + tonumber(time[2]) }
