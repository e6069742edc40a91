/*
 * The connection side of a session, private to the files that drive the
 * socket: session.c, writer.c (the write side), keepalive.c and ws.c (the
 * lws callbacks). Nothing else includes this.
 */
#ifndef GW_SESSION_IO_H
#define GW_SESSION_IO_H

#include "payload.h"
#include "session.h"

#include <stdbool.h>
#include <stdint.h>

struct cm_sbuf;
struct gw_server;
struct lws;

/* Which keepalive list a session is on (keepalive.c). */
enum gw_ka_state { GW_KA_NONE, GW_KA_LIVE, GW_KA_PINGED, GW_KA_CLOSING };

/* Once a close has begun (ours, lws's or the peer's), the connection is cut
 * this long after, whatever the peer sends or fails to read meanwhile. */
#define GW_CLOSE_TIMEOUT_MS 5000
/* A message must arrive whole within this of its first payload byte, however
 * it trickles; past it the connection is closed with 1008. */
#define GW_FRAME_TIMEOUT_MS 10000

struct gw_session_io {
    bool peer_closed;       /* the peer sent a close frame */
    bool lws_closing;       /* lws has begun closing it (WS_SERVER_DROP_PROTOCOL) */
    bool we_closed;         /* we closed it (protocol error, overflow, drain) */
    int close_code;         /* when non-zero, close with it at the next writable */
    const char *close_why;
    bool close_after_flush; /* send what is queued first (drain) */
    bool close_sent;        /* our close frame is written */
    bool ending;            /* its close has begun: nothing it sends is acted on */
    struct gw_session *ending_next;
    int64_t close_ms;       /* when its close began: cut GW_CLOSE_TIMEOUT_MS later */
    int fd;                 /* the socket, for direct writes; -1 under TLS */
    bool wait_writable;     /* the socket took less than offered: wait for WRITEABLE */
    struct gw_pvec queue;   /* frames waiting for WRITEABLE */
    struct cm_sbuf *rx;     /* reassembly of fragmented frames, NULL when idle */
    bool rx_discard;        /* drop fragments until the frame's end */
    int64_t last_rx_ms;     /* when it last sent anything (keepalive.c) */
    enum gw_ka_state ka_state;
    struct gw_session *ka_prev, *ka_next;
    int64_t rx_start_ms;    /* when the message in rx began to arrive */
    bool rx_listed;         /* on srv->ka_rx: a message is arriving */
    struct gw_session *rx_prev, *rx_next;
    bool dirty;             /* on srv->dirty: frames to write this turn */
    struct gw_session *dirty_next;
};

/* session.c */
/* A new session for an established WebSocket; lws holds its reference. */
struct gw_session *gw_session_new(struct gw_server *srv, struct lws *wsi, bool v1);
/* Called by lws glue when the socket is gone: detaches memberships, emits
 * leaves with reason, drops lws's reference. */
void gw_session_closed(struct gw_session *s, const char *reason);
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
/* The presence reason for a session's end, from how its close began. */
const char *gw_session_end_reason(const struct gw_session *s);
/* Whether lws is closing the connection: the peer's close, a frame lws
 * refused (1002, 1007) or a callback that returned -1. lws writes that close
 * frame itself; nothing of ours may follow it (RFC 6455 5.5.1). */
bool gw_session_lws_closing(const struct gw_session *s);

/* writer.c: the write side. gw_session_send queues and marks the session;
 * the turn's end writes every marked session's frames in one send. */
void gw_session_mark_dirty(struct gw_session *s);
/* Writes what is queued (or the close frame); -1 if the socket failed. */
int gw_session_flush(struct gw_session *s);
/* WRITEABLE: flush; returns -1 to make lws close the socket. */
int gw_session_writable(struct gw_session *s);

/* keepalive.c: pings for silent sessions, hang-up for mute ones. */
void gw_keepalive_add(struct gw_session *s);
void gw_keepalive_heard(struct gw_session *s); /* anything received */
void gw_keepalive_remove(struct gw_session *s);
/* Onto the close deadline (once: a second call keeps the first deadline). */
void gw_keepalive_closing(struct gw_session *s);
/* A message began to arrive in pieces / is complete: the frame deadline. */
void gw_keepalive_rx_begin(struct gw_session *s);
void gw_keepalive_rx_end(struct gw_session *s);

#endif
