/*
 * connect: connections per second. --clients slots each loop: TCP connect,
 * upgrade, `welcome` (and `joined` with --rooms), a clean close 1000, the
 * server's close, and again; for --duration seconds or --max-connections
 * connections. Latency is connect start to ready.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>

struct connect_state {
    uint64_t completed;
    uint64_t end_ns;
    bool stopping;
};

static struct connect_state *cs_of(struct bn *b)
{
    return b->mode;
}

static bool give_up(struct bn *b)
{
    struct connect_state *cs = cs_of(b);
    return b->st.connect_failures > 100 && b->st.connect_failures > cs->completed;
}

static void connect_on_ready(struct bn *b, struct bn_conn *c)
{
    struct connect_state *cs = cs_of(b);
    bn_hist_add(&b->conn_lat, bn_now_ns() - c->t0_ns);
    cs->completed++;
    bn_conn_close(b, c, 1000);
}

static void connect_on_closed(struct bn *b, struct bn_conn *c, bool failed)
{
    struct connect_state *cs = cs_of(b);
    (void)failed;
    if (cs->stopping || (c->flags & BN_F_SHUT))
        return;
    uint64_t started = cs->completed + b->pending + b->open;
    if (bn_now_ns() >= cs->end_ns || started >= (uint64_t)b->cfg.max_connections || give_up(b)) {
        c->flags |= BN_F_SHUT;
        return;
    }
    c->cycle++;
    c->flags &= (uint16_t)~BN_F_EVER_JOINED; /* a new member each time, not a rejoin */
    bn_conn_queue(b, c);
}

static bool finished(struct bn *b)
{
    struct connect_state *cs = cs_of(b);
    if (!cs->stopping && (bn_now_ns() >= cs->end_ns || give_up(b) ||
                          cs->completed >= (uint64_t)b->cfg.max_connections))
        cs->stopping = true;
    return cs->stopping && b->open == 0 && b->pending == 0;
}

int bn_connect_run(struct bn *b)
{
    const struct bn_config *cfg = &b->cfg;
    struct connect_state state = {0}, *cs = &state;
    struct bn_proc_sample before[BN_MAX_PIDS], after[BN_MAX_PIDS];

    b->mode = cs;
    b->ops.on_ready = connect_on_ready;
    b->ops.on_closed = connect_on_closed;
    for (uint32_t i = 0; i < b->nconns; i++)
        b->conns[i].room = b->nrooms ? (int32_t)(i % b->nrooms) : -1;
    printf("chat-bench connect: %u slots over %d gateway(s)%s, for %.0f s or %lld connections\n",
           b->nconns, cfg->nurls, b->nrooms ? ", each joins a room" : "", cfg->duration,
           cfg->max_connections);

    bn_proc_read_all(b, before);
    uint64_t t0 = bn_now_ns();
    cs->end_ns = t0 + (uint64_t)(cfg->duration * 1e9);
    bn_open_all(b, 0, b->nconns);
    /* A slot may be mid-close at the end: bounded by the close timeout. */
    int rc = bn_run(b, finished, NULL, cs->end_ns + BN_CONNECT_TIMEOUT_NS + BN_CLOSE_TIMEOUT_NS);
    double elapsed = (double)(bn_now_ns() - t0) / 1e9;
    bn_proc_read_all(b, after);
    bn_progress(b, true);
    if (give_up(b))
        bn_problem(b, "more connections failed than succeeded; gave up");

    double per_s = elapsed > 0 ? (double)cs->completed / elapsed : 0;
    struct bn_json j;
    bn_json_init(&j);
    bn_json_str(&j, "mode", "connect");
    bn_json_int(&j, "slots", b->nconns);
    bn_json_int(&j, "rooms", b->nrooms);
    bn_json_int(&j, "gateways", cfg->nurls);
    bn_json_int(&j, "completed", (long long)cs->completed);
    bn_json_num(&j, "elapsed_run_s", round(elapsed * 100) / 100);
    bn_json_num(&j, "connections_per_s", round(per_s));
    bn_json_latency(&j, "latency_us", &b->conn_lat);
    printf("  %llu connections in %.2f s: %.0f per second\n", (unsigned long long)cs->completed,
           elapsed, per_s);
    bn_print_latency(b->nrooms ? "connect->joined" : "connect->welcome", &b->conn_lat);
    double cpu = bn_report_servers(b, &j, before, after);
    double us = cs->completed ? cpu * 1e6 / (double)cs->completed : 0;
    bn_json_num(&j, "server_us_per_connection", round(us * 10) / 10);
    if (cfg->npids)
        printf("  server CPU per connection: %.1f us\n", us);
    bn_report_common(b, &j);
    bool ok = rc >= 0 && cs->completed > 0 && b->st.connect_failures == 0 &&
              b->st.disconnects == 0 && b->st.join_errors == 0;
    bn_close_all(b);
    bn_report_finish(b, &j, ok);
    return ok ? 0 : 1;
}
