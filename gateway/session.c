/*
 * Sessions: one per WebSocket connection. A session owns its send queue and
 * its memberships; it is ref-counted because Redis replies may arrive after
 * the socket closed (the reply then finds wsi == NULL and drops its answer).
 */
#include "gw_server.h"
#include "session_io.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

struct gw_session *gw_session_new(struct gw_server *srv, struct lws *wsi, bool v1)
{
    /* One allocation for both halves: the write side finds its state next
     * to the session's, in the same cache lines as before the split. */
    struct gw_session *s = cm_calloc(1, sizeof(*s) + sizeof(struct gw_session_io));
    s->io = (struct gw_session_io *)(s + 1);
    s->srv = srv;
    s->wsi = wsi;
    s->refs = 1; /* lws's, dropped in gw_session_closed */
    s->v1 = v1;
    /* Plain sockets are written directly (writer.c); TLS goes through lws. */
    s->io->fd = lws_is_ssl(wsi) ? -1 : (int)lws_get_socket_fd(wsi);
    cm_random_hex(s->id, GW_SESSION_ID_LEN / 2);
    s->tokens = (double)srv->cfg.rate_burst;
    s->tokens_ms = cm_mono_ms();
    s->join_tokens = (double)srv->cfg.joins_per_sec;
    s->join_tokens_ms = s->tokens_ms;
    if (lws_get_peer_simple(wsi, s->peer, sizeof(s->peer)) == NULL)
        strcpy(s->peer, "?");
    gw_ip_acquire(srv, s->peer);
    HASH_ADD_STR(srv->sessions, id, s);
    gw_keepalive_add(s);
    srv->nsessions++;
    srv->m.connections_total++;
    return s;
}

struct gw_session *gw_session_ref(struct gw_session *s)
{
    s->refs++;
    return s;
}

void gw_session_unref(struct gw_session *s)
{
    if (!s || --s->refs > 0)
        return;
    gw_pvec_clear(&s->io->queue);
    free(s->claims);
    if (s->io->rx) {
        cm_sbuf_free(s->io->rx);
        free(s->io->rx);
    }
    free(s);
}

void gw_session_kill(struct gw_session *s)
{
    /* Synchronously: from our own timers and the turn's end nothing wakes
     * lws to run an async kill, so a dead or mute peer would linger. The
     * close callback runs before this returns (gw_session_closed). */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_SYNC);
}

void gw_session_cut(struct gw_session *s)
{
    if (!s->wsi)
        return;
    /* A timeout that is due at once: lws closes such a connection as dead,
     * without flushing what it holds or waiting for a close handshake.
     * lws runs its due timeouts after servicing any of its sockets, so its
     * wake-up pipe is poked to make that happen this loop turn. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    lws_cancel_service(lws_get_context(s->wsi));
}

void gw_session_overflow(struct gw_session *s)
{
    /* The receiver is the boss, but not of our memory: a client that cannot
     * keep up is closed rather than buffered without bound. */
    if (!s->wsi || s->io->close_code || gw_session_lws_closing(s))
        return; /* already closing: counted once */
    s->srv->m.slow_closes++;
    CM_WARN("session %s (%s): more than %lld bytes waiting, closing 1013", s->id, s->peer,
            s->srv->cfg.send_queue_bytes);
    gw_session_close(s, GW_CLOSE_TOO_SLOW, "too slow", false);
}

void gw_session_send_sbuf(struct gw_session *s, struct cm_sbuf *b)
{
    struct gw_payload *p = gw_payload_new(cm_sbuf_data(b), b->len);
    gw_session_send(s, p);
    gw_payload_unref(p);
}

void gw_session_send_error(struct gw_session *s, const char *id, enum cm_err code,
                           const char *message)
{
    s->srv->m.errors[code]++;
    if (s->legacy)
        return; /* a legacy page renders every frame as a chat line */
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_error(&b, id, code, message);
    gw_session_send_sbuf(s, &b);
    cm_sbuf_free(&b);
}

void gw_session_close(struct gw_session *s, int code, const char *why, bool after_flush)
{
    if (!s->wsi || s->io->close_code || gw_session_lws_closing(s))
        return; /* a close is already under way */
    s->io->close_code = code;
    s->io->close_why = why;
    s->io->close_after_flush = after_flush;
    s->io->we_closed = true;
    if (!after_flush)
        gw_pvec_clear(&s->io->queue);
    gw_session_mark_dirty(s);
    gw_session_ending(s);
}

void gw_session_ending(struct gw_session *s)
{
    struct gw_server *srv = s->srv;
    if (!s->wsi || s->io->ending || srv->stopping)
        return;
    gw_keepalive_closing(s);
    s->io->ending = true;
    s->io->ending_next = srv->ending;
    srv->ending = gw_session_ref(s); /* the list holds a reference */
    gw_session_mark_dirty(s);        /* and the turn's end comes without waiting */
}

/* What gw_session_ending began, now that no fan-out or dispatch is walking
 * the memberships: the leaves go out, the buffers are freed, and our close
 * frame is handed over at once. Written behind whatever is already on its
 * way (lws keeps what the socket did not take and appends to it), the close
 * frame reaches a peer that reads again before the deadline; one that does
 * not is cut by keepalive.c. */
static void session_end(struct gw_session *s)
{
    const char *reason = gw_session_end_reason(s);
    gw_members_leave_all(s, reason);
    gw_keepalive_rx_end(s);
    if (s->io->rx) {
        cm_sbuf_free(s->io->rx);
        free(s->io->rx);
        s->io->rx = NULL;
    }
    if (gw_session_lws_closing(s))
        gw_pvec_clear(&s->io->queue); /* nothing of ours may follow lws's close frame */
    else if (s->io->close_code && !s->io->close_after_flush && gw_session_flush(s) != 0)
        gw_session_cut(s);
}

void gw_sessions_end(struct gw_server *srv)
{
    while (srv->ending) {
        struct gw_session *s = srv->ending;
        srv->ending = s->io->ending_next;
        s->io->ending_next = NULL;
        if (s->wsi) /* else lws's close callback detached it already */
            session_end(s);
        gw_session_unref(s);
    }
}

const char *gw_session_end_reason(const struct gw_session *s)
{
    if (s->io->we_closed)
        return s->io->close_code == LWS_CLOSE_STATUS_GOINGAWAY ? "closed" : "faulted";
    if (s->io->peer_closed)
        return "closed";
    int64_t silent_ms = cm_mono_ms() - s->io->last_rx_ms;
    if (silent_ms + 500 >= s->srv->cfg.ping_timeout_s * 1000)
        return "timeout";
    return "faulted";
}

bool gw_session_lws_closing(const struct gw_session *s)
{
    return s->io->peer_closed || s->io->lws_closing;
}

void gw_session_closed(struct gw_session *s, const char *reason)
{
    struct gw_server *srv = s->srv;
    CM_DEBUG("session %s (%s) closed: %s", s->id, s->peer, reason);
    gw_members_leave_all(s, reason);
    s->wsi = NULL;
    gw_keepalive_remove(s);
    gw_pvec_clear(&s->io->queue);
    HASH_DEL(srv->sessions, s);
    srv->nsessions--;
    gw_ip_release(srv, s->peer);
    gw_session_unref(s);
}
