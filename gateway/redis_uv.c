/*
 * hiredis on libuv. Debian 12's hiredis 0.14 ships adapters/libuv.h, but its
 * poll callback returns early when libuv reports a socket error, so a
 * connect refused (or a reset) is never seen by hiredis and the link hangs
 * forever instead of reconnecting. This adapter hands errors to hiredis
 * (which then reads the socket error and fails the context properly), and
 * does not leak on a failed attach.
 */
#include "gw_server.h"

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

int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, int64_t *last_read_ms)
{
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
