-- Reads one page of a room's members, with the room's member count. From
-- the start (cursor '0'), a room of at most a page is read whole;
-- otherwise the page is one HSCAN step, so a page costs the same in a room
-- of any size. As with HSCAN, a member present for the whole paging is
-- listed at least once; one that joins or leaves meanwhile may be listed
-- or not, and a member may be listed twice. The members go back as Redis
-- gave them (nickname, stored value, ...): the gateway makes them into
-- what clients see.
--
-- KEYS[1] chat:{r}:members
-- ARGV[1] cursor ('0': from the start)   ARGV[2] members per page
-- Returns {count, cursor ('0': no more pages), {nickname, value, ...}}.
local count = redis.call('HLEN', KEYS[1])
if ARGV[1] == '0' and count <= tonumber(ARGV[2]) then
  return {count, '0', redis.call('HGETALL', KEYS[1])}
end
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
return {count, r[1], r[2]}
