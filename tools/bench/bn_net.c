/*
 * Sockets on epoll: non-blocking connects (bound to one of several 127.0.0.x
 * source addresses when one address has too few ephemeral ports), buffered
 * writes, the read path and the event loop that every mode runs in phases.
 *
 * The read path reads into one shared scratch buffer and parses frames in
 * place; only the tail of an incomplete frame is copied to the connection,
 * so an idle connection owns no buffer at all.
 */
#include "bench.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_NS 250000000ull
#define WBUF_MAX (64u << 20) /* a server that reads nothing: give up on it */

uint64_t bn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * BN_NS + (uint64_t)ts.tv_nsec;
}

void bn_problem(struct bn *b, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!b->problem[0])
        snprintf(b->problem, sizeof(b->problem), "%s", text);
    if (b->problems < 10)
        fprintf(stderr, "chat-bench: %s\n", text);
    else if (b->problems == 10)
        fprintf(stderr, "chat-bench: (further problems not shown)\n");
    b->problems++;
}

/* How many 127.0.0.x source addresses the connections need: one address
 * gives one ephemeral port range per destination. */
static long auto_sources(const struct bn *b)
{
    long lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &lo, &hi) != 2)
            lo = 32768, hi = 60999;
        fclose(f);
    }
    long ports = (hi - lo + 1) * 9 / 10; /* leave room for everyone else */
    long per_dest = ((long)b->nconns + b->cfg.nurls - 1) / b->cfg.nurls;
    if (ports < 1)
        ports = 1;
    return (per_dest + ports - 1) / ports;
}

static int sources_init(struct bn *b)
{
    long k = b->cfg.source_addrs ? b->cfg.source_addrs : auto_sources(b);
    if (k <= 1 && b->cfg.source_addrs == 0)
        return 0; /* the kernel picks; nothing to bind */
    for (int i = 0; i < b->cfg.nurls; i++) {
        uint32_t a = ntohl(b->cfg.urls[i].addr.sin_addr.s_addr);
        if ((a >> 24) != 127) {
            fprintf(stderr,
                    "chat-bench: %ld source addresses are needed but %s is not on "
                    "loopback (127.0.0.0/8)\n",
                    k, b->cfg.urls[i].text);
            return -1;
        }
    }
    if (k > 254) {
        fprintf(stderr, "chat-bench: too many connections for 254 source addresses\n");
        return -1;
    }
    b->sources = calloc((size_t)k, sizeof(*b->sources));
    if (!b->sources)
        return -1;
    for (long i = 0; i < k; i++)
        b->sources[i].s_addr = htonl(0x7f000001u + (uint32_t)i);
    b->nsources = (uint32_t)k;
    return 0;
}

int bn_net_init(struct bn *b)
{
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->scratch = malloc(BN_SCRATCH);
    b->queue = calloc(b->nconns ? b->nconns : 1, sizeof(*b->queue));
    if (b->epfd < 0 || !b->scratch || !b->queue) {
        fprintf(stderr, "chat-bench: out of memory or epoll: %s\n", strerror(errno));
        return -1;
    }
    for (uint32_t i = 0; i < b->nconns; i++) {
        b->conns[i].fd = -1;
        b->conns[i].id = i;
        b->conns[i].room = -1;
    }
    return sources_init(b);
}

static void conn_buffers_free(struct bn_conn *c)
{
    free(c->rbuf);
    free(c->wbuf);
    free(c->frag);
    c->rbuf = c->wbuf = c->frag = NULL;
    c->rlen = c->wlen = c->woff = c->wcap = c->fraglen = 0;
}

void bn_net_free(struct bn *b)
{
    for (uint32_t i = 0; i < b->nconns; i++) {
        if (b->conns[i].fd >= 0)
            close(b->conns[i].fd);
        conn_buffers_free(&b->conns[i]);
    }
    if (b->epfd >= 0)
        close(b->epfd);
    free(b->scratch);
    free(b->queue);
    free(b->sources);
}

static int epoll_set(struct bn *b, struct bn_conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events,
                             .data.u64 = (uint64_t)c->id | ((uint64_t)c->gen << 32)};
    return epoll_ctl(b->epfd, op, c->fd, &ev);
}

/* The socket is gone: counts it, frees it, tells the mode. */
static void conn_release(struct bn *b, struct bn_conn *c, bool failed)
{
    if (c->state == BN_CONNECTING || c->state == BN_HANDSHAKE)
        b->pending--;
    if (c->state == BN_OPEN || c->state == BN_CLOSING)
        b->open--;
    if (c->flags & BN_F_JOINING) {
        c->flags &= (uint16_t)~BN_F_JOINING;
        b->joining--;
    }
    if (c->fd >= 0)
        close(c->fd); /* also takes it out of the epoll set */
    c->fd = -1;
    c->gen++;
    c->state = BN_IDLE_SLOT;
    b->st.unanswered += c->inflight;
    c->inflight = 0;
    conn_buffers_free(c);
    /* The mode sees the flags of the connection that ended; it may queue a
     * new one, which starts with these cleared. */
    if (b->ops.on_closed)
        b->ops.on_closed(b, c, failed);
    c->flags &=
        (uint16_t) ~(BN_F_JOINED | BN_F_WELCOMED | BN_F_WRITE_WAIT | BN_F_CLOSE_SENT | BN_F_RETRY);
}

/* The peer went away or the socket failed under us. */
static void conn_lost(struct bn *b, struct bn_conn *c, int err)
{
    if (c->state == BN_CONNECTING || c->state == BN_HANDSHAKE) {
        b->st.connect_failures++;
        b->connect_errno = (uint32_t)err;
        bn_problem(b, "connection %u to %s failed: %s", c->id, b->cfg.urls[c->url].text,
                   err ? strerror(err) : "closed during the upgrade");
        conn_release(b, c, true);
        return;
    }
    bool ours = (c->flags & (BN_F_CLOSE_SENT | BN_F_SHUT)) != 0;
    if (c->state == BN_OPEN && !ours && c->close_code == 0) {
        /* No close frame at all: the server dropped the TCP connection. */
        b->st.disconnects++;
        b->st.close_codes[4]++;
        bn_problem(b, "connection %u lost without a close frame (%s)", c->id,
                   err ? strerror(err) : "EOF");
    }
    conn_release(b, c, !ours);
}

void bn_conn_drop(struct bn *b, struct bn_conn *c, bool rst, bool failed)
{
    if (c->fd < 0)
        return;
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    conn_release(b, c, failed);
}

void bn_conn_close(struct bn *b, struct bn_conn *c, uint16_t code)
{
    if (c->state != BN_OPEN) {
        bn_conn_drop(b, c, false, false);
        return;
    }
    char payload[2] = {(char)(code >> 8), (char)(code & 0xff)};
    c->flags |= BN_F_CLOSE_SENT;
    c->state = BN_CLOSING;
    c->t0_ns = bn_now_ns();
    bn_ws_send(b, c, 0x8, payload, 2);
}

static int start_connect(struct bn *b, struct bn_conn *c)
{
    const struct bn_url *u = &b->cfg.urls[c->url];
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (b->nsources) {
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr = b->sources[c->id % b->nsources]};
        /* The port is chosen at connect(), per destination: without this
         * every bound socket would take a port of its own up front. */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0)
            return -errno;
    }
    c->gen++;
    c->state = BN_CONNECTING;
    c->t0_ns = bn_now_ns();
    b->pending++;
    if (connect(c->fd, (const struct sockaddr *)&u->addr, sizeof(u->addr)) < 0 &&
        errno != EINPROGRESS)
        return -errno;
    if (epoll_set(b, c, EPOLL_CTL_ADD, EPOLLOUT) < 0)
        return -errno;
    return 0;
}

void bn_conn_queue(struct bn *b, struct bn_conn *c)
{
    if (c->state != BN_IDLE_SLOT)
        return;
    c->state = BN_QUEUED;
    b->queue[(b->qhead + b->qlen) % b->nconns] = c->id;
    b->qlen++;
}

static void start_queued(struct bn *b)
{
    while (b->qlen > 0 && b->pending + b->joining < b->concurrency) {
        struct bn_conn *c = &b->conns[b->queue[b->qhead]];
        b->qhead = (b->qhead + 1) % b->nconns;
        b->qlen--;
        if (c->state != BN_QUEUED)
            continue;
        c->state = BN_IDLE_SLOT;
        int err = start_connect(b, c);
        if (err < 0) {
            if (c->state != BN_CONNECTING) { /* failed before it counted as pending */
                c->state = BN_CONNECTING;
                b->pending++;
            }
            if (-err == EADDRNOTAVAIL)
                bn_problem(b, "out of ephemeral ports (EADDRNOTAVAIL): try --source-addrs");
            conn_lost(b, c, -err);
        }
    }
}

/* The TCP connect finished: check it, send the upgrade request. */
static void conn_connected(struct bn *b, struct bn_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_lost(b, c, err);
        return;
    }
    char req[1024];
    size_t n = bn_ws_request(b, c, req, sizeof(req));
    c->state = BN_HANDSHAKE;
    if (epoll_set(b, c, EPOLL_CTL_MOD, EPOLLIN) < 0) {
        conn_lost(b, c, errno);
        return;
    }
    bn_conn_write(b, c, req, n);
}

int bn_conn_write(struct bn *b, struct bn_conn *c, const void *data, size_t len)
{
    const char *p = data;
    if (c->fd < 0)
        return -1;
    if (c->wlen == c->woff) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return 0;
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_lost(b, c, errno);
                return -1;
            }
            n = 0;
        }
        p += n;
        len -= (size_t)n;
        c->wlen = c->woff = 0;
    }
    if (c->wlen + len > WBUF_MAX) {
        bn_problem(b, "connection %u: the server does not read (%u bytes waiting)", c->id, c->wlen);
        conn_lost(b, c, ENOBUFS);
        return -1;
    }
    if (c->wlen + len > c->wcap) {
        uint32_t ncap = c->wcap ? c->wcap : 1024;
        while (ncap < c->wlen + len)
            ncap *= 2;
        char *nb = realloc(c->wbuf, ncap);
        if (!nb) {
            conn_lost(b, c, ENOMEM);
            return -1;
        }
        c->wbuf = nb;
        c->wcap = ncap;
    }
    memcpy(c->wbuf + c->wlen, p, len);
    c->wlen += (uint32_t)len;
    if (!(c->flags & BN_F_WRITE_WAIT)) {
        c->flags |= BN_F_WRITE_WAIT;
        epoll_set(b, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
    }
    return 0;
}

static void conn_flush(struct bn *b, struct bn_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_lost(b, c, errno);
            return;
        }
        c->woff += (uint32_t)n;
    }
    c->wlen = c->woff = 0;
    if (c->wcap > 4096) { /* a burst is over: idle connections stay small */
        free(c->wbuf);
        c->wbuf = NULL;
        c->wcap = 0;
    }
    c->flags &= (uint16_t)~BN_F_WRITE_WAIT;
    epoll_set(b, c, EPOLL_CTL_MOD, EPOLLIN);
}

/* Keeps the unparsed tail of buf for the next read. */
static int keep_tail(struct bn *b, struct bn_conn *c, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    c->rbuf = malloc(n);
    if (!c->rbuf) {
        conn_lost(b, c, ENOMEM);
        return -1;
    }
    memcpy(c->rbuf, p, n);
    c->rlen = (uint32_t)n;
    return 0;
}

static void conn_readable(struct bn *b, struct bn_conn *c)
{
    char *buf = b->scratch;
    size_t have = c->rlen;
    uint32_t gen = c->gen;
    if (have) {
        memcpy(buf, c->rbuf, have);
        free(c->rbuf);
        c->rbuf = NULL;
        c->rlen = 0;
    }
    if (have >= BN_SCRATCH) {
        bn_problem(b, "connection %u: a frame larger than %u bytes", c->id, BN_SCRATCH);
        b->st.protocol_errors++;
        conn_lost(b, c, EMSGSIZE);
        return;
    }
    ssize_t n = read(c->fd, buf + have, BN_SCRATCH - have);
    uint64_t now = bn_now_ns(); /* receipt time of everything in this read */
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            keep_tail(b, c, buf, have);
            return;
        }
        conn_lost(b, c, n < 0 ? errno : 0);
        return;
    }
    have += (size_t)n;
    b->st.bytes_in += (uint64_t)n;
    size_t off = 0;
    if (c->state == BN_HANDSHAKE) {
        long used = bn_ws_response(b, c, buf, have);
        if (used < 0) {
            conn_lost(b, c, 0);
            return;
        }
        if (used == 0) {
            if (have > BN_HANDSHAKE_MAX) {
                bn_problem(b, "connection %u: upgrade response too long", c->id);
                conn_lost(b, c, 0);
                return;
            }
            keep_tail(b, c, buf, have);
            return;
        }
        off = (size_t)used;
        c->state = BN_OPEN;
        b->pending--;
        b->open++;
        b->st.connects_ok++;
        bn_chat_on_open(b, c);
        if (c->gen != gen || c->fd < 0)
            return;
    }
    long used = bn_ws_frames(b, c, buf + off, have - off, now);
    if (c->gen != gen || c->fd < 0)
        return; /* a handler dropped or closed it */
    if (used < 0) {
        b->st.protocol_errors++;
        conn_lost(b, c, EPROTO);
        return;
    }
    off += (size_t)used;
    keep_tail(b, c, buf + off, have - off);
}

/* Connects and handshakes that take too long; closes the server never answers. */
static void sweep(struct bn *b, uint64_t now)
{
    for (uint32_t i = 0; i < b->nconns; i++) {
        struct bn_conn *c = &b->conns[i];
        uint64_t age = now > c->t0_ns ? now - c->t0_ns : 0;
        if ((c->state == BN_CONNECTING || c->state == BN_HANDSHAKE) && age > BN_CONNECT_TIMEOUT_NS)
            conn_lost(b, c, ETIMEDOUT);
        else if (c->state == BN_CLOSING && age > BN_CLOSE_TIMEOUT_NS)
            bn_conn_drop(b, c, false, false);
        else if (c->flags & BN_F_RETRY)
            bn_chat_retry(b, c, now);
    }
}

static void dispatch(struct bn *b, const struct epoll_event *ev)
{
    uint32_t id = (uint32_t)ev->data.u64, gen = (uint32_t)(ev->data.u64 >> 32);
    if (id >= b->nconns)
        return;
    struct bn_conn *c = &b->conns[id];
    if (c->gen != gen || c->fd < 0)
        return; /* the socket this event was for is gone */
    if (c->state == BN_CONNECTING) {
        conn_connected(b, c);
        return;
    }
    if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_readable(b, c); /* a read reports EOF and errors too */
    if (c->gen == gen && c->fd >= 0 && (ev->events & EPOLLOUT) && c->wlen > c->woff)
        conn_flush(b, c);
}

void bn_progress(struct bn *b, bool force)
{
    uint64_t now = bn_now_ns();
    if (b->cfg.quiet || (!force && now - b->last_progress_ns < BN_NS))
        return;
    double dt = (double)(now - b->last_progress_ns) / 1e9;
    char p99[32];
    fprintf(stderr,
            "[%5.1fs] open %u/%u  connects %llu (fail %llu)  sent %llu (%.0f/s)  "
            "recv %llu (%.0f/s)  p99 %s  inflight %llu\n",
            (double)(now - b->t_start_ns) / 1e9, b->open, b->nconns,
            (unsigned long long)b->st.connects_ok, (unsigned long long)b->st.connect_failures,
            (unsigned long long)b->st.sent, (double)(b->st.sent - b->prog_sent) / dt,
            (unsigned long long)b->st.received, (double)(b->st.received - b->prog_received) / dt,
            b->lat_sec.count ? bn_fmt_ns(bn_hist_quantile(&b->lat_sec, 0.99), p99, sizeof(p99))
                             : "-",
            (unsigned long long)bn_chat_inflight(b));
    b->last_progress_ns = now;
    b->prog_sent = b->st.sent;
    b->prog_received = b->st.received;
    bn_hist_reset(&b->lat_sec);
}

int bn_run(struct bn *b, bool (*done)(struct bn *), int64_t (*tick)(struct bn *),
           uint64_t phase_deadline_ns)
{
    struct epoll_event ev[512];
    for (;;) {
        uint64_t now = bn_now_ns();
        start_queued(b);
        if (done && done(b))
            return 0;
        if (*b->stop) {
            bn_problem(b, "stopped by a signal");
            return -2;
        }
        if (now >= b->deadline_ns) {
            bn_problem(b, "hard timeout (--timeout %.0f s) reached", b->cfg.timeout);
            return -1;
        }
        if (phase_deadline_ns && now >= phase_deadline_ns)
            return 1;
        if (now - b->last_sweep_ns > SWEEP_NS) {
            sweep(b, now);
            b->last_sweep_ns = now;
        }
        bn_progress(b, false);
        int64_t wait = 50000000; /* ns: progress, sweeps and deadlines need a look */
        if (tick) {
            int64_t t = tick(b);
            if (t < wait)
                wait = t < 0 ? 0 : t;
        }
        if (phase_deadline_ns && (int64_t)(phase_deadline_ns - now) < wait)
            wait = (int64_t)(phase_deadline_ns - now);
        /* epoll_pwait2 takes a timespec: a paced sender sleeps to the
         * microsecond instead of spinning on a 0 ms timeout. */
        struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
        int n = epoll_pwait2(b->epfd, ev, (int)(sizeof(ev) / sizeof(ev[0])), &ts, NULL);
        if (n < 0 && errno != EINTR) {
            bn_problem(b, "epoll_pwait2: %s", strerror(errno));
            return -1;
        }
        for (int i = 0; i < n; i++)
            dispatch(b, &ev[i]);
    }
}
