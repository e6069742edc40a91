-- Publishes one chat message to a room, atomically: the next seq, the
-- room's epoch (set when the room starts afresh), the envelope appended to
-- history (capped by seq, so trimming is one range delete) and PUBLISH.
-- A message any member saw is therefore in history, and seq order is
-- publish order with no holes.
--
-- KEYS[1] chat:{r}:meta      KEYS[2] chat:{r}:history
-- ARGV[1] chat:{r} (channel)
-- ARGV[2] the envelope's tail: "room":...,"nickname":...,"message":...}
-- ARGV[3] history cap (messages kept)
-- ARGV[4] a fresh random epoch, used only if the room has none
-- Returns {seq, epoch}.
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local envelope = '{"type":"message","seq":' .. string.format('%d', seq) ..
  ',"ts":' .. string.format('%d', ts) .. ',' .. ARGV[2]
redis.call('ZADD', KEYS[2], seq, envelope)
local cap = tonumber(ARGV[3])
if seq > cap then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', seq - cap)
end
redis.call('HSET', KEYS[1], 'last_ms', ts)
redis.call('PUBLISH', ARGV[1], envelope)
return {seq, epoch}
