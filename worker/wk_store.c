/*
 * The worker's store: keys, command and script arguments, and reply
 * shapes, on two common/cm_routers. See wk_store.h for the contract.
 *
 * Nothing here decides what to retry: each answer says how its call ended
 * (OK, refused, lost; transient or not) and the caller's policy does the
 * rest, as it did when the worker parsed replies itself.
 */
#include "wk_store.h"

#include "cm_keys.h"
#include "cm_log.h"
#include "cm_proto.h"
#include "cm_redis_url.h"
#include "cm_router.h"
#include "cm_util.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOM_META_PATTERN "chat:{*}:meta"        /* SCAN MATCH for every room's meta key */
#define SCAN_COUNT "200"                         /* SCAN's COUNT hint per step */
#define TRIM_MAX "1000"                          /* history entries one retention call trims */

#define COMMANDS_TIMEOUT_MS 15000 /* a reply owed and nothing read for this long: drop */
/* How often each link's watchdog looks. It used to run from the sweep
 * timer, whose period (--sweep-ms, 10 ms to 60 s) is a liveness knob, not
 * a Redis one: a fixed quarter second keeps the timeouts above accurate to
 * within 250 ms whatever the sweep period, and costs an ioctl per look. */
#define WATCH_MS 250

struct wk_store {
    struct wk_store_config cfg;
    struct wk_store_hooks hooks;
    char consumer[WK_ID_MAX + 1];
    struct cm_router *redis; /* "commands" */
    struct cm_router *reads; /* "events": only XREADGROUP */
    bool closing;            /* wk_store_free is running: no new calls */
    enum cm_script scripts[CM_SCRIPT__COUNT];
    char (*events)[CM_KEY_MAX]; /* the stream of each partition */
    char group_name[CM_KEY_MAX + 32];
    char gateways[3][CM_KEY_MAX]; /* enum cm_gateways_key */
};

/* One call in flight: whose callback, and its private pointer. */
struct req {
    struct wk_store *st;
    void (*fn)(void);
    void *priv;
};

/* ---- replies ---- */

static struct wk_store_result result_of(const redisReply *reply)
{
    struct wk_store_result r = {.status = WK_STORE_OK, .error = ""};
    switch (cm_reply_kind(reply)) {
    case CM_REPLY_OK: break;
    case CM_REPLY_LOST: r.status = WK_STORE_LOST; break;
    case CM_REPLY_TRANSIENT:
        r.status = WK_STORE_REFUSED;
        r.transient = true;
        break;
    case CM_REPLY_FATAL:
        r.status = WK_STORE_REFUSED;
        r.nogroup = strncmp(reply->str, "NOGROUP", 7) == 0;
        break;
    }
    if (r.status != WK_STORE_OK)
        r.error = cm_reply_error(reply);
    return r;
}

/* An answer that is not an error but not the shape asked for either. */
static void result_unexpected(struct wk_store_result *r)
{
    *r = (struct wk_store_result){.status = WK_STORE_REFUSED, .error = "unexpected reply"};
}

static size_t lens_of(int argc, const char **argv, size_t *lens)
{
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return (size_t)argc;
}

/* A command to the owner of key. */
static int send_command(struct wk_store *st, const char *key, cm_link_reply_fn *on,
                        void (*fn)(void), void *priv, int argc, const char **argv)
{
    size_t lens[16];
    if (st->closing || argc > (int)CM_ARRAY_LEN(lens))
        return -1;
    lens_of(argc, argv, lens);
    struct req *r = cm_malloc(sizeof(*r));
    *r = (struct req){.st = st, .fn = fn, .priv = priv};
    if (cm_router_command(st->redis, key, on, r, argc, argv, lens) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

static int send_script(struct wk_store *st, enum cm_script script, int nkeys, int argc,
                       const char **argv, const size_t *lens, cm_link_reply_fn *on,
                       void (*fn)(void), void *priv)
{
    if (st->closing)
        return -1;
    struct req *r = cm_malloc(sizeof(*r));
    *r = (struct req){.st = st, .fn = fn, .priv = priv};
    if (cm_router_script(st->redis, script, nkeys, argc, argv, lens, on, r) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

static int send_scriptv(struct wk_store *st, enum cm_script script, int nkeys, int argc,
                        const char **argv, cm_link_reply_fn *on, void (*fn)(void), void *priv)
{
    size_t lens[16];
    if (argc > (int)CM_ARRAY_LEN(lens))
        return -1;
    lens_of(argc, argv, lens);
    return send_script(st, script, nkeys, argc, argv, lens, on, fn, priv);
}

static void on_done(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    ((wk_store_done_fn *)r->fn)(r->priv, &res);
    free(r);
}

/* ---- stream entries ---- */

static int copy_value(char *dst, size_t cap, const redisReply *v)
{
    if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len >= cap ||
        memchr(v->str, '\0', v->len))
        return -1;
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
    return 0;
}

static bool reason_valid(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return false;
    return *s != '\0';
}

/* Copies one known field into ev; unknown fields are ignored, so the
 * gateway may add fields. Returns NULL or what is wrong. */
static const char *event_field(struct wk_event *ev, const redisReply *k, const redisReply *v)
{
    static const char *const names[] = {"room", "nickname", "mid", "gateway", "reason"};
    char *const dst[] = {ev->room, ev->nickname, ev->mid, ev->gateway, ev->reason};
    const size_t cap[] = {sizeof(ev->room), sizeof(ev->nickname), sizeof(ev->mid),
                          sizeof(ev->gateway), sizeof(ev->reason)};

    if (k->type != REDIS_REPLY_STRING)
        return "a field name is not a string";
    if (strcmp(k->str, "type") == 0) {
        if (v->type == REDIS_REPLY_STRING && strcmp(v->str, "join") == 0)
            ev->type = WK_EVENT_JOIN;
        else if (v->type == REDIS_REPLY_STRING && strcmp(v->str, "leave") == 0)
            ev->type = WK_EVENT_LEAVE;
        else
            return "unknown type";
        return NULL;
    }
    for (size_t i = 0; i < CM_ARRAY_LEN(names); i++)
        if (strcmp(k->str, names[i]) == 0)
            return copy_value(dst[i], cap[i], v) == 0 ? NULL : "a field is empty or too long";
    return NULL;
}

/* Decodes the field list of an entry (as gateway/store.c's XADD writes
 * it). Returns NULL, or what is wrong. */
static const char *event_decode(const redisReply *fields, struct wk_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!fields || fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0)
        return "no field list (deleted entry?)";
    for (size_t i = 0; i < fields->elements; i += 2) {
        const char *why = event_field(ev, fields->element[i], fields->element[i + 1]);
        if (why)
            return why;
    }
    if (ev->type == WK_EVENT_INVALID)
        return "no type";
    if (!cm_room_valid(ev->room, strlen(ev->room)))
        return "bad room";
    if (!cm_nickname_valid(ev->nickname, strlen(ev->nickname)))
        return "bad nickname";
    if (ev->mid[0] == '\0')
        return "no mid";
    if (!cm_room_valid(ev->gateway, strlen(ev->gateway)))
        return "bad gateway";
    if (ev->type == WK_EVENT_LEAVE && !reason_valid(ev->reason))
        return "bad reason";
    return NULL;
}

struct entry_list {
    size_t n;
    struct wk_store_entry *e;
};

/* Appends every entry of an XREADGROUP or XAUTOCLAIM entry list. */
static void entries_add(struct entry_list *l, const redisReply *entries)
{
    if (entries->type != REDIS_REPLY_ARRAY || entries->elements == 0)
        return;
    l->e = cm_realloc(l->e, (l->n + entries->elements) * sizeof(*l->e));
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        struct wk_store_entry *out = &l->e[l->n++];
        memset(out, 0, sizeof(*out));
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= WK_ENTRY_ID_MAX)
            continue; /* no usable id */
        out->id = e->element[0]->str;
        out->malformed = event_decode(e->element[1], &out->ev);
    }
}

/* ---- the events stream and its consumer group ---- */

const char *wk_store_group_name(const struct wk_store *st)
{
    return st->group_name;
}

static void on_group(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    bool created = res.status == WK_STORE_OK;
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) == 0)
        res = (struct wk_store_result){.status = WK_STORE_OK, .error = ""};
    ((wk_store_group_fn *)r->fn)(r->priv, &res, created);
    free(r);
}

int wk_store_group_create(struct wk_store *st, int p, wk_store_group_fn *fn, void *priv)
{
    const char *argv[] = {"XGROUP", "CREATE", st->events[p], CM_EVENTS_GROUP, "0", "MKSTREAM"};
    return send_command(st, st->events[p], on_group, (void (*)(void))fn, priv, 6, argv);
}

static void on_read(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    struct entry_list l = {0};
    /* A nil reply is a BLOCK timeout: nothing new. */
    for (size_t i = 0;
         res.status == WK_STORE_OK && reply->type == REDIS_REPLY_ARRAY && i < reply->elements;
         i++) {
        const redisReply *stream = reply->element[i];
        if (stream->type == REDIS_REPLY_ARRAY && stream->elements == 2)
            entries_add(&l, stream->element[1]);
    }
    ((wk_store_entries_fn *)r->fn)(r->priv, &res, &(struct wk_store_entries){l.n, l.e});
    free(l.e);
    free(r);
}

int wk_store_read(struct wk_store *st, int p, int count, wk_store_entries_fn *fn, void *priv)
{
    char n[16], block[24];
    snprintf(n, sizeof(n), "%d", count);
    snprintf(block, sizeof(block), "%lld", st->cfg.read_block_ms);
    const char *argv[11] = {"XREADGROUP", "GROUP", CM_EVENTS_GROUP, st->consumer, "COUNT", n};
    int argc = 6;
    if (wk_store_reads_block(st)) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = st->events[p];
    argv[argc++] = ">";
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of(argc, argv, lens);
    if (st->closing)
        return -1;
    struct req *r = cm_malloc(sizeof(*r));
    *r = (struct req){.st = st, .fn = (void (*)(void))fn, .priv = priv};
    if (cm_router_command(st->reads, st->events[p], on_read, r, argc, argv, lens) != 0) {
        free(r);
        return -1;
    }
    return 0;
}

static void on_ignored(redisReply *reply, void *priv)
{
}

int wk_store_unblock_read(struct wk_store *st)
{
    char id[24];
    long long cid =
        st->closing || !wk_store_reads_block(st) ? -1 : cm_router_client_id_at(st->reads, 0);
    if (cid < 0)
        return -1;
    snprintf(id, sizeof(id), "%lld", cid);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    size_t lens[3];
    lens_of(3, argv, lens);
    return cm_router_command_at(st->redis, 0, on_ignored, NULL, 3, argv, lens);
}

static void on_claim(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    struct entry_list l = {0};
    const char *next = "0-0";
    /* Redis 7 answers {next, entries, deleted ids}; 6.2 has no third. */
    if (res.status == WK_STORE_OK && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_ARRAY) {
        next = reply->element[0]->str;
        entries_add(&l, reply->element[1]);
    }
    ((wk_store_claim_fn *)r->fn)(r->priv, &res, &(struct wk_store_entries){l.n, l.e}, next);
    free(l.e);
    free(r);
}

int wk_store_claim(struct wk_store *st, int p, long long idle_ms, const char *start, int count,
                   wk_store_claim_fn *fn, void *priv)
{
    char idle[24], n[16];
    snprintf(idle, sizeof(idle), "%lld", idle_ms);
    snprintf(n, sizeof(n), "%d", count);
    const char *argv[] = {"XAUTOCLAIM", st->events[p], CM_EVENTS_GROUP, st->consumer,
                          idle,         start,         "COUNT",         n};
    return send_command(st, st->events[p], on_claim, (void (*)(void))fn, priv,
                        (int)CM_ARRAY_LEN(argv), argv);
}

static void on_pending(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    long long count = 0;
    if (res.status == WK_STORE_OK) {
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER)
            count = reply->element[0]->integer;
        else
            result_unexpected(&res);
    }
    ((wk_store_pending_fn *)r->fn)(r->priv, &res, count);
    free(r);
}

int wk_store_pending(struct wk_store *st, int p, wk_store_pending_fn *fn, void *priv)
{
    const char *argv[] = {"XPENDING", st->events[p], CM_EVENTS_GROUP};
    return send_command(st, st->events[p], on_pending, (void (*)(void))fn, priv, 3, argv);
}

int wk_store_ack(struct wk_store *st, int p, const char *id, wk_store_done_fn *fn, void *priv)
{
    const char *argv[] = {"XACK", st->events[p], CM_EVENTS_GROUP, id};
    return send_command(st, st->events[p], on_done, (void (*)(void))fn, priv, 4, argv);
}

static void on_prune(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    long long removed = 0;
    if (res.status == WK_STORE_OK && reply->type == REDIS_REPLY_INTEGER)
        removed = reply->integer;
    ((wk_store_prune_fn *)r->fn)(r->priv, &res, removed);
    free(r);
}

int wk_store_prune_consumers(struct wk_store *st, int p, long long idle_ms, bool self,
                             wk_store_prune_fn *fn, void *priv)
{
    char idle[24];
    snprintf(idle, sizeof(idle), "%lld", idle_ms);
    const char *argv[] = {st->events[p], CM_EVENTS_GROUP, idle, self ? st->consumer : ""};
    return send_scriptv(st, CM_SCRIPT_PRUNE_CONSUMERS, 1, 4, argv, on_prune, (void (*)(void))fn,
                        priv);
}

/* ---- presence ---- */

static void on_leave(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    bool removed =
        res.status == WK_STORE_OK && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    ((wk_store_leave_fn *)r->fn)(r->priv, &res, removed);
    free(r);
}

int wk_store_leave(struct wk_store *st, const char *room, const char *nickname, const char *mid,
                   const char *reason, wk_store_leave_fn *fn, void *priv)
{
    char members[CM_KEY_MAX], channel[CM_KEY_MAX];
    struct cm_sbuf frame;

    size_t mlen = cm_key_room(members, CM_ROOM_MEMBERS, room);
    size_t clen = cm_key_room(channel, CM_ROOM_CHANNEL, room);
    cm_sbuf_init(&frame, 0);
    /* The frame is published only if the script removes the member; its ts
     * is this worker's clock, as for every frame the cluster stamps. */
    cm_encode_presence(&frame, room, "leave", nickname, reason, cm_now_ms());

    const char *verb = cm_router_publish_verb(st->redis);
    const char *argv[] = {members, channel, nickname, mid, cm_sbuf_data(&frame), verb};
    const size_t lens[] = {mlen, clen, strlen(nickname), strlen(mid), frame.len, strlen(verb)};
    int rc = send_script(st, CM_SCRIPT_LEAVE, 1, 6, argv, lens, on_leave, (void (*)(void))fn, priv);
    cm_sbuf_free(&frame);
    return rc;
}

/* ---- gateways and their registries ---- */

int wk_store_registry_del(struct wk_store *st, const char *gateway, const char *mid,
                          wk_store_done_fn *fn, void *priv)
{
    char key[CM_KEY_MAX];
    cm_key_gw_sessions(key, gateway);
    const char *argv[] = {"HDEL", key, mid};
    return send_command(st, key, on_done, (void (*)(void))fn, priv, 3, argv);
}

/* One registry entry: field = mid, value = {"room","nickname","mid","session"}
 * (gateway/store.c writes it). json keeps the strings alive. */
static void session_decode(struct wk_store_session *s, cJSON **json, const redisReply *field,
                           const redisReply *value)
{
    *json = cJSON_ParseWithLength(value->str, value->len);
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(*json, "room");
    const cJSON *nick = cJSON_GetObjectItemCaseSensitive(*json, "nickname");
    const cJSON *mid = cJSON_GetObjectItemCaseSensitive(*json, "mid");
    *s = (struct wk_store_session){.field = field->str,
                                   .mid = cJSON_IsString(mid) ? mid->valuestring : field->str};
    if (cJSON_IsString(room) && cJSON_IsString(nick) &&
        cm_room_valid(room->valuestring, strlen(room->valuestring))) {
        s->room = room->valuestring;
        s->nickname = nick->valuestring;
    }
}

static void on_registry(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    struct wk_store_session *s = NULL;
    cJSON **json = NULL;
    size_t n = 0;
    if (res.status == WK_STORE_OK && reply->type != REDIS_REPLY_ARRAY)
        result_unexpected(&res);
    if (res.status == WK_STORE_OK && reply->elements >= 2) {
        s = cm_calloc(reply->elements / 2, sizeof(*s));
        json = cm_calloc(reply->elements / 2, sizeof(*json));
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *f = reply->element[i], *v = reply->element[i + 1];
            if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
                session_decode(&s[n], &json[n], f, v);
                n++;
            }
        }
    }
    ((wk_store_registry_fn *)r->fn)(r->priv, &res, &(struct wk_store_sessions){n, s});
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(json[i]);
    free(json);
    free(s);
    free(r);
}

int wk_store_registry_read(struct wk_store *st, const char *gateway, wk_store_registry_fn *fn,
                           void *priv)
{
    char key[CM_KEY_MAX];
    cm_key_gw_sessions(key, gateway);
    const char *argv[] = {"HGETALL", key};
    return send_command(st, key, on_registry, (void (*)(void))fn, priv, 2, argv);
}

/* The claim script answers {stall, id, kind, id, kind, ...}. */
static void on_claimed(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    struct wk_store_claimed c = {0};
    struct wk_store_claimed_gateway *gw = NULL;
    if (res.status == WK_STORE_OK && !(reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                                       reply->element[0]->type == REDIS_REPLY_INTEGER))
        result_unexpected(&res);
    if (res.status == WK_STORE_OK) {
        c.stall_ms = reply->element[0]->integer;
        gw = cm_calloc(reply->elements / 2 + 1, sizeof(*gw));
        for (size_t i = 1; i + 1 < reply->elements; i += 2) {
            const redisReply *id = reply->element[i], *kind = reply->element[i + 1];
            if (id->type != REDIS_REPLY_STRING || id->len > WK_ID_MAX ||
                kind->type != REDIS_REPLY_INTEGER)
                continue;
            gw[c.n++] =
                (struct wk_store_claimed_gateway){.id = id->str, .dead = kind->integer == 1};
        }
        c.gw = gw;
    }
    ((wk_store_claimed_fn *)r->fn)(r->priv, &res, res.status == WK_STORE_OK ? &c : NULL);
    free(gw);
    free(r);
}

int wk_store_claim_gateways(struct wk_store *st, long long timeout_ms, long long reclaim_ms,
                            int max, long long stall_ms, wk_store_claimed_fn *fn, void *priv)
{
    char timeout[24], reclaim[24], nmax[16], stall[24];
    snprintf(timeout, sizeof(timeout), "%lld", timeout_ms);
    snprintf(reclaim, sizeof(reclaim), "%lld", reclaim_ms);
    snprintf(nmax, sizeof(nmax), "%d", max);
    snprintf(stall, sizeof(stall), "%lld", stall_ms);
    const char *argv[] = {st->gateways[CM_GATEWAYS_LIVE],
                          st->gateways[CM_GATEWAYS_DEAD],
                          st->gateways[CM_GATEWAYS_SWEEP],
                          timeout,
                          reclaim,
                          nmax,
                          stall};
    return send_scriptv(st, CM_SCRIPT_CLAIM_GATEWAYS, 3, (int)CM_ARRAY_LEN(argv), argv, on_claimed,
                        (void (*)(void))fn, priv);
}

/* A finish in steps. One Redis: the script alone, which deletes the
 * registry itself. A cluster: is the gateway still gone (ZSCORE), then DEL
 * of its registry, then the script (the claim); any step that fails ends
 * it with the claim still there, so the cleanup is retried. */
struct finish_req {
    struct req r;
    char gateway[WK_ID_MAX + 1];
    char registry[CM_KEY_MAX];
    bool deleted; /* the registry DEL has been answered */
};

/* A step that could not be sent: as if its link had dropped. */
static const struct wk_store_result not_sent = {.status = WK_STORE_LOST, .error = "not sent"};

static void finish_answer(struct finish_req *f, const struct wk_store_result *res, bool back)
{
    ((wk_store_finish_fn *)f->r.fn)(f->r.priv, res, back);
    free(f);
}

static int finish_script(struct finish_req *f);

static void on_finish(redisReply *reply, void *priv)
{
    struct finish_req *f = priv;
    struct wk_store_result res = result_of(reply);
    bool back =
        res.status == WK_STORE_OK && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0;
    if (back && f->deleted)
        CM_WARN("gateway %s came back while its registry was being deleted; what it re-asserted "
                "meanwhile may be missing from it",
                f->gateway);
    finish_answer(f, &res, back);
}

static void on_finish_del(redisReply *reply, void *priv)
{
    struct finish_req *f = priv;
    struct wk_store_result res = result_of(reply);
    f->deleted = true;
    if (res.status != WK_STORE_OK || finish_script(f) != 0)
        finish_answer(f, res.status != WK_STORE_OK ? &res : &not_sent, false);
}

static void on_finish_check(redisReply *reply, void *priv)
{
    struct finish_req *f = priv;
    struct wk_store_result res = result_of(reply);
    struct wk_store *st = f->r.st;
    int rc = -1;
    if (res.status == WK_STORE_OK && reply->type == REDIS_REPLY_NIL) {
        const char *argv[] = {"DEL", f->registry};
        size_t lens[2];
        lens_of(2, argv, lens);
        rc = st->closing
                 ? -1
                 : cm_router_command(st->redis, f->registry, on_finish_del, f, 2, argv, lens);
    } else if (res.status == WK_STORE_OK) {
        rc = finish_script(f); /* back: the script forgets the claim only */
    }
    if (rc != 0)
        finish_answer(f, res.status != WK_STORE_OK ? &res : &not_sent, false);
}

static int finish_script(struct finish_req *f)
{
    struct wk_store *st = f->r.st;
    bool cluster = st->cfg.cluster;
    const char *argv[] = {st->gateways[CM_GATEWAYS_LIVE], st->gateways[CM_GATEWAYS_DEAD],
                          cluster ? f->gateway : f->registry, f->gateway};
    size_t lens[4];
    lens_of(4, argv, lens);
    if (st->closing)
        return -1;
    return cm_router_script(st->redis, CM_SCRIPT_FINISH_GATEWAY, cluster ? 2 : 3, cluster ? 3 : 4,
                            argv, lens, on_finish, f);
}

int wk_store_finish_gateway(struct wk_store *st, const char *gateway, wk_store_finish_fn *fn,
                            void *priv)
{
    if (st->closing)
        return -1;
    struct finish_req *f = cm_calloc(1, sizeof(*f));
    f->r = (struct req){.st = st, .fn = (void (*)(void))fn, .priv = priv};
    snprintf(f->gateway, sizeof(f->gateway), "%s", gateway);
    cm_key_gw_sessions(f->registry, gateway);
    const char *live = st->gateways[CM_GATEWAYS_LIVE];
    const char *argv[] = {"ZSCORE", live, f->gateway};
    size_t lens[3];
    lens_of(3, argv, lens);
    int rc = st->cfg.cluster ? cm_router_command(st->redis, live, on_finish_check, f, 3, argv, lens)
                             : finish_script(f);
    if (rc != 0)
        free(f);
    return rc;
}

/* ---- rooms: retention ---- */

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

struct room_name {
    char s[CM_ROOM_MAX + 1];
};

static void on_scan(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    struct room_name *names = NULL;
    const char **rooms = NULL;
    size_t n = 0;
    const char *next = "0";
    if (res.status == WK_STORE_OK && !(reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                                       reply->element[0]->type == REDIS_REPLY_STRING &&
                                       reply->element[1]->type == REDIS_REPLY_ARRAY))
        result_unexpected(&res);
    if (res.status == WK_STORE_OK) {
        const redisReply *keys = reply->element[1];
        next = reply->element[0]->str;
        names = cm_calloc(keys->elements + 1, sizeof(*names));
        rooms = cm_calloc(keys->elements + 1, sizeof(*rooms));
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type == REDIS_REPLY_STRING && meta_room(k->str, k->len, names[n].s) == 0) {
                rooms[n] = names[n].s;
                n++;
            }
        }
    }
    ((wk_store_rooms_fn *)r->fn)(r->priv, &res, next, n, rooms);
    free(rooms);
    free(names);
    free(r);
}

size_t wk_store_nodes(const struct wk_store *st)
{
    return cm_router_primaries(st->redis);
}

const char *wk_store_node_name(const struct wk_store *st, size_t node)
{
    return cm_router_primary_name(st->redis, node);
}

int wk_store_scan_rooms(struct wk_store *st, size_t node, const char *cursor, wk_store_rooms_fn *fn,
                        void *priv)
{
    const char *argv[] = {"SCAN",    cursor[0] ? cursor : "0", "MATCH", ROOM_META_PATTERN, "COUNT",
                          SCAN_COUNT};
    size_t lens[CM_ARRAY_LEN(argv)];
    lens_of((int)CM_ARRAY_LEN(argv), argv, lens);
    if (st->closing)
        return -1;
    struct req *r = cm_malloc(sizeof(*r));
    *r = (struct req){.st = st, .fn = (void (*)(void))fn, .priv = priv};
    if (cm_router_command_at(st->redis, node, on_scan, r, (int)CM_ARRAY_LEN(argv), argv, lens) !=
        0) {
        free(r);
        return -1;
    }
    return 0;
}

/* The retention script answers {expired (0/1), entries trimmed}. */
static void on_retention(redisReply *reply, void *priv)
{
    struct req *r = priv;
    struct wk_store_result res = result_of(reply);
    bool expired = false;
    long long trimmed = 0;
    if (res.status == WK_STORE_OK && !(reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                                       reply->element[0]->type == REDIS_REPLY_INTEGER &&
                                       reply->element[1]->type == REDIS_REPLY_INTEGER))
        result_unexpected(&res);
    if (res.status == WK_STORE_OK) {
        expired = reply->element[0]->integer == 1;
        trimmed = reply->element[1]->integer;
    }
    ((wk_store_retention_fn *)r->fn)(r->priv, &res, expired, trimmed);
    free(r);
}

int wk_store_retention(struct wk_store *st, const char *room, long long ttl_ms,
                       wk_store_retention_fn *fn, void *priv)
{
    char meta[CM_KEY_MAX], history[CM_KEY_MAX], members[CM_KEY_MAX], ttl[24];
    cm_key_room(meta, CM_ROOM_META, room);
    cm_key_room(history, CM_ROOM_HISTORY, room);
    cm_key_room(members, CM_ROOM_MEMBERS, room);
    snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
    const char *argv[] = {meta, history, members, ttl, TRIM_MAX};
    return send_scriptv(st, CM_SCRIPT_RETENTION, 3, 5, argv, on_retention, (void (*)(void))fn,
                        priv);
}

/* ---- links ---- */

static void on_ready(void *owner, bool reconnect)
{
    struct wk_store *st = owner;
    if (st->hooks.commands_ready)
        st->hooks.commands_ready(st->hooks.owner);
}

static void on_lost(void *owner)
{
    struct wk_store *st = owner;
    if (st->hooks.commands_lost)
        st->hooks.commands_lost(st->hooks.owner);
}

static void on_events_ready(void *owner, bool reconnect)
{
    struct wk_store *st = owner;
    if (st->hooks.events_ready)
        st->hooks.events_ready(st->hooks.owner);
}

static const struct cm_router_hooks router_hooks = {.ready = on_ready, .lost = on_lost};
static const struct cm_router_hooks reads_hooks = {.ready = on_events_ready};

/* The names of the streams and of the gateway liveness keys. */
static void keys_init(struct wk_store *st)
{
    int n = st->cfg.partitions;
    st->events = cm_calloc((size_t)n, sizeof(*st->events));
    for (int p = 0; p < n; p++)
        cm_key_events(st->events[p], p, n);
    if (n == 1)
        snprintf(st->group_name, sizeof(st->group_name), "%s on %s", CM_EVENTS_GROUP,
                 st->events[0]);
    else
        snprintf(st->group_name, sizeof(st->group_name), "%s on %s:{0..%d}", CM_EVENTS_GROUP,
                 CM_KEY_EVENTS, n - 1);
    for (int k = CM_GATEWAYS_LIVE; k <= CM_GATEWAYS_SWEEP; k++)
        cm_key_gateways(st->gateways[k], (enum cm_gateways_key)k, st->cfg.cluster);
}

struct wk_store *wk_store_new(const struct wk_store_config *cfg, const struct cm_link_loop *loop,
                              const struct wk_store_hooks *hooks)
{
    struct wk_store *st = cm_calloc(1, sizeof(*st));
    st->cfg = *cfg;
    st->hooks = *hooks;
    snprintf(st->consumer, sizeof(st->consumer), "%s", cfg->consumer);
    st->cfg.consumer = st->consumer;
    if (!cfg->cluster || st->cfg.partitions < 1)
        st->cfg.partitions = 1;
    keys_init(st);
    for (int s = 0; s < CM_SCRIPT__COUNT; s++)
        st->scripts[s] = (enum cm_script)s;
    /* Every script is loaded, as the worker always has: a cache warm for
     * the gateway's scripts too costs one round trip at connect. No idle
     * PING: the event reads keep every command link busy. */
    st->redis = cm_router_new(&(struct cm_router_opts){.name = "commands",
                                                       .seeds = cfg->seeds,
                                                       .nseeds = cfg->nseeds,
                                                       .cluster = cfg->cluster,
                                                       .loop = loop,
                                                       .hooks = &router_hooks,
                                                       .owner = st,
                                                       .scripts = st->scripts,
                                                       .nscripts = CM_SCRIPT__COUNT,
                                                       .timeout_ms = COMMANDS_TIMEOUT_MS,
                                                       .watch_ms = WATCH_MS,
                                                       .probe_ms = 0});
    /* With one Redis: its CLIENT ID is what CLIENT UNBLOCK names at
     * shutdown, and a read that blocks read_block_ms is not a stall. */
    st->reads = cm_router_new(&(struct cm_router_opts){
        .name = "events",
        .seeds = cfg->seeds,
        .nseeds = cfg->nseeds,
        .cluster = cfg->cluster,
        .loop = loop,
        .hooks = &reads_hooks,
        .owner = st,
        .timeout_ms = COMMANDS_TIMEOUT_MS + (cfg->cluster ? 0 : cfg->read_block_ms),
        .watch_ms = WATCH_MS,
        .probe_ms = 0,
        .client_id = !cfg->cluster});
    return st;
}

void wk_store_start(struct wk_store *st)
{
    cm_router_start(st->redis);
    cm_router_start(st->reads);
}

void wk_store_free(struct wk_store *st)
{
    if (!st)
        return;
    st->closing = true;
    cm_router_free(st->redis);
    cm_router_free(st->reads);
    free(st->events);
    free(st);
}

bool wk_store_ready(const struct wk_store *st)
{
    return !st->closing && cm_router_ready(st->redis) && cm_router_ready(st->reads);
}

bool wk_store_sweep_ready(const struct wk_store *st)
{
    if (st->closing)
        return false;
    if (!st->cfg.cluster)
        return cm_router_ready(st->redis);
    return cm_router_key_ready(st->redis, st->gateways[CM_GATEWAYS_LIVE]);
}

bool wk_store_reads_block(const struct wk_store *st)
{
    return !st->cfg.cluster;
}

int wk_store_partitions(const struct wk_store *st)
{
    return st->cfg.partitions;
}

bool wk_store_partition_ready(const struct wk_store *st, int p)
{
    return !st->closing && cm_router_key_ready(st->redis, st->events[p]) &&
           cm_router_key_ready(st->reads, st->events[p]);
}
