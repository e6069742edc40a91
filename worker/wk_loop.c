/*
 * common/cm_link on libevent. See wk_loop.h.
 *
 * The adapter is hiredis's own (adapters/libevent.h): unlike its libuv
 * sibling it hands every readiness to hiredis, errors included, so a
 * refused connect fails the context as it should. It has no hook to stamp
 * the time of the last read; cm_link stamps it on every reply itself,
 * which is all its watchdog needs (replies already waiting in the socket
 * are checked with FIONREAD before it drops a link).
 */
#include "wk_loop.h"

#include "cm_link.h"
#include "cm_log.h"
#include "cm_util.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include <stdlib.h>

static int attach(void *ctx, redisAsyncContext *ac, int64_t *last_read_ms)
{
    return redisLibeventAttach(ac, ctx) == REDIS_OK ? 0 : -1;
}

/* ---- timers ---- */

struct timer {
    struct event *ev;
    void (*fn)(void *arg);
    void *arg;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct timer *tm = arg;
    tm->fn(tm->arg);
}

static void *timer_new(void *ctx, void (*fn)(void *arg), void *arg)
{
    struct timer *tm = cm_calloc(1, sizeof(*tm));
    tm->fn = fn;
    tm->arg = arg;
    tm->ev = evtimer_new((struct event_base *)ctx, on_timer, tm);
    if (!tm->ev) { /* libevent fails only when malloc does: the cm_malloc policy */
        CM_ERROR("%s:%d: out of memory", __FILE__, __LINE__);
        abort();
    }
    return tm;
}

/* Re-arms: evtimer_add on a pending timer moves its deadline. */
static void timer_start(void *timer, int64_t ms)
{
    struct timer *tm = timer;
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(tm->ev, &tv);
}

static void timer_stop(void *timer)
{
    struct timer *tm = timer;
    evtimer_del(tm->ev);
}

/* event_free deletes a pending event first, so a pending timer never
 * fires after this. */
static void timer_free(void *timer)
{
    struct timer *tm = timer;
    if (!tm)
        return;
    event_free(tm->ev);
    free(tm);
}

struct cm_link_loop *wk_loop_new(struct event_base *base)
{
    struct cm_link_loop *loop = cm_calloc(1, sizeof(*loop));
    *loop = (struct cm_link_loop){.ctx = base,
                                  .attach = attach,
                                  .timer_new = timer_new,
                                  .timer_start = timer_start,
                                  .timer_stop = timer_stop,
                                  .timer_free = timer_free};
    return loop;
}

void wk_loop_free(struct cm_link_loop *loop)
{
    free(loop);
}
