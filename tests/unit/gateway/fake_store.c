/*
 * A store for unit tests: see fakes.h.
 */
#include "fakes.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct fake_store fake_store;

void fake_store_reset(void)
{
    memset(&fake_store, 0, sizeof(fake_store));
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    if (fake_store.nlog >= FAKE_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake_store.log[fake_store.nlog++], sizeof(fake_store.log[0]), fmt, ap);
    va_end(ap);
}

int fake_store_logged(const char *line, int from)
{
    for (int i = from; i < fake_store.nlog; i++)
        if (strcmp(fake_store.log[i], line) == 0)
            return i;
    return -1;
}

static int add(int kind, const char *room, void (*fn)(void), void *priv)
{
    if (fake_store.down || fake_store.ncalls >= FAKE_MAX)
        return -1;
    struct fake_call *c = &fake_store.calls[fake_store.ncalls++];
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    snprintf(c->room, sizeof(c->room), "%s", room);
    c->fn = fn;
    c->priv = priv;
    return fake_store.ncalls - 1;
}

int fake_store_find(int kind, const char *room)
{
    for (int i = 0; i < fake_store.ncalls; i++)
        if ((int)fake_store.calls[i].kind == kind && (!room || !strcmp(fake_store.calls[i].room, room)))
            return i;
    return -1;
}

struct fake_call fake_store_take(int i)
{
    struct fake_call c = fake_store.calls[i];
    memmove(&fake_store.calls[i], &fake_store.calls[i + 1],
            (size_t)(fake_store.ncalls - i - 1) * sizeof(c));
    fake_store.ncalls--;
    return c;
}

int gw_store_publish(struct gw_store *st, const char *room, const char *tail, size_t tail_len,
                     gw_store_publish_fn *fn, void *priv)
{
    int i = add(FAKE_PUBLISH, room, (void (*)(void))fn, priv);
    if (i >= 0)
        logf_("publish %s", room);
    return i < 0 ? -1 : 0;
}

int gw_store_history_before(struct gw_store *st, const char *room, int64_t before, long long limit,
                            gw_store_history_fn *fn, void *priv)
{
    return add(FAKE_HISTORY, room, (void (*)(void))fn, priv) < 0 ? -1 : 0;
}

int gw_store_history_after(struct gw_store *st, const char *room, int64_t after,
                           gw_store_history_fn *fn, void *priv)
{
    int i = add(FAKE_HISTORY, room, (void (*)(void))fn, priv);
    if (i < 0)
        return -1;
    fake_store.calls[i].from = after;
    return 0;
}

int gw_store_join(struct gw_store *st, const struct gw_store_join *req, gw_store_join_fn *fn,
                  void *priv)
{
    logf_("registry add %s", req->who.mid);
    int i = add(FAKE_JOIN, req->who.room, (void (*)(void))fn, priv);
    if (i < 0) {
        logf_("registry del %s", req->who.mid);
        return -1;
    }
    snprintf(fake_store.calls[i].mid, GW_MID_MAX, "%s", req->who.mid);
    logf_("join %s %s", req->who.room, req->who.mid);
    return 0;
}

int gw_store_members(struct gw_store *st, const char *room, const char *cursor,
                     gw_store_members_fn *fn, void *priv)
{
    return add(FAKE_MEMBERS, room, (void (*)(void))fn, priv) < 0 ? -1 : 0;
}

int gw_store_reassert(struct gw_store *st, const struct gw_store_member *who, const char *old_mid,
                      gw_store_reassert_fn *fn, void *priv)
{
    logf_("registry add %s", who->mid);
    int i = add(FAKE_REASSERT, who->room, (void (*)(void))fn, priv);
    if (i < 0)
        return -1;
    snprintf(fake_store.calls[i].mid, GW_MID_MAX, "%s", who->mid);
    snprintf(fake_store.calls[i].old_mid, GW_MID_MAX, "%s", old_mid);
    return 0;
}

void gw_store_room_subscribe(struct gw_store *st, const char *room)
{
    logf_("subscribe %s", room);
}

void gw_store_room_unsubscribe(struct gw_store *st, const char *room)
{
    logf_("unsubscribe %s", room);
}

void gw_store_epoch_bump(struct gw_store *st, const char *room, const char *old_epoch)
{
    logf_("epoch bump %s %s", room, old_epoch);
}

void gw_store_event(struct gw_store *st, const char *type, const struct gw_store_member *who,
                    const char *reason)
{
    if (reason)
        logf_("event %s %s %s", type, who->mid, reason);
    else
        logf_("event %s %s", type, who->mid);
}

void gw_store_registry_add(struct gw_store *st, const struct gw_store_member *who)
{
    logf_("registry add %s", who->mid);
}

void gw_store_registry_del(struct gw_store *st, const char *mid)
{
    logf_("registry del %s", mid);
}
