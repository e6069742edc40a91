/*
 * The libwebsockets side: context and vhost on the shared libuv loop, the
 * protocol callback (a dispatcher whose cases call named functions), frame
 * reassembly and size limits, keepalive, and draining.
 */
#include "gw_server.h"
#include "session_io.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

/* lws gives every WebSocket an rx buffer of this size for its whole life;
 * at the 4 KiB default it is most of an idle connection's memory. Frames
 * larger than it arrive in pieces, which ws_receive reassembles anyway, and
 * chat frames are mostly far smaller (measured: docs/PERFORMANCE.md). */
#define GW_RX_BUFFER 1024

/* The most lws writes to the socket at once. lws defaults to the rx buffer
 * size, which would cut every larger write (a coalesced TLS batch, a joined
 * frame with history, the rest of a direct write) into 1 KiB pieces, one
 * poll round each. Sending is not tied to any buffer of this size. */
#define GW_TX_PACKET (64 * 1024)

static struct gw_server *server_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

static int ws_established(struct gw_server *srv, struct lws *wsi, struct gw_pss *pss)
{
    /* lws copies the protocol table per vhost: compare names, not pointers. */
    bool v1 = strcmp(lws_get_protocol(wsi)->name, "chat.v1") == 0;
    struct cm_jwt_claims claims;
    /* The headers are still there: the filter's verdict on the token is
     * made again (one HMAC) to keep what it grants with the session. */
    if (srv->cfg.auth_secret && gw_auth_check(srv, wsi, &claims) != 0)
        return -1;
    struct gw_session *s = gw_session_new(srv, wsi, v1);
    pss->session = s;
    if (srv->cfg.auth_secret) {
        s->claims = cm_malloc(sizeof(*s->claims));
        *s->claims = claims;
    }
    CM_DEBUG("session %s from %s (%s)", s->id, s->peer, v1 ? "chat.v1" : "no subprotocol");
    if (v1) {
        struct cm_sbuf b;
        cm_sbuf_init(&b, 0);
        cm_encode_welcome(&b, s->id, srv->cfg.id, &srv->limits);
        gw_session_send_sbuf(s, &b);
        cm_sbuf_free(&b);
    }
    return 0;
}

static int close_now(struct gw_session *s, int code, const char *why)
{
    s->io->we_closed = true;
    s->io->close_code = code;
    s->io->close_why = why;
    lws_close_reason(s->wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
    return -1;
}

/* Reassembles a message from lws's fragments and dispatches it whole.
 * Returns -1 to close the connection. */
static int ws_receive(struct gw_session *s, const char *in, size_t len)
{
    struct lws *wsi = s->wsi;
    bool complete = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    size_t have = s->io->rx ? s->io->rx->len : 0;

    gw_keepalive_heard(s);
    if (s->io->close_code || s->io->ending)
        return 0; /* closing: nothing it sends is acted on */
    if (have + len > (size_t)s->srv->cfg.frame_bytes)
        return close_now(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "frame too large");
    if (complete && !s->io->rx) {
        /* The common case, a whole frame in one piece: no copy. */
        if (lws_frame_is_binary(wsi))
            gw_dispatch_binary(s);
        else
            gw_dispatch_frame(s, in, len);
        return 0;
    }
    if (!s->io->rx) {
        s->io->rx = cm_malloc(sizeof(*s->io->rx));
        cm_sbuf_init(s->io->rx, 0);
        gw_keepalive_rx_begin(s); /* it must be whole within GW_FRAME_TIMEOUT_MS */
    }
    cm_sbuf_append(s->io->rx, in, len);
    if (!complete)
        return 0;
    gw_keepalive_rx_end(s);
    if (lws_frame_is_binary(wsi))
        gw_dispatch_binary(s);
    else
        gw_dispatch_frame(s, cm_sbuf_data(s->io->rx), s->io->rx->len);
    cm_sbuf_free(s->io->rx);
    free(s->io->rx);
    s->io->rx = NULL;
    return 0;
}

/* The peer sent a close frame. When it answers ours, the handshake is
 * complete and the connection ends now: lws, which did not see our close
 * frame go out (writer.c writes it), would otherwise answer with a second
 * close frame. Returns -1 to make lws close the socket. */
static int ws_peer_closed(struct gw_session *s)
{
    s->io->peer_closed = true;
    gw_session_ending(s);
    return s->io->close_sent ? -1 : 0;
}

static int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    struct gw_pss *pss = user;
    struct gw_server *srv = server_of(wsi);

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return gw_admission_filter(srv, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(srv, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return pss->session ? ws_receive(pss->session, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss->session)
            gw_keepalive_heard(pss->session);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss->session ? gw_session_writable(pss->session) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return pss->session ? ws_peer_closed(pss->session) : 0;
    case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
        /* lws 4.1 says this as it begins a close, before it writes its
         * close frame (when it closes on its own: nothing else says so). */
        if (pss && pss->session) {
            pss->session->io->lws_closing = true;
            gw_session_ending(pss->session);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss->session) {
            gw_session_closed(pss->session, gw_session_end_reason(pss->session));
            pss->session = NULL;
        }
        return 0;
    default:
        return gw_http_callback(wsi, reason, user, in, len);
    }
}

int gw_ws_start(struct gw_server *srv)
{
    static struct lws_protocols protocols[] = {
        /* [0] serves HTTP and WebSockets that offer no subprotocol (legacy
         * pages); [1] those that negotiate chat.v1 and get `welcome`. */
        {"http", gw_ws_callback, sizeof(struct gw_pss), GW_RX_BUFFER, 0, NULL, GW_TX_PACKET},
        {"chat.v1", gw_ws_callback, sizeof(struct gw_pss), GW_RX_BUFFER, 0, NULL, GW_TX_PACKET},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    /* Keepalive is ours (keepalive.c): a policy with no hang-up time keeps
     * lws from arming a validity timer per connection. */
    static const lws_retry_bo_t no_validity_timers;
    struct lws_context_creation_info info;
    void *loops[] = {srv->loop};

    memset(&info, 0, sizeof(info));
    info.port = srv->listen_port;
    info.iface = srv->listen_host;
    info.protocols = protocols;
    info.user = srv;
    info.pcontext = &srv->lws; /* set to NULL by lws when fully destroyed */
    info.foreign_loops = loops;
    info.retry_and_idle_policy = &no_validity_timers;
    info.timeout_secs = 10; /* handshakes and slow HTTP requests */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    if (srv->cfg.tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->cfg.tls_cert;
        info.ssl_private_key_filepath = srv->cfg.tls_key;
    }
    if (strchr(srv->listen_host, ':'))
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    gw_http_mounts_init(srv, &info);

    srv->lws = lws_create_context(&info);
    if (!srv->lws) {
        CM_ERROR("cannot listen on %s", srv->cfg.listen);
        return -1;
    }
    CM_INFO("gateway %s listening on %s (%s://%s/ws)", srv->cfg.id, srv->cfg.listen,
            srv->cfg.tls_cert ? "wss" : "ws", srv->cfg.listen);
    return 0;
}

void gw_ws_stop(struct gw_server *srv)
{
    /* With connections still open, lws 4.1 on a foreign loop only starts
     * destroying here; the rest waits for gw_ws_destroy_finish once the loop
     * has run their close callbacks. */
    if (srv->lws)
        lws_context_destroy(srv->lws);
}

void gw_ws_destroy_finish(struct gw_server *srv)
{
    /* lws writes NULL through info.pcontext when the context is gone; if it
     * is not, the second call completes it (lws's documented sequence). */
    if (srv->lws)
        lws_context_destroy(srv->lws);
    srv->lws = NULL;
}

void gw_ws_tell_reconnect(struct gw_server *srv)
{
    struct gw_session *s, *tmp;
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    HASH_ITER(hh, srv->sessions, s, tmp) {
        if (!s->legacy && s->wsi) {
            /* Spread the reconnects so the other gateways are not hit by
             * every client in the same instant. */
            cm_sbuf_reset(&b);
            cm_encode_reconnect(&b, "shutdown", 100 + rand() % 900);
            gw_session_send_sbuf(s, &b);
        }
    }
    cm_sbuf_free(&b);
}

void gw_ws_close_all(struct gw_server *srv)
{
    struct gw_session *s, *tmp;
    HASH_ITER(hh, srv->sessions, s, tmp) {
        gw_session_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "gateway draining", true);
    }
}
