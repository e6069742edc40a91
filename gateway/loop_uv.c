/*
 * common/cm_link on libuv: the hiredis adapter, timers and name resolution.
 *
 * The adapter: Debian 12's hiredis 0.14 ships adapters/libuv.h, but its
 * poll callback returns early when libuv reports a socket error, so a
 * connect refused (or a reset) is never seen by hiredis and the link hangs
 * forever instead of reconnecting. This adapter hands errors to hiredis
 * (which then reads the socket error and fails the context properly), and
 * does not leak on a failed attach.
 */
#include "loop_uv.h"

#include "cm_util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/ioctl.h>

/* hiredis reads at most 16 KiB per call. Under load a loop turn can take
 * long, and at one read per turn replies would queue up in the kernel
 * behind the fan-out (publishes then expire): read on while more waits,
 * up to this many times per event. */
#define READS_PER_EVENT 8

struct uv_redis {
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    int events;
    int64_t *last_read_ms; /* stamped whenever Redis sent us something */
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct uv_redis *r = handle->data;
    /* On an error, let hiredis try what it was waiting for: the read or
     * write fails and reports the real error. */
    int ev = status < 0 ? r->events : events;
    if (r->ac && (ev & UV_READABLE)) {
        *r->last_read_ms = cm_mono_ms();
        for (int i = 0; i < READS_PER_EVENT && r->ac; i++) {
            int waiting = 0;
            redisAsyncHandleRead(r->ac); /* may free the context: r->ac is then NULL */
            if (!r->ac || ioctl(r->ac->c.fd, FIONREAD, &waiting) != 0 || waiting <= 0)
                break;
        }
    }
    if (r->ac && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(r->ac);
}

static void update(struct uv_redis *r, int add, int del)
{
    r->events = (r->events | add) & ~del;
    if (r->events)
        uv_poll_start(&r->poll, r->events, on_poll);
    else
        uv_poll_stop(&r->poll);
}

static void add_read(void *p)
{
    update(p, UV_READABLE, 0);
}

static void del_read(void *p)
{
    update(p, 0, UV_READABLE);
}

static void add_write(void *p)
{
    update(p, UV_WRITABLE, 0);
}

static void del_write(void *p)
{
    update(p, 0, UV_WRITABLE);
}

static void on_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void cleanup(void *p)
{
    struct uv_redis *r = p;
    r->ac = NULL;
    uv_close((uv_handle_t *)&r->poll, on_closed);
}

static int attach(void *ctx, redisAsyncContext *ac, int64_t *last_read_ms)
{
    uv_loop_t *loop = ctx;
    if (ac->ev.data)
        return -1;
    struct uv_redis *r = cm_calloc(1, sizeof(*r));
    if (uv_poll_init(loop, &r->poll, ac->c.fd) != 0) {
        free(r);
        return -1;
    }
    r->ac = ac;
    r->last_read_ms = last_read_ms;
    r->poll.data = r;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = r;
    return 0;
}

/* ---- timers ---- */

struct timer {
    uv_timer_t t;
    void (*fn)(void *arg);
    void *arg;
};

static void on_timer(uv_timer_t *t)
{
    struct timer *tm = t->data;
    tm->fn(tm->arg);
}

static void *timer_new(void *ctx, void (*fn)(void *arg), void *arg)
{
    struct timer *tm = cm_calloc(1, sizeof(*tm));
    uv_timer_init(ctx, &tm->t);
    tm->t.data = tm;
    tm->fn = fn;
    tm->arg = arg;
    return tm;
}

static void timer_start(void *timer, int64_t ms)
{
    struct timer *tm = timer;
    uv_timer_start(&tm->t, on_timer, ms > 0 ? (uint64_t)ms : 0, 0);
}

static void timer_stop(void *timer)
{
    struct timer *tm = timer;
    uv_timer_stop(&tm->t);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void timer_free(void *timer)
{
    struct timer *tm = timer;
    uv_close((uv_handle_t *)&tm->t, on_timer_closed);
}

/* ---- name resolution ----
 * hiredis 0.14 resolves host names with a blocking getaddrinfo, which would
 * stall the loop on every reconnect to "redis" in a container network: a
 * name is resolved on libuv's thread pool first, then connected to by
 * address. */

struct resolve {
    uv_getaddrinfo_t req;
    void (*done)(void *arg, const char *ip, const char *why);
    void *arg;
    bool cancelled;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *r = req->data;
    char ip[INET6_ADDRSTRLEN] = "";
    if (status == 0 && res) {
        const void *addr = res->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, addr, ip, sizeof(ip));
    }
    uv_freeaddrinfo(res);
    if (!r->cancelled)
        r->done(r->arg, ip[0] ? ip : NULL, status ? uv_strerror(status) : "no address");
    free(r);
}

static void *resolve(void *ctx, const char *host,
                     void (*done)(void *arg, const char *ip, const char *why), void *arg)
{
    struct resolve *r = cm_calloc(1, sizeof(*r));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->req.data = r;
    r->done = done;
    r->arg = arg;
    if (uv_getaddrinfo(ctx, &r->req, on_resolved, host, NULL, &hints) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void resolve_cancel(void *handle)
{
    struct resolve *r = handle;
    r->cancelled = true; /* on_resolved still runs, and frees it */
    uv_cancel((uv_req_t *)&r->req);
}

void gw_loop_uv_init(struct cm_link_loop *out, uv_loop_t *loop)
{
    *out = (struct cm_link_loop){.ctx = loop, .attach = attach, .timer_new = timer_new,
                                 .timer_start = timer_start, .timer_stop = timer_stop,
                                 .timer_free = timer_free, .resolve = resolve,
                                 .resolve_cancel = resolve_cancel};
}
