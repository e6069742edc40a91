-- Claims gateways that stopped heartbeating, atomically, so that exactly
-- one worker cleans up after each. A claimed gateway moves from
-- chat:gateways to chat:gateways:dead (score = when it was claimed); the
-- claimer removes its sessions and then its dead entry (finish_gateway.lua).
-- A dead entry older than the reclaim age means the claimer died midway:
-- it is claimed again (the cleanup is idempotent), unless the gateway has
-- come back meanwhile, in which case it owns its sessions again.
-- Times come from Redis's clock, one clock for every worker.
--
-- KEYS[1] chat:gateways   KEYS[2] chat:gateways:dead
-- ARGV[1] heartbeat timeout (ms)   ARGV[2] reclaim age (ms)
-- ARGV[3] the most gateways to claim in one call
-- Returns a flat array {id, kind, id, kind, ...}: kind 1 = declared dead
-- now, kind 2 = an unfinished cleanup taken over.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[3])
local out = {}

local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',
  '(' .. string.format('%d', now - tonumber(ARGV[1])), 'LIMIT', 0, limit)
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
