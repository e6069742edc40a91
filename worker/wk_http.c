/*
 * The worker's HTTP endpoints on --listen, with libevent's evhttp on the
 * worker's loop:
 *   GET /healthz  200 "ok" while the process runs
 *   GET /readyz   200 when both Redis routers are up (every slot has a
 *                 reachable primary) and every partition's consumer group
 *                 exists, and the worker is not shutting down; else 503
 *   GET /metrics  Prometheus text format
 * Anything else is 404 (405 for another method on a known path).
 */
#include "cm_config.h"
#include "cm_log.h"
#include "cm_metrics.h"
#include "wk_server.h"

#include <event2/buffer.h>
#include <event2/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *body = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add_printf(body, "%s\n", text);
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

static void metrics_render(const struct wk_server *srv, struct cm_sbuf *b)
{
    const struct wk_metrics *m = &srv->m;
    cm_metric_header(b, "chat_worker_events_total", "counter",
                     "Events applied and acknowledged, by type.");
    cm_sbuf_printf(b,
                   "chat_worker_events_total{type=\"join\"} %llu\n"
                   "chat_worker_events_total{type=\"leave\"} %llu\n",
                   m->events_join, m->events_leave);
    cm_metric(b, "chat_worker_events_invalid_total", "counter",
           "Malformed entries acknowledged without effect.", m->events_invalid);
    cm_metric(b, "chat_worker_events_dropped_total", "counter",
           "Entries acknowledged after an effect failed for good.", m->events_dropped);
    cm_metric(b, "chat_worker_events_claimed_total", "counter",
           "Entries claimed from idle consumers with XAUTOCLAIM.", m->events_claimed);
    cm_metric(b, "chat_worker_pending", "gauge",
           "Entries of the consumer group delivered but not acknowledged (last sweep).",
           (unsigned long long)(m->pending < 0 ? 0 : m->pending));
    cm_metric(b, "chat_worker_sweeps_total", "counter", "Sweep ticks run.", m->sweeps);
    cm_metric(b, "chat_worker_gateways_dead_total", "counter", "Gateways this worker declared dead.",
           m->gateways_dead);
    cm_metric(b, "chat_worker_stall_graces_total", "counter",
           "Gaps between sweeps (Redis stalled or unreachable, or no worker ran) after which "
           "no gateway was declared dead for one heartbeat timeout.",
           m->stall_graces);
    cm_metric(b, "chat_worker_rooms_expired_total", "counter",
           "Idle empty rooms whose keys were deleted.", m->rooms_expired);
    cm_metric(b, "chat_worker_history_trimmed_total", "counter", "History entries removed for age.",
           m->history_trimmed);
    cm_metric(b, "chat_worker_lag_ms", "gauge",
           "Age of the last acknowledged entry when it was acknowledged.",
           (unsigned long long)(m->lag_ms < 0 ? 0 : m->lag_ms));
    cm_metric(b, "chat_worker_inflight", "gauge", "Entries being applied.",
           (unsigned long long)(srv->ev.inflight < 0 ? 0 : srv->ev.inflight));
    cm_metric(b, "chat_worker_redis_connected", "gauge",
           "1 when both Redis connections are up, else 0.",
           wk_store_ready(srv->store) ? 1 : 0);
}

static void handle_metrics(struct wk_server *srv, struct evhttp_request *req)
{
    struct evbuffer *body = evbuffer_new();
    struct cm_sbuf text;
    cm_sbuf_init(&text, 0);
    metrics_render(srv, &text);
    evbuffer_add(body, cm_sbuf_data(&text), text.len);
    cm_sbuf_free(&text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct wk_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool known = path && (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
                          strcmp(path, "/metrics") == 0);

    if (!known) {
        reply_text(req, 404, "Not Found", "not found");
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, 405, "Method Not Allowed", "method not allowed");
    } else if (strcmp(path, "/healthz") == 0) {
        reply_text(req, 200, "OK", "ok");
    } else if (strcmp(path, "/readyz") == 0) {
        if (wk_server_ready(srv) && !srv->stopping)
            reply_text(req, 200, "OK", "ready");
        else
            reply_text(req, 503, "Service Unavailable", "not ready");
    } else {
        handle_metrics(srv, req);
    }
}

/* Logs where the server listens; with port 0 the kernel chose it. */
static void log_bound(struct evhttp_bound_socket *h, const char *host)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;
    socklen_t len = sizeof(addr);
    int port = 0;
    memset(&addr, 0, sizeof(addr));
    if (getsockname(evhttp_bound_socket_get_fd(h), &addr.sa, &len) == 0)
        port = ntohs(addr.sa.sa_family == AF_INET6 ? addr.in6.sin6_port : addr.in.sin_port);
    CM_INFO("http: listening on %s%s%s:%d", strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", port);
}

int wk_http_init(struct wk_server *srv)
{
    char host[256], err[128];
    int port;
    if (!srv->cfg.listen || srv->cfg.listen[0] == '\0')
        return 0;
    if (cm_hostport_parse(srv->cfg.listen, host, sizeof(host), &port, err, sizeof(err)) != 0) {
        CM_ERROR("http: --listen %s: %s", srv->cfg.listen, err);
        return -1;
    }
    srv->http = evhttp_new(srv->base);
    if (!srv->http)
        return -1;
    evhttp_set_max_headers_size(srv->http, 8192);
    evhttp_set_max_body_size(srv->http, 4096);
    evhttp_set_timeout(srv->http, 10);
    evhttp_set_gencb(srv->http, handle, srv);
    struct evhttp_bound_socket *h =
        evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
    if (!h) {
        CM_ERROR("http: cannot bind %s: %s", srv->cfg.listen, strerror(errno));
        return -1;
    }
    log_bound(h, host);
    return 0;
}

void wk_http_close(struct wk_server *srv)
{
    if (srv->http)
        evhttp_free(srv->http);
    srv->http = NULL;
}
