/*
 * The pacer: messages at --rate per second in total, spread over the
 * senders in turn, for --duration seconds or --max-messages messages.
 * Open loop on purpose: a slow cluster does not slow the offered load, so
 * latency under load is measured rather than hidden.
 */
#include "bench.h"

#define BURST_MAX 2000 /* slots sent in one go when the loop fell behind */

void bn_send_start(struct bn *b)
{
    b->t_send0_ns = bn_now_ns();
    b->slots = 0;
    b->sending = true;
}

void bn_send_stop(struct bn *b)
{
    if (b->sending)
        b->t_send1_ns = bn_now_ns();
    b->sending = false;
}

bool bn_send_finished(struct bn *b)
{
    return !b->sending;
}

int64_t bn_send_tick(struct bn *b)
{
    if (!b->sending || b->nsenders == 0)
        return 50000000;
    uint64_t now = bn_now_ns();
    double elapsed = (double)(now - b->t_send0_ns) / 1e9;
    uint64_t limit = (uint64_t)b->cfg.max_messages;
    if (elapsed >= b->send_for_s || b->slots >= limit) {
        bn_send_stop(b);
        return 50000000;
    }
    uint64_t due = (uint64_t)(elapsed * b->cfg.rate) + 1; /* slot 0 is due at once */
    if (due > limit)
        due = limit;
    for (int burst = 0; b->slots < due && burst < BURST_MAX; burst++) {
        struct bn_conn *c = &b->conns[b->senders[b->slots % b->nsenders]];
        b->slots++;
        if (bn_chat_inflight(b) >= (uint64_t)b->cfg.max_inflight || bn_chat_send(b, c) < 0)
            b->st.throttled++;
    }
    if (b->slots < due)
        return 0; /* still behind: come back after one look at the sockets */
    double next_s = (double)b->slots / b->cfg.rate;
    int64_t wait = (int64_t)((next_s - elapsed) * 1e9);
    return wait > 0 ? wait : 0;
}
