/*
 * The gateway's store: keys, script arguments and reply shapes, on a
 * common/cm_router (one Redis, or a Redis Cluster). See store.h for the
 * contract.
 *
 * Events and registry writes go out as held commands (cm_router_send_held):
 * kept while the command link is down and sent again if it drops before
 * Redis answers or if Redis refuses them for a while (READONLY, OOM, ...),
 * so a close during an outage or a failover still reaches the workers.
 * Replaying is safe: a leave is a compare-and-delete on its mid, a join
 * event changes nothing, and registry writes replay in their order.
 */
#include "store.h"

#include "cm_keys.h"
#include "cm_log.h"
#include "cm_router.h"
#include "cm_proto.h"
#include "cm_redis_url.h"
#include "cm_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELD_MAX 100000    /* events kept while Redis is unreachable */
#define PROBE_MS 100       /* command link: a PING while idle this often */
#define SUB_PROBE_MS 500   /* pub/sub path: a PUBLISH to ourselves this often */

struct gw_store {
    struct gw_store_config cfg;
    struct gw_store_hooks hooks;
    const struct cm_link_loop *loop;
    struct cm_router *redis;
    uint64_t reconnects;
    void *heartbeat;
    char control[CM_KEY_MAX];  /* chat:gw:<id> */
    char registry[CM_KEY_MAX]; /* chat:gw:<id>:sessions */
    char gateways[CM_KEY_MAX]; /* the liveness zset (cm_key_gateways) */
};

/* One request in flight: whose callback, and which reply shape. */
struct req {
    struct gw_store *st;
    void (*fn)(void);
    void *priv;
};

static struct req *req_new(struct gw_store *st, void (*fn)(void), void *priv)
{
    struct req *r = cm_malloc(sizeof(*r));
    *r = (struct req){.st = st, .fn = fn, .priv = priv};
    return r;
}

/* OK, REFUSED (an error, logged) or LOST; `what` names it in the log. */
static enum gw_store_status status_of(const redisReply *reply, const char *what)
{
    if (!reply)
        return GW_STORE_LOST;
    if (reply->type == REDIS_REPLY_ERROR) {
        CM_WARN("redis %s failed: %s", what, reply->str);
        return GW_STORE_REFUSED;
    }
    return GW_STORE_OK;
}

static size_t lens_of(int argc, const char **argv, size_t *lens)
{
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return (size_t)argc;
}

/* The string elements of an array reply, as views; free(out->s) after. */
static void strs_of(const redisReply *arr, struct gw_strs *out)
{
    size_t n = arr && arr->type == REDIS_REPLY_ARRAY ? arr->elements : 0;
    const char **s = n ? cm_malloc(n * (sizeof(*s) + sizeof(size_t))) : NULL;
    size_t *len = (size_t *)(s + n), k = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        s[k] = e->str;
        len[k++] = e->len;
    }
    *out = (struct gw_strs){.n = k, .s = s, .len = len};
}

/* ---- messages ---- */

/* A publish stored and delivered, waiting for its replicas. */
struct publish_req {
    struct req r;
    int64_t seq;
    char room[]; /* the WAIT goes to the room's primary */
};

static void on_replicated(void *priv, int result)
{
    struct publish_req *p = priv;
    if (result < 1)
        CM_DEBUG("publish of seq %lld: %s", (long long)p->seq,
                 result == 0 ? "no replica confirmed it in time" : "link lost before WAIT answered");
    ((gw_store_publish_fn *)p->r.fn)(p->r.priv, GW_STORE_OK, p->seq, result == 1);
    free(p);
}

static void on_publish(redisReply *reply, void *priv)
{
    struct publish_req *p = priv;
    struct gw_store *st = p->r.st;
    enum gw_store_status status = status_of(reply, "publish");
    if (status == GW_STORE_OK) {
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER)
            p->seq = reply->element[0]->integer;
        else
            status = GW_STORE_REFUSED;
    }
    /* An ack must survive a failover: it waits until a replica has the
     * message. One WAIT covers every publish answered before it went out. */
    if (status == GW_STORE_OK && st->cfg.ack_replicas > 0) {
        char meta[CM_KEY_MAX];
        cm_key_room(meta, CM_ROOM_META, p->room);
        int rc = cm_router_wait(st->redis, meta, st->cfg.ack_replicas, st->cfg.ack_timeout_ms,
                                on_replicated, p);
        if (rc == 0)
            return;
        if (rc < 0) {
            on_replicated(p, -1);
            return;
        }
        /* 1: the shard has no replica to wait for. */
    }
    ((gw_store_publish_fn *)p->r.fn)(p->r.priv, status, p->seq, true);
    free(p);
}

int gw_store_publish(struct gw_store *st, const char *room, const char *tail, size_t tail_len,
                     gw_store_publish_fn *fn, void *priv)
{
    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], chan[CM_KEY_MAX], cap[24], epoch[33], deadline[24];
    cm_key_room(meta, CM_ROOM_META, room);
    cm_key_room(hist, CM_ROOM_HISTORY, room);
    cm_key_room(chan, CM_ROOM_CHANNEL, room);
    snprintf(cap, sizeof(cap), "%lld", st->cfg.history_max);
    cm_random_hex(epoch, 8);
    /* Past the time the link watchdog gives up on Redis, the script stores
     * nothing: `unavailable` then stays true even if a paused Redis runs the
     * script later (docs/ARCHITECTURE.md: clocks within that margin). */
    snprintf(deadline, sizeof(deadline), "%lld", (long long)cm_router_deadline_ms(st->redis, meta));
    const char *argv[] = {meta, hist, chan, tail, cap, epoch, deadline,
                          cm_router_publish_verb(st->redis)};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    lens[3] = tail_len;
    struct publish_req *p = cm_calloc(1, sizeof(*p) + strlen(room) + 1);
    p->r = (struct req){.st = st, .fn = (void (*)(void))fn, .priv = priv};
    strcpy(p->room, room);
    if (cm_router_script(st->redis, CM_SCRIPT_PUBLISH, 2, (int)CM_ARRAY_LEN(argv), argv, lens,
                         on_publish, p) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

static void on_history(redisReply *reply, void *priv)
{
    struct req *r = priv;
    enum gw_store_status status = status_of(reply, "history");
    struct gw_store_history h = {.epoch = ""};
    if (status == GW_STORE_OK && !(reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                                   reply->element[2]->type == REDIS_REPLY_ARRAY))
        status = GW_STORE_REFUSED;
    if (status == GW_STORE_OK) {
        if (reply->element[0]->type == REDIS_REPLY_INTEGER)
            h.seq = reply->element[0]->integer;
        if (reply->element[1]->type == REDIS_REPLY_STRING)
            h.epoch = reply->element[1]->str;
        strs_of(reply->element[2], &h.items);
    }
    ((gw_store_history_fn *)r->fn)(r->priv, status, status == GW_STORE_OK ? &h : NULL);
    free(h.items.s);
    free(r);
}

static int history(struct gw_store *st, const char *room, const char *dir, int64_t from,
                   long long limit, gw_store_history_fn *fn, void *priv)
{
    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], seq[24], lim[24];
    cm_key_room(meta, CM_ROOM_META, room);
    cm_key_room(hist, CM_ROOM_HISTORY, room);
    snprintf(seq, sizeof(seq), "%lld", (long long)from);
    snprintf(lim, sizeof(lim), "%lld", limit);
    const char *argv[] = {meta, hist, dir, seq, lim};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    struct req *r = req_new(st, (void (*)(void))fn, priv);
    if (cm_router_script(st->redis, CM_SCRIPT_HISTORY, 2, (int)CM_ARRAY_LEN(argv), argv, lens,
                       on_history, r) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

int gw_store_history_before(struct gw_store *st, const char *room, int64_t before, long long limit,
                            gw_store_history_fn *fn, void *priv)
{
    return history(st, room, "before", before > 0 ? before : 0, limit, fn, priv);
}

int gw_store_history_after(struct gw_store *st, const char *room, int64_t after,
                           gw_store_history_fn *fn, void *priv)
{
    return history(st, room, "after", after, st->cfg.history_max, fn, priv);
}

/* ---- membership ---- */

/* {..., {nickname, value...}, count, cursor} at element i of a script's reply. */
static bool page_valid(const redisReply *r, size_t i)
{
    return r->element[i]->type == REDIS_REPLY_ARRAY &&
           r->element[i + 1]->type == REDIS_REPLY_INTEGER &&
           r->element[i + 2]->type == REDIS_REPLY_STRING;
}

/* The "since" of a stored member value (cm_encode_member writes it as a
 * plain number); 0 if it has none. */
static long long since_of(const redisReply *value)
{
    static const char key[] = "\"since\":";
    if (value->type != REDIS_REPLY_STRING)
        return 0;
    const char *p = memmem(value->str, value->len, key, sizeof(key) - 1);
    return p ? strtoll(p + sizeof(key) - 1, NULL, 10) : 0;
}

/* Pairs of nickname and stored value, as the scripts return them, made
 * into the JSON array clients see: [{"nickname","since"},...]. The
 * scripts leave this to us so that a member costs Redis only its reply. */
static void members_json(const redisReply *pairs, struct cm_sbuf *b)
{
    cm_sbuf_puts(b, "[");
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        const redisReply *name = pairs->element[i];
        if (name->type != REDIS_REPLY_STRING)
            continue;
        if (b->len > 1)
            cm_sbuf_puts(b, ",");
        cm_sbuf_puts(b, "{\"nickname\":");
        cm_sbuf_put_json_str(b, name->str, name->len);
        cm_sbuf_printf(b, ",\"since\":%lld}", since_of(pairs->element[i + 1]));
    }
    cm_sbuf_puts(b, "]");
}

/* A page from {pairs, count, cursor}; out->json points into b. */
static void page_of(redisReply **e, struct cm_sbuf *b, struct gw_store_members *out)
{
    members_json(e[0], b);
    out->json = cm_sbuf_data(b);
    out->count = e[1]->integer;
    out->cursor = e[2]->str;
}

static bool join_reply_valid(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 7 &&
           r->element[0]->type == REDIS_REPLY_INTEGER && r->element[2]->type == REDIS_REPLY_INTEGER &&
           r->element[3]->type == REDIS_REPLY_ARRAY && page_valid(r, 4);
}

static void on_join(redisReply *reply, void *priv)
{
    struct req *r = priv;
    enum gw_store_status status = status_of(reply, "join");
    struct gw_store_joined j = {0};
    struct cm_sbuf members;
    cm_sbuf_init(&members, 0);
    if (status == GW_STORE_OK && !join_reply_valid(reply))
        status = GW_STORE_REFUSED;
    if (status == GW_STORE_OK) {
        redisReply **e = reply->element;
        j.seq = e[0]->integer;
        j.epoch = e[1]->type == REDIS_REPLY_STRING ? e[1]->str : "";
        j.recovered = (int)e[2]->integer;
        strs_of(e[3], &j.history);
        page_of(e + 4, &members, &j.members);
    }
    ((gw_store_join_fn *)r->fn)(r->priv, status, status == GW_STORE_OK ? &j : NULL);
    free(j.history.s);
    cm_sbuf_free(&members);
    free(r);
}

int gw_store_join(struct gw_store *st, const struct gw_store_join *q, gw_store_join_fn *fn,
                  void *priv)
{
    const struct gw_store_member *who = &q->who;
    char meta[CM_KEY_MAX], hist[CM_KEY_MAX], members[CM_KEY_MAX], chan[CM_KEY_MAX];
    char epoch[33], since[24], nhistory[24], page[24];
    struct cm_sbuf member, presence;
    cm_key_room(meta, CM_ROOM_META, who->room);
    cm_key_room(hist, CM_ROOM_HISTORY, who->room);
    cm_key_room(members, CM_ROOM_MEMBERS, who->room);
    cm_key_room(chan, CM_ROOM_CHANNEL, who->room);
    cm_random_hex(epoch, 8);
    snprintf(since, sizeof(since), "%lld", (long long)q->since);
    snprintf(nhistory, sizeof(nhistory), "%d", q->history);
    snprintf(page, sizeof(page), "%lld", q->no_members ? 0 : st->cfg.members_page);
    cm_sbuf_init(&member, 0);
    cm_sbuf_init(&presence, 0);
    int64_t now = cm_now_ms();
    cm_encode_member(&member, who->session, who->mid, st->cfg.gateway_id, now);
    cm_encode_presence(&presence, who->room, "join", who->nickname, NULL, now);
    const char *argv[] = {meta, hist, members, chan, who->nickname, cm_sbuf_data(&member),
                          who->session, epoch, since, q->epoch, nhistory,
                          cm_sbuf_data(&presence), who->room, page,
                          cm_router_publish_verb(st->redis)};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    /* The registry entry first, pipelined ahead of the script: should this
     * gateway die the moment its client is told `joined`, the sweep still
     * finds the membership. (Written after the reply, it could be lost with
     * the gateway, and the member would stay listed for good.) */
    gw_store_registry_add(st, who);
    struct req *r = req_new(st, (void (*)(void))fn, priv);
    int rc = cm_router_script(st->redis, CM_SCRIPT_JOIN, 3, (int)CM_ARRAY_LEN(argv), argv, lens,
                            on_join, r);
    cm_sbuf_free(&member);
    cm_sbuf_free(&presence);
    if (rc != 0) {
        free(r);
        gw_store_registry_del(st, who->mid);
        return -1;
    }
    return 0;
}

static void on_members(redisReply *reply, void *priv)
{
    struct req *r = priv;
    enum gw_store_status status = status_of(reply, "members");
    struct gw_store_members page = {0};
    struct cm_sbuf json;
    cm_sbuf_init(&json, 0);
    /* {count, cursor, {nickname, value...}} */
    if (status == GW_STORE_OK &&
        !(reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
          reply->element[0]->type == REDIS_REPLY_INTEGER &&
          reply->element[1]->type == REDIS_REPLY_STRING &&
          reply->element[2]->type == REDIS_REPLY_ARRAY))
        status = GW_STORE_REFUSED;
    if (status == GW_STORE_OK) {
        members_json(reply->element[2], &json);
        page.json = cm_sbuf_data(&json);
        page.count = reply->element[0]->integer;
        page.cursor = reply->element[1]->str;
    }
    ((gw_store_members_fn *)r->fn)(r->priv, status, status == GW_STORE_OK ? &page : NULL);
    cm_sbuf_free(&json);
    free(r);
}

int gw_store_members(struct gw_store *st, const char *room, const char *cursor,
                     gw_store_members_fn *fn, void *priv)
{
    char key[CM_KEY_MAX], page[24];
    cm_key_room(key, CM_ROOM_MEMBERS, room);
    snprintf(page, sizeof(page), "%lld", st->cfg.members_page);
    const char *argv[] = {key, cursor, page};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    struct req *r = req_new(st, (void (*)(void))fn, priv);
    if (cm_router_script(st->redis, CM_SCRIPT_MEMBERS, 1, (int)CM_ARRAY_LEN(argv), argv, lens,
                       on_members, r) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

struct reassert_req {
    struct req r;
    char *old_mid;
};

static void on_reassert(redisReply *reply, void *priv)
{
    struct reassert_req *ra = priv;
    enum gw_store_status status = status_of(reply, "reassert");
    if (status == GW_STORE_OK && reply->type != REDIS_REPLY_INTEGER)
        status = GW_STORE_REFUSED;
    /* Applied: the old mid owns nothing any more, whether or not the
     * member is still here (its leave names the new mid). */
    if (status == GW_STORE_OK)
        gw_store_registry_del(ra->r.st, ra->old_mid);
    ((gw_store_reassert_fn *)ra->r.fn)(ra->r.priv, status,
                                       status == GW_STORE_OK && reply->integer != 0);
    free(ra->old_mid);
    free(ra);
}

int gw_store_reassert(struct gw_store *st, const struct gw_store_member *who, const char *old_mid,
                      gw_store_reassert_fn *fn, void *priv)
{
    char members[CM_KEY_MAX], chan[CM_KEY_MAX];
    struct cm_sbuf value, presence;
    int64_t now = cm_now_ms();
    cm_key_room(members, CM_ROOM_MEMBERS, who->room);
    cm_key_room(chan, CM_ROOM_CHANNEL, who->room);
    cm_sbuf_init(&value, 0);
    cm_sbuf_init(&presence, 0);
    cm_encode_member(&value, who->session, who->mid, st->cfg.gateway_id, now);
    cm_encode_presence(&presence, who->room, "join", who->nickname, NULL, now);
    const char *argv[] = {members, chan, who->nickname, cm_sbuf_data(&value), old_mid,
                          cm_sbuf_data(&presence), cm_router_publish_verb(st->redis)};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    /* The new registry entry goes first: if this gateway dies now, the
     * sweep finds the membership under either id. */
    gw_store_registry_add(st, who);
    struct reassert_req *ra = cm_calloc(1, sizeof(*ra));
    ra->r = (struct req){.st = st, .fn = (void (*)(void))fn, .priv = priv};
    ra->old_mid = cm_strdup(old_mid);
    int rc = cm_router_script(st->redis, CM_SCRIPT_REASSERT, 1, (int)CM_ARRAY_LEN(argv), argv, lens,
                            on_reassert, ra);
    cm_sbuf_free(&value);
    cm_sbuf_free(&presence);
    if (rc != 0) {
        free(ra->old_mid);
        free(ra);
        return -1;
    }
    return 0;
}

static void on_epoch_bump(redisReply *reply, void *priv)
{
    if (reply && reply->type == REDIS_REPLY_STRING)
        CM_WARN("room %s: epoch is now %s", (char *)priv, reply->str);
    else if (reply)
        CM_WARN("room %s: epoch bump failed: %s", (char *)priv, cm_reply_error(reply));
    free(priv);
}

void gw_store_epoch_bump(struct gw_store *st, const char *room, const char *old_epoch)
{
    char meta[CM_KEY_MAX], epoch[33];
    cm_key_room(meta, CM_ROOM_META, room);
    cm_random_hex(epoch, 8);
    const char *argv[] = {meta, old_epoch, epoch};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    char *name = cm_strdup(room);
    if (cm_router_script(st->redis, CM_SCRIPT_EPOCH_BUMP, 1, (int)CM_ARRAY_LEN(argv), argv, lens,
                         on_epoch_bump, name) != 0)
        free(name);
}

void gw_store_room_subscribe(struct gw_store *st, const char *room)
{
    char chan[CM_KEY_MAX];
    cm_key_room(chan, CM_ROOM_CHANNEL, room);
    cm_router_subscribe(st->redis, chan);
}

void gw_store_room_unsubscribe(struct gw_store *st, const char *room)
{
    char chan[CM_KEY_MAX];
    cm_key_room(chan, CM_ROOM_CHANNEL, room);
    cm_router_unsubscribe(st->redis, chan);
}

/* ---- events and the registry ---- */

void gw_store_event(struct gw_store *st, const char *type, const struct gw_store_member *who,
                    const char *reason)
{
    char ts[24], events[CM_KEY_MAX];
    snprintf(ts, sizeof(ts), "%lld", (long long)cm_now_ms());
    /* A room's events all go to one partition, so they stay in order. */
    cm_key_events(events, cm_key_events_partition(who->room, st->cfg.event_partitions),
                  st->cfg.event_partitions);
    const char *argv[22] = {"XADD", events, "MAXLEN", "~", CM_EVENTS_MAXLEN, "*",
                            "type", type, "session", who->session, "mid", who->mid,
                            "gateway", st->cfg.gateway_id, "room", who->room,
                            "nickname", who->nickname, "ts", ts};
    size_t lens[22];
    int argc = 20;
    if (reason) {
        argv[argc] = "reason";
        argv[argc + 1] = reason;
        argc += 2;
    }
    lens_of(argc, argv, lens);
    cm_router_send_held(st->redis, events, argc, argv, lens);
}

void gw_store_registry_add(struct gw_store *st, const struct gw_store_member *who)
{
    struct cm_sbuf v;
    cm_sbuf_init(&v, 0);
    cm_sbuf_puts(&v, "{\"room\":");
    cm_sbuf_put_json_str(&v, who->room, strlen(who->room));
    cm_sbuf_puts(&v, ",\"nickname\":");
    cm_sbuf_put_json_str(&v, who->nickname, strlen(who->nickname));
    cm_sbuf_printf(&v, ",\"mid\":\"%s\",\"session\":\"%s\"}", who->mid, who->session);
    const char *argv[] = {"HSET", st->registry, who->mid, cm_sbuf_data(&v)};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    lens[3] = v.len;
    cm_router_send_held(st->redis, st->registry, (int)CM_ARRAY_LEN(argv), argv, lens);
    cm_sbuf_free(&v);
}

void gw_store_registry_del(struct gw_store *st, const char *mid)
{
    const char *argv[] = {"HDEL", st->registry, mid};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    cm_router_send_held(st->redis, st->registry, (int)CM_ARRAY_LEN(argv), argv, lens);
}

/* ---- liveness ---- */

static void send_heartbeat(struct gw_store *st, bool only_update);

/* The beat is ZADD XX CH: it answers 0 when the gateway is no longer in
 * the liveness zset (chat:gateways; chat:{gateways} in a cluster), i.e. a
 * worker declared it dead (it was paused, or cut off from Redis, for
 * longer than the timeout). It then registers again and the owner
 * re-asserts every membership it still holds. */
static void on_heartbeat(redisReply *reply, void *priv)
{
    struct gw_store *st = priv;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        CM_WARN("heartbeat failed: %s", reply->str);
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        CM_WARN("gateway %s was declared dead; registering again", st->cfg.gateway_id);
        send_heartbeat(st, false);
        if (st->hooks.declared_dead)
            st->hooks.declared_dead(st->hooks.owner);
    }
}

static void on_register(redisReply *reply, void *priv)
{
    if (reply && reply->type == REDIS_REPLY_ERROR)
        CM_WARN("heartbeat failed: %s", reply->str);
}

static void send_heartbeat(struct gw_store *st, bool only_update)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)cm_now_ms());
    if (only_update)
        cm_router_commandv(st->redis, st->gateways, on_heartbeat, st, 6,
                           (const char *[]){"ZADD", st->gateways, "XX", "CH", now,
                                            st->cfg.gateway_id});
    else
        cm_router_commandv(st->redis, st->gateways, on_register, NULL, 4,
                           (const char *[]){"ZADD", st->gateways, now, st->cfg.gateway_id});
}

static void on_heartbeat_timer(void *arg)
{
    struct gw_store *st = arg;
    send_heartbeat(st, true);
    st->loop->timer_start(st->heartbeat, st->cfg.heartbeat_ms);
}

static void on_plain(redisReply *reply, void *priv)
{
    if (reply && reply->type == REDIS_REPLY_ERROR)
        CM_WARN("redis command failed: %s", reply->str);
}

int gw_store_unregister(struct gw_store *st, void (*fn)(void *priv), void *priv)
{
    /* A gateway that leaves cleanly takes itself off the liveness list, so
     * no worker later mistakes it for a dead one. */
    cm_router_commandv(st->redis, st->gateways, on_plain, NULL, 3,
                       (const char *[]){"ZREM", st->gateways, st->cfg.gateway_id});
    return cm_router_barrier(st->redis, fn, priv);
}

/* ---- links ---- */

static void on_ready(void *owner, bool reconnect)
{
    struct gw_store *st = owner;
    send_heartbeat(st, false);
    /* Redis may have restarted empty: the owner re-asserts. */
    if (st->hooks.ready)
        st->hooks.ready(st->hooks.owner, reconnect);
}

static void on_lost(void *owner)
{
    struct gw_store *st = owner;
    st->reconnects++;
}

static void on_message(void *owner, const char *channel, size_t channel_len, const char *data,
                       size_t len)
{
    struct gw_store *st = owner;
    char room[CM_ROOM_MAX + 1];
    if (strcmp(channel, st->control) == 0) {
        if (st->hooks.control)
            st->hooks.control(st->hooks.owner, data, len);
    } else if (cm_key_channel_room(channel, channel_len, room) == 0 && st->hooks.room_message) {
        st->hooks.room_message(st->hooks.owner, room, data, len);
    }
}

static void on_subscribed(void *owner, const char *channel, size_t channel_len)
{
    struct gw_store *st = owner;
    char room[CM_ROOM_MAX + 1];
    if (cm_key_channel_room(channel, channel_len, room) == 0 && st->hooks.room_subscribed)
        st->hooks.room_subscribed(st->hooks.owner, room);
}

static void on_unsubscribed(void *owner, const char *channel, size_t channel_len)
{
    struct gw_store *st = owner;
    char room[CM_ROOM_MAX + 1];
    if (cm_key_channel_room(channel, channel_len, room) == 0 && st->hooks.room_lost)
        st->hooks.room_lost(st->hooks.owner, room);
}

static const struct cm_router_hooks router_hooks = {
    .ready = on_ready, .lost = on_lost, .message = on_message, .subscribed = on_subscribed,
    .unsubscribed = on_unsubscribed};
static const enum cm_script scripts[] = {CM_SCRIPT_PUBLISH, CM_SCRIPT_JOIN,
                                         CM_SCRIPT_MEMBERS, CM_SCRIPT_HISTORY,
                                         CM_SCRIPT_REASSERT, CM_SCRIPT_EPOCH_BUMP};

struct gw_store *gw_store_new(const struct gw_store_config *cfg, const struct cm_link_loop *loop,
                              const struct gw_store_hooks *hooks)
{
    struct gw_store *st = cm_calloc(1, sizeof(*st));
    st->cfg = *cfg;
    st->hooks = *hooks;
    st->loop = loop;
    cm_key_gw_control(st->control, cfg->gateway_id);
    cm_key_gw_sessions(st->registry, cfg->gateway_id);
    cm_key_gateways(st->gateways, CM_GATEWAYS_LIVE, cfg->cluster);
    st->redis = cm_router_new(&(struct cm_router_opts){
        .name = "gateway", .seeds = cfg->seeds, .nseeds = cfg->nseeds, .cluster = cfg->cluster,
        .loop = loop, .hooks = &router_hooks, .owner = st, .scripts = scripts,
        .nscripts = CM_ARRAY_LEN(scripts), .timeout_ms = cfg->timeout_ms, .watch_ms = PROBE_MS,
        .probe_ms = PROBE_MS, .pubsub = true, .sub_probe_ms = SUB_PROBE_MS,
        .probe_channel = st->control, .held_max = HELD_MAX});
    st->heartbeat = loop->timer_new(loop->ctx, on_heartbeat_timer, st);
    return st;
}

void gw_store_start(struct gw_store *st)
{
    st->loop->timer_start(st->heartbeat, st->cfg.heartbeat_ms);
    cm_router_start(st->redis);
}

void gw_store_free(struct gw_store *st)
{
    if (!st)
        return;
    st->loop->timer_free(st->heartbeat);
    cm_router_free(st->redis);
    free(st);
}

bool gw_store_ready(const struct gw_store *st)
{
    return cm_router_ready(st->redis);
}

bool gw_store_room_ready(const struct gw_store *st, const char *room)
{
    char chan[CM_KEY_MAX];
    cm_key_room(chan, CM_ROOM_CHANNEL, room);
    return cm_router_key_ready(st->redis, chan);
}

size_t gw_store_backlog(const struct gw_store *st)
{
    return cm_router_held_count(st->redis);
}

uint64_t gw_store_backlog_retries(const struct gw_store *st)
{
    return cm_router_held_retries(st->redis);
}

uint64_t gw_store_reconnects(const struct gw_store *st)
{
    return st->reconnects;
}
