/*
 * One Redis connection that looks after itself: connect (with the host name
 * resolved off the loop when the owner can), AUTH and SELECT from the URL,
 * SCRIPT LOAD, reconnect with capped exponential backoff and jitter, a
 * watchdog that drops a link Redis stopped answering, EVALSHA with a
 * transparent EVAL fallback on NOSCRIPT, commands held and replayed across
 * drops and refusals that may pass, and, for a subscriber link, the set of
 * channels it should hold.
 *
 * It builds on hiredis's redisAsyncContext and knows no event loop: the
 * owner supplies one through struct cm_link_loop (hiredis adapter, timers,
 * name resolution), the way hiredis itself plugs into a loop through its
 * `ev` hooks. It knows nothing of what the commands mean either: it reports
 * through struct cm_link_hooks and answers each command through a
 * callback with a private pointer.
 *
 * Ownership: the owner creates a link with cm_link_new and frees it with
 * cm_link_free, never from inside one of the link's callbacks. Replies are
 * owned by hiredis and valid only during the callback.
 */
#ifndef CM_LINK_H
#define CM_LINK_H

#include "cm_redis_url.h"
#include "cm_scripts.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cm_link;

/* The owner's event loop. Every function is required except resolve. */
struct cm_link_loop {
    void *ctx; /* passed back to attach, timer_new and resolve */
    /* Puts ac on the loop (hiredis's ev hooks); stamps *last_read_ms with
     * cm_mono_ms() whenever Redis sends something, if it can. 0 or -1. */
    int (*attach)(void *ctx, redisAsyncContext *ac, int64_t *last_read_ms);
    /* A one-shot timer that calls fn(arg); start re-arms it. */
    void *(*timer_new)(void *ctx, void (*fn)(void *arg), void *arg);
    void (*timer_start)(void *timer, int64_t ms);
    void (*timer_stop)(void *timer);
    void (*timer_free)(void *timer);
    /* Resolves host off the loop and calls done once with its first address
     * (ip) or with NULL and a reason. Returns a handle for resolve_cancel,
     * after which done is never called; NULL if it failed at once. Without
     * it, hiredis resolves the name itself, blocking the loop. */
    void *(*resolve)(void *ctx, const char *host,
                     void (*done)(void *arg, const char *ip, const char *why), void *arg);
    void (*resolve_cancel)(void *handle);
};

/* What the link reports. Any may be NULL. */
struct cm_link_hooks {
    /* Set-up answered: commands may flow. Held commands were sent just
     * before. Runs after every (re)connect. */
    void (*ready)(struct cm_link *l, void *owner);
    /* A ready link went down; it reconnects by itself. Subscriptions are
     * gone until `subscribed` reports them again. */
    void (*lost)(struct cm_link *l, void *owner);
    /* A pub/sub message on a subscribed channel. */
    void (*message)(struct cm_link *l, void *owner, const char *channel, size_t channel_len,
                    const char *data, size_t len);
    /* Redis confirmed a channel asked for with cm_link_subscribe (also
     * after a reconnect): messages published from now on arrive. */
    void (*subscribed)(struct cm_link *l, void *owner, const char *channel, size_t channel_len);
    /* Redis ended a sharded subscription on its own: the channel's slot
     * moved to another node. The link has forgotten the channel. */
    void (*dropped)(struct cm_link *l, void *owner, const char *channel, size_t channel_len);
};

struct cm_link_opts {
    const char *name;                /* for logs: "command", "pub/sub", ... (static) */
    const struct cm_redis_url *url;  /* copied */
    const struct cm_link_loop *loop; /* must outlive the link */
    const struct cm_link_hooks *hooks;
    void *owner;                     /* passed to the hooks */
    bool subscriber;                 /* a pub/sub link: no other commands */
    const enum cm_script *scripts;   /* SCRIPT LOADed at set-up */
    size_t nscripts;
    bool client_id;                  /* ask CLIENT ID at set-up (cm_link_client_id) */
    int64_t timeout_ms;              /* a reply owed and nothing read for this long: drop */
    int64_t connect_timeout_ms;      /* set-up unanswered for this long: drop */
    int64_t watch_ms;                /* how often the watchdog looks (and probes) */
    /* A command link: while nothing else is in flight, a PING every this
     * many ms, so that a Redis that stopped answering is noticed while idle
     * too (0: none). A subscriber link: a PUBLISH to probe_channel, sent on
     * probe_via, that must come back (the whole pub/sub path works). */
    int64_t probe_ms;
    const char *probe_channel; /* subscriber: subscribed at set-up; its other messages are reported */
    struct cm_link *probe_via; /* subscriber: the command link that publishes the probes */
    size_t held_max;           /* held commands kept while down; the oldest is dropped past it */
};

/* Called once per command. reply is NULL when the link dropped before the
 * answer came (whether Redis ran the command is then unknown) or the link
 * is being freed. */
typedef void cm_link_reply_fn(redisReply *reply, void *priv);

/* How a reply should be treated by a caller that may retry. */
enum cm_reply_kind {
    CM_REPLY_OK,        /* not an error */
    CM_REPLY_LOST,      /* NULL: the link went away; the effect is unknown */
    CM_REPLY_TRANSIENT, /* an error that may pass: LOADING, BUSY, OOM, READONLY, ... */
    CM_REPLY_FATAL,     /* an error that retrying the same command will repeat */
};

struct cm_link *cm_link_new(const struct cm_link_opts *opts);
/* Starts connecting; later attempts are the link's own business. */
void cm_link_start(struct cm_link *l);
/* Drops the connection: pending callbacks run with NULL (held commands are
 * dropped, with a warning if any were never answered). Accepts NULL. Not
 * from inside one of the link's own callbacks. */
void cm_link_free(struct cm_link *l);

/* Connected, authenticated and set up. */
bool cm_link_ready(const struct cm_link *l);
/* CLIENT ID of the current connection, or -1. */
long long cm_link_client_id(const struct cm_link *l);
/* Held commands not yet answered (waiting, or sent and unanswered). */
size_t cm_link_held_count(const struct cm_link *l);
/* Held commands Redis refused with an error that may pass, each kept and
 * sent again (a counter since cm_link_new). */
uint64_t cm_link_held_retries(const struct cm_link *l);

/* Sends one command. 0: fn will be called exactly once. -1: the link is not
 * ready (or is being freed) and fn will never be called. Arguments are
 * copied before return. */
int cm_link_command(struct cm_link *l, cm_link_reply_fn *fn, void *priv, int argc,
                    const char **argv, const size_t *lens);
/* As cm_link_command, for NUL-terminated arguments (at most 32). */
int cm_link_commandv(struct cm_link *l, cm_link_reply_fn *fn, void *priv, int argc,
                     const char **argv);
/* Runs a script with EVALSHA, or EVAL with its source when Redis does not
 * have it cached (NOSCRIPT): argv holds nkeys keys, then the other
 * arguments, argc in all. Same contract as cm_link_command. */
int cm_link_script(struct cm_link *l, enum cm_script script, int nkeys, int argc,
                   const char **argv, const size_t *lens, cm_link_reply_fn *fn, void *priv);
/* Sends a command that must reach Redis even across outages: kept while
 * the link is down, sent in order when it is back, and sent again if the
 * link drops before Redis answers it (so it must be safe to replay).
 *
 * An error that may pass (CM_REPLY_TRANSIENT: READONLY, OOM, NOREPLICAS,
 * LOADING, ...) does not drop it either: it is sent again after a capped
 * backoff with jitter, as often as it takes. Order: no held command is sent
 * while one is backing off, and the held commands that were already sent
 * behind the refused one are sent again after it, whatever Redis answered
 * them. So held commands take effect in the order given, except that one
 * pipelined behind a refused one may take effect early as well (then it
 * runs twice, once out of order and once in order, as on a drop). Any
 * other error is logged and the command dropped.
 *
 * Never fails; the oldest is dropped past held_max; while the link is being
 * freed it is dropped. */
void cm_link_send_held(struct cm_link *l, int argc, const char **argv, const size_t *lens);

/* The wall-clock time (ms) after which a command sent now must not take
 * effect: the earliest moment the watchdog could drop the link and answer
 * its callback with NULL. */
int64_t cm_link_deadline_ms(struct cm_link *l);

/* Subscriber links: the link keeps the set of channels asked for, sends
 * SUBSCRIBE and UNSUBSCRIBE so that the two are never in flight together
 * for one channel, and subscribes them all again after a reconnect.
 * `subscribed` reports each confirmation. Asking for a channel already held
 * or already asked for does nothing. */
void cm_link_subscribe(struct cm_link *l, const char *channel);
/* The same with SSUBSCRIBE, Redis Cluster's sharded pub/sub: only the node
 * that owns the channel's slot accepts it (any other answers MOVED, which
 * hiredis 0.14 takes for a broken connection: the link reconnects). */
void cm_link_ssubscribe(struct cm_link *l, const char *channel);
void cm_link_unsubscribe(struct cm_link *l, const char *channel);

enum cm_reply_kind cm_reply_kind(const redisReply *reply);
/* The error text of a reply for logs: "connection lost" for NULL. */
const char *cm_reply_error(const redisReply *reply);

#endif
