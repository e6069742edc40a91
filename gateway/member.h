/*
 * Memberships: one session in one room, from the join frame to the leave
 * (member.c has the state machine in full).
 */
#ifndef GW_MEMBER_H
#define GW_MEMBER_H

#include "cm_proto.h"
#include "payload.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_MID_MAX 40

struct gw_server;
struct gw_room;
struct gw_deferred; /* a publish waiting for its room's join to be sent */

enum gw_member_state {
    GW_MEMBER_SUBSCRIBING, /* waiting for the room's SUBSCRIBE to be confirmed */
    GW_MEMBER_JOINING,     /* join script in flight: live frames are held back */
    GW_MEMBER_JOINED,      /* live frames flow */
    GW_MEMBER_RESYNC,      /* re-reading history after a pub/sub reconnect */
};

struct gw_member {
    struct gw_server *srv;
    struct gw_session *session; /* NULL once detached */
    struct gw_room *room;       /* NULL once detached */
    struct gw_member *room_prev, *room_next;
    struct gw_member *session_next;
    enum gw_member_state state;
    enum cm_presence_mode presence; /* the join's "presence": events or diff */
    char room_name[CM_ROOM_MAX + 1];
    char session_id[GW_SESSION_ID_LEN + 1];
    char nickname[CM_NICK_MAX_BYTES + 1];
    char mid[GW_MID_MAX];
    int64_t last_seq;     /* highest seq delivered: later frames must be above it */
    unsigned generation;  /* room subscription generation the join was sent in */
    struct gw_pvec held;  /* frames that arrived while not yet JOINED */
    struct gw_deferred *deferred;
    const char *detach_reason; /* why it was detached while its join was in flight, or why it lingers */
    int grace_ms;              /* the join's grace_ms: how long it outlives its connection */
    int64_t linger_due_ms;     /* lingering: when its leave is emitted (monotonic ms) */
    struct gw_member *linger_next; /* lingering: next on srv->lingering */
    /* The join frame's parameters, until the script is sent. */
    struct {
        char id[CM_ID_MAX + 1];
        bool has_id;
        char epoch[CM_EPOCH_MAX + 1];
        int64_t since;
        int history;
    } join;
};

/* The session's membership of room, or NULL. */
struct gw_member *gw_member_find(struct gw_session *s, const char *room);
/* Makes s a member of f->room and starts its join; returns the membership,
 * or NULL if the join failed at once (the client has been told). */
struct gw_member *gw_member_join(struct gw_session *s, const struct cm_frame *f);
/* The room is subscribed: run the join script. */
void gw_member_send_join(struct gw_member *m);
/* Publishes a message from m: deferred until its join is sent, answered
 * with ack (if the frame had an id) or unavailable. */
void gw_member_publish(struct gw_member *m, const char *id, bool has_id, const char *text,
                       size_t len);
/* Delivers a frame to one member, honouring its state and last seq. */
void gw_member_deliver(struct gw_member *m, struct gw_payload *p);
/* Sends the frames held back while joining, above last_seq, and goes live. */
void gw_member_go_live(struct gw_member *m);
/* The client left (its `leave` frame): tells it `left` and lets go of m. */
void gw_member_left(struct gw_member *m, const char *id);
/* Another session took m's nickname: tells ours `left` (replaced). */
void gw_member_replaced(struct gw_member *m);
/* Takes m out of its room (the caller already unlinked it from its session)
 * and finishes it: a joined member's leave is emitted with reason; one whose
 * join is in flight is left to the join reply, which emits it. */
void gw_member_leave(struct gw_member *m, const char *reason);
/* The session's connection ended: every membership leaves with reason
 * (those joined with a grace linger first). */
void gw_members_leave_all(struct gw_session *s, const char *reason);
void gw_member_free(struct gw_member *m);
/* A message on this gateway's control channel (a takeover). */
void gw_member_control(struct gw_server *srv, const char *data, size_t len);
/* Redis lost this gateway's memberships: write each again, under a new mid. */
void gw_members_reassert(struct gw_server *srv);
/* Emits the leave of every membership within its grace now (the end of a
 * drain, and at stop, which also frees the grace timer). */
void gw_members_linger_flush(struct gw_server *srv);
void gw_members_linger_stop(struct gw_server *srv);

#endif
