/*
 * The protocol dispatcher: one handler per client frame type, and the Redis
 * replies that finish them. Handlers validate, then either answer at once or
 * start one Redis request whose reply answers; requests hold a reference to
 * their session, so a reply that outlives the socket is dropped safely.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

static const char *frame_id(const struct cm_frame *f)
{
    return f->has_id ? f->id : NULL;
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

static void send_message(struct gw_session *s, struct gw_member *m, const struct cm_frame *f)
{
    if (!take_token(s)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_RATE_LIMITED,
                              "too many messages; slow down");
        return;
    }
    gw_member_publish(m, f->id, f->has_id, f->message, f->message_len);
}

/* Starts a join; returns the new membership, or NULL after answering why not. */
static struct gw_member *start_join(struct gw_session *s, const struct cm_frame *f)
{
    if (!gw_store_room_ready(s->srv->store, f->room)) {
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
    return gw_member_join(s, f);
}

/* ---- handlers ---- */

static void handle_join(struct gw_session *s, const struct cm_frame *f)
{
    if (gw_member_find(s, f->room)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_BAD_REQUEST,
                              "already joined this room; leave it first");
        return;
    }
    start_join(s, f);
}

static void handle_message(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = gw_member_find(s, f->room);
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
    struct gw_member *m = gw_member_find(s, f->room);
    if (m ? !claims_allow(s, f) : !(m = start_join(s, f)))
        return; /* under a token, every legacy frame must name its sub */
    send_message(s, m, f);
}

static void handle_leave(struct gw_session *s, const struct cm_frame *f)
{
    struct gw_member *m = gw_member_find(s, f->room);
    if (!m) {
        gw_session_send_error(s, frame_id(f), CM_ERR_NOT_JOINED, "not in this room");
        return;
    }
    gw_member_left(m, frame_id(f));
}

static void on_history(void *priv, enum gw_store_status status, const struct gw_store_history *h)
{
    struct gw_reply_to *req = priv;
    struct gw_session *s = req->session;
    if (s->wsi && status == GW_STORE_OK) {
        struct cm_sbuf items, b;
        cm_sbuf_init(&items, 0);
        cm_sbuf_init(&b, 0);
        gw_strs_put_json(&items, &h->items);
        cm_encode_history(&b, gw_reply_to_id(req), req->room, cm_sbuf_data(&items));
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&items);
        cm_sbuf_free(&b);
    } else if (s->wsi) {
        gw_session_send_error(s, gw_reply_to_id(req), CM_ERR_UNAVAILABLE, "history unavailable");
    }
    gw_reply_to_free(req);
}

static void on_members(void *priv, enum gw_store_status status,
                       const struct gw_store_members *members)
{
    struct gw_reply_to *req = priv;
    struct gw_session *s = req->session;
    if (s->wsi && status == GW_STORE_OK) {
        struct cm_sbuf b;
        cm_sbuf_init(&b, 0);
        const struct cm_members_page page = {members->json, members->count, members->cursor};
        cm_encode_members(&b, gw_reply_to_id(req), req->room, &page);
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&b);
    } else if (s->wsi) {
        gw_session_send_error(s, gw_reply_to_id(req), CM_ERR_UNAVAILABLE, "members unavailable");
    }
    gw_reply_to_free(req);
}

/* history and members: read-only questions about a room the session is in. */
static void room_query(struct gw_session *s, const struct cm_frame *f)
{
    if (!gw_member_find(s, f->room)) {
        gw_session_send_error(s, frame_id(f), CM_ERR_NOT_JOINED, "join the room first");
        return;
    }
    struct gw_store *st = s->srv->store;
    struct gw_reply_to *req = gw_reply_to_new(s, f->room, f->id, f->has_id);
    int rc = f->type == CM_FRAME_HISTORY
                 ? gw_store_history_before(st, f->room, f->before, f->limit, on_history, req)
                 : gw_store_members(st, f->room, f->cursor, on_members, req);
    if (rc != 0) {
        gw_reply_to_free(req);
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
    case CM_FRAME_HISTORY:
    case CM_FRAME_MEMBERS: room_query(s, &f); break;
    case CM_FRAME_PING: handle_ping(s, &f); break;
    }
    cm_frame_clear(&f);
}
