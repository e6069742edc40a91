/*
 * chat-gateway: terminates WebSockets and HTTP, publishes chat messages to
 * Redis and delivers room traffic to local members. One process, one libuv
 * loop shared by libwebsockets and hiredis; no threads, no blocking calls.
 */
#include "gw_server.h"
#include "loop_uv.h"

#include "cm_config.h"
#include "cm_log.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define OPT(field) offsetof(struct gw_config, field)
#define BIG 1000000000LL
#define FD_RESERVE 256     /* descriptors kept free of WebSocket connections */
#define DRAIN_TELL_MS 1000 /* from `reconnect` to the 1001 close of who stayed */

static const struct cm_option options[] = {
    {"listen", CM_OPT_STR, OPT(listen), "127.0.0.1:8080", "HOST:PORT",
     "address for WebSocket (/ws) and HTTP", 0, 0, cm_check_hostport},
    CM_REDIS_OPTIONS(OPT(redis), OPT(redis_cluster), OPT(event_partitions)),
    {"ack-replicas", CM_OPT_INT, OPT(ack_replicas), NULL, "N",
     "ack a message once N replicas have it (default: 1 with --redis-cluster, 0 with --redis)",
     0, 16, NULL},
    {"ack-timeout-ms", CM_OPT_INT, OPT(ack_timeout_ms), NULL, "MS",
     "how long an ack waits for replicas, then says replicated:false (default: 1000, at most "
     "half of --redis-timeout-ms)", 1, 60000, NULL},
    {"id", CM_OPT_STR, OPT(id), NULL, "ID", "gateway id, unique in the cluster (default: random)",
     0, 0, cm_check_id},
    {"web-root", CM_OPT_STR, OPT(web_root), NULL, "DIR",
     "static files served at / (default: the installed web client, else this checkout's web/)",
     0, 0, NULL},
    {"history-max", CM_OPT_INT, OPT(history_max), "1000", "N", "messages kept per room", 1,
     1000000, NULL},
    {"message-bytes", CM_OPT_INT, OPT(message_bytes), "4096", "N",
     "largest chat message, in bytes", 1, 1 << 20, NULL},
    {"frame-bytes", CM_OPT_INT, OPT(frame_bytes), "65536", "N",
     "largest client frame; larger closes with 1009", 64, 16 << 20, NULL},
    {"send-queue-bytes", CM_OPT_INT, OPT(send_queue_bytes), "1048576", "N",
     "bytes queued per connection before it is closed with 1013", 4096, 1LL << 30, NULL},
    {"rooms", CM_OPT_INT, OPT(rooms), "100", "N", "rooms one connection may join", 1, 100000,
     NULL},
    {"rate-per-sec", CM_OPT_INT, OPT(rate_per_sec), "20", "N",
     "chat messages per second per connection", 1, BIG, NULL},
    {"rate-burst", CM_OPT_INT, OPT(rate_burst), "40", "N",
     "messages a connection may send at once before the rate applies", 1, BIG, NULL},
    {"joins-per-sec", CM_OPT_INT, OPT(joins_per_sec), "10", "N",
     "room joins per second per connection (as a burst too)", 1, BIG, NULL},
    {"members-page", CM_OPT_INT, OPT(members_page), "100", "N",
     "members per page: joined lists a room of up to N whole, else a first page", 1, 10000,
     NULL},
    {"presence-batch-above", CM_OPT_INT, OPT(presence_batch_above), "100", "N",
     "rooms of more members than this get presence as one presence_diff per tick", 0, BIG,
     NULL},
    {"presence-tick-ms", CM_OPT_INT, OPT(presence_tick_ms), "200", "MS",
     "how often batched presence (presence_diff) goes out", 10, 10000, NULL},
    {"max-connections", CM_OPT_INT, OPT(max_connections), "100000", "N",
     "WebSocket connections this gateway holds; past it upgrades get 503", 1, BIG, NULL},
    {"max-conns-per-ip", CM_OPT_INT, OPT(max_conns_per_ip), "0", "N",
     "connections from one peer address (0: off; behind a TCP balancer limit there)", 0, BIG,
     NULL},
    {"allowed-origins", CM_OPT_STR, OPT(allowed_origins), NULL, "LIST",
     "browser origins allowed to connect, comma-separated (null: file pages), or * (default: same "
     "host, and null at /chatservice)",
     0, 0,
     NULL},
    {"auth-secret", CM_OPT_STR, OPT(auth_secret), NULL, "SECRET",
     "require an HS256 JWT signed with this secret on every WebSocket", 0, 0, NULL},
    {"auth-skew-s", CM_OPT_INT, OPT(auth_skew_s), "30", "S",
     "clock difference allowed when checking a token's exp and nbf", 0, 3600, NULL},
    {"api-key", CM_OPT_STR, OPT(api_key), NULL, "KEY",
     "enable POST /api/rooms/{room}/messages for requests bearing this key", 0, 0, NULL},
    {"tls-cert", CM_OPT_STR, OPT(tls_cert), NULL, "FILE", "serve wss:// and https:// with this "
     "certificate (PEM; with --tls-key)", 0, 0, NULL},
    {"tls-key", CM_OPT_STR, OPT(tls_key), NULL, "FILE", "the certificate's private key (PEM)", 0,
     0, NULL},
    {"max-bad-frames", CM_OPT_INT, OPT(max_bad_frames), "5", "N",
     "bad frames in a row that close the connection with 1008", 1, 1000, NULL},
    {"ping-interval-s", CM_OPT_INT, OPT(ping_interval_s), "25", "S",
     "ping a connection silent this long", 1, 3600, NULL},
    {"ping-timeout-s", CM_OPT_INT, OPT(ping_timeout_s), "60", "S",
     "hang up on a connection silent this long (reason timeout)", 2, 7200, NULL},
    {"drain-ms", CM_OPT_INT, OPT(drain_ms), "5000", "MS",
     "on SIGTERM, how long to wait for clients to be told and flushed", 0, 600000, NULL},
    {"drain-grace-ms", CM_OPT_INT, OPT(drain_grace_ms), "1000", "MS",
     "on SIGTERM, fail /readyz this long before telling clients to go", 0, 600000, NULL},
    {"heartbeat-ms", CM_OPT_INT, OPT(heartbeat_ms), "1000", "MS",
     "how often the gateway tells Redis it is alive", 50, 60000, NULL},
    {"redis-timeout-ms", CM_OPT_INT, OPT(redis_timeout_ms), "3000", "MS",
     "drop and redo a Redis link that leaves a probe unanswered this long", 100, 600000, NULL},
    {"log-level", CM_OPT_STR, OPT(log_level), "info", "LEVEL", "debug, info, warn or error", 0, 0,
     NULL},
};

static const struct cm_program program = {
    "chat-gateway", CHAT_VERSION, "WebSocket gateway of the chat cluster"};

/* ---- shutdown ---- */

/* Tears everything down from inside the loop, as lws wants for a foreign
 * loop: its context finishes destroying itself in close callbacks, so the
 * loop must keep running until every handle is closed, then uv_run returns. */
static void finish(struct gw_server *srv)
{
    if (srv->stopping)
        return;
    CM_INFO("gateway %s stopping", srv->cfg.id);
    srv->stopping = true;
    gw_ws_stop(srv);
    gw_writer_stop(srv);
    gw_keepalive_stop(srv);
    gw_members_linger_stop(srv);
    uv_close((uv_handle_t *)&srv->presence_timer, NULL);
    gw_store_free(srv->store);
    srv->store = NULL;
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

static void on_presence_tick(uv_timer_t *t)
{
    gw_presence_tick(t->data);
}

static void on_finish_timer(uv_timer_t *t)
{
    finish(t->data);
}

/* Runs inside a hiredis callback: finish on the next loop turn instead, so
 * the Redis link is not torn down under its own callback. */
static void on_flushed(void *priv)
{
    struct gw_server *srv = priv;
    uv_timer_start(&srv->drain_timer, on_finish_timer, 0, 0);
}

static void on_drain_tick(uv_timer_t *t)
{
    struct gw_server *srv = t->data;
    int64_t elapsed = cm_mono_ms() - srv->started_ms;
    bool timed_out = elapsed >= srv->cfg.drain_ms;
    if (!srv->closing) {
        /* First only /readyz fails, so the balancer stops sending new
         * connections here; then the clients are told to go. */
        if (elapsed < srv->cfg.drain_grace_ms && !timed_out)
            return;
        srv->closing = true;
        srv->told_ms = cm_mono_ms();
        gw_ws_tell_reconnect(srv);
    }
    if (!srv->closed_all) {
        /* Clients that heed `reconnect` close by themselves; until then
         * their frames are served (and acked) as usual, so nothing sent in
         * the meantime is lost. The rest are closed after DRAIN_TELL_MS. */
        if (cm_mono_ms() - srv->told_ms < DRAIN_TELL_MS && srv->nsessions > 0 && !timed_out)
            return;
        srv->closed_all = true;
        gw_ws_close_all(srv);
        /* Their leaves now, not at the turn's end: the barrier below may
         * go out in this very tick, and must come after them. */
        gw_sessions_end(srv);
    }
    if (srv->nsessions > 0 && !timed_out)
        return;
    /* Leaves were queued as sessions closed (those within a grace now:
     * their clients have had the drain to come back elsewhere). Wait until
     * Redis has answered every one: it may refuse them for a while (a
     * failover, OOM), and the outbox sends them again until it takes them.
     * Then a PING answered after the ZREM means Redis has that too.
     * Without Redis, there is nothing to wait for. */
    gw_members_linger_flush(srv);
    if (gw_store_backlog(srv->store) > 0 && gw_store_ready(srv->store) && !timed_out)
        return;
    uv_timer_stop(t);
    if (timed_out && srv->nsessions > 0)
        CM_WARN("drain: %zu sessions still open after %lld ms", srv->nsessions, srv->cfg.drain_ms);
    if (gw_store_unregister(srv->store, on_flushed, srv) != 0)
        finish(srv);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct gw_server *srv = sig->data;
    if (srv->draining) {
        CM_WARN("second signal: stopping now");
        finish(srv);
        return;
    }
    CM_INFO("%s: draining %zu sessions (up to %lld ms)", strsignal(signum), srv->nsessions,
            srv->cfg.drain_ms);
    srv->draining = true;
    srv->started_ms = cm_mono_ms(); /* drain clock */
    uv_timer_start(&srv->drain_timer, on_drain_tick, 10, 10);
}

/* ---- what the store reports ---- */

static void on_store_ready(void *owner, bool reconnect)
{
    struct gw_server *srv = owner;
    if (reconnect) /* Redis may have restarted empty: re-assert */
        gw_members_reassert(srv);
    gw_rooms_resync_pending(srv);
}

static void on_declared_dead(void *owner)
{
    gw_members_reassert(owner);
}

static void on_room_lost(void *owner, const char *room)
{
    gw_room_lost(owner, room);
}

static void on_room_subscribed(void *owner, const char *room)
{
    gw_room_on_subscribed(owner, room);
}

static void on_room_message(void *owner, const char *room, const char *data, size_t len)
{
    gw_room_on_message(owner, room, data, len);
}

static void on_control(void *owner, const char *data, size_t len)
{
    gw_member_control(owner, data, len);
}

static void store_start(struct gw_server *srv)
{
    const struct gw_store_config cfg = {
        .seeds = srv->redis.seeds, .nseeds = srv->redis.nseeds, .cluster = srv->redis.cluster,
        .event_partitions = srv->redis.cluster ? (int)srv->cfg.event_partitions : 1,
        .gateway_id = srv->cfg.id, .history_max = srv->cfg.history_max,
        .timeout_ms = srv->cfg.redis_timeout_ms, .heartbeat_ms = srv->cfg.heartbeat_ms,
        .members_page = srv->cfg.members_page, .ack_timeout_ms = srv->cfg.ack_timeout_ms,
        .ack_replicas = (int)(srv->cfg.ack_replicas >= 0 ? srv->cfg.ack_replicas
                                                         : srv->redis.cluster ? 1 : 0)};
    const struct gw_store_hooks hooks = {
        .owner = srv, .ready = on_store_ready, .declared_dead = on_declared_dead,
        .room_lost = on_room_lost, .room_subscribed = on_room_subscribed,
        .room_message = on_room_message, .control = on_control};
    gw_loop_uv_init(&srv->link_loop, srv->loop);
    srv->store = gw_store_new(&cfg, &srv->link_loop, &hooks);
    gw_store_start(srv->store);
}

/* ---- start-up ---- */

/* Raises the open-files limit as far as allowed, and keeps --max-connections
 * below it: past the limit accept() fails in a loop inside lws, while under
 * it an extra client gets a clean 503 at the upgrade. */
static void fit_fd_limit(struct gw_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Room for Redis links, the listener, lws's own descriptors, and
     * connections being refused. */
    long long usable = rl.rlim_cur == RLIM_INFINITY ? BIG : (long long)rl.rlim_cur - FD_RESERVE;
    if (usable < 1)
        usable = 1;
    if (cfg->max_connections > usable) {
        CM_WARN("--max-connections %lld is over the open-files limit (%lld): using %lld; raise "
                "the limit (LimitNOFILE=, ulimit -n) to hold more",
                cfg->max_connections, (long long)rl.rlim_cur, usable);
        cfg->max_connections = usable;
    }
}

static int configure(struct gw_server *srv, int argc, char **argv)
{
    static char default_id[16];
    char err[160];
    enum cm_log_level level;

    srv->cfg.ack_replicas = -1; /* not given: chosen by mode below */
    int rc = cm_config_parse(&program, options, CM_ARRAY_LEN(options), &srv->cfg, argc, argv);
    if (rc != CM_CONFIG_OK)
        return rc == CM_CONFIG_EXIT ? 0 : 2;
    if (cm_log_level_parse(srv->cfg.log_level, &level) != 0) {
        fprintf(stderr, "error: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    cm_log_set_level(level);
    if (!srv->cfg.id) {
        strcpy(default_id, "gw-");
        cm_random_hex(default_id + 3, 4);
        srv->cfg.id = default_id;
    }
    if (!srv->cfg.web_root) /* a build-tree binary finds the page in its checkout */
        srv->cfg.web_root = access(CHAT_WEB_ROOT "/index.html", R_OK) == 0 ? CHAT_WEB_ROOT
                                                                          : CHAT_SOURCE_WEB_ROOT;
    if (srv->cfg.ping_timeout_s <= srv->cfg.ping_interval_s) {
        fprintf(stderr, "error: --ping-timeout-s must be larger than --ping-interval-s\n");
        return 2;
    }
    if (cm_redis_target_parse(srv->cfg.redis, srv->cfg.redis_cluster, &srv->redis, err,
                              sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    /* A WAIT in flight as long as --redis-timeout-ms would make the link
     * watchdog take it for a dead Redis. */
    if (!srv->cfg.ack_timeout_ms) {
        srv->cfg.ack_timeout_ms = srv->cfg.redis_timeout_ms / 2;
        if (srv->cfg.ack_timeout_ms > 1000 || srv->cfg.ack_timeout_ms < 1)
            srv->cfg.ack_timeout_ms = srv->cfg.ack_timeout_ms < 1 ? 1 : 1000;
    } else if (srv->cfg.ack_timeout_ms >= srv->cfg.redis_timeout_ms) {
        fprintf(stderr, "error: --ack-timeout-ms must be below --redis-timeout-ms\n");
        return 2;
    }
    /* Checked by the option table; this cannot fail now. */
    cm_hostport_parse(srv->cfg.listen, srv->listen_host, sizeof(srv->listen_host),
                      &srv->listen_port, err, sizeof(err));
    if (!srv->cfg.tls_cert != !srv->cfg.tls_key) {
        fprintf(stderr, "error: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (srv->cfg.tls_cert && gw_tls_check(srv->cfg.tls_cert, srv->cfg.tls_key, err,
                                          sizeof(err)) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    if (srv->cfg.auth_secret && !srv->cfg.auth_secret[0]) {
        fprintf(stderr, "error: --auth-secret must not be empty\n");
        return 2;
    }
    fit_fd_limit(&srv->cfg);
    srv->limits = (struct cm_limits){
        .message_bytes = srv->cfg.message_bytes, .frame_bytes = srv->cfg.frame_bytes,
        .rate_per_sec = srv->cfg.rate_per_sec, .rooms = srv->cfg.rooms,
        .rate_burst = srv->cfg.rate_burst, .joins_per_sec = srv->cfg.joins_per_sec,
        .send_queue_bytes = srv->cfg.send_queue_bytes,
        .max_conns_per_ip = srv->cfg.max_conns_per_ip,
        .max_connections = srv->cfg.max_connections, .members_page = srv->cfg.members_page,
        .presence_batch_above = srv->cfg.presence_batch_above,
        .presence_tick_ms = srv->cfg.presence_tick_ms};
    return -1; /* go on */
}

int main(int argc, char **argv)
{
    static struct gw_server srv; /* static: large, and owned by main for the run */
    uv_loop_t loop;
    int rc = configure(&srv, argc, argv);
    if (rc >= 0)
        return rc;

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    lws_set_log_level(getenv("CHAT_LWS_DEBUG") ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO : LLL_ERR, NULL);
    uv_loop_init(&loop);
    srv.loop = &loop;
    if (gw_ws_start(&srv) != 0) {
        uv_loop_close(&loop);
        return 1;
    }
    gw_writer_start(&srv);
    gw_keepalive_start(&srv);
    store_start(&srv);
    uv_timer_init(&loop, &srv.presence_timer);
    srv.presence_timer.data = &srv;
    uv_timer_start(&srv.presence_timer, on_presence_tick, (uint64_t)srv.cfg.presence_tick_ms,
                   (uint64_t)srv.cfg.presence_tick_ms);
    uv_timer_init(&loop, &srv.drain_timer);
    srv.drain_timer.data = &srv;
    uv_signal_init(&loop, &srv.sigterm);
    uv_signal_init(&loop, &srv.sigint);
    srv.sigterm.data = srv.sigint.data = &srv;
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    CM_INFO("chat-gateway %s started (id %s, %s %s:%d)", CHAT_VERSION, srv.cfg.id,
            srv.redis.cluster ? "redis cluster seed" : "redis", srv.redis.seeds[0].host,
            srv.redis.seeds[0].port);

    uv_run(&loop, UV_RUN_DEFAULT); /* until finish() has closed every handle */
    gw_ws_destroy_finish(&srv);
    if (uv_loop_close(&loop) != 0)
        CM_WARN("event loop closed with handles still open");
    CM_INFO("gateway %s stopped", srv.cfg.id);
    return 0;
}
