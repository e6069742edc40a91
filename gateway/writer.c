/*
 * The write side of sessions: bounded queues of shared payloads, and how
 * they reach the socket.
 *
 * Frames queued during one turn of the loop are written at the end of that
 * turn (a uv_check handle), a connection's frames coalesced into as few
 * sends as possible. Each payload is framed once when it is made
 * (gw_payload_new), so a frame is the same bytes for every recipient:
 * nothing is framed or copied per recipient.
 *
 * Plain connections are written with sendmsg straight from the payloads,
 * TLS connections through lws_write. Nobody asks first whether the socket
 * has room (lws_send_pipe_choked is a poll() per call, a tenth of the
 * gateway's CPU under fan-out): the kernel answers by taking less (or, under
 * TLS, lws by buffering), and only then does the connection wait for
 * WRITEABLE.
 */
#include "gw_server.h"
#include "session_io.h"

#include "cm_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

_Static_assert(GW_PAYLOAD_PRE >= LWS_PRE, "a payload's headroom is what lws_write needs");

#define COALESCE_MAX (64 * 1024) /* bytes offered to one send */
#define IOV_FRAMES 64             /* frames offered to one sendmsg */
#define WRITES_PER_TURN 16        /* sends per connection per turn: 1 MiB, then others' turn */

int gw_session_send(struct gw_session *s, struct gw_payload *p)
{
    if (!s->wsi || s->io->close_code)
        return -1;
    if (s->io->queue.len > 0 && s->io->queue.bytes + p->len > (size_t)s->srv->cfg.send_queue_bytes) {
        gw_session_overflow(s);
        return -1;
    }
    gw_pvec_push(&s->io->queue, gw_payload_ref(p));
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
    if (s->io->dirty)
        return;
    if (!s->srv->dirty)
        uv_idle_start(&s->srv->kick, on_kick);
    s->io->dirty = true;
    s->io->dirty_next = s->srv->dirty;
    s->srv->dirty = gw_session_ref(s); /* the list holds a reference */
}

/* Writes our close frame: lws 4.1 (with libuv) kills the socket without one
 * when a WRITEABLE callback returns -1 after lws_close_reason, so the frame
 * is written here and the peer's answering close (ws.c), or the close
 * deadline (keepalive.c), ends the connection. Returns -1 if the socket
 * failed. */
static int write_close(struct gw_session *s)
{
    unsigned char frame[LWS_PRE + 125];
    size_t n = strlen(s->io->close_why);
    if (s->io->close_sent)
        return 0;
    if (n > 120)
        n = 120;
    frame[LWS_PRE] = (unsigned char)(s->io->close_code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(s->io->close_code & 0xff);
    memcpy(frame + LWS_PRE + 2, s->io->close_why, n);
    s->io->close_sent = true;
    return lws_write(s->wsi, frame + LWS_PRE, n + 2, GW_LWS_WRITE_CLOSE) < 0 ? -1 : 0;
}

/* Plain connections: the queued frames in one sendmsg, straight from the
 * shared payloads. Frames the kernel took are done; of a frame it took only
 * in part, lws gets the rest (lws_write RAW), buffers it and writes it
 * before anything of its own, so a pong or close never lands inside one of
 * our frames. Returns -1 if the socket failed. */
static int write_direct(struct gw_session *s)
{
    struct gw_server *srv = s->srv;
    struct iovec iov[IOV_FRAMES];
    size_t n = 0, offered = 0;

    while (n < s->io->queue.len && n < IOV_FRAMES && offered < COALESCE_MAX) {
        const struct gw_payload *p = gw_pvec_at(&s->io->queue, n);
        iov[n].iov_base = (void *)gw_payload_frame(p);
        iov[n].iov_len = gw_payload_frame_len(p);
        offered += iov[n++].iov_len;
    }
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
    ssize_t sent = sendmsg(s->io->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    srv->m.writes++;
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        sent = 0;
    }
    if ((size_t)sent < offered) {
        srv->m.short_writes++;
        s->io->wait_writable = true;
    }
    for (size_t done = (size_t)sent; done > 0;) {
        struct gw_payload *p = gw_pvec_shift(&s->io->queue);
        size_t len = gw_payload_frame_len(p);
        srv->m.frames_out++;
        if (done < len) {
            int rc = lws_write(s->wsi, (unsigned char *)gw_payload_frame(p) + done, len - done,
                               LWS_WRITE_RAW);
            gw_payload_unref(p); /* lws asks for WRITEABLE once it wrote the rest */
            return rc < 0 ? -1 : 0;
        }
        gw_payload_unref(p);
        done -= len;
    }
    return 0;
}

/* After lws_write: if lws kept some of it, the socket is full. */
static void note_buffered(struct gw_session *s)
{
    if (lws_partial_buffered(s->wsi)) {
        s->srv->m.short_writes++;
        s->io->wait_writable = true;
    }
}

/* TLS connections: lws encrypts, so the frames go through lws_write, one
 * frame in place or several gathered into one buffer. */
static int write_lws(struct gw_session *s)
{
    struct gw_server *srv = s->srv;
    struct gw_payload *p = gw_pvec_shift(&s->io->queue);
    int n;

    srv->m.frames_out++;
    srv->m.writes++;
    if (s->io->queue.len == 0 || gw_payload_frame_len(p) >= COALESCE_MAX) {
        n = lws_write(s->wsi, (unsigned char *)gw_payload_frame(p), gw_payload_frame_len(p),
                      LWS_WRITE_RAW);
        gw_payload_unref(p);
        note_buffered(s);
        return n < 0 ? -1 : 0;
    }
    struct cm_sbuf *b = &srv->wbuf;
    cm_sbuf_reset(b);
    for (;;) {
        cm_sbuf_append(b, gw_payload_frame(p), gw_payload_frame_len(p));
        gw_payload_unref(p);
        if (s->io->queue.len == 0 ||
            b->len + gw_payload_frame_len(gw_pvec_at(&s->io->queue, 0)) > COALESCE_MAX)
            break;
        p = gw_pvec_shift(&s->io->queue);
        srv->m.frames_out++;
    }
    n = lws_write(s->wsi, (unsigned char *)cm_sbuf_data(b), b->len, LWS_WRITE_RAW);
    note_buffered(s);
    return n < 0 ? -1 : 0;
}

int gw_session_flush(struct gw_session *s)
{
    if (!s->wsi)
        return 0;
    if (gw_session_lws_closing(s)) {
        /* lws answers the peer's close, or sends its own; nothing more of
         * ours goes out. */
        gw_pvec_clear(&s->io->queue);
        return 0;
    }
    if (s->io->close_code && (!s->io->close_after_flush || s->io->queue.len == 0))
        return write_close(s);
    /* Write until the queue is empty or the socket takes less than offered
     * (then wait for WRITEABLE), at most WRITES_PER_TURN sends. Waiting after
     * a complete send instead would stall for nothing: the kernel reports
     * POLLOUT only once a third of the send buffer is free again. */
    for (int i = 0; i < WRITES_PER_TURN && s->io->queue.len > 0 && !s->io->wait_writable; i++)
        if ((s->io->fd >= 0 ? write_direct(s) : write_lws(s)) != 0)
            return -1;
    if (s->io->queue.len > 0 || s->io->close_code || s->io->wait_writable) {
        /* What is left goes when the socket has room again. */
        s->io->wait_writable = true;
        lws_callback_on_writable(s->wsi);
    }
    return 0;
}

int gw_session_writable(struct gw_session *s)
{
    s->io->wait_writable = false;
    return gw_session_flush(s);
}

/* Whether the socket cannot take more now, as its last write told (no
 * syscall), or lws still holds bytes of its own (a pong, a ping, a close)
 * that must go first. */
static bool must_wait(struct gw_session *s)
{
    return s->io->wait_writable || lws_partial_buffered(s->wsi);
}

/* End of a loop turn: every session that got frames writes them now,
 * unless its socket is full, in which case it waits for WRITEABLE. */
static void on_turn_end(uv_check_t *h)
{
    struct gw_server *srv = h->data;
    uv_idle_stop(&srv->kick);
    gw_sessions_end(srv); /* closes begun this turn: leaves, and close frames */
    while (srv->dirty) {
        struct gw_session *s = srv->dirty;
        srv->dirty = s->io->dirty_next;
        s->io->dirty = false;
        s->io->dirty_next = NULL;
        if (s->wsi) {
            if (must_wait(s)) {
                s->io->wait_writable = true;
                lws_callback_on_writable(s->wsi);
            } else if (gw_session_flush(s) != 0) { /* the socket is gone */
                gw_session_kill(s);
            }
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
    while (srv->ending) { /* lws's close callbacks detach what is left */
        struct gw_session *s = srv->ending;
        srv->ending = s->io->ending_next;
        gw_session_unref(s);
    }
    while (srv->dirty) {
        struct gw_session *s = srv->dirty;
        srv->dirty = s->io->dirty_next;
        s->io->dirty = false;
        gw_session_unref(s);
    }
    cm_sbuf_free(&srv->wbuf);
}
