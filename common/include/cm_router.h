/*
 * Routes each command to the Redis that owns its key: one Redis, or the
 * primaries of a Redis Cluster. Both binaries' stores talk to Redis through
 * a router, in both modes, so that the code above it is the same.
 *
 * One Redis: the router holds one command link and, if asked, one pub/sub
 * link (common/cm_link), and passes everything through.
 *
 * Redis Cluster: the router learns the slot map from CLUSTER NODES, asked
 * of any node it can reach (the seeds first, then every node it has seen),
 * and keeps a command link and a pub/sub link per primary. It follows the
 * cluster specification:
 * - MOVED: the slot's owner changed; the map is updated, a refresh asked
 *   for, and the command sent again to the new owner;
 * - ASK: the slot is migrating; the command goes to the target, preceded by
 *   ASKING, and the map is left as it is;
 * - TRYAGAIN, CLUSTERDOWN and READONLY (a primary that became a replica):
 *   sent again with backoff, for a bounded time, then answered as lost;
 * - the map is refreshed on MOVED, on a lost link, on a subscription the
 *   cluster ended (a slot moved), and every few seconds.
 * Room channels are sharded (SSUBSCRIBE), each on the link of its slot's
 * owner, and moved when the owner changes.
 *
 * Ownership and callbacks follow cm_link: free the router outside its own
 * callbacks; replies are valid only during the callback.
 */
#ifndef CM_ROUTER_H
#define CM_ROUTER_H

#include "cm_keys.h"
#include "cm_link.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_router;

struct cm_router_hooks {
    /* Every slot has a primary whose command link is set up (and pub/sub
     * link, if asked for). reconnect: it was so before and a link came
     * back, which may be a Redis that restarted empty. */
    void (*ready)(void *owner, bool reconnect);
    /* A command link that was set up went down. */
    void (*lost)(void *owner);
    void (*message)(void *owner, const char *channel, size_t channel_len, const char *data,
                    size_t len);
    /* A channel asked for with cm_router_subscribe is confirmed (again):
     * messages published from now on arrive. */
    void (*subscribed)(void *owner, const char *channel, size_t channel_len);
    /* A confirmed channel is no longer held (its link dropped, or its slot
     * moved); messages may be missed until `subscribed` reports it again. */
    void (*unsubscribed)(void *owner, const char *channel, size_t channel_len);
};

struct cm_router_opts {
    const char *name; /* for logs (static) */
    /* One Redis (cluster false: seeds[0]), or a cluster's seed nodes; the
     * first seed with credentials gives them to every node. Copied. */
    const struct cm_redis_url *seeds;
    size_t nseeds;
    bool cluster;
    const struct cm_link_loop *loop;
    const struct cm_router_hooks *hooks;
    void *owner;
    const enum cm_script *scripts; /* loaded on every primary */
    size_t nscripts;
    int64_t timeout_ms;    /* see cm_link_opts */
    int64_t watch_ms;
    int64_t probe_ms;      /* command links */
    bool pubsub;           /* a pub/sub link per primary too */
    int64_t sub_probe_ms;  /* pub/sub links: the PUBLISH probe */
    const char *probe_channel; /* pub/sub: this process's own channel (also
                                * subscribed, and its messages reported) */
    size_t held_max;
    bool client_id; /* appended: ask CLIENT ID on command links (cm_router_client_id_at) */
};

struct cm_router *cm_router_new(const struct cm_router_opts *opts);
void cm_router_start(struct cm_router *r);
/* Pending callbacks run with NULL. Accepts NULL. */
void cm_router_free(struct cm_router *r);

bool cm_router_ready(const struct cm_router *r);
/* The primary that owns key's slot is reachable (one Redis: it is up). */
bool cm_router_key_ready(const struct cm_router *r, const char *key);
bool cm_router_cluster(const struct cm_router *r);
/* The publish command for room channels: "SPUBLISH" in a cluster. */
const char *cm_router_publish_verb(const struct cm_router *r);
/* Held commands not yet answered, and how many times one was sent again
 * because Redis refused it with an error that may pass (in a cluster, also
 * because its link dropped or its slot had no reachable primary). */
size_t cm_router_held_count(const struct cm_router *r);
uint64_t cm_router_held_retries(const struct cm_router *r);
/* Primaries known, and slots with no reachable primary (for /metrics and
 * logs). */
size_t cm_router_nodes(const struct cm_router *r);
size_t cm_router_slots_down(const struct cm_router *r);

/* Sends one command to the owner of key (NULL: any primary). Same contract
 * as cm_link_command: 0 and fn is called exactly once, or -1 (the owner is
 * unreachable) and it never is. */
int cm_router_command(struct cm_router *r, const char *key, cm_link_reply_fn *fn, void *priv,
                      int argc, const char **argv, const size_t *lens);
int cm_router_commandv(struct cm_router *r, const char *key, cm_link_reply_fn *fn, void *priv,
                       int argc, const char **argv);
/* A script, routed by its first key (argv[0]). */
int cm_router_script(struct cm_router *r, enum cm_script script, int nkeys, int argc,
                     const char **argv, const size_t *lens, cm_link_reply_fn *fn, void *priv);
/* A command that must reach Redis (cm_link_send_held), routed by key. */
void cm_router_send_held(struct cm_router *r, const char *key, int argc, const char **argv,
                         const size_t *lens);
/* cm_link_deadline_ms of the link a command for key goes out on now. */
int64_t cm_router_deadline_ms(struct cm_router *r, const char *key);

/* Replication of what this process wrote: 1 when enough replicas
 * confirmed, within the timeout, every write sent before the WAIT that
 * covers the caller; 0 when they did not in time; -1 when the link dropped
 * first (unknown). */
typedef void cm_router_wait_fn(void *priv, int result);
/* Asks the primary that owns key's slot for WAIT replicas timeout_ms,
 * grouped: at most one WAIT is in flight per primary, and it covers every
 * caller that asked before it went out (each asks after its own write was
 * answered, so the WAIT follows it on the link). In a cluster, replicas is
 * capped at the replicas the shard is configured with. 0: fn will be
 * called once. 1: the shard has no replica; nothing to wait for, fn is not
 * called. -1: unreachable, fn is not called. A WAIT blocks its link on the
 * Redis side: commands behind it on that primary wait up to timeout_ms. */
int cm_router_wait(struct cm_router *r, const char *key, int replicas, int64_t timeout_ms,
                   cm_router_wait_fn *fn, void *priv);

/* Calls fn once every primary has answered a PING sent now, i.e. every
 * command sent before on those links. -1 (fn never called) when no
 * primary is reachable. */
int cm_router_barrier(struct cm_router *r, void (*fn)(void *priv), void *priv);

/* Channels, held across reconnects and slot moves: SSUBSCRIBE on the
 * owner of the channel's slot in a cluster, SUBSCRIBE on the one Redis. */
void cm_router_subscribe(struct cm_router *r, const char *channel);
void cm_router_unsubscribe(struct cm_router *r, const char *channel);

/* ---- one primary at a time (appended for commands that act on one node,
 * such as SCAN, whose cursor is per node) ----
 *
 * Primaries are numbered 0..cm_router_primaries()-1 in the router's own
 * order, which a topology refresh may change: a caller that walks them
 * keeps the name too and starts over when it no longer matches. One Redis
 * is one primary. */
size_t cm_router_primaries(const struct cm_router *r);
/* "host:port" of primary index, or NULL past the end. Valid until the next
 * topology refresh. */
const char *cm_router_primary_name(const struct cm_router *r, size_t index);
/* Sends one command to primary index, with no redirect or retry: same
 * contract as cm_link_command (-1: no such primary, or it is down). */
int cm_router_command_at(struct cm_router *r, size_t index, cm_link_reply_fn *fn, void *priv,
                         int argc, const char **argv, const size_t *lens);
/* CLIENT ID of primary index's command link (opts.client_id), or -1. */
long long cm_router_client_id_at(const struct cm_router *r, size_t index);

#endif
