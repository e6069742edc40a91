-- Removes consumers of the workers' group that hold no pending entries and
-- have been idle longer than the given age, so that the group does not
-- grow by one consumer per worker restart. A consumer with pending entries
-- is never removed: deleting it would drop them. A live worker whose
-- consumer is removed loses nothing; its next XREADGROUP creates it again.
--
-- KEYS[1] chat:events
-- ARGV[1] the group   ARGV[2] idle age (ms)
-- ARGV[3] a consumer to remove regardless of its idle time ('' for none):
--         a worker shutting down removes itself this way
-- Returns the number of consumers removed.
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err then
  return 0
end
local removed = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do
    f[c[i]] = c[i + 1]
  end
  if f.pending == 0 and (f.name == ARGV[3] or f.idle > tonumber(ARGV[2])) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)
    removed = removed + 1
  end
end
return removed
