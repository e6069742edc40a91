/*
 * The worker's one context, struct wk_server: owned by main, passed to
 * every module explicitly. It holds the configuration, the libevent loop,
 * the store (and through it the Redis links), each module's small state
 * and the metrics.
 *
 * Modules, one file each; calls go down, and the store reports links up
 * and down through hooks that wk_server.c registers:
 *   wk_server.c     life cycle: start, signals, draining, teardown
 *   wk_events.c     the consumer groups on the events partitions: read,
 *                   claim, ack
 *   wk_sweep.c      the periodic tick and gateway liveness
 *   wk_retention.c  history retention by age, expiry of idle rooms
 *   wk_http.c       /healthz, /readyz, /metrics
 *   wk_store.c      every key, command and script argument, and reply
 *                   shape; the Redis router (wk_store.h)
 *   wk_loop.c       common/cm_link on libevent: hiredis adapter, timers
 *                   (wk_loop.h)
 * The Redis links themselves (connect, backoff, watchdog, script cache)
 * and the routing to a cluster's primaries are common/cm_link and
 * common/cm_router, shared with the gateway.
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
#define WK_READ_BLOCK_MS 2000 /* how long one XREADGROUP blocks, with one Redis */
#define WK_READ_IDLE_MS 50    /* a cluster: a partition's pause after a read that found nothing */
#define WK_CLAIM_COUNT 100    /* entries per XAUTOCLAIM */
#define WK_INFLIGHT_MAX 1000  /* entries being applied at once; reading pauses above */
#define WK_DRAIN_MS 3000      /* how long shutdown waits for in-flight work */

/* Values from flags and CHAT_* variables (main.c holds the table). */
struct wk_config {
    const char *redis;         /* NULL: not given */
    const char *redis_cluster; /* NULL: not given */
    long long event_partitions;
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

/* One events partition's consumer group (wk_events.c). */
struct wk_partition {
    struct wk_server *srv;
    int index;
    bool group_ready;    /* the group is known to exist */
    bool group_creating; /* XGROUP CREATE outstanding */
    bool reading;        /* XREADGROUP outstanding */
    bool claiming;       /* XAUTOCLAIM outstanding */
    bool pending_busy;   /* XPENDING outstanding */
    long long pending;   /* its XPENDING count at the last sweep */
    struct event *idle;  /* the pause after a read that found nothing */
};

/* Consumer-group state (wk_events.c). */
struct wk_events_state {
    struct wk_partition *parts; /* one per events partition */
    int nparts;
    int groups_ready;    /* partitions whose group is known to exist */
    int next;            /* the partition the next pump looks at first */
    int reads;           /* XREADGROUPs outstanding */
    int claims;          /* XAUTOCLAIMs outstanding */
    bool unblock_sent;   /* CLIENT UNBLOCK sent at shutdown */
    int inflight;        /* entries being applied */
    struct event *retry; /* re-read after an error reply */
};

/* Gateway liveness state (wk_sweep.c). */
struct wk_sweep_state {
    bool claiming;         /* the claim script is outstanding */
    bool pruning;          /* consumer pruning outstanding (on any partition) */
    int cleanups;          /* dead gateways being cleaned up */
    int64_t last_prune_ms; /* monotonic time of the last consumer pruning */
};

/* Retention state (wk_retention.c). */
struct wk_retention_state {
    size_t node;         /* the primary being scanned (SCAN is per node) */
    char node_name[300]; /* its name: a topology change restarts its pass */
    char cursor[32];     /* where the next SCAN step starts; "" starts a pass */
    bool scanning;       /* SCAN outstanding */
    int pending;         /* retention scripts outstanding */
};

struct wk_server {
    struct wk_config cfg;
    struct cm_redis_target redis; /* one Redis, or a cluster's seeds */
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
/* Every slot has a reachable primary and every consumer group exists. */
bool wk_server_ready(const struct wk_server *srv);

/* wk_events.c */
int wk_events_init(struct wk_server *srv);
void wk_events_close(struct wk_server *srv);
/* The store's links coming up or going down (wk_server.c relays its hooks). */
void wk_events_cmd_ready(struct wk_server *srv);
void wk_events_cmd_down(struct wk_server *srv);
void wk_events_conn_ready(struct wk_server *srv);
/* Sends the next read of every partition that may read now. */
void wk_events_pump(struct wk_server *srv);
/* Every partition's consumer group exists. */
bool wk_events_groups_ready(const struct wk_server *srv);
/* Per tick: refreshes the pending count and claims idle entries. */
void wk_events_sweep(struct wk_server *srv);
/* Shutdown: no more reads; a blocked read is released. */
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
