/*
 * Redis connections of the worker. See wk_redis.h for the contract.
 *
 * hiredis 0.14 facts this file relies on (async.c of that release):
 * - Commands may be queued before the connection is up; they are written
 *   once connect(2) completes. So AUTH, SELECT and SCRIPT LOAD are queued
 *   right after redisAsyncConnect, pipelined.
 * - A failed connect calls the connect callback with REDIS_ERR, then frees
 *   the context and runs the queued callbacks with a NULL reply. There is
 *   no disconnect callback for a context that never connected.
 * - A lost connection runs every pending callback with a NULL reply, then
 *   the disconnect callback, then frees the context.
 * - Once a context is disconnecting or freeing, redisAsyncCommand fails, so
 *   a callback that sees a NULL reply cannot queue work on the dead context.
 * - There is no connect or command timeout: the watchdog provides both.
 */
#include "wk_redis.h"

#include "cm_log.h"
#include "cm_util.h"
#include "wk_server.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WK_BACKOFF_BASE_MS 100
#define WK_BACKOFF_CAP_MS 5000
#define WK_CONNECT_TIMEOUT_MS 5000

/* One command in flight. For scripts it keeps a copy of the arguments so
 * that a NOSCRIPT answer can be retried as EVAL. */
struct wk_call {
    struct wk_conn *conn;
    wk_reply_fn *fn;
    void *priv;
    int script; /* enum cm_script, or -1 for a plain command */
    int nkeys;
    int argc;    /* script arguments (keys, then the rest) */
    char **argv; /* copies, one allocation each */
    size_t *lens;
};

static void conn_schedule_retry(struct wk_conn *conn);

static void call_free(struct wk_call *call)
{
    for (int i = 0; i < call->argc; i++)
        free(call->argv[i]);
    free(call->argv);
    free(call->lens);
    free(call);
}

static void conn_sent(struct wk_conn *conn)
{
    if (conn->outstanding++ == 0)
        conn->last_reply_ms = cm_mono_ms();
}

/* Sends call as EVALSHA (or EVAL with the source when eval is set). */
static int call_send_script(struct wk_call *call, bool eval);

static void call_done(redisAsyncContext *ac, void *r, void *privdata)
{
    struct wk_call *call = privdata;
    struct wk_conn *conn = call->conn;
    redisReply *reply = r;

    if (conn->outstanding > 0)
        conn->outstanding--;
    if (reply)
        conn->last_reply_ms = cm_mono_ms();
    if (call->script >= 0 && reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        CM_DEBUG("redis: script %s not cached, sending its source",
                 cm_script_name((enum cm_script)call->script));
        if (call_send_script(call, true) == 0)
            return; /* the call lives on until the EVAL answer */
        reply = NULL;
    }
    call->fn(conn->srv, reply, call->priv);
    call_free(call);
}

static int call_send_argv(struct wk_call *call, int argc, const char **argv, const size_t *lens)
{
    struct wk_conn *conn = call->conn;
    if (!conn->ac || redisAsyncCommandArgv(conn->ac, call_done, call, argc, argv, lens) != REDIS_OK)
        return -1;
    conn_sent(conn);
    return 0;
}

static int call_send_script(struct wk_call *call, bool eval)
{
    enum cm_script s = (enum cm_script)call->script;
    int argc = call->argc + 3;
    const char **argv = cm_calloc((size_t)argc, sizeof(*argv));
    size_t *lens = cm_calloc((size_t)argc, sizeof(*lens));
    char nkeys[16];

    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? cm_script_source(s) : call->conn->sha[s];
    snprintf(nkeys, sizeof(nkeys), "%d", call->nkeys);
    argv[2] = nkeys;
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    for (int i = 0; i < call->argc; i++) {
        argv[i + 3] = call->argv[i];
        lens[i + 3] = call->lens[i];
    }
    int rc = call_send_argv(call, argc, argv, lens);
    free(argv);
    free(lens);
    return rc;
}

static struct wk_call *call_new(struct wk_conn *conn, wk_reply_fn *fn, void *priv)
{
    struct wk_call *call = cm_calloc(1, sizeof(*call));
    call->conn = conn;
    call->fn = fn;
    call->priv = priv;
    call->script = -1;
    return call;
}

/* Sends without checking readiness: setup commands go out before it. */
static int conn_send(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc, const char **argv,
                     const size_t *lens)
{
    struct wk_call *call = call_new(conn, fn, priv);
    if (call_send_argv(call, argc, argv, lens) != 0) {
        call_free(call);
        return -1;
    }
    return 0;
}

int wk_redis_command(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc, const char **argv,
                     const size_t *lens)
{
    if (!conn->ready)
        return -1;
    return conn_send(conn, fn, priv, argc, argv, lens);
}

int wk_redis_commandv(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc,
                      const char **argv)
{
    size_t lens[32];
    if (argc > (int)CM_ARRAY_LEN(lens))
        return -1;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return wk_redis_command(conn, fn, priv, argc, argv, lens);
}

int wk_redis_script(struct wk_conn *conn, enum cm_script script, int nkeys, int argc,
                    const char **argv, const size_t *lens, wk_reply_fn *fn, void *priv)
{
    if (!conn->ready)
        return -1;
    struct wk_call *call = call_new(conn, fn, priv);
    call->script = (int)script;
    call->nkeys = nkeys;
    call->argc = argc;
    call->argv = cm_calloc((size_t)argc, sizeof(*call->argv));
    call->lens = cm_calloc((size_t)argc, sizeof(*call->lens));
    for (int i = 0; i < argc; i++) {
        call->argv[i] = cm_strndup(argv[i], lens[i]);
        call->lens[i] = lens[i];
    }
    /* Before SCRIPT LOAD has answered there is no SHA: go straight to EVAL. */
    if (call_send_script(call, conn->sha[script][0] == '\0') != 0) {
        call_free(call);
        return -1;
    }
    return 0;
}

enum wk_reply_kind wk_reply_kind(const redisReply *reply)
{
    static const char *const transient[] = {
        "LOADING",    "BUSY",        "OOM",    "READONLY", "MASTERDOWN", "TRYAGAIN",
        "NOREPLICAS", "CLUSTERDOWN", "NOAUTH", "NOPERM",   "NOSCRIPT",
    };
    if (!reply)
        return WK_REPLY_LOST;
    if (reply->type != REDIS_REPLY_ERROR)
        return WK_REPLY_OK;
    for (size_t i = 0; i < CM_ARRAY_LEN(transient); i++) {
        size_t n = strlen(transient[i]);
        if (strncmp(reply->str, transient[i], n) == 0 &&
            (reply->str[n] == ' ' || reply->str[n] == '\0'))
            return WK_REPLY_TRANSIENT;
    }
    return WK_REPLY_FATAL;
}

const char *wk_reply_error(const redisReply *reply)
{
    if (!reply)
        return "connection lost";
    if (reply->type == REDIS_REPLY_ERROR)
        return reply->str;
    return "unexpected reply";
}

/* ---- connection life cycle ---------------------------------------------- */

/* Everything that has to happen once when a connection goes away, whichever
 * way it went: marks it down, tells the modules, schedules a reconnect. */
static void conn_lost(struct wk_conn *conn)
{
    bool was_ready = conn->ready;
    conn->ac = NULL;
    conn->ready = false;
    conn->outstanding = 0;
    conn->generation++;
    if (was_ready && conn->on_down)
        conn->on_down(conn->srv);
    if (!conn->srv->stopping)
        conn_schedule_retry(conn);
}

/* Frees the context from outside its callbacks (a timer, or shutdown). */
static void conn_drop(struct wk_conn *conn, const char *why)
{
    unsigned gen = conn->generation;
    redisAsyncContext *ac = conn->ac;
    if (!ac)
        return;
    CM_WARN("redis %s: dropping the connection: %s", conn->name, why);
    conn->dropping = true;
    redisAsyncFree(ac); /* runs on_disconnect if it had connected */
    conn->dropping = false;
    if (conn->generation == gen)
        conn_lost(conn);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct wk_conn *conn = ac->data;
    if (conn->srv->stopping || conn->dropping || (status == REDIS_OK && conn->setup_failed))
        CM_DEBUG("redis %s: closed", conn->name);
    else
        CM_WARN("redis %s: connection lost: %s", conn->name,
                status == REDIS_OK ? "closed" : ac->errstr);
    conn_lost(conn);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct wk_conn *conn = ac->data;
    if (status != REDIS_OK) {
        if (conn->attempt <= 1 || conn->attempt % 10 == 0)
            CM_WARN("redis %s: cannot connect to %s:%d: %s (attempt %d)", conn->name,
                    conn->srv->url.host, conn->srv->url.port, ac->errstr, conn->attempt);
        /* hiredis frees the context when we return; no disconnect callback. */
        conn_lost(conn);
        return;
    }
    redisEnableKeepAlive((redisContext *)&ac->c);
}

/* Runs when the last setup reply is in. */
static void conn_setup_done(struct wk_conn *conn)
{
    if (conn->setup_failed) {
        /* A clean disconnect; the disconnect callback then reconnects with
         * backoff, so a wrong password does not spin. */
        redisAsyncDisconnect(conn->ac);
        return;
    }
    conn->ready = true;
    conn->attempt = 0;
    CM_INFO("redis %s: connected to %s:%d db %d", conn->name, conn->srv->url.host,
            conn->srv->url.port, conn->srv->url.db);
    if (conn->on_ready)
        conn->on_ready(conn->srv);
}

static void setup_step(struct wk_conn *conn, redisReply *reply, const char *what)
{
    if (!reply)
        return; /* the connection is gone; conn_lost handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        /* The first failure says why (AUTH, usually); what follows it in the
         * pipeline fails for the same reason. Repeats are throttled like
         * connect failures. */
        if (!conn->setup_failed && (conn->attempt <= 1 || conn->attempt % 10 == 0))
            CM_ERROR("redis %s: %s failed: %s (attempt %d)", conn->name, what, reply->str,
                     conn->attempt);
        else
            CM_DEBUG("redis %s: %s failed: %s", conn->name, what, reply->str);
        conn->setup_failed = true;
    }
    if (--conn->setup_pending == 0)
        conn_setup_done(conn);
}

static void setup_auth_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    setup_step(priv, reply, "AUTH");
}

static void setup_select_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    setup_step(priv, reply, "SELECT");
}

static void setup_client_id_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    struct wk_conn *conn = priv;
    if (!reply)
        return;
    /* CLIENT may be denied by ACLs; the id only speeds up shutdown, so a
     * refusal is not a setup failure. */
    if (reply->type == REDIS_REPLY_INTEGER)
        conn->client_id = reply->integer;
    else
        CM_DEBUG("redis %s: CLIENT ID: %s", conn->name, wk_reply_error(reply));
    if (--conn->setup_pending == 0)
        conn_setup_done(conn);
}

static void setup_script_cb(struct wk_server *srv, redisReply *reply, void *priv)
{
    char *sha = priv; /* one of srv->cmd.sha[] */
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40)
        memcpy(sha, reply->str, 41);
    setup_step(&srv->cmd, reply, "SCRIPT LOAD");
}

static void conn_queue(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc,
                       const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (conn_send(conn, fn, priv, argc, argv, lens) == 0)
        conn->setup_pending++;
}

/* Pipelines AUTH, SELECT and the connection's own setup. */
static void conn_queue_setup(struct wk_conn *conn)
{
    const struct cm_redis_url *u = &conn->srv->url;
    char db[16];

    conn->setup_pending = 0;
    conn->setup_failed = false;
    if (u->password[0] && u->user[0])
        conn_queue(conn, setup_auth_cb, conn, 3, (const char *[]){"AUTH", u->user, u->password});
    else if (u->password[0])
        conn_queue(conn, setup_auth_cb, conn, 2, (const char *[]){"AUTH", u->password});
    if (u->db != 0) {
        snprintf(db, sizeof(db), "%d", u->db);
        conn_queue(conn, setup_select_cb, conn, 2, (const char *[]){"SELECT", db});
    }
    conn_queue(conn, setup_client_id_cb, conn, 2, (const char *[]){"CLIENT", "ID"});
    for (int s = 0; conn->load_scripts && s < CM_SCRIPT__COUNT; s++)
        conn_queue(conn, setup_script_cb, conn->sha[s], 3,
                   (const char *[]){"SCRIPT", "LOAD", cm_script_source((enum cm_script)s)});
}

void wk_conn_start(struct wk_conn *conn)
{
    struct wk_server *srv = conn->srv;
    conn->attempt++;
    conn->client_id = -1;
    conn->outstanding = 0;
    conn->started_ms = cm_mono_ms();
    redisAsyncContext *ac = redisAsyncConnect(srv->url.host, srv->url.port);
    if (!ac || ac->err) {
        CM_WARN("redis %s: cannot connect to %s:%d: %s", conn->name, srv->url.host, srv->url.port,
                ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_schedule_retry(conn);
        return;
    }
    ac->data = conn;
    conn->ac = ac;
    redisLibeventAttach(ac, srv->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    conn_queue_setup(conn);
}

static void conn_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wk_conn *conn = arg;
    if (!conn->srv->stopping && !conn->ac)
        wk_conn_start(conn);
}

/* Capped exponential backoff with jitter: the delay is drawn from
 * [d/2, d) where d doubles per attempt up to the cap, so that workers that
 * lost Redis together do not come back in lockstep. */
static void conn_schedule_retry(struct wk_conn *conn)
{
    int shift = conn->attempt < 16 ? conn->attempt : 16;
    int64_t d = (int64_t)WK_BACKOFF_BASE_MS << shift;
    if (d > WK_BACKOFF_CAP_MS)
        d = WK_BACKOFF_CAP_MS;
    int64_t delay = d / 2 + (int64_t)wk_server_random(conn->srv, (uint64_t)(d / 2) + 1);
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)(delay % 1000) * 1000};
    CM_DEBUG("redis %s: reconnecting in %" PRId64 " ms", conn->name, delay);
    evtimer_add(conn->retry, &tv);
}

void wk_conn_init(struct wk_conn *conn, struct wk_server *srv, const char *name, bool load_scripts,
                  int64_t stall_ms)
{
    memset(conn, 0, sizeof(*conn));
    conn->srv = srv;
    conn->name = name;
    conn->load_scripts = load_scripts;
    conn->stall_ms = stall_ms;
    conn->client_id = -1;
    conn->retry = evtimer_new(srv->base, conn_retry_cb, conn);
}

void wk_conn_close(struct wk_conn *conn)
{
    if (conn->ac) {
        unsigned gen = conn->generation;
        redisAsyncContext *ac = conn->ac;
        redisAsyncFree(ac);
        if (conn->generation == gen)
            conn_lost(conn);
    }
    if (conn->retry) {
        event_free(conn->retry);
        conn->retry = NULL;
    }
}

static void conn_watch(struct wk_conn *conn, int64_t now)
{
    char why[96];
    if (!conn->ac)
        return;
    if (!conn->ready && now - conn->started_ms > WK_CONNECT_TIMEOUT_MS) {
        snprintf(why, sizeof(why), "not ready after %d ms", WK_CONNECT_TIMEOUT_MS);
        conn_drop(conn, why);
    } else if (conn->ready && conn->outstanding > 0 && now - conn->last_reply_ms > conn->stall_ms) {
        snprintf(why, sizeof(why), "no reply for %" PRId64 " ms", now - conn->last_reply_ms);
        conn_drop(conn, why);
    }
}

void wk_redis_watchdog(struct wk_server *srv)
{
    int64_t now = cm_mono_ms();
    conn_watch(&srv->cmd, now);
    conn_watch(&srv->events, now);
}
