-- What Redis holds of a room, read without touching it: for the server
-- API on a server where the room is not open. Nil for a room Redis does
-- not know. See `PeekScript` in scripts.rs.
-- KEYS: 1 meta hash, 2 history stream, 3 members hash
-- ARGV: 1 history length
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return false
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
local history = {}
if tonumber(ARGV[1]) > 0 then
  local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])
  for i = #entries, 1, -1 do
    history[#history + 1] = entries[i][2][2]
  end
end
return { epoch, seq, history, redis.call('HGETALL', KEYS[3]) }
