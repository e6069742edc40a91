/*
 * A Redis link. See cm_link.h for the contract.
 *
 * hiredis 0.14 facts this file relies on (async.c of that release):
 * - Commands may be queued before the connection is up; they are written
 *   once connect(2) completes, so the set-up (AUTH, SELECT, CLIENT ID,
 *   SCRIPT LOAD, a subscriber's first SUBSCRIBE) is pipelined at once.
 * - A failed connect calls the connect callback with REDIS_ERR, then frees
 *   the context and runs the queued callbacks with a NULL reply. There is
 *   no disconnect callback for a context that never connected.
 * - A lost connection (or redisAsyncFree) runs every pending callback with
 *   a NULL reply, in the order the commands were sent, then the disconnect
 *   callback, then frees the context.
 * - Replies come in the order the commands were sent, so the calls in
 *   flight form a queue whose head is the oldest unanswered command.
 * - Pub/sub callbacks are kept per channel, so a SUBSCRIBE and an
 *   UNSUBSCRIBE of one channel must never be in flight together (the
 *   unsubscribe confirmation would delete the new subscription's callback).
 *
 * Held commands: kept in `held` while they wait, and in flight like any
 * other call once sent. When the link drops, hiredis answers the calls in
 * flight with NULL in send order, and each held one goes back into `held`
 * after the one before it (requeue_at), ahead of those that never left.
 *
 * A refusal that may pass (cm_reply_kind: READONLY, OOM, NOREPLICAS, ...)
 * is handled like a drop of the held commands alone: the refused one goes
 * back to the front of `held`, and every held call sent after it is marked
 * `replay` and goes back after it whatever its answer, because Redis may
 * have run it ahead of the refused one. No held command is sent until the
 * backoff has passed and every marked call is back; then they all go out
 * again in their first order. A held call that Redis ran early runs again,
 * which the replay contract (cm_link.h) already allows.
 */
#include "cm_link.h"

#include "cm_log.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <uthash.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PROBE_MESSAGE "{\"type\":\"probe\"}"

/* One command: in flight, or held and waiting. */
struct call {
    struct call *next;
    struct cm_link *link;
    cm_link_reply_fn *fn; /* NULL for the link's own commands that need no answer */
    void *priv;
    int64_t sent_ms;
    int script; /* enum cm_script, or -1 */
    int nkeys;
    bool held;
    bool replay; /* held, sent behind one that was refused: back into held whatever the answer */
    int argc;    /* copied arguments (scripts and held commands), else 0 */
    char **argv;
    size_t *lens;
};

enum chan_state { CHAN_NONE, CHAN_PENDING, CHAN_ACTIVE, CHAN_LEAVING };

/* A channel of a subscriber link. */
struct chan {
    enum chan_state state;
    bool want;    /* the owner asked for it */
    bool sharded; /* SSUBSCRIBE (Redis Cluster's sharded pub/sub) */
    UT_hash_handle hh;
    char name[]; /* NUL-terminated */
};

struct cm_link {
    struct cm_link_opts o;
    struct cm_redis_url url;
    char *probe_channel;
    redisAsyncContext *ac; /* NULL while down */
    bool ready;
    bool dropping;     /* we are freeing the context ourselves */
    bool freeing;      /* cm_link_free is running */
    bool setup_failed; /* a set-up command failed: disconnect when the set-up ends */
    int setup_pending;
    unsigned attempt;    /* connection attempts since the last success */
    unsigned generation; /* bumped whenever the connection is lost */
    int64_t connect_ms;  /* when the current attempt started */
    int64_t last_read_ms;
    int64_t last_probe_ms;   /* when the last probe went out */
    int64_t probe_sent_ms;   /* subscriber: an unanswered probe's time, 0: none */
    struct call *inflight, *inflight_tail;
    struct call *held, *held_tail;
    struct call *requeue_at; /* the last held call a drop gave back */
    size_t nheld;            /* waiting in held */
    size_t nheld_inflight;   /* held calls sent and unanswered */
    size_t nreplay;          /* held calls in flight marked replay */
    bool held_backoff;       /* a held command was refused: none is sent until held_timer */
    unsigned held_refusals;  /* refusals in a row, for the backoff */
    uint64_t held_retries;   /* held commands refused and kept to send again */
    long long client_id;
    char sha[CM_SCRIPT__COUNT][41];
    void *retry_timer, *watch_timer, *held_timer;
    void *resolving;
    struct chan *chans;
};

static void link_connect(struct cm_link *l);
static void link_connect_to(struct cm_link *l, const char *host);
static void held_flush(struct cm_link *l);

/* Capped exponential, with full jitter in the upper half, so a fleet of
 * processes that met the same trouble together does not come back in
 * lock-step. attempt counts from 1. */
static int64_t backoff_ms(unsigned attempt)
{
    int64_t cap = (int64_t)BACKOFF_MIN_MS << (attempt < 6 ? attempt : 6);
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    return cap / 2 + (int64_t)cm_random_below((uint64_t)(cap / 2 + 1));
}

/* ---- calls ---- */

static struct call *call_new(struct cm_link *l, cm_link_reply_fn *fn, void *priv)
{
    struct call *c = cm_calloc(1, sizeof(*c));
    c->link = l;
    c->fn = fn;
    c->priv = priv;
    c->script = -1;
    return c;
}

static void call_copy_args(struct call *c, int argc, const char **argv, const size_t *lens)
{
    c->argc = argc;
    c->argv = cm_malloc((size_t)argc * sizeof(*c->argv));
    c->lens = cm_malloc((size_t)argc * sizeof(*c->lens));
    for (int i = 0; i < argc; i++) {
        c->argv[i] = cm_strndup(argv[i], lens[i]);
        c->lens[i] = lens[i];
    }
}

static void call_free(struct call *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->lens);
    free(c);
}

static void inflight_push(struct cm_link *l, struct call *c)
{
    c->next = NULL;
    c->sent_ms = cm_mono_ms();
    if (l->inflight_tail)
        l->inflight_tail->next = c;
    else
        l->inflight = c;
    l->inflight_tail = c;
    if (c->held)
        l->nheld_inflight++;
}

/* Takes c off the in-flight queue; it is the head unless Redis broke the
 * order, which hiredis does not let happen. */
static void inflight_remove(struct cm_link *l, struct call *c)
{
    struct call **pp = &l->inflight, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = c->next;
    if (l->inflight_tail == c)
        l->inflight_tail = prev;
    c->next = NULL;
    if (c->held)
        l->nheld_inflight--;
}

static void call_done(redisAsyncContext *ac, void *r, void *privdata);

static int call_send_argv(struct call *c, int argc, const char **argv, const size_t *lens)
{
    struct cm_link *l = c->link;
    if (!l->ac || redisAsyncCommandArgv(l->ac, call_done, c, argc, argv, lens) != REDIS_OK)
        return -1;
    inflight_push(l, c);
    return 0;
}

/* Sends a script call as EVALSHA, or as EVAL with its source. */
static int call_send_script(struct call *c, bool eval)
{
    enum cm_script s = (enum cm_script)c->script;
    const char *args[40];
    size_t lens[40];
    char nkeys[16];
    if (c->argc + 3 > (int)CM_ARRAY_LEN(args))
        return -1;
    snprintf(nkeys, sizeof(nkeys), "%d", c->nkeys);
    args[0] = eval ? "EVAL" : "EVALSHA";
    args[1] = eval ? cm_script_source(s) : c->link->sha[s];
    args[2] = nkeys;
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(args[i]);
    for (int i = 0; i < c->argc; i++) {
        args[i + 3] = c->argv[i];
        lens[i + 3] = c->lens[i];
    }
    return call_send_argv(c, c->argc + 3, args, lens);
}

static void held_insert(struct cm_link *l, struct call *after, struct call *c)
{
    struct call **pp = after ? &after->next : &l->held;
    c->next = *pp;
    *pp = c;
    if (!c->next)
        l->held_tail = c;
    l->nheld++;
}

static struct call *held_pop(struct cm_link *l)
{
    struct call *c = l->held;
    l->held = c->next;
    if (!l->held)
        l->held_tail = NULL;
    if (l->requeue_at == c)
        l->requeue_at = NULL;
    l->nheld--;
    c->next = NULL;
    return c;
}

/* Puts a held call that must go out again back into held, after the one
 * given back before it. */
static void held_requeue(struct cm_link *l, struct call *c)
{
    held_insert(l, l->requeue_at, c);
    l->requeue_at = c;
}

/* Redis refused c with an error that may pass. c goes back to the front
 * (everything still waiting was given after it was sent), and every held
 * call sent after it will follow it back (held_done); they all go out
 * again once the backoff has passed. */
static void held_refused(struct cm_link *l, struct call *c, const redisReply *reply)
{
    for (struct call *i = l->inflight; i; i = i->next) {
        if (i->held && !i->replay) {
            i->replay = true;
            l->nreplay++;
        }
    }
    l->requeue_at = NULL;
    held_requeue(l, c);
    l->held_retries++;
    l->held_backoff = true;
    int64_t delay = backoff_ms(++l->held_refusals);
    char behind[64] = "";
    if (l->nreplay)
        snprintf(behind, sizeof(behind), ", with the %zu sent after it,", l->nreplay);
    /* Once per episode at WARN; the refusals that follow at DEBUG. */
    cm_log(l->held_refusals == 1 || l->held_refusals % 10 == 0 ? CM_LOG_WARN : CM_LOG_DEBUG,
           "redis %s link: Redis refused a held command (%s); sending it again%s in %lld ms "
           "(refusal %u)",
           l->o.name, reply->str, behind, (long long)delay, l->held_refusals);
    l->o.loop->timer_start(l->held_timer, delay);
}

/* The answer to a held command. */
static void held_done(struct cm_link *l, struct call *c, redisReply *reply)
{
    bool replay = c->replay;
    if (replay) {
        c->replay = false;
        l->nreplay--;
    }
    if (l->freeing) {
        call_free(c);
        return;
    }
    if (!reply || replay) {
        /* Lost: Redis may or may not have it. Behind a refused one: Redis
         * may have run it first. Either way: again, in its place. */
        held_requeue(l, c);
        if (reply)
            held_flush(l); /* the last one back may end the wait */
        return;
    }
    if (cm_reply_kind(reply) == CM_REPLY_TRANSIENT) {
        held_refused(l, c, reply);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        CM_WARN("redis %s link: a held command failed for good, dropping it: %s", l->o.name,
                reply->str);
    else if (l->held_refusals)
        CM_INFO("redis %s link: Redis takes held commands again (after %u refusals)", l->o.name,
                l->held_refusals);
    l->held_refusals = 0;
    call_free(c);
}

static void call_done(redisAsyncContext *ac, void *r, void *privdata)
{
    struct call *c = privdata;
    struct cm_link *l = c->link;
    redisReply *reply = r;

    inflight_remove(l, c);
    if (reply)
        l->last_read_ms = cm_mono_ms();
    if (c->held) {
        held_done(l, c, reply);
        return;
    }
    if (c->script >= 0 && reply && reply->type == REDIS_REPLY_ERROR &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* The script cache was flushed (SCRIPT FLUSH, a restart, a failover
         * to a replica that never saw SCRIPT LOAD). The script did not run:
         * send its source; EVAL caches it again for the next EVALSHA. */
        CM_DEBUG("redis %s link: script %s not cached, sending its source", l->o.name,
                 cm_script_name((enum cm_script)c->script));
        if (call_send_script(c, true) == 0)
            return;
        reply = NULL;
    }
    if (c->fn)
        c->fn(reply, c->priv);
    call_free(c);
}

/* ---- sending ---- */

int cm_link_command(struct cm_link *l, cm_link_reply_fn *fn, void *priv, int argc,
                    const char **argv, const size_t *lens)
{
    if (!l->ready || l->o.subscriber || l->freeing)
        return -1;
    struct call *c = call_new(l, fn, priv);
    if (call_send_argv(c, argc, argv, lens) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

int cm_link_commandv(struct cm_link *l, cm_link_reply_fn *fn, void *priv, int argc,
                     const char **argv)
{
    size_t lens[32];
    if (argc > (int)CM_ARRAY_LEN(lens))
        return -1;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return cm_link_command(l, fn, priv, argc, argv, lens);
}

int cm_link_script(struct cm_link *l, enum cm_script script, int nkeys, int argc,
                   const char **argv, const size_t *lens, cm_link_reply_fn *fn, void *priv)
{
    if (!l->ready || l->o.subscriber || l->freeing)
        return -1;
    struct call *c = call_new(l, fn, priv);
    c->script = (int)script;
    c->nkeys = nkeys;
    call_copy_args(c, argc, argv, lens);
    /* Before SCRIPT LOAD has answered there is no SHA: EVAL at once. */
    if (call_send_script(c, l->sha[script][0] == '\0') != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

/* Held commands go out only on a ready link, after a refusal's backoff,
 * and once every call that follows the refused one back is back. */
static bool held_may_send(const struct cm_link *l)
{
    return l->ready && !l->held_backoff && l->nreplay == 0;
}

static int held_send(struct cm_link *l, struct call *c)
{
    if (!held_may_send(l))
        return -1;
    return call_send_argv(c, c->argc, (const char **)c->argv, c->lens);
}

/* Sends everything held, in order, if it may go out now. */
static void held_flush(struct cm_link *l)
{
    if (!held_may_send(l))
        return;
    l->requeue_at = NULL; /* what the last connection or refusal gave back is all back */
    if (l->nheld && l->held_refusals)
        CM_DEBUG("redis %s link: sending %zu held commands again", l->o.name, l->nheld);
    else if (l->nheld)
        CM_INFO("redis %s link: sending %zu commands held while Redis was unreachable",
                l->o.name, l->nheld);
    while (l->held) {
        struct call *c = held_pop(l);
        if (held_send(l, c) != 0) {
            held_insert(l, NULL, c);
            return;
        }
    }
}

void cm_link_send_held(struct cm_link *l, int argc, const char **argv, const size_t *lens)
{
    if (l->freeing)
        return;
    struct call *c = call_new(l, NULL, NULL);
    c->held = true;
    call_copy_args(c, argc, argv, lens);
    if (!l->held && held_send(l, c) == 0)
        return;
    if (l->o.held_max && l->nheld >= l->o.held_max) {
        CM_WARN("redis %s link: %zu commands held: dropping the oldest", l->o.name, l->nheld);
        call_free(held_pop(l));
    }
    held_insert(l, l->held_tail, c);
}

size_t cm_link_held_count(const struct cm_link *l)
{
    return l->nheld + l->nheld_inflight;
}

uint64_t cm_link_held_retries(const struct cm_link *l)
{
    return l->held_retries;
}

int64_t cm_link_deadline_ms(struct cm_link *l)
{
    int64_t now = cm_mono_ms();
    int64_t since = l->inflight ? l->inflight->sent_ms : now;
    /* The watchdog drops the link only once the oldest unanswered command
     * is older than the timeout (and nothing was read for as long); a
     * command sent now is answered, or dropped, no earlier than that. */
    return cm_now_ms() + (since + l->o.timeout_ms - now);
}

/* ---- subscriptions ---- */

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv);

static int sub_send(struct cm_link *l, const char *verb, const char *channel)
{
    const char *argv[] = {verb, channel};
    size_t lens[] = {strlen(verb), strlen(channel)};
    if (!l->ac)
        return -1;
    return redisAsyncCommandArgv(l->ac, on_sub_reply, l, 2, argv, lens) == REDIS_OK ? 0 : -1;
}

static struct chan *chan_find(struct cm_link *l, const char *name, size_t len)
{
    struct chan *ch;
    HASH_FIND(hh, l->chans, name, len, ch);
    return ch;
}

static void chan_forget(struct cm_link *l, struct chan *ch)
{
    HASH_DEL(l->chans, ch);
    free(ch);
}

/* A sharded channel is asked for twice: hiredis 0.14 knows no SSUBSCRIBE
 * and files pub/sub callbacks only under the names a SUBSCRIBE gave, so a
 * SUBSCRIBE first makes it route the `ssubscribe`, `smessage` and
 * `sunsubscribe` replies for that name to on_sub_reply. The classic
 * subscription it also makes costs nothing: nobody PUBLISHes to a sharded
 * channel. */
static void chan_subscribe(struct cm_link *l, struct chan *ch)
{
    if (!l->ready || sub_send(l, "SUBSCRIBE", ch->name) != 0)
        return;
    if (!ch->sharded || sub_send(l, "SSUBSCRIBE", ch->name) == 0)
        ch->state = CHAN_PENDING;
}

/* The reverse: SUNSUBSCRIBE, then the UNSUBSCRIBE whose answer makes
 * hiredis drop the callback, which ends it (chan_on_unsubscribe). */
static void chan_unsubscribe(struct cm_link *l, struct chan *ch)
{
    if (ch->sharded && ch->state == CHAN_ACTIVE && sub_send(l, "SUNSUBSCRIBE", ch->name) != 0)
        return;
    if (sub_send(l, "UNSUBSCRIBE", ch->name) == 0)
        ch->state = CHAN_LEAVING;
}

static void chan_want(struct cm_link *l, const char *channel, bool sharded)
{
    size_t len = strlen(channel);
    struct chan *ch = chan_find(l, channel, len);
    if (!ch) {
        ch = cm_calloc(1, sizeof(*ch) + len + 1);
        memcpy(ch->name, channel, len + 1);
        HASH_ADD(hh, l->chans, name, len, ch);
    }
    if (ch->state == CHAN_NONE)
        ch->sharded = sharded;
    ch->want = true;
    if (ch->state == CHAN_NONE)
        chan_subscribe(l, ch);
    /* PENDING or ACTIVE: already there; LEAVING: again once that is done. */
}

void cm_link_subscribe(struct cm_link *l, const char *channel)
{
    chan_want(l, channel, false);
}

void cm_link_ssubscribe(struct cm_link *l, const char *channel)
{
    chan_want(l, channel, true);
}

void cm_link_unsubscribe(struct cm_link *l, const char *channel)
{
    struct chan *ch = chan_find(l, channel, strlen(channel));
    if (!ch)
        return;
    ch->want = false;
    if (ch->state == CHAN_NONE)
        chan_forget(l, ch);
    else if (ch->state == CHAN_ACTIVE)
        chan_unsubscribe(l, ch);
    /* PENDING: unsubscribed once confirmed; LEAVING: under way. */
}

static void chan_on_subscribe(struct cm_link *l, const char *name, size_t len)
{
    struct chan *ch = chan_find(l, name, len);
    if (!ch || ch->state != CHAN_PENDING)
        return;
    ch->state = CHAN_ACTIVE;
    if (!ch->want) {
        chan_unsubscribe(l, ch);
        return;
    }
    if (l->o.hooks && l->o.hooks->subscribed)
        l->o.hooks->subscribed(l, l->o.owner, name, len);
}

/* Redis ended a sharded subscription nobody asked to end: its slot moved
 * to another node (Redis 7 tells every subscriber when it loses a slot).
 * The classic half is dropped too, and the owner told, so that it can ask
 * the slot's new owner. */
static void chan_on_moved(struct cm_link *l, const char *name, size_t len)
{
    struct chan *ch = chan_find(l, name, len);
    if (!ch || !ch->sharded || ch->state != CHAN_ACTIVE)
        return;
    bool wanted = ch->want;
    ch->want = false;
    if (sub_send(l, "UNSUBSCRIBE", ch->name) == 0)
        ch->state = CHAN_LEAVING;
    else
        chan_forget(l, ch);
    if (wanted && l->o.hooks && l->o.hooks->dropped)
        l->o.hooks->dropped(l, l->o.owner, name, len);
}

static void chan_on_unsubscribe(struct cm_link *l, const char *name, size_t len)
{
    struct chan *ch = chan_find(l, name, len);
    if (!ch || ch->state != CHAN_LEAVING)
        return;
    ch->state = CHAN_NONE;
    if (ch->want)
        chan_subscribe(l, ch);
    else
        chan_forget(l, ch);
}

/* A new connection holds no channel: ask again for those wanted. */
static void chans_resubscribe(struct cm_link *l)
{
    struct chan *ch, *tmp;
    HASH_ITER(hh, l->chans, ch, tmp) {
        ch->state = CHAN_NONE;
        if (ch->want)
            chan_subscribe(l, ch);
        else
            chan_forget(l, ch);
    }
}

static void chans_lost(struct cm_link *l)
{
    struct chan *ch, *tmp;
    HASH_ITER(hh, l->chans, ch, tmp) {
        ch->state = CHAN_NONE;
        if (!ch->want)
            chan_forget(l, ch);
    }
}

/* ---- set-up ---- */

static void setup_done(struct cm_link *l)
{
    if (--l->setup_pending > 0)
        return;
    if (l->setup_failed) {
        /* A clean disconnect: the reconnect backs off, so a wrong password
         * does not spin. */
        redisAsyncDisconnect(l->ac);
        return;
    }
    l->ready = true;
    l->attempt = 0;
    CM_INFO("redis %s link ready (%s:%d)", l->o.name, l->url.host, l->url.port);
    if (l->o.subscriber)
        chans_resubscribe(l);
    else
        held_flush(l);
    if (l->o.hooks && l->o.hooks->ready)
        l->o.hooks->ready(l, l->o.owner);
}

struct setup_step {
    struct cm_link *link;
    const char *what;
    int script; /* SCRIPT LOAD of this script, or -1 */
};

static void on_setup_reply(redisReply *reply, void *priv)
{
    struct setup_step *st = priv;
    struct cm_link *l = st->link;
    if (!reply || l->freeing) {
        free(st);
        return; /* the connection is gone; link_lost handles it */
    }
    if (reply->type == REDIS_REPLY_ERROR && st->script == -2) {
        /* CLIENT may be denied by ACLs; the id is a nicety, not a need. */
        CM_DEBUG("redis %s link: CLIENT ID: %s", l->o.name, reply->str);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* The first failure says why (AUTH, usually); what follows fails
         * for the same reason. Repeats are throttled like connects. */
        if (!l->setup_failed && (l->attempt <= 1 || l->attempt % 10 == 0))
            CM_ERROR("redis %s link: %s failed: %s (attempt %u)", l->o.name, st->what, reply->str,
                     l->attempt);
        l->setup_failed = true;
    } else if (st->script >= 0 && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(l->sha[st->script], reply->str, 41);
    } else if (st->script == -2 && reply->type == REDIS_REPLY_INTEGER) {
        l->client_id = reply->integer;
    }
    free(st);
    setup_done(l);
}

static void setup_send(struct cm_link *l, const char *what, int script, int argc,
                       const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    struct setup_step *st = cm_malloc(sizeof(*st));
    *st = (struct setup_step){.link = l, .what = what, .script = script};
    struct call *c = call_new(l, on_setup_reply, st);
    if (call_send_argv(c, argc, argv, lens) != 0) {
        call_free(c);
        free(st);
        return;
    }
    l->setup_pending++;
}

/* Pipelines the whole set-up; the link is ready when the last answer is in. */
static void setup_start(struct cm_link *l)
{
    const struct cm_redis_url *u = &l->url;
    char db[16];
    l->setup_pending = 1; /* held until every set-up command is queued */
    l->setup_failed = false;
    if (u->password[0] && u->user[0])
        setup_send(l, "AUTH", -1, 3, (const char *[]){"AUTH", u->user, u->password});
    else if (u->password[0])
        setup_send(l, "AUTH", -1, 2, (const char *[]){"AUTH", u->password});
    if (u->db != 0 && !l->o.subscriber) {
        snprintf(db, sizeof(db), "%d", u->db);
        setup_send(l, "SELECT", -1, 2, (const char *[]){"SELECT", db});
    }
    if (l->o.client_id)
        setup_send(l, "CLIENT ID", -2, 2, (const char *[]){"CLIENT", "ID"});
    for (size_t i = 0; i < l->o.nscripts; i++)
        setup_send(l, "SCRIPT LOAD", (int)l->o.scripts[i], 3,
                   (const char *[]){"SCRIPT", "LOAD", cm_script_source(l->o.scripts[i])});
    if (l->o.subscriber && l->probe_channel && sub_send(l, "SUBSCRIBE", l->probe_channel) == 0)
        l->setup_pending++; /* its confirmation ends the set-up */
    setup_done(l);
}

/* Every pub/sub reply: confirmations and messages. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct cm_link *l = priv;
    redisReply *reply = r;
    if (!reply || l->freeing || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    l->last_read_ms = cm_mono_ms();
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1], *data = reply->element[2];
    bool own = l->probe_channel && strcmp(chan->str, l->probe_channel) == 0;

    /* smessage, ssubscribe, sunsubscribe: as their classic kin, but sharded */
    bool sharded = kind[0] == 's' && (strcmp(kind + 1, "message") == 0 ||
                                      strcmp(kind + 1, "subscribe") == 0 ||
                                      strcmp(kind + 1, "unsubscribe") == 0);
    if (sharded)
        kind++;
    struct chan *ch = own ? NULL : chan_find(l, chan->str, chan->len);
    if (ch && ch->sharded != sharded && strcmp(kind, "message") != 0 &&
        !(ch->state == CHAN_LEAVING && strcmp(kind, "unsubscribe") == 0))
        return; /* the classic half of a sharded channel's subscribe */
    if (sharded && strcmp(kind, "unsubscribe") == 0) {
        chan_on_moved(l, chan->str, chan->len);
        return;
    }

    if (strcmp(kind, "message") == 0 && data->type == REDIS_REPLY_STRING) {
        if (own && data->len == sizeof(PROBE_MESSAGE) - 1 &&
            memcmp(data->str, PROBE_MESSAGE, data->len) == 0)
            l->probe_sent_ms = 0; /* the pub/sub path works end to end */
        else if (l->o.hooks && l->o.hooks->message)
            l->o.hooks->message(l, l->o.owner, chan->str, chan->len, data->str, data->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        if (own)
            setup_done(l);
        else
            chan_on_subscribe(l, chan->str, chan->len);
    } else if (strcmp(kind, "unsubscribe") == 0 && !own) {
        chan_on_unsubscribe(l, chan->str, chan->len);
    }
}

/* ---- connection life cycle ---- */

static void on_retry_timer(void *arg)
{
    struct cm_link *l = arg;
    if (!l->ac && !l->resolving && !l->freeing)
        link_connect(l);
}

/* A refusal's backoff is over: what is held goes out, if the link is up
 * (else setup_done sends it). */
static void on_held_timer(void *arg)
{
    struct cm_link *l = arg;
    l->held_backoff = false;
    held_flush(l);
}

static void schedule_reconnect(struct cm_link *l)
{
    if (l->freeing)
        return;
    int64_t delay = backoff_ms(l->attempt);
    CM_DEBUG("redis %s link: reconnecting in %lld ms", l->o.name, (long long)delay);
    l->o.loop->timer_start(l->retry_timer, delay);
}

/* Everything that happens once when a connection goes away, whichever way:
 * marks it down, tells the owner, schedules a reconnect. */
static void link_lost(struct cm_link *l)
{
    bool was_ready = l->ready;
    l->ac = NULL; /* hiredis frees it */
    l->ready = false;
    l->client_id = -1; /* that connection's; the next one asks again */
    l->setup_pending = 0;
    l->probe_sent_ms = 0;
    l->generation++;
    if (l->freeing)
        return;
    if (l->o.subscriber)
        chans_lost(l);
    if (was_ready && l->o.hooks && l->o.hooks->lost)
        l->o.hooks->lost(l, l->o.owner);
    schedule_reconnect(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct cm_link *l = ac->data;
    if (status != REDIS_OK) {
        /* Once per outage at WARN; the retries that follow at DEBUG. */
        cm_log(l->attempt <= 1 || l->attempt % 10 == 0 ? CM_LOG_WARN : CM_LOG_DEBUG,
               "redis %s link: cannot connect to %s:%d: %s (attempt %u)", l->o.name, l->url.host,
               l->url.port, ac->errstr, l->attempt);
        link_lost(l); /* hiredis frees the context; no disconnect callback */
        return;
    }
    redisEnableKeepAlive((redisContext *)&ac->c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct cm_link *l = ac->data;
    if (l->ready && !l->freeing && !l->dropping)
        CM_WARN("redis %s link lost: %s", l->o.name, status == REDIS_OK ? "closed" : ac->errstr);
    link_lost(l);
}

static void link_connect_to(struct cm_link *l, const char *host)
{
    l->attempt++;
    l->connect_ms = l->last_read_ms = cm_mono_ms();
    redisAsyncContext *ac = redisAsyncConnect(host, l->url.port);
    if (!ac || ac->err) {
        CM_WARN("redis %s link: cannot connect to %s:%d: %s", l->o.name, host, l->url.port,
                ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(l);
        return;
    }
    if (l->o.loop->attach(l->o.loop->ctx, ac, &l->last_read_ms) != 0) {
        CM_ERROR("redis %s link: cannot watch the socket", l->o.name);
        redisAsyncFree(ac);
        schedule_reconnect(l);
        return;
    }
    ac->data = l;
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    setup_start(l);
}

static void on_resolved(void *arg, const char *ip, const char *why)
{
    struct cm_link *l = arg;
    l->resolving = NULL;
    if (!ip) {
        l->attempt++;
        cm_log(l->attempt <= 1 || l->attempt % 10 == 0 ? CM_LOG_WARN : CM_LOG_DEBUG,
               "redis %s link: cannot resolve %s: %s", l->o.name, l->url.host, why);
        schedule_reconnect(l);
        return;
    }
    link_connect_to(l, ip);
}

static bool is_address(const char *host)
{
    /* Digits and dots (IPv4) or anything with a colon (IPv6). */
    return strchr(host, ':') || strspn(host, "0123456789.") == strlen(host);
}

static void link_connect(struct cm_link *l)
{
    if (!l->o.loop->resolve || is_address(l->url.host)) {
        link_connect_to(l, l->url.host);
        return;
    }
    l->resolving = l->o.loop->resolve(l->o.loop->ctx, l->url.host, on_resolved, l);
    if (!l->resolving)
        schedule_reconnect(l);
}

/* Frees the context from outside its callbacks: pending callbacks run with
 * NULL, then the disconnect callback if it had connected. */
static void link_drop(struct cm_link *l, const char *why)
{
    unsigned gen = l->generation;
    CM_WARN("redis %s link %s for %lld ms; reconnecting", l->o.name, why,
            (long long)(l->ready ? l->o.timeout_ms : l->o.connect_timeout_ms));
    l->dropping = true;
    redisAsyncFree(l->ac);
    l->dropping = false;
    if (l->generation == gen) /* never connected: no disconnect callback */
        link_lost(l);
}

static void probe_reply(redisReply *reply, void *priv)
{
    struct cm_link *sub = priv;
    if (!reply && sub)
        sub->probe_sent_ms = 0; /* the command link dropped it: not the sub link's fault */
}

static void probe(struct cm_link *l, int64_t now)
{
    if (!l->ready || !l->o.probe_ms || now - l->last_probe_ms < l->o.probe_ms)
        return;
    if (l->o.subscriber) {
        struct cm_link *via = l->o.probe_via;
        const char *argv[] = {"PUBLISH", l->probe_channel, PROBE_MESSAGE};
        if (l->probe_sent_ms || !via || !l->probe_channel ||
            cm_link_commandv(via, probe_reply, l, 3, argv) != 0)
            return;
        l->probe_sent_ms = now;
    } else {
        const char *argv[] = {"PING"};
        if (l->inflight || cm_link_commandv(l, probe_reply, NULL, 1, argv) != 0)
            return;
    }
    l->last_probe_ms = now;
}

/* An unanswered request older than the timeout, on a link that has been
 * silent as long, drops the link. Replies already in the socket buffer mean
 * Redis answers and our loop is behind (overload): dropping the link would
 * only add a reconnect to the overload. */
static void on_watch_timer(void *arg)
{
    struct cm_link *l = arg;
    int64_t now = cm_mono_ms(), limit = l->o.timeout_ms;
    l->o.loop->timer_start(l->watch_timer, l->o.watch_ms);
    if (!l->ac || l->freeing)
        return;
    int unread = 0;
    if (ioctl(l->ac->c.fd, FIONREAD, &unread) == 0 && unread > 0)
        return;
    int64_t owed = l->o.subscriber ? l->probe_sent_ms : l->inflight ? l->inflight->sent_ms : 0;
    if (!l->ready && now - l->connect_ms > l->o.connect_timeout_ms)
        link_drop(l, "set-up unanswered");
    else if (l->ready && owed && now - owed > limit && now - l->last_read_ms > limit)
        link_drop(l, "unanswered");
    else
        probe(l, now);
}

struct cm_link *cm_link_new(const struct cm_link_opts *opts)
{
    struct cm_link *l = cm_calloc(1, sizeof(*l));
    l->o = *opts;
    l->url = *opts->url;
    l->o.url = &l->url;
    l->probe_channel = opts->probe_channel ? cm_strdup(opts->probe_channel) : NULL;
    l->client_id = -1;
    l->retry_timer = opts->loop->timer_new(opts->loop->ctx, on_retry_timer, l);
    l->watch_timer = opts->loop->timer_new(opts->loop->ctx, on_watch_timer, l);
    l->held_timer = opts->loop->timer_new(opts->loop->ctx, on_held_timer, l);
    return l;
}

void cm_link_start(struct cm_link *l)
{
    l->o.loop->timer_start(l->watch_timer, l->o.watch_ms);
    link_connect(l);
}

void cm_link_free(struct cm_link *l)
{
    if (!l)
        return;
    size_t unsent = cm_link_held_count(l);
    l->freeing = true;
    if (l->resolving)
        l->o.loop->resolve_cancel(l->resolving);
    l->o.loop->timer_free(l->retry_timer);
    l->o.loop->timer_free(l->watch_timer);
    l->o.loop->timer_free(l->held_timer);
    if (l->ac)
        redisAsyncFree(l->ac); /* pending callbacks run now, with NULL */
    if (unsent)
        CM_WARN("redis %s link: exiting with %zu commands not sent to Redis", l->o.name, unsent);
    while (l->held)
        call_free(held_pop(l));
    struct chan *ch, *tmp;
    HASH_ITER(hh, l->chans, ch, tmp) {
        chan_forget(l, ch);
    }
    free(l->probe_channel);
    free(l);
}

bool cm_link_ready(const struct cm_link *l)
{
    return l->ready;
}

long long cm_link_client_id(const struct cm_link *l)
{
    return l->client_id;
}

enum cm_reply_kind cm_reply_kind(const redisReply *reply)
{
    static const char *const transient[] = {
        "LOADING",    "BUSY",        "OOM",    "READONLY", "MASTERDOWN", "TRYAGAIN",
        "NOREPLICAS", "CLUSTERDOWN", "NOAUTH", "NOPERM",   "NOSCRIPT",
    };
    if (!reply)
        return CM_REPLY_LOST;
    if (reply->type != REDIS_REPLY_ERROR)
        return CM_REPLY_OK;
    for (size_t i = 0; i < CM_ARRAY_LEN(transient); i++) {
        size_t n = strlen(transient[i]);
        if (strncmp(reply->str, transient[i], n) == 0 &&
            (reply->str[n] == ' ' || reply->str[n] == '\0'))
            return CM_REPLY_TRANSIENT;
    }
    return CM_REPLY_FATAL;
}

const char *cm_reply_error(const redisReply *reply)
{
    if (!reply)
        return "connection lost";
    if (reply->type == REDIS_REPLY_ERROR)
        return reply->str;
    return "unexpected reply";
}
