-- Joins a session to a room, atomically: takes the nickname (telling the
-- previous owner's gateway when another session held it), publishes the
-- presence join, and reads what the joiner needs: the room's seq and epoch,
-- its history (everything after `since` when that is complete, else the
-- most recent messages), its member count and its members: all of them when
-- the room has at most a page of them, else the first page of an HSCAN, so
-- the work done does not grow with the room. The caller subscribed to the room
-- before running this, so every message after the returned seq reaches it
-- live: no hole, and seq tells it which live frames history already held.
--
-- KEYS[1] chat:{r}:meta   KEYS[2] chat:{r}:history   KEYS[3] chat:{r}:members
-- ARGV[1] chat:{r} (channel)
-- ARGV[2] nickname
-- ARGV[3] the member value: {"session","mid","gateway","since"} as JSON
-- ARGV[4] session id
-- ARGV[5] a fresh random epoch, used only if the room has none
-- ARGV[6] since (-1: none)      ARGV[7] the epoch `since` was seen in ('': current)
-- ARGV[8] how many recent messages when not recovering
-- ARGV[9] the presence join frame to publish
-- ARGV[10] the room name
-- ARGV[11] members per page (0: none, only the count)
-- ARGV[12] the room channel's publish command: PUBLISH, or SPUBLISH in a
--          Redis Cluster (optional: PUBLISH). The gateway control channel is
--          classic pub/sub in both modes.
-- The presence join goes out with the room's member count spliced in as
-- its last field, "count", so every gateway knows the count without asking.
-- Returns {seq, epoch, recovered (-1 not asked, 0, 1), {history...},
-- {nickname, value, nickname, value...}, count, cursor ('0': the list is
-- complete)}. The members go back as Redis gave them, pairs of a nickname
-- and its stored value: the gateway makes them into what clients see, so
-- that each member costs this script nothing but the reply.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')

local prev = redis.call('HGET', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local count = redis.call('HLEN', KEYS[3])
if prev then
  local old = cjson.decode(prev)
  if old.session ~= ARGV[4] then
    redis.call('PUBLISH', 'chat:gw:' .. old.gateway,
      cjson.encode({type = 'replaced', session = old.session, mid = old.mid, room = ARGV[10]}))
  end
else
  redis.call(ARGV[12] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[1],
    string.sub(ARGV[9], 1, -2) .. ',"count":' .. count .. '}')
end

local recovered = -1
local history = nil
local since = tonumber(ARGV[6])
if since >= 0 then
  recovered = 0
  if (ARGV[7] == '' or ARGV[7] == epoch) and since <= seq then
    history = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. since, '+inf')
    if #history == seq - since then
      recovered = 1
    end
  end
end
if recovered ~= 1 then
  local n = tonumber(ARGV[8])
  if n > 0 then
    history = redis.call('ZRANGE', KEYS[2], -n, -1)
  else
    history = {}
  end
end

local page = tonumber(ARGV[11])
local members, cursor
if page == 0 then
  members, cursor = {}, '0'
elseif count <= page then
  members, cursor = redis.call('HGETALL', KEYS[3]), '0'
else
  local r = redis.call('HSCAN', KEYS[3], '0', 'COUNT', page)
  members, cursor = r[2], r[1]
end
return {seq, epoch, recovered, history, members, count, cursor}
