/*
 * Who may open a WebSocket: checked at the upgrade, before any frame, and
 * answered with a plain HTTP status when refused. In order: the gateway's
 * own state (draining, at --max-connections: 503), the Origin (cross-site
 * WebSocket hijacking: 403), the peer address (--max-conns-per-ip: 429) and
 * the token (--auth-secret: 401). WebSockets are answered at /ws and at
 * /chatservice, the classic chat page's own path.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct gw_ip {
    char addr[64];
    unsigned conns;
    UT_hash_handle hh;
};

/* Whether origin is one of the comma-separated list's exact entries. */
static bool origin_listed(const char *list, const char *origin)
{
    size_t n = strlen(origin);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && strncasecmp(p, origin, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* classic: the upgrade is at /chatservice, the classic page's path. */
static bool origin_allowed(struct gw_server *srv, struct lws *wsi, bool classic)
{
    char origin[256], host[256];
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return true; /* not a browser: no cross-site request to refuse */
    if (srv->cfg.allowed_origins)
        return strcmp(srv->cfg.allowed_origins, "*") == 0 ||
               origin_listed(srv->cfg.allowed_origins, origin);
    /* The classic page is opened as a local file, whose Origin is "null".
     * No credential is ambient here (tokens travel in the URL or a header,
     * never in cookies), so letting it in grants nothing that a script
     * outside a browser could not do; docs/SECURITY.md has the reasoning
     * and the one case it does not cover. */
    if (classic && strcmp(origin, "null") == 0)
        return true;
    /* Default: the page must come from this very host (scheme://Host). */
    const char *sep = strstr(origin, "://");
    if (!sep || lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
        return false;
    return strcasecmp(sep + 3, host) == 0;
}

/* Copies the bearer token from ?token= or the Authorization header. */
static const char *find_token(struct lws *wsi, char *buf, size_t len)
{
    const char *t = lws_get_urlarg_by_name(wsi, "token=", buf, (int)len);
    if (t && *t)
        return t;
    if (lws_hdr_copy(wsi, buf, (int)len, WSI_TOKEN_HTTP_AUTHORIZATION) > 7 &&
        strncasecmp(buf, "Bearer ", 7) == 0)
        return buf + 7;
    return NULL;
}

int gw_auth_check(struct gw_server *srv, struct lws *wsi, struct cm_jwt_claims *claims)
{
    char buf[4200];
    const char *why = "no token";
    const char *token = find_token(wsi, buf, sizeof(buf));
    if (token && cm_jwt_verify(token, strlen(token), srv->cfg.auth_secret, cm_now_ms() / 1000,
                               srv->cfg.auth_skew_s, claims, &why) == 0)
        return 0;
    CM_DEBUG("refused a WebSocket: %s", why);
    return -1;
}

static struct gw_ip *ip_find(struct gw_server *srv, const char *addr)
{
    struct gw_ip *ip;
    HASH_FIND_STR(srv->ips, addr, ip);
    return ip;
}

void gw_ip_acquire(struct gw_server *srv, const char *addr)
{
    struct gw_ip *ip = ip_find(srv, addr);
    if (!ip) {
        ip = cm_calloc(1, sizeof(*ip));
        snprintf(ip->addr, sizeof(ip->addr), "%s", addr);
        HASH_ADD_STR(srv->ips, addr, ip);
    }
    ip->conns++;
}

void gw_ip_release(struct gw_server *srv, const char *addr)
{
    struct gw_ip *ip = ip_find(srv, addr);
    if (ip && --ip->conns == 0) {
        HASH_DEL(srv->ips, ip);
        free(ip);
    }
}

/* Returns 0 to admit, or the HTTP status to refuse with. */
static int admit(struct gw_server *srv, struct lws *wsi, bool classic)
{
    char addr[64];
    struct cm_jwt_claims claims;
    if (srv->closing)
        return HTTP_STATUS_SERVICE_UNAVAILABLE;
    if (srv->nsessions >= (size_t)srv->cfg.max_connections) {
        srv->m.refused[GW_REFUSED_MAX_CONNECTIONS]++;
        return HTTP_STATUS_SERVICE_UNAVAILABLE;
    }
    if (!origin_allowed(srv, wsi, classic)) {
        srv->m.refused[GW_REFUSED_ORIGIN]++;
        return HTTP_STATUS_FORBIDDEN;
    }
    if (srv->cfg.max_conns_per_ip && lws_get_peer_simple(wsi, addr, sizeof(addr))) {
        struct gw_ip *ip = ip_find(srv, addr);
        if (ip && ip->conns >= (unsigned)srv->cfg.max_conns_per_ip) {
            srv->m.refused[GW_REFUSED_PER_IP]++;
            return 429;
        }
    }
    if (srv->cfg.auth_secret && gw_auth_check(srv, wsi, &claims) != 0) {
        srv->m.refused[GW_REFUSED_AUTH]++;
        return HTTP_STATUS_UNAUTHORIZED;
    }
    return 0;
}

int gw_admission_filter(struct gw_server *srv, struct lws *wsi)
{
    char uri[64];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 ||
        (strcmp(uri, "/ws") != 0 && strcmp(uri, "/chatservice") != 0)) {
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return -1;
    }
    int status = admit(srv, wsi, strcmp(uri, "/chatservice") == 0);
    if (status == 0)
        return 0;
    lws_return_http_status(wsi, (unsigned int)status, NULL);
    return -1;
}
