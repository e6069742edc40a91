/*
 * INFO commandstats from Redis, read twice per run (before and after the
 * measured window) over a plain blocking socket: the difference says how
 * many Redis commands one chat message costs.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int bn_tcp_connect(const char *hostport)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof(host))
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 3};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    return fd;
}

/* Reads one bulk string reply ($<len>\r\n<data>\r\n) into a malloc'd buffer. */
static char *read_bulk(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    long want = -1;
    while (buf) {
        if (want < 0) {
            char *eol = len ? memchr(buf, '\n', len) : NULL;
            if (eol) {
                if (buf[0] != '$')
                    break;
                want = atol(buf + 1) + (eol + 1 - buf) + 2;
                if (want < 0 || (size_t)want > (16u << 20))
                    break;
                if ((size_t)want > cap) {
                    char *nb = realloc(buf, (size_t)want + 1);
                    if (!nb)
                        break;
                    buf = nb;
                    cap = (size_t)want;
                }
            }
        }
        if (want >= 0 && len >= (size_t)want) {
            buf[len] = '\0';
            return buf;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    free(buf);
    return NULL;
}

void bn_redis_commandstats(const char *hostport, struct bn_redis_stats *out)
{
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
    memset(out, 0, sizeof(*out));
    if (!hostport[0])
        return;
    int fd = bn_tcp_connect(hostport);
    if (fd < 0)
        return;
    char *text = NULL;
    if (write(fd, cmd, sizeof(cmd) - 1) == (ssize_t)(sizeof(cmd) - 1))
        text = read_bulk(fd);
    close(fd);
    if (!text)
        return;
    /* Lines: cmdstat_<name>:calls=<n>,usec=...; names may hold '|' (subcommands). */
    for (char *line = strtok(text, "\r\n"); line && out->n < 64; line = strtok(NULL, "\r\n")) {
        char *colon = strchr(line, ':');
        char *calls = colon ? strstr(colon, "calls=") : NULL;
        if (strncmp(line, "cmdstat_", 8) != 0 || !calls)
            continue;
        snprintf(out->names[out->n], sizeof(out->names[0]), "%.*s", (int)(colon - line - 8),
                 line + 8);
        out->calls[out->n] = strtoull(calls + 6, NULL, 10);
        out->n++;
    }
    free(text);
    out->ok = true;
}
