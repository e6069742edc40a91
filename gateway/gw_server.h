/*
 * The gateway's server context, owned by main and passed to every module:
 * configuration, the loop, lws, the store, the room and session tables and
 * the metrics; and the small modules of the connection side (admission,
 * TLS, HTTP, the lws glue, the dispatcher). Sessions, rooms, memberships,
 * payloads and the store have headers of their own.
 *
 * Ownership in one paragraph: main owns the gw_server. The server owns the
 * room table and the session table. A session is ref-counted because Redis
 * replies may arrive after its socket closed; lws holds one reference while
 * the socket lives, every in-flight request holds one. A membership belongs
 * to its session and room until it is detached; a detached membership whose
 * join script is still in flight is owned by that request, which finishes
 * the bookkeeping (emits the leave) when the reply comes.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "cm_link.h"
#include "cm_proto.h"
#include "cm_redis_url.h"
#include "member.h"
#include "payload.h"
#include "presence.h"
#include "room.h"
#include "session.h"
#include "store.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>
#include <uv.h>

/* lws-write.h keeps 4 for a close frame but does not name it in 4.1. */
#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

struct gw_config {
    const char *listen;
    const char *redis;
    const char *redis_cluster;
    long long event_partitions;
    long long ack_replicas; /* -1: not given, chosen by mode */
    long long ack_timeout_ms;
    const char *id;
    const char *web_root;
    const char *log_level;
    long long history_max;
    long long message_bytes;
    long long frame_bytes;
    long long send_queue_bytes;
    long long rooms;
    long long rate_per_sec;
    long long rate_burst;
    long long max_bad_frames;
    long long ping_interval_s;
    long long ping_timeout_s;
    long long drain_ms;
    long long drain_grace_ms;
    long long heartbeat_ms;
    long long redis_timeout_ms;
    long long joins_per_sec;
    long long members_page;
    long long presence_batch_above;
    long long presence_tick_ms;
    long long max_connections;
    long long max_conns_per_ip;
    const char *allowed_origins;
    const char *auth_secret;
    long long auth_skew_s;
    const char *api_key;
    const char *tls_cert;
    const char *tls_key;
};

enum gw_refused { GW_REFUSED_PER_IP, GW_REFUSED_MAX_CONNECTIONS, GW_REFUSED_ORIGIN, GW_REFUSED_AUTH,
                  GW_REFUSED__COUNT };

struct gw_metrics {
    uint64_t refused[GW_REFUSED__COUNT]; /* upgrades refused, by reason */
    uint64_t connections_total;
    uint64_t frames_in;
    uint64_t frames_out;
    uint64_t writes;        /* socket writes (frames_out / writes: coalescing) */
    uint64_t short_writes;  /* writes the kernel took only in part */
    uint64_t pings;         /* keepalive pings sent */
    uint64_t ping_timeouts; /* connections hung up for silence */
    uint64_t close_timeouts; /* connections cut: their close did not finish in time */
    uint64_t frame_timeouts; /* connections closed: a message trickled too long */
    uint64_t publishes;
    uint64_t publish_failures;
    uint64_t joins;
    uint64_t room_messages; /* pub/sub messages received */
    uint64_t deliveries;    /* frames queued to members from pub/sub */
    uint64_t slow_closes;   /* 1013 */
    uint64_t presence_diffs; /* presence_diff frames made (each sent to many members) */
    uint64_t errors[CM_ERR__COUNT];
};

struct gw_http_req; /* an HTTP request being answered */
struct gw_ip;       /* connections from one peer address */

/* What lws keeps per connection: a WebSocket session or an HTTP request. */
struct gw_pss {
    struct gw_session *session;
    struct gw_http_req *http;
};

struct gw_server {
    struct gw_config cfg;
    struct cm_redis_target redis;
    char listen_host[256];
    int listen_port;
    uv_loop_t *loop;
    struct lws_context *lws;
    struct cm_link_loop link_loop; /* cm_link on this loop (loop_uv.c) */
    struct gw_store *store;        /* everything in Redis */
    struct gw_room *rooms;       /* by name */
    struct gw_session *sessions; /* by id */
    struct gw_ip *ips;           /* open connections by peer address */
    struct gw_session *dirty;    /* sessions with frames to write at the turn's end */
    uv_check_t turn_end;         /* runs the write-out after each loop turn's I/O */
    uv_idle_t kick;              /* active while sessions are dirty: no blocking poll */
    struct cm_sbuf wbuf;         /* scratch for coalesced frames */
    size_t nsessions;
    bool draining; /* SIGTERM seen: /readyz fails */
    bool closing;  /* past the grace: upgrades refused, sessions told to go */
    bool closed_all; /* the sessions that stayed have been closed with 1001 */
    int64_t told_ms; /* when `reconnect` went out */
    bool stopping;
    uv_timer_t drain_timer;
    struct gw_session *ka_live;   /* keepalive: not pinged since they spoke, oldest first */
    struct gw_session *ka_pinged; /* pinged and silent since, oldest first */
    struct gw_session *ka_closing; /* closing, oldest close first: cut when due */
    struct gw_session *ka_rx;      /* a message arriving, oldest first: closed when due */
    struct gw_session *ending;     /* closes begun this turn: memberships to detach */
    uv_timer_t ka_timer;
    struct gw_member *lingering; /* memberships whose connection closed, within their grace */
    void *linger_timer;          /* a link_loop timer, made on first use */
    uv_timer_t presence_timer;      /* every --presence-tick-ms: gw_presence_tick */
    struct gw_room *presence_dirty; /* rooms with presence batched for the tick */
    uv_signal_t sigterm, sigint;
    struct cm_limits limits;
    struct gw_metrics m;
    int64_t started_ms;
};

/* writer.c and keepalive.c: their loop handles (session_io.h has the rest). */
void gw_writer_start(struct gw_server *srv);
void gw_writer_stop(struct gw_server *srv);
void gw_keepalive_start(struct gw_server *srv);
void gw_keepalive_stop(struct gw_server *srv);
/* The turn's end (writer.c), and the drain: finishes the closes begun
 * (session.c, gw_session_ending): leaves out, buffers freed. */
void gw_sessions_end(struct gw_server *srv);

/* dispatch.c: one handler per client frame type. */
void gw_dispatch_frame(struct gw_session *s, const char *buf, size_t len);
void gw_dispatch_binary(struct gw_session *s);

/* admission.c: the upgrade's checks. gw_admission_filter answers a refusal
 * itself and returns -1 (lws then drops the connection). */
int gw_admission_filter(struct gw_server *srv, struct lws *wsi);
/* Verifies the request's token into claims; 0 or -1. */
int gw_auth_check(struct gw_server *srv, struct lws *wsi, struct cm_jwt_claims *claims);
/* Per-address connection counts: every session acquires at ESTABLISHED and
 * releases when closed, so the table is empty once all sessions are gone. */
void gw_ip_acquire(struct gw_server *srv, const char *addr);
void gw_ip_release(struct gw_server *srv, const char *addr);

/* tls.c: whether the certificate and key load and match; 0 or -1 with err. */
int gw_tls_check(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* http.c */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);
int gw_http_mounts_init(struct gw_server *srv, struct lws_context_creation_info *info);

/* ws.c */
int gw_ws_start(struct gw_server *srv);
void gw_ws_stop(struct gw_server *srv);
/* After the loop has ended: completes a context destruction that had to
 * wait for connections to close. */
void gw_ws_destroy_finish(struct gw_server *srv);
/* Draining: every chat.v1 client is sent `reconnect`... */
void gw_ws_tell_reconnect(struct gw_server *srv);
/* ...and whoever is still there later is closed with 1001 (after flushing). */
void gw_ws_close_all(struct gw_server *srv);

#endif
