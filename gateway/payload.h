/*
 * Shared, ref-counted frame payloads and the small vectors that queue them.
 * Fan-out of one room message to N local members costs one allocation and
 * N reference increments, never N copies.
 */
#ifndef GW_PAYLOAD_H
#define GW_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Headroom before a payload's text, where the WebSocket header is written:
 * as much as lws asks for (LWS_PRE, checked in writer.c), so that the TLS
 * path can hand the same buffer to lws_write. */
#define GW_PAYLOAD_PRE 16

/* Bytes of one server frame, shared by every recipient. The headroom
 * before the data is where each frame's header goes, so one buffer serves
 * every connection without a copy. */
struct gw_payload {
    unsigned refs;
    bool is_message; /* a chat message (legacy connections get only these) */
    uint8_t hdr_len; /* the WebSocket header written just before the text */
    int64_t seq;     /* the room seq of a message, 0 for other frames */
    size_t len;      /* of the text */
    unsigned char buf[]; /* GW_PAYLOAD_PRE bytes of headroom, then len bytes */
};

/* The ready-made frame, header included: the same bytes for every
 * recipient, since server frames are not masked. */
static inline const unsigned char *gw_payload_frame(const struct gw_payload *p)
{
    return p->buf + GW_PAYLOAD_PRE - p->hdr_len;
}

static inline size_t gw_payload_frame_len(const struct gw_payload *p)
{
    return p->hdr_len + p->len;
}

/* A frame vector: a small growable array of payload references, used for a
 * session's send queue (as a ring) and a membership's held-back frames. */
struct gw_pvec {
    struct gw_payload **items;
    size_t head, len, cap;
    size_t bytes;
};

/* A text frame of len bytes with one reference, the caller's. */
struct gw_payload *gw_payload_new(const void *data, size_t len);
struct gw_payload *gw_payload_ref(struct gw_payload *p);
void gw_payload_unref(struct gw_payload *p);
/* Takes over the caller's reference to p. */
void gw_pvec_push(struct gw_pvec *v, struct gw_payload *p);
/* The oldest payload, whose reference passes to the caller; NULL if empty. */
struct gw_payload *gw_pvec_shift(struct gw_pvec *v);
static inline struct gw_payload *gw_pvec_at(const struct gw_pvec *v, size_t i)
{
    return v->items[(v->head + i) % v->cap];
}
void gw_pvec_clear(struct gw_pvec *v);

#endif
