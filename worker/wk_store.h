/*
 * The worker's store: everything the worker reads from or changes in
 * Redis, as plain calls with plain answers. It is the only worker code
 * that names a Redis key or builds a command's or script's arguments (the
 * keys shared with the gateway are spelled in common/cm_keys.h), and the
 * only one that holds the Redis connections: two common/cm_routers, each
 * one link to one Redis or one per primary of a Redis Cluster: "commands"
 * (scripts, acknowledgements, claims, sweeps) and "events", which carries
 * only XREADGROUP. With one Redis that read blocks (one stream, as it
 * always did); in a cluster it does not, and the partitions are polled
 * (wk_events.c), since one blocking read cannot span slots.
 *
 * The events stream is split into partitions (one with one Redis: the
 * stream chat:events as it always was), each with its own consumer group
 * "workers"; the calls on a stream name the partition, 0..partitions-1.
 *
 * Answers come through a callback and a private pointer, once per call
 * that returned 0; a call that returns -1 (Redis, or the shard that owns
 * the key, is not reachable, or the store is being freed) never calls
 * back. What the store reports on its own (Redis up and down) goes through
 * struct wk_store_hooks. Strings and lists in answers are views, valid
 * only during the callback.
 */
#ifndef WK_STORE_H
#define WK_STORE_H

#include "cm_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WK_ID_MAX 64       /* worker and gateway ids: 1-64 of [A-Za-z0-9._:-] */
#define WK_ENTRY_ID_MAX 48 /* a stream entry id, "<ms>-<seq>", with its NUL */
#define WK_MID_MAX 128     /* a membership id in an event */
#define WK_REASON_MAX 32   /* a leave reason in an event */

struct cm_link_loop;
struct cm_redis_url;
struct wk_store;

enum wk_store_status {
    WK_STORE_OK,
    WK_STORE_REFUSED, /* Redis answered with an error, or with a reply of the wrong shape */
    WK_STORE_LOST,    /* the link dropped first: it may or may not have taken effect */
};

/* How one call ended. The callers' retry policy turns on status and
 * transient; error is for their log lines. */
struct wk_store_result {
    enum wk_store_status status;
    bool transient;    /* REFUSED with an error that may pass: LOADING, BUSY, OOM, READONLY, ... */
    bool nogroup;      /* REFUSED because the events stream or its group is gone (NOGROUP) */
    const char *error; /* Redis's error text, "connection lost" or "unexpected reply"; "" if OK */
};

struct wk_store_hooks {
    void *owner;
    /* Every slot has a reachable primary (after every reconnect too). */
    void (*commands_ready)(void *owner);
    /* A link that was ready dropped; it reconnects itself. */
    void (*commands_lost)(void *owner);
    /* The events links are set up (after every reconnect). */
    void (*events_ready)(void *owner);
};

struct wk_store_config {
    const struct cm_redis_url *seeds; /* one Redis (cluster false), or seed nodes */
    size_t nseeds;
    bool cluster;
    int partitions;          /* events streams; forced to 1 with one Redis */
    const char *consumer;    /* this worker's name in the consumer groups */
    long long read_block_ms; /* how long one XREADGROUP blocks, with one Redis */
};

struct wk_store *wk_store_new(const struct wk_store_config *cfg, const struct cm_link_loop *loop,
                              const struct wk_store_hooks *hooks);
void wk_store_start(struct wk_store *st);
/* Drops the links; pending callbacks run with WK_STORE_LOST, and any call
 * made from them returns -1. Accepts NULL. Not from inside a callback. */
void wk_store_free(struct wk_store *st);

/* Every slot has a reachable primary on both routers (one Redis: both
 * links are up). */
bool wk_store_ready(const struct wk_store *st);
/* The sweep may run: the commands link is up (one Redis), or, in a
 * cluster, the primary of the gateway liveness keys is reachable (a shard
 * failing over holds up only the calls for its own keys, which fail at
 * once). */
bool wk_store_sweep_ready(const struct wk_store *st);
/* Reads block (one Redis): a read that found nothing has waited already. */
bool wk_store_reads_block(const struct wk_store *st);
/* The events partitions: 1 with one Redis, --event-partitions in a cluster. */
int wk_store_partitions(const struct wk_store *st);
/* The primary that holds partition p is reachable. */
bool wk_store_partition_ready(const struct wk_store *st, int p);

/* ---- the events stream and its consumer group ---- */

enum wk_event_type { WK_EVENT_INVALID, WK_EVENT_JOIN, WK_EVENT_LEAVE };

/* One decoded event. The gateway also sends session and ts; the worker
 * needs neither. */
struct wk_event {
    enum wk_event_type type;
    char room[CM_ROOM_MAX + 1];
    char nickname[CM_NICK_MAX_BYTES + 1];
    char mid[WK_MID_MAX + 1];
    char gateway[WK_ID_MAX + 1];
    char reason[WK_REASON_MAX + 1]; /* leave only */
};

/* One stream entry. */
struct wk_store_entry {
    const char *id;        /* NULL: the entry has no usable id */
    const char *malformed; /* NULL, or why its fields are not a valid event */
    struct wk_event ev;    /* when id is set and malformed is NULL */
};

/* Entries as Redis listed them; n counts every one, usable or not. */
struct wk_store_entries {
    size_t n;
    const struct wk_store_entry *e;
};

/* The groups and their streams for logs: "workers on chat:events" or
 * "workers on chat:events:{0..15}". Valid while the store lives. */
const char *wk_store_group_name(const struct wk_store *st);

/* created: false if the group already existed (not an error). */
typedef void wk_store_group_fn(void *priv, const struct wk_store_result *res, bool created);
/* XGROUP CREATE ... MKSTREAM on partition p. */
int wk_store_group_create(struct wk_store *st, int p, wk_store_group_fn *fn, void *priv);

/* entries: none when nothing new was there. */
typedef void wk_store_entries_fn(void *priv, const struct wk_store_result *res,
                                 const struct wk_store_entries *entries);
/* XREADGROUP of up to count new entries of partition p on the events
 * router: blocking read_block_ms with one Redis, not at all in a cluster. */
int wk_store_read(struct wk_store *st, int p, int count, wk_store_entries_fn *fn, void *priv);
/* One Redis: releases this worker's blocked XREADGROUP (CLIENT UNBLOCK of
 * the events link's client id, on the commands link): it returns at once
 * as if its block had ended. Unanswered. -1 if the id is unknown, it
 * cannot be sent, or reads do not block. */
int wk_store_unblock_read(struct wk_store *st);

/* next: where the next claim starts ("0-0": the pending list was covered). */
typedef void wk_store_claim_fn(void *priv, const struct wk_store_result *res,
                               const struct wk_store_entries *entries, const char *next);
/* XAUTOCLAIM on partition p of up to count entries idle for idle_ms, from
 * start. */
int wk_store_claim(struct wk_store *st, int p, long long idle_ms, const char *start, int count,
                   wk_store_claim_fn *fn, void *priv);

typedef void wk_store_pending_fn(void *priv, const struct wk_store_result *res, long long count);
/* The pending count of partition p's group (XPENDING summary). */
int wk_store_pending(struct wk_store *st, int p, wk_store_pending_fn *fn, void *priv);

typedef void wk_store_done_fn(void *priv, const struct wk_store_result *res);
/* XACK of one entry of partition p. */
int wk_store_ack(struct wk_store *st, int p, const char *id, wk_store_done_fn *fn, void *priv);

/* removed: how many consumers went. */
typedef void wk_store_prune_fn(void *priv, const struct wk_store_result *res, long long removed);
/* Removes partition p's consumers idle for idle_ms with nothing pending;
 * and this worker's own consumer too (if it holds nothing) when self is
 * set. */
int wk_store_prune_consumers(struct wk_store *st, int p, long long idle_ms, bool self,
                             wk_store_prune_fn *fn, void *priv);

/* ---- presence ---- */

/* removed: the member still owned the nickname and was removed (and the
 * leave published); false: nothing changed. */
typedef void wk_store_leave_fn(void *priv, const struct wk_store_result *res, bool removed);
/* Runs the leave script for one membership: removes nickname from room
 * only if mid still owns it, and publishes the presence leave with reason
 * (stamped with this worker's clock). */
int wk_store_leave(struct wk_store *st, const char *room, const char *nickname, const char *mid,
                   const char *reason, wk_store_leave_fn *fn, void *priv);

/* ---- gateways and their registries ---- */

/* Removes one membership from a gateway's registry (HDEL). */
int wk_store_registry_del(struct wk_store *st, const char *gateway, const char *mid,
                          wk_store_done_fn *fn, void *priv);

/* One registry entry. room and nickname are NULL when the entry cannot be
 * read; mid falls back to the field name. */
struct wk_store_session {
    const char *field; /* the hash field (the mid it was filed under) */
    const char *room;
    const char *nickname;
    const char *mid;
};
struct wk_store_sessions {
    size_t n;
    const struct wk_store_session *s;
};
typedef void wk_store_registry_fn(void *priv, const struct wk_store_result *res,
                                  const struct wk_store_sessions *sessions);
/* Reads a gateway's whole registry. */
int wk_store_registry_read(struct wk_store *st, const char *gateway, wk_store_registry_fn *fn,
                           void *priv);

struct wk_store_claimed_gateway {
    const char *id;
    bool dead; /* newly declared dead; false: an unfinished cleanup taken over */
};
struct wk_store_claimed {
    long long stall_ms; /* > 0: no sweep ran for this long, and a grace began */
    size_t n;
    const struct wk_store_claimed_gateway *gw;
};
typedef void wk_store_claimed_fn(void *priv, const struct wk_store_result *res,
                                 const struct wk_store_claimed *c);
/* The claim script: moves up to max gateways silent for timeout_ms to the
 * dead set, and takes over cleanups unfinished after reclaim_ms; no
 * gateway is declared dead in the grace after a gap of stall_ms without
 * any sweep. */
int wk_store_claim_gateways(struct wk_store *st, long long timeout_ms, long long reclaim_ms,
                            int max, long long stall_ms, wk_store_claimed_fn *fn, void *priv);

/* back: the gateway heartbeat again meanwhile and keeps its registry. */
typedef void wk_store_finish_fn(void *priv, const struct wk_store_result *res, bool back);
/* Ends a dead gateway's cleanup: deletes its registry and its claim. One
 * Redis: one script. A cluster: the registry is in another slot, so it is
 * checked that the gateway is still gone, then the registry deleted, then
 * the claim; should a step fail, the claim stays and the cleanup is
 * retried (docs/ARCHITECTURE.md, the race this leaves). */
int wk_store_finish_gateway(struct wk_store *st, const char *gateway, wk_store_finish_fn *fn,
                            void *priv);

/* ---- rooms: retention ---- */

/* SCAN walks one node: the primaries to walk (1 with one Redis), and the
 * name ("host:port") of one, valid until the topology changes; NULL past
 * the end. */
size_t wk_store_nodes(const struct wk_store *st);
const char *wk_store_node_name(const struct wk_store *st, size_t node);

/* rooms: the rooms found in this step; next: the cursor to go on from
 * ("0": the pass over that node is over). */
typedef void wk_store_rooms_fn(void *priv, const struct wk_store_result *res, const char *next,
                               size_t n, const char *const *rooms);
/* One SCAN step over the rooms' meta keys on one node, from cursor ("" or
 * "0": a new pass). */
int wk_store_scan_rooms(struct wk_store *st, size_t node, const char *cursor, wk_store_rooms_fn *fn,
                        void *priv);

/* expired: the room was idle and empty and lost all its keys; trimmed:
 * history entries removed by age. */
typedef void wk_store_retention_fn(void *priv, const struct wk_store_result *res, bool expired,
                                   long long trimmed);
/* The retention script on one room, with history older than ttl_ms. */
int wk_store_retention(struct wk_store *st, const char *room, long long ttl_ms,
                       wk_store_retention_fn *fn, void *priv);

#endif
