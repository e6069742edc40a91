/*
 * The worker's life cycle: set-up, the loop, signals, draining, teardown.
 *
 * Shutdown (SIGTERM or SIGINT): no new reads, claims or sweeps; a blocked
 * XREADGROUP (one Redis) is released with CLIENT UNBLOCK, and a cluster's
 * reads, which do not block, end by themselves; entries already read are
 * applied and acknowledged; the worker removes its own consumer from the
 * group if it holds nothing pending; then the loop ends and everything is
 * freed. Draining is bounded by WK_DRAIN_MS: what is unfinished by then
 * stays pending in the group and another worker claims it. A second signal
 * ends the loop at once.
 */
#include "cm_log.h"
#include "cm_util.h"
#include "wk_loop.h"
#include "wk_server.h"

#include <event2/event.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

bool wk_server_ready(const struct wk_server *srv)
{
    return srv->store && wk_store_ready(srv->store) && wk_events_groups_ready(srv);
}

static void loop_finish(struct wk_server *srv)
{
    event_base_loopexit(srv->base, NULL);
}

void wk_server_check_drained(struct wk_server *srv)
{
    if (!srv->stopping || srv->finishing)
        return;
    if (!wk_events_idle(srv) || !wk_sweep_idle(srv) || !wk_retention_idle(srv))
        return;
    srv->finishing = true;
    CM_DEBUG("shutdown: drained");
    wk_sweep_leave_group(srv, loop_finish);
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wk_server *srv = arg;
    if (srv->finishing)
        return;
    srv->finishing = true;
    CM_WARN("shutdown: work still in flight after %d ms (%d entries); other workers will claim "
            "what was not acknowledged",
            WK_DRAIN_MS, srv->ev.inflight);
    loop_finish(srv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct wk_server *srv = arg;
    struct timeval tv = {WK_DRAIN_MS / 1000, (suseconds_t)(WK_DRAIN_MS % 1000) * 1000};

    if (srv->stopping) {
        CM_WARN("shutdown: second signal, exiting now");
        srv->finishing = true;
        event_base_loopbreak(srv->base);
        return;
    }
    CM_INFO("worker %s: %s, shutting down", srv->id, strsignal((int)sig));
    srv->stopping = true;
    wk_events_stop(srv);
    evtimer_add(srv->drain_timer, &tv);
    wk_server_check_drained(srv);
}

static void commands_ready(void *owner)
{
    wk_events_cmd_ready(owner);
}

static void commands_lost(void *owner)
{
    wk_events_cmd_down(owner);
}

static void events_ready(void *owner)
{
    wk_events_conn_ready(owner);
}

static int signals_init(struct wk_server *srv)
{
    srv->sig_term = evsignal_new(srv->base, SIGTERM, signal_cb, srv);
    srv->sig_int = evsignal_new(srv->base, SIGINT, signal_cb, srv);
    srv->drain_timer = evtimer_new(srv->base, drain_timeout_cb, srv);
    if (!srv->sig_term || !srv->sig_int || !srv->drain_timer ||
        event_add(srv->sig_term, NULL) != 0 || event_add(srv->sig_int, NULL) != 0)
        return -1;
    return 0;
}

int wk_server_init(struct wk_server *srv)
{
    srv->base = event_base_new();
    if (!srv->base || signals_init(srv) != 0) {
        CM_ERROR("cannot set up the event loop");
        return -1;
    }
    srv->loop = wk_loop_new(srv->base);
    srv->store =
        wk_store_new(&(struct wk_store_config){.seeds = srv->redis.seeds,
                                               .nseeds = srv->redis.nseeds,
                                               .cluster = srv->redis.cluster,
                                               .partitions = (int)srv->cfg.event_partitions,
                                               .consumer = srv->id,
                                               .read_block_ms = WK_READ_BLOCK_MS},
                     srv->loop,
                     &(struct wk_store_hooks){.owner = srv,
                                              .commands_ready = commands_ready,
                                              .commands_lost = commands_lost,
                                              .events_ready = events_ready});
    if (wk_events_init(srv) != 0 || wk_sweep_init(srv) != 0) {
        CM_ERROR("cannot set up the timers");
        return -1;
    }
    if (wk_http_init(srv) != 0)
        return -1;
    const struct cm_redis_url *u = &srv->redis.seeds[0];
    CM_INFO("worker %s: starting (%s %s:%d db %d, %d event partitions, sweep %lld ms, gateway "
            "timeout %lld ms, claim idle %lld ms, history ttl %lld s)",
            srv->id, srv->redis.cluster ? "redis cluster seed" : "redis", u->host, u->port, u->db,
            wk_store_partitions(srv->store), srv->cfg.sweep_ms, srv->cfg.gateway_timeout_ms,
            srv->cfg.claim_idle_ms, srv->cfg.history_ttl_s);
    wk_store_start(srv->store);
    return 0;
}

int wk_server_run(struct wk_server *srv)
{
    if (event_base_dispatch(srv->base) < 0) {
        CM_ERROR("event loop failed");
        return 1;
    }
    CM_INFO("worker %s: stopped", srv->id);
    return 0;
}

static void event_free_maybe(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

void wk_server_free(struct wk_server *srv)
{
    /* No reconnects from here on; pending callbacks run with NULL replies
     * and free what they own. */
    srv->stopping = true;
    srv->finishing = true;
    wk_store_free(srv->store);
    srv->store = NULL;
    wk_loop_free(srv->loop);
    srv->loop = NULL;
    wk_http_close(srv);
    wk_sweep_close(srv);
    wk_events_close(srv);
    event_free_maybe(&srv->sig_term);
    event_free_maybe(&srv->sig_int);
    event_free_maybe(&srv->drain_timer);
    if (srv->base)
        event_base_free(srv->base);
    srv->base = NULL;
    libevent_global_shutdown();
}
