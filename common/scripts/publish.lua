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
-- ARGV[5] deadline (ms since the epoch, optional): past it, store nothing.
--         A gateway that waited that long for Redis (paused, wedged) has
--         already told the sender `unavailable`; the message must not appear
--         later behind its back.
-- ARGV[6] the publish command: PUBLISH, or SPUBLISH in a Redis Cluster
--         (optional: PUBLISH)
-- Returns {seq, epoch}, or the error EXPIRED.
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[5] and tonumber(ARGV[5]) and ts > tonumber(ARGV[5]) then
  return redis.error_reply('EXPIRED the gateway stopped waiting for this message')
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local envelope = '{"type":"message","seq":' .. string.format('%d', seq) ..
  ',"ts":' .. string.format('%d', ts) .. ',' .. ARGV[2]
redis.call('ZADD', KEYS[2], seq, envelope)
local cap = tonumber(ARGV[3])
if seq > cap then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', seq - cap)
end
redis.call('HSET', KEYS[1], 'last_ms', ts)
redis.call(ARGV[6] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1], envelope)
return {seq, epoch}
