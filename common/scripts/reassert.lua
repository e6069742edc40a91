-- Re-registers a live membership after its gateway lost touch with Redis
-- (a broker restart, or a worker that declared the gateway dead). The
-- membership comes back under a new membership id, so a cleanup still
-- running for the old one cannot remove it. A nickname taken over by
-- another session meanwhile stays with its new owner.
--
-- KEYS[1] chat:{r}:members
-- ARGV[1] chat:{r} (channel)   ARGV[2] nickname   ARGV[3] the new member value
-- ARGV[4] the old membership id   ARGV[5] the presence join frame (the
-- room's member count is spliced in as its last field, "count")
-- ARGV[6] the publish command: PUBLISH, or SPUBLISH in a Redis Cluster
-- (optional: PUBLISH)
-- Returns 0 if the nickname belongs to someone else now, 1 if the entry was
-- renewed, 2 if it had been removed and was added again (presence published).
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  if cjson.decode(cur).mid ~= ARGV[4] then
    return 0
  end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local count = redis.call('HLEN', KEYS[1])
redis.call(ARGV[6] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1],
  string.sub(ARGV[5], 1, -2) .. ',"count":' .. count .. '}')
return 2
