/*
 * History retention by age (--history-ttl-s).
 *
 * Each sweep tick takes one SCAN step over the rooms' meta keys
 * (chat:{*}:meta), keeping the cursor across ticks, so the cost per tick is
 * bounded however many rooms there are; a full pass takes (rooms / batch)
 * ticks. SCAN walks one node: in a cluster the pass goes over each primary
 * in turn, and starts that primary's walk again when the topology changed
 * under it (a primary that moved is scanned from its start). For each
 * room found, retention.lua applies the age rules atomically: an idle room
 * with no members loses all its keys; a live room loses only its history
 * entries older than the limit. Every worker scans
 * on its own; the script is idempotent, so overlapping passes are harmless.
 */
#include "cm_log.h"
#include "cm_proto.h"
#include "cm_util.h"
#include "wk_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The room a retention script is running for, for its log line. */
struct wk_room_job {
    struct wk_server *srv;
    char room[CM_ROOM_MAX + 1];
};

static void job_done(struct wk_server *srv, struct wk_room_job *job)
{
    free(job);
    srv->rt.pending--;
    wk_server_check_drained(srv);
}

static void room_cb(void *priv, const struct wk_store_result *res, bool expired, long long trimmed)
{
    struct wk_room_job *job = priv;
    struct wk_server *srv = job->srv;
    if (res->status != WK_STORE_OK) {
        if (res->status != WK_STORE_LOST)
            CM_WARN("room %s: retention script failed: %s", job->room, res->error);
        job_done(srv, job);
        return;
    }
    if (expired) {
        srv->m.rooms_expired++;
        CM_INFO("room %s: expired (no members, idle for more than %lld s); keys deleted", job->room,
                srv->cfg.history_ttl_s);
    } else if (trimmed > 0) {
        srv->m.history_trimmed += (unsigned long long)trimmed;
        CM_DEBUG("room %s: trimmed %lld history entries older than %lld s", job->room, trimmed,
                 srv->cfg.history_ttl_s);
    }
    job_done(srv, job);
}

static void room_check(struct wk_server *srv, const char *room)
{
    struct wk_room_job *job = cm_calloc(1, sizeof(*job));
    job->srv = srv;
    snprintf(job->room, sizeof(job->room), "%s", room);
    if (wk_store_retention(srv->store, job->room, srv->cfg.history_ttl_s * 1000, room_cb, job) !=
        0) {
        free(job);
        return;
    }
    srv->rt.pending++;
}

static void scan_cb(void *priv, const struct wk_store_result *res, const char *next, size_t n,
                    const char *const *rooms)
{
    struct wk_server *srv = priv;
    struct wk_retention_state *rt = &srv->rt;
    rt->scanning = false;
    if (res->status != WK_STORE_OK) {
        if (res->status != WK_STORE_LOST)
            CM_WARN("retention: SCAN failed: %s", res->error);
        wk_server_check_drained(srv);
        return;
    }
    if (strcmp(next, "0") == 0) {
        /* This node is done: the next one, from its start. */
        rt->node++;
        rt->node_name[0] = '\0';
        rt->cursor[0] = '\0';
    } else {
        snprintf(rt->cursor, sizeof(rt->cursor), "%s", next);
    }
    for (size_t i = 0; i < n; i++)
        room_check(srv, rooms[i]);
    wk_server_check_drained(srv);
}

void wk_retention_sweep(struct wk_server *srv)
{
    struct wk_retention_state *rt = &srv->rt;
    /* One step at a time: the next SCAN waits for this step's scripts. */
    if (rt->scanning || rt->pending > 0)
        return;
    if (rt->node >= wk_store_nodes(srv->store))
        rt->node = 0;
    const char *name = wk_store_node_name(srv->store, rt->node);
    if (!name)
        return;
    if (strcmp(name, rt->node_name) != 0) {
        snprintf(rt->node_name, sizeof(rt->node_name), "%s", name);
        rt->cursor[0] = '\0';
    }
    if (wk_store_scan_rooms(srv->store, rt->node, rt->cursor, scan_cb, srv) == 0)
        rt->scanning = true;
}

bool wk_retention_idle(const struct wk_server *srv)
{
    return !srv->rt.scanning && srv->rt.pending == 0;
}
