#include "cm_redis_url.h"

#include "cm_config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out; returns -1 on bad escapes or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || j + 1 >= outlen)
            return -1;
        out[j++] = c;
    }
    out[j] = '\0';
    return 0;
}

/*
 * host, host:port, [v6] or [v6]:port. A bracket must close right before the
 * port or the end ("[::1]x" is not a host), and a bare IPv6 address is
 * refused by cm_hostport_parse as ambiguous.
 */
static int parse_host(const char *hostport, struct cm_redis_url *out, char *err, size_t errlen)
{
    size_t hl = strlen(hostport);
    const char *close = strchr(hostport, ']');
    bool bracket = hostport[0] == '[';
    bool well_formed =
        bracket ? close && (close[1] == '\0' || close[1] == ':') : !close && !strchr(hostport, '[');

    if (!well_formed) {
        snprintf(err, errlen, "bad host: an IPv6 address goes in brackets, e.g. [::1]:6379");
        return -1;
    }
    bool has_port = bracket ? close[1] == ':' : strchr(hostport, ':') != NULL;
    if (has_port) {
        if (cm_hostport_parse(hostport, out->host, sizeof(out->host), &out->port, err, errlen))
            return -1;
        if (out->port == 0) {
            snprintf(err, errlen, "port must be from 1 to 65535");
            return -1;
        }
        return 0;
    }
    const char *h = bracket ? hostport + 1 : hostport;
    if (bracket)
        hl -= 2;
    if (hl == 0 || hl >= sizeof(out->host)) {
        snprintf(err, errlen, "missing host");
        return -1;
    }
    memcpy(out->host, h, hl);
    out->host[hl] = '\0';
    return 0;
}

/* The optional /db: digits only, so "/ 1" or "/+1" are refused. */
static int parse_db(const char *slash, struct cm_redis_url *out, char *err, size_t errlen)
{
    if (!slash || slash[1] == '\0')
        return 0;
    size_t n = strspn(slash + 1, "0123456789");
    long db = n >= 1 && n <= 7 && slash[1 + n] == '\0' ? strtol(slash + 1, NULL, 10) : -1;
    if (db < 0 || db > 1000000) {
        snprintf(err, errlen, "database must be a non-negative number");
        return -1;
    }
    out->db = (int)db;
    return 0;
}

int cm_redis_url_parse(const char *url, struct cm_redis_url *out, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;

    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(err, errlen, "must start with redis://");
        return -1;
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *slash = strchr(p, '/');
    const char *end = slash ? slash : p + strlen(p);
    const char *at = memrchr(p, '@', (size_t)(end - p));

    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (pct_decode(p, (size_t)(uend - p), out->user, sizeof(out->user)) != 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                                 sizeof(out->password)) != 0)) {
            snprintf(err, errlen, "bad user or password encoding");
            return -1;
        }
        if (!colon) { /* "redis://secret@host": a lone credential is a password, as in redis-cli */
            snprintf(out->password, sizeof(out->password), "%s", out->user);
            out->user[0] = '\0';
        }
        p = at + 1;
    }

    char hostport[300];
    size_t hplen = (size_t)(end - p);
    if (hplen == 0 || hplen >= sizeof(hostport)) {
        snprintf(err, errlen, "missing host");
        return -1;
    }
    memcpy(hostport, p, hplen);
    hostport[hplen] = '\0';
    if (parse_host(hostport, out, err, errlen) != 0 || parse_db(slash, out, err, errlen) != 0)
        return -1;
    return 0;
}

int cm_check_redis_url(const char *value, char *err, size_t errlen)
{
    struct cm_redis_url u;
    return cm_redis_url_parse(value, &u, err, errlen);
}

int cm_redis_seeds_parse(const char *list, struct cm_redis_url *out, size_t max, size_t *n,
                         char *err, size_t errlen)
{
    char entry[600], url[620];
    *n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(entry)) {
            snprintf(err, errlen, "%s node in the list", len ? "too long a" : "an empty");
            return -1;
        }
        if (*n == max) {
            snprintf(err, errlen, "more than %zu seed nodes", max);
            return -1;
        }
        memcpy(entry, p, len);
        entry[len] = '\0';
        /* host:port alone is a URL without its scheme. */
        snprintf(url, sizeof(url), "%s%s", strstr(entry, "://") ? "" : "redis://", entry);
        if (cm_redis_url_parse(url, &out[*n], err, errlen) != 0)
            return -1;
        if (out[*n].db != 0) {
            snprintf(err, errlen, "a Redis Cluster has only database 0");
            return -1;
        }
        (*n)++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (*n == 0) {
        snprintf(err, errlen, "no seed node");
        return -1;
    }
    return 0;
}

int cm_check_redis_seeds(const char *value, char *err, size_t errlen)
{
    struct cm_redis_url u[CM_SEEDS_MAX];
    size_t n;
    return cm_redis_seeds_parse(value, u, CM_SEEDS_MAX, &n, err, errlen);
}

int cm_redis_target_parse(const char *redis, const char *cluster, struct cm_redis_target *t,
                          char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (redis && cluster) {
        snprintf(err, errlen, "--redis and --redis-cluster go one without the other");
        return -1;
    }
    if (cluster) {
        t->cluster = true;
        return cm_redis_seeds_parse(cluster, t->seeds, CM_SEEDS_MAX, &t->nseeds, err, errlen);
    }
    t->nseeds = 1;
    return cm_redis_url_parse(redis ? redis : CM_REDIS_DEFAULT, &t->seeds[0], err, errlen);
}
