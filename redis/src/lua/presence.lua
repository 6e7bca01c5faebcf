-- Records a member joining or leaving a room and tells every server.
-- Everything it writes was written by Rust (feed.rs); see `PresenceScript`
-- in scripts.rs.
-- KEYS: 1 the room's members hash, 2 this server's node hash
-- ARGV: 1 events channel, 2 session id, 3 member record, 4 node field,
--       5 reap record, 6 the event, 7 '1' when the member arrives
if ARGV[7] == '1' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
else
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], ARGV[6])
return 1
