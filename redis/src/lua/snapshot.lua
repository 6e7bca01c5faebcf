-- What Redis holds of a room: its epoch, the last sequence number, the
-- recent history and every member on every server. A server starting to
-- serve the room gives an epoch to use if the room has none (and keeps
-- the room alive); a read for the server API gives none, changes nothing,
-- and gets nil for a room Redis does not know. See `SnapshotScript` and
-- `PeekScript` in scripts.rs.
-- KEYS: 1 meta hash, 2 history stream, 3 members hash
-- ARGV: 1 epoch to use if the room has none ('' to only read), 2 history
--       length, 3 time to live in seconds
if ARGV[1] ~= '' then
  if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
    redis.call('DEL', KEYS[2])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return false
end
local seq = redis.call('HGET', KEYS[1], 'seq') or '0'
local history = {}
if tonumber(ARGV[2]) > 0 then
  local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
  for i = #entries, 1, -1 do
    history[#history + 1] = entries[i][2][2]
  end
end
return { epoch, seq, history, redis.call('HGETALL', KEYS[3]) }
