/*
 * The protocol dispatcher: one handler per client frame type, and the Redis
 * replies that finish them. Handlers validate, then either answer at once or
 * start one Redis request whose reply answers; requests hold a reference to
 * their session, so a reply that outlives the socket is dropped safely.
 */
#include "gw_server.h"

#include "cm_keys.h"
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

/* An in-flight request that answers one client frame. */
struct gw_request {
    struct gw_session *session; /* holds a reference */
    char room[CM_ROOM_MAX + 1];
    char id[CM_ID_MAX + 1];
    bool has_id;
};

static struct gw_request *request_new(struct gw_session *s, const char *room, const char *id,
                                      bool has_id)
{
    struct gw_request *r = cm_malloc(sizeof(*r));
    r->session = gw_session_ref(s);
    snprintf(r->room, sizeof(r->room), "%s", room);
    snprintf(r->id, sizeof(r->id), "%s", has_id ? id : "");
    r->has_id = has_id;
    return r;
}

static void request_free(struct gw_request *r)
{
    gw_session_unref(r->session);
    free(r);
}

static const char *req_id(const struct gw_request *r)
{
    return r->has_id ? r->id : NULL;
}

static const char *frame_id(const struct cm_frame *f)
{
    return f->has_id ? f->id : NULL;
}

/* True when reply is usable; otherwise answers the client and logs. */
static bool reply_ok(struct gw_server *srv, redisReply *reply, const char *what)
{
    if (!reply)
        return false; /* the link dropped; already logged by redis.c */
    if (reply->type == REDIS_REPLY_ERROR) {
        CM_WARN("redis %s failed: %s", what, reply->str);
        gw_redis_check_error(srv, reply);
        return false;
    }
    return true;
}

/* Joins the string elements of an array reply as a JSON array: the scripts
 * return ready-made JSON objects. */
static void put_raw_array(struct cm_sbuf *b, const redisReply *arr)
{
    cm_sbuf_append(b, "[", 1);
    for (size_t i = 0; arr && i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (b->len > 1)
            cm_sbuf_append(b, ",", 1);
        cm_sbuf_append(b, e->str, e->len);
    }
    cm_sbuf_append(b, "]", 1);
}

/* A token bucket: refills at rate per second up to burst; takes one. */
static bool bucket_take(double *tokens, int64_t *stamp, long long rate, long long burst)
{
    int64_t now = cm_mono_ms();
    *tokens += (double)(now - *stamp) * (double)rate / 1000.0;
    if (*tokens > (double)burst)
        *tokens = (double)burst;
    *stamp = now;
    if (*tokens < 1.0)
        return false;
    *tokens -= 1.0;
    return true;
}

static bool take_token(struct gw_session *s)
{
    const struct gw_config *cfg = &s->srv->cfg;
    return bucket_take(&s->tokens, &s->tokens_ms, cfg->rate_per_sec, cfg->rate_burst);
}

/* With authentication on, whether the token lets this frame use nickname in
 * room; answers `forbidden` when it does not. */
static bool claims_allow(struct gw_session *s, const struct cm_frame *f)
{
    const struct cm_jwt_claims *c = s->claims;
    if (!c)
        return true;
    if (strcmp(f->nickname, c->sub) != 0) {
        gw_session_send_error(s, frame_id(f), CM_ERR_FORBIDDEN,
                              "your token allows only its own nickname (sub)");
        return false;
    }
    if (!cm_jwt_room_allowed(c, f->room)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_FORBIDDEN,
                              "your token does not allow this room");
        return false;
    }
    return true;
}

/* ---- publish ---- */

static void on_publish_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    struct gw_request *req = priv;
    redisReply *reply = r;
    struct gw_session *s = req->session;

    if (reply_ok(srv, reply, "publish") && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_INTEGER) {
        srv->m.publishes++;
        if (req->has_id && !s->legacy && s->wsi) {
            struct cm_sbuf b;
            cm_sbuf_init(&b, 0);
            cm_encode_ack(&b, req->id, req->room, reply->element[0]->integer);
            gw_session_send_sbuf(s, &b);
            cm_sbuf_free(&b);
        }
    } else {
        srv->m.publish_failures++;
        if (s->wsi)
            gw_session_send_error(s, req_id(req), CM_ERR_UNAVAILABLE,
                                  "the message could not be stored; nothing was sent");
    }
    request_free(req);
}

int gw_publish(struct gw_server *srv, const char *room, const char *tail, size_t tail_len,
               redisCallbackFn *cb, void *priv)
{
    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], chan[CM_KEY_MAX], cap[24], epoch[33], deadline[24];
    cm_key_room(meta, CM_ROOM_META, room);
    cm_key_room(hist, CM_ROOM_HISTORY, room);
    cm_key_room(chan, CM_ROOM_CHANNEL, room);
    snprintf(cap, sizeof(cap), "%lld", srv->cfg.history_max);
    cm_random_hex(epoch, 8);
    /* Past the time the link watchdog gives up on Redis, the script stores
     * nothing: `unavailable` then stays true even if a paused Redis runs the
     * script later (docs/ARCHITECTURE.md: clocks within that margin). */
    snprintf(deadline, sizeof(deadline), "%lld", (long long)gw_redis_deadline_ms(srv));
    const char *argv[] = {meta, hist, chan, tail, cap, epoch, deadline};
    size_t argvlen[] = {strlen(meta), strlen(hist), strlen(chan), tail_len, strlen(cap),
                        strlen(epoch), strlen(deadline)};
    return gw_redis_script(srv, CM_SCRIPT_PUBLISH, 2, 7, argv, argvlen, cb, priv);
}

static void publish(struct gw_session *s, const char *room, const char *tail, size_t tail_len,
                    const char *id, bool has_id)
{
    struct gw_server *srv = s->srv;
    struct gw_request *req = request_new(s, room, id, has_id);
    if (gw_publish(srv, room, tail, tail_len, on_publish_reply, req) != 0) {
        request_free(req);
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

void gw_deferred_drop(struct gw_member *m)
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

static void defer_publish(struct gw_member *m, struct cm_sbuf *tail, const struct cm_frame *f)
{
    struct gw_deferred *d = cm_calloc(1, sizeof(*d));
    d->tail = cm_strndup(cm_sbuf_data(tail), tail->len);
    d->tail_len = tail->len;
    d->has_id = f->has_id;
    snprintf(d->id, sizeof(d->id), "%s", f->id);
    struct gw_deferred **pp = &m->deferred;
    while (*pp)
        pp = &(*pp)->next;
    *pp = d;
}

static void send_message(struct gw_session *s, struct gw_member *m, const struct cm_frame *f)
{
    if (!take_token(s)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_RATE_LIMITED,
                              "too many messages; slow down");
        return;
    }
    struct cm_sbuf tail;
    cm_sbuf_init(&tail, 0);
    cm_encode_message_tail(&tail, m->room_name, m->nickname, f->message, f->message_len);
    if (m->state == GW_MEMBER_SUBSCRIBING)
        defer_publish(m, &tail, f);
    else
        publish(s, m->room_name, cm_sbuf_data(&tail), tail.len, f->id, f->has_id);
    cm_sbuf_free(&tail);
}

/* ---- join ---- */

static void join_failed(struct gw_member *m, const char *id, const char *why)
{
    struct gw_session *s = m->session;
    gw_session_unlink_member(s, m);
    gw_session_send_error(s, id, CM_ERR_UNAVAILABLE, why);
    gw_room_remove_member(m);
    gw_deferred_drop(m);
    gw_member_free(m);
}

static void joined_reply(struct gw_member *m, redisReply *reply)
{
    struct gw_session *s = m->session;
    struct gw_server *srv = s->srv;
    redisReply **e = reply->element;
    int64_t seq = e[0]->integer;
    const char *epoch = e[1]->type == REDIS_REPLY_STRING ? e[1]->str : "";

    if (!s->legacy) {
        struct cm_sbuf members, history, b;
        cm_sbuf_init(&members, 0);
        cm_sbuf_init(&history, 0);
        cm_sbuf_init(&b, 0);
        put_raw_array(&members, e[4]);
        put_raw_array(&history, e[3]);
        cm_encode_joined(&b, m->join.has_id ? m->join.id : NULL, m->room_name, m->nickname, seq,
                         epoch, cm_sbuf_data(&members), cm_sbuf_data(&history),
                         (int)e[2]->integer);
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&members);
        cm_sbuf_free(&history);
        cm_sbuf_free(&b);
    }
    snprintf(m->room->epoch, sizeof(m->room->epoch), "%s", epoch);
    m->last_seq = seq;
    srv->m.joins++;
    gw_redis_emit(srv, "join", m, NULL);
    if (m->generation != m->room->generation) {
        /* The subscription was re-made while the script ran: frames may
         * have been missed in between, so re-read from seq. */
        m->state = GW_MEMBER_RESYNC;
        gw_room_resync(srv, m->room);
    } else {
        gw_member_go_live(m);
    }
}

static bool join_reply_valid(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 5 &&
           r->element[0]->type == REDIS_REPLY_INTEGER && r->element[2]->type == REDIS_REPLY_INTEGER &&
           r->element[3]->type == REDIS_REPLY_ARRAY && r->element[4]->type == REDIS_REPLY_ARRAY;
}

static void on_join_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    struct gw_member *m = priv;
    redisReply *reply = r;
    bool ok = reply_ok(srv, reply, "join") && join_reply_valid(reply);

    if (!m->session) {
        /* Detached while the script was in flight. Unless Redis refused the
         * script outright, it may have taken effect: record the join and
         * its end, so the worker removes what it wrote (and the registry
         * entry with it). */
        if (ok || !reply) {
            gw_redis_emit(srv, "join", m, NULL);
            gw_redis_emit(srv, "leave", m, m->detach_reason);
        } else {
            gw_redis_registry_del(srv, m->mid);
        }
        gw_member_free(m);
        return;
    }
    if (ok) {
        joined_reply(m, reply);
        return;
    }
    if (!reply) {
        /* Unknown whether it ran: undo it through the worker. */
        gw_redis_emit(srv, "join", m, NULL);
        gw_redis_emit(srv, "leave", m, "faulted");
    } else {
        gw_redis_registry_del(srv, m->mid); /* refused: it did not run */
    }
    join_failed(m, m->join.has_id ? m->join.id : NULL,
                "the broker is unreachable; not joined");
}

void gw_join_send(struct gw_member *m)
{
    struct gw_session *s = m->session;
    struct gw_server *srv = s->srv;
    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], members[CM_KEY_MAX], chan[CM_KEY_MAX];
    char epoch[33], since[24], history[24];
    struct cm_sbuf member, presence;

    cm_key_room(meta, CM_ROOM_META, m->room_name);
    cm_key_room(hist, CM_ROOM_HISTORY, m->room_name);
    cm_key_room(members, CM_ROOM_MEMBERS, m->room_name);
    cm_key_room(chan, CM_ROOM_CHANNEL, m->room_name);
    cm_random_hex(epoch, 8);
    snprintf(since, sizeof(since), "%lld", (long long)m->join.since);
    snprintf(history, sizeof(history), "%d", m->join.history);
    cm_sbuf_init(&member, 0);
    cm_sbuf_init(&presence, 0);
    int64_t now = cm_now_ms();
    cm_encode_member(&member, s->id, m->mid, srv->cfg.id, now);
    cm_encode_presence(&presence, m->room_name, "join", m->nickname, NULL, now);

    const char *argv[] = {meta, hist, members, chan, m->nickname, cm_sbuf_data(&member), s->id,
                          epoch, since, m->join.epoch, history, cm_sbuf_data(&presence),
                          m->room_name};
    size_t argvlen[CM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < CM_ARRAY_LEN(argv); i++)
        argvlen[i] = strlen(argv[i]);
    m->state = GW_MEMBER_JOINING;
    m->generation = m->room->generation;
    /* The registry entry first, pipelined ahead of the script: should this
     * gateway die the moment its client is told `joined`, the sweep still
     * finds the membership. (Written after the reply, it could be lost with
     * the gateway, and the member would stay listed for good.) */
    gw_redis_registry_add(srv, m);
    int rc = gw_redis_script(srv, CM_SCRIPT_JOIN, 3, (int)CM_ARRAY_LEN(argv), argv, argvlen,
                             on_join_reply, m);
    cm_sbuf_free(&member);
    cm_sbuf_free(&presence);
    if (rc != 0) {
        gw_redis_registry_del(srv, m->mid);
        m->state = GW_MEMBER_SUBSCRIBING;
        join_failed(m, m->join.has_id ? m->join.id : NULL,
                    "the broker is unreachable; not joined");
        return;
    }
    /* Publishes sent before the join was: pipelined behind it, so Redis
     * runs them after the join, in order. */
    deferred_flush(m);
}

static struct gw_member *member_new(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = cm_calloc(1, sizeof(*m));
    m->session = s;
    m->state = GW_MEMBER_SUBSCRIBING;
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
    m->session_next = s->members;
    s->members = m;
    s->nrooms++;
    return m;
}

/* Starts a join; returns the new membership, or NULL after answering why not. */
static struct gw_member *start_join(struct gw_session *s, const struct cm_frame *f)
{
    if (!gw_redis_ready(s->srv)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_UNAVAILABLE,
                              "the broker is unreachable; not joined");
        return NULL;
    }
    if (s->nrooms >= (size_t)s->srv->cfg.rooms) {
        gw_session_send_error(s, frame_id(f), CM_ERR_BAD_REQUEST,
                              "too many rooms on one connection");
        return NULL;
    }
    if (!claims_allow(s, f))
        return NULL;
    const struct gw_config *cfg = &s->srv->cfg;
    if (!bucket_take(&s->join_tokens, &s->join_tokens_ms, cfg->joins_per_sec,
                     cfg->joins_per_sec)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_RATE_LIMITED, "too many joins; slow down");
        return NULL;
    }
    gw_room_add_member(s->srv, f->room, member_new(s, f));
    /* Looked up again: a join that failed at once has already been dropped. */
    return gw_session_member(s, f->room);
}

/* ---- handlers ---- */

static void handle_join(struct gw_session *s, const struct cm_frame *f)
{
    if (gw_session_member(s, f->room)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_BAD_REQUEST,
                              "already joined this room; leave it first");
        return;
    }
    start_join(s, f);
}

static void handle_message(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = gw_session_member(s, f->room);
    if (!m) {
        gw_session_send_error(s, frame_id(f), CM_ERR_NOT_JOINED, "join the room first");
        return;
    }
    send_message(s, m, f);
}

static void handle_legacy(struct gw_session *s, const struct cm_frame *f)
{
    /* The classic page's one frame: join as this nickname if needed, then
     * send. The publish is deferred or pipelined behind the join. */
    struct gw_member *m = gw_session_member(s, f->room);
    if (m ? !claims_allow(s, f) : !(m = start_join(s, f)))
        return; /* under a token, every legacy frame must name its sub */
    send_message(s, m, f);
}

static void handle_leave(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = gw_session_member(s, f->room);
    if (!m) {
        gw_session_send_error(s, frame_id(f), CM_ERR_NOT_JOINED, "not in this room");
        return;
    }
    gw_session_unlink_member(s, m);
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_left(&b, frame_id(f), f->room, "left");
    gw_session_send_sbuf(s, &b);
    cm_sbuf_free(&b);
    gw_member_leave(m, "left");
}

static void on_history_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_request *req = priv;
    redisReply *reply = r;
    struct gw_session *s = req->session;
    if (s->wsi) {
        if (reply_ok(ac->data, reply, "history") && reply->type == REDIS_REPLY_ARRAY &&
            reply->elements == 3) {
            struct cm_sbuf items, b;
            cm_sbuf_init(&items, 0);
            cm_sbuf_init(&b, 0);
            put_raw_array(&items, reply->element[2]);
            cm_encode_history(&b, req_id(req), req->room, cm_sbuf_data(&items));
            gw_session_send_sbuf(s, &b);
            cm_sbuf_free(&items);
            cm_sbuf_free(&b);
        } else {
            gw_session_send_error(s, req_id(req), CM_ERR_UNAVAILABLE, "history unavailable");
        }
    }
    request_free(req);
}

static void on_members_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_request *req = priv;
    redisReply *reply = r;
    struct gw_session *s = req->session;
    if (s->wsi) {
        if (reply_ok(ac->data, reply, "members") && reply->type == REDIS_REPLY_ARRAY) {
            struct cm_sbuf items, b;
            cm_sbuf_init(&items, 0);
            cm_sbuf_init(&b, 0);
            put_raw_array(&items, reply);
            cm_encode_members(&b, req_id(req), req->room, cm_sbuf_data(&items));
            gw_session_send_sbuf(s, &b);
            cm_sbuf_free(&items);
            cm_sbuf_free(&b);
        } else {
            gw_session_send_error(s, req_id(req), CM_ERR_UNAVAILABLE, "members unavailable");
        }
    }
    request_free(req);
}

/* Runs a read-only room script for a frame and answers through cb. */
static void room_query(struct gw_session *s, const struct cm_frame *f, enum cm_script script,
                       redisCallbackFn *cb)
{
    if (!gw_session_member(s, f->room)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_NOT_JOINED, "join the room first");
        return;
    }
    char k1[CM_KEY_MAX], k2[CM_KEY_MAX], before[24], limit[24];
    const char *argv[5];
    size_t argvlen[5];
    int nkeys, argc;
    if (script == CM_SCRIPT_HISTORY) {
        cm_key_room(k1, CM_ROOM_META, f->room);
        cm_key_room(k2, CM_ROOM_HISTORY, f->room);
        snprintf(before, sizeof(before), "%lld", (long long)(f->before > 0 ? f->before : 0));
        snprintf(limit, sizeof(limit), "%d", f->limit);
        argv[0] = k1, argv[1] = k2, argv[2] = "before", argv[3] = before, argv[4] = limit;
        nkeys = 2, argc = 5;
    } else {
        cm_key_room(k1, CM_ROOM_MEMBERS, f->room);
        argv[0] = k1;
        nkeys = 1, argc = 1;
    }
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    struct gw_request *req = request_new(s, f->room, f->id, f->has_id);
    if (gw_redis_script(s->srv, script, nkeys, argc, argv, argvlen, cb, req) != 0) {
        request_free(req);
        gw_session_send_error(s, frame_id(f), CM_ERR_UNAVAILABLE, "the broker is unreachable");
    }
}

static void handle_ping(struct gw_session *s, const struct cm_frame *f)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_pong(&b, frame_id(f));
    gw_session_send_sbuf(s, &b);
    cm_sbuf_free(&b);
}

static void bad_frame(struct gw_session *s, const char *id, enum cm_err code, const char *why)
{
    gw_session_send_error(s, id, code, why);
    if (++s->bad_frames >= s->srv->cfg.max_bad_frames)
        gw_session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many bad frames", true);
}

void gw_dispatch_binary(struct gw_session *s)
{
    s->srv->m.frames_in++;
    bad_frame(s, NULL, CM_ERR_BAD_REQUEST, "binary frames are not part of the protocol");
}

void gw_dispatch_frame(struct gw_session *s, const char *buf, size_t len)
{
    struct cm_frame f;
    struct cm_decode_error err;

    s->srv->m.frames_in++;
    if (s->claims && s->claims->exp &&
        cm_now_ms() / 1000 > s->claims->exp + s->srv->cfg.auth_skew_s) {
        gw_session_close(s, GW_CLOSE_UNAUTHORIZED, "token expired", false);
        return;
    }
    if (cm_frame_decode(buf, len, (size_t)s->srv->cfg.message_bytes, &f, &err) != 0) {
        bad_frame(s, frame_id(&f), err.code, err.message);
        cm_frame_clear(&f);
        return;
    }
    s->bad_frames = 0;
    if (!s->got_frame) {
        s->got_frame = true;
        s->legacy = f.type == CM_FRAME_LEGACY;
    }
    switch (f.type) {
    case CM_FRAME_JOIN: handle_join(s, &f); break;
    case CM_FRAME_MESSAGE: handle_message(s, &f); break;
    case CM_FRAME_LEGACY: handle_legacy(s, &f); break;
    case CM_FRAME_LEAVE: handle_leave(s, &f); break;
    case CM_FRAME_HISTORY: room_query(s, &f, CM_SCRIPT_HISTORY, on_history_reply); break;
    case CM_FRAME_MEMBERS: room_query(s, &f, CM_SCRIPT_MEMBERS, on_members_reply); break;
    case CM_FRAME_PING: handle_ping(s, &f); break;
    }
    cm_frame_clear(&f);
}

void gw_member_replaced(struct gw_session *s, struct gw_member *m)
{
    gw_session_unlink_member(s, m);
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
void gw_control_message(struct gw_server *srv, const char *data, size_t len)
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
    if (!s || !(m = gw_session_member(s, room)) || strcmp(m->mid, mid) != 0)
        goto out; /* already gone */
    gw_member_replaced(s, m);
out:
    cJSON_Delete(msg);
}
