-- Removes a member from a room if, and only if, the membership named still
-- owns the nickname, and then publishes the presence leave. A late leave of
-- a session whose nickname was taken over, or of an earlier join of the
-- same session, changes nothing, so applying an event twice is harmless.
--
-- KEYS[1] chat:{r}:members
-- ARGV[1] chat:{r} (channel)   ARGV[2] nickname   ARGV[3] membership id (mid)
-- ARGV[4] the presence leave frame to publish; the room's member count
--         after the leave is spliced in as its last field, "count"
-- ARGV[5] the publish command: PUBLISH, or SPUBLISH in a Redis Cluster
--         (optional: PUBLISH)
-- Returns 1 if the member was removed, 0 if nothing changed.
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur then
  return 0
end
if cjson.decode(cur).mid ~= ARGV[3] then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
local count = redis.call('HLEN', KEYS[1])
redis.call(ARGV[5] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1],
  string.sub(ARGV[4], 1, -2) .. ',"count":' .. count .. '}')
return 1
