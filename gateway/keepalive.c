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
 *   live:   not pinged since it last spoke, oldest first
 *   pinged: pinged and not heard from since, oldest first
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
    return state == GW_KA_PINGED ? &srv->ka_pinged : &srv->ka_live;
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
    if (s->io->ka_state == GW_KA_NONE)
        return; /* closed, or being hung up */
    s->io->last_rx_ms = cm_mono_ms();
    if (s->io->ka_state == GW_KA_LIVE && s->io->ka_next == NULL)
        return; /* already the newest */
    unlink_session(s);
    link_session(s, GW_KA_LIVE);
}

void gw_keepalive_remove(struct gw_session *s)
{
    unlink_session(s);
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

    while ((s = srv->ka_pinged) != NULL && now - s->io->last_rx_ms >= hangup_ms) {
        unlink_session(s);
        srv->m.ping_timeouts++;
        CM_DEBUG("session %s (%s): silent for %lld ms, hanging up", s->id, s->peer,
                 (long long)(now - s->io->last_rx_ms));
        /* No close frame: the peer has stopped answering. ws.c reports
         * the reason as timeout from last_rx_ms. */
        gw_session_kill(s);
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
