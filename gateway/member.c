/*
 * Memberships: one session in one room, from the join frame to the leave.
 *
 *   SUBSCRIBING  the room's channel is not confirmed yet; publishes wait
 *                (deferred) so that they run after the join, in order
 *   JOINING      the join script is in flight; live frames are held back
 *   JOINED       live frames flow, each above the last seq delivered
 *   RESYNC       the subscription was lost or re-made: frames are held
 *                back until history has been re-read from the last seq
 *
 * A membership leaves by the client's `leave`, by its session closing, or
 * by being replaced (another session took the nickname). One that leaves
 * while its join is in flight is detached and owned by that request, whose
 * reply finishes it: the join may have run, so its effect is undone
 * through the worker. One whose join asked for grace_ms outlives a closed
 * connection by that long (it lingers), so that a client back within it (a
 * reloaded page) takes its nickname over and nobody sees it leave and
 * rejoin. After Redis lost the gateway's state (a restart, or a worker
 * declared the gateway dead), every live membership is re-asserted under a
 * new mid.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* A publish deferred until its room's join script is sent. */
struct gw_deferred {
    struct gw_deferred *next;
    char *tail; /* the envelope tail, see cm_encode_message_tail */
    size_t tail_len;
    char id[CM_ID_MAX + 1];
    bool has_id;
};

static struct gw_store_member who_of(const struct gw_member *m)
{
    return (struct gw_store_member){
        .room = m->room_name, .nickname = m->nickname, .session = m->session_id, .mid = m->mid};
}

static void emit(struct gw_server *srv, const char *type, const struct gw_member *m,
                 const char *reason)
{
    struct gw_store_member who = who_of(m);
    gw_store_event(srv->store, type, &who, reason);
}

/* ---- a session's memberships ---- */

struct gw_member *gw_member_find(struct gw_session *s, const char *room)
{
    for (struct gw_member *m = s->members; m; m = m->session_next)
        if (strcmp(m->room_name, room) == 0)
            return m;
    return NULL;
}

static void session_link(struct gw_session *s, struct gw_member *m)
{
    m->session_next = s->members;
    s->members = m;
    s->nrooms++;
}

static void session_unlink(struct gw_session *s, struct gw_member *m)
{
    for (struct gw_member **pp = &s->members; *pp; pp = &(*pp)->session_next) {
        if (*pp == m) {
            *pp = m->session_next;
            s->nrooms--;
            break;
        }
    }
    m->session_next = NULL;
}

/* ---- publishing ---- */

static void on_published(void *priv, enum gw_store_status status, int64_t seq, bool replicated)
{
    struct gw_reply_to *req = priv;
    struct gw_session *s = req->session;
    struct gw_server *srv = s->srv;
    if (status == GW_STORE_OK) {
        srv->m.publishes++;
        if (req->has_id && !s->legacy && s->wsi) {
            struct cm_sbuf b;
            cm_sbuf_init(&b, 0);
            cm_encode_ack(&b, req->id, req->room, seq, replicated);
            gw_session_send_sbuf(s, &b);
            cm_sbuf_free(&b);
        }
    } else {
        srv->m.publish_failures++;
        if (s->wsi)
            gw_session_send_error(s, gw_reply_to_id(req), CM_ERR_UNAVAILABLE,
                                  "the message could not be stored; nothing was sent");
    }
    gw_reply_to_free(req);
}

static void publish(struct gw_session *s, const char *room, const char *tail, size_t tail_len,
                    const char *id, bool has_id)
{
    struct gw_server *srv = s->srv;
    struct gw_reply_to *req = gw_reply_to_new(s, room, id, has_id);
    if (gw_store_publish(srv->store, room, tail, tail_len, on_published, req) != 0) {
        gw_reply_to_free(req);
        srv->m.publish_failures++;
        gw_session_send_error(s, has_id ? id : NULL, CM_ERR_UNAVAILABLE,
                              "the broker is unreachable; nothing was sent");
    }
}

static void deferred_flush(struct gw_member *m)
{
    while (m->deferred) {
        struct gw_deferred *d = m->deferred;
        m->deferred = d->next;
        publish(m->session, m->room_name, d->tail, d->tail_len, d->id, d->has_id);
        free(d->tail);
        free(d);
    }
}

/* Answers the publishes deferred until the join was sent with not_joined:
 * the member is going away before they could be sent. */
static void deferred_drop(struct gw_member *m)
{
    while (m->deferred) {
        struct gw_deferred *d = m->deferred;
        m->deferred = d->next;
        if (m->session)
            gw_session_send_error(m->session, d->has_id ? d->id : NULL, CM_ERR_NOT_JOINED,
                                  "left the room before the message could be sent");
        free(d->tail);
        free(d);
    }
}

static void defer(struct gw_member *m, const struct cm_sbuf *tail, const char *id, bool has_id)
{
    struct gw_deferred *d = cm_calloc(1, sizeof(*d));
    d->tail = cm_strndup(cm_sbuf_data(tail), tail->len);
    d->tail_len = tail->len;
    d->has_id = has_id;
    snprintf(d->id, sizeof(d->id), "%s", has_id ? id : "");
    struct gw_deferred **pp = &m->deferred;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
}

void gw_member_publish(struct gw_member *m, const char *id, bool has_id, const char *text,
                       size_t len)
{
    struct cm_sbuf tail;
    cm_sbuf_init(&tail, 0);
    cm_encode_message_tail(&tail, m->room_name, m->nickname, text, len);
    if (m->state == GW_MEMBER_SUBSCRIBING)
        defer(m, &tail, id, has_id);
    else /* pipelined behind the join: Redis runs it after, in order */
        publish(m->session, m->room_name, cm_sbuf_data(&tail), tail.len, id, has_id);
    cm_sbuf_free(&tail);
}

/* ---- joining ---- */

static void join_failed(struct gw_member *m, const char *why)
{
    struct gw_session *s = m->session;
    session_unlink(s, m);
    gw_session_send_error(s, m->join.has_id ? m->join.id : NULL, CM_ERR_UNAVAILABLE, why);
    gw_room_remove_member(m);
    deferred_drop(m);
    gw_member_free(m);
}

static void joined(struct gw_member *m, const struct gw_store_joined *j)
{
    struct gw_session *s = m->session;
    struct gw_server *srv = s->srv;
    if (!s->legacy) {
        struct cm_sbuf history, b;
        cm_sbuf_init(&history, 0);
        cm_sbuf_init(&b, 0);
        gw_strs_put_json(&history, &j->history);
        const struct cm_members_page page = {j->members.json, j->members.count, j->members.cursor};
        cm_encode_joined(&b, m->join.has_id ? m->join.id : NULL, m->room_name, m->nickname, j->seq,
                         j->epoch, &page, cm_sbuf_data(&history), j->recovered);
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&history);
        cm_sbuf_free(&b);
    }
    snprintf(m->room->epoch, sizeof(m->room->epoch), "%s", j->epoch);
    if (j->seq > m->room->max_seq)
        m->room->max_seq = j->seq;
    m->last_seq = j->seq;
    srv->m.joins++;
    emit(srv, "join", m, NULL);
    if (m->generation != m->room->generation) {
        /* The subscription was re-made while the script ran: frames may
         * have been missed in between, so re-read from seq. */
        m->state = GW_MEMBER_RESYNC;
        gw_room_resync(srv, m->room);
    } else {
        gw_member_go_live(m);
    }
}

static void on_joined(void *priv, enum gw_store_status status, const struct gw_store_joined *j)
{
    struct gw_member *m = priv;
    struct gw_server *srv = m->srv;

    if (!m->session) {
        /* Detached while the script was in flight. Unless Redis refused the
         * script outright, it may have taken effect: record the join and
         * its end, so the worker removes what it wrote (and the registry
         * entry with it). */
        if (status != GW_STORE_REFUSED) {
            emit(srv, "join", m, NULL);
            emit(srv, "leave", m, m->detach_reason);
        } else {
            gw_store_registry_del(srv->store, m->mid);
        }
        gw_member_free(m);
        return;
    }
    if (status == GW_STORE_OK) {
        joined(m, j);
        return;
    }
    if (status == GW_STORE_LOST) {
        /* Unknown whether it ran: undo it through the worker. */
        emit(srv, "join", m, NULL);
        emit(srv, "leave", m, "faulted");
    } else {
        gw_store_registry_del(srv->store, m->mid); /* refused: it did not run */
    }
    join_failed(m, "the broker is unreachable; not joined");
}

void gw_member_send_join(struct gw_member *m)
{
    struct gw_server *srv = m->srv;
    /* A member that asked for the count only gets no page of members:
     * what its join costs then does not depend on the room at all. */
    struct gw_store_join req = {.who = who_of(m), .since = m->join.since,
                                .epoch = m->join.epoch, .history = m->join.history,
                                .no_members = m->presence == CM_PRESENCE_COUNT};
    m->state = GW_MEMBER_JOINING;
    m->generation = m->room->generation;
    if (gw_store_join(srv->store, &req, on_joined, m) != 0) {
        m->state = GW_MEMBER_SUBSCRIBING;
        join_failed(m, "the broker is unreachable; not joined");
        return;
    }
    /* Publishes sent before the join was: pipelined behind it. */
    deferred_flush(m);
}

struct gw_member *gw_member_join(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = cm_calloc(1, sizeof(*m));
    m->srv = s->srv;
    m->session = s;
    m->state = GW_MEMBER_SUBSCRIBING;
    m->presence = f->type == CM_FRAME_JOIN ? f->presence : CM_PRESENCE_EVENTS;
    snprintf(m->room_name, sizeof(m->room_name), "%s", f->room);
    snprintf(m->session_id, sizeof(m->session_id), "%s", s->id);
    snprintf(m->nickname, sizeof(m->nickname), "%s", f->nickname);
    snprintf(m->mid, sizeof(m->mid), "%s.%u", s->id, ++s->joins);
    m->join.has_id = f->has_id;
    snprintf(m->join.id, sizeof(m->join.id), "%s", f->id);
    snprintf(m->join.epoch, sizeof(m->join.epoch), "%s", f->has_epoch ? f->epoch : "");
    m->join.since = f->type == CM_FRAME_JOIN ? f->since : -1;
    m->join.history = f->type == CM_FRAME_JOIN ? f->history : 0;
    m->grace_ms = f->type == CM_FRAME_JOIN ? f->grace_ms : 0;
    session_link(s, m);
    gw_room_add_member(s->srv, f->room, m);
    /* Looked up again: a join that failed at once has already been dropped. */
    return gw_member_find(s, f->room);
}

/* ---- live ---- */

void gw_member_deliver(struct gw_member *m, struct gw_payload *p)
{
    struct gw_session *s = m->session;
    if (!s || (p->seq && p->seq <= m->last_seq) || (s->legacy && !p->is_message))
        return;
    if (m->state != GW_MEMBER_JOINED) {
        if (m->held.bytes + p->len > (size_t)m->srv->cfg.send_queue_bytes) {
            gw_session_overflow(s);
            return;
        }
        gw_pvec_push(&m->held, gw_payload_ref(p));
        return;
    }
    if (p->seq)
        m->last_seq = p->seq;
    m->srv->m.deliveries++;
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

/* ---- grace after a connection ends ----
 * When a connection that joined with grace_ms closes, drops or times out,
 * the membership's leave event is held back that long instead of being
 * emitted at once. The member stays in Redis meanwhile, so a client that
 * comes back within the grace and joins with the same nickname takes it
 * over like any takeover: no presence frame at all. The held leave names
 * the old mid, so after a takeover the worker's compare-and-delete changes
 * nothing; otherwise the member leaves with the connection's reason, late
 * by the grace. A `leave` frame and a takeover never linger; if the gateway
 * dies, its registry still names the membership and the sweep removes it. */

static void on_linger_timer(void *arg);

/* Emits the leaves that are due (every one with force) and arms the timer
 * for the next. The list is short: only connections that ended within the
 * last grace_ms are on it. */
static void linger_run(struct gw_server *srv, bool force)
{
    int64_t now = cm_mono_ms(), next = 0;
    for (struct gw_member **pp = &srv->lingering; *pp;) {
        struct gw_member *m = *pp;
        if (force || m->linger_due_ms <= now) {
            *pp = m->linger_next;
            emit(srv, "leave", m, m->detach_reason);
            gw_member_free(m);
            continue;
        }
        if (!next || m->linger_due_ms < next)
            next = m->linger_due_ms;
        pp = &m->linger_next;
    }
    if (!srv->linger_timer)
        return;
    if (next)
        srv->link_loop.timer_start(srv->linger_timer, next - now);
    else
        srv->link_loop.timer_stop(srv->linger_timer);
}

static void on_linger_timer(void *arg)
{
    linger_run(arg, false);
}

/* Takes over m (out of its room and session) if its leave may wait: a
 * grace was asked, the reason is the connection's end, the gateway is not
 * stopping. Returns false when the caller must emit the leave itself. */
static bool linger(struct gw_member *m, const char *reason)
{
    struct gw_server *srv = m->srv;
    if (m->grace_ms <= 0 || srv->stopping)
        return false;
    if (strcmp(reason, "closed") != 0 && strcmp(reason, "faulted") != 0 &&
        strcmp(reason, "timeout") != 0)
        return false; /* left or replaced: the member is gone now */
    if (!srv->linger_timer)
        srv->linger_timer = srv->link_loop.timer_new(srv->link_loop.ctx, on_linger_timer, srv);
    m->session = NULL;
    m->detach_reason = reason; /* a string literal */
    m->linger_due_ms = cm_mono_ms() + m->grace_ms;
    m->linger_next = srv->lingering;
    srv->lingering = m;
    linger_run(srv, false);
    return true;
}

void gw_members_linger_flush(struct gw_server *srv)
{
    linger_run(srv, true);
}

void gw_members_linger_stop(struct gw_server *srv)
{
    linger_run(srv, true);
    if (srv->linger_timer)
        srv->link_loop.timer_free(srv->linger_timer);
    srv->linger_timer = NULL;
}

/* ---- leaving ---- */

void gw_member_free(struct gw_member *m)
{
    if (!m)
        return;
    gw_pvec_clear(&m->held);
    free(m);
}

void gw_member_leave(struct gw_member *m, const char *reason)
{
    gw_room_remove_member(m);
    switch (m->state) {
    case GW_MEMBER_SUBSCRIBING:
        deferred_drop(m); /* nothing reached Redis: nothing to undo */
        gw_member_free(m);
        break;
    case GW_MEMBER_JOINING:
        /* The join script may already have run; its reply emits the leave. */
        deferred_drop(m);
        m->session = NULL;
        m->detach_reason = reason;
        break;
    case GW_MEMBER_JOINED:
    case GW_MEMBER_RESYNC:
        if (linger(m, reason))
            break;
        emit(m->srv, "leave", m, reason);
        gw_member_free(m);
        break;
    }
}

void gw_members_leave_all(struct gw_session *s, const char *reason)
{
    while (s->members) {
        struct gw_member *m = s->members;
        s->members = m->session_next;
        m->session_next = NULL;
        gw_member_leave(m, reason);
    }
    s->nrooms = 0;
}

void gw_member_left(struct gw_member *m, const char *id)
{
    struct gw_session *s = m->session;
    session_unlink(s, m);
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_left(&b, id, m->room_name, "left");
    gw_session_send_sbuf(s, &b);
    cm_sbuf_free(&b);
    gw_member_leave(m, "left");
}

void gw_member_replaced(struct gw_member *m)
{
    struct gw_session *s = m->session;
    session_unlink(s, m);
    if (!s->legacy) {
        struct cm_sbuf b;
        cm_sbuf_init(&b, 0);
        cm_encode_left(&b, NULL, m->room_name, "replaced");
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&b);
    }
    gw_member_leave(m, "replaced");
}

/* A message on the gateway's control channel, from a join script:
 * {"type":"replaced","session":...,"mid":...,"room":...}. */
void gw_member_control(struct gw_server *srv, const char *data, size_t len)
{
    cJSON *msg = cJSON_ParseWithLength(data, len);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "type"));
    const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "session"));
    const char *mid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "mid"));
    const char *room = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, "room"));
    struct gw_session *s = NULL;
    struct gw_member *m = NULL;

    if (!type || strcmp(type, "replaced") != 0 || !sid || !mid || !room) {
        CM_WARN("control: ignoring unexpected message %.*s", (int)(len > 200 ? 200 : len), data);
        goto out;
    }
    HASH_FIND_STR(srv->sessions, sid, s);
    if (!s || !(m = gw_member_find(s, room)) || strcmp(m->mid, mid) != 0)
        goto out; /* already gone */
    gw_member_replaced(m);
out:
    cJSON_Delete(msg);
}

/* ---- re-asserting ---- */

struct reassert {
    struct gw_session *session; /* holds a reference */
    char room[CM_ROOM_MAX + 1];
    char mid[GW_MID_MAX]; /* the new mid */
};

static void on_reasserted(void *priv, enum gw_store_status status, bool kept)
{
    struct reassert *ra = priv;
    struct gw_member *m = ra->session->wsi ? gw_member_find(ra->session, ra->room) : NULL;
    /* Not applied: the next reconnect or heartbeat check tries again. A
     * nickname another session took meanwhile stays with that session. */
    if (status == GW_STORE_OK && !kept && m && strcmp(m->mid, ra->mid) == 0)
        gw_member_replaced(m);
    gw_session_unref(ra->session);
    free(ra);
}

static void reassert(struct gw_member *m)
{
    struct gw_session *s = m->session;
    struct reassert *ra = cm_calloc(1, sizeof(*ra));
    char old_mid[GW_MID_MAX];
    ra->session = gw_session_ref(s);
    snprintf(ra->room, sizeof(ra->room), "%s", m->room_name);
    snprintf(old_mid, sizeof(old_mid), "%s", m->mid);
    /* A new mid, so that a cleanup still running for the old one cannot
     * undo it. */
    snprintf(m->mid, sizeof(m->mid), "%s.%u", s->id, ++s->joins);
    snprintf(ra->mid, sizeof(ra->mid), "%s", m->mid);
    struct gw_store_member who = who_of(m);
    if (gw_store_reassert(m->srv->store, &who, old_mid, on_reasserted, ra) != 0) {
        gw_session_unref(ra->session);
        free(ra);
    }
}

void gw_members_reassert(struct gw_server *srv)
{
    struct gw_room *room, *tmp;
    size_t n = 0;
    HASH_ITER(hh, srv->rooms, room, tmp) {
        for (struct gw_member *m = room->members; m; m = m->room_next) {
            if (m->session && (m->state == GW_MEMBER_JOINED || m->state == GW_MEMBER_RESYNC)) {
                reassert(m);
                n++;
            }
        }
    }
    if (n)
        CM_INFO("re-asserting %zu memberships", n);
}
