-- Reads one page of a room's members as client-facing JSON objects
-- {"nickname","since"}, with the room's member count. From the start
-- (cursor '0'), a room of at most a page is read whole; otherwise the page
-- is one HSCAN step, so a page costs the same in a room of any size. As
-- with HSCAN, a member present for the whole paging is listed at least
-- once; one that joins or leaves meanwhile may be listed or not, and a
-- member may be listed twice.
--
-- KEYS[1] chat:{r}:members
-- ARGV[1] cursor ('0': from the start)   ARGV[2] members per page
-- Returns {count, cursor ('0': no more pages), {member...}}.
local count = redis.call('HLEN', KEYS[1])
local page = tonumber(ARGV[2])
local out = {}
local function add(name, value)
  out[#out + 1] = '{"nickname":' .. cjson.encode(name) .. ',"since":' ..
    (string.match(value, '"since":(%d+)') or '0') .. '}'
end
local cursor = '0'
if ARGV[1] == '0' and count <= page then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do add(all[i], all[i + 1]) end
else
  local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', page)
  cursor = r[1]
  for i = 1, #r[2], 2 do add(r[2][i], r[2][i + 1]) end
end
return {count, cursor, out}
