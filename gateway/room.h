/*
 * Rooms with local members: subscriptions, fan-out and resync (room.c).
 */
#ifndef GW_ROOM_H
#define GW_ROOM_H

#include "cm_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <uthash.h>

struct gw_server;
struct gw_member;
struct gw_presence_ev;

struct gw_room {
    char name[CM_ROOM_MAX + 1];
    struct gw_member *members; /* local members, doubly linked */
    size_t nmembers;
    bool subscribed;      /* the store reported its channel subscribed */
    bool resyncing;       /* a history read after a reconnect is in flight */
    unsigned busy;        /* iterating its members: do not free */
    unsigned generation;  /* bumped on every confirmed SUBSCRIBE */
    char epoch[CM_EPOCH_MAX + 1];
    int64_t max_seq;      /* the highest seq handed to local members in epoch */
    size_t nbatched;      /* local members that asked for presence_diff or _count */
    struct gw_presence_ev *batch; /* presence not yet sent, by nickname (presence.c) */
    int64_t batch_count;  /* the room's member count after the latest presence frame */
    bool batch_all;       /* the batch is for every member, not only nbatched's */
    bool batch_queued;    /* on srv->presence_dirty until the next tick */
    struct gw_room *presence_next;
    UT_hash_handle hh;    /* srv->rooms by name */
};

/* Finds or creates the room and adds m to it; a new room subscribes, and
 * m's join is sent once the subscription is confirmed. */
void gw_room_add_member(struct gw_server *srv, const char *name, struct gw_member *m);
/* Removes m from its room; the last member out unsubscribes. */
void gw_room_remove_member(struct gw_member *m);
/* Frees a room nobody needs any more: no member, nothing in flight, no
 * presence waiting for the tick. */
void gw_room_free_if_unused(struct gw_server *srv, struct gw_room *room);
/* What the store reports: a room's channel confirmed; a message on it; the
 * pub/sub link dropped (every member holds frames until its room resyncs). */
void gw_room_on_subscribed(struct gw_server *srv, const char *name);
void gw_room_on_message(struct gw_server *srv, const char *name, const char *data, size_t len);
/* One room's subscription is gone (its Redis link dropped, or its slot
 * moved): live frames are held until history is re-read. */
void gw_room_lost(struct gw_server *srv, const char *name);
/* Re-reads history for the room's members that may have missed frames. */
void gw_room_resync(struct gw_server *srv, struct gw_room *room);
/* The command link came back: retry resyncs that failed with it. */
void gw_rooms_resync_pending(struct gw_server *srv);

#endif
