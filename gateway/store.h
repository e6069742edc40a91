/*
 * The gateway's store: everything the gateway keeps in or asks of Redis,
 * as plain calls with plain answers. It is the only gateway code that names
 * a Redis key or builds a script's arguments (the keys themselves are
 * spelled in common/cm_keys.h), and the only one that talks to Redis,
 * through a common/cm_router: one Redis, or the primaries of a Redis
 * Cluster, each with a command link (scripts, events, the registry,
 * heartbeats) and a pub/sub link (room channels and this gateway's control
 * channel).
 *
 * Answers come through a callback and a private pointer, once per call
 * that returned 0; a call that returns -1 (Redis is unreachable) never
 * calls back. What the store reports on its own (links up and down,
 * messages) goes through struct gw_store_hooks, which the owner fills.
 * Strings in answers are views, valid only during the callback.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include "cm_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_link_loop;
struct cm_redis_url;
struct gw_store;

enum gw_store_status {
    GW_STORE_OK,
    GW_STORE_REFUSED, /* Redis answered with an error (logged): it did not take effect */
    GW_STORE_LOST,    /* the link dropped first: it may or may not have taken effect */
};

/* A list of strings (JSON objects, as the scripts return them). */
struct gw_strs {
    size_t n;
    const char **s;
    const size_t *len;
};

/* Appends items as a JSON array (each item is JSON already). */
static inline void gw_strs_put_json(struct cm_sbuf *b, const struct gw_strs *items)
{
    cm_sbuf_append(b, "[", 1);
    for (size_t i = 0; i < items->n; i++) {
        if (i)
            cm_sbuf_append(b, ",", 1);
        cm_sbuf_append(b, items->s[i], items->len[i]);
    }
    cm_sbuf_append(b, "]", 1);
}

/* Who a membership is, as Redis records it. */
struct gw_store_member {
    const char *room;
    const char *nickname;
    const char *session;
    const char *mid;
};

struct gw_store_hooks {
    void *owner;
    /* The command link is up again (reconnect: not the first time). */
    void (*ready)(void *owner, bool reconnect);
    /* A heartbeat found this gateway declared dead; it is registered again. */
    void (*declared_dead)(void *owner);
    /* A room's subscription is gone (its link dropped, or in a cluster its
     * slot moved) until room_subscribed reports it again: the store asks
     * for it again by itself. */
    void (*room_lost)(void *owner, const char *room);
    void (*room_subscribed)(void *owner, const char *room);
    void (*room_message)(void *owner, const char *room, const char *data, size_t len);
    /* A message on this gateway's control channel. */
    void (*control)(void *owner, const char *data, size_t len);
};

struct gw_store_config {
    const struct cm_redis_url *seeds; /* the one Redis, or a cluster's seed nodes */
    size_t nseeds;
    bool cluster;
    int event_partitions; /* streams the events are spread over (1: chat:events) */
    const char *gateway_id;
    long long history_max;  /* messages kept per room */
    long long timeout_ms;   /* --redis-timeout-ms */
    long long heartbeat_ms; /* liveness beat */
    long long members_page; /* members per page: joined's first, and each members page */
    int ack_replicas;        /* a publish is answered once this many replicas have it (0: at once) */
    long long ack_timeout_ms; /* ...or once this long has passed */
};

struct gw_store *gw_store_new(const struct gw_store_config *cfg, const struct cm_link_loop *loop,
                              const struct gw_store_hooks *hooks);
void gw_store_start(struct gw_store *st);
/* Drops the links; pending callbacks run with GW_STORE_LOST. Accepts NULL. */
void gw_store_free(struct gw_store *st);

/* Every slot's primary is reachable, both links (one Redis: both links
 * are up). */
bool gw_store_ready(const struct gw_store *st);
/* The Redis that holds room is reachable (in a cluster, its slot's
 * primary: other rooms may be served while one shard fails over). */
bool gw_store_room_ready(const struct gw_store *st, const char *room);
/* Events and registry writes not yet answered by Redis. */
size_t gw_store_backlog(const struct gw_store *st);
/* Events and registry writes Redis refused with an error that may pass
 * (READONLY, OOM, ...) and that are sent again, for /metrics. */
uint64_t gw_store_backlog_retries(const struct gw_store *st);
/* Links that were up and dropped, for /metrics. */
uint64_t gw_store_reconnects(const struct gw_store *st);

/* ---- rooms: messages ---- */

/* Stores a message and publishes it (tail: see cm_encode_message_tail).
 * With ack_replicas, OK comes once a replica confirmed it, or the timeout
 * passed: replicated is then false (the message is stored and delivered
 * on the primary all the same). */
typedef void gw_store_publish_fn(void *priv, enum gw_store_status status, int64_t seq,
                                 bool replicated);
int gw_store_publish(struct gw_store *st, const char *room, const char *tail, size_t tail_len,
                     gw_store_publish_fn *fn, void *priv);

struct gw_store_history {
    int64_t seq;       /* the room's latest seq */
    const char *epoch; /* "" if the room has none */
    struct gw_strs items;
};
typedef void gw_store_history_fn(void *priv, enum gw_store_status status,
                                 const struct gw_store_history *h);
/* Up to limit messages before seq `before` (0: the latest)... */
int gw_store_history_before(struct gw_store *st, const char *room, int64_t before, long long limit,
                            gw_store_history_fn *fn, void *priv);
/* ...or after seq `after`, oldest first, up to the history cap. */
int gw_store_history_after(struct gw_store *st, const char *room, int64_t after,
                           gw_store_history_fn *fn, void *priv);

/* ---- rooms: membership ---- */

struct gw_store_join {
    struct gw_store_member who;
    int64_t since;     /* -1: not recovering */
    const char *epoch; /* the epoch since was seen in ("": current) */
    int history;       /* recent messages wanted when not recovering */
    bool no_members;   /* only the count, no page of members */
};
/* A page of a room's members. */
struct gw_store_members {
    const char *json;   /* a JSON array of {"nickname","since"} */
    int64_t count;      /* the room's members when the page was read */
    const char *cursor; /* the next page's; "0" when this was the last */
};
struct gw_store_joined {
    int64_t seq;
    const char *epoch;
    int recovered; /* -1 not asked, 0 no, 1 yes */
    struct gw_strs history;
    struct gw_store_members members; /* all, or the first page in a big room */
};
typedef void gw_store_join_fn(void *priv, enum gw_store_status status,
                              const struct gw_store_joined *j);
/* Writes the registry entry, then (pipelined behind it) runs the join:
 * takes the nickname, publishes the presence join (with the room's member
 * count), reads seq, epoch, history and the first page of members. If the
 * join cannot be sent, the entry is removed. */
int gw_store_join(struct gw_store *st, const struct gw_store_join *req, gw_store_join_fn *fn,
                  void *priv);

typedef void gw_store_members_fn(void *priv, enum gw_store_status status,
                                 const struct gw_store_members *members);
/* One page of members from cursor ("0": the start; a room of at most a
 * page is then read whole). */
int gw_store_members(struct gw_store *st, const char *room, const char *cursor,
                     gw_store_members_fn *fn, void *priv);

/* kept: the nickname is still ours; false: another session holds it. */
typedef void gw_store_reassert_fn(void *priv, enum gw_store_status status, bool kept);
/* Writes the membership again under who->mid, replacing old_mid (the new
 * registry entry first); on success the old entry is removed. */
int gw_store_reassert(struct gw_store *st, const struct gw_store_member *who, const char *old_mid,
                      gw_store_reassert_fn *fn, void *priv);

/* Starts a new epoch for room if its epoch is still old_epoch (its
 * history went back under members: a failover lost what they saw).
 * Unanswered. */
void gw_store_epoch_bump(struct gw_store *st, const char *room, const char *old_epoch);

/* Subscriptions to a room's channel (held across reconnects by the store). */
void gw_store_room_subscribe(struct gw_store *st, const char *room);
void gw_store_room_unsubscribe(struct gw_store *st, const char *room);

/* ---- events and the registry: sent now or once Redis is back ---- */

/* A join or leave event for the workers (reason NULL for a join). */
void gw_store_event(struct gw_store *st, const char *type, const struct gw_store_member *who,
                    const char *reason);
/* The registry entry of a membership (what a worker cleans up should this
 * gateway die), and its removal. */
void gw_store_registry_add(struct gw_store *st, const struct gw_store_member *who);
void gw_store_registry_del(struct gw_store *st, const char *mid);

/* ---- the end of a drain ---- */

/* Takes the gateway off the liveness list; fn runs once every command sent
 * before has been answered. -1 when Redis is unreachable. */
int gw_store_unregister(struct gw_store *st, void (*fn)(void *priv), void *priv);

#endif
