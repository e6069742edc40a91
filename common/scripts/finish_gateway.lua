-- Ends the cleanup of a dead gateway once a worker has removed every
-- session it held: forgets the claim and the gateway's session registry.
-- If the gateway has come back meanwhile (it heartbeats into chat:gateways
-- again and re-registers what it holds), its registry is its own again and
-- is kept; entries in it that the cleanup already handled are harmless,
-- because a leave compares membership ids.
--
-- KEYS[1] chat:gateways   KEYS[2] chat:gateways:dead   KEYS[3] chat:gw:<id>:sessions
-- ARGV[1] the gateway id
-- Returns 1 if the registry was deleted, 0 if the gateway is alive again.
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[3])
return 1
