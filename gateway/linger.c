/*
 * Grace after a connection ends. A join may ask for grace_ms (PROTOCOL.md):
 * when its connection then closes, drops or times out, the membership's
 * leave event is held back that long instead of being emitted at once. The
 * member stays in Redis meanwhile, so a client that comes back within the
 * grace (a reloaded page) and joins with the same nickname takes it over
 * like any takeover: no presence frame at all. The held leave is emitted
 * when the grace ends; it names the old mid, so after a takeover the
 * worker's compare-and-delete changes nothing, and otherwise the member
 * leaves with the connection's reason, late by the grace.
 *
 * A `leave` frame and a takeover never linger. If the gateway dies, its
 * registry still names the membership and the sweep removes it as usual.
 */
#include "gw_server.h"

#include <string.h>

static void on_linger_tick(uv_timer_t *t);

static void linger_emit(struct gw_server *srv, struct gw_member *m)
{
    gw_redis_emit(srv, "leave", m, m->detach_reason);
    gw_member_free(m);
}

/* Emits the leaves that are due (every one with force) and arms the timer
 * for the next. The list is short: only connections that ended within the
 * last grace_ms are on it. */
static void linger_run(struct gw_server *srv, bool force)
{
    int64_t now = cm_mono_ms(), next = 0;
    for (struct gw_member **pp = &srv->lingering; *pp;) {
        struct gw_member *m = *pp;
        if (force || m->linger_due_ms <= now) {
            *pp = m->linger_next;
            linger_emit(srv, m);
            continue;
        }
        if (!next || m->linger_due_ms < next)
            next = m->linger_due_ms;
        pp = &m->linger_next;
    }
    if (next)
        uv_timer_start(&srv->linger_timer, on_linger_tick, (uint64_t)(next - now), 0);
    else
        uv_timer_stop(&srv->linger_timer);
}

static void on_linger_tick(uv_timer_t *t)
{
    linger_run(t->data, false);
}

bool gw_linger_add(struct gw_server *srv, struct gw_member *m, const char *reason)
{
    if (m->grace_ms <= 0 || srv->stopping)
        return false;
    if (strcmp(reason, "closed") != 0 && strcmp(reason, "faulted") != 0 &&
        strcmp(reason, "timeout") != 0)
        return false; /* left or replaced: the member is gone now */
    m->session = NULL;
    m->detach_reason = reason; /* a string literal */
    m->linger_due_ms = cm_mono_ms() + m->grace_ms;
    m->linger_next = srv->lingering;
    srv->lingering = m;
    linger_run(srv, false);
    return true;
}

void gw_linger_flush(struct gw_server *srv)
{
    linger_run(srv, true);
}

void gw_linger_start(struct gw_server *srv)
{
    uv_timer_init(srv->loop, &srv->linger_timer);
    srv->linger_timer.data = srv;
}

void gw_linger_stop(struct gw_server *srv)
{
    linger_run(srv, true);
    uv_close((uv_handle_t *)&srv->linger_timer, NULL);
}
