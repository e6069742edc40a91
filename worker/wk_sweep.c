/*
 * The periodic sweep (every --sweep-ms) and gateway liveness.
 *
 * Each tick: the Redis watchdog; the pending count and XAUTOCLAIM
 * (wk_events.c); gateway liveness (here); one retention step
 * (wk_retention.c); and now and then the pruning of idle consumers.
 *
 * Gateway liveness: gateways ZADD chat:gateways <now_ms> <id> every second.
 * claim_gateways.lua moves every gateway silent past --gateway-timeout-ms
 * to chat:gateways:dead, atomically, so exactly one worker claims it,
 * except in the grace that follows a stall of Redis (no sweep for longer
 * than stall_ms()): then every heartbeat is stale, not every gateway. The
 * claimer reads the gateway's registry chat:gw:<id>:sessions, runs the
 * leave script with reason gateway_lost for each membership in it, and when
 * all have succeeded runs finish_gateway.lua, which deletes the registry
 * and the claim. A claimer that dies midway leaves the claim behind; after
 * WK_RECLAIM_MS another worker takes it over and runs the same idempotent
 * cleanup again.
 */
#include "cm_keys.h"
#include "cm_log.h"
#include "cm_proto.h"
#include "cm_util.h"
#include "wk_server.h"

#include <cjson/cJSON.h>
#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_KEY_GATEWAYS_DEAD "chat:gateways:dead" /* zset: gateway id -> claim time ms */
#define WK_KEY_GATEWAYS_SWEEP "chat:gateways:sweep" /* hash: last_ms, grace_until_ms */
#define WK_RECLAIM_MS 30000      /* an unfinished cleanup older than this is taken over */
#define WK_CLAIM_MAX 16          /* gateways claimed per tick */
#define WK_PRUNE_EVERY_MS 60000  /* how often idle consumers are pruned */
#define WK_PRUNE_IDLE_MS 3600000 /* consumers idle this long with nothing pending go */

/* The cleanup of one dead gateway. */
struct wk_gw_cleanup {
    struct wk_server *srv;
    char id[WK_ID_MAX + 1];
    int pending;  /* leave scripts outstanding (+1 while they are being sent) */
    int sessions; /* memberships found in the registry */
    int removed;  /* of which still owned their nickname and were removed */
    bool failed;  /* some leave may not have happened: keep the claim */
};

static void cleanup_free(struct wk_gw_cleanup *cl)
{
    struct wk_server *srv = cl->srv;
    srv->sw.cleanups--;
    free(cl);
    wk_server_check_drained(srv);
}

static void finish_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_gw_cleanup *cl = priv;
    if (wk_reply_kind(reply) != WK_REPLY_OK)
        CM_WARN("gateway %s: could not finish the cleanup (%s); it will be retried", cl->id,
                wk_reply_error(reply));
    else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0)
        CM_INFO("gateway %s: cleaned up (%d sessions, %d members removed); it is back and "
                "keeps its registry",
                cl->id, cl->sessions, cl->removed);
    else
        CM_INFO("gateway %s: cleaned up (%d sessions, %d members removed)", cl->id, cl->sessions,
                cl->removed);
    cleanup_free(cl);
}

static void cleanup_finish(struct wk_gw_cleanup *cl)
{
    struct wk_server *srv = cl->srv;
    char key[CM_KEY_MAX];
    size_t klen = cm_key_gw_sessions(key, cl->id);
    const char *argv[] = {CM_KEY_GATEWAYS, WK_KEY_GATEWAYS_DEAD, key, cl->id};
    const size_t lens[] = {strlen(argv[0]), strlen(argv[1]), klen, strlen(cl->id)};

    if (cl->failed) {
        CM_WARN("gateway %s: cleanup incomplete; another sweep retries it in %d s", cl->id,
                WK_RECLAIM_MS / 1000);
        cleanup_free(cl);
        return;
    }
    if (wk_redis_script(&srv->cmd, CM_SCRIPT_FINISH_GATEWAY, 3, 4, argv, lens, finish_cb, cl) != 0)
        cleanup_free(cl);
}

static void cleanup_step_done(struct wk_gw_cleanup *cl)
{
    if (--cl->pending == 0)
        cleanup_finish(cl);
}

static void cleanup_leave_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_gw_cleanup *cl = priv;
    enum wk_reply_kind kind = wk_reply_kind(reply);
    if (kind == WK_REPLY_OK && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        cl->removed++;
    if (kind == WK_REPLY_LOST || kind == WK_REPLY_TRANSIENT)
        cl->failed = true;
    if (kind == WK_REPLY_TRANSIENT || kind == WK_REPLY_FATAL)
        CM_WARN("gateway %s: leave script failed: %s", cl->id, wk_reply_error(reply));
    cleanup_step_done(cl);
}

/* One registry entry: field = mid, value = {"room","nickname","mid","session"}. */
static void cleanup_session(struct wk_gw_cleanup *cl, const redisReply *field,
                            const redisReply *value)
{
    cJSON *json = cJSON_ParseWithLength(value->str, value->len);
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(json, "room");
    const cJSON *nick = cJSON_GetObjectItemCaseSensitive(json, "nickname");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(json, "mid");
    const char *mid_s = cJSON_IsString(mid) ? mid->valuestring : field->str;

    cl->sessions++;
    if (!cJSON_IsString(room) || !cJSON_IsString(nick) ||
        !cm_room_valid(room->valuestring, strlen(room->valuestring))) {
        CM_WARN("gateway %s: skipping an unreadable registry entry %s", cl->id, field->str);
        goto out;
    }
    cl->pending++;
    if (wk_presence_leave(cl->srv, room->valuestring, nick->valuestring, mid_s, "gateway_lost",
                          cleanup_leave_cb, cl) != 0) {
        cl->failed = true;
        cl->pending--;
    }
out:
    cJSON_Delete(json);
}

static void registry_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_gw_cleanup *cl = priv;
    if (wk_reply_kind(reply) != WK_REPLY_OK || reply->type != REDIS_REPLY_ARRAY) {
        if (reply)
            CM_WARN("gateway %s: cannot read its registry: %s", cl->id, wk_reply_error(reply));
        cl->failed = true;
        cleanup_finish(cl);
        return;
    }
    cl->pending = 1; /* held while sending, so no callback finishes early */
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
            cleanup_session(cl, f, v);
    }
    cleanup_step_done(cl);
}

static void cleanup_start(struct wk_server *srv, const char *id)
{
    char key[CM_KEY_MAX];
    struct wk_gw_cleanup *cl = cm_calloc(1, sizeof(*cl));
    cl->srv = srv;
    snprintf(cl->id, sizeof(cl->id), "%s", id);
    srv->sw.cleanups++;
    cm_key_gw_sessions(key, cl->id);
    const char *argv[] = {"HGETALL", key};
    if (wk_redis_commandv(&srv->cmd, registry_cb, cl, 2, argv) != 0)
        cleanup_free(cl);
}

static void claim_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    srv->sw.claiming = false;
    if (wk_reply_kind(reply) != WK_REPLY_OK || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements == 0 || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        if (reply)
            CM_WARN("gateways: claim script failed: %s", wk_reply_error(reply));
        wk_server_check_drained(srv);
        return;
    }
    if (reply->element[0]->integer > 0) {
        srv->m.stall_graces++;
        CM_WARN("gateways: no sweep ran for %lld ms (Redis stalled or unreachable, or no "
                "worker running); no gateway is declared dead for the next %lld ms",
                reply->element[0]->integer, srv->cfg.gateway_timeout_ms);
    }
    for (size_t i = 1; i + 1 < reply->elements; i += 2) {
        const redisReply *id = reply->element[i], *kind = reply->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || id->len > WK_ID_MAX ||
            kind->type != REDIS_REPLY_INTEGER)
            continue;
        if (kind->integer == 1) {
            srv->m.gateways_dead++;
            CM_INFO("gateway %s: declared dead (no heartbeat for %lld ms); removing its sessions",
                    id->str, srv->cfg.gateway_timeout_ms);
        } else {
            CM_INFO("gateway %s: taking over an unfinished cleanup", id->str);
        }
        cleanup_start(srv, id->str);
    }
    wk_server_check_drained(srv);
}

/* How long without any sweep means a stall: half the heartbeat timeout (a
 * shorter stall leaves the heartbeats young enough), and never within a
 * few sweep intervals, so one worker's own rhythm is not taken for one. */
static long long stall_ms(const struct wk_server *srv)
{
    long long half = srv->cfg.gateway_timeout_ms / 2, sweeps = 3 * srv->cfg.sweep_ms;
    return half > sweeps ? half : sweeps;
}

static void sweep_gateways(struct wk_server *srv)
{
    char timeout[24], reclaim[24], max[16], stall[24];
    if (srv->sw.claiming)
        return;
    snprintf(timeout, sizeof(timeout), "%lld", srv->cfg.gateway_timeout_ms);
    snprintf(reclaim, sizeof(reclaim), "%d", WK_RECLAIM_MS);
    snprintf(max, sizeof(max), "%d", WK_CLAIM_MAX);
    snprintf(stall, sizeof(stall), "%lld", stall_ms(srv));
    const char *argv[] = {CM_KEY_GATEWAYS, WK_KEY_GATEWAYS_DEAD, WK_KEY_GATEWAYS_SWEEP,
                          timeout, reclaim, max, stall};
    size_t lens[CM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < CM_ARRAY_LEN(argv); i++)
        lens[i] = strlen(argv[i]);
    if (wk_redis_script(&srv->cmd, CM_SCRIPT_CLAIM_GATEWAYS, 3, (int)CM_ARRAY_LEN(argv), argv,
                        lens, claim_cb, NULL) == 0)
        srv->sw.claiming = true;
}

/* ---- idle consumers ------------------------------------------------------ */

struct wk_prune {
    void (*done)(struct wk_server *srv); /* shutdown continuation, or NULL */
};

static void prune_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_prune *p = priv;
    srv->sw.pruning = false;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        CM_INFO("events: removed %lld idle consumers without pending entries", reply->integer);
    else if (reply && reply->type == REDIS_REPLY_ERROR)
        CM_DEBUG("events: pruning consumers: %s", reply->str);
    if (p->done)
        p->done(srv);
    free(p);
}

/* Removes idle consumers; self non-NULL removes this worker's own consumer
 * too (if it holds nothing). Returns 0 if sent. */
static int prune_send(struct wk_server *srv, const char *self, void (*done)(struct wk_server *))
{
    char idle[24];
    struct wk_prune *p = cm_calloc(1, sizeof(*p));
    p->done = done;
    snprintf(idle, sizeof(idle), "%d", WK_PRUNE_IDLE_MS);
    const char *argv[] = {CM_KEY_EVENTS, CM_EVENTS_GROUP, idle, self ? self : ""};
    const size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(idle), strlen(argv[3])};
    if (wk_redis_script(&srv->cmd, CM_SCRIPT_PRUNE_CONSUMERS, 1, 4, argv, lens, prune_cb, p) != 0) {
        free(p);
        return -1;
    }
    srv->sw.pruning = true;
    return 0;
}

void wk_sweep_leave_group(struct wk_server *srv, void (*fn)(struct wk_server *))
{
    if (srv->sw.pruning || prune_send(srv, srv->id, fn) != 0)
        fn(srv);
}

/* ---- the tick ------------------------------------------------------------ */

static void sweep_tick(evutil_socket_t fd, short what, void *arg)
{
    struct wk_server *srv = arg;
    wk_redis_watchdog(srv);
    if (srv->stopping || !srv->cmd.ready)
        return;
    srv->m.sweeps++;
    wk_events_sweep(srv);
    sweep_gateways(srv);
    wk_retention_sweep(srv);
    int64_t now = cm_mono_ms();
    if (!srv->sw.pruning && now - srv->sw.last_prune_ms >= WK_PRUNE_EVERY_MS) {
        srv->sw.last_prune_ms = now;
        prune_send(srv, NULL, NULL);
    }
}

int wk_sweep_init(struct wk_server *srv)
{
    struct timeval tv = {(time_t)(srv->cfg.sweep_ms / 1000),
                         (suseconds_t)(srv->cfg.sweep_ms % 1000) * 1000};
    srv->sw.last_prune_ms = cm_mono_ms();
    srv->sweep_timer = event_new(srv->base, -1, EV_PERSIST, sweep_tick, srv);
    if (!srv->sweep_timer || event_add(srv->sweep_timer, &tv) != 0)
        return -1;
    return 0;
}

void wk_sweep_close(struct wk_server *srv)
{
    if (srv->sweep_timer)
        event_free(srv->sweep_timer);
    srv->sweep_timer = NULL;
}

bool wk_sweep_idle(const struct wk_server *srv)
{
    return !srv->sw.claiming && srv->sw.cleanups == 0;
}
