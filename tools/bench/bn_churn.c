/*
 * Churn, for fanout --churn-per-sec R: while the measured clients chat,
 * members join and leave their rooms at R per second. A churn member is a
 * connection of its own from a pool after the measured ones: it connects,
 * joins room k % rooms with a fresh nickname (a new member, not a takeover
 * of its previous self), stays --churn-hold seconds and closes (1000), which
 * is its leave; its slot then serves a later start. Starts are paced open
 * loop like the senders: a start that finds no free slot is skipped and
 * counted, never delayed. Churn members receive the room's messages like
 * anyone, but only their order is checked (their deliveries are not in the
 * loss or latency of the measured clients).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

uint32_t bn_churn_slots(const struct bn_config *cfg)
{
    if (cfg->churn_per_sec <= 0)
        return 0;
    /* Each start holds its slot for the hold plus connect, join and the
     * close handshake: 5 s more covers seconds-long joins on a loaded
     * machine (a start that finds no free slot is skipped and counted). */
    return (uint32_t)ceil(cfg->churn_per_sec * (cfg->churn_hold + 5)) + 1;
}

int bn_churn_init(struct bn *b, uint32_t first)
{
    struct bn_churn *ch = &b->churn;
    ch->first = first;
    ch->n = bn_churn_slots(&b->cfg);
    if (ch->n == 0)
        return 0;
    ch->ring = calloc(ch->n, sizeof(*ch->ring));
    ch->ring_gen = calloc(ch->n, sizeof(*ch->ring_gen));
    ch->leave_ns = calloc(ch->n, sizeof(*ch->leave_ns));
    if (!ch->ring || !ch->ring_gen || !ch->leave_ns)
        return -1;
    for (uint32_t k = 0; k < ch->n; k++) {
        struct bn_conn *c = &b->conns[first + k];
        c->flags |= BN_F_CHURN;
        c->room = (int32_t)(k % b->nrooms);
    }
    return 0;
}

void bn_churn_start(struct bn *b)
{
    struct bn_churn *ch = &b->churn;
    if (ch->n == 0)
        return;
    ch->on = true;
    ch->t0_ns = bn_now_ns();
    ch->slots = 0;
}

void bn_churn_stop(struct bn *b)
{
    struct bn_churn *ch = &b->churn;
    if (ch->on)
        ch->t1_ns = bn_now_ns();
    ch->on = false;
}

/* Queues a free slot for a new member; false when every slot is busy. */
static bool start_one(struct bn *b)
{
    struct bn_churn *ch = &b->churn;
    for (uint32_t i = 0; i < ch->n; i++) {
        uint32_t k = (ch->next + i) % ch->n;
        struct bn_conn *c = &b->conns[ch->first + k];
        if (c->state != BN_IDLE_SLOT)
            continue;
        ch->next = (k + 1) % ch->n;
        c->cycle++;
        c->flags &= (uint16_t)~(BN_F_EVER_JOINED | BN_F_REJOIN);
        c->url = (uint8_t)(ch->started % (uint64_t)b->cfg.nurls);
        ch->started++;
        bn_conn_queue(b, c);
        return true;
    }
    return false;
}

int64_t bn_churn_tick(struct bn *b)
{
    struct bn_churn *ch = &b->churn;
    uint64_t now = bn_now_ns();
    int64_t wait = 50000000;
    /* Leaves that are due, oldest first. */
    while (ch->rlen > 0) {
        uint32_t id = ch->ring[ch->rhead];
        if (ch->leave_ns[ch->rhead] > now) {
            int64_t w = (int64_t)(ch->leave_ns[ch->rhead] - now);
            if (w < wait)
                wait = w;
            break;
        }
        struct bn_conn *c = &b->conns[id];
        if (c->gen == ch->ring_gen[ch->rhead] && c->state == BN_OPEN)
            bn_conn_close(b, c, 1000);
        ch->rhead = (ch->rhead + 1) % ch->n;
        ch->rlen--;
    }
    if (!ch->on)
        return wait;
    double elapsed = (double)(now - ch->t0_ns) / 1e9;
    uint64_t due = (uint64_t)(elapsed * b->cfg.churn_per_sec) + 1;
    for (; ch->slots < due; ch->slots++)
        if (!start_one(b))
            ch->skipped++;
    int64_t next = (int64_t)(((double)ch->slots / b->cfg.churn_per_sec - elapsed) * 1e9);
    if (next < 0)
        next = 0;
    return next < wait ? next : wait;
}

bool bn_churn_on_ready(struct bn *b, struct bn_conn *c)
{
    struct bn_churn *ch = &b->churn;
    if (!(c->flags & BN_F_CHURN))
        return false;
    uint64_t now = bn_now_ns();
    ch->joined++;
    bn_hist_add(&ch->join_lat, now - c->t0_ns);
    if (ch->rlen == ch->n) { /* only if slots were reused after early closes */
        bn_conn_close(b, c, 1000);
        return true;
    }
    uint32_t at = (ch->rhead + ch->rlen) % ch->n;
    ch->ring[at] = c->id;
    ch->ring_gen[at] = c->gen;
    ch->leave_ns[at] = now + (uint64_t)(b->cfg.churn_hold * 1e9);
    ch->rlen++;
    return true;
}

bool bn_churn_on_closed(struct bn *b, struct bn_conn *c)
{
    struct bn_churn *ch = &b->churn;
    if (!(c->flags & BN_F_CHURN))
        return false;
    if (c->flags & BN_F_SHUT)
        return true; /* closed by the end of the run, not a churn leave */
    if (c->flags & BN_F_JOINED)
        ch->left++;
    else
        ch->failed++; /* did not get as far as joined */
    return true;
}

void bn_churn_report(struct bn *b, struct bn_json *j)
{
    struct bn_churn *ch = &b->churn;
    if (ch->n == 0)
        return;
    uint64_t t1 = ch->t1_ns ? ch->t1_ns : bn_now_ns();
    double secs = t1 > ch->t0_ns && ch->t0_ns ? (double)(t1 - ch->t0_ns) / 1e9 : 0;
    const struct bn_stats *s = &b->st;
    bn_json_open(j, "churn", '{');
    bn_json_num(j, "per_s_asked", b->cfg.churn_per_sec);
    bn_json_num(j, "hold_s", b->cfg.churn_hold);
    bn_json_int(j, "slots", ch->n);
    bn_json_num(j, "window_s", round(secs * 100) / 100);
    bn_json_int(j, "started", (long long)ch->started);
    bn_json_int(j, "joined", (long long)ch->joined);
    bn_json_int(j, "left", (long long)ch->left);
    bn_json_int(j, "skipped", (long long)ch->skipped);
    bn_json_int(j, "failed", (long long)ch->failed);
    bn_json_num(j, "joins_per_s", secs > 0 ? round((double)ch->joined / secs) : 0);
    bn_json_num(j, "leaves_per_s", secs > 0 ? round((double)ch->left / secs) : 0);
    bn_json_latency(j, "join_latency_us", &ch->join_lat);
    bn_json_int(j, "received", (long long)s->churn_received);
    bn_json_int(j, "duplicates", (long long)s->churn_duplicates);
    bn_json_int(j, "seq_gaps", (long long)s->churn_gaps);
    bn_json_close(j, '}');
    printf("  churn: %llu joined and %llu left in %.1f s (%.0f/s and %.0f/s; %.0f/s asked), "
           "%llu starts skipped (no free slot), %llu failed before joining; they received %llu "
           "messages: duplicates %llu, seq gaps %llu\n",
           (unsigned long long)ch->joined, (unsigned long long)ch->left, secs,
           secs > 0 ? (double)ch->joined / secs : 0, secs > 0 ? (double)ch->left / secs : 0,
           b->cfg.churn_per_sec, (unsigned long long)ch->skipped, (unsigned long long)ch->failed,
           (unsigned long long)s->churn_received, (unsigned long long)s->churn_duplicates,
           (unsigned long long)s->churn_gaps);
    bn_print_latency("churn connect->joined", &ch->join_lat);
}
