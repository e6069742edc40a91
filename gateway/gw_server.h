/*
 * The gateway's types: the server context owned by main, sessions (one per
 * WebSocket), rooms (one per room with a local member), memberships (one
 * session in one room) and the shared payloads that fan-out hands around.
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

#include "cm_jwt.h"
#include "cm_proto.h"
#include "cm_redis_url.h"
#include "cm_scripts.h"

#include <hiredis/async.h>
#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>
#include <uv.h>

#define GW_SESSION_ID_LEN 16
#define GW_CLOSE_TOO_SLOW 1013 /* "try again later": lws 4.1 has no name for it */
#define GW_CLOSE_UNAUTHORIZED 4001
/* lws-write.h keeps 4 for a close frame but does not name it in 4.1. */
#define GW_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)
#define GW_MID_MAX 40
/* Once a close has begun (ours, lws's or the peer's), the connection is cut
 * this long after, whatever the peer sends or fails to read meanwhile. */
#define GW_CLOSE_TIMEOUT_MS 5000
/* A message must arrive whole within this of its first payload byte, however
 * it trickles; past it the connection is closed with 1008. */
#define GW_FRAME_TIMEOUT_MS 10000

struct gw_config {
    const char *listen;
    const char *redis;
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
    long long max_connections;
    long long max_conns_per_ip;
    const char *allowed_origins;
    const char *auth_secret;
    long long auth_skew_s;
    const char *api_key;
    const char *tls_cert;
    const char *tls_key;
};

/* Bytes of one server frame, shared by every recipient. The LWS_PRE bytes
 * before the data are scratch space where lws writes each frame header, so
 * one buffer serves every connection without a copy. */
struct gw_payload {
    unsigned refs;
    bool is_message; /* a chat message (legacy connections get only these) */
    uint8_t hdr_len; /* the WebSocket header written just before the text */
    int64_t seq;     /* the room seq of a message, 0 for other frames */
    size_t len;      /* of the text */
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
};

/* The ready-made frame, header included: the same bytes for every
 * recipient, since server frames are not masked. */
static inline const unsigned char *gw_payload_frame(const struct gw_payload *p)
{
    return p->buf + LWS_PRE - p->hdr_len;
}

static inline size_t gw_payload_frame_len(const struct gw_payload *p)
{
    return p->hdr_len + p->len;
}

enum gw_member_state {
    GW_MEMBER_SUBSCRIBING, /* waiting for the room's SUBSCRIBE to be confirmed */
    GW_MEMBER_JOINING,     /* join script in flight: live frames are held back */
    GW_MEMBER_JOINED,      /* live frames flow */
    GW_MEMBER_RESYNC,      /* re-reading history after a pub/sub reconnect */
};

/* A frame vector: a small growable array of payload references, used for a
 * session's send queue (as a ring) and a membership's held-back frames. */
struct gw_pvec {
    struct gw_payload **items;
    size_t head, len, cap;
    size_t bytes;
};

struct gw_deferred; /* a publish waiting for its room's join to be sent */

/* Which keepalive list a session is on (keepalive.c). */
enum gw_ka_state { GW_KA_NONE, GW_KA_LIVE, GW_KA_PINGED, GW_KA_CLOSING };

struct gw_member {
    struct gw_session *session; /* NULL once detached */
    struct gw_room *room;       /* NULL once detached */
    struct gw_member *room_prev, *room_next;
    struct gw_member *session_next;
    enum gw_member_state state;
    char room_name[CM_ROOM_MAX + 1];
    char session_id[GW_SESSION_ID_LEN + 1];
    char nickname[CM_NICK_MAX_BYTES + 1];
    char mid[GW_MID_MAX];
    int64_t last_seq;     /* highest seq delivered: later frames must be above it */
    unsigned generation;  /* room subscription generation the join was sent in */
    struct gw_pvec held;  /* frames that arrived while not yet JOINED */
    struct gw_deferred *deferred;
    const char *detach_reason; /* why it was detached while its join was in flight */
    /* The join frame's parameters, until the script is sent. */
    struct {
        char id[CM_ID_MAX + 1];
        bool has_id;
        char epoch[CM_EPOCH_MAX + 1];
        int64_t since;
        int history;
    } join;
};

enum gw_sub_state { GW_SUB_NONE, GW_SUB_PENDING, GW_SUB_ACTIVE, GW_SUB_LEAVING };

struct gw_room {
    char name[CM_ROOM_MAX + 1];
    struct gw_member *members; /* local members, doubly linked */
    size_t nmembers;
    enum gw_sub_state sub;
    bool resubscribe;     /* a member arrived while UNSUBSCRIBE was in flight */
    bool resyncing;       /* a history read after a reconnect is in flight */
    unsigned busy;        /* iterating its members: do not free */
    unsigned generation;  /* bumped on every confirmed SUBSCRIBE */
    char epoch[CM_EPOCH_MAX + 1];
    UT_hash_handle hh;
};

struct gw_session {
    struct gw_server *srv;
    struct lws *wsi; /* NULL once the socket closed */
    unsigned refs;
    char id[GW_SESSION_ID_LEN + 1];
    char peer[64];
    bool v1;        /* negotiated the chat.v1 subprotocol */
    bool legacy;    /* first frame was a legacy frame: only message frames go out */
    bool got_frame; /* at least one frame received */
    bool peer_closed;    /* the peer sent a close frame */
    bool lws_closing;    /* lws has begun closing it (WS_SERVER_DROP_PROTOCOL) */
    bool we_closed;      /* we closed it (protocol error, overflow, drain) */
    int close_code;      /* when non-zero, close with it at the next writable */
    const char *close_why;
    bool close_after_flush; /* send what is queued first (drain) */
    bool close_sent;        /* our close frame is written */
    bool ending;            /* its close has begun: nothing it sends is acted on */
    struct gw_session *ending_next;
    int64_t close_ms;       /* when its close began: cut GW_CLOSE_TIMEOUT_MS later */
    int fd;                 /* the socket, for direct writes; -1 under TLS */
    bool wait_writable;     /* the socket took less than offered: wait for WRITEABLE */
    int bad_frames;      /* bad frames in a row */
    uint32_t joins;      /* memberships ever made, for mids */
    size_t nrooms;
    struct gw_member *members;
    struct gw_pvec queue; /* frames waiting for WRITEABLE */
    struct cm_sbuf *rx;   /* reassembly of fragmented frames, NULL when idle */
    bool rx_discard;      /* drop fragments until the frame's end */
    double tokens;        /* rate limit bucket: messages */
    int64_t tokens_ms;
    double join_tokens;   /* rate limit bucket: joins */
    int64_t join_tokens_ms;
    struct cm_jwt_claims *claims; /* with --auth-secret: what the token allows */
    int64_t last_rx_ms;             /* when it last sent anything (keepalive.c) */
    enum gw_ka_state ka_state;
    struct gw_session *ka_prev, *ka_next;
    int64_t rx_start_ms;            /* when the message in s->rx began to arrive */
    bool rx_listed;                 /* on srv->ka_rx: a message is arriving */
    struct gw_session *rx_prev, *rx_next;
    bool dirty;                     /* on srv->dirty: frames to write this turn */
    struct gw_session *dirty_next;
    UT_hash_handle hh; /* srv->sessions by id */
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
    uint64_t redis_reconnects;
    uint64_t errors[CM_ERR__COUNT];
};

/* One Redis connection with reconnect state. */
struct gw_link {
    struct gw_server *srv;
    redisAsyncContext *ac; /* NULL while disconnected */
    bool ready;            /* connected, authenticated, set up */
    bool subscriber;       /* the pub/sub link */
    unsigned attempt;      /* reconnect attempts since the last success */
    bool was_ready;        /* has been ready before: a new ready is a reconnect */
    bool dropping;         /* link_drop is freeing it */
    int64_t connect_ms;    /* when the current connection attempt started */
    int64_t probe_ms;      /* when the unanswered probe was sent; 0: none */
    int64_t probe_sent_ms; /* when the last probe was sent */
    int64_t last_read_ms;  /* when Redis last sent anything on this link */
    uv_timer_t timer;      /* reconnect timer */
    uv_getaddrinfo_t resolve; /* the Redis host name, off the loop */
    bool resolving;
    int setup_pending;     /* replies still awaited before ready */
};

struct gw_event;    /* an event waiting for the command link */
struct gw_http_req; /* an HTTP request being answered */
struct gw_ip;       /* connections from one peer address */

/* What lws keeps per connection: a WebSocket session or an HTTP request. */
struct gw_pss {
    struct gw_session *session;
    struct gw_http_req *http;
};

struct gw_server {
    struct gw_config cfg;
    struct cm_redis_url redis_url;
    char listen_host[256];
    int listen_port;
    uv_loop_t *loop;
    struct lws_context *lws;
    struct gw_link cmd;
    struct gw_link sub;
    char script_sha[CM_SCRIPT__COUNT][41]; /* by enum cm_script; only the gateway's */
    struct gw_room *rooms;       /* by name */
    struct gw_session *sessions; /* by id */
    struct gw_ip *ips;           /* open connections by peer address */
    struct gw_session *dirty;    /* sessions with frames to write at the turn's end */
    uv_check_t turn_end;         /* runs the write-out after each loop turn's I/O */
    uv_idle_t kick;              /* active while sessions are dirty: no blocking poll */
    struct cm_sbuf wbuf;         /* scratch for coalesced frames */
    size_t nsessions;
    struct gw_event *outbox, *outbox_tail; /* events to send once Redis is back */
    size_t outbox_len;
    struct gw_event *requeue_at; /* the last one a dropped link gave back */
    char control_channel[160];
    char sessions_key[160];
    bool draining; /* SIGTERM seen: /readyz fails */
    bool closing;  /* past the grace: upgrades refused, sessions told to go */
    bool closed_all; /* the sessions that stayed have been closed with 1001 */
    int64_t told_ms; /* when `reconnect` went out */
    bool stopping;
    uv_timer_t heartbeat;
    uv_timer_t watchdog; /* checks the Redis links' probes */
    uv_timer_t drain_timer;
    struct gw_session *ka_live;   /* keepalive: not pinged since they spoke, oldest first */
    struct gw_session *ka_pinged; /* pinged and silent since, oldest first */
    struct gw_session *ka_closing; /* closing, oldest close first: cut when due */
    struct gw_session *ka_rx;      /* a message arriving, oldest first: closed when due */
    struct gw_session *ending;     /* closes begun this turn: memberships to detach */
    uv_timer_t ka_timer;
    uv_signal_t sigterm, sigint;
    struct cm_limits limits;
    struct gw_metrics m;
    int64_t started_ms;
};

/* payload.c */
struct gw_payload *gw_payload_new(const void *data, size_t len);
struct gw_payload *gw_payload_ref(struct gw_payload *p);
void gw_payload_unref(struct gw_payload *p);
void gw_pvec_push(struct gw_pvec *v, struct gw_payload *p);
struct gw_payload *gw_pvec_shift(struct gw_pvec *v);
static inline struct gw_payload *gw_pvec_at(const struct gw_pvec *v, size_t i)
{
    return v->items[(v->head + i) % v->cap];
}
void gw_pvec_clear(struct gw_pvec *v);

/* session.c */
struct gw_session *gw_session_new(struct gw_server *srv, struct lws *wsi, bool v1);
struct gw_session *gw_session_ref(struct gw_session *s);
void gw_session_unref(struct gw_session *s);
/* Queues a payload (taking a new reference); closes with 1013 past the
 * queue bound. Returns 0, or -1 if the session is closed or closing. */
int gw_session_send(struct gw_session *s, struct gw_payload *p);
/* Drops the socket now, without a close frame: the peer failed or is mute.
 * Only from outside lws callbacks (timers, the turn's end). */
void gw_session_kill(struct gw_session *s);
/* Cuts the TCP connection at once, dropping whatever lws still holds for it
 * (lws's timeout kill: no flush, no close handshake). lws reports the close
 * on its next service, which this wakes. Safe from anywhere. */
void gw_session_cut(struct gw_session *s);
/* A close has begun (ours, lws's or the peer's): the session is put on the
 * close deadline, nothing it sends is acted on any more, and at the turn's
 * end its memberships are detached (leaves emitted) and its buffers freed.
 * Safe inside any callback: nothing is freed here. */
void gw_session_ending(struct gw_session *s);
/* The turn's end: finishes what gw_session_ending began. */
void gw_sessions_end(struct gw_server *srv);
/* The presence reason for a session's end, from how its close began. */
const char *gw_session_end_reason(const struct gw_session *s);
/* Closes a session whose queue (or held-back frames) overflowed: 1013. */
void gw_session_overflow(struct gw_session *s);
/* Whether lws is closing the connection: the peer's close, a frame lws
 * refused (1002, 1007) or a callback that returned -1. lws writes that close
 * frame itself; nothing of ours may follow it (RFC 6455 5.5.1). */
bool gw_session_lws_closing(const struct gw_session *s);
/* Encodes-and-sends helpers: the sbuf is reset by the caller. */
void gw_session_send_sbuf(struct gw_session *s, struct cm_sbuf *b);
void gw_session_send_error(struct gw_session *s, const char *id, enum cm_err code,
                           const char *message);
/* Asks lws to close the socket with code after the next writable. */
void gw_session_close(struct gw_session *s, int code, const char *why, bool after_flush);
/* Called by lws glue when the socket is gone: detaches memberships, emits
 * leaves with reason, drops lws's reference. */
void gw_session_closed(struct gw_session *s, const char *reason);
/* keepalive.c: pings for silent sessions, hang-up for mute ones. */
void gw_keepalive_start(struct gw_server *srv);
void gw_keepalive_stop(struct gw_server *srv);
void gw_keepalive_add(struct gw_session *s);
void gw_keepalive_heard(struct gw_session *s); /* anything received */
void gw_keepalive_remove(struct gw_session *s);
/* Onto the close deadline (once: a second call keeps the first deadline). */
void gw_keepalive_closing(struct gw_session *s);
/* A message began to arrive in pieces / is complete: the frame deadline. */
void gw_keepalive_rx_begin(struct gw_session *s);
void gw_keepalive_rx_end(struct gw_session *s);

/* writer.c: the write side. gw_session_send queues and marks the session;
 * the turn's end writes every marked session's frames in one send. */
void gw_session_mark_dirty(struct gw_session *s);
/* Writes what is queued (or the close frame); -1 if the socket failed. */
int gw_session_flush(struct gw_session *s);
/* WRITEABLE: flush; returns -1 to make lws close the socket. */
int gw_session_writable(struct gw_session *s);
void gw_writer_start(struct gw_server *srv);
void gw_writer_stop(struct gw_server *srv);
struct gw_member *gw_session_member(struct gw_session *s, const char *room);
/* Takes m off the session's list of memberships. */
void gw_session_unlink_member(struct gw_session *s, struct gw_member *m);

/* room.c */
/* Finds or creates the room and adds m to it; starts the subscription. */
void gw_room_add_member(struct gw_server *srv, const char *name, struct gw_member *m);
/* Removes m from its room; the last member out unsubscribes. */
void gw_room_remove_member(struct gw_member *m);
void gw_room_on_subscribed(struct gw_server *srv, const char *name);
void gw_room_on_unsubscribed(struct gw_server *srv, const char *name);
void gw_room_on_message(struct gw_server *srv, const char *name, const char *data, size_t len);
/* The pub/sub link came back: subscribe to every room with members. */
void gw_rooms_resubscribe(struct gw_server *srv);
/* The pub/sub link dropped: rooms forget their subscription. */
void gw_rooms_unsubscribed_all(struct gw_server *srv);
/* Delivers a frame to one member, honouring its state and last seq. */
void gw_member_deliver(struct gw_member *m, struct gw_payload *p);
/* Sends the frames held back while joining, above last_seq, and goes live. */
void gw_member_go_live(struct gw_member *m);
void gw_member_free(struct gw_member *m);
/* Takes m out of its room (the caller already unlinked it from its session)
 * and finishes it: a joined member's leave is emitted with reason; one whose
 * join is in flight is left to the join reply, which emits it. */
void gw_member_leave(struct gw_member *m, const char *reason);
/* Re-reads history for the room's members that may have missed frames. */
void gw_room_resync(struct gw_server *srv, struct gw_room *room);
/* The command link came back: retry resyncs that failed with it. */
void gw_rooms_resync_pending(struct gw_server *srv);

/* dispatch.c */
/* Runs the publish script for a message envelope tail (see
 * cm_encode_message_tail); cb gets {seq, epoch}. 0, or -1 if Redis is down. */
int gw_publish(struct gw_server *srv, const char *room, const char *tail, size_t tail_len,
               redisCallbackFn *cb, void *priv);
void gw_dispatch_frame(struct gw_session *s, const char *buf, size_t len);
void gw_dispatch_binary(struct gw_session *s);
void gw_join_send(struct gw_member *m); /* the room is subscribed: run the join script */
/* Answers the publishes a member deferred until its join was sent with
 * not_joined (the member is going away before they could be sent). */
void gw_deferred_drop(struct gw_member *m);
void gw_control_message(struct gw_server *srv, const char *data, size_t len);
/* Another session took m's nickname: tell ours `left` (replaced), drop m. */
void gw_member_replaced(struct gw_session *s, struct gw_member *m);

/* redis.c */
int gw_redis_start(struct gw_server *srv);
void gw_redis_stop(struct gw_server *srv);
bool gw_redis_ready(const struct gw_server *srv);
/* The wall-clock time (ms) after which a command sent now must not take
 * effect: the moment the link watchdog would answer `unavailable`. */
int64_t gw_redis_deadline_ms(struct gw_server *srv);
/* Looks at an error reply for conditions the link must repair (NOSCRIPT). */
void gw_redis_check_error(struct gw_server *srv, const redisReply *reply);
/* Unregisters the gateway from chat:gateways and sends PING; cb runs once
 * every command sent before it has been answered. For the end of a drain. */
int gw_redis_barrier(struct gw_server *srv, redisCallbackFn *cb, void *priv);
/* Runs a script on the command link; returns -1 when the link is down. */
int gw_redis_script(struct gw_server *srv, enum cm_script script, int nkeys, int argc,
                    const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv);
int gw_redis_subscribe(struct gw_server *srv, const char *channel);
int gw_redis_unsubscribe(struct gw_server *srv, const char *channel);
/* Queues a join/leave event for chat:events (sent now, or when Redis is
 * back). A worker applying a leave also drops its registry entry. */
void gw_redis_emit(struct gw_server *srv, const char *type, const struct gw_member *m,
                   const char *reason);

/* The gateway's session registry (chat:gw:<id>:sessions): what a worker
 * removes if this gateway dies. An entry is written before the script that
 * makes the membership, on the same link, so Redis never holds a member
 * that the registry does not name. */
void gw_redis_registry_add(struct gw_server *srv, const struct gw_member *m);
void gw_redis_registry_del(struct gw_server *srv, const char *mid);

/* reassert.c: re-registers every live membership under a new mid. */
void gw_reassert_all(struct gw_server *srv);

/* redis_uv.c: hiredis's event hooks on the libuv loop; 0 or -1. Every read
 * from Redis stamps *last_read_ms (the link's sign of life). */
int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, int64_t *last_read_ms);

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
