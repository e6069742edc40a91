/*
 * Shared, ref-counted frame payloads and the small vectors that queue them
 * (payload.h).
 */
#include "payload.h"

#include "cm_util.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(GW_PAYLOAD_PRE >= 10, "the headroom holds the longest WebSocket header");

/* Writes the header of an unmasked, final text frame of len bytes so that
 * it ends at `end`; returns its length (2, 4 or 10). */
static uint8_t put_header(unsigned char *end, size_t len)
{
    unsigned char h[10];
    uint8_t n = 0;
    h[n++] = 0x81; /* FIN, text */
    if (len < 126) {
        h[n++] = (unsigned char)len;
    } else if (len < 65536) {
        h[n++] = 126;
        h[n++] = (unsigned char)(len >> 8);
        h[n++] = (unsigned char)len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(end - n, h, n);
    return n;
}

struct gw_payload *gw_payload_new(const void *data, size_t len)
{
    struct gw_payload *p = cm_malloc(sizeof(*p) + GW_PAYLOAD_PRE + len);
    p->refs = 1;
    p->is_message = false;
    p->seq = 0;
    p->len = len;
    memcpy(p->buf + GW_PAYLOAD_PRE, data, len);
    /* Framed once here, so every recipient's write is these bytes as they
     * are; lws_write (the TLS path) writes the same header in place. */
    p->hdr_len = put_header(p->buf + GW_PAYLOAD_PRE, len);
    return p;
}

struct gw_payload *gw_payload_ref(struct gw_payload *p)
{
    p->refs++;
    return p;
}

void gw_payload_unref(struct gw_payload *p)
{
    if (p && --p->refs == 0)
        free(p);
}

void gw_pvec_push(struct gw_pvec *v, struct gw_payload *p)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 4;
        struct gw_payload **items = cm_malloc(ncap * sizeof(*items));
        /* Unroll the ring into the new array, oldest first. */
        for (size_t i = 0; i < v->len; i++)
            items[i] = v->items[(v->head + i) % v->cap];
        free(v->items);
        v->items = items;
        v->cap = ncap;
        v->head = 0;
    }
    v->items[(v->head + v->len) % v->cap] = p;
    v->len++;
    v->bytes += p->len;
}

struct gw_payload *gw_pvec_shift(struct gw_pvec *v)
{
    if (v->len == 0)
        return NULL;
    struct gw_payload *p = v->items[v->head];
    v->head = (v->head + 1) % v->cap;
    v->len--;
    v->bytes -= p->len;
    if (v->len == 0 && v->cap > 16) {
        /* A burst is over: give the memory back, idle connections stay small. */
        free(v->items);
        v->items = NULL;
        v->cap = v->head = 0;
    }
    return p;
}

void gw_pvec_clear(struct gw_pvec *v)
{
    struct gw_payload *p;
    while ((p = gw_pvec_shift(v)) != NULL)
        gw_payload_unref(p);
    free(v->items);
    memset(v, 0, sizeof(*v));
}
