-- Ends the cleanup of a dead gateway once a worker has removed every
-- session it held: forgets the claim and, with one Redis, the gateway's
-- session registry. If the gateway has come back meanwhile (it heartbeats
-- into the liveness zset again and re-registers what it holds), its
-- registry is its own again and is kept; entries in it that the cleanup
-- already handled are harmless, because a leave compares membership ids.
--
-- In a Redis Cluster the registry lives in another slot than the liveness
-- keys, so it is not passed: the worker deletes it with its own DEL when
-- this script answers 1 (docs/ARCHITECTURE.md names the race that opens).
--
-- KEYS[1] chat:gateways   KEYS[2] chat:gateways:dead
-- KEYS[3] chat:gw:<id>:sessions (one Redis only; optional)
-- ARGV[1] the gateway id
-- Returns 1 if the gateway is still gone (the registry was deleted, or is
-- the caller's to delete), 0 if the gateway is alive again.
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
if KEYS[3] then
  redis.call('DEL', KEYS[3])
end
return 1
