/*
 * Sessions: one per WebSocket connection, as the rest of the gateway sees
 * them. A session owns its memberships; it is ref-counted because Redis
 * replies may arrive after the socket closed (wsi is NULL by then, and the
 * reply drops its answer). Its I/O state (send queue, keepalive lists, the
 * socket) is private to the connection side: session_io.h.
 */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include "cm_jwt.h"
#include "cm_proto.h"
#include "cm_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#define GW_SESSION_ID_LEN 16
#define GW_CLOSE_TOO_SLOW 1013 /* "try again later": lws 4.1 has no name for it */
#define GW_CLOSE_UNAUTHORIZED 4001

struct gw_server;
struct gw_member;
struct gw_payload;
struct gw_session_io;
struct lws;

struct gw_session {
    struct gw_server *srv;
    struct lws *wsi; /* NULL once the socket closed */
    unsigned refs;
    char id[GW_SESSION_ID_LEN + 1];
    char peer[64];
    bool v1;        /* negotiated the chat.v1 subprotocol */
    bool legacy;    /* first frame was a legacy frame: only message frames go out */
    bool got_frame; /* at least one frame received */
    int bad_frames; /* bad frames in a row */
    uint32_t joins; /* memberships ever made, for mids */
    size_t nrooms;
    struct gw_member *members;
    double tokens;  /* rate limit bucket: messages */
    int64_t tokens_ms;
    double join_tokens; /* rate limit bucket: joins */
    int64_t join_tokens_ms;
    struct cm_jwt_claims *claims; /* with --auth-secret: what the token allows */
    struct gw_session_io *io;     /* the connection side's (session_io.h), same allocation */
    UT_hash_handle hh;            /* srv->sessions by id */
};

struct gw_session *gw_session_ref(struct gw_session *s);
void gw_session_unref(struct gw_session *s);

/* Queues a payload (taking a new reference); closes with 1013 past the
 * queue bound. Returns 0, or -1 if the session is closed or closing. */
int gw_session_send(struct gw_session *s, struct gw_payload *p);
/* Encodes-and-sends helpers: the sbuf is reset by the caller. */
void gw_session_send_sbuf(struct gw_session *s, struct cm_sbuf *b);
void gw_session_send_error(struct gw_session *s, const char *id, enum cm_err code,
                           const char *message);
/* Asks lws to close the socket with code after the next writable. */
void gw_session_close(struct gw_session *s, int code, const char *why, bool after_flush);
/* Closes a session whose queue (or held-back frames) overflowed: 1013. */
void gw_session_overflow(struct gw_session *s);

/* Where to answer a client frame once Redis has: holds a reference to the
 * session, whose wsi is NULL by then if the socket closed. */
struct gw_reply_to {
    struct gw_session *session;
    char room[CM_ROOM_MAX + 1];
    char id[CM_ID_MAX + 1];
    bool has_id;
};
struct gw_reply_to *gw_reply_to_new(struct gw_session *s, const char *room, const char *id,
                                    bool has_id);
void gw_reply_to_free(struct gw_reply_to *r);
const char *gw_reply_to_id(const struct gw_reply_to *r); /* NULL without an id */

#endif
