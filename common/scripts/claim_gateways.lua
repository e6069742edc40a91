-- Claims gateways that stopped heartbeating, atomically, so that exactly
-- one worker cleans up after each. A claimed gateway moves from
-- chat:gateways to chat:gateways:dead (score = when it was claimed); the
-- claimer removes its sessions and then its dead entry (finish_gateway.lua).
-- A dead entry older than the reclaim age means the claimer died midway:
-- it is claimed again (the cleanup is idempotent), unless the gateway has
-- come back meanwhile, in which case it owns its sessions again.
-- Times come from Redis's clock, one clock for every worker.
--
-- Silence of Redis itself is not silence of the gateways. When no sweep has
-- run for longer than the stall limit, Redis was stalled or unreachable (a
-- pause, a failover, a restart) or no worker ran; either way the heartbeats
-- are stale for everyone, and the gateways need time to reconnect and beat
-- again. So a stall opens a grace of one heartbeat timeout in which nobody
-- is declared dead.
--
-- KEYS[1] chat:gateways   KEYS[2] chat:gateways:dead
-- KEYS[3] chat:gateways:sweep (hash: last_ms, grace_until_ms)
-- ARGV[1] heartbeat timeout (ms)   ARGV[2] reclaim age (ms)
-- ARGV[3] the most gateways to claim in one call
-- ARGV[4] stall limit (ms): a longer gap between sweeps opens a grace
-- Returns a flat array {stall, id, kind, id, kind, ...}: stall is the gap in
-- ms that has just opened a grace (0 if none); kind 1 = declared dead now,
-- kind 2 = an unfinished cleanup taken over.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local timeout = tonumber(ARGV[1])
local limit = tonumber(ARGV[3])
local out = {0}

local last = tonumber(redis.call('HGET', KEYS[3], 'last_ms') or '')
local grace_until = tonumber(redis.call('HGET', KEYS[3], 'grace_until_ms') or '') or 0
redis.call('HSET', KEYS[3], 'last_ms', string.format('%d', now))
if last and now - last > tonumber(ARGV[4]) then
  grace_until = now + timeout
  redis.call('HSET', KEYS[3], 'grace_until_ms', string.format('%d', grace_until))
  out[1] = now - last
end
if now < grace_until then
  return out
end

local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',
  '(' .. string.format('%d', now - timeout), 'LIMIT', 0, limit)
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now, id)
  out[#out + 1] = id
  out[#out + 1] = 1
end

local room = limit - #stale
if room > 0 then
  local orphans = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf',
    '(' .. string.format('%d', now - tonumber(ARGV[2])), 'LIMIT', 0, room)
  for _, id in ipairs(orphans) do
    if redis.call('ZSCORE', KEYS[1], id) then
      redis.call('ZREM', KEYS[2], id)
    else
      redis.call('ZADD', KEYS[2], now, id)
      out[#out + 1] = id
      out[#out + 1] = 2
    end
  end
end
return out
