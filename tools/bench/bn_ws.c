/*
 * The WebSocket client side of RFC 6455, as little as a load generator
 * needs and no less than a correct peer: the upgrade with
 * Sec-WebSocket-Protocol: chat.v1 (the accept key is checked), masked frames
 * out, unmasked frames in with 7-, 16- and 64-bit lengths, fragmented
 * messages with control frames between their fragments, ping answered by
 * pong, and the close handshake.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define FRAG_MAX (16u << 20)

enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa
};

/* ---- SHA-1 (FIPS 180-4), only for the 60-byte accept key ---- */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5a827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else
            f = b ^ c ^ d, k = 0xca62c1d6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1(const void *data, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const unsigned char *p = data;
    unsigned char block[64];
    size_t i = 0;
    for (; len - i >= 64; i += 64)
        sha1_block(h, p + i);
    size_t rest = len - i;
    memset(block, 0, sizeof(block));
    memcpy(block, p + i, rest);
    block[rest] = 0x80;
    if (rest >= 56) {
        sha1_block(h, block);
        memset(block, 0, sizeof(block));
    }
    uint64_t bits = (uint64_t)len * 8;
    for (int k = 0; k < 8; k++)
        block[63 - k] = (unsigned char)(bits >> (8 * k));
    sha1_block(h, block);
    for (int k = 0; k < 5; k++) {
        out[4 * k] = (unsigned char)(h[k] >> 24);
        out[4 * k + 1] = (unsigned char)(h[k] >> 16);
        out[4 * k + 2] = (unsigned char)(h[k] >> 8);
        out[4 * k + 3] = (unsigned char)h[k];
    }
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

void bn_ws_accept_key(const char *key, char out[29])
{
    char text[128];
    unsigned char digest[20];
    int n = snprintf(text, sizeof(text), "%s%s", key, WS_GUID);
    sha1(text, (size_t)n, digest);
    base64(digest, 20, out);
}

/* ---- the upgrade ---- */

size_t bn_ws_request(struct bn *b, struct bn_conn *c, char *buf, size_t cap)
{
    const struct bn_url *u = &b->cfg.urls[c->url];
    unsigned char nonce[16];
    char key[25];
    uint64_t r1 = bn_rand(b), r2 = bn_rand(b);
    memcpy(nonce, &r1, 8);
    memcpy(nonce + 8, &r2, 8);
    base64(nonce, 16, key);
    bn_ws_accept_key(key, c->accept);
    int n = snprintf(buf, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: chat.v1\r\n"
                     "\r\n",
                     u->path, u->host, key);
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* The value of header `name` in the response head [p, end), trimmed; or NULL. */
static const char *header_value(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *line = p; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        line = eol + 1;
    }
    return NULL;
}

long bn_ws_response(struct bn *b, struct bn_conn *c, const char *buf, size_t len)
{
    const char *end = NULL;
    for (size_t i = 3; i < len; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            end = buf + i + 1;
            break;
        }
    }
    if (!end)
        return 0;
    if (len < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        const char *eol = memchr(buf, '\r', (size_t)(end - buf));
        bn_problem(b, "connection %u: upgrade refused: %.*s", c->id, (int)(eol ? eol - buf : 40),
                   buf);
        return -1;
    }
    size_t vlen;
    const char *v = header_value(buf, end, "Sec-WebSocket-Accept", &vlen);
    if (!v || vlen != 28 || memcmp(v, c->accept, 28) != 0) {
        bn_problem(b, "connection %u: wrong or missing Sec-WebSocket-Accept", c->id);
        return -1;
    }
    v = header_value(buf, end, "Sec-WebSocket-Protocol", &vlen);
    if (!v || vlen != 7 || memcmp(v, "chat.v1", 7) != 0) {
        bn_problem(b, "connection %u: the server did not select the chat.v1 subprotocol", c->id);
        return -1;
    }
    return end - buf;
}

/* ---- frames ---- */

int bn_ws_send(struct bn *b, struct bn_conn *c, int opcode, const char *payload, size_t len)
{
    char stackbuf[4096];
    size_t hdr = len < 126 ? 6 : len < 65536 ? 8 : 14;
    char *f = hdr + len <= sizeof(stackbuf) ? stackbuf : malloc(hdr + len);
    if (!f)
        return -1;
    f[0] = (char)(0x80 | opcode);
    if (len < 126) {
        f[1] = (char)(0x80 | len);
    } else if (len < 65536) {
        f[1] = (char)(0x80 | 126);
        f[2] = (char)(len >> 8);
        f[3] = (char)len;
    } else {
        f[1] = (char)(0x80 | 127);
        for (int i = 0; i < 8; i++)
            f[2 + i] = (char)((uint64_t)len >> (56 - 8 * i));
    }
    uint32_t key = (uint32_t)bn_rand(b);
    unsigned char mask[4];
    memcpy(mask, &key, 4);
    memcpy(f + hdr - 4, mask, 4);
    char *dst = f + hdr;
    for (size_t i = 0; i < len; i++)
        dst[i] = (char)(payload[i] ^ mask[i & 3]);
    int rc = bn_conn_write(b, c, f, hdr + len);
    if (f != stackbuf)
        free(f);
    return rc;
}

/* A close frame from the server: remember its code, answer it once. */
static void on_close_frame(struct bn *b, struct bn_conn *c, const unsigned char *p, size_t n)
{
    uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
    c->close_code = code;
    if (c->flags & BN_F_CLOSE_SENT)
        return; /* the answer to ours: the server closes the TCP connection next */
    /* The server started it: that is a disconnect unless we asked for it. */
    if (!(c->flags & BN_F_SHUT)) {
        b->st.disconnects++;
        int slot = code == 1000 ? 0 : code == 1001 ? 1 : code == 1008 ? 2 : code == 1013 ? 3 : 4;
        b->st.close_codes[slot]++;
        bn_problem(b, "connection %u closed by the server with %u %.*s", c->id, code,
                   (int)(n > 2 ? n - 2 : 0), (const char *)p + 2);
    }
    char echo[2] = {(char)(code >> 8), (char)(code & 0xff)};
    c->flags |= BN_F_CLOSE_SENT;
    c->state = BN_CLOSING;
    c->t0_ns = bn_now_ns();
    bn_ws_send(b, c, OP_CLOSE, echo, code == 1005 ? 0 : 2);
}

/* One complete message or control frame. Returns 0, or -1 on a protocol error. */
static int on_frame(struct bn *b, struct bn_conn *c, int op, char *p, size_t n, uint64_t now)
{
    switch (op) {
    case OP_TEXT:
        b->st.frames_in++;
        if (c->state == BN_OPEN || c->state == BN_CLOSING)
            bn_chat_on_text(b, c, p, n, now);
        return 0;
    case OP_BINARY:
        b->st.frames_in++;
        b->st.protocol_errors++; /* the protocol never sends binary */
        return 0;
    case OP_PING: b->st.pings++; return c->state == BN_OPEN ? bn_ws_send(b, c, OP_PONG, p, n) : 0;
    case OP_PONG: return 0;
    case OP_CLOSE: on_close_frame(b, c, (const unsigned char *)p, n); return 0;
    default: return -1;
    }
}

/* Adds a fragment to the message being reassembled. */
static int frag_append(struct bn_conn *c, const char *p, size_t n)
{
    if ((size_t)c->fraglen + n > FRAG_MAX)
        return -1;
    char *nf = realloc(c->frag, c->fraglen + n + 1);
    if (!nf)
        return -1;
    memcpy(nf + c->fraglen, p, n);
    c->frag = nf;
    c->fraglen += (uint32_t)n;
    return 0;
}

long bn_ws_frames(struct bn *b, struct bn_conn *c, char *buf, size_t len, uint64_t now)
{
    size_t off = 0;
    uint32_t gen = c->gen;
    while (len - off >= 2) {
        unsigned char *h = (unsigned char *)buf + off;
        bool fin = h[0] & 0x80;
        int op = h[0] & 0x0f;
        bool masked = h[1] & 0x80;
        uint64_t plen = h[1] & 0x7f;
        size_t hdr = 2;
        if (h[0] & 0x70)
            return -1; /* no extension was negotiated */
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)h[2] << 8 | h[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | h[2 + i];
            hdr = 10;
        }
        if (plen > BN_SCRATCH)
            return -1;
        size_t mhdr = hdr + (masked ? 4 : 0);
        if (len - off < mhdr + plen)
            break; /* incomplete: the caller keeps the tail */
        char *p = buf + off + mhdr;
        if (masked) { /* servers must not mask; unmask anyway and count it */
            b->st.protocol_errors++;
            for (uint64_t i = 0; i < plen; i++)
                p[i] ^= (char)h[hdr + (i & 3)];
        }
        off += mhdr + (size_t)plen;
        int rc;
        if (op >= 0x8) { /* control frames: never fragmented, may interleave */
            if (!fin || plen > 125)
                return -1;
            rc = on_frame(b, c, op, p, (size_t)plen, now);
        } else if (op == OP_CONT) {
            if (!c->fragop || frag_append(c, p, (size_t)plen) < 0)
                return -1;
            rc = 0;
            if (fin) {
                int fop = c->fragop;
                char *msg = c->frag;
                uint32_t mlen = c->fraglen;
                c->frag = NULL;
                c->fraglen = 0;
                c->fragop = 0;
                rc = on_frame(b, c, fop, msg, mlen, now);
                free(msg);
            }
        } else {
            if (c->fragop)
                return -1; /* a new message inside a fragmented one */
            if (fin) {
                rc = on_frame(b, c, op, p, (size_t)plen, now);
            } else {
                c->fragop = (uint8_t)op;
                rc = frag_append(c, p, (size_t)plen);
            }
        }
        if (c->gen != gen || c->fd < 0)
            return (long)off; /* a handler dropped the connection */
        if (rc < 0)
            return -1;
    }
    return (long)off;
}
