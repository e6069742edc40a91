/*
 * HTTP on the gateway's port: health, readiness, metrics, and the room API.
 * Static files (the web client) are served by an lws mount; the endpoints
 * here are callback mounts. An answer that needs Redis is written when the
 * reply arrives: the request is ref-counted so a reply that outlives its
 * connection is dropped safely.
 */
#include "gw_server.h"

#include "cm_keys.h"
#include "cm_log.h"
#include "cm_metrics.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_DEADLINE_S 10 /* a request's whole body must arrive within this */

struct gw_http_req {
    struct gw_server *srv;
    struct lws *wsi; /* NULL once the connection closed */
    unsigned refs;
    int status;
    const char *ctype;
    struct cm_sbuf body;
    bool ready;        /* status and body are final */
    bool headers_sent;
    bool history;      /* room API: history (else members) */
    bool push;         /* POST .../messages: the body is being read */
    bool close_after;  /* a body we do not read may follow: no keep-alive */
    bool body_done;    /* the whole request body has arrived */
    struct cm_sbuf in; /* the request body */
    char room[CM_ROOM_MAX + 1];
    char cursor[CM_CURSOR_MAX + 1]; /* members: the page to read */
};

static struct gw_http_req *req_new(struct gw_server *srv, struct lws *wsi)
{
    struct gw_http_req *r = cm_calloc(1, sizeof(*r));
    r->srv = srv;
    r->wsi = wsi;
    r->refs = 1;
    cm_sbuf_init(&r->body, 0);
    cm_sbuf_init(&r->in, 0);
    return r;
}

static void req_unref(struct gw_http_req *r)
{
    if (!r || --r->refs > 0)
        return;
    cm_sbuf_free(&r->body);
    cm_sbuf_free(&r->in);
    free(r);
}

/* Sets the answer and asks lws for a writable callback to send it. */
static void req_answer(struct gw_http_req *r, int status, const char *ctype)
{
    r->status = status;
    r->ctype = ctype;
    r->ready = true;
    if (r->wsi)
        lws_callback_on_writable(r->wsi);
}

static void req_json_error(struct gw_http_req *r, int status, const char *code, const char *msg)
{
    cm_sbuf_reset(&r->body);
    cm_sbuf_puts(&r->body, "{\"error\":");
    cm_sbuf_put_json_str(&r->body, code, strlen(code));
    cm_sbuf_puts(&r->body, ",\"message\":");
    cm_sbuf_put_json_str(&r->body, msg, strlen(msg));
    cm_sbuf_puts(&r->body, "}");
    req_answer(r, status, "application/json");
}

/* ---- metrics ---- */

static void render_metrics(struct gw_server *srv, struct cm_sbuf *b)
{
    const struct gw_metrics *m = &srv->m;
    cm_metric(b, "chat_gateway_connections", "gauge", "Open WebSocket connections.", srv->nsessions);
    cm_metric(b, "chat_gateway_connections_total", "counter", "WebSocket connections accepted.",
           m->connections_total);
    cm_metric(b, "chat_gateway_rooms", "gauge", "Rooms with a local member.", HASH_COUNT(srv->rooms));
    cm_metric(b, "chat_gateway_frames_in_total", "counter", "Frames received from clients.",
           m->frames_in);
    cm_metric(b, "chat_gateway_frames_out_total", "counter", "Frames written to clients.",
           m->frames_out);
    cm_metric(b, "chat_gateway_writes_total", "counter",
           "Socket writes to WebSocket clients (frames are coalesced per write).", m->writes);
    cm_metric(b, "chat_gateway_short_writes_total", "counter",
           "Socket writes not taken whole (the client reads slower than it is sent to).",
           m->short_writes);
    cm_metric(b, "chat_gateway_pings_total", "counter",
           "Keepalive pings sent to connections silent for --ping-interval-s.", m->pings);
    cm_metric(b, "chat_gateway_ping_timeouts_total", "counter",
           "Connections hung up after --ping-timeout-s of silence.", m->ping_timeouts);
    cm_metric(b, "chat_gateway_close_timeouts_total", "counter",
           "Connections cut because their close did not finish within 5 s.", m->close_timeouts);
    cm_metric(b, "chat_gateway_frame_timeouts_total", "counter",
           "Connections closed with 1008 because a message took over 10 s to arrive.",
           m->frame_timeouts);
    cm_metric(b, "chat_gateway_publishes_total", "counter", "Chat messages stored and published.",
           m->publishes);
    cm_metric(b, "chat_gateway_publish_failures_total", "counter",
           "Chat messages refused because Redis could not store them.", m->publish_failures);
    cm_metric(b, "chat_gateway_joins_total", "counter", "Room joins completed.", m->joins);
    cm_metric(b, "chat_gateway_room_messages_total", "counter",
           "Frames received from room channels.", m->room_messages);
    cm_metric(b, "chat_gateway_deliveries_total", "counter", "Room frames queued to local members.",
           m->deliveries);
    cm_metric(b, "chat_gateway_slow_closes_total", "counter",
           "Connections closed with 1013 because their send queue overflowed.", m->slow_closes);
    cm_metric(b, "chat_gateway_presence_diffs_total", "counter",
           "presence_diff frames made, one per room per tick with presence to send.",
           m->presence_diffs);
    cm_metric(b, "chat_gateway_redis_reconnects_total", "counter", "Redis links lost and redone.",
           gw_store_reconnects(srv->store));
    cm_metric(b, "chat_gateway_redis_connected", "gauge", "1 when both Redis links are ready.",
           gw_store_ready(srv->store));
    cm_metric(b, "chat_gateway_event_outbox", "gauge",
              "Events and registry writes that Redis has not answered yet.",
              gw_store_backlog(srv->store));
    cm_metric(b, "chat_gateway_event_outbox_retries_total", "counter",
              "Events and registry writes Redis refused for a while (READONLY, OOM, ...) and "
              "that were sent again.",
              gw_store_backlog_retries(srv->store));
    cm_metric(b, "chat_gateway_draining", "gauge", "1 while draining.", srv->draining);
    static const char *const refused[] = {"per_ip", "max_connections", "origin", "auth"};
    cm_metric_header(b, "chat_gateway_refused_total", "counter",
                     "WebSocket upgrades refused, by reason.");
    for (int i = 0; i < GW_REFUSED__COUNT; i++)
        cm_sbuf_printf(b, "chat_gateway_refused_total{reason=\"%s\"} %llu\n", refused[i],
                       (unsigned long long)m->refused[i]);
    const struct cm_limits *l = &srv->limits;
    const struct { const char *name; long long v; } limits[] = {
        {"message_bytes", l->message_bytes}, {"frame_bytes", l->frame_bytes},
        {"rate_per_sec", l->rate_per_sec}, {"rate_burst", l->rate_burst},
        {"rooms", l->rooms}, {"joins_per_sec", l->joins_per_sec},
        {"send_queue_bytes", l->send_queue_bytes}, {"max_conns_per_ip", l->max_conns_per_ip},
        {"max_connections", l->max_connections}, {"max_bad_frames", srv->cfg.max_bad_frames},
        {"members_page", l->members_page}, {"presence_batch_above", l->presence_batch_above},
        {"presence_tick_ms", l->presence_tick_ms}};
    cm_metric_header(b, "chat_gateway_limit", "gauge", "Configured limits (0: off).");
    for (size_t i = 0; i < CM_ARRAY_LEN(limits); i++)
        cm_sbuf_printf(b, "chat_gateway_limit{name=\"%s\"} %lld\n", limits[i].name, limits[i].v);
    cm_metric_header(b, "chat_gateway_errors_total", "counter", "Error frames sent, by code.");
    for (int i = 1; i < CM_ERR__COUNT; i++)
        cm_sbuf_printf(b, "chat_gateway_errors_total{code=\"%s\"} %llu\n",
                       cm_err_name((enum cm_err)i), (unsigned long long)m->errors[i]);
}

/* ---- room API ---- */

/* {"room":...,"messages":[...]} */
static void api_answer(struct gw_http_req *req, const struct gw_strs *items)
{
    cm_sbuf_reset(&req->body);
    cm_sbuf_puts(&req->body, "{\"room\":");
    cm_sbuf_put_json_str(&req->body, req->room, strlen(req->room));
    cm_sbuf_puts(&req->body, ",\"messages\":");
    gw_strs_put_json(&req->body, items);
    cm_sbuf_puts(&req->body, "}");
    req_answer(req, 200, "application/json");
}

/* {"room":...,"members":[...],"count":N}, and "cursor" when more pages follow. */
static void api_answer_members(struct gw_http_req *req, const struct gw_store_members *page)
{
    cm_sbuf_reset(&req->body);
    cm_sbuf_puts(&req->body, "{\"room\":");
    cm_sbuf_put_json_str(&req->body, req->room, strlen(req->room));
    cm_sbuf_puts(&req->body, ",\"members\":");
    cm_sbuf_puts(&req->body, page->json);
    cm_sbuf_printf(&req->body, ",\"count\":%lld", (long long)page->count);
    if (strcmp(page->cursor, "0") != 0)
        cm_sbuf_printf(&req->body, ",\"cursor\":\"%s\"", page->cursor);
    cm_sbuf_puts(&req->body, "}");
    req_answer(req, 200, "application/json");
}

static void on_api_history(void *priv, enum gw_store_status status,
                           const struct gw_store_history *h)
{
    struct gw_http_req *req = priv;
    if (status == GW_STORE_OK)
        api_answer(req, &h->items);
    else
        req_json_error(req, 503, "unavailable", "the broker is unreachable");
    req_unref(req);
}

static void on_api_members(void *priv, enum gw_store_status status,
                           const struct gw_store_members *members)
{
    struct gw_http_req *req = priv;
    if (status == GW_STORE_OK)
        api_answer_members(req, members);
    else
        req_json_error(req, 503, "unavailable", "the broker is unreachable");
    req_unref(req);
}

static long long url_arg(struct lws *wsi, const char *name, long long def, long long lo,
                         long long hi, bool *bad)
{
    char buf[48];
    /* lws copies "name=value" into buf and points at the value. */
    const char *val = lws_get_urlarg_by_name(wsi, name, buf, sizeof(buf));
    if (!val)
        return def;
    char *end;
    long long v = strtoll(val, &end, 10);
    if (end == val || *end || v < lo || v > hi)
        *bad = true;
    return v;
}

/* ?cursor= of a members page: 1-20 digits, "0" when absent; false if bad. */
static bool url_cursor(struct lws *wsi, char *out)
{
    char buf[48];
    const char *val = lws_get_urlarg_by_name(wsi, "cursor=", buf, sizeof(buf));
    size_t n = val ? strlen(val) : 0;
    if (!val) {
        strcpy(out, "0");
        return true;
    }
    if (n < 1 || n > CM_CURSOR_MAX || strspn(val, "0123456789") != n)
        return false;
    memcpy(out, val, n + 1);
    return true;
}

static bool key_ok(struct gw_server *srv, struct lws *wsi);

/* With authentication on, reading a room over HTTP takes what joining it
 * takes (a token whose rooms claim allows it) or the server's API key. */
static bool may_read_room(struct gw_http_req *req)
{
    struct gw_server *srv = req->srv;
    struct cm_jwt_claims claims;
    if (!srv->cfg.auth_secret || (srv->cfg.api_key && key_ok(srv, req->wsi)))
        return true;
    if (gw_auth_check(srv, req->wsi, &claims) != 0) {
        req_json_error(req, 401, "unauthorized", "a valid token is required");
        return false;
    }
    if (!cm_jwt_room_allowed(&claims, req->room)) {
        req_json_error(req, 403, "forbidden", "your token does not allow this room");
        return false;
    }
    return true;
}

/* GET /api/rooms/{room}/history|members */
static void api_rooms(struct gw_http_req *req, const char *path)
{
    struct gw_server *srv = req->srv;
    const char *room = path + strlen("/api/rooms/");
    const char *slash = strchr(room, '/');
    if (!slash || !cm_room_valid(room, (size_t)(slash - room))) {
        req_json_error(req, 404, "invalid_room", "no such endpoint or invalid room name");
        return;
    }
    snprintf(req->room, sizeof(req->room), "%.*s", (int)(slash - room), room);
    if (!may_read_room(req))
        return;
    bool history = strcmp(slash, "/history") == 0;
    if (!history && strcmp(slash, "/members") != 0) {
        req_json_error(req, 404, "not_found", "no such endpoint");
        return;
    }
    long long limit = 0, before = 0;
    if (history) {
        bool bad = false;
        limit = url_arg(req->wsi, "limit=", CM_HISTORY_DEFAULT, 1, CM_HISTORY_LIMIT, &bad);
        before = url_arg(req->wsi, "before=", 0, 1, CM_SEQ_MAX, &bad);
        if (bad) {
            req_json_error(req, 400, "bad_request", "limit must be 1-500, before a seq >= 1");
            return;
        }
    } else if (!url_cursor(req->wsi, req->cursor)) {
        req_json_error(req, 400, "bad_request", "cursor must be 1-20 digits");
        return;
    }
    req->refs++;
    int rc = history ? gw_store_history_before(srv->store, req->room, before, limit,
                                               on_api_history, req)
                     : gw_store_members(srv->store, req->room, req->cursor, on_api_members, req);
    if (rc != 0) {
        req->refs--;
        req_json_error(req, 503, "unavailable", "the broker is unreachable");
    }
}

/* ---- server push: POST /api/rooms/{room}/messages ---- */

static bool key_ok(struct gw_server *srv, struct lws *wsi)
{
    char auth[512];
    size_t klen = strlen(srv->cfg.api_key);
    if (lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION) <= 7 ||
        strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != klen)
        return false;
    return CRYPTO_memcmp(auth + 7, srv->cfg.api_key, klen) == 0; /* constant time */
}

/* Starts a push: checks the key; the body arrives in HTTP_BODY callbacks. */
static void push_start(struct gw_http_req *req, const char *path)
{
    struct gw_server *srv = req->srv;
    const char *room = path + strlen("/api/rooms/");
    const char *slash = strchr(room, '/');
    if (!srv->cfg.api_key) {
        req_json_error(req, 404, "not_found", "server push is not enabled (no --api-key)");
    } else if (!slash || strcmp(slash, "/messages") != 0 ||
               !cm_room_valid(room, (size_t)(slash - room))) {
        req_json_error(req, 404, "invalid_room", "no such endpoint or invalid room name");
    } else if (!key_ok(srv, req->wsi)) {
        req_json_error(req, 401, "unauthorized", "a valid API key is required");
    } else if (lws_hdr_total_length(req->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
        req_json_error(req, 411, "bad_request", "a Content-Length is required");
    } else {
        snprintf(req->room, sizeof(req->room), "%.*s", (int)(slash - room), room);
        req->push = true;
    }
}

static void on_pushed(void *priv, enum gw_store_status status, int64_t seq, bool replicated)
{
    struct gw_http_req *req = priv;
    if (status == GW_STORE_OK) {
        req->srv->m.publishes++;
        cm_sbuf_reset(&req->body);
        cm_sbuf_puts(&req->body, "{\"room\":");
        cm_sbuf_put_json_str(&req->body, req->room, strlen(req->room));
        cm_sbuf_printf(&req->body, ",\"seq\":%lld%s}", (long long)seq,
                       replicated ? "" : ",\"replicated\":false");
        req_answer(req, 200, "application/json");
    } else {
        req->srv->m.publish_failures++;
        req_json_error(req, 503, "unavailable", "the message could not be stored");
    }
    req_unref(req);
}

static void push_body(struct gw_http_req *req, const void *in, size_t len)
{
    if (!req->push)
        return;
    if (req->in.len + len > (size_t)req->srv->cfg.frame_bytes) {
        req->push = false;
        req->close_after = true;
        req_json_error(req, 413, "too_large", "the request body is too large");
        return;
    }
    cm_sbuf_append(&req->in, in, len);
}

static void push_complete(struct gw_http_req *req)
{
    struct gw_server *srv = req->srv;
    struct cm_frame f;
    struct cm_decode_error err;
    if (!req->push)
        return;
    req->push = false;
    if (cm_push_decode(cm_sbuf_data(&req->in), req->in.len, (size_t)srv->cfg.message_bytes, &f,
                       &err) != 0) {
        srv->m.errors[err.code]++;
        req_json_error(req, 400, cm_err_name(err.code), err.message);
    } else {
        struct cm_sbuf tail;
        cm_sbuf_init(&tail, 0);
        cm_encode_message_tail(&tail, req->room, f.nickname, f.message, f.message_len);
        req->refs++;
        if (gw_store_publish(srv->store, req->room, cm_sbuf_data(&tail), tail.len, on_pushed,
                             req) != 0) {
            req->refs--;
            req_json_error(req, 503, "unavailable", "the broker is unreachable");
        }
        cm_sbuf_free(&tail);
    }
    cm_frame_clear(&f);
}

static void route(struct gw_http_req *req, const char *path, bool get)
{
    struct gw_server *srv = req->srv;
    if (strncmp(path, "/api/rooms/", 11) == 0) {
        if (strstr(path, "/messages") && !get) {
            push_start(req, path);
            return;
        }
        if (!get) {
            req_json_error(req, 405, "bad_request", "method not allowed");
            return;
        }
        api_rooms(req, path);
        return;
    }
    if (!get) {
        req_json_error(req, 405, "bad_request", "method not allowed");
    } else if (strcmp(path, "/healthz") == 0) {
        cm_sbuf_puts(&req->body, "ok\n");
        req_answer(req, 200, "text/plain");
    } else if (strcmp(path, "/readyz") == 0) {
        bool ready = gw_store_ready(srv->store) && !srv->draining;
        cm_sbuf_puts(&req->body, ready ? "ready\n" : srv->draining ? "draining\n"
                                                                    : "redis unavailable\n");
        req_answer(req, ready ? 200 : 503, "text/plain");
    } else if (strcmp(path, "/metrics") == 0) {
        render_metrics(srv, &req->body);
        req_answer(req, 200, "text/plain; version=0.0.4");
    } else {
        req_json_error(req, 404, "not_found", "no such endpoint");
    }
}

static int http_request(struct gw_server *srv, struct lws *wsi, struct gw_pss *pss)
{
    char path[256];
    bool get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    /* lws restarts its own timeout on every chunk of a body, so a body
     * trickled a byte at a time would hold the connection for ever: give
     * the whole request a deadline of its own (LWS_CALLBACK_TIMER). */
    if (!get)
        lws_set_timer_usecs(wsi, (lws_usec_t)BODY_DEADLINE_S * LWS_USEC_PER_SEC);
    int n = lws_hdr_copy(wsi, path, sizeof(path), get ? WSI_TOKEN_GET_URI : WSI_TOKEN_POST_URI);
    if (n < 0) {
        lws_return_http_status(wsi, HTTP_STATUS_REQ_URI_TOO_LONG, NULL);
        return -1;
    }
    req_unref(pss->http);
    pss->http = req_new(srv, wsi);
    route(pss->http, path, get);
    /* Answered before its body was read: close after answering rather than
     * parse the rest of the body as the next request. */
    pss->http->close_after = !get && !pss->http->push;
    return 0;
}

/* Writes the headers, then (on the next writable) the body. */
static int http_writable(struct gw_pss *pss, struct lws *wsi)
{
    struct gw_http_req *req = pss->http;
    if (!req || !req->ready)
        return 0;
    if (!req->headers_sent) {
        unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
                                          *end = buf + sizeof(buf) - 1;
        if (lws_add_http_common_headers(wsi, (unsigned int)req->status, req->ctype,
                                        req->body.len, &p, end) ||
            lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                        (const unsigned char *)"no-store", 8, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
            return -1;
        req->headers_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    size_t len = req->body.len;
    unsigned char *out = cm_malloc(LWS_PRE + len + 1);
    memcpy(out + LWS_PRE, cm_sbuf_data(&req->body), len);
    int n = lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
    free(out);
    bool close = req->close_after;
    pss->http = NULL;
    req->wsi = NULL;
    req_unref(req);
    if (n < 0 || close || lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct gw_pss *pss = user;
    struct gw_server *srv = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_request(srv, wsi, pss);
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->http)
            push_body(pss->http, in, len);
        return 0;
    case LWS_CALLBACK_TIMER:
        /* lws 4.1 cannot cancel this timer (-1 fires it at once), so a
         * request whose body did arrive just ignores it. */
        if (pss && pss->http && !pss->http->body_done) {
            CM_DEBUG("HTTP request body not complete after %d s: closing", BODY_DEADLINE_S);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->http) {
            pss->http->body_done = true;
            push_complete(pss->http);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writable(pss, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss && pss->http) {
            pss->http->wsi = NULL;
            req_unref(pss->http);
            pss->http = NULL;
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

int gw_http_mounts_init(struct gw_server *srv, struct lws_context_creation_info *info)
{
    /* Longest match wins: the endpoints, then everything else from web root. */
    static struct lws_http_mount mounts[5];
    static const char *const dynamic[] = {"/healthz", "/readyz", "/metrics", "/api"};
    memset(mounts, 0, sizeof(mounts));
    for (int i = 0; i < 4; i++) {
        mounts[i].mount_next = &mounts[i + 1];
        mounts[i].mountpoint = dynamic[i];
        mounts[i].mountpoint_len = (unsigned char)strlen(dynamic[i]);
        mounts[i].origin = "http";
        mounts[i].origin_protocol = LWSMPRO_CALLBACK;
    }
    mounts[4].mountpoint = "/";
    mounts[4].mountpoint_len = 1;
    mounts[4].origin = srv->cfg.web_root;
    mounts[4].def = "index.html";
    mounts[4].origin_protocol = LWSMPRO_FILE;
    info->mounts = mounts;
    return 0;
}
