/*
 * One blocking HTTP/1.1 GET to a gateway (Connection: close), for reads
 * that are rare and off the measured path: the storm mode's look at a
 * room's member list. The answer is read to the end of the connection;
 * a body with Content-Length is cut to it, a chunked one is refused.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HTTP_MAX (16u << 20)

/* The value of header name (with its colon) in the head, or NULL. */
static const char *header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0)
            return p + 2 + n + strspn(p + 2 + n, " ");
    return NULL;
}

int bn_http_get(const struct bn_url *u, const char *path, char **body)
{
    *body = NULL;
    int fd = bn_tcp_connect(u->host);
    if (fd < 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, u->host);
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    if (!buf || n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        free(buf);
        close(fd);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            char *nb = cap < HTTP_MAX ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (!end || sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        free(buf);
        return -1;
    }
    *end = '\0';
    const char *te = header(buf, "Transfer-Encoding:");
    const char *cl = header(buf, "Content-Length:");
    char *data = end + 4;
    size_t have = len - (size_t)(data - buf);
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        free(buf);
        return -1;
    }
    if (cl) {
        size_t want = strtoul(cl, NULL, 10);
        if (want > have) { /* cut short */
            free(buf);
            return -1;
        }
        have = want;
    }
    memmove(buf, data, have);
    buf[have] = '\0';
    *body = buf;
    return status;
}
