/*
 * The client protocol, chat.v1 (docs/PROTOCOL.md): decoding and validating
 * client frames, encoding server frames. Loop-agnostic and allocation-light:
 * a decoded frame holds its short fields inline and owns only its message
 * text.
 */
#ifndef CM_PROTO_H
#define CM_PROTO_H

#include "cm_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_ROOM_MAX 64          /* bytes */
#define CM_NICK_MAX_CHARS 32    /* UTF-8 characters */
#define CM_NICK_MAX_BYTES 128   /* 32 characters of at most 4 bytes */
#define CM_ID_MAX 64            /* bytes */
#define CM_EPOCH_MAX 64         /* bytes */
#define CM_HISTORY_DEFAULT 50
#define CM_HISTORY_LIMIT 500
/* join's grace_ms: how long a membership outlives its connection, at most. */
#define CM_GRACE_MAX_MS 10000
#define CM_MESSAGE_BYTES_DEFAULT 4096
#define CM_SEQ_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */
#define CM_CURSOR_MAX 20              /* digits of a members cursor (an HSCAN cursor, 64 bits) */

/* Error codes of the protocol, in the order of docs/PROTOCOL.md. */
enum cm_err {
    CM_ERR_NONE = 0,
    CM_ERR_BAD_JSON,
    CM_ERR_BAD_REQUEST,
    CM_ERR_UNKNOWN_TYPE,
    CM_ERR_INVALID_ROOM,
    CM_ERR_INVALID_NICKNAME,
    CM_ERR_TOO_LARGE,
    CM_ERR_NOT_JOINED,
    CM_ERR_RATE_LIMITED,
    CM_ERR_FORBIDDEN,
    CM_ERR_UNAUTHORIZED,
    CM_ERR_UNAVAILABLE,
    CM_ERR_INTERNAL,
    CM_ERR__COUNT
};

/* "bad_json", "bad_request", ...; "" for CM_ERR_NONE. */
const char *cm_err_name(enum cm_err e);

enum cm_frame_type {
    CM_FRAME_JOIN,
    CM_FRAME_MESSAGE,
    CM_FRAME_LEAVE,
    CM_FRAME_HISTORY,
    CM_FRAME_MEMBERS,
    CM_FRAME_PING,
    CM_FRAME_LEGACY, /* no "type", but nickname + room + message: join if needed, then send */
};

/* How a membership is told of joins and leaves (the join's "presence"). */
enum cm_presence_mode {
    CM_PRESENCE_EVENTS, /* default: one presence frame per event, batched in big rooms */
    CM_PRESENCE_DIFF,   /* always one presence_diff per room per tick */
    CM_PRESENCE_COUNT,  /* only the count: one presence_count per room per tick */
};

struct cm_frame {
    enum cm_frame_type type;
    char room[CM_ROOM_MAX + 1];
    char nickname[CM_NICK_MAX_BYTES + 1];
    char id[CM_ID_MAX + 1];       /* valid when has_id */
    char epoch[CM_EPOCH_MAX + 1]; /* join: valid when has_epoch */
    char *message;                /* message/legacy: owned, NUL-terminated; else NULL */
    size_t message_len;           /* bytes */
    int64_t since;                /* join: last seq seen, or -1 when absent */
    int64_t before;               /* history: exclusive upper seq, or -1 when absent */
    int history;                  /* join: recent messages wanted, 0..500, default 50 */
    int limit;                    /* history: 1..500, default 50 */
    int grace_ms;                 /* join: 0..CM_GRACE_MAX_MS, default 0 */
    char cursor[CM_CURSOR_MAX + 1]; /* members: where to go on, "0" (the start) by default */
    enum cm_presence_mode presence; /* join */
    bool has_id;
    bool has_epoch;
};

struct cm_decode_error {
    enum cm_err code;
    const char *message; /* static text for people, e.g. "room must be 1-64 of [A-Za-z0-9._:-]" */
};

/*
 * Decodes and validates one client frame of len bytes (not necessarily
 * NUL-terminated). message_max is the configured limit on message bytes.
 * Returns 0 and fills out; or -1 and fills err (and, when the frame carried
 * a valid "id", out->id/has_id so the error can echo it). out must be
 * released with cm_frame_clear in both cases.
 *
 * Rules: the frame is one JSON object of valid UTF-8 with no NUL byte, raw
 * or escaped (bad_json if not JSON or not an object; bad_request for NUL or
 * invalid UTF-8); "type" a known string (unknown_type) or absent with
 * nickname+room+message (legacy); fields of the wrong JSON type or out of
 * range are bad_request; room and nickname per PROTOCOL.md (invalid_room,
 * invalid_nickname); message 1..message_max bytes (empty: bad_request,
 * longer: too_large); numbers must be integers in 0..CM_SEQ_MAX; unknown
 * fields are ignored.
 */
int cm_frame_decode(const char *buf, size_t len, size_t message_max, struct cm_frame *out,
                    struct cm_decode_error *err);
void cm_frame_clear(struct cm_frame *f);

/*
 * Decodes the body of a server push (POST /api/rooms/{room}/messages),
 * {"nickname","message"}, with the same rules as a message frame's fields.
 * Fills out->nickname and out->message; returns 0, or -1 with err.
 */
int cm_push_decode(const char *buf, size_t len, size_t message_max, struct cm_frame *out,
                   struct cm_decode_error *err);

/* Validators, also used for HTTP paths and flags. */
bool cm_utf8_valid(const char *s, size_t len);
bool cm_room_valid(const char *s, size_t len);
bool cm_nickname_valid(const char *s, size_t len);

/* What a gateway announces in welcome.limits: the protocol's four, then
 * the rest of its limits (0 where a limit is off). */
struct cm_limits {
    long long message_bytes;
    long long frame_bytes;
    long long rate_per_sec;
    long long rooms;
    long long rate_burst;
    long long joins_per_sec;
    long long send_queue_bytes;
    long long max_conns_per_ip;
    long long max_connections;
    long long members_page;         /* members per page (joined, members) */
    long long presence_batch_above; /* rooms above this many members get presence_diff */
    long long presence_tick_ms;     /* how often presence_diff goes out */
};

/*
 * Encoders. Each appends exactly one JSON object to b. id may be NULL (then
 * no "id" field). Arrays passed as `*_json` are raw JSON array text, e.g.
 * "[{...},{...}]", spliced in as they are (they come from our own scripts).
 */
void cm_encode_welcome(struct cm_sbuf *b, const char *session, const char *gateway,
                       const struct cm_limits *limits);
/* A page of a room's members: the JSON array, the room's member count (-1:
 * omitted) and the cursor of the next page (NULL or "0": this was the last). */
struct cm_members_page {
    const char *json;
    int64_t count;
    const char *cursor;
};
/* recovered: -1 to omit the field (no `since` was given), 0 false, 1 true.
 * The page's cursor, when there is one, goes out as "members_cursor". */
void cm_encode_joined(struct cm_sbuf *b, const char *id, const char *room, const char *nickname,
                      int64_t seq, const char *epoch, const struct cm_members_page *members,
                      const char *history_json, int recovered);
/* replicated false: stored and delivered, but no replica confirmed it in
 * time (PROTOCOL.md, "Redis Cluster"). */
void cm_encode_ack(struct cm_sbuf *b, const char *id, const char *room, int64_t seq,
                   bool replicated);
/* reason: "left" or "replaced". */
void cm_encode_left(struct cm_sbuf *b, const char *id, const char *room, const char *reason);
/* history frame: {"type":"history","room","messages":[...]} */
void cm_encode_history(struct cm_sbuf *b, const char *id, const char *room,
                       const char *messages_json);
void cm_encode_members(struct cm_sbuf *b, const char *id, const char *room,
                       const struct cm_members_page *members);
/* {"type":"presence_diff","room","count","joins":[...],"leaves":[...]}:
 * the arrays are raw JSON ({"nickname","since"} and {"nickname","reason","ts"}). */
void cm_encode_presence_diff(struct cm_sbuf *b, const char *room, int64_t count,
                             const char *joins_json, const char *leaves_json);
/* {"type":"presence_count","room","count"} */
void cm_encode_presence_count(struct cm_sbuf *b, const char *room, int64_t count);
void cm_encode_pong(struct cm_sbuf *b, const char *id);
void cm_encode_error(struct cm_sbuf *b, const char *id, enum cm_err code, const char *message);
void cm_encode_reconnect(struct cm_sbuf *b, const char *reason, int64_t after_ms);
/* event: "join" or "leave"; reason NULL for a join. */
void cm_encode_presence(struct cm_sbuf *b, const char *room, const char *event,
                        const char *nickname, const char *reason, int64_t ts);
/*
 * The tail of a message envelope, from just after the opening fields the
 * publish script writes: "room":...,"nickname":...,"message":...} — see
 * common/scripts/publish.lua.
 */
void cm_encode_message_tail(struct cm_sbuf *b, const char *room, const char *nickname,
                            const char *message, size_t message_len);
/* A presence frame as the scripts publish it on a room's channel. */
struct cm_presence {
    bool join; /* else a leave */
    char nickname[CM_NICK_MAX_BYTES + 1];
    char reason[16]; /* a leave's; "" for a join */
    int64_t ts;
    int64_t count; /* the room's members after it; -1 if absent */
};
/* Reads a presence frame; 0, or -1 if it is not one. */
int cm_presence_decode(const char *buf, size_t len, struct cm_presence *out);

/* The member value kept in chat:{r}:members: {"session","mid","gateway","since"}. */
void cm_encode_member(struct cm_sbuf *b, const char *session, const char *mid,
                      const char *gateway, int64_t since);

#endif
