-- Marks this server alive and removes the members of every server that has
-- been silent for longer than the timeout, telling their rooms that they
-- disconnected. Redis's clock is the only one used, so servers whose
-- clocks disagree still agree on who is dead.
-- KEYS: 1 the nodes sorted set
-- ARGV: 1 this node's id, 2 timeout in ms, 3 '1' to first remove this
--       node's own members (after it lost its link and closed them)
local function reap(node)
  local key = 'wtchat:node:' .. node
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local session, room = string.match(entries[i], '^(%d+) (.+)$')
    local name = entries[i + 1]
    if session then
      redis.call('HDEL', 'wtchat:room:' .. room .. ':members', session)
      redis.call('PUBLISH', 'wtchat:room:' .. room .. ':events', 'd ' .. session .. ' ' .. #name .. '\n' .. name)
    end
  end
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], node)
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[3] == '1' then
  reap(ARGV[1])
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, node in ipairs(dead) do
  reap(node)
end
return #dead
