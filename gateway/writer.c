/*
 * The write side of sessions: bounded queues of shared payloads, and how
 * they reach the socket.
 *
 * Frames queued during one turn of the loop are written at the end of that
 * turn (a uv_check handle), all of a connection's frames in one send: a
 * single frame through lws_write, several as one buffer of ready-made
 * WebSocket frames (server frames are unmasked, so framing is a 2-10 byte
 * header). A connection that is writable never waits for an extra poll
 * round, and a burst of room traffic costs one syscall per connection
 * instead of one per frame plus two epoll_ctl. Only a connection whose
 * socket is full (lws_send_pipe_choked) waits for WRITEABLE.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

#define COALESCE_MAX (64 * 1024) /* bytes gathered into one send */

int gw_session_send(struct gw_session *s, struct gw_payload *p)
{
    if (!s->wsi || s->close_code)
        return -1;
    if (s->queue.len > 0 && s->queue.bytes + p->len > (size_t)s->srv->cfg.send_queue_bytes) {
        gw_session_overflow(s);
        return -1;
    }
    gw_pvec_push(&s->queue, gw_payload_ref(p));
    gw_session_mark_dirty(s);
    return 0;
}

static void on_kick(uv_idle_t *h)
{
    /* Nothing to do: an active idle handle only keeps the loop from
     * blocking in poll, so frames queued by a timer go out this turn. */
}

void gw_session_mark_dirty(struct gw_session *s)
{
    if (s->dirty)
        return;
    if (!s->srv->dirty)
        uv_idle_start(&s->srv->kick, on_kick);
    s->dirty = true;
    s->dirty_next = s->srv->dirty;
    s->srv->dirty = gw_session_ref(s); /* the list holds a reference */
}

/* Writes our close frame: lws 4.1 (with libuv) kills the socket without one
 * when a WRITEABLE callback returns -1 after lws_close_reason, so the frame
 * is written here and the peer's answering close (or the timeout) ends the
 * connection. Returns -1 if the socket failed. */
static int write_close(struct gw_session *s)
{
    unsigned char frame[LWS_PRE + 125];
    size_t n = strlen(s->close_why);
    if (s->close_sent)
        return 0;
    if (n > 120)
        n = 120;
    frame[LWS_PRE] = (unsigned char)(s->close_code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
    memcpy(frame + LWS_PRE + 2, s->close_why, n);
    s->close_sent = true;
    if (lws_write(s->wsi, frame + LWS_PRE, n + 2, GW_LWS_WRITE_CLOSE) < 0)
        return -1;
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
    return 0;
}

/* Appends one unmasked text frame (FIN set) to b. */
static void put_frame(struct cm_sbuf *b, const struct gw_payload *p)
{
    unsigned char h[10];
    size_t n = 0;
    h[n++] = 0x81;
    if (p->len < 126) {
        h[n++] = (unsigned char)p->len;
    } else if (p->len < 65536) {
        h[n++] = 126;
        h[n++] = (unsigned char)(p->len >> 8);
        h[n++] = (unsigned char)p->len;
    } else {
        h[n++] = 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (unsigned char)((uint64_t)p->len >> (8 * i));
    }
    cm_sbuf_append(b, h, n);
    cm_sbuf_append(b, p->buf + LWS_PRE, p->len);
}

/* Writes what is queued, as one send. Returns -1 if the socket failed. */
static int write_queue(struct gw_session *s)
{
    struct gw_server *srv = s->srv;
    struct gw_payload *p;
    int n;

    if (s->queue.len == 1 || s->queue.items[s->queue.head]->len >= COALESCE_MAX) {
        p = gw_pvec_shift(&s->queue); /* zero copy: lws frames it in place */
        n = lws_write(s->wsi, p->buf + LWS_PRE, p->len, LWS_WRITE_TEXT);
        gw_payload_unref(p);
        srv->m.frames_out++;
        srv->m.writes++;
        return n < 0 ? -1 : 0;
    }
    struct cm_sbuf *b = &srv->wbuf;
    cm_sbuf_reset(b);
    while (s->queue.len > 0 && b->len + s->queue.items[s->queue.head]->len + 10 <= COALESCE_MAX) {
        p = gw_pvec_shift(&s->queue);
        put_frame(b, p);
        gw_payload_unref(p);
        srv->m.frames_out++;
    }
    srv->m.writes++;
    /* LWS_WRITE_RAW: the bytes are complete frames already. */
    n = lws_write(s->wsi, (unsigned char *)cm_sbuf_data(b), b->len, LWS_WRITE_RAW);
    return n < 0 ? -1 : 0;
}

int gw_session_flush(struct gw_session *s)
{
    if (!s->wsi)
        return 0;
    if (s->peer_closed) {
        /* lws answers the peer's close itself; nothing more goes out. */
        gw_pvec_clear(&s->queue);
        return 0;
    }
    if (s->close_code && (!s->close_after_flush || s->queue.len == 0))
        return write_close(s);
    if (s->queue.len > 0 && write_queue(s) != 0)
        return -1;
    if (s->queue.len > 0 || s->close_code)
        lws_callback_on_writable(s->wsi);
    return 0;
}

int gw_session_writable(struct gw_session *s)
{
    return gw_session_flush(s);
}

/* End of a loop turn: every session that got frames writes them now,
 * unless its socket is full, in which case it waits for WRITEABLE. */
static void on_turn_end(uv_check_t *h)
{
    struct gw_server *srv = h->data;
    uv_idle_stop(&srv->kick);
    while (srv->dirty) {
        struct gw_session *s = srv->dirty;
        srv->dirty = s->dirty_next;
        s->dirty = false;
        s->dirty_next = NULL;
        if (s->wsi) {
            if (lws_send_pipe_choked(s->wsi))
                lws_callback_on_writable(s->wsi);
            else if (gw_session_flush(s) != 0) /* the socket is gone: lws closes it */
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        }
        gw_session_unref(s);
    }
}

void gw_writer_start(struct gw_server *srv)
{
    cm_sbuf_init(&srv->wbuf, LWS_PRE);
    uv_check_init(srv->loop, &srv->turn_end);
    srv->turn_end.data = srv;
    uv_check_start(&srv->turn_end, on_turn_end);
    uv_idle_init(srv->loop, &srv->kick);
}

void gw_writer_stop(struct gw_server *srv)
{
    uv_check_stop(&srv->turn_end);
    uv_close((uv_handle_t *)&srv->turn_end, NULL);
    uv_close((uv_handle_t *)&srv->kick, NULL);
    while (srv->dirty) {
        struct gw_session *s = srv->dirty;
        srv->dirty = s->dirty_next;
        s->dirty = false;
        gw_session_unref(s);
    }
    cm_sbuf_free(&srv->wbuf);
}
