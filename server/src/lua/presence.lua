-- Records a member joining or leaving a room and tells every server.
-- KEYS: 1 the room's members hash, 2 this server's node hash
-- ARGV: 1 events channel, 2 session id, 3 node id, 4 name, 5 room,
--       6 kind ('j' joined, 'l' left, 'd' disconnected)
local field = ARGV[2] .. ' ' .. ARGV[5]
if ARGV[6] == 'j' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3] .. ' ' .. ARGV[4])
  redis.call('HSET', KEYS[2], field, ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], field)
end
redis.call('PUBLISH', ARGV[1], ARGV[6] .. ' ' .. ARGV[2] .. ' ' .. #ARGV[4] .. '\n' .. ARGV[4])
return 1
