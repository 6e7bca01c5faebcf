-- Marks this server alive and removes the members of every server that has
-- been silent for longer than the timeout, telling their rooms that they
-- disconnected. Redis's clock is the only one used, so servers whose
-- clocks disagree still agree on who is dead. See `HeartbeatScript` in
-- scripts.rs.
-- KEYS: 1 the nodes sorted set
-- ARGV: 1 this node's id, 2 timeout in ms, 3 '1' to first remove this
--       node's own members (after it lost its link and closed them),
--       4 the prefix of node hashes, 5 the rooms sorted set
-- Returns how many servers were dead, then, for each member removed, the
-- room's members hash, the departure event and how many members the room
-- has left (which tells the caller whether the room is now vacated).
local removed = {}
local function reap(node)
  local key = ARGV[4] .. node
  -- Each record says, one per line: the members hash, the feed channel,
  -- the session id and the room's name, and the event that announces the
  -- member's departure (feed.rs's `reap_record`).
  for _, record in ipairs(redis.call('HVALS', key)) do
    local members, channel, owner, event = string.match(record, '^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
    -- The session id, then the room's name; a record written before
    -- records named their room has the session id alone.
    local session, room = string.match(owner or '', '^(%d+) (.*)$')
    session = session or owner
    if event then
      if redis.call('HDEL', members, session) == 1 then
        local left = redis.call('HLEN', members)
        table.insert(removed, members)
        table.insert(removed, event)
        table.insert(removed, left)
        if left == 0 and room then
          redis.call('ZREM', ARGV[5], room)
        end
      end
      redis.call('PUBLISH', channel, event)
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
table.insert(removed, 1, #dead)
return removed
