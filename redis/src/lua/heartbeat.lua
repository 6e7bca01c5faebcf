-- Marks this server alive and takes on the dead: every server silent for
-- longer than the timeout leaves the live set and is handed to the caller
-- alone, which removes its members room by room (`reap.lua`) and then
-- clears it from the reaping set. A server handed one that then dies
-- itself leaves it in the reaping set, where it is handed out again once
-- the timeout passes. Redis's clock is the only one used, so servers whose
-- clocks disagree still agree on who is dead. Both keys are in one slot.
-- See `HeartbeatScript` in scripts.rs.
-- KEYS: 1 the live nodes sorted set, 2 the reaping sorted set
-- ARGV: 1 this node's id, 2 timeout in ms
-- Returns the ids of the dead servers handed to the caller.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local deadline = now - tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', deadline)
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', deadline)) do
  dead[#dead + 1] = node
end
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('ZADD', KEYS[2], now, node)
end
return dead
