-- Reads a page of a room's history with the room's seq and epoch, so the
-- reader can tell whether what it holds is from the same life of the room.
--
-- KEYS[1] chat:{r}:meta   KEYS[2] chat:{r}:history
-- ARGV[1] 'after' (messages with seq > ARGV[2], oldest first, at most ARGV[3])
--      or 'before' (the ARGV[3] newest messages with seq < ARGV[2], oldest
--      first; ARGV[2] = 0 means no bound)
-- Returns {seq, epoch ('' if the room has none), {envelope...}}.
local meta = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local seq = tonumber(meta[1] or '0')
local epoch = meta[2] or ''
local bound = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local items
if ARGV[1] == 'after' then
  items = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. bound, '+inf', 'LIMIT', 0, limit)
else
  local hi = '+inf'
  if bound > 0 then hi = '(' .. bound end
  local newest = redis.call('ZREVRANGEBYSCORE', KEYS[2], hi, '-inf', 'LIMIT', 0, limit)
  items = {}
  for i = #newest, 1, -1 do
    items[#items + 1] = newest[i]
  end
end
return {seq, epoch, items}
