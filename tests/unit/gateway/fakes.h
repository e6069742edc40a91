/*
 * Fakes for the gateway's unit tests: a store that records every call and
 * keeps each callback until the test answers it, and sessions that record
 * every frame they are sent. room.c, member.c and payload.c link against
 * these instead of Redis and lws.
 */
#ifndef TEST_GW_FAKES_H
#define TEST_GW_FAKES_H

#include "gw_server.h"

#define FAKE_MAX 64

/* A store call still waiting for its answer. */
struct fake_call {
    enum { FAKE_PUBLISH, FAKE_JOIN, FAKE_HISTORY, FAKE_MEMBERS, FAKE_REASSERT } kind;
    char room[CM_ROOM_MAX + 1];
    char mid[GW_MID_MAX];     /* join, reassert: the membership's mid */
    char old_mid[GW_MID_MAX]; /* reassert */
    int64_t from;             /* history: after this seq */
    void (*fn)(void);
    void *priv;
};

struct fake_store {
    bool down;                 /* every call fails at once, as with Redis unreachable */
    struct fake_call calls[FAKE_MAX];
    int ncalls;                /* in the order they were made */
    char log[FAKE_MAX][160];   /* "subscribe r", "event join <mid>", "registry del <mid>"... */
    int nlog;
};

extern struct fake_store fake_store;

void fake_store_reset(void);
/* The index of the first pending call of kind (and room, if not NULL), or -1. */
int fake_store_find(int kind, const char *room);
/* Takes call i off the list and returns it. */
struct fake_call fake_store_take(int i);
/* Whether line is in the log; the index of its first entry at or after from. */
int fake_store_logged(const char *line, int from);

/* A session as lws would make one, added to srv's table. */
struct gw_session *fake_session_new(struct gw_server *srv, const char *id);
/* The frames a session was sent, as text; how many. */
int fake_session_frames(const struct gw_session *s);
const char *fake_session_frame(const struct gw_session *s, int i);
/* Whether it was closed for overflowing (1013). */
bool fake_session_overflowed(const struct gw_session *s);
/* The code the gateway closed it with (gw_session_close), 0 if none. */
int fake_session_close_code(const struct gw_session *s);
/* The socket closes: what lws glue does (leaves with reason, unref). */
void fake_session_close(struct gw_session *s, const char *reason);

#endif
