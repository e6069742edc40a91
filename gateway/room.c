/*
 * Rooms with local members: the subscription state machine and fan-out.
 *
 * A room subscribes when its first local member arrives and unsubscribes
 * when its last leaves. SUBSCRIBE and UNSUBSCRIBE for one channel are never
 * in flight together (hiredis keys its callbacks by channel, and an
 * UNSUBSCRIBE reply landing after a new SUBSCRIBE would drop the new
 * callback), so a member arriving while UNSUBSCRIBE is in flight waits for
 * its reply.
 *
 * Delivery is by seq: each member remembers the last seq it was sent, and a
 * frame at or below it is a duplicate (it was in the member's history). While
 * a member's join or resync is in flight, live frames are held back and
 * released in order once history has been sent.
 */
#include "gw_server.h"

#include "cm_keys.h"
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

static void room_subscribe(struct gw_server *srv, struct gw_room *room)
{
    char channel[CM_KEY_MAX];
    cm_key_room(channel, CM_ROOM_CHANNEL, room->name);
    /* With the link down, the room stays NONE and is subscribed when the
     * link comes back (gw_rooms_resubscribe). */
    if (gw_redis_subscribe(srv, channel) == 0)
        room->sub = GW_SUB_PENDING;
}

static void room_unsubscribe(struct gw_server *srv, struct gw_room *room)
{
    char channel[CM_KEY_MAX];
    cm_key_room(channel, CM_ROOM_CHANNEL, room->name);
    if (gw_redis_unsubscribe(srv, channel) == 0)
        room->sub = GW_SUB_LEAVING;
    else
        room->sub = GW_SUB_NONE;
}

static void room_free_if_unused(struct gw_server *srv, struct gw_room *room)
{
    if (room->nmembers > 0 || room->sub != GW_SUB_NONE || room->resyncing || room->busy)
        return;
    HASH_DEL(srv->rooms, room);
    free(room);
}

void gw_room_add_member(struct gw_server *srv, const char *name, struct gw_member *m)
{
    struct gw_room *room = room_find(srv, name);
    if (!room) {
        room = cm_calloc(1, sizeof(*room));
        snprintf(room->name, sizeof(room->name), "%s", name);
        HASH_ADD_STR(srv->rooms, name, room);
    }
    m->room = room;
    m->room_prev = NULL;
    m->room_next = room->members;
    if (room->members)
        room->members->room_prev = m;
    room->members = m;
    room->nmembers++;

    switch (room->sub) {
    case GW_SUB_NONE: room_subscribe(srv, room); break;
    case GW_SUB_PENDING: break; /* joins are sent when it is confirmed */
    case GW_SUB_LEAVING: room->resubscribe = true; break;
    case GW_SUB_ACTIVE: gw_join_send(m); break;
    }
}

void gw_room_remove_member(struct gw_member *m)
{
    struct gw_room *room = m->room;
    if (!room)
        return;
    struct gw_server *srv = m->session ? m->session->srv : NULL;
    if (m->room_prev)
        m->room_prev->room_next = m->room_next;
    else
        room->members = m->room_next;
    if (m->room_next)
        m->room_next->room_prev = m->room_prev;
    m->room = NULL;
    m->room_prev = m->room_next = NULL;
    room->nmembers--;
    if (room->nmembers == 0 && srv) {
        if (room->sub == GW_SUB_ACTIVE)
            room_unsubscribe(srv, room);
        room->resubscribe = false;
        room_free_if_unused(srv, room);
    }
}

void gw_room_on_subscribed(struct gw_server *srv, const char *name)
{
    struct gw_room *room = room_find(srv, name);
    if (!room || room->sub != GW_SUB_PENDING)
        return;
    room->sub = GW_SUB_ACTIVE;
    room->generation++;
    if (room->nmembers == 0) {
        room_unsubscribe(srv, room);
        return;
    }
    bool resync = false;
    room->busy++; /* a failed join drops its member; the room must outlive the loop */
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->state == GW_MEMBER_SUBSCRIBING)
            gw_join_send(m);
        else if (m->state == GW_MEMBER_RESYNC)
            resync = true;
    }
    room->busy--;
    if (resync)
        gw_room_resync(srv, room);
    if (room->nmembers == 0 && room->sub == GW_SUB_ACTIVE)
        room_unsubscribe(srv, room);
    room_free_if_unused(srv, room);
}

void gw_room_on_unsubscribed(struct gw_server *srv, const char *name)
{
    struct gw_room *room = room_find(srv, name);
    if (!room || room->sub != GW_SUB_LEAVING)
        return;
    room->sub = GW_SUB_NONE;
    if (room->nmembers > 0 || room->resubscribe) {
        room->resubscribe = false;
        room_subscribe(srv, room);
    }
    room_free_if_unused(srv, room);
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
    /* One payload for every local member: serialised once, shared by ref. */
    struct gw_payload *p = room_payload(data, len);
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next; /* a 1013 close may unlink m */
        gw_member_deliver(m, p);
    }
    gw_payload_unref(p);
}

void gw_member_deliver(struct gw_member *m, struct gw_payload *p)
{
    struct gw_session *s = m->session;
    if (!s || (p->seq && p->seq <= m->last_seq) || (s->legacy && !p->is_message))
        return;
    if (m->state != GW_MEMBER_JOINED) {
        if (m->held.bytes + p->len > (size_t)s->srv->cfg.send_queue_bytes) {
            gw_session_overflow(s);
            return;
        }
        gw_pvec_push(&m->held, gw_payload_ref(p));
        return;
    }
    if (p->seq)
        m->last_seq = p->seq;
    s->srv->m.deliveries++;
    gw_session_send(s, p);
}

void gw_member_go_live(struct gw_member *m)
{
    m->state = GW_MEMBER_JOINED;
    struct gw_payload *p;
    while ((p = gw_pvec_shift(&m->held)) != NULL) {
        gw_member_deliver(m, p);
        gw_payload_unref(p);
    }
}

void gw_member_free(struct gw_member *m)
{
    if (!m)
        return;
    gw_pvec_clear(&m->held);
    free(m);
}

void gw_member_leave(struct gw_member *m, const char *reason)
{
    struct gw_server *srv = m->session->srv;
    gw_room_remove_member(m);
    switch (m->state) {
    case GW_MEMBER_SUBSCRIBING:
        gw_deferred_drop(m); /* nothing reached Redis: nothing to undo */
        gw_member_free(m);
        break;
    case GW_MEMBER_JOINING:
        /* The join script may already have run; its reply emits the leave. */
        gw_deferred_drop(m);
        m->session = NULL;
        m->detach_reason = reason;
        break;
    case GW_MEMBER_JOINED:
    case GW_MEMBER_RESYNC:
        if (gw_linger_add(srv, m, reason))
            break;
        gw_redis_emit(srv, "leave", m, reason);
        gw_member_free(m);
        break;
    }
}

void gw_rooms_unsubscribed_all(struct gw_server *srv)
{
    struct gw_room *room, *tmp;
    HASH_ITER(hh, srv->rooms, room, tmp) {
        room->sub = GW_SUB_NONE;
        room->resubscribe = false;
        for (struct gw_member *m = room->members; m; m = m->room_next)
            if (m->state == GW_MEMBER_JOINED)
                m->state = GW_MEMBER_RESYNC; /* hold live frames until history is re-read */
        room_free_if_unused(srv, room);
    }
}

void gw_rooms_resubscribe(struct gw_server *srv)
{
    struct gw_room *room, *tmp;
    HASH_ITER(hh, srv->rooms, room, tmp) {
        if (room->nmembers > 0 && room->sub == GW_SUB_NONE)
            room_subscribe(srv, room);
    }
}

/* ---- resync: re-reading history after a subscription gap ---- */

static void resync_deliver(struct gw_room *room, redisReply *items)
{
    for (size_t i = 0; i < items->elements; i++) {
        redisReply *e = items->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        struct gw_payload *p = room_payload(e->str, e->len);
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

static void on_resync_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    char *name = priv;
    redisReply *reply = r;
    struct gw_room *room = room_find(srv, name);
    free(name);
    if (!room)
        return;
    room->resyncing = false;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[2]->type != REDIS_REPLY_ARRAY) {
        /* Members stay in RESYNC (frames held) until the link comes back. */
        CM_WARN("room %s: history re-read failed; will retry on reconnect", room->name);
        room_free_if_unused(srv, room);
        return;
    }
    redisReply *epoch = reply->element[1];
    if (epoch->type == REDIS_REPLY_STRING && room->epoch[0] && strcmp(room->epoch, epoch->str)) {
        /* The room's history was lost (e.g. Redis restarted empty): seqs
         * start again, so what members remember no longer applies. */
        CM_WARN("room %s: epoch changed %s -> %s", room->name, room->epoch, epoch->str);
        for (struct gw_member *m = room->members; m; m = m->room_next)
            if (m->state == GW_MEMBER_RESYNC)
                m->last_seq = 0;
    }
    if (epoch->type == REDIS_REPLY_STRING)
        snprintf(room->epoch, sizeof(room->epoch), "%s", epoch->str);
    resync_deliver(room, reply->element[2]);
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->state == GW_MEMBER_RESYNC)
            gw_member_go_live(m);
    }
    room_free_if_unused(srv, room);
}

void gw_room_resync(struct gw_server *srv, struct gw_room *room)
{
    if (room->resyncing || room->sub != GW_SUB_ACTIVE)
        return;
    int64_t from = -1;
    for (struct gw_member *m = room->members; m; m = m->room_next)
        if (m->state == GW_MEMBER_RESYNC && (from < 0 || m->last_seq < from))
            from = m->last_seq;
    if (from < 0)
        return;

    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], after[24], limit[24];
    cm_key_room(meta, CM_ROOM_META, room->name);
    cm_key_room(hist, CM_ROOM_HISTORY, room->name);
    snprintf(after, sizeof(after), "%lld", (long long)from);
    snprintf(limit, sizeof(limit), "%lld", srv->cfg.history_max);
    const char *argv[] = {meta, hist, "after", after, limit};
    size_t argvlen[] = {strlen(meta), strlen(hist), 5, strlen(after), strlen(limit)};
    char *name = cm_strdup(room->name);
    if (gw_redis_script(srv, CM_SCRIPT_HISTORY, 2, 5, argv, argvlen, on_resync_reply, name) != 0) {
        free(name);
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
