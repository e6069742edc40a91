/*
 * History retention by age (--history-ttl-s).
 *
 * Each sweep tick takes one SCAN step over the rooms' meta keys
 * (chat:{*}:meta), keeping the cursor across ticks, so the cost per tick is
 * bounded however many rooms there are; a full pass takes (rooms / batch)
 * ticks. For each room found, retention.lua applies the age rules
 * atomically: an idle room with no members loses all its keys; a live room
 * loses only its history entries older than the limit. Every worker scans
 * on its own; the script is idempotent, so overlapping passes are harmless.
 */
#include "cm_keys.h"
#include "cm_log.h"
#include "cm_proto.h"
#include "cm_util.h"
#include "wk_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_SCAN_COUNT "200" /* SCAN's COUNT hint per tick */
#define WK_TRIM_MAX "1000"  /* history entries one script call trims at most */

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

static void room_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_room_job *job = priv;
    if (wk_reply_kind(reply) != WK_REPLY_OK || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        if (reply)
            CM_WARN("room %s: retention script failed: %s", job->room, wk_reply_error(reply));
        job_done(srv, job);
        return;
    }
    long long trimmed = reply->element[1]->integer;
    if (reply->element[0]->integer == 1) {
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

/* "chat:{r}:meta" -> r; returns -1 if key is not a room's meta key. */
static int meta_room(const char *key, size_t len, char *room)
{
    static const char prefix[] = "chat:{", suffix[] = "}:meta";
    size_t plen = sizeof(prefix) - 1, slen = sizeof(suffix) - 1;
    if (len <= plen + slen || len - plen - slen > CM_ROOM_MAX || memcmp(key, prefix, plen) != 0 ||
        memcmp(key + len - slen, suffix, slen) != 0)
        return -1;
    memcpy(room, key + plen, len - plen - slen);
    room[len - plen - slen] = '\0';
    return cm_room_valid(room, strlen(room)) ? 0 : -1;
}

static void room_check(struct wk_server *srv, const redisReply *key)
{
    char meta[CM_KEY_MAX], history[CM_KEY_MAX], members[CM_KEY_MAX], ttl[24];
    struct wk_room_job *job = cm_calloc(1, sizeof(*job));

    if (key->type != REDIS_REPLY_STRING || meta_room(key->str, key->len, job->room) != 0) {
        free(job);
        return;
    }
    job->srv = srv;
    snprintf(ttl, sizeof(ttl), "%lld", srv->cfg.history_ttl_s * 1000);
    const char *argv[] = {meta, history, members, ttl, WK_TRIM_MAX};
    const size_t lens[] = {cm_key_room(meta, CM_ROOM_META, job->room),
                           cm_key_room(history, CM_ROOM_HISTORY, job->room),
                           cm_key_room(members, CM_ROOM_MEMBERS, job->room), strlen(ttl),
                           strlen(WK_TRIM_MAX)};
    if (wk_redis_script(&srv->cmd, CM_SCRIPT_RETENTION, 3, 5, argv, lens, room_cb, job) != 0) {
        free(job);
        return;
    }
    srv->rt.pending++;
}

static void scan_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_retention_state *rt = &srv->rt;
    rt->scanning = false;
    if (wk_reply_kind(reply) != WK_REPLY_OK || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        if (reply)
            CM_WARN("retention: SCAN failed: %s", wk_reply_error(reply));
        wk_server_check_drained(srv);
        return;
    }
    snprintf(rt->cursor, sizeof(rt->cursor), "%s", reply->element[0]->str);
    const redisReply *keys = reply->element[1];
    for (size_t i = 0; i < keys->elements; i++)
        room_check(srv, keys->element[i]);
    wk_server_check_drained(srv);
}

void wk_retention_sweep(struct wk_server *srv)
{
    struct wk_retention_state *rt = &srv->rt;
    /* One step at a time: the next SCAN waits for this step's scripts. */
    if (rt->scanning || rt->pending > 0)
        return;
    if (rt->cursor[0] == '\0')
        snprintf(rt->cursor, sizeof(rt->cursor), "0");
    const char *argv[] = {"SCAN", rt->cursor, "MATCH", "chat:{*}:meta", "COUNT", WK_SCAN_COUNT};
    if (wk_redis_commandv(&srv->cmd, scan_cb, NULL, 6, argv) == 0)
        rt->scanning = true;
}

bool wk_retention_idle(const struct wk_server *srv)
{
    return !srv->rt.scanning && srv->rt.pending == 0;
}
