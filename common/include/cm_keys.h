/*
 * Redis key and channel names: the one place that spells them.
 *
 * Every per-room key carries the room in a hash tag, chat:{room}:..., so
 * that a script touching one room touches one cluster slot. Room names are
 * validated ([A-Za-z0-9._:-]) before they get here, so they never contain
 * braces.
 */
#ifndef CM_KEYS_H
#define CM_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define CM_SLOTS 16384 /* Redis Cluster's hash slots */
#define CM_KEY_MAX 160 /* enough for any key built from a valid room or id */

#define CM_KEY_EVENTS "chat:events"     /* stream of join/leave events */
#define CM_EVENTS_GROUP "workers"       /* the workers' consumer group */
#define CM_EVENTS_MAXLEN "100000"       /* approximate cap of the stream */
#define CM_CHANNEL_PREFIX "chat:{"      /* room channels start with this */

enum cm_room_key {
    CM_ROOM_CHANNEL, /* chat:{r}          pub/sub: messages and presence */
    CM_ROOM_META,    /* chat:{r}:meta     hash: seq, epoch, last_ms */
    CM_ROOM_HISTORY, /* chat:{r}:history  zset: envelope by seq */
    CM_ROOM_MEMBERS, /* chat:{r}:members  hash: nickname -> member json */
};

/* Writes the name of one of a room's keys into out (CM_KEY_MAX bytes);
 * returns its length. */
size_t cm_key_room(char *out, enum cm_room_key which, const char *room);

/* The cluster slot of a key, hash tags included (Redis Cluster
 * specification: CRC16 of the key, or of the part between its first '{'
 * and the next '}' when that part is not empty). */
unsigned cm_key_slot(const char *key, size_t len);

/* The events stream of one partition: chat:events with one partition (as
 * it always was), else chat:events:{<p>}, each in a slot of its own. */
size_t cm_key_events(char *out, int partition, int partitions);
/* The partition of a room's events: all of one room's go to one. */
int cm_key_events_partition(const char *room, int partitions);

/* The keys of gateway liveness, which the claim and finish scripts touch
 * together. With one Redis they keep the names they always had (a rolling
 * upgrade keeps working); in a cluster they share the hash tag {gateways},
 * so that each script touches one slot. */
enum cm_gateways_key {
    CM_GATEWAYS_LIVE,  /* chat:gateways        zset: gateway id -> last heartbeat ms */
    CM_GATEWAYS_DEAD,  /* chat:gateways:dead   zset: gateway id -> claim time ms */
    CM_GATEWAYS_SWEEP, /* chat:gateways:sweep  hash: last_ms, grace_until_ms */
};
/* Writes one of them into out (CM_KEY_MAX bytes); returns its length.
 * cluster: the spelling for a Redis Cluster, chat:{gateways}... */
size_t cm_key_gateways(char *out, enum cm_gateways_key which, bool cluster);

/* chat:gw:<id>, a gateway's control channel. */
size_t cm_key_gw_control(char *out, const char *gateway_id);
/* chat:gw:<id>:sessions, hash mid -> {"room","nickname","mid","session"}:
 * what a gateway holds, so that a worker can clean up after it. */
size_t cm_key_gw_sessions(char *out, const char *gateway_id);

/* If channel is a room channel, copies the room name into room (65 bytes)
 * and returns 0; otherwise -1. */
int cm_key_channel_room(const char *channel, size_t len, char *room);

#endif
