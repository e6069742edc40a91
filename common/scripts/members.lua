-- Lists a room's members as client-facing JSON objects {"nickname","since"}.
-- KEYS[1] chat:{r}:members
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local m = cjson.decode(all[i + 1])
  out[#out + 1] = cjson.encode({nickname = all[i], since = m.since})
end
return out
