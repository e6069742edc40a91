#include "cm_keys.h"

#include "cm_proto.h"

#include <stdio.h>
#include <string.h>

/* snprintf returns the length it wanted, which after truncation is more
 * than it wrote; callers use the result as the key's length, so it is
 * clamped to what is actually in out. With valid rooms and ids nothing is
 * ever truncated (CM_KEY_MAX has room to spare). */
static size_t written(int n)
{
    if (n < 0)
        return 0;
    return (size_t)n < CM_KEY_MAX ? (size_t)n : CM_KEY_MAX - 1;
}

size_t cm_key_room(char *out, enum cm_room_key which, const char *room)
{
    static const char *const suffix[] = {"", ":meta", ":history", ":members"};
    if ((unsigned)which >= CM_ARRAY_LEN(suffix))
        which = CM_ROOM_CHANNEL;
    return written(snprintf(out, CM_KEY_MAX, "chat:{%s}%s", room, suffix[which]));
}

size_t cm_key_gw_control(char *out, const char *gateway_id)
{
    return written(snprintf(out, CM_KEY_MAX, "chat:gw:%s", gateway_id));
}

size_t cm_key_gw_sessions(char *out, const char *gateway_id)
{
    return written(snprintf(out, CM_KEY_MAX, "chat:gw:%s:sessions", gateway_id));
}

/* Only a channel of exactly the form chat:{<valid room>} is a room channel;
 * chat:{a}:meta or chat:{a}b} are not, whatever arrives on pub/sub. */
int cm_key_channel_room(const char *channel, size_t len, char *room)
{
    size_t plen = sizeof(CM_CHANNEL_PREFIX) - 1;
    if (len < plen + 2 || memcmp(channel, CM_CHANNEL_PREFIX, plen) != 0 || channel[len - 1] != '}')
        return -1;
    size_t rlen = len - plen - 1;
    if (!cm_room_valid(channel + plen, rlen))
        return -1;
    memcpy(room, channel + plen, rlen);
    room[rlen] = '\0';
    return 0;
}
