-- Sequences, stores and broadcasts one chat message, atomically, so that
-- the order in the history and the order every server receives are one.
-- Arguments: see `PublishScript` in scripts.rs.
-- A publish with a receipt key (a backend's idempotency key, a member's
-- message id) keeps its receipt; a repeated key is answered with the
-- first publish's number and publishes nothing.
-- Answers {epoch, seq, 1 when repeated else 0}.
-- KEYS: 1 the room's meta hash, 2 its history stream, 3 the receipt
--       (unused without one)
-- ARGV: 1 events channel, 2 epoch to use if the room has none,
--       3 history length, 4 time to live in seconds,
--       5 the message without its header (feed.rs's `message_tail`),
--       6 '1' when the publish has a receipt key, 7 the receipt's
--       time to live in seconds
if ARGV[6] == '1' then
  local kept = redis.call('GET', KEYS[3])
  if kept then
    local epoch, seq = string.match(kept, '^(%d+) (%d+)$')
    return {epoch, tonumber(seq), 1}
  end
end
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2]) == 1 then
  -- A room without meta has lost its numbering, so any stream left over
  -- belongs to the old epoch.
  redis.call('DEL', KEYS[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
-- The header only Redis can write: the number it just gave out.
local event = 'm ' .. epoch .. ' ' .. seq .. ' ' .. ARGV[5]
if tonumber(ARGV[3]) > 0 then
  -- The entry id is the sequence number, so a resume reads by number.
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-1', 'e', event)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], event)
if ARGV[6] == '1' then
  redis.call('SET', KEYS[3], epoch .. ' ' .. seq, 'EX', ARGV[7])
end
return {epoch, seq, 0}
