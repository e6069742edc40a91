/*
 * The consumer group on chat:events (docs/ARCHITECTURE.md, "Events").
 *
 * Every worker reads new entries with XREADGROUP on its own blocking
 * connection and applies them on the command connection. An entry is
 * acknowledged only after its effect is in Redis: for a leave, the leave
 * script and the HDEL of the gateway's registry entry are pipelined, and
 * the XACK follows once both have answered without an error that a retry
 * could fix. Whatever is not acknowledged stays in the group's pending list
 * and is claimed again with XAUTOCLAIM after --claim-idle-ms, by this
 * worker or any other, so a worker that dies loses nothing. Applying an
 * entry twice is harmless: the leave script is a compare-and-delete on the
 * membership id, and HDEL of a missing field does nothing.
 */
#include "cm_keys.h"
#include "cm_log.h"
#include "cm_proto.h"
#include "cm_util.h"
#include "wk_server.h"

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_MID_MAX 128
#define WK_REASON_MAX 32
#define WK_RETRY_MS 1000

enum wk_event_type { WK_EVENT_INVALID, WK_EVENT_JOIN, WK_EVENT_LEAVE };

/* One decoded entry. The gateway also sends session and ts; the worker
 * needs neither. */
struct wk_event {
    enum wk_event_type type;
    char room[CM_ROOM_MAX + 1];
    char nickname[CM_NICK_MAX_BYTES + 1];
    char mid[WK_MID_MAX + 1];
    char gateway[WK_ID_MAX + 1];
    char reason[WK_REASON_MAX + 1];
};

/* One entry being applied: the steps still owed, then the XACK. */
struct wk_event_op {
    struct wk_server *srv;
    char id[WK_ENTRY_ID_MAX];
    enum wk_event_type type;
    int steps;    /* replies still awaited before the XACK */
    bool failed;  /* a step failed in a way a retry may fix: do not ACK */
    bool dropped; /* a step failed for good: ACK, but count it as dropped */
};

static void group_create(struct wk_server *srv);

/* ---- decoding ------------------------------------------------------------ */

static int copy_value(char *dst, size_t cap, const redisReply *v)
{
    if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len >= cap ||
        memchr(v->str, '\0', v->len))
        return -1;
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
    return 0;
}

static bool reason_valid(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return false;
    return *s != '\0';
}

/* Copies one known field into ev; unknown fields are ignored, so the
 * gateway may add fields. Returns NULL or what is wrong. */
static const char *event_field(struct wk_event *ev, const redisReply *k, const redisReply *v)
{
    static const char *const names[] = {"room", "nickname", "mid", "gateway", "reason"};
    char *const dst[] = {ev->room, ev->nickname, ev->mid, ev->gateway, ev->reason};
    const size_t cap[] = {sizeof(ev->room), sizeof(ev->nickname), sizeof(ev->mid),
                          sizeof(ev->gateway), sizeof(ev->reason)};

    if (k->type != REDIS_REPLY_STRING)
        return "a field name is not a string";
    if (strcmp(k->str, "type") == 0) {
        if (v->type == REDIS_REPLY_STRING && strcmp(v->str, "join") == 0)
            ev->type = WK_EVENT_JOIN;
        else if (v->type == REDIS_REPLY_STRING && strcmp(v->str, "leave") == 0)
            ev->type = WK_EVENT_LEAVE;
        else
            return "unknown type";
        return NULL;
    }
    for (size_t i = 0; i < CM_ARRAY_LEN(names); i++)
        if (strcmp(k->str, names[i]) == 0)
            return copy_value(dst[i], cap[i], v) == 0 ? NULL : "a field is empty or too long";
    return NULL;
}

/* Decodes the field list of an entry. Returns NULL, or what is wrong. */
static const char *event_decode(const redisReply *fields, struct wk_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!fields || fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0)
        return "no field list (deleted entry?)";
    for (size_t i = 0; i < fields->elements; i += 2) {
        const char *why = event_field(ev, fields->element[i], fields->element[i + 1]);
        if (why)
            return why;
    }
    if (ev->type == WK_EVENT_INVALID)
        return "no type";
    if (!cm_room_valid(ev->room, strlen(ev->room)))
        return "bad room";
    if (!cm_nickname_valid(ev->nickname, strlen(ev->nickname)))
        return "bad nickname";
    if (ev->mid[0] == '\0')
        return "no mid";
    if (!cm_room_valid(ev->gateway, strlen(ev->gateway)))
        return "bad gateway";
    if (ev->type == WK_EVENT_LEAVE && !reason_valid(ev->reason))
        return "bad reason";
    return NULL;
}

/* ---- applying ------------------------------------------------------------ */

static struct wk_event_op *op_new(struct wk_server *srv, const char *id)
{
    struct wk_event_op *op = cm_calloc(1, sizeof(*op));
    op->srv = srv;
    snprintf(op->id, sizeof(op->id), "%s", id);
    srv->ev.inflight++;
    return op;
}

static void op_free(struct wk_event_op *op)
{
    struct wk_server *srv = op->srv;
    srv->ev.inflight--;
    free(op);
    wk_events_pump(srv);
    wk_server_check_drained(srv);
}

/* The ms part of an entry id, "<ms>-<seq>". */
static long long entry_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

static void op_count(struct wk_event_op *op)
{
    struct wk_metrics *m = &op->srv->m;
    if (op->dropped)
        m->events_dropped++;
    else if (op->type == WK_EVENT_JOIN)
        m->events_join++;
    else if (op->type == WK_EVENT_LEAVE)
        m->events_leave++;
    else
        m->events_invalid++;
    m->lag_ms = cm_now_ms() - entry_ms(op->id);
    if (m->lag_ms < 0)
        m->lag_ms = 0;
}

static void ack_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_event_op *op = priv;
    if (wk_reply_kind(reply) == WK_REPLY_OK)
        op_count(op);
    else
        CM_DEBUG("event %s: XACK failed (%s); it stays pending", op->id, wk_reply_error(reply));
    op_free(op);
}

static void op_ack(struct wk_event_op *op)
{
    const char *argv[] = {"XACK", CM_KEY_EVENTS, CM_EVENTS_GROUP, op->id};
    if (wk_redis_commandv(&op->srv->cmd, ack_cb, op, 4, argv) != 0)
        op_free(op);
}

/* Records the outcome of one step. */
static void op_record(struct wk_event_op *op, const redisReply *reply, const char *what)
{
    switch (wk_reply_kind(reply)) {
    case WK_REPLY_OK: break;
    case WK_REPLY_LOST: op->failed = true; break;
    case WK_REPLY_TRANSIENT:
        CM_WARN("event %s: %s failed: %s", op->id, what, wk_reply_error(reply));
        op->failed = true;
        break;
    case WK_REPLY_FATAL:
        /* Retrying a deterministic failure (e.g. a corrupt members hash)
         * would repeat it every claim interval forever. */
        CM_ERROR("event %s: %s failed for good, acknowledging it: %s", op->id, what,
                 wk_reply_error(reply));
        op->dropped = true;
        break;
    }
}

/* Ends one step; after the last, ACKs the entry or lets it go. */
static void op_release(struct wk_event_op *op)
{
    if (--op->steps > 0)
        return;
    if (op->failed) {
        CM_DEBUG("event %s: not applied; it stays pending and will be claimed again", op->id);
        op_free(op);
        return;
    }
    op_ack(op);
}

static void leave_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    op_record(priv, reply, "leave script");
    op_release(priv);
}

static void hdel_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    op_record(priv, reply, "HDEL");
    op_release(priv);
}

static void event_leave(struct wk_server *srv, struct wk_event_op *op, const struct wk_event *ev)
{
    char key[CM_KEY_MAX];
    size_t klen = cm_key_gw_sessions(key, ev->gateway);
    const char *argv[] = {"HDEL", key, ev->mid};
    const size_t lens[] = {4, klen, strlen(ev->mid)};

    CM_DEBUG("event %s: %s leaves %s (%s)", op->id, ev->nickname, ev->room, ev->reason);
    /* One step per command, plus one held while sending, so that a send
     * that fails at once cannot settle the entry before the other is out. */
    op->steps = 3;
    if (wk_presence_leave(srv, ev->room, ev->nickname, ev->mid, ev->reason, leave_cb, op) != 0) {
        op_record(op, NULL, "leave script");
        op->steps--;
    }
    if (wk_redis_command(&srv->cmd, hdel_cb, op, 3, argv, lens) != 0) {
        op_record(op, NULL, "HDEL");
        op->steps--;
    }
    op_release(op);
}

static void event_apply(struct wk_server *srv, const char *id, const redisReply *fields)
{
    struct wk_event ev;
    struct wk_event_op *op = op_new(srv, id);
    const char *why = event_decode(fields, &ev);

    if (why) {
        CM_WARN("event %s: malformed (%s), acknowledging it without effect", id, why);
        op->type = WK_EVENT_INVALID;
        op_ack(op);
        return;
    }
    op->type = ev.type;
    if (ev.type == WK_EVENT_JOIN) {
        /* The gateway's join script already applied it. */
        op_ack(op);
        return;
    }
    event_leave(srv, op, &ev);
}

/* Applies every entry of an XREADGROUP or XAUTOCLAIM entry list. */
static void entries_apply(struct wk_server *srv, const redisReply *entries)
{
    if (entries->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= WK_ENTRY_ID_MAX) {
            CM_WARN("events: skipping an entry without a usable id");
            continue;
        }
        event_apply(srv, e->element[0]->str, e->element[1]);
    }
}

/* ---- the group ----------------------------------------------------------- */

static bool is_nogroup(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOGROUP", 7) == 0;
}

static void retry_later(struct wk_server *srv)
{
    struct timeval tv = {WK_RETRY_MS / 1000, (suseconds_t)(WK_RETRY_MS % 1000) * 1000};
    evtimer_add(srv->ev.retry, &tv);
}

/* The stream or the group vanished (a FLUSHALL, a Redis restart without
 * persistence): create them again before reading. */
static void group_lost(struct wk_server *srv)
{
    if (srv->ev.group_ready)
        CM_WARN("events: consumer group %s on %s is gone; creating it again", CM_EVENTS_GROUP,
                CM_KEY_EVENTS);
    srv->ev.group_ready = false;
    group_create(srv);
}

static void group_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_events_state *e = &srv->ev;
    e->group_creating = false;
    if (!reply)
        return; /* wk_events_cmd_ready tries again after the reconnect */
    bool busy = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) == 0;
    if (reply->type == REDIS_REPLY_ERROR && !busy) {
        CM_ERROR("events: XGROUP CREATE failed: %s", reply->str);
        retry_later(srv);
        return;
    }
    if (!e->group_ready)
        CM_INFO("events: consumer group %s on %s %s; consuming as %s", CM_EVENTS_GROUP,
                CM_KEY_EVENTS, busy ? "exists" : "created", srv->id);
    e->group_ready = true;
    wk_events_pump(srv);
}

static void group_create(struct wk_server *srv)
{
    const char *argv[] = {"XGROUP", "CREATE", CM_KEY_EVENTS, CM_EVENTS_GROUP, "0", "MKSTREAM"};
    if (srv->ev.group_creating || srv->stopping)
        return;
    if (wk_redis_commandv(&srv->cmd, group_cb, NULL, 6, argv) == 0)
        srv->ev.group_creating = true;
}

/* ---- reading ------------------------------------------------------------- */

static void read_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    srv->ev.reading = false;
    if (is_nogroup(reply)) {
        group_lost(srv);
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        CM_WARN("events: XREADGROUP failed: %s", reply->str);
        retry_later(srv);
    } else if (reply && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *stream = reply->element[i];
            if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2)
                entries_apply(srv, stream->element[1]);
        }
    }
    /* A NULL reply means the events connection went away; it pumps again
     * when it is back. A nil reply is a BLOCK timeout. */
    if (reply && reply->type != REDIS_REPLY_ERROR)
        wk_events_pump(srv);
    wk_server_check_drained(srv);
}

void wk_events_pump(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    char count[16], block[16];
    if (srv->stopping || e->reading || !e->group_ready || !srv->cmd.ready || !srv->events.ready)
        return;
    if (e->inflight > WK_INFLIGHT_MAX - WK_READ_COUNT)
        return; /* op_free pumps again as work completes */
    snprintf(count, sizeof(count), "%d", WK_READ_COUNT);
    snprintf(block, sizeof(block), "%d", WK_READ_BLOCK_MS);
    const char *argv[] = {"XREADGROUP", "GROUP", CM_EVENTS_GROUP, srv->id,       "COUNT", count,
                          "BLOCK",      block,   "STREAMS",       CM_KEY_EVENTS, ">"};
    if (wk_redis_commandv(&srv->events, read_cb, NULL, 11, argv) == 0)
        e->reading = true;
}

/* ---- claiming and the pending count -------------------------------------- */

static void claim_send(struct wk_server *srv, const char *start);

static void claim_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_events_state *e = &srv->ev;
    e->claiming = false;
    if (is_nogroup(reply)) {
        group_lost(srv);
    } else if (wk_reply_kind(reply) != WK_REPLY_OK) {
        if (reply)
            CM_WARN("events: XAUTOCLAIM failed: %s", wk_reply_error(reply));
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
               reply->element[0]->type == REDIS_REPLY_STRING &&
               reply->element[1]->type == REDIS_REPLY_ARRAY) {
        /* Redis 7 answers {next, entries, deleted ids}; 6.2 has no third. */
        const redisReply *entries = reply->element[1];
        if (entries->elements > 0) {
            CM_INFO("events: claimed %zu entries idle for more than %lld ms", entries->elements,
                    srv->cfg.claim_idle_ms);
            srv->m.events_claimed += entries->elements;
            entries_apply(srv, entries);
        }
        /* A full batch may have more behind it. */
        if (entries->elements == WK_CLAIM_COUNT && strcmp(reply->element[0]->str, "0-0") != 0)
            claim_send(srv, reply->element[0]->str);
    }
    wk_server_check_drained(srv);
}

static void claim_send(struct wk_server *srv, const char *start)
{
    struct wk_events_state *e = &srv->ev;
    char idle[24], count[16];
    if (srv->stopping || e->claiming || !e->group_ready ||
        e->inflight > WK_INFLIGHT_MAX - WK_CLAIM_COUNT)
        return;
    snprintf(idle, sizeof(idle), "%lld", srv->cfg.claim_idle_ms);
    snprintf(count, sizeof(count), "%d", WK_CLAIM_COUNT);
    const char *argv[] = {"XAUTOCLAIM", CM_KEY_EVENTS, CM_EVENTS_GROUP, srv->id,
                          idle,         start,         "COUNT",         count};
    if (wk_redis_commandv(&srv->cmd, claim_cb, NULL, 8, argv) == 0)
        e->claiming = true;
}

static void pending_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    srv->ev.pending_busy = false;
    if (is_nogroup(reply))
        group_lost(srv);
    else if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
             reply->element[0]->type == REDIS_REPLY_INTEGER)
        srv->m.pending = reply->element[0]->integer;
}

void wk_events_sweep(struct wk_server *srv)
{
    const char *argv[] = {"XPENDING", CM_KEY_EVENTS, CM_EVENTS_GROUP};
    if (srv->stopping || !srv->cmd.ready)
        return;
    if (!srv->ev.group_ready) {
        group_create(srv);
        return;
    }
    if (!srv->ev.pending_busy && wk_redis_commandv(&srv->cmd, pending_cb, NULL, 3, argv) == 0)
        srv->ev.pending_busy = true;
    claim_send(srv, "0-0");
}

/* ---- life cycle ---------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wk_server *srv = arg;
    if (!srv->ev.group_ready)
        group_create(srv);
    wk_events_pump(srv);
}

int wk_events_init(struct wk_server *srv)
{
    srv->ev.retry = evtimer_new(srv->base, retry_cb, srv);
    return srv->ev.retry ? 0 : -1;
}

void wk_events_close(struct wk_server *srv)
{
    if (srv->ev.retry)
        event_free(srv->ev.retry);
    srv->ev.retry = NULL;
}

void wk_events_cmd_ready(struct wk_server *srv)
{
    /* Checked after every reconnect: Redis may have restarted empty. */
    group_create(srv);
}

void wk_events_cmd_down(struct wk_server *srv)
{
    srv->ev.group_ready = false;
}

void wk_events_conn_ready(struct wk_server *srv)
{
    wk_events_pump(srv);
}

static void unblock_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
}

void wk_events_stop(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    char id[24];
    if (!e->reading || srv->events.client_id < 0 || e->unblock_sent)
        return;
    /* The blocked XREADGROUP returns at once, as if its BLOCK had ended. */
    snprintf(id, sizeof(id), "%lld", srv->events.client_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    if (wk_redis_commandv(&srv->cmd, unblock_cb, NULL, 3, argv) == 0)
        e->unblock_sent = true;
}

bool wk_events_idle(const struct wk_server *srv)
{
    const struct wk_events_state *e = &srv->ev;
    return !e->reading && !e->claiming && e->inflight == 0;
}
