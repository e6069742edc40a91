/*
 * The router. See cm_router.h for the contract.
 *
 * One Redis is a cluster of one node that owns every slot and never
 * redirects: the same node structure, no slot map refresh, classic pub/sub.
 *
 * In a cluster, every command the router sends is a `struct rcall` holding
 * a copy of its arguments, so that a redirect (MOVED, ASK) or a refusal
 * that may pass (TRYAGAIN, CLUSTERDOWN, READONLY) can send it again. A
 * command whose link dropped is not sent again, since it may have run: its
 * caller hears "lost", as with one Redis. Held commands are the exception:
 * they are safe to replay, so the router keeps them itself (not in a node's
 * link, which may belong to a primary that is gone for good) until a
 * primary answers them.
 */
#include "cm_router.h"

#include "cm_keys.h"
#include "cm_log.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define REFRESH_MS 5000       /* the slot map is read again this often */
#define REFRESH_MIN_MS 100    /* and no more often than this */
#define RETRY_MIN_MS 25       /* a redirected or refused command: first retry */
#define RETRY_MAX_MS 1000     /* backoff cap */
#define RETRY_FOR_MS 5000     /* give up on a command after this long */
#define REDIRECTS_MAX 16      /* MOVED/ASK in a row before giving up */

struct node {
    struct node *next;
    struct cm_router *r;
    struct cm_redis_url url;
    char name[300]; /* host:port */
    struct cm_link *cmd, *sub;
    char *probe_channel;
    bool retired; /* owns no slot since the last refresh; freed by the gc timer */
    int replicas; /* configured for this primary, as CLUSTER NODES lists them */
    struct waiter *waiters, *waiters_tail; /* asked for a WAIT not yet sent */
    int wait_replicas;                    /* what they asked for */
    bool waiting;                         /* a WAIT is in flight on cmd */
};

/* A channel asked for, and the node it is subscribed on. */
struct chan {
    struct node *node;
    bool classic;   /* the probe/control channel: SUBSCRIBE even in a cluster */
    bool confirmed; /* `subscribed` was reported and not yet `unsubscribed` */
    UT_hash_handle hh;
    char name[];
};

/* A command sent through the router in a cluster. */
struct rcall {
    struct rcall *next; /* in the held queue, or in `waiting` */
    struct cm_router *r;
    cm_link_reply_fn *fn;
    void *priv;
    bool held;
    int script; /* enum cm_script, or -1 */
    int nkeys;
    unsigned slot;
    int redirects;
    unsigned tries;
    int64_t first_ms;
    struct node *ask; /* send there, after ASKING, once */
    void *timer;
    int argc;
    char **argv;
    size_t *lens;
};

struct cm_router {
    struct cm_router_opts o;
    struct cm_router_hooks hooks;
    struct cm_redis_url *seeds;
    struct node *nodes;
    struct node *slots[CM_SLOTS];
    struct chan *chans;
    struct rcall *held, *held_tail;
    size_t nheld, nheld_inflight;
    uint64_t held_retries;
    struct rcall *waiting; /* commands whose retry timer runs */
    struct node *fresh[CM_SLOTS]; /* the map being read */
    bool started;
    void *refresh_timer, *gc_timer, *held_timer;
    bool refreshing, refresh_again, freeing;
    int64_t last_refresh_ms;
    unsigned refresh_rr; /* which node to ask next */
    bool ready, was_ready;
};

static void refresh_soon(struct cm_router *r);
static void update_ready(struct cm_router *r);
static void rcall_send(struct rcall *rc);
static void held_flush(struct cm_router *r);

/* ---- nodes ---- */

static void on_cmd_ready(struct cm_link *l, void *owner);
static void on_cmd_lost(struct cm_link *l, void *owner);
static void on_sub_lost(struct cm_link *l, void *owner);
static void on_sub_message(struct cm_link *l, void *owner, const char *ch, size_t chlen,
                           const char *data, size_t len);
static void on_sub_subscribed(struct cm_link *l, void *owner, const char *ch, size_t chlen);
static void on_sub_dropped(struct cm_link *l, void *owner, const char *ch, size_t chlen);

static const struct cm_link_hooks cmd_hooks = {.ready = on_cmd_ready, .lost = on_cmd_lost};
static const struct cm_link_hooks sub_hooks = {.ready = on_cmd_ready,
                                               .lost = on_sub_lost,
                                               .message = on_sub_message,
                                               .subscribed = on_sub_subscribed,
                                               .dropped = on_sub_dropped};

static void waiters_answer(struct waiter *w, int result);

static void node_start(struct node *n)
{
    cm_link_start(n->cmd);
    if (n->sub)
        cm_link_start(n->sub);
}

static struct node *node_find(struct cm_router *r, const char *host, int port)
{
    for (struct node *n = r->nodes; n; n = n->next)
        if (n->url.port == port && strcmp(n->url.host, host) == 0)
            return n;
    return NULL;
}

/* The node at host:port, made (and its links started) if new. */
static struct node *node_get(struct cm_router *r, const char *host, int port)
{
    struct node *n = node_find(r, host, port);
    if (n) {
        n->retired = false;
        return n;
    }
    n = cm_calloc(1, sizeof(*n));
    n->r = r;
    n->url = r->seeds[0];
    snprintf(n->url.host, sizeof(n->url.host), "%s", host);
    n->url.port = port;
    snprintf(n->name, sizeof(n->name), "%s:%d", host, port);
    n->cmd = cm_link_new(&(struct cm_link_opts){
        .name = r->o.cluster ? n->name : "command", .url = &n->url, .loop = r->o.loop,
        .hooks = &cmd_hooks, .owner = n, .scripts = r->o.scripts, .nscripts = r->o.nscripts,
        .timeout_ms = r->o.timeout_ms, .connect_timeout_ms = r->o.timeout_ms,
        .watch_ms = r->o.watch_ms, .probe_ms = r->o.probe_ms, .held_max = r->o.held_max,
        .client_id = r->o.client_id});
    if (r->o.pubsub) {
        /* One Redis: the probe channel is the process's own channel, as
         * always. A cluster: each primary's link probes a channel of its
         * own, since a classic PUBLISH reaches every node. */
        if (r->o.cluster && r->o.probe_channel) {
            size_t len = strlen(r->o.probe_channel) + strlen(n->name) + 8;
            n->probe_channel = cm_malloc(len);
            snprintf(n->probe_channel, len, "%s:probe:%s", r->o.probe_channel, n->name);
        }
        n->sub = cm_link_new(&(struct cm_link_opts){
            .name = r->o.cluster ? n->name : "pub/sub", .url = &n->url, .loop = r->o.loop,
            .hooks = &sub_hooks, .owner = n, .subscriber = true, .timeout_ms = r->o.timeout_ms,
            .connect_timeout_ms = r->o.timeout_ms, .watch_ms = r->o.watch_ms,
            .probe_ms = r->o.sub_probe_ms,
            .probe_channel = n->probe_channel ? n->probe_channel : r->o.probe_channel,
            .probe_via = n->cmd});
    }
    n->next = r->nodes;
    r->nodes = n;
    if (r->o.cluster)
        CM_INFO("redis cluster: node %s", n->name);
    if (r->started)
        node_start(n);
    return n;
}

static bool node_up(const struct node *n)
{
    return n && cm_link_ready(n->cmd) && (!n->sub || cm_link_ready(n->sub));
}

static void node_free(struct node *n)
{
    /* The command link first: its pending probe names the pub/sub link.
     * A WAIT in flight is answered -1 from inside; then those not sent. */
    cm_link_free(n->cmd);
    waiters_answer(n->waiters, -1);
    cm_link_free(n->sub);
    free(n->probe_channel);
    free(n);
}

/* Frees the nodes the last refresh retired (not from inside one of their
 * links' callbacks, hence a timer). */
static void on_gc_timer(void *arg)
{
    struct cm_router *r = arg;
    for (struct node **pp = &r->nodes; *pp;) {
        struct node *n = *pp;
        if (!n->retired) {
            pp = &n->next;
            continue;
        }
        *pp = n->next;
        for (unsigned s = 0; s < CM_SLOTS; s++)
            if (r->slots[s] == n)
                r->slots[s] = NULL;
        CM_INFO("redis cluster: node %s owns no slot any more; closing its links", n->name);
        node_free(n);
    }
}

/* ---- channels ---- */

static struct chan *chan_find(struct cm_router *r, const char *name, size_t len)
{
    struct chan *ch;
    HASH_FIND(hh, r->chans, name, len, ch);
    return ch;
}

static struct node *chan_owner(struct cm_router *r, const struct chan *ch)
{
    if (!r->o.cluster)
        return r->nodes;
    return r->slots[cm_key_slot(ch->name, strlen(ch->name))];
}

static void chan_lost(struct cm_router *r, struct chan *ch)
{
    if (!ch->confirmed)
        return;
    ch->confirmed = false;
    if (!ch->classic && r->hooks.unsubscribed)
        r->hooks.unsubscribed(r->o.owner, ch->name, strlen(ch->name));
}

/* Puts the channel on its owner's link, leaving the old one if it moved. */
static void chan_place(struct cm_router *r, struct chan *ch)
{
    struct node *owner = chan_owner(r, ch);
    if (owner == ch->node)
        return;
    if (ch->node) {
        chan_lost(r, ch);
        if (!ch->node->retired)
            cm_link_unsubscribe(ch->node->sub, ch->name);
    }
    ch->node = owner;
    if (!owner)
        return;
    if (r->o.cluster && !ch->classic)
        cm_link_ssubscribe(owner->sub, ch->name);
    else
        cm_link_subscribe(owner->sub, ch->name);
}

static struct chan *chan_add(struct cm_router *r, const char *name, bool classic)
{
    size_t len = strlen(name);
    struct chan *ch = chan_find(r, name, len);
    if (ch)
        return ch;
    ch = cm_calloc(1, sizeof(*ch) + len + 1);
    memcpy(ch->name, name, len + 1);
    ch->classic = classic;
    HASH_ADD(hh, r->chans, name, len, ch);
    chan_place(r, ch);
    return ch;
}

void cm_router_subscribe(struct cm_router *r, const char *channel)
{
    chan_add(r, channel, false);
}

void cm_router_unsubscribe(struct cm_router *r, const char *channel)
{
    struct chan *ch = chan_find(r, channel, strlen(channel));
    if (!ch)
        return;
    if (ch->node)
        cm_link_unsubscribe(ch->node->sub, ch->name);
    HASH_DEL(r->chans, ch);
    free(ch);
}

static void chans_place_all(struct cm_router *r)
{
    struct chan *ch, *tmp;
    HASH_ITER(hh, r->chans, ch, tmp) {
        chan_place(r, ch);
    }
}

/* ---- link events ---- */

static void on_cmd_ready(struct cm_link *l, void *owner)
{
    struct node *n = owner;
    struct cm_router *r = n->r;
    if (r->o.cluster && l == n->cmd)
        refresh_soon(r);
    held_flush(r);
    update_ready(r);
}

static void on_cmd_lost(struct cm_link *l, void *owner)
{
    struct node *n = owner;
    struct cm_router *r = n->r;
    if (r->hooks.lost)
        r->hooks.lost(r->o.owner);
    if (r->o.cluster)
        refresh_soon(r);
    update_ready(r);
}

static void on_sub_lost(struct cm_link *l, void *owner)
{
    struct node *n = owner;
    struct cm_router *r = n->r;
    struct chan *ch, *tmp;
    HASH_ITER(hh, r->chans, ch, tmp) {
        if (ch->node == n)
            chan_lost(r, ch);
    }
    on_cmd_lost(l, owner);
}

static void on_sub_message(struct cm_link *l, void *owner, const char *chname, size_t chlen,
                           const char *data, size_t len)
{
    struct node *n = owner;
    if (n->r->hooks.message)
        n->r->hooks.message(n->r->o.owner, chname, chlen, data, len);
}

static void on_sub_subscribed(struct cm_link *l, void *owner, const char *chname, size_t chlen)
{
    struct node *n = owner;
    struct cm_router *r = n->r;
    struct chan *ch = chan_find(r, chname, chlen);
    if (!ch || ch->node != n || ch->confirmed)
        return;
    ch->confirmed = true;
    if (!ch->classic && r->hooks.subscribed)
        r->hooks.subscribed(r->o.owner, chname, chlen);
}

/* The cluster ended a sharded subscription: the slot moved away. The link
 * has forgotten the channel; the next refresh places it on the new owner. */
static void on_sub_dropped(struct cm_link *l, void *owner, const char *chname, size_t chlen)
{
    struct node *n = owner;
    struct cm_router *r = n->r;
    struct chan *ch = chan_find(r, chname, chlen);
    CM_INFO("redis cluster: %s gave up channel %.*s (its slot moved)", n->name, (int)chlen, chname);
    if (ch && ch->node == n) {
        chan_lost(r, ch);
        ch->node = NULL;
    }
    refresh_soon(r);
}

/* ---- readiness ---- */

static bool all_slots_up(const struct cm_router *r)
{
    if (!r->o.cluster)
        return node_up(r->nodes);
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (!node_up(r->slots[s]))
            return false;
    return true;
}

static void update_ready(struct cm_router *r)
{
    bool ready = all_slots_up(r);
    if (ready == r->ready)
        return;
    r->ready = ready;
    if (!ready) {
        if (r->o.cluster) /* one Redis: its links said so already */
            CM_WARN("redis cluster: %zu slots have no reachable primary",
                    cm_router_slots_down(r));
        return;
    }
    if (r->o.cluster)
        CM_INFO("redis cluster: every slot has a reachable primary (%zu nodes)",
                cm_router_nodes(r));
    bool reconnect = r->was_ready;
    r->was_ready = true;
    if (r->hooks.ready)
        r->hooks.ready(r->o.owner, reconnect);
}

bool cm_router_ready(const struct cm_router *r)
{
    return r->ready;
}

bool cm_router_key_ready(const struct cm_router *r, const char *key)
{
    if (!r->o.cluster)
        return r->ready;
    const struct node *n = r->slots[cm_key_slot(key, strlen(key))];
    return node_up(n) && !n->retired;
}

bool cm_router_cluster(const struct cm_router *r)
{
    return r->o.cluster;
}

const char *cm_router_publish_verb(const struct cm_router *r)
{
    return r->o.cluster ? "SPUBLISH" : "PUBLISH";
}

size_t cm_router_nodes(const struct cm_router *r)
{
    size_t n = 0;
    for (const struct node *p = r->nodes; p; p = p->next)
        n += !p->retired;
    return n;
}

size_t cm_router_slots_down(const struct cm_router *r)
{
    if (!r->o.cluster)
        return node_up(r->nodes) ? 0 : CM_SLOTS;
    size_t down = 0;
    for (unsigned s = 0; s < CM_SLOTS; s++)
        down += !node_up(r->slots[s]);
    return down;
}

/* ---- the slot map ---- */

/* One line of CLUSTER NODES, as far as the map needs it. */
struct nodes_line {
    char id[64], host[256], flags[128], master[64];
    int port;
    const char *slots; /* the rest of the line: "0-5460 5461 [..->-..]" */
};

static bool nodes_line_parse(char *line, struct nodes_line *out)
{
    char addr[300];
    int used = 0;
    if (sscanf(line, "%63s %299s %127s %63s %*s %*s %*s %*s%n", out->id, addr, out->flags,
               out->master, &used) != 4)
        return false;
    out->slots = line + used;
    /* ip:port@cport[,hostname]; the ip is empty on a node that never
     * learnt its own */
    char *at = strchr(addr, '@');
    if (at)
        *at = '\0';
    char *colon = strrchr(addr, ':');
    if (!colon)
        return false;
    *colon = '\0';
    out->port = atoi(colon + 1);
    snprintf(out->host, sizeof(out->host), "%.255s", addr);
    return out->port > 0 && out->port <= 65535;
}

static bool has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += n)
        if ((p == flags || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* Builds the map from CLUSTER NODES: each primary's slots, and how many
 * replicas it is configured with (failing ones included: while one is
 * down, a write is not safe until it, or another, has it). */
static void nodes_apply(struct cm_router *r, char *text, const struct node *asked)
{
    struct node **fresh = r->fresh;
    memset(fresh, 0, sizeof(r->fresh));
    struct nodes_line *lines = NULL;
    struct node **line_node = NULL;
    size_t nlines = 0, cap = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (nlines == cap) {
            cap = cap ? cap * 2 : 16;
            lines = cm_realloc(lines, cap * sizeof(*lines));
            line_node = cm_realloc(line_node, cap * sizeof(*line_node));
        }
        if (nodes_line_parse(line, &lines[nlines]))
            line_node[nlines++] = NULL;
    }
    /* Primaries that serve slots. */
    for (size_t i = 0; i < nlines; i++) {
        struct nodes_line *l = &lines[i];
        if (!has_flag(l->flags, "master") || has_flag(l->flags, "noaddr") ||
            strcspn(l->slots, "0123456789") == strlen(l->slots))
            continue;
        struct node *n = node_get(r, l->host[0] ? l->host : asked->url.host, l->port);
        line_node[i] = n;
        n->replicas = 0;
        for (const char *p = l->slots; *p;) {
            p += strspn(p, " ");
            if (*p == '[') { /* a slot migrating or importing: its owner lists it too */
                p += strcspn(p, " ");
                continue;
            }
            char *end;
            long lo = strtol(p, &end, 10), hi = lo;
            if (end == p)
                break;
            if (*end == '-')
                hi = strtol(end + 1, &end, 10);
            for (long slot = lo < 0 ? 0 : lo; slot <= hi && slot < CM_SLOTS; slot++)
                fresh[slot] = n;
            p = end;
        }
    }
    /* Their replicas. */
    for (size_t i = 0; i < nlines; i++) {
        if (!has_flag(lines[i].flags, "slave"))
            continue;
        for (size_t k = 0; k < nlines; k++)
            if (line_node[k] && strcmp(lines[k].id, lines[i].master) == 0)
                line_node[k]->replicas++;
    }
    free(lines);
    free(line_node);

    size_t moved = 0;
    for (unsigned slot = 0; slot < CM_SLOTS; slot++) {
        moved += r->slots[slot] != fresh[slot];
        r->slots[slot] = fresh[slot];
    }
    /* A node that owns no slot now (a failed primary, one emptied by a
     * rebalance, a seed that is a replica) is closed. */
    bool retire = false;
    for (struct node *n = r->nodes; n; n = n->next) {
        bool owns = false;
        for (unsigned slot = 0; slot < CM_SLOTS && !owns; slot++)
            owns = fresh[slot] == n;
        if (!owns && !n->retired) {
            n->retired = true;
            retire = true;
        }
    }
    if (moved)
        CM_INFO("redis cluster: slot map from %s: %zu slots changed owner", asked->name, moved);
    chans_place_all(r);
    if (retire)
        r->o.loop->timer_start(r->gc_timer, 0);
    held_flush(r);
    update_ready(r);
}

static void on_slots(redisReply *reply, void *priv)
{
    struct node *asked = priv;
    struct cm_router *r = asked->r;
    r->refreshing = false;
    if (r->freeing)
        return;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len > 0) {
        char *text = cm_strndup(reply->str, reply->len);
        nodes_apply(r, text, asked);
        free(text);
    }
    else
        CM_WARN("redis cluster: CLUSTER NODES from %s: %s", asked->name,
                reply ? (reply->type == REDIS_REPLY_ERROR ? reply->str : "empty") : "lost");
    r->last_refresh_ms = cm_mono_ms();
    if (r->refresh_again || !reply)
        refresh_soon(r);
    else
        r->o.loop->timer_start(r->refresh_timer, REFRESH_MS);
}

/* Asks CLUSTER NODES of the next node whose command link is up, seeds
 * included: one answer is enough. */
static void refresh_now(struct cm_router *r)
{
    size_t count = 0;
    for (struct node *n = r->nodes; n; n = n->next)
        count++;
    r->refresh_again = false;
    for (size_t i = 0; i < count; i++) {
        size_t k = (r->refresh_rr++) % count;
        struct node *n = r->nodes;
        while (k--)
            n = n->next;
        if (!cm_link_ready(n->cmd))
            continue;
        if (cm_link_commandv(n->cmd, on_slots, n, 2, (const char *[]){"CLUSTER", "NODES"}) == 0) {
            r->refreshing = true;
            return;
        }
    }
    /* Nobody is up: a link's `ready` asks again. */
    r->o.loop->timer_start(r->refresh_timer, REFRESH_MS);
}

static void on_refresh_timer(void *arg)
{
    struct cm_router *r = arg;
    if (!r->refreshing)
        refresh_now(r);
}

static void refresh_soon(struct cm_router *r)
{
    if (r->freeing)
        return;
    if (r->refreshing) {
        r->refresh_again = true;
        return;
    }
    int64_t wait = r->last_refresh_ms + REFRESH_MIN_MS - cm_mono_ms();
    r->o.loop->timer_start(r->refresh_timer, wait > 0 ? wait : 0);
}

/* ---- commands in a cluster ---- */

static struct rcall *rcall_new(struct cm_router *r, cm_link_reply_fn *fn, void *priv, int argc,
                               const char **argv, const size_t *lens)
{
    struct rcall *rc = cm_calloc(1, sizeof(*rc));
    rc->r = r;
    rc->fn = fn;
    rc->priv = priv;
    rc->script = -1;
    rc->first_ms = cm_mono_ms();
    rc->argc = argc;
    rc->argv = cm_malloc((size_t)argc * sizeof(*rc->argv));
    rc->lens = cm_malloc((size_t)argc * sizeof(*rc->lens));
    for (int i = 0; i < argc; i++) {
        rc->argv[i] = cm_strndup(argv[i], lens[i]);
        rc->lens[i] = lens[i];
    }
    return rc;
}

static void rcall_free(struct rcall *rc)
{
    if (rc->timer)
        rc->r->o.loop->timer_free(rc->timer);
    for (int i = 0; i < rc->argc; i++)
        free(rc->argv[i]);
    free(rc->argv);
    free(rc->lens);
    free(rc);
}

static void rcall_answer(struct rcall *rc, redisReply *reply)
{
    if (rc->fn)
        rc->fn(reply, rc->priv);
    rcall_free(rc);
}

static void held_push(struct cm_router *r, struct rcall *rc)
{
    rc->next = NULL;
    if (r->held_tail)
        r->held_tail->next = rc;
    else
        r->held = rc;
    r->held_tail = rc;
    r->nheld++;
}

static void on_rcall_timer(void *arg)
{
    struct rcall *rc = arg;
    struct rcall **pp = &rc->r->waiting;
    while (*pp != rc)
        pp = &(*pp)->next;
    *pp = rc->next;
    rc->next = NULL;
    rcall_send(rc);
}

/* Sends rc again later, or gives up; held commands never give up. */
static void rcall_retry_later(struct rcall *rc, const char *why)
{
    struct cm_router *r = rc->r;
    if (!rc->held && (cm_mono_ms() - rc->first_ms > RETRY_FOR_MS ||
                      rc->redirects > REDIRECTS_MAX)) {
        CM_WARN("redis cluster: giving up on a command for slot %u: %s", rc->slot, why);
        rcall_answer(rc, NULL);
        return;
    }
    if (rc->held) {
        /* Back in the queue, behind nothing: it goes out on the next flush. */
        r->held_retries++;
        rc->next = r->held;
        r->held = rc;
        if (!r->held_tail)
            r->held_tail = rc;
        r->nheld++;
        int64_t cap = (int64_t)RETRY_MIN_MS << (rc->tries < 6 ? rc->tries : 6);
        rc->tries++;
        r->o.loop->timer_start(r->held_timer, cap < RETRY_MAX_MS ? cap : RETRY_MAX_MS);
        return;
    }
    int64_t cap = (int64_t)RETRY_MIN_MS << (rc->tries < 6 ? rc->tries : 6);
    if (cap > RETRY_MAX_MS)
        cap = RETRY_MAX_MS;
    rc->tries++;
    if (!rc->timer)
        rc->timer = r->o.loop->timer_new(r->o.loop->ctx, on_rcall_timer, rc);
    rc->next = r->waiting;
    r->waiting = rc;
    r->o.loop->timer_start(rc->timer, cap / 2 + (int64_t)cm_random_below((uint64_t)cap / 2 + 1));
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the slot and its node. */
static struct node *redirect_target(struct cm_router *r, const char *err, unsigned *slot)
{
    char host[256];
    unsigned s;
    int port;
    const char *sp = strchr(err, ' ');
    if (!sp || sscanf(sp + 1, "%u %255[^ ]", &s, host) != 2 || s >= CM_SLOTS)
        return NULL;
    char *colon = strrchr(host, ':');
    if (!colon)
        return NULL;
    *colon = '\0';
    port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return NULL;
    *slot = s;
    return node_get(r, host[0] ? host : "127.0.0.1", port);
}

static bool error_is(const redisReply *reply, const char *code)
{
    size_t n = strlen(code);
    return strncmp(reply->str, code, n) == 0 && (reply->str[n] == ' ' || reply->str[n] == '\0');
}

static void on_rcall_reply(redisReply *reply, void *priv)
{
    struct rcall *rc = priv;
    struct cm_router *r = rc->r;
    if (rc->held)
        r->nheld_inflight--;
    if (r->freeing) {
        rcall_answer(rc, NULL);
        return;
    }
    if (!reply) {
        refresh_soon(r);
        if (rc->held)
            rcall_retry_later(rc, "connection lost");
        else
            rcall_answer(rc, NULL); /* it may have run: not sent twice */
        return;
    }
    if (reply->type != REDIS_REPLY_ERROR) {
        rcall_answer(rc, reply);
        return;
    }
    unsigned slot;
    struct node *to;
    if (error_is(reply, "MOVED") && (to = redirect_target(r, reply->str, &slot))) {
        r->slots[slot] = to;
        rc->redirects++;
        refresh_soon(r);
        rcall_send(rc);
    } else if (error_is(reply, "ASK") && (to = redirect_target(r, reply->str, &slot))) {
        rc->redirects++;
        rc->ask = to;
        rcall_send(rc);
    } else if (error_is(reply, "TRYAGAIN") || error_is(reply, "CLUSTERDOWN") ||
               error_is(reply, "READONLY") || error_is(reply, "MASTERDOWN") ||
               (rc->held && cm_reply_kind(reply) == CM_REPLY_TRANSIENT)) {
        if (!error_is(reply, "TRYAGAIN"))
            refresh_soon(r);
        rcall_retry_later(rc, reply->str);
    } else {
        if (rc->held)
            CM_WARN("redis cluster: a held command failed: %s", reply->str);
        rcall_answer(rc, reply);
    }
}

/* Sends rc to the owner of its slot (or, once, to an ASK target). */
static void rcall_send(struct rcall *rc)
{
    struct cm_router *r = rc->r;
    struct node *n = rc->ask ? rc->ask : r->slots[rc->slot];
    if (!n || !cm_link_ready(n->cmd) || n->retired) {
        rc->ask = NULL;
        rcall_retry_later(rc, "no reachable primary");
        return;
    }
    if (rc->ask) {
        rc->ask = NULL;
        if (cm_link_commandv(n->cmd, NULL, NULL, 1, (const char *[]){"ASKING"}) != 0) {
            rcall_retry_later(rc, "ASKING not sent");
            return;
        }
    }
    int rv = rc->script >= 0
                 ? cm_link_script(n->cmd, (enum cm_script)rc->script, rc->nkeys, rc->argc,
                                  (const char **)rc->argv, rc->lens, on_rcall_reply, rc)
                 : cm_link_command(n->cmd, on_rcall_reply, rc, rc->argc,
                                   (const char **)rc->argv, rc->lens);
    if (rv != 0) {
        rcall_retry_later(rc, "not sent");
        return;
    }
    if (rc->held)
        r->nheld_inflight++;
}

/* First try: -1 (the caller answers at once) when the slot has no ready
 * primary; later tries are rcall_send's. */
static int rcall_start(struct cm_router *r, struct rcall *rc, const char *key, size_t keylen)
{
    rc->slot = key ? cm_key_slot(key, keylen) : 0;
    if (!key) {
        /* Any primary: the first one up. */
        for (unsigned s = 0; s < CM_SLOTS; s++)
            if (node_up(r->slots[s])) {
                rc->slot = s;
                break;
            }
    }
    struct node *n = r->slots[rc->slot];
    if (!n || !cm_link_ready(n->cmd)) {
        rcall_free(rc);
        return -1;
    }
    rcall_send(rc);
    return 0;
}

static void held_flush(struct cm_router *r)
{
    if (!r->o.cluster || r->freeing)
        return;
    size_t n = r->nheld;
    /* Each goes out or back to the queue's end, once per flush. */
    while (n-- && r->held) {
        struct rcall *rc = r->held;
        r->held = rc->next;
        if (!r->held)
            r->held_tail = NULL;
        r->nheld--;
        struct node *owner = r->slots[rc->slot];
        if (!owner || !cm_link_ready(owner->cmd) || owner->retired) {
            held_push(r, rc);
            continue;
        }
        rcall_send(rc);
    }
}

static void on_held_timer(void *arg)
{
    held_flush(arg);
}

/* ---- the interface ---- */

int cm_router_command(struct cm_router *r, const char *key, cm_link_reply_fn *fn, void *priv,
                      int argc, const char **argv, const size_t *lens)
{
    if (r->freeing)
        return -1;
    if (!r->o.cluster)
        return cm_link_command(r->nodes->cmd, fn, priv, argc, argv, lens);
    struct rcall *rc = rcall_new(r, fn, priv, argc, argv, lens);
    return rcall_start(r, rc, key, key ? strlen(key) : 0);
}

int cm_router_commandv(struct cm_router *r, const char *key, cm_link_reply_fn *fn, void *priv,
                       int argc, const char **argv)
{
    size_t lens[32];
    if (argc > (int)CM_ARRAY_LEN(lens))
        return -1;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return cm_router_command(r, key, fn, priv, argc, argv, lens);
}

int cm_router_script(struct cm_router *r, enum cm_script script, int nkeys, int argc,
                     const char **argv, const size_t *lens, cm_link_reply_fn *fn, void *priv)
{
    if (r->freeing)
        return -1;
    if (!r->o.cluster)
        return cm_link_script(r->nodes->cmd, script, nkeys, argc, argv, lens, fn, priv);
    struct rcall *rc = rcall_new(r, fn, priv, argc, argv, lens);
    rc->script = (int)script;
    rc->nkeys = nkeys;
    return rcall_start(r, rc, nkeys > 0 ? argv[0] : NULL, nkeys > 0 ? lens[0] : 0);
}

void cm_router_send_held(struct cm_router *r, const char *key, int argc, const char **argv,
                         const size_t *lens)
{
    if (r->freeing)
        return;
    if (!r->o.cluster) {
        cm_link_send_held(r->nodes->cmd, argc, argv, lens);
        return;
    }
    struct rcall *rc = rcall_new(r, NULL, NULL, argc, argv, lens);
    rc->held = true;
    rc->slot = cm_key_slot(key, strlen(key));
    struct node *owner = r->slots[rc->slot];
    if (!r->held && owner && cm_link_ready(owner->cmd) && !owner->retired) {
        rcall_send(rc);
        return;
    }
    if (r->o.held_max && r->nheld >= r->o.held_max) {
        CM_WARN("redis cluster: %zu commands held: dropping the oldest", r->nheld);
        struct rcall *old = r->held;
        r->held = old->next;
        if (!r->held)
            r->held_tail = NULL;
        r->nheld--;
        rcall_free(old);
    }
    held_push(r, rc);
}

size_t cm_router_held_count(const struct cm_router *r)
{
    if (!r->o.cluster)
        return cm_link_held_count(r->nodes->cmd);
    return r->nheld + r->nheld_inflight;
}

uint64_t cm_router_held_retries(const struct cm_router *r)
{
    if (!r->o.cluster)
        return cm_link_held_retries(r->nodes->cmd);
    return r->held_retries;
}

int64_t cm_router_deadline_ms(struct cm_router *r, const char *key)
{
    struct node *n = r->o.cluster ? r->slots[cm_key_slot(key, strlen(key))] : r->nodes;
    if (!n) {
        n = r->nodes;
    }
    return cm_link_deadline_ms(n->cmd);
}

/* ---- replication: grouped WAIT ---- */

struct waiter {
    struct waiter *next;
    cm_router_wait_fn *fn;
    void *priv;
};

/* The waiters one WAIT covers. */
struct wait_batch {
    struct node *node;
    struct waiter *waiters;
    int replicas;
    int64_t timeout_ms;
};

static void wait_send(struct node *n, int replicas, int64_t timeout_ms);

static void waiters_answer(struct waiter *w, int result)
{
    while (w) {
        struct waiter *next = w->next;
        w->fn(w->priv, result);
        free(w);
        w = next;
    }
}

static void on_wait(redisReply *reply, void *priv)
{
    struct wait_batch *b = priv;
    struct node *n = b->node;
    int result = -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        result = reply->integer >= b->replicas;
    else if (reply)
        CM_WARN("redis %s: WAIT failed: %s", n->name, cm_reply_error(reply));
    n->waiting = false;
    waiters_answer(b->waiters, result);
    /* Who asked meanwhile needs a WAIT sent after their writes. */
    if (n->waiters && !n->r->freeing)
        wait_send(n, n->wait_replicas, b->timeout_ms);
    free(b);
}

static void wait_send(struct node *n, int replicas, int64_t timeout_ms)
{
    char nrep[16], ms[24];
    snprintf(nrep, sizeof(nrep), "%d", replicas);
    snprintf(ms, sizeof(ms), "%lld", (long long)timeout_ms);
    struct wait_batch *b = cm_malloc(sizeof(*b));
    *b = (struct wait_batch){
        .node = n, .waiters = n->waiters, .replicas = replicas, .timeout_ms = timeout_ms};
    n->waiters = n->waiters_tail = NULL;
    if (cm_link_commandv(n->cmd, on_wait, b, 3, (const char *[]){"WAIT", nrep, ms}) != 0) {
        waiters_answer(b->waiters, -1);
        free(b);
        return;
    }
    n->waiting = true;
}

int cm_router_wait(struct cm_router *r, const char *key, int replicas, int64_t timeout_ms,
                   cm_router_wait_fn *fn, void *priv)
{
    struct node *n = r->o.cluster ? r->slots[cm_key_slot(key, strlen(key))] : r->nodes;
    if (!n || n->retired || !cm_link_ready(n->cmd))
        return -1;
    /* A shard with no replica has nobody to wait for (one Redis: the
     * caller asked for replicas, so it has some). */
    if (r->o.cluster && n->replicas == 0)
        return 1;
    if (r->o.cluster && replicas > n->replicas)
        replicas = n->replicas;
    struct waiter *w = cm_malloc(sizeof(*w));
    *w = (struct waiter){.fn = fn, .priv = priv};
    if (n->waiters_tail)
        n->waiters_tail->next = w;
    else
        n->waiters = w;
    n->waiters_tail = w;
    n->wait_replicas = replicas;
    if (!n->waiting)
        wait_send(n, replicas, timeout_ms);
    return 0;
}

struct barrier {
    void (*fn)(void *priv);
    void *priv;
    size_t owed;
};

static void on_barrier(redisReply *reply, void *priv)
{
    struct barrier *b = priv;
    if (--b->owed > 0)
        return;
    b->fn(b->priv);
    free(b);
}

int cm_router_barrier(struct cm_router *r, void (*fn)(void *priv), void *priv)
{
    struct barrier *b = cm_malloc(sizeof(*b));
    *b = (struct barrier){.fn = fn, .priv = priv, .owed = 1}; /* 1: held while sending */
    for (struct node *n = r->nodes; n; n = n->next)
        if (!n->retired &&
            cm_link_commandv(n->cmd, on_barrier, b, 1, (const char *[]){"PING"}) == 0)
            b->owed++;
    if (b->owed == 1) {
        free(b);
        return -1;
    }
    on_barrier(NULL, b);
    return 0;
}

struct cm_router *cm_router_new(const struct cm_router_opts *opts)
{
    struct cm_router *r = cm_calloc(1, sizeof(*r));
    r->o = *opts;
    if (opts->hooks)
        r->hooks = *opts->hooks;
    r->seeds = cm_malloc(opts->nseeds * sizeof(*r->seeds));
    memcpy(r->seeds, opts->seeds, opts->nseeds * sizeof(*r->seeds));
    r->o.seeds = r->seeds;
    /* Credentials: from the first seed that has them, for every node. */
    for (size_t i = 1; i < opts->nseeds && !r->seeds[0].password[0]; i++)
        if (r->seeds[i].password[0]) {
            memcpy(r->seeds[0].user, r->seeds[i].user, sizeof(r->seeds[0].user));
            memcpy(r->seeds[0].password, r->seeds[i].password, sizeof(r->seeds[0].password));
        }
    r->refresh_timer = opts->loop->timer_new(opts->loop->ctx, on_refresh_timer, r);
    r->gc_timer = opts->loop->timer_new(opts->loop->ctx, on_gc_timer, r);
    r->held_timer = opts->loop->timer_new(opts->loop->ctx, on_held_timer, r);
    /* Seeds are nodes until the first slot map says otherwise. */
    size_t nseeds = r->o.cluster ? r->o.nseeds : 1;
    for (size_t i = nseeds; i-- > 0;)
        node_get(r, r->seeds[i].host, r->seeds[i].port);
    if (!r->o.cluster) {
        for (unsigned s = 0; s < CM_SLOTS; s++)
            r->slots[s] = r->nodes;
    } else if (r->o.pubsub && r->o.probe_channel) {
        /* The process's own channel, classic, on whichever node owns it. */
        chan_add(r, r->o.probe_channel, true);
    }
    return r;
}

void cm_router_start(struct cm_router *r)
{
    r->started = true;
    for (struct node *n = r->nodes; n; n = n->next)
        node_start(n);
}

void cm_router_free(struct cm_router *r)
{
    if (!r)
        return;
    r->freeing = true;
    r->o.loop->timer_free(r->refresh_timer);
    r->o.loop->timer_free(r->gc_timer);
    r->o.loop->timer_free(r->held_timer);
    /* Links first: their pending calls come back through on_rcall_reply,
     * which frees them. */
    while (r->nodes) {
        struct node *n = r->nodes;
        r->nodes = n->next;
        node_free(n);
    }
    if (r->nheld)
        CM_WARN("redis cluster: exiting with %zu commands not sent to Redis", r->nheld);
    while (r->held) {
        struct rcall *rc = r->held;
        r->held = rc->next;
        rcall_free(rc);
    }
    while (r->waiting) {
        struct rcall *rc = r->waiting;
        r->waiting = rc->next;
        rcall_answer(rc, NULL);
    }
    struct chan *ch, *tmp;
    HASH_ITER(hh, r->chans, ch, tmp) {
        HASH_DEL(r->chans, ch);
        free(ch);
    }
    free(r->seeds);
    free(r);
}

/* ---- one primary at a time ---- */

static bool node_owns_slot(const struct cm_router *r, const struct node *n)
{
    for (unsigned s = 0; s < CM_SLOTS; s++)
        if (r->slots[s] == n)
            return true;
    return false;
}

/* The index-th node that owns a slot and is not retired. */
static struct node *primary_at(const struct cm_router *r, size_t index)
{
    for (struct node *n = r->nodes; n; n = n->next)
        if (!n->retired && node_owns_slot(r, n) && index-- == 0)
            return n;
    return NULL;
}

size_t cm_router_primaries(const struct cm_router *r)
{
    size_t count = 0;
    for (const struct node *n = r->nodes; n; n = n->next)
        count += !n->retired && node_owns_slot(r, n);
    return count;
}

const char *cm_router_primary_name(const struct cm_router *r, size_t index)
{
    const struct node *n = primary_at(r, index);
    return n ? n->name : NULL;
}

int cm_router_command_at(struct cm_router *r, size_t index, cm_link_reply_fn *fn, void *priv,
                         int argc, const char **argv, const size_t *lens)
{
    struct node *n = r->freeing ? NULL : primary_at(r, index);
    return n ? cm_link_command(n->cmd, fn, priv, argc, argv, lens) : -1;
}

long long cm_router_client_id_at(const struct cm_router *r, size_t index)
{
    const struct node *n = primary_at(r, index);
    return n ? cm_link_client_id(n->cmd) : -1;
}
