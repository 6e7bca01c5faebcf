-- Removes the members a dead server left in one room and announces each
-- departure on the room's feed. Both keys are in the room's slot; the
-- heartbeat (`heartbeat.lua`) decides which server is dead, and the link
-- runs this for each room that server had members in. Removing a member
-- twice removes it once, so two servers reaping together announce each
-- departure once. See `ReapScript` in scripts.rs.
-- KEYS: 1 the room's members hash, 2 the room's hash of the dead server's
--       members
-- ARGV: 1 the room's feed channel
-- Returns how many members the room has left, when (as `presence.lua`),
-- then the departure event of each member removed.
local reply = { 0, 0 }
local records = redis.call('HGETALL', KEYS[2])
for i = 1, #records, 2 do
  if redis.call('HDEL', KEYS[1], records[i]) == 1 then
    redis.call('PUBLISH', ARGV[1], records[i + 1])
    reply[#reply + 1] = records[i + 1]
  end
end
redis.call('DEL', KEYS[2])
local time = redis.call('TIME')
reply[1] = redis.call('HLEN', KEYS[1])
reply[2] = tonumber(time[1]) * 1000000 + tonumber(time[2])
return reply
