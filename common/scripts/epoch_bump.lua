-- Starts a new epoch for a room whose history went back: a failover
-- promoted a replica that never got the latest messages, which members had
-- already been handed live. The new primary would number the next messages
-- with seqs members saw with other text; under a new epoch a client that
-- rejoins with `since` is told `recovered: false` and starts afresh.
-- Compare-and-set, so that of the gateways that notice, one sets it.
--
-- KEYS[1] chat:{r}:meta
-- ARGV[1] the epoch the caller saw   ARGV[2] a fresh random epoch
-- Returns the room's epoch afterwards.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch == ARGV[1] then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2])
  return ARGV[2]
end
return epoch or ''
