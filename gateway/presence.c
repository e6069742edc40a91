/*
 * Presence: how the joins and leaves published on a room's channel reach
 * its local members.
 *
 * Every presence frame carries the room's member count after the event
 * (the scripts splice it in). A frame of a room above
 * --presence-batch-above members goes into the room's batch, and every
 * chat.v1 member receives the batch as one presence_diff at the next tick.
 * At or below that size, a member that joined with "presence":"diff" still
 * gets diffs, and the others get the frame at once, as before. A member
 * that joined with "presence":"count" gets, in a room of any size, only
 * presence_count: the count after the tick's events, no names.
 *
 * A batch keeps one entry per nickname, the latest: a join then a leave in
 * one tick is a leave, a leave then a join is a join. Applied as "set
 * present" and "set absent", diffs then leave a client with the same list
 * as the events one by one would have. Whenever the recipients of the
 * batch change (the room crosses the threshold), the batch goes out first,
 * so no member receives two events of one nickname out of order.
 */
#include "gw_server.h"

#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

/* The latest event of one nickname in a room's batch. */
struct gw_presence_ev {
    char nickname[CM_NICK_MAX_BYTES + 1];
    bool join;
    char reason[16];
    int64_t ts;
    UT_hash_handle hh; /* room->batch by nickname, in arrival order */
};

void gw_presence_clear(struct gw_room *room)
{
    struct gw_presence_ev *ev, *tmp;
    HASH_ITER(hh, room->batch, ev, tmp) {
        HASH_DEL(room->batch, ev);
        free(ev);
    }
}

static void batch_add(struct gw_server *srv, struct gw_room *room, const struct cm_presence *p)
{
    struct gw_presence_ev *ev;
    HASH_FIND_STR(room->batch, p->nickname, ev);
    if (!ev) {
        ev = cm_calloc(1, sizeof(*ev));
        snprintf(ev->nickname, sizeof(ev->nickname), "%s", p->nickname);
        HASH_ADD_STR(room->batch, nickname, ev);
    }
    ev->join = p->join;
    snprintf(ev->reason, sizeof(ev->reason), "%s", p->reason);
    ev->ts = p->ts;
    if (!room->batch_queued) {
        room->batch_queued = true;
        room->presence_next = srv->presence_dirty;
        srv->presence_dirty = room;
    }
}

/* The batch as a presence_diff frame; empties the batch. */
static struct gw_payload *batch_take(struct gw_room *room)
{
    struct cm_sbuf joins, leaves, b;
    cm_sbuf_init(&joins, 0);
    cm_sbuf_init(&leaves, 0);
    cm_sbuf_init(&b, 0);
    cm_sbuf_puts(&joins, "[");
    cm_sbuf_puts(&leaves, "[");
    struct gw_presence_ev *ev, *tmp;
    HASH_ITER(hh, room->batch, ev, tmp) {
        struct cm_sbuf *to = ev->join ? &joins : &leaves;
        if (to->len > 1)
            cm_sbuf_puts(to, ",");
        cm_sbuf_puts(to, "{\"nickname\":");
        cm_sbuf_put_json_str(to, ev->nickname, strlen(ev->nickname));
        if (ev->join) {
            cm_sbuf_printf(to, ",\"since\":%lld}", (long long)ev->ts);
        } else {
            cm_sbuf_puts(to, ",\"reason\":");
            cm_sbuf_put_json_str(to, ev->reason, strlen(ev->reason));
            cm_sbuf_printf(to, ",\"ts\":%lld}", (long long)ev->ts);
        }
        HASH_DEL(room->batch, ev);
        free(ev);
    }
    cm_sbuf_puts(&joins, "]");
    cm_sbuf_puts(&leaves, "]");
    cm_encode_presence_diff(&b, room->name, room->batch_count, cm_sbuf_data(&joins),
                            cm_sbuf_data(&leaves));
    struct gw_payload *p = gw_payload_new(cm_sbuf_data(&b), b.len);
    cm_sbuf_free(&joins);
    cm_sbuf_free(&leaves);
    cm_sbuf_free(&b);
    return p;
}

static struct gw_payload *count_payload(const struct gw_room *room)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_presence_count(&b, room->name, room->batch_count);
    struct gw_payload *p = gw_payload_new(cm_sbuf_data(&b), b.len);
    cm_sbuf_free(&b);
    return p;
}

/* Sends the batch, if any, to whoever it is for: members that asked for
 * the count get presence_count; the others a presence_diff, every one
 * when it holds events of a big room, else those that asked for diffs. */
static void flush(struct gw_server *srv, struct gw_room *room)
{
    if (!room->batch)
        return;
    bool all = room->batch_all;
    room->batch_all = false;
    struct gw_payload *diff = batch_take(room), *count = NULL;
    srv->m.presence_diffs++;
    room->busy++; /* a 1013 close may take members out while we walk them */
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->presence == CM_PRESENCE_COUNT) {
            if (!count)
                count = count_payload(room);
            gw_member_deliver(m, count);
        } else if (all || m->presence == CM_PRESENCE_DIFF) {
            gw_member_deliver(m, diff);
        }
    }
    room->busy--;
    gw_payload_unref(diff);
    if (count)
        gw_payload_unref(count);
}

bool gw_presence_on_frame(struct gw_server *srv, struct gw_room *room, const char *data,
                          size_t len)
{
    struct cm_presence ev;
    if (cm_presence_decode(data, len, &ev) != 0)
        return false;
    /* A frame without a count comes from a script of an older release
     * (a rolling upgrade): every presence frame is one member more or
     * less, so the count we know follows it; unknown, the room is small. */
    if (ev.count < 0 && room->batch_count >= 0)
        ev.count = room->batch_count + (ev.join ? 1 : -1);
    if (ev.count >= 0)
        room->batch_count = ev.count;
    if (ev.count > srv->cfg.presence_batch_above) {
        if (!room->batch_all)
            flush(srv, room); /* diff members' events go out before everyone's */
        room->batch_all = true;
        batch_add(srv, room, &ev);
        return true;
    }
    if (room->batch_all)
        flush(srv, room); /* everyone's events go out before this one */
    if (room->nbatched > 0)
        batch_add(srv, room, &ev);
    if (room->nbatched == room->nmembers)
        return true;
    struct gw_payload *p = gw_payload_new(data, len);
    room->busy++;
    for (struct gw_member *m = room->members, *next; m; m = next) {
        next = m->room_next;
        if (m->presence == CM_PRESENCE_EVENTS)
            gw_member_deliver(m, p);
    }
    room->busy--;
    gw_payload_unref(p);
    return true;
}

void gw_presence_tick(struct gw_server *srv)
{
    struct gw_room *room = srv->presence_dirty;
    srv->presence_dirty = NULL;
    while (room) {
        struct gw_room *next = room->presence_next;
        room->presence_next = NULL;
        room->batch_queued = false;
        flush(srv, room);
        gw_room_free_if_unused(srv, room);
        room = next;
    }
}
