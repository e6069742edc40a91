/*
 * The gateway's two Redis links on the shared libuv loop: `cmd` for scripts,
 * events and heartbeats, `sub` for room channels and the control channel.
 * Each link reconnects on its own with capped exponential backoff and
 * jitter, and is "ready" only once its set-up (AUTH, SELECT, SCRIPT LOAD, or
 * the control-channel SUBSCRIBE) has been answered.
 *
 * Events for chat:events (and the registry writes) are queued in an outbox
 * while the command link is down and sent, in order, when it is back, so a
 * close during an outage still reaches the workers. One that was sent is
 * kept until Redis answers it: if the link drops first, Redis may or may
 * not have it (a stalled Redis stops reading, and what hiredis had not yet
 * written is gone), so it goes back to the front of the outbox, in order,
 * and is sent again. Replaying is safe: a leave is a compare-and-delete on
 * its mid, a join event changes nothing, and registry writes replay in
 * their order.
 */
#include "gw_server.h"

#include "cm_keys.h"
#include "cm_log.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define OUTBOX_MAX 100000
#define PROBE_MS 100      /* command link: a PING at most this often */
#define SUB_PROBE_MS 500  /* pub/sub path: a PUBLISH to ourselves this often */
#define GW_PROBE_MESSAGE "{\"type\":\"probe\"}"

/* An event: waiting in the outbox, or sent and not yet answered. */
struct gw_event {
    struct gw_event *next;
    int argc;
    char **argv;
    size_t *argvlen;
};

static void link_connect(struct gw_link *l);
static void probe_cmd(struct gw_server *srv);
static void send_heartbeat(struct gw_server *srv, bool only_update);

static const char *link_name(const struct gw_link *l)
{
    return l->subscriber ? "pub/sub" : "command";
}

static struct gw_link *link_of(const redisAsyncContext *ac)
{
    struct gw_server *srv = ac->data;
    return srv->cmd.ac == ac ? &srv->cmd : &srv->sub;
}

static void on_retry_timer(uv_timer_t *t)
{
    link_connect(t->data);
}

static void schedule_reconnect(struct gw_link *l)
{
    if (l->srv->stopping)
        return;
    /* Exponential with full jitter in the upper half, so a fleet of
     * gateways does not reconnect in lock-step after a broker restart. */
    uint64_t cap = BACKOFF_MIN_MS << (l->attempt < 6 ? l->attempt : 6);
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    uint64_t delay = cap / 2 + (uint64_t)(rand() % (int)(cap / 2 + 1));
    l->attempt++;
    CM_DEBUG("redis %s link: reconnecting in %llu ms", link_name(l), (unsigned long long)delay);
    uv_timer_start(&l->timer, on_retry_timer, delay, 0);
}

/* ---- outbox ---- */

static int send_argv(struct gw_server *srv, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv)
{
    if (!srv->cmd.ready || !srv->cmd.ac)
        return -1;
    return redisAsyncCommandArgv(srv->cmd.ac, cb, priv, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

static struct gw_event *event_new(int argc, const char **argv, const size_t *argvlen)
{
    struct gw_event *e = cm_calloc(1, sizeof(*e));
    e->argc = argc;
    e->argv = cm_malloc((size_t)argc * sizeof(char *));
    e->argvlen = cm_malloc((size_t)argc * sizeof(size_t));
    for (int i = 0; i < argc; i++) {
        e->argv[i] = cm_strndup(argv[i], argvlen[i]);
        e->argvlen[i] = argvlen[i];
    }
    return e;
}

static void event_free(struct gw_event *e)
{
    for (int i = 0; i < e->argc; i++)
        free(e->argv[i]);
    free(e->argv);
    free(e->argvlen);
    free(e);
}

static struct gw_event *outbox_pop(struct gw_server *srv)
{
    struct gw_event *e = srv->outbox;
    srv->outbox = e->next;
    if (!srv->outbox)
        srv->outbox_tail = NULL;
    if (srv->requeue_at == e)
        srv->requeue_at = NULL;
    srv->outbox_len--;
    e->next = NULL;
    return e;
}

/* Inserts e after `after` (NULL: at the head). */
static void outbox_insert(struct gw_server *srv, struct gw_event *after, struct gw_event *e)
{
    struct gw_event **link = after ? &after->next : &srv->outbox;
    e->next = *link;
    *link = e;
    if (!e->next)
        srv->outbox_tail = e;
    srv->outbox_len++;
}

static void outbox_append(struct gw_server *srv, struct gw_event *e)
{
    if (srv->outbox_len >= OUTBOX_MAX) {
        CM_WARN("event outbox full (%d): dropping the oldest event", OUTBOX_MAX);
        event_free(outbox_pop(srv));
    }
    outbox_insert(srv, srv->outbox_tail, e);
}

/* A command whose answer matters only if it is an error. */
static void on_plain_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        CM_WARN("redis command failed: %s", reply->str);
}

/* hiredis answers in the order it sent, so after a drop the NULL answers
 * come in send order: each goes back after the one before it. */
static void on_event_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    struct gw_event *e = priv;
    redisReply *reply = r;
    if (!reply) {
        /* The link dropped first: again, in its place. */
        outbox_insert(srv, srv->requeue_at, e);
        srv->requeue_at = e;
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR)
        CM_WARN("redis event write failed: %s", reply->str);
    event_free(e);
}

/* Sends e, which then belongs to hiredis's callback until answered. */
static int event_send(struct gw_server *srv, struct gw_event *e)
{
    return send_argv(srv, e->argc, (const char **)e->argv, e->argvlen, on_event_reply, e);
}

static void outbox_flush(struct gw_server *srv)
{
    srv->requeue_at = NULL; /* a new link: what the last one dropped is all back */
    if (srv->outbox_len)
        CM_INFO("sending %zu events queued while Redis was unreachable", srv->outbox_len);
    while (srv->outbox) {
        struct gw_event *e = outbox_pop(srv);
        if (event_send(srv, e) != 0) {
            outbox_insert(srv, NULL, e);
            return;
        }
    }
}

/* Sends now, or keeps the command for when the link is back. */
static void send_or_queue(struct gw_server *srv, int argc, const char **argv,
                          const size_t *argvlen)
{
    if (srv->stopping && !srv->cmd.ready)
        return; /* shutting down: nothing will send it (logged at stop) */
    struct gw_event *e = event_new(argc, argv, argvlen);
    if (srv->outbox || event_send(srv, e) != 0)
        outbox_append(srv, e);
}

void gw_redis_emit(struct gw_server *srv, const char *type, const struct gw_member *m,
                   const char *reason)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%lld", (long long)cm_now_ms());
    const char *argv[22] = {"XADD", CM_KEY_EVENTS, "MAXLEN", "~", CM_EVENTS_MAXLEN, "*",
                            "type", type, "session", m->session_id, "mid", m->mid,
                            "gateway", srv->cfg.id, "room", m->room_name,
                            "nickname", m->nickname, "ts", ts};
    size_t argvlen[22];
    int argc = 20;
    if (reason) {
        argv[argc] = "reason";
        argv[argc + 1] = reason;
        argc += 2;
    }
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    send_or_queue(srv, argc, argv, argvlen);
}

void gw_redis_registry_add(struct gw_server *srv, const struct gw_member *m)
{
    /* The registry entry lets a worker clean up if this gateway dies. */
    struct cm_sbuf v;
    cm_sbuf_init(&v, 0);
    cm_sbuf_puts(&v, "{\"room\":");
    cm_sbuf_put_json_str(&v, m->room_name, strlen(m->room_name));
    cm_sbuf_puts(&v, ",\"nickname\":");
    cm_sbuf_put_json_str(&v, m->nickname, strlen(m->nickname));
    cm_sbuf_printf(&v, ",\"mid\":\"%s\",\"session\":\"%s\"}", m->mid, m->session_id);
    const char *argv[] = {"HSET", srv->sessions_key, m->mid, cm_sbuf_data(&v)};
    size_t argvlen[] = {4, strlen(srv->sessions_key), strlen(m->mid), v.len};
    send_or_queue(srv, 4, argv, argvlen);
    cm_sbuf_free(&v);
}

void gw_redis_registry_del(struct gw_server *srv, const char *mid)
{
    const char *argv[] = {"HDEL", srv->sessions_key, mid};
    size_t argvlen[] = {4, strlen(srv->sessions_key), strlen(mid)};
    send_or_queue(srv, 3, argv, argvlen);
}

/* ---- scripts and commands ---- */

static void load_scripts(struct gw_link *l);

static void on_probe_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    if (r)
        srv->cmd.probe_ms = 0;
}

/* Sends a PING unless one is unanswered or one went out less than PROBE_MS
 * ago, so a request that Redis never answers is noticed within
 * --redis-timeout-ms plus PROBE_MS, for at most ten extra commands a second. */
static void probe_cmd(struct gw_server *srv)
{
    int64_t now = cm_mono_ms();
    if (!srv->cmd.ready || srv->cmd.probe_ms || now - srv->cmd.probe_sent_ms < PROBE_MS)
        return;
    const char *argv[] = {"PING"};
    size_t argvlen[] = {4};
    if (send_argv(srv, 1, argv, argvlen, on_probe_reply, NULL) == 0)
        srv->cmd.probe_ms = srv->cmd.probe_sent_ms = now;
}

int64_t gw_redis_deadline_ms(struct gw_server *srv)
{
    probe_cmd(srv);
    int64_t now = cm_mono_ms();
    int64_t since = srv->cmd.probe_ms ? srv->cmd.probe_ms : now;
    /* The watchdog gives up at the outstanding probe's age plus the
     * timeout, never earlier: nothing may be stored after that moment. */
    return cm_now_ms() + (since + srv->cfg.redis_timeout_ms - now);
}

int gw_redis_script(struct gw_server *srv, enum cm_script script, int nkeys, int argc,
                    const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    probe_cmd(srv);
    const char *args[24];
    size_t lens[24];
    char nk[12];
    if (argc + 3 > 24)
        return -1;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    args[0] = "EVALSHA", lens[0] = 7;
    args[1] = srv->script_sha[script], lens[1] = 40;
    args[2] = nk, lens[2] = strlen(nk);
    memcpy(args + 3, argv, (size_t)argc * sizeof(*argv));
    memcpy(lens + 3, argvlen, (size_t)argc * sizeof(*argvlen));
    return send_argv(srv, argc + 3, args, lens, cb, priv);
}

bool gw_redis_ready(const struct gw_server *srv)
{
    return srv->cmd.ready && srv->sub.ready;
}

void gw_redis_check_error(struct gw_server *srv, const redisReply *reply)
{
    /* The script cache was flushed under us (SCRIPT FLUSH, or a failover to
     * a replica that never saw SCRIPT LOAD): load them again. The request
     * that hit it has already been answered `unavailable`. */
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
        srv->cmd.ready) {
        CM_WARN("redis lost our scripts; loading them again");
        load_scripts(&srv->cmd);
    }
}

/* ---- link set-up ---- */

static void setup_done(struct gw_link *l)
{
    struct gw_server *srv = l->srv;
    if (--l->setup_pending > 0)
        return;
    l->ready = true;
    l->attempt = 0;
    CM_INFO("redis %s link ready (%s:%d)", link_name(l), srv->redis_url.host, srv->redis_url.port);
    if (l->subscriber) {
        gw_rooms_resubscribe(srv);
    } else {
        outbox_flush(srv);
        send_heartbeat(srv, false);
        if (l->was_ready) /* Redis may have restarted empty: re-assert */
            gw_reassert_all(srv);
        l->was_ready = true;
        gw_rooms_resync_pending(srv);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct gw_link *l = link_of(ac);
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        CM_ERROR("redis %s link set-up failed: %s", link_name(l), reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    setup_done(l);
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    redisReply *reply = r;
    int which = (int)(intptr_t)priv;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40 && which >= 0 &&
        which < CM_SCRIPT__COUNT)
        memcpy(srv->script_sha[which], reply->str, 41);
    on_setup_reply(ac, r, NULL);
}

static void load_scripts(struct gw_link *l)
{
    static const enum cm_script ours[] = {CM_SCRIPT_PUBLISH, CM_SCRIPT_JOIN, CM_SCRIPT_MEMBERS,
                                          CM_SCRIPT_HISTORY, CM_SCRIPT_REASSERT};
    for (size_t i = 0; i < CM_ARRAY_LEN(ours); i++) {
        l->setup_pending++;
        redisAsyncCommand(l->ac, on_script_loaded, (void *)(intptr_t)ours[i], "SCRIPT LOAD %s",
                          cm_script_source(ours[i]));
    }
}

/* Every pub/sub reply: subscribe confirmations, messages, unsubscribes. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    redisReply *reply = r;
    char room[CM_ROOM_MAX + 1];
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1];
    const redisReply *data = reply->element[2];
    bool control = strcmp(chan->str, srv->control_channel) == 0;
    bool is_room = !control && cm_key_channel_room(chan->str, chan->len, room) == 0;

    if (strcmp(kind, "message") == 0 && data->type == REDIS_REPLY_STRING) {
        if (control && data->len == sizeof(GW_PROBE_MESSAGE) - 1 &&
            memcmp(data->str, GW_PROBE_MESSAGE, data->len) == 0)
            srv->sub.probe_ms = 0; /* the pub/sub path works end to end */
        else if (control)
            gw_control_message(srv, data->str, data->len);
        else if (is_room)
            gw_room_on_message(srv, room, data->str, data->len);
    } else if (strcmp(kind, "subscribe") == 0) {
        if (control)
            setup_done(&srv->sub);
        else if (is_room)
            gw_room_on_subscribed(srv, room);
    } else if (strcmp(kind, "unsubscribe") == 0 && is_room) {
        gw_room_on_unsubscribed(srv, room);
    }
}

int gw_redis_subscribe(struct gw_server *srv, const char *channel)
{
    if (!srv->sub.ready || !srv->sub.ac)
        return -1;
    return redisAsyncCommand(srv->sub.ac, on_sub_reply, NULL, "SUBSCRIBE %s", channel) == REDIS_OK
               ? 0 : -1;
}

int gw_redis_unsubscribe(struct gw_server *srv, const char *channel)
{
    if (!srv->sub.ready || !srv->sub.ac)
        return -1;
    return redisAsyncCommand(srv->sub.ac, on_sub_reply, NULL, "UNSUBSCRIBE %s", channel) ==
                   REDIS_OK ? 0 : -1;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct gw_link *l = link_of(ac);
    if (status != REDIS_OK) {
        /* Once per outage at WARN; the retries that follow at DEBUG. */
        cm_log(l->attempt <= 1 ? CM_LOG_WARN : CM_LOG_DEBUG, "redis %s link: connect failed: %s",
               link_name(l), ac->errstr);
        l->ac = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(l);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gw_link *l = link_of(ac);
    struct gw_server *srv = l->srv;
    bool was_ready = l->ready;
    l->ac = NULL; /* freed by hiredis after this callback */
    l->ready = false;
    l->dropping = false;
    l->setup_pending = 0;
    l->probe_ms = 0;
    if (srv->stopping)
        return;
    if (was_ready) {
        srv->m.redis_reconnects++;
        CM_WARN("redis %s link lost: %s", link_name(l), status == REDIS_OK ? "closed" : ac->errstr);
    }
    if (l->subscriber)
        gw_rooms_unsubscribed_all(srv);
    schedule_reconnect(l);
}

static void link_connect_to(struct gw_link *l, const char *ip)
{
    struct gw_server *srv = l->srv;
    const struct cm_redis_url *u = &srv->redis_url;
    redisAsyncContext *ac = redisAsyncConnect(ip, u->port);
    if (!ac || ac->err) {
        CM_WARN("redis %s link: %s", link_name(l), ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(l);
        return;
    }
    l->connect_ms = l->last_read_ms = cm_mono_ms();
    l->probe_ms = 0;
    if (gw_redis_uv_attach(ac, srv->loop, &l->last_read_ms) != 0) {
        CM_ERROR("redis %s link: cannot watch the socket", link_name(l));
        redisAsyncFree(ac);
        schedule_reconnect(l);
        return;
    }
    ac->data = srv;
    l->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    /* Set-up commands are queued at once; hiredis sends them on connect. */
    l->setup_pending = 1; /* held until every set-up command is queued */
    if (u->password[0]) {
        l->setup_pending++;
        if (u->user[0])
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", u->user, u->password);
        else
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", u->password);
    }
    if (l->subscriber) {
        l->setup_pending++; /* the control channel's subscribe confirmation */
        redisAsyncCommand(ac, on_sub_reply, NULL, "SUBSCRIBE %s", srv->control_channel);
    } else {
        if (u->db) {
            l->setup_pending++;
            redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", u->db);
        }
        load_scripts(l);
    }
    setup_done(l);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct gw_link *l = req->data;
    char ip[INET6_ADDRSTRLEN] = "";
    l->resolving = false;
    if (status == 0 && res) {
        const void *addr = res->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, addr, ip, sizeof(ip));
    }
    uv_freeaddrinfo(res);
    if (l->srv->stopping)
        return;
    if (!ip[0]) {
        cm_log(l->attempt <= 1 ? CM_LOG_WARN : CM_LOG_DEBUG, "redis %s link: cannot resolve %s: %s",
               link_name(l), l->srv->redis_url.host, status ? uv_strerror(status) : "no address");
        schedule_reconnect(l);
        return;
    }
    link_connect_to(l, ip);
}

/* hiredis 0.14 resolves host names with a blocking getaddrinfo, which would
 * stall the loop on every reconnect to "redis" in a container network: a
 * name is resolved on libuv's thread pool first, then connected to by
 * address. */
static void link_connect(struct gw_link *l)
{
    const char *host = l->srv->redis_url.host;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        link_connect_to(l, host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    l->resolve.data = l;
    if (uv_getaddrinfo(l->srv->loop, &l->resolve, on_resolved, host, NULL, &hints) != 0) {
        schedule_reconnect(l);
        return;
    }
    l->resolving = true;
}

/* ---- heartbeat ---- */

/* The beat is ZADD XX CH: it answers 0 when the gateway is no longer in
 * chat:gateways, i.e. a worker declared it dead (it was paused, or cut off
 * from Redis, for longer than the timeout). It then registers again and
 * re-asserts every membership it still holds, so no member stays missing. */
static void on_heartbeat_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    redisReply *reply = r;
    if (!reply)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        CM_WARN("heartbeat failed: %s", reply->str);
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && priv) {
        CM_WARN("gateway %s was declared dead; registering again", srv->cfg.id);
        send_heartbeat(srv, false);
        gw_reassert_all(srv);
    }
}

static void send_heartbeat(struct gw_server *srv, bool only_update)
{
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)cm_now_ms());
    const char *argv[] = {"ZADD", CM_KEY_GATEWAYS, "XX", "CH", now, srv->cfg.id};
    size_t argvlen[] = {4, strlen(CM_KEY_GATEWAYS), 2, 2, strlen(now), strlen(srv->cfg.id)};
    if (only_update)
        send_argv(srv, 6, argv, argvlen, on_heartbeat_reply, srv);
    else /* plain ZADD: drop XX and CH */
        send_argv(srv, 4, (const char *[]){argv[0], argv[1], argv[4], argv[5]},
                  (const size_t[]){argvlen[0], argvlen[1], argvlen[4], argvlen[5]},
                  on_heartbeat_reply, NULL);
}

/* Drops a link that stopped answering (a paused or wedged Redis): its
 * pending requests are answered `unavailable` at once and it reconnects. */
static void link_drop(struct gw_link *l, const char *why)
{
    CM_WARN("redis %s link %s for %lld ms; reconnecting", link_name(l), why,
            l->srv->cfg.redis_timeout_ms);
    l->dropping = true;
    redisAsyncFree(l->ac); /* runs on_disconnect if it had connected */
    if (!l->dropping)
        return;
    /* Never connected: hiredis called no disconnect callback. */
    l->dropping = false;
    l->ac = NULL;
    l->ready = false;
    l->setup_pending = 0;
    schedule_reconnect(l);
}

/* A PING probes the command link whenever it is used (at most every
 * PROBE_MS, and at least that often while idle), and a PUBLISH to our own
 * control channel probes the whole pub/sub path (a link Redis silently
 * stopped feeding looks healthy to TCP). An unanswered probe older than
 * --redis-timeout-ms drops the link. */
static void check_links(struct gw_server *srv)
{
    int64_t now = cm_mono_ms(), limit = srv->cfg.redis_timeout_ms;
    struct gw_link *links[] = {&srv->cmd, &srv->sub};
    for (int i = 0; i < 2; i++) {
        struct gw_link *l = links[i];
        if (!l->ac || l->dropping)
            continue;
        int unread = 0;
        /* Replies already in the socket buffer mean Redis answers and this
         * loop is behind (overload): dropping the link would only add a
         * reconnect to the overload. */
        if (ioctl(l->ac->c.fd, FIONREAD, &unread) == 0 && unread > 0)
            continue;
        if (!l->ready && now - l->connect_ms > limit)
            link_drop(l, "set-up unanswered");
        /* A Redis working through a deep pipeline answers slowly but keeps
         * answering: only a link silent for the whole timeout is dead. */
        else if (l->ready && l->probe_ms && now - l->probe_ms > limit &&
                 now - l->last_read_ms > limit)
            link_drop(l, "unanswered");
    }
    if (srv->sub.ready && srv->cmd.ready && !srv->sub.probe_ms &&
        now - srv->sub.probe_sent_ms >= SUB_PROBE_MS) {
        const char *argv[] = {"PUBLISH", srv->control_channel, GW_PROBE_MESSAGE};
        size_t argvlen[] = {7, strlen(srv->control_channel), sizeof(GW_PROBE_MESSAGE) - 1};
        if (send_argv(srv, 3, argv, argvlen, on_plain_reply, NULL) == 0)
            srv->sub.probe_ms = srv->sub.probe_sent_ms = now;
    }
}

static void on_heartbeat(uv_timer_t *t)
{
    send_heartbeat(t->data, true);
}

static void on_watchdog(uv_timer_t *t)
{
    struct gw_server *srv = t->data;
    check_links(srv);
    probe_cmd(srv);
}

int gw_redis_start(struct gw_server *srv)
{
    cm_key_gw_control(srv->control_channel, srv->cfg.id);
    cm_key_gw_sessions(srv->sessions_key, srv->cfg.id);
    srv->cmd = (struct gw_link){.srv = srv};
    srv->sub = (struct gw_link){.srv = srv, .subscriber = true};
    uv_timer_init(srv->loop, &srv->cmd.timer);
    uv_timer_init(srv->loop, &srv->sub.timer);
    srv->cmd.timer.data = &srv->cmd;
    srv->sub.timer.data = &srv->sub;
    uv_timer_init(srv->loop, &srv->heartbeat);
    srv->heartbeat.data = srv;
    uv_timer_start(&srv->heartbeat, on_heartbeat, 0, (uint64_t)srv->cfg.heartbeat_ms);
    uv_timer_init(srv->loop, &srv->watchdog);
    srv->watchdog.data = srv;
    uv_timer_start(&srv->watchdog, on_watchdog, PROBE_MS, PROBE_MS);
    link_connect(&srv->cmd);
    link_connect(&srv->sub);
    return 0;
}

void gw_redis_stop(struct gw_server *srv)
{
    srv->stopping = true;
    if (srv->cmd.resolving)
        uv_cancel((uv_req_t *)&srv->cmd.resolve);
    if (srv->sub.resolving)
        uv_cancel((uv_req_t *)&srv->sub.resolve);
    uv_timer_stop(&srv->heartbeat);
    uv_close((uv_handle_t *)&srv->heartbeat, NULL);
    uv_timer_stop(&srv->watchdog);
    uv_close((uv_handle_t *)&srv->watchdog, NULL);
    uv_close((uv_handle_t *)&srv->cmd.timer, NULL);
    uv_close((uv_handle_t *)&srv->sub.timer, NULL);
    /* Pending callbacks run now with a NULL reply; the links are marked
     * stopping so nothing reconnects. */
    if (srv->cmd.ac)
        redisAsyncFree(srv->cmd.ac);
    srv->cmd.ac = NULL;
    if (srv->sub.ac)
        redisAsyncFree(srv->sub.ac);
    srv->sub.ac = NULL;
    srv->cmd.ready = srv->sub.ready = false;
    if (srv->outbox_len)
        CM_WARN("exiting with %zu events not sent to Redis", srv->outbox_len);
    while (srv->outbox)
        event_free(outbox_pop(srv));
}

int gw_redis_barrier(struct gw_server *srv, redisCallbackFn *cb, void *priv)
{
    /* A gateway that leaves cleanly takes itself off the liveness list, so
     * no worker later mistakes it for a dead one. */
    const char *zrem[] = {"ZREM", CM_KEY_GATEWAYS, srv->cfg.id};
    size_t zremlen[] = {4, strlen(CM_KEY_GATEWAYS), strlen(srv->cfg.id)};
    send_argv(srv, 3, zrem, zremlen, on_plain_reply, NULL);
    const char *argv[] = {"PING"};
    size_t argvlen[] = {4};
    return send_argv(srv, 1, argv, argvlen, cb, priv);
}
