/*
 * idle: open N connections (each joining room i % R when --rooms > 0) and
 * hold them for --duration seconds: what one more connection costs a
 * gateway in memory, (RSS after - RSS before) / N, and whether it keeps
 * them all.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>

static void idle_on_ready(struct bn *b, struct bn_conn *c)
{
    b->ready++;
    bn_hist_add(&b->conn_lat, bn_now_ns() - c->t0_ns);
}

static void idle_on_closed(struct bn *b, struct bn_conn *c, bool failed)
{
    (void)failed;
    if (c->flags & (c->room >= 0 ? BN_F_JOINED : BN_F_WELCOMED))
        b->ready--;
}

static bool all_ready(struct bn *b)
{
    if (b->ready == b->nconns)
        return true;
    uint64_t lost = b->st.connect_failures + b->st.join_errors + b->st.disconnects;
    return bn_all_settled(b) && b->ready + lost >= b->nconns;
}

int bn_idle_run(struct bn *b)
{
    const struct bn_config *cfg = &b->cfg;
    struct bn_proc_sample before[BN_MAX_PIDS], opened[BN_MAX_PIDS], after[BN_MAX_PIDS];
    int rc;

    b->ops.on_ready = idle_on_ready;
    b->ops.on_closed = idle_on_closed;
    for (uint32_t i = 0; i < b->nconns; i++)
        b->conns[i].room = b->nrooms ? (int32_t)(i % b->nrooms) : -1;
    printf("chat-bench idle: %u connections over %d gateway(s), %s, held %.0f s\n", b->nconns,
           cfg->nurls, b->nrooms ? "each joined to one room" : "no rooms joined", cfg->duration);

    bn_proc_read_all(b, before);
    uint64_t t0 = bn_now_ns();
    bn_open_all(b, 0, b->nconns);
    rc = bn_run(b, all_ready, NULL, t0 + (uint64_t)(30 + b->nconns / 200) * BN_NS);
    uint64_t t_up = bn_now_ns();
    uint32_t up = b->ready;
    if (up < b->nconns)
        bn_problem(b, "only %u of %u connections came up", up, b->nconns);
    if (rc >= 0)
        rc = bn_run(b, NULL, NULL, bn_now_ns() + (uint64_t)(cfg->settle * 1e9));
    bn_proc_read_all(b, opened);
    if (rc >= 0)
        rc = bn_run(b, NULL, NULL, bn_now_ns() + (uint64_t)(cfg->duration * 1e9));
    bn_proc_read_all(b, after);
    bn_progress(b, true);
    uint32_t held = b->ready;

    double up_s = (double)(t_up - t0) / 1e9;
    struct bn_json j;
    bn_json_init(&j);
    bn_json_str(&j, "mode", "idle");
    bn_json_int(&j, "connections", b->nconns);
    bn_json_int(&j, "rooms", b->nrooms);
    bn_json_int(&j, "gateways", cfg->nurls);
    bn_json_int(&j, "source_addrs", b->nsources ? b->nsources : 1);
    bn_json_int(&j, "established", up);
    bn_json_int(&j, "held", held);
    bn_json_num(&j, "setup_s", round(up_s * 100) / 100);
    bn_json_num(&j, "setup_per_s", up_s > 0 ? round((double)up / up_s) : 0);
    bn_json_num(&j, "hold_s", cfg->duration);
    bn_json_latency(&j, "setup_latency_us", &b->conn_lat);
    printf("  %u of %u up in %.2f s (%.0f/s), %u still open after %.0f s\n", up, b->nconns, up_s,
           up_s > 0 ? up / up_s : 0, held, cfg->duration);
    bn_print_latency("connect->ready", &b->conn_lat);

    /* Memory per connection, per server: after the hold against before. */
    bn_json_open(&j, "memory", '[');
    for (int i = 0; i < cfg->npids; i++) {
        double per = up ? (double)(after[i].rss_kib - before[i].rss_kib) * 1024.0 / up : 0;
        double per_open = up ? (double)(opened[i].rss_kib - before[i].rss_kib) * 1024.0 / up : 0;
        bn_json_open(&j, NULL, '{');
        bn_json_str(&j, "name", cfg->pids[i].name);
        bn_json_int(&j, "rss_before_kib", before[i].rss_kib);
        bn_json_int(&j, "rss_open_kib", opened[i].rss_kib);
        bn_json_int(&j, "rss_after_kib", after[i].rss_kib);
        bn_json_int(&j, "hwm_kib", after[i].hwm_kib);
        bn_json_num(&j, "bytes_per_conn", round(per));
        bn_json_num(&j, "bytes_per_conn_at_open", round(per_open));
        bn_json_num(&j, "cpu_s", round((after[i].cpu_s - before[i].cpu_s) * 100) / 100);
        /* What holding costs (keepalive pings and pongs), setup excluded. */
        double hold_cpu = after[i].cpu_s - opened[i].cpu_s;
        bn_json_num(&j, "hold_cpu_s", round(hold_cpu * 100) / 100);
        bn_json_close(&j, '}');
        printf("  server %-12s rss %ld -> %ld KiB (peak %ld): %.0f bytes per connection "
               "(%.0f right after opening); %.2f CPU s while holding\n",
               cfg->pids[i].name, before[i].rss_kib, after[i].rss_kib, after[i].hwm_kib, per,
               per_open, hold_cpu);
    }
    bn_json_close(&j, ']');
    bn_report_common(b, &j);
    bool ok = rc >= 0 && up == b->nconns && held == b->nconns && b->st.disconnects == 0;
    bn_close_all(b);
    bn_report_finish(b, &j, ok);
    return ok ? 0 : 1;
}
