/*
 * fanout: N clients over R rooms (client i in room i % R, on gateway
 * i % U), the first S of them also send, at --rate messages per second in
 * total. Every acked message must reach every member of its room: loss is
 * the expected deliveries that did not arrive.
 *
 * Phases: connect and join all; settle; sample the servers; send for
 * --duration (with --churn-per-sec, churn members join and leave
 * meanwhile: bn_churn.c); drain (acks and deliveries, up to --drain);
 * sample again.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void fanout_on_ready(struct bn *b, struct bn_conn *c)
{
    if (bn_churn_on_ready(b, c))
        return;
    b->ready++;
    bn_hist_add(&b->conn_lat, bn_now_ns() - c->t0_ns);
}

static void fanout_on_closed(struct bn *b, struct bn_conn *c, bool failed)
{
    (void)failed;
    if (bn_churn_on_closed(b, c))
        return;
    if (c->flags & BN_F_JOINED)
        b->ready--;
}

/* The measured clients: the connections before the churn pool. */
static uint32_t measured(const struct bn *b)
{
    return b->nconns - b->churn.n;
}

/* Every client has joined, or the ones missing cannot any more. */
static bool all_joined(struct bn *b)
{
    if (b->ready == measured(b))
        return true;
    uint64_t lost = b->st.connect_failures + b->st.join_errors + b->st.disconnects;
    return bn_all_settled(b) && b->ready + lost >= measured(b);
}

/* Sending and, with --churn-per-sec, churn. */
static int64_t fanout_tick(struct bn *b)
{
    int64_t w = bn_send_tick(b);
    if (b->churn.n == 0)
        return w;
    if (!b->sending)
        bn_churn_stop(b);
    int64_t c = bn_churn_tick(b);
    return c < w ? c : w;
}

static bool drained(struct bn *b)
{
    return bn_chat_drained(b);
}

static uint64_t setup_deadline(const struct bn *b)
{
    /* Connect and join at no less than 200 per second before giving up. */
    return bn_now_ns() + (uint64_t)(30 + b->nconns / 200) * BN_NS;
}

int bn_fanout_run(struct bn *b)
{
    const struct bn_config *cfg = &b->cfg;
    struct bn_proc_sample before[BN_MAX_PIDS], after[BN_MAX_PIDS];
    struct bn_redis_stats rs0, rs1;
    int rc;

    b->ops.on_ready = fanout_on_ready;
    b->ops.on_closed = fanout_on_closed;
    uint32_t n = measured(b);
    for (uint32_t i = 0; i < n; i++)
        b->conns[i].room = (int32_t)(i % b->nrooms);
    b->nsenders = (uint32_t)cfg->senders;
    for (uint32_t i = 0; i < b->nsenders; i++) {
        b->senders[i] = i;
        b->conns[i].flags |= BN_F_SENDER;
    }
    printf("chat-bench fanout: %u clients in %u rooms over %d gateway(s), %u senders, "
           "%.0f msg/s (%.0f deliveries/s offered), %ld-byte messages, %.0f s\n",
           n, b->nrooms, cfg->nurls, b->nsenders, cfg->rate,
           cfg->rate * (double)n / (double)b->nrooms, cfg->size, cfg->duration);
    if (b->churn.n)
        printf("  churn: %.0f members a second join and leave after %.1f s (%u slots)\n",
               cfg->churn_per_sec, cfg->churn_hold, b->churn.n);

    bn_open_all(b, 0, n);
    rc = bn_run(b, all_joined, NULL, setup_deadline(b));
    if (b->ready < n)
        bn_problem(b, "only %u of %u clients joined", b->ready, n);
    uint64_t t_joined = bn_now_ns();
    if (rc >= 0 && b->ready > 0)
        rc = bn_run(b, NULL, NULL, bn_now_ns() + (uint64_t)(cfg->settle * 1e9));

    bn_proc_read_all(b, before);
    bn_redis_commandstats(cfg->redis, &rs0);
    double cpu0 = bn_self_cpu_s(), user0 = bn_self_user_s(), busy0 = bn_machine_busy_s();
    bn_hist_reset(&b->lat);
    bn_hist_reset(&b->lat_sec);
    if (rc >= 0 && b->ready > 0) {
        b->send_for_s = cfg->duration;
        bn_send_start(b);
        bn_churn_start(b);
        rc = bn_run(b, bn_send_finished, fanout_tick, 0);
        bn_send_stop(b);
        bn_churn_stop(b);
        if (rc >= 0) {
            rc = bn_run(b, drained, NULL, bn_now_ns() + (uint64_t)(cfg->drain * 1e9));
            if (rc == 1)
                bn_problem(b, "not drained within --drain %.1f s: %llu unanswered messages",
                           cfg->drain, (unsigned long long)bn_chat_inflight(b));
        }
    }
    double cpu1 = bn_self_cpu_s(), user1 = bn_self_user_s(), busy1 = bn_machine_busy_s();
    bn_proc_read_all(b, after);
    bn_redis_commandstats(cfg->redis, &rs1);
    bn_progress(b, true);

    uint64_t expected, loss, extra;
    bn_chat_loss(b, &expected, &loss, &extra);
    const struct bn_stats *s = &b->st;
    double send_s =
        b->t_send1_ns > b->t_send0_ns ? (double)(b->t_send1_ns - b->t_send0_ns) / 1e9 : 0;
    uint64_t t_end = b->t_last_rx_ns > b->t_send1_ns ? b->t_last_rx_ns : b->t_send1_ns;
    double window_s = t_end > b->t_send0_ns ? (double)(t_end - b->t_send0_ns) / 1e9 : 0;
    double dps = window_s > 0 ? (double)s->received / window_s : 0;
    double bench_cpu = cpu1 - cpu0;

    struct bn_json j;
    bn_json_init(&j);
    bn_json_str(&j, "mode", "fanout");
    bn_json_int(&j, "clients", n);
    bn_json_int(&j, "rooms", b->nrooms);
    bn_json_int(&j, "gateways", cfg->nurls);
    bn_json_int(&j, "senders", b->nsenders);
    bn_json_num(&j, "rate", cfg->rate);
    bn_json_num(&j, "offered_deliveries_per_s", round(cfg->rate * (double)n / (double)b->nrooms));
    bn_json_int(&j, "size", cfg->size);
    bn_json_num(&j, "duration_s", round(send_s * 100) / 100);
    bn_json_num(&j, "join_s", round((double)(t_joined - b->t_start_ns) / 1e7) / 100);
    bn_json_int(&j, "joined", b->ready);
    bn_json_int(&j, "sent", (long long)s->sent);
    bn_json_num(&j, "sent_per_s", send_s > 0 ? round((double)s->sent / send_s) : 0);
    bn_json_int(&j, "skipped", (long long)s->throttled);
    bn_json_int(&j, "acked", (long long)s->acked);
    bn_json_int(&j, "send_errors", (long long)s->send_errors);
    bn_json_int(&j, "unanswered", (long long)(bn_chat_inflight(b) + s->unanswered));
    bn_json_int(&j, "expected", (long long)expected);
    bn_json_int(&j, "received", (long long)s->received);
    bn_json_num(&j, "deliveries_per_s", round(dps));
    bn_json_int(&j, "loss", (long long)loss);
    bn_json_int(&j, "unexpected", (long long)extra);
    bn_json_int(&j, "duplicates", (long long)s->duplicates);
    bn_json_int(&j, "seq_gaps", (long long)s->gaps);
    bn_json_int(&j, "seq_missing", (long long)s->gap_missing);
    bn_json_int(&j, "presence_frames", (long long)s->presence);
    bn_json_latency(&j, "latency_us", &b->lat);
    bn_json_latency(&j, "join_latency_us", &b->conn_lat);

    printf("  joined %u/%u in %.2f s\n", b->ready, n, (double)(t_joined - b->t_start_ns) / 1e9);
    printf("  sent %llu in %.2f s (%.0f/s), acked %llu, errors %llu, skipped %llu\n",
           (unsigned long long)s->sent, send_s, send_s > 0 ? (double)s->sent / send_s : 0,
           (unsigned long long)s->acked, (unsigned long long)s->send_errors,
           (unsigned long long)s->throttled);
    printf("  deliveries %llu of %llu expected (%.0f/s): loss %llu, duplicates %llu, "
           "seq gaps %llu\n",
           (unsigned long long)s->received, (unsigned long long)expected, dps,
           (unsigned long long)loss, (unsigned long long)s->duplicates,
           (unsigned long long)s->gaps);
    bn_print_latency("latency send->receipt", &b->lat);
    bn_churn_report(b, &j);
    double server_cpu = bn_report_servers(b, &j, before, after);
    double eff = server_cpu > 0 ? (double)s->received / server_cpu : 0;
    bn_json_num(&j, "deliveries_per_server_cpu_s", round(eff));
    if (cfg->npids)
        printf("  deliveries per server CPU-second: %.0f\n", eff);
    bn_report_redis(&j, &rs0, &rs1, s->acked);
    bn_json_num(&j, "bench_window_cpu_s", round(bench_cpu * 100) / 100);
    double us_per = s->received ? bench_cpu * 1e6 / (double)s->received : 0;
    double us_user = s->received ? (user1 - user0) * 1e6 / (double)s->received : 0;
    bn_json_num(&j, "bench_us_per_delivery", round(us_per * 1000) / 1000);
    bn_json_num(&j, "bench_user_us_per_delivery", round(us_user * 1000) / 1000);
    printf("  chat-bench itself: %.2f CPU s in the window, %.3f us per delivery (%.3f us of it "
           "in user space, the rest in the kernel's TCP receive path)\n",
           bench_cpu, us_per, us_user);
    /* Whatever else ran meanwhile competed for the same cores. */
    double others = (busy1 - busy0) - server_cpu - bench_cpu;
    bn_json_num(&j, "machine_busy_cpu_s", round((busy1 - busy0) * 100) / 100);
    bn_json_num(&j, "other_processes_cpu_s", round((others > 0 ? others : 0) * 100) / 100);
    printf("  machine: %.2f CPU s busy in the window, %.2f s of it other processes%s\n",
           busy1 - busy0, others > 0 ? others : 0,
           others > 0.1 * window_s ? " (NOISY: something else was running)" : "");
    bn_report_common(b, &j);

    bool ok = rc >= 0 && b->ready == n && loss == 0 && extra == 0 && s->duplicates == 0 &&
              s->gaps == 0 && s->disconnects == 0 && s->connect_failures == 0 &&
              s->send_errors == 0 && s->join_errors == 0 && s->sent > 0 &&
              s->churn_duplicates == 0 && s->churn_gaps == 0 && b->churn.failed == 0;
    bn_report_delivery_problems(b, loss, expected, extra);
    bn_close_all(b);
    bn_report_finish(b, &j, ok);
    return ok ? 0 : 1;
}
