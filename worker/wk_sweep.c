/*
 * The periodic sweep (every --sweep-ms) and gateway liveness.
 *
 * Each tick: the pending count and XAUTOCLAIM
 * (wk_events.c); gateway liveness (here); one retention step
 * (wk_retention.c); and now and then the pruning of idle consumers.
 *
 * Gateway liveness: gateways ZADD chat:gateways <now_ms> <id> every second
 * (under one hash tag in a cluster, spelled by the store). claim_gateways.lua
 * moves every gateway silent past --gateway-timeout-ms to
 * chat:gateways:dead, atomically, so exactly one worker claims it,
 * except in the grace that follows a stall of Redis (no sweep for longer
 * than stall_ms()): then every heartbeat is stale, not every gateway. The
 * claimer reads the gateway's registry chat:gw:<id>:sessions, runs the
 * leave script with reason gateway_lost for each membership in it, and when
 * all have succeeded ends the cleanup (wk_store_finish_gateway), which
 * deletes the registry and the claim. A claimer that dies midway leaves the claim behind; after
 * WK_RECLAIM_MS another worker takes it over and runs the same idempotent
 * cleanup again.
 */
#include "cm_log.h"
#include "cm_util.h"
#include "wk_server.h"

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void finish_cb(void *priv, const struct wk_store_result *res, bool back)
{
    struct wk_gw_cleanup *cl = priv;
    if (res->status != WK_STORE_OK)
        CM_WARN("gateway %s: could not finish the cleanup (%s); it will be retried", cl->id,
                res->error);
    else if (back)
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
    if (cl->failed) {
        CM_WARN("gateway %s: cleanup incomplete; another sweep retries it in %d s", cl->id,
                WK_RECLAIM_MS / 1000);
        cleanup_free(cl);
        return;
    }
    if (wk_store_finish_gateway(cl->srv->store, cl->id, finish_cb, cl) != 0)
        cleanup_free(cl);
}

static void cleanup_step_done(struct wk_gw_cleanup *cl)
{
    if (--cl->pending == 0)
        cleanup_finish(cl);
}

static void cleanup_leave_cb(void *priv, const struct wk_store_result *res, bool removed)
{
    struct wk_gw_cleanup *cl = priv;
    if (removed)
        cl->removed++;
    if (res->status == WK_STORE_LOST || res->transient)
        cl->failed = true;
    if (res->status == WK_STORE_REFUSED)
        CM_WARN("gateway %s: leave script failed: %s", cl->id, res->error);
    cleanup_step_done(cl);
}

/* One registry entry: a membership the dead gateway held. */
static void cleanup_session(struct wk_gw_cleanup *cl, const struct wk_store_session *s)
{
    cl->sessions++;
    if (!s->room) {
        CM_WARN("gateway %s: skipping an unreadable registry entry %s", cl->id, s->field);
        return;
    }
    cl->pending++;
    if (wk_store_leave(cl->srv->store, s->room, s->nickname, s->mid, "gateway_lost",
                       cleanup_leave_cb, cl) != 0) {
        cl->failed = true;
        cl->pending--;
    }
}

static void registry_cb(void *priv, const struct wk_store_result *res,
                        const struct wk_store_sessions *sessions)
{
    struct wk_gw_cleanup *cl = priv;
    if (res->status != WK_STORE_OK) {
        if (res->status != WK_STORE_LOST)
            CM_WARN("gateway %s: cannot read its registry: %s", cl->id, res->error);
        cl->failed = true;
        cleanup_finish(cl);
        return;
    }
    cl->pending = 1; /* held while sending, so no callback finishes early */
    for (size_t i = 0; i < sessions->n; i++)
        cleanup_session(cl, &sessions->s[i]);
    cleanup_step_done(cl);
}

static void cleanup_start(struct wk_server *srv, const char *id)
{
    struct wk_gw_cleanup *cl = cm_calloc(1, sizeof(*cl));
    cl->srv = srv;
    snprintf(cl->id, sizeof(cl->id), "%s", id);
    srv->sw.cleanups++;
    if (wk_store_registry_read(srv->store, cl->id, registry_cb, cl) != 0)
        cleanup_free(cl);
}

static void claim_cb(void *priv, const struct wk_store_result *res,
                     const struct wk_store_claimed *c)
{
    struct wk_server *srv = priv;
    srv->sw.claiming = false;
    if (res->status != WK_STORE_OK) {
        if (res->status != WK_STORE_LOST)
            CM_WARN("gateways: claim script failed: %s", res->error);
        wk_server_check_drained(srv);
        return;
    }
    if (c->stall_ms > 0) {
        srv->m.stall_graces++;
        CM_WARN("gateways: no sweep ran for %lld ms (Redis stalled or unreachable, or no "
                "worker running); no gateway is declared dead for the next %lld ms",
                c->stall_ms, srv->cfg.gateway_timeout_ms);
    }
    for (size_t i = 0; i < c->n; i++) {
        const char *id = c->gw[i].id;
        if (c->gw[i].dead) {
            srv->m.gateways_dead++;
            CM_INFO("gateway %s: declared dead (no heartbeat for %lld ms); removing its sessions",
                    id, srv->cfg.gateway_timeout_ms);
        } else {
            CM_INFO("gateway %s: taking over an unfinished cleanup", id);
        }
        cleanup_start(srv, id);
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
    if (srv->sw.claiming)
        return;
    if (wk_store_claim_gateways(srv->store, srv->cfg.gateway_timeout_ms, WK_RECLAIM_MS,
                                WK_CLAIM_MAX, stall_ms(srv), claim_cb, srv) == 0)
        srv->sw.claiming = true;
}

/* ---- idle consumers ------------------------------------------------------ */

/* One pruning pass over every partition's group. */
struct wk_prune {
    struct wk_server *srv;
    void (*done)(struct wk_server *srv); /* shutdown continuation, or NULL */
    int owed;                            /* answers still owed, +1 while sending */
    long long removed;
};

static void prune_release(struct wk_prune *p)
{
    if (--p->owed > 0)
        return;
    struct wk_server *srv = p->srv;
    srv->sw.pruning = false;
    if (p->removed > 0)
        CM_INFO("events: removed %lld idle consumers without pending entries", p->removed);
    if (p->done)
        p->done(srv);
    free(p);
}

static void prune_cb(void *priv, const struct wk_store_result *res, long long removed)
{
    struct wk_prune *p = priv;
    if (res->status == WK_STORE_OK)
        p->removed += removed;
    else if (res->status == WK_STORE_REFUSED)
        CM_DEBUG("events: pruning consumers: %s", res->error);
    prune_release(p);
}

/* Removes idle consumers; self also removes this worker's own consumer
 * (if it holds nothing). Returns 0 if any was sent: done then runs once
 * they have all answered. */
static int prune_send(struct wk_server *srv, bool self, void (*done)(struct wk_server *))
{
    struct wk_prune *p = cm_calloc(1, sizeof(*p));
    p->srv = srv;
    p->owed = 1;
    for (int i = 0; i < wk_store_partitions(srv->store); i++)
        if (wk_store_prune_consumers(srv->store, i, WK_PRUNE_IDLE_MS, self, prune_cb, p) == 0)
            p->owed++;
    if (p->owed == 1) {
        free(p);
        return -1;
    }
    p->done = done;
    srv->sw.pruning = true;
    prune_release(p);
    return 0;
}

void wk_sweep_leave_group(struct wk_server *srv, void (*fn)(struct wk_server *))
{
    if (srv->sw.pruning || prune_send(srv, true, fn) != 0)
        fn(srv);
}

/* ---- the tick ------------------------------------------------------------ */

static void sweep_tick(evutil_socket_t fd, short what, void *arg)
{
    struct wk_server *srv = arg;
    if (srv->stopping || !wk_store_sweep_ready(srv->store))
        return;
    srv->m.sweeps++;
    wk_events_sweep(srv);
    sweep_gateways(srv);
    wk_retention_sweep(srv);
    int64_t now = cm_mono_ms();
    if (!srv->sw.pruning && now - srv->sw.last_prune_ms >= WK_PRUNE_EVERY_MS) {
        srv->sw.last_prune_ms = now;
        prune_send(srv, false, NULL);
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
