/*
 * Keepalive: a WebSocket silent for --ping-interval-s gets a ping, and one
 * silent for --ping-timeout-s is hung up (presence reason `timeout`).
 * Anything received counts: a frame or a pong.
 *
 * lws 4.1 offers this (the retry policy's validity timers), but it keeps
 * every connection's timer in one sorted list and inserts with a walk from
 * the head; each new connection and each pong walks past every connection
 * held. With 20,000 connections one ping round cost 16 s of CPU, every
 * 25 s (docs/PERFORMANCE.md, finding 3). Here a session sits on one of two
 * lists, each in the order of last activity, so receiving, pinging and
 * closing are O(1), and a tick looks only at the sessions that are due.
 *
 *   live:    not pinged since it last spoke, oldest first
 *   pinged:  pinged and not heard from since, oldest first
 *   closing: its close has begun, oldest first; cut GW_CLOSE_TIMEOUT_MS
 *            after, whatever it sends (nothing it sends counts any more)
 *
 * and, apart from those, a session whose message is arriving in pieces is
 * on the rx list from its first piece to its last, oldest first: a message
 * still incomplete GW_FRAME_TIMEOUT_MS after it began is closed with 1008,
 * so a peer trickling one frame a byte at a time does not stay forever.
 *
 * The close deadline is ours, not lws_set_timeout's: lws re-arms its own
 * timeout at each step of a close it runs (5 s to send its close frame,
 * 5 s more for the answer, 5 s to flush before closing), and a kill while
 * lws still holds bytes to write waits to flush them first. Here one
 * deadline holds from the moment the close began, and the cut uses lws's
 * timeout kill, which drops the socket without flushing.
 */
#include "gw_server.h"
#include "session_io.h"

#include "cm_log.h"
#include "cm_util.h"

#include <string.h>
#include <utlist.h>

#define TICK_MS 250 /* how late a ping or a hang-up may be */

static struct gw_session **list_of(struct gw_server *srv, enum gw_ka_state state)
{
    switch (state) {
    case GW_KA_PINGED: return &srv->ka_pinged;
    case GW_KA_CLOSING: return &srv->ka_closing;
    default: return &srv->ka_live;
    }
}

static void unlink_session(struct gw_session *s)
{
    if (s->io->ka_state == GW_KA_NONE)
        return;
    DL_DELETE2(*list_of(s->srv, s->io->ka_state), s, io->ka_prev, io->ka_next);
    s->io->ka_state = GW_KA_NONE;
}

static void link_session(struct gw_session *s, enum gw_ka_state state)
{
    DL_APPEND2(*list_of(s->srv, state), s, io->ka_prev, io->ka_next);
    s->io->ka_state = state;
}

void gw_keepalive_add(struct gw_session *s)
{
    s->io->last_rx_ms = cm_mono_ms();
    link_session(s, GW_KA_LIVE);
}

void gw_keepalive_heard(struct gw_session *s)
{
    if (s->io->ka_state == GW_KA_NONE || s->io->ka_state == GW_KA_CLOSING)
        return; /* closed, being hung up, or closing: nothing counts now */
    s->io->last_rx_ms = cm_mono_ms();
    if (s->io->ka_state == GW_KA_LIVE && s->io->ka_next == NULL)
        return; /* already the newest */
    unlink_session(s);
    link_session(s, GW_KA_LIVE);
}

void gw_keepalive_remove(struct gw_session *s)
{
    unlink_session(s);
    gw_keepalive_rx_end(s);
}

void gw_keepalive_closing(struct gw_session *s)
{
    if (s->io->ka_state == GW_KA_CLOSING)
        return; /* the first deadline holds */
    unlink_session(s);
    s->io->close_ms = cm_mono_ms();
    link_session(s, GW_KA_CLOSING);
}

void gw_keepalive_rx_begin(struct gw_session *s)
{
    if (s->io->rx_listed)
        return;
    s->io->rx_start_ms = cm_mono_ms();
    DL_APPEND2(s->srv->ka_rx, s, io->rx_prev, io->rx_next);
    s->io->rx_listed = true;
}

void gw_keepalive_rx_end(struct gw_session *s)
{
    if (!s->io->rx_listed)
        return;
    DL_DELETE2(s->srv->ka_rx, s, io->rx_prev, io->rx_next);
    s->io->rx_listed = false;
}

static void ping(struct gw_session *s)
{
    /* Not empty: lws 4.1 reports only pongs that carry a payload. */
    static const char body[] = "ka";
    unsigned char frame[LWS_PRE + sizeof(body)];

    if (s->io->close_code || gw_session_lws_closing(s))
        return;
    memcpy(frame + LWS_PRE, body, sizeof(body) - 1);
    /* A control frame may go between any two frames; lws appends it to
     * whatever of ours it still holds, and the stream is at a frame
     * boundary otherwise (writer.c). */
    s->srv->m.pings++;
    if (lws_write(s->wsi, frame + LWS_PRE, sizeof(body) - 1, LWS_WRITE_PING) < 0)
        gw_session_kill(s);
}

static void on_tick(uv_timer_t *t)
{
    struct gw_server *srv = t->data;
    int64_t now = cm_mono_ms();
    int64_t ping_ms = srv->cfg.ping_interval_s * 1000;
    int64_t hangup_ms = srv->cfg.ping_timeout_s * 1000;
    struct gw_session *s;

    while ((s = srv->ka_closing) != NULL && now - s->io->close_ms >= GW_CLOSE_TIMEOUT_MS) {
        unlink_session(s);
        srv->m.close_timeouts++;
        CM_INFO("session %s (%s): close not finished after %lld ms, cutting the connection", s->id,
                s->peer, (long long)(now - s->io->close_ms));
        gw_session_cut(s);
    }
    while ((s = srv->ka_rx) != NULL && now - s->io->rx_start_ms >= GW_FRAME_TIMEOUT_MS) {
        gw_keepalive_rx_end(s);
        srv->m.frame_timeouts++;
        CM_INFO("session %s (%s): a message still incomplete after %lld ms, closing 1008", s->id,
                s->peer, (long long)(now - s->io->rx_start_ms));
        gw_session_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "message too slow", false);
    }
    while ((s = srv->ka_pinged) != NULL && now - s->io->last_rx_ms >= hangup_ms) {
        unlink_session(s);
        srv->m.ping_timeouts++;
        CM_DEBUG("session %s (%s): silent for %lld ms, hanging up", s->id, s->peer,
                 (long long)(now - s->io->last_rx_ms));
        /* No close frame: the peer has stopped answering. Cut, not a
         * plain kill: lws would first wait (5 s) to flush what it holds
         * for a peer that, not reading, will never take it. The reason is
         * timeout, from last_rx_ms (gw_session_end_reason). */
        gw_session_cut(s);
    }
    while ((s = srv->ka_live) != NULL && now - s->io->last_rx_ms >= ping_ms) {
        unlink_session(s);
        link_session(s, GW_KA_PINGED);
        ping(s);
    }
}

void gw_keepalive_start(struct gw_server *srv)
{
    uv_timer_init(srv->loop, &srv->ka_timer);
    srv->ka_timer.data = srv;
    uv_timer_start(&srv->ka_timer, on_tick, TICK_MS, TICK_MS);
}

void gw_keepalive_stop(struct gw_server *srv)
{
    uv_timer_stop(&srv->ka_timer);
    uv_close((uv_handle_t *)&srv->ka_timer, NULL);
}
