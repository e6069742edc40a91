#include "cm_keys.h"

#include "cm_proto.h"

#include <stdint.h>
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

/* CRC16-CCITT (XMODEM), the cluster's key hash. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned cm_key_slot(const char *key, size_t len)
{
    /* Only the part between the first '{' and the next '}' is hashed, if
     * that part is not empty. */
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *start = open + 1;
        const char *close = memchr(start, '}', len - (size_t)(start - key));
        if (close && close > start)
            return crc16(start, (size_t)(close - start)) & (CM_SLOTS - 1);
    }
    return crc16(key, len) & (CM_SLOTS - 1);
}

size_t cm_key_events(char *out, int partition, int partitions)
{
    if (partitions <= 1)
        return written(snprintf(out, CM_KEY_MAX, "%s", CM_KEY_EVENTS));
    return written(snprintf(out, CM_KEY_MAX, "%s:{%d}", CM_KEY_EVENTS, partition));
}

int cm_key_events_partition(const char *room, int partitions)
{
    if (partitions <= 1)
        return 0;
    return (int)(crc16(room, strlen(room)) % (unsigned)partitions);
}

size_t cm_key_gateways(char *out, enum cm_gateways_key which, bool cluster)
{
    static const char *const suffix[] = {"", ":dead", ":sweep"};
    if ((unsigned)which >= CM_ARRAY_LEN(suffix))
        which = CM_GATEWAYS_LIVE;
    return written(snprintf(out, CM_KEY_MAX, "%s%s", cluster ? "chat:{gateways}" : "chat:gateways",
                            suffix[which]));
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
