/*
 * The worker's one context, struct wk_server: owned by main, passed to
 * every module explicitly. It holds the configuration, the libevent loop,
 * the store (and through it the Redis links), each module's small state
 * and the metrics.
 *
 * Modules, one file each; calls go down, and the store reports links up
 * and down through hooks that wk_server.c registers:
 *   wk_server.c     life cycle: start, signals, draining, teardown
 *   wk_events.c     the consumer group on chat:events: read, claim, ack
 *   wk_sweep.c      the periodic tick and gateway liveness
 *   wk_retention.c  history retention by age, expiry of idle rooms
 *   wk_http.c       /healthz, /readyz, /metrics
 *   wk_store.c      every key, command and script argument, and reply
 *                   shape; the two Redis links (wk_store.h)
 *   wk_loop.c       common/cm_link on libevent: hiredis adapter, timers
 *                   (wk_loop.h)
 * The Redis link itself (connect, backoff, watchdog, script cache) is
 * common/cm_link, shared with the gateway.
 */
#ifndef WK_SERVER_H
#define WK_SERVER_H

#include "cm_redis_url.h"
#include "wk_store.h"

#include <stdbool.h>
#include <stdint.h>

struct cm_link_loop;
struct event_base;
struct event;
struct evhttp;

#define WK_READ_COUNT 100     /* entries per XREADGROUP */
#define WK_READ_BLOCK_MS 2000 /* how long one XREADGROUP blocks */
#define WK_CLAIM_COUNT 100    /* entries per XAUTOCLAIM */
#define WK_INFLIGHT_MAX 1000  /* entries being applied at once; reading pauses above */
#define WK_DRAIN_MS 3000      /* how long shutdown waits for in-flight work */

/* Values from flags and CHAT_* variables (main.c holds the table). */
struct wk_config {
    const char *redis;
    const char *id;     /* NULL until main fills in a random default */
    const char *listen; /* "" for no HTTP server */
    const char *log_level;
    long long history_ttl_s;
    long long gateway_timeout_ms;
    long long claim_idle_ms;
    long long sweep_ms;
};

/* Counters for /metrics; plain integers, the process is single-threaded. */
struct wk_metrics {
    unsigned long long events_join;    /* join events acknowledged */
    unsigned long long events_leave;   /* leave events applied and acknowledged */
    unsigned long long events_invalid; /* malformed entries acknowledged unapplied */
    unsigned long long events_dropped; /* entries whose effect failed for good */
    unsigned long long events_claimed; /* entries taken over with XAUTOCLAIM */
    long long pending;                 /* XPENDING count at the last sweep */
    unsigned long long sweeps;
    unsigned long long gateways_dead; /* gateways this worker declared dead */
    unsigned long long stall_graces;  /* sweep gaps that opened a grace (claim_gateways.lua) */
    unsigned long long rooms_expired;
    unsigned long long history_trimmed; /* history entries removed by age */
    long long lag_ms;                   /* now - time of the last acknowledged entry */
};

/* Consumer-group state (wk_events.c). */
struct wk_events_state {
    bool group_ready;    /* the group is known to exist */
    bool group_creating; /* XGROUP CREATE outstanding */
    bool reading;        /* XREADGROUP outstanding */
    bool claiming;       /* XAUTOCLAIM outstanding */
    bool pending_busy;   /* XPENDING outstanding */
    bool unblock_sent;   /* CLIENT UNBLOCK sent at shutdown */
    int inflight;        /* entries being applied */
    struct event *retry; /* re-read after an error reply */
};

/* Gateway liveness state (wk_sweep.c). */
struct wk_sweep_state {
    bool claiming;         /* the claim script is outstanding */
    bool pruning;          /* consumer pruning outstanding */
    int cleanups;          /* dead gateways being cleaned up */
    int64_t last_prune_ms; /* monotonic time of the last consumer pruning */
};

/* Retention state (wk_retention.c). */
struct wk_retention_state {
    char cursor[32]; /* where the next SCAN step starts (the store's); "" starts a pass */
    bool scanning;   /* SCAN outstanding */
    int pending;     /* retention scripts outstanding */
};

struct wk_server {
    struct wk_config cfg;
    struct cm_redis_url url;
    char id[WK_ID_MAX + 1]; /* this worker's consumer name */
    struct event_base *base;
    struct cm_link_loop *loop; /* base, for the Redis links (wk_loop.h) */
    struct wk_store *store;    /* everything in Redis */
    struct event *sig_term, *sig_int;
    struct event *sweep_timer;
    struct event *drain_timer;
    struct evhttp *http; /* NULL without --listen */
    bool stopping;       /* SIGTERM/SIGINT seen: no new work */
    bool finishing;      /* drained: the loop is exiting */
    struct wk_events_state ev;
    struct wk_sweep_state sw;
    struct wk_retention_state rt;
    struct wk_metrics m;
};

/* wk_server.c */
/* Sets everything up from srv->cfg (already parsed). Returns 0, or -1 after
 * logging why; wk_server_free must be called in both cases. */
int wk_server_init(struct wk_server *srv);
/* Runs the loop until shutdown; returns the process exit code. */
int wk_server_run(struct wk_server *srv);
/* Frees everything wk_server_init made; safe on a partly initialised srv. */
void wk_server_free(struct wk_server *srv);
/* Ends the loop if shutdown was asked for and nothing is in flight. Call
 * after any piece of work completes. */
void wk_server_check_drained(struct wk_server *srv);
/* Both Redis links are up and the consumer group exists. */
bool wk_server_ready(const struct wk_server *srv);

/* wk_events.c */
int wk_events_init(struct wk_server *srv);
void wk_events_close(struct wk_server *srv);
/* The store's links coming up or going down (wk_server.c relays its hooks). */
void wk_events_cmd_ready(struct wk_server *srv);
void wk_events_cmd_down(struct wk_server *srv);
void wk_events_conn_ready(struct wk_server *srv);
/* Issues the next XREADGROUP if everything allows it. */
void wk_events_pump(struct wk_server *srv);
/* Per tick: refreshes the pending count and claims idle entries. */
void wk_events_sweep(struct wk_server *srv);
/* Shutdown: unblocks the outstanding read so that draining is quick. */
void wk_events_stop(struct wk_server *srv);
/* Nothing read, being applied, or being claimed. */
bool wk_events_idle(const struct wk_server *srv);

/* wk_sweep.c */
int wk_sweep_init(struct wk_server *srv);
void wk_sweep_close(struct wk_server *srv);
/* Shutdown: the last chance to leave the group tidily; fn(srv) runs when
 * done (at once if there is nothing to do). */
void wk_sweep_leave_group(struct wk_server *srv, void (*fn)(struct wk_server *));
bool wk_sweep_idle(const struct wk_server *srv);

/* wk_retention.c */
/* Per tick: one SCAN step over room meta keys, and the age rules on each. */
void wk_retention_sweep(struct wk_server *srv);
bool wk_retention_idle(const struct wk_server *srv);

/* wk_http.c */
/* Binds --listen (if set). Returns 0, or -1 after logging why. */
int wk_http_init(struct wk_server *srv);
void wk_http_close(struct wk_server *srv);

#endif
