/*
 * Rooms with local members: subscriptions, fan-out and resync.
 *
 * A room asks the store for its channel when its first local member
 * arrives and gives it up when its last leaves; the store (common/cm_link)
 * sequences SUBSCRIBE and UNSUBSCRIBE and holds the subscription across
 * reconnects. Members' joins go out once the subscription is confirmed, so
 * nothing published after the join script ran can be missed.
 *
 * Delivery is by seq: each member remembers the last seq it was sent, and a
 * frame at or below it is a duplicate (it was in the member's history). While
 * a member's join or resync is in flight, live frames are held back and
 * released in order once history has been sent.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

#define MESSAGE_PREFIX "{\"type\":\"message\",\"seq\":"

static struct gw_room *room_find(struct gw_server *srv, const char *name)
{
    struct gw_room *room;
    HASH_FIND_STR(srv->rooms, name, room);
    return room;
}

void gw_room_free_if_unused(struct gw_server *srv, struct gw_room *room)
{
    if (room->nmembers > 0 || room->resyncing || room->busy || room->batch_queued)
        return;
    gw_presence_clear(room);
    HASH_DEL(srv->rooms, room);
    free(room);
}

void gw_room_add_member(struct gw_server *srv, const char *name, struct gw_member *m)
{
    struct gw_room *room = room_find(srv, name);
    if (!room) {
        room = cm_calloc(1, sizeof(*room));
        snprintf(room->name, sizeof(room->name), "%s", name);
        room->batch_count = -1;
        HASH_ADD_STR(srv->rooms, name, room);
    }
    /* The first member in (also of a room kept for its pending presence or
     * resync after the last one left, which unsubscribed it). The store
     * keeps the subscription across reconnects and reports it
     * (gw_room_on_subscribed) once Redis confirms it. */
    if (room->nmembers == 0)
        gw_store_room_subscribe(srv->store, name);
    m->room = room;
    m->room_prev = NULL;
    m->room_next = room->members;
    if (room->members)
        room->members->room_prev = m;
    room->members = m;
    room->nmembers++;
    if (m->presence != CM_PRESENCE_EVENTS)
        room->nbatched++;
    if (room->subscribed)
        gw_member_send_join(m);
    /* else: joins are sent when the subscription is confirmed */
}

void gw_room_remove_member(struct gw_member *m)
{
    struct gw_room *room = m->room;
    if (!room)
        return;
    struct gw_server *srv = m->srv;
    if (m->room_prev)
        m->room_prev->room_next = m->room_next;
    else
        room->members = m->room_next;
    if (m->room_next)
        m->room_next->room_prev = m->room_prev;
    m->room = NULL;
    m->room_prev = m->room_next = NULL;
    room->nmembers--;
    if (m->presence != CM_PRESENCE_EVENTS)
        room->nbatched--;
    if (room->nmembers == 0) {
        /* The last one out: the store unsubscribes (or, if the subscription
         * is still being confirmed, once it is). */
        gw_store_room_unsubscribe(srv->store, room->name);
        room->subscribed = false;
        gw_room_free_if_unused(srv, room);
    }
}

void gw_room_on_subscribed(struct gw_server *srv, const char *name)
{
    struct gw_room *room = room_find(srv, name);
    if (!room || room->nmembers == 0)
        return;
    room->subscribed = true;
    room->generation++;
    bool resync = false;
    room->busy++; /* a failed join drops its member; the room must outlive the loop */
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->state == GW_MEMBER_SUBSCRIBING)
            gw_member_send_join(m);
        else if (m->state == GW_MEMBER_RESYNC)
            resync = true;
    }
    room->busy--;
    if (resync)
        gw_room_resync(srv, room);
    gw_room_free_if_unused(srv, room);
}

/* Reads the seq of a message envelope from its fixed prefix (the publish
 * script writes it first), so fan-out needs no JSON parse. */
static int64_t envelope_seq(const char *data, size_t len)
{
    size_t plen = sizeof(MESSAGE_PREFIX) - 1;
    if (len <= plen || memcmp(data, MESSAGE_PREFIX, plen) != 0)
        return 0;
    int64_t seq = 0;
    for (size_t i = plen; i < len && data[i] >= '0' && data[i] <= '9' && seq < CM_SEQ_MAX; i++)
        seq = seq * 10 + (data[i] - '0');
    return seq;
}

static struct gw_payload *room_payload(const char *data, size_t len)
{
    struct gw_payload *p = gw_payload_new(data, len);
    p->seq = envelope_seq(data, len);
    p->is_message = p->seq > 0;
    return p;
}

void gw_room_on_message(struct gw_server *srv, const char *name, const char *data, size_t len)
{
    struct gw_room *room = room_find(srv, name);
    if (!room)
        return;
    srv->m.room_messages++;
    if (envelope_seq(data, len) == 0 && gw_presence_on_frame(srv, room, data, len)) {
        gw_room_free_if_unused(srv, room);
        return;
    }
    /* One payload for every local member: serialised once, shared by ref. */
    struct gw_payload *p = room_payload(data, len);
    if (p->seq > room->max_seq)
        room->max_seq = p->seq;
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next; /* a close detaches m only at the turn's end, but be safe */
        gw_member_deliver(m, p);
    }
    gw_payload_unref(p);
}

void gw_room_lost(struct gw_server *srv, const char *name)
{
    struct gw_room *room = room_find(srv, name);
    if (!room)
        return;
    room->subscribed = false;
    for (struct gw_member *m = room->members; m; m = m->room_next)
        if (m->state == GW_MEMBER_JOINED)
            m->state = GW_MEMBER_RESYNC; /* hold live frames until history is re-read */
    gw_room_free_if_unused(srv, room);
}

/* ---- resync: re-reading history after a subscription gap ---- */

static void resync_deliver(struct gw_room *room, const struct gw_strs *items)
{
    for (size_t i = 0; i < items->n; i++) {
        struct gw_payload *p = room_payload(items->s[i], items->len[i]);
        for (struct gw_member *m = room->members; m; m = m->room_next) {
            if (m->state != GW_MEMBER_RESYNC || !m->session || p->seq <= m->last_seq)
                continue;
            if (m->session->legacy && !p->is_message)
                continue;
            m->last_seq = p->seq;
            gw_session_send(m->session, p);
        }
        gw_payload_unref(p);
    }
}

/* What members of a room hold of its seqs no longer applies (a new epoch).
 * A chat.v1 client drops a seq it has seen, so its connection is closed
 * with 1012: it reconnects, rejoins with since and its epoch, is told
 * `recovered: false` and starts afresh; no client is shown two messages
 * under one seq. Legacy frames carry no seq: those members go live. */
static void room_reset(struct gw_server *srv, struct gw_room *room)
{
    room->epoch[0] = '\0'; /* the next join tells it */
    room->max_seq = 0;
    room->busy++;
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->session && !m->session->legacy) {
            gw_session_close(m->session, 1012, "the room's history changed; rejoin", false);
        } else if (m->state == GW_MEMBER_RESYNC) {
            m->last_seq = 0;
            gw_member_go_live(m);
        }
    }
    room->busy--;
}

struct resync {
    struct gw_server *srv;
    char room[CM_ROOM_MAX + 1];
};

static void on_resync_history(void *priv, enum gw_store_status status,
                              const struct gw_store_history *h)
{
    struct resync *rs = priv;
    struct gw_server *srv = rs->srv;
    struct gw_room *room = room_find(srv, rs->room);
    free(rs);
    if (!room)
        return;
    room->resyncing = false;
    if (status != GW_STORE_OK) {
        /* Members stay in RESYNC (frames held) until the link comes back. */
        CM_WARN("room %s: history re-read failed; will retry on reconnect", room->name);
        gw_room_free_if_unused(srv, room);
        return;
    }
    bool changed = h->epoch[0] && room->epoch[0] && strcmp(room->epoch, h->epoch) != 0;
    if (changed) {
        /* The room's history was lost (Redis restarted empty, or another
         * gateway found it went back): seqs start again. */
        CM_WARN("room %s: epoch changed %s -> %s", room->name, room->epoch, h->epoch);
    } else if (h->seq < room->max_seq) {
        /* History went back behind what members were handed: a failover
         * promoted a replica that never got the latest messages. The next
         * ones would reuse seqs members saw with other text. */
        CM_WARN("room %s: seq went back from %lld to %lld (a failover lost messages); "
                "starting a new epoch", room->name, (long long)room->max_seq, (long long)h->seq);
        gw_store_epoch_bump(srv->store, room->name, room->epoch);
    }
    if (changed || h->seq < room->max_seq) {
        room_reset(srv, room);
        gw_room_free_if_unused(srv, room);
        return;
    }
    if (h->epoch[0])
        snprintf(room->epoch, sizeof(room->epoch), "%s", h->epoch);
    resync_deliver(room, &h->items);
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->state == GW_MEMBER_RESYNC)
            gw_member_go_live(m);
    }
    gw_room_free_if_unused(srv, room);
}

void gw_room_resync(struct gw_server *srv, struct gw_room *room)
{
    if (room->resyncing || !room->subscribed)
        return;
    int64_t from = -1;
    for (struct gw_member *m = room->members; m; m = m->room_next)
        if (m->state == GW_MEMBER_RESYNC && (from < 0 || m->last_seq < from))
            from = m->last_seq;
    if (from < 0)
        return;
    struct resync *rs = cm_malloc(sizeof(*rs));
    rs->srv = srv;
    snprintf(rs->room, sizeof(rs->room), "%s", room->name);
    if (gw_store_history_after(srv->store, room->name, from, on_resync_history, rs) != 0) {
        free(rs);
        return;
    }
    room->resyncing = true;
}

void gw_rooms_resync_pending(struct gw_server *srv)
{
    struct gw_room *room, *tmp;
    HASH_ITER(hh, srv->rooms, room, tmp) {
        gw_room_resync(srv, room);
    }
}
