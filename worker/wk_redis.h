/*
 * The worker's Redis connections: hiredis async contexts on the worker's
 * libevent loop, with reconnect (capped exponential backoff and jitter),
 * AUTH and SELECT from the --redis URL, the Lua scripts loaded on connect,
 * EVALSHA with a NOSCRIPT fallback to EVAL, and a watchdog that drops a
 * connection that stops answering.
 *
 * Ownership: a struct wk_conn lives inside struct wk_server and is never
 * freed on its own. Its hiredis context is owned by hiredis once connected:
 * after the disconnect callback hiredis frees it, so the callback only sets
 * conn->ac to NULL. We free a context ourselves (redisAsyncFree) only from a
 * timer or at shutdown, never from inside one of its own callbacks.
 */
#ifndef WK_REDIS_H
#define WK_REDIS_H

#include "cm_scripts.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wk_server;
struct event;

/*
 * Called once per command with its reply. reply is NULL when the connection
 * was lost or torn down before the answer came; it is owned by hiredis and
 * valid only during the call.
 */
typedef void wk_reply_fn(struct wk_server *srv, redisReply *reply, void *priv);

struct wk_conn {
    struct wk_server *srv;
    const char *name;               /* "commands" or "events", for logs */
    redisAsyncContext *ac;          /* NULL while down */
    bool ready;                     /* connected, authenticated, set up */
    bool setup_failed;              /* a setup command failed: disconnect when setup ends */
    bool dropping;                  /* we are freeing the context ourselves */
    bool load_scripts;              /* SCRIPT LOAD every script on connect */
    int setup_pending;              /* setup replies still awaited */
    int attempt;                    /* connection attempts since the last success */
    int outstanding;                /* commands sent whose reply has not come */
    int64_t started_ms;             /* monotonic time the current attempt began */
    int64_t last_reply_ms;          /* monotonic time of the last reply (or of the first send) */
    int64_t stall_ms;               /* no reply for this long while one is owed: drop */
    long long client_id;            /* CLIENT ID of this connection, -1 if unknown */
    unsigned generation;            /* bumped whenever the connection is lost */
    struct event *retry;            /* reconnect timer */
    char sha[CM_SCRIPT__COUNT][41]; /* SHA1 of each script, from SCRIPT LOAD */
    /* Called when setup completes and when the connection is lost. */
    void (*on_ready)(struct wk_server *srv);
    void (*on_down)(struct wk_server *srv);
};

/* How a reply should be treated by a caller that may retry. */
enum wk_reply_kind {
    WK_REPLY_OK,        /* not an error */
    WK_REPLY_LOST,      /* NULL: the connection went away; the effect is unknown */
    WK_REPLY_TRANSIENT, /* an error that may pass: LOADING, BUSY, OOM, READONLY, ... */
    WK_REPLY_FATAL,     /* an error that retrying the same command will repeat */
};

/* Prepares conn (no I/O yet). name must be a static string. */
void wk_conn_init(struct wk_conn *conn, struct wk_server *srv, const char *name, bool load_scripts,
                  int64_t stall_ms);
/* Starts connecting; later attempts are scheduled by the connection itself. */
void wk_conn_start(struct wk_conn *conn);
/* Drops the connection (if any) and frees the timer. Pending callbacks run
 * with a NULL reply. Must not be called from inside one of its callbacks. */
void wk_conn_close(struct wk_conn *conn);

/*
 * Sends one command. Returns 0 when queued, in which case fn will be called
 * exactly once; or -1 when the connection is not ready, in which case fn is
 * never called. argv/lens are copied before return.
 */
int wk_redis_command(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc, const char **argv,
                     const size_t *lens);
/* As wk_redis_command, for NUL-terminated arguments. */
int wk_redis_commandv(struct wk_conn *conn, wk_reply_fn *fn, void *priv, int argc,
                      const char **argv);

/*
 * Runs a script with EVALSHA; on NOSCRIPT (the script cache was flushed) it
 * runs it again with EVAL and the embedded source, transparently. argv holds
 * nkeys keys followed by the other arguments, argc in all. Same return and
 * callback contract as wk_redis_command.
 */
int wk_redis_script(struct wk_conn *conn, enum cm_script script, int nkeys, int argc,
                    const char **argv, const size_t *lens, wk_reply_fn *fn, void *priv);

/* Classifies a reply (NULL allowed). */
enum wk_reply_kind wk_reply_kind(const redisReply *reply);
/* The error text of a reply for logs: "connection lost" for NULL. */
const char *wk_reply_error(const redisReply *reply);

/* Drops connections that have not connected in time or stopped answering.
 * Called from the sweep timer. */
void wk_redis_watchdog(struct wk_server *srv);

#endif
