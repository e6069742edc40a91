/*
 * The consumer groups on the events partitions (docs/ARCHITECTURE.md,
 * "Events"): chat:events with one Redis, chat:events:{0..N-1} in a cluster.
 *
 * Every worker reads new entries on connections of their own (the store's
 * "events" router), each partition on its own: one XREADGROUP at a time,
 * within a bound on the entries being applied. With one Redis there is one
 * partition and its read blocks, as it always did. In a cluster the reads
 * do not block, since one blocking read cannot span partitions (they are
 * in different slots, usually on different primaries): a read that found
 * entries is followed at once by the next, one that found nothing after
 * WK_READ_IDLE_MS. An entry is
 * acknowledged only after its effect is in Redis: for a leave, the leave
 * script and the HDEL of the gateway's registry entry are pipelined, and
 * the XACK follows once both have answered without an error that a retry
 * could fix. Whatever is not acknowledged stays in the group's pending list
 * and is claimed again with XAUTOCLAIM after --claim-idle-ms, by this
 * worker or any other, so a worker that dies loses nothing. Applying an
 * entry twice is harmless: the leave script is a compare-and-delete on the
 * membership id, and HDEL of a missing field does nothing.
 */
#include "cm_log.h"
#include "cm_util.h"
#include "wk_server.h"

#include <event2/event.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_RETRY_MS 1000

/* One entry being applied: the steps still owed, then the XACK. */
struct wk_event_op {
    struct wk_server *srv;
    char id[WK_ENTRY_ID_MAX];
    int part; /* its partition: where it is acknowledged */
    enum wk_event_type type;
    int steps;    /* replies still awaited before the XACK */
    bool failed;  /* a step failed in a way a retry may fix: do not ACK */
    bool dropped; /* a step failed for good: ACK, but count it as dropped */
};

static void group_create(struct wk_server *srv);
static void group_lost(struct wk_partition *pt);

/* ---- applying ------------------------------------------------------------ */

static struct wk_event_op *op_new(struct wk_server *srv, int part, const char *id)
{
    struct wk_event_op *op = cm_calloc(1, sizeof(*op));
    op->srv = srv;
    op->part = part;
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

static void ack_cb(void *priv, const struct wk_store_result *res)
{
    struct wk_event_op *op = priv;
    if (res->status == WK_STORE_OK)
        op_count(op);
    else
        CM_DEBUG("event %s: XACK failed (%s); it stays pending", op->id, res->error);
    op_free(op);
}

static void op_ack(struct wk_event_op *op)
{
    if (wk_store_ack(op->srv->store, op->part, op->id, ack_cb, op) != 0)
        op_free(op);
}

/* Records the outcome of one step; NULL: it could not be sent. */
static void op_record(struct wk_event_op *op, const struct wk_store_result *res, const char *what)
{
    if (!res || res->status == WK_STORE_LOST) {
        op->failed = true;
    } else if (res->status == WK_STORE_REFUSED && res->transient) {
        CM_WARN("event %s: %s failed: %s", op->id, what, res->error);
        op->failed = true;
    } else if (res->status == WK_STORE_REFUSED) {
        /* Retrying a deterministic failure (e.g. a corrupt members hash)
         * would repeat it every claim interval forever. */
        CM_ERROR("event %s: %s failed for good, acknowledging it: %s", op->id, what, res->error);
        op->dropped = true;
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

static void leave_cb(void *priv, const struct wk_store_result *res, bool removed)
{
    op_record(priv, res, "leave script");
    op_release(priv);
}

static void hdel_cb(void *priv, const struct wk_store_result *res)
{
    op_record(priv, res, "HDEL");
    op_release(priv);
}

static void event_leave(struct wk_server *srv, struct wk_event_op *op, const struct wk_event *ev)
{
    CM_DEBUG("event %s: %s leaves %s (%s)", op->id, ev->nickname, ev->room, ev->reason);
    /* One step per command, plus one held while sending, so that a send
     * that fails at once cannot settle the entry before the other is out. */
    op->steps = 3;
    if (wk_store_leave(srv->store, ev->room, ev->nickname, ev->mid, ev->reason, leave_cb, op) !=
        0) {
        op_record(op, NULL, "leave script");
        op->steps--;
    }
    if (wk_store_registry_del(srv->store, ev->gateway, ev->mid, hdel_cb, op) != 0) {
        op_record(op, NULL, "HDEL");
        op->steps--;
    }
    op_release(op);
}

static void event_apply(struct wk_server *srv, int part, const struct wk_store_entry *e)
{
    struct wk_event_op *op = op_new(srv, part, e->id);

    if (e->malformed) {
        CM_WARN("event %s: malformed (%s), acknowledging it without effect", e->id, e->malformed);
        op->type = WK_EVENT_INVALID;
        op_ack(op);
        return;
    }
    op->type = e->ev.type;
    if (e->ev.type == WK_EVENT_JOIN) {
        /* The gateway's join script already applied it. */
        op_ack(op);
        return;
    }
    event_leave(srv, op, &e->ev);
}

/* Applies every entry an XREADGROUP or XAUTOCLAIM returned. */
static void entries_apply(struct wk_partition *pt, const struct wk_store_entries *entries)
{
    for (size_t i = 0; i < entries->n; i++) {
        if (!entries->e[i].id) {
            CM_WARN("events: skipping an entry without a usable id");
            continue;
        }
        event_apply(pt->srv, pt->index, &entries->e[i]);
    }
}

/* ---- the group ----------------------------------------------------------- */

static void retry_later(struct wk_server *srv)
{
    struct timeval tv = {WK_RETRY_MS / 1000, (suseconds_t)(WK_RETRY_MS % 1000) * 1000};
    evtimer_add(srv->ev.retry, &tv);
}

/* The stream or the group vanished (a FLUSHALL, a Redis restart without
 * persistence): create them again before reading. */
static void group_lost(struct wk_partition *pt)
{
    struct wk_server *srv = pt->srv;
    if (pt->group_ready) {
        CM_WARN("events: the consumer group of partition %d is gone; creating it again", pt->index);
        srv->ev.groups_ready--;
    }
    pt->group_ready = false;
    group_create(srv);
}

static void group_cb(void *priv, const struct wk_store_result *res, bool created)
{
    struct wk_partition *pt = priv;
    struct wk_server *srv = pt->srv;
    struct wk_events_state *e = &srv->ev;
    pt->group_creating = false;
    if (res->status == WK_STORE_LOST) {
        retry_later(srv); /* and wk_events_cmd_ready after a reconnect */
        return;
    }
    if (res->status != WK_STORE_OK) {
        CM_ERROR("events: XGROUP CREATE failed: %s", res->error);
        retry_later(srv);
        return;
    }
    if (pt->group_ready)
        return;
    pt->group_ready = true;
    if (++e->groups_ready == e->nparts)
        CM_INFO("events: consumer group %s ready; consuming as %s", wk_store_group_name(srv->store),
                srv->id);
    wk_events_pump(srv);
}

static void group_create(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    if (srv->stopping)
        return;
    for (int p = 0; p < e->nparts; p++) {
        struct wk_partition *pt = &e->parts[p];
        if (pt->group_creating || pt->group_ready)
            continue;
        if (wk_store_group_create(srv->store, p, group_cb, pt) == 0)
            pt->group_creating = true;
    }
}

bool wk_events_groups_ready(const struct wk_server *srv)
{
    return srv->ev.nparts > 0 && srv->ev.groups_ready == srv->ev.nparts;
}

/* ---- reading ------------------------------------------------------------- */

/* The partition reads again after ms, not before. */
static void part_pause(struct wk_partition *pt, int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    if (!pt->srv->stopping)
        evtimer_add(pt->idle, &tv);
}

static void read_cb(void *priv, const struct wk_store_result *res,
                    const struct wk_store_entries *entries)
{
    struct wk_partition *pt = priv;
    struct wk_server *srv = pt->srv;
    pt->reading = false;
    srv->ev.reads--;
    if (res->nogroup) {
        group_lost(pt);
    } else if (res->status == WK_STORE_REFUSED) {
        CM_WARN("events: XREADGROUP failed: %s", res->error);
        part_pause(pt, WK_RETRY_MS);
    } else if (res->status == WK_STORE_OK) {
        /* Nothing new: a blocking read has waited already; a polled
         * partition pauses before its next read. */
        if (entries->n == 0 && !wk_store_reads_block(srv->store))
            part_pause(pt, WK_READ_IDLE_MS);
        entries_apply(pt, entries);
    }
    /* LOST: its link went away; the partition reads again once it is back
     * (wk_store_partition_ready), when the router reports it or at the next
     * sweep. */
    wk_events_pump(srv);
    wk_server_check_drained(srv);
}

void wk_events_pump(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    if (srv->stopping || e->nparts == 0)
        return;
    /* Each partition reads on its own, so a shard that is slow or failing
     * over holds up only its own partitions. Within the bound on entries
     * being applied (op_free pumps again as work completes), starting one
     * partition further each time, so that none is always last. */
    int budget = WK_INFLIGHT_MAX - e->inflight - e->reads * WK_READ_COUNT;
    for (int i = 0; i < e->nparts && budget >= WK_READ_COUNT; i++) {
        struct wk_partition *pt = &e->parts[(e->next + i) % e->nparts];
        if (!pt->group_ready || pt->reading || evtimer_pending(pt->idle, NULL) ||
            !wk_store_partition_ready(srv->store, pt->index))
            continue;
        if (wk_store_read(srv->store, pt->index, WK_READ_COUNT, read_cb, pt) != 0)
            continue;
        pt->reading = true;
        e->reads++;
        budget -= WK_READ_COUNT;
    }
    e->next = (e->next + 1) % e->nparts;
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wk_partition *pt = arg;
    wk_events_pump(pt->srv);
}

/* ---- claiming and the pending count -------------------------------------- */

static void claim_send(struct wk_partition *pt, const char *start);

static void claim_cb(void *priv, const struct wk_store_result *res,
                     const struct wk_store_entries *entries, const char *next)
{
    struct wk_partition *pt = priv;
    struct wk_server *srv = pt->srv;
    pt->claiming = false;
    srv->ev.claims--;
    if (res->nogroup) {
        group_lost(pt);
    } else if (res->status == WK_STORE_REFUSED) {
        CM_WARN("events: XAUTOCLAIM failed: %s", res->error);
    } else if (res->status == WK_STORE_OK) {
        if (entries->n > 0) {
            CM_INFO("events: claimed %zu entries idle for more than %lld ms", entries->n,
                    srv->cfg.claim_idle_ms);
            srv->m.events_claimed += entries->n;
            entries_apply(pt, entries);
        }
        /* A full batch may have more behind it. */
        if (entries->n == WK_CLAIM_COUNT && strcmp(next, "0-0") != 0)
            claim_send(pt, next);
    }
    wk_server_check_drained(srv);
}

static void claim_send(struct wk_partition *pt, const char *start)
{
    struct wk_server *srv = pt->srv;
    struct wk_events_state *e = &srv->ev;
    if (srv->stopping || pt->claiming || !pt->group_ready ||
        e->inflight > WK_INFLIGHT_MAX - WK_CLAIM_COUNT)
        return;
    if (wk_store_claim(srv->store, pt->index, srv->cfg.claim_idle_ms, start, WK_CLAIM_COUNT,
                       claim_cb, pt) == 0) {
        pt->claiming = true;
        e->claims++;
    }
}

static void pending_cb(void *priv, const struct wk_store_result *res, long long count)
{
    struct wk_partition *pt = priv;
    struct wk_server *srv = pt->srv;
    pt->pending_busy = false;
    if (res->nogroup) {
        group_lost(pt);
    } else if (res->status == WK_STORE_OK) {
        pt->pending = count;
        long long sum = 0;
        for (int p = 0; p < srv->ev.nparts; p++)
            sum += srv->ev.parts[p].pending;
        srv->m.pending = sum;
    }
}

void wk_events_sweep(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    if (srv->stopping)
        return;
    group_create(srv);
    for (int p = 0; p < e->nparts; p++) {
        struct wk_partition *pt = &e->parts[p];
        if (!pt->group_ready)
            continue;
        if (!pt->pending_busy && wk_store_pending(srv->store, p, pending_cb, pt) == 0)
            pt->pending_busy = true;
        claim_send(pt, "0-0");
    }
    /* A partition whose shard was away, or whose group was missing, reads
     * again from here at the latest. */
    wk_events_pump(srv);
}

/* ---- life cycle ---------------------------------------------------------- */

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wk_server *srv = arg;
    group_create(srv);
    wk_events_pump(srv);
}

int wk_events_init(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    e->nparts = wk_store_partitions(srv->store);
    e->parts = cm_calloc((size_t)e->nparts, sizeof(*e->parts));
    for (int p = 0; p < e->nparts; p++) {
        struct wk_partition *pt = &e->parts[p];
        *pt = (struct wk_partition){.srv = srv, .index = p};
        pt->idle = evtimer_new(srv->base, idle_cb, pt);
        if (!pt->idle)
            return -1;
    }
    e->retry = evtimer_new(srv->base, retry_cb, srv);
    return e->retry ? 0 : -1;
}

void wk_events_close(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    if (e->retry)
        event_free(e->retry);
    e->retry = NULL;
    for (int p = 0; p < e->nparts; p++)
        if (e->parts[p].idle)
            event_free(e->parts[p].idle);
    free(e->parts);
    e->parts = NULL;
    e->nparts = 0;
}

void wk_events_cmd_ready(struct wk_server *srv)
{
    /* Checked after every reconnect: Redis may have restarted empty. */
    group_create(srv);
    wk_events_pump(srv);
}

void wk_events_cmd_down(struct wk_server *srv)
{
    /* Whether each group survived is asked again when Redis is back: the
     * create is idempotent (BUSYGROUP). */
    struct wk_events_state *e = &srv->ev;
    for (int p = 0; p < e->nparts; p++)
        e->parts[p].group_ready = false;
    e->groups_ready = 0;
}

void wk_events_conn_ready(struct wk_server *srv)
{
    wk_events_pump(srv);
}

void wk_events_stop(struct wk_server *srv)
{
    struct wk_events_state *e = &srv->ev;
    for (int p = 0; p < e->nparts; p++)
        evtimer_del(e->parts[p].idle);
    if (e->reads == 0 || e->unblock_sent)
        return;
    /* A blocked XREADGROUP returns at once, as if its BLOCK had ended. */
    if (wk_store_unblock_read(srv->store) == 0)
        e->unblock_sent = true;
}

bool wk_events_idle(const struct wk_server *srv)
{
    const struct wk_events_state *e = &srv->ev;
    return e->reads == 0 && e->claims == 0 && e->inflight == 0;
}
