-- History retention by age, for one room, atomically. A room whose last
-- activity is older than the age limit and that has no members loses all
-- its keys; otherwise the history entries older than the limit are
-- trimmed from the low end. Nothing else is deleted.
--
-- The room's last activity is meta.last_ms (set by every publish), else
-- the ts of its newest history entry, else - for a room that never had a
-- message - the time a worker first found it so (meta.idle_since_ms,
-- written here), so that such a room also expires one age limit later.
-- Times come from Redis's clock, the clock that stamped the history.
--
-- KEYS[1] chat:{r}:meta   KEYS[2] chat:{r}:history   KEYS[3] chat:{r}:members
-- ARGV[1] the age limit (ms)   ARGV[2] the most entries to trim in this call
-- Returns {expired (0 or 1), entries trimmed}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - tonumber(ARGV[1])

-- Envelopes begin {"type":"message","seq":N,"ts":T,...: the first "ts" is
-- the envelope's own, whatever the message text holds.
local function ts_of(envelope)
  return tonumber(string.match(envelope, '^{"type":"message","seq":%d+,"ts":(%d+)'))
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0}
end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_ms') or '')
if not last then
  local newest = redis.call('ZRANGE', KEYS[2], -1, -1)
  if newest[1] then
    last = ts_of(newest[1])
  end
end
if not last then
  last = tonumber(redis.call('HGET', KEYS[1], 'idle_since_ms') or '')
  if not last then
    redis.call('HSET', KEYS[1], 'idle_since_ms', string.format('%d', now))
    last = now
  end
end

if last < cutoff and redis.call('HLEN', KEYS[3]) == 0 then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return {1, 0}
end

local limit = tonumber(ARGV[2])
local trimmed = 0
while trimmed < limit do
  local batch = redis.call('ZRANGE', KEYS[2], 0, 99, 'WITHSCORES')
  local upto = nil
  local n = 0
  for i = 1, #batch, 2 do
    local ts = ts_of(batch[i])
    if not ts or ts >= cutoff or trimmed + n >= limit then
      break
    end
    upto = batch[i + 1]
    n = n + 1
  end
  if not upto then
    break
  end
  trimmed = trimmed + redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', upto)
  if n < #batch / 2 then
    break
  end
end
return {0, trimmed}
