/*
 * storm: N clients over R rooms, plus S sender connections that keep
 * sending at --rate the whole time. After --duration seconds every one of
 * the N clients drops at once (--drop: TCP reset, TCP close, or WebSocket
 * close) and reconnects straight away — to the next gateway URL, as a
 * balancer would send it — joining again with `since` (its last seq) and
 * the room's `epoch`. A client has recovered when its `joined` says
 * recovered: true and history plus live frames continue its seq with no
 * gap and no duplicate. Repeated --storms times, --duration apart; the
 * servers' memory is sampled every 100 ms throughout.
 *
 * Presence (--presence-within S, 10 by default): once every client is
 * back, the rooms' member lists are read over HTTP (GET
 * /api/rooms/{room}/members, every page, from the first gateway) every
 * 200 ms until each room lists exactly its clients and senders, its count
 * says so, and every storm client's membership is the new one (its
 * `since` is not before the drop): what is measured is drop -> right. A
 * look blocks the loop for its pages (reported as check_ms); it is
 * a problem when the lists are not right within S seconds of the drop, or
 * are wrong again at one more look --duration later.
 */
#include "bench.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STORMS 100
#define SAMPLE_NS 100000000ull
#define LOOK_NS 200000000ull /* between two looks at the member lists */

struct storm_state {
    uint32_t clients; /* the storm clients are conns [0, clients) */
    bool storming;
    uint32_t rejoined; /* in the current storm */
    uint64_t t_drop, t_last;
    uint64_t last_sample_ns;
    long peak_kib[BN_MAX_PIDS];
    struct {
        uint32_t rejoined;
        double seconds;
        uint64_t failures;
        double presence_s; /* drop -> member lists right; -1: not within --presence-within */
        uint32_t looks;    /* reads of every room's list */
        double look_ms;    /* the longest look: how long it blocked the loop */
        bool still_right;  /* a last look, --duration after the storm */
    } storm[MAX_STORMS];
    int nstorms;
    /* presence check */
    int64_t drop_wall_ms; /* the drop, CLOCK_REALTIME: what the gateways' since is in */
    uint32_t *expect;     /* members each room should list */
    uint32_t *seen;       /* per connection: the look that last listed it */
    uint32_t look;
    uint64_t next_look_ns;
    bool right;
    char wrong[512]; /* why the last look was not right */
};

static void sample_memory(struct bn *b, struct storm_state *ss)
{
    for (int i = 0; i < b->cfg.npids; i++) {
        struct bn_proc_sample s;
        bn_proc_read(b->cfg.pids[i].pid, &s);
        if (s.rss_kib > ss->peak_kib[i])
            ss->peak_kib[i] = s.rss_kib;
    }
    ss->last_sample_ns = bn_now_ns();
}

static void storm_on_ready(struct bn *b, struct bn_conn *c)
{
    struct storm_state *ss = b->mode;
    uint64_t now = bn_now_ns();
    if (c->flags & BN_F_DROPPED) {
        c->flags &= (uint16_t)~BN_F_DROPPED;
        ss->rejoined++;
        ss->t_last = now;
        bn_hist_add(&b->rejoin_lat, now - ss->t_drop);
    } else {
        b->ready++;
        bn_hist_add(&b->conn_lat, now - c->t0_ns);
    }
}

static void storm_on_closed(struct bn *b, struct bn_conn *c, bool failed)
{
    struct storm_state *ss = b->mode;
    (void)failed;
    if (c->flags & BN_F_SHUT)
        return;
    if ((c->flags & BN_F_DROPPED) && ss->storming) {
        /* Back in at once (a failed attempt is retried), via the next URL. */
        c->url = (uint8_t)((c->url + 1) % (uint32_t)b->cfg.nurls);
        bn_conn_queue(b, c);
    }
}

static bool all_joined(struct bn *b)
{
    if (b->ready == b->nconns)
        return true;
    uint64_t lost = b->st.connect_failures + b->st.join_errors + b->st.disconnects;
    return bn_all_settled(b) && b->ready + lost >= b->nconns;
}

static bool storm_over(struct bn *b)
{
    struct storm_state *ss = b->mode;
    return ss->rejoined >= ss->clients;
}

static int64_t storm_tick(struct bn *b)
{
    struct storm_state *ss = b->mode;
    if (bn_now_ns() - ss->last_sample_ns >= SAMPLE_NS)
        sample_memory(b, ss);
    int64_t w = bn_send_tick(b);
    return w < (int64_t)SAMPLE_NS ? w : (int64_t)SAMPLE_NS;
}

/* Drops every storm client and waits until all have joined again. */
static int one_storm(struct bn *b, struct storm_state *ss)
{
    uint64_t failures0 = b->st.connect_failures;
    uint32_t setup_concurrency = b->concurrency;
    b->concurrency = (uint32_t)b->cfg.storm_concurrency;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    ss->storming = true;
    ss->rejoined = 0;
    ss->t_drop = ss->t_last = bn_now_ns();
    ss->drop_wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    for (uint32_t i = 0; i < ss->clients; i++) {
        struct bn_conn *c = &b->conns[i];
        c->flags |= BN_F_DROPPED | BN_F_REJOIN;
        if (c->state != BN_OPEN) {
            bn_conn_queue(b, c); /* lost before the storm: it joins again too */
            continue;
        }
        if (b->cfg.drop == BN_DROP_CLOSE)
            bn_conn_close(b, c, 1000); /* reconnects once the close completes */
        else
            bn_conn_drop(b, c, b->cfg.drop == BN_DROP_RST, false);
    }
    uint64_t limit = ss->t_drop + (uint64_t)(60 + ss->clients / 200) * BN_NS;
    int rc = bn_run(b, storm_over, storm_tick, limit);
    ss->storming = false;
    b->concurrency = setup_concurrency;
    int k = ss->nstorms++;
    ss->storm[k].rejoined = ss->rejoined;
    ss->storm[k].seconds = (double)(ss->t_last - ss->t_drop) / 1e9;
    ss->storm[k].failures = b->st.connect_failures - failures0;
    ss->storm[k].presence_s = -1; /* until check_presence finds the lists right */
    printf("  storm %d: %u of %u clients back in %.2f s (%llu connect attempts failed and "
           "were retried)\n",
           k + 1, ss->rejoined, ss->clients, ss->storm[k].seconds,
           (unsigned long long)ss->storm[k].failures);
    if (ss->rejoined < ss->clients)
        bn_problem(b, "storm %d: only %u of %u clients joined again", k + 1, ss->rejoined,
                   ss->clients);
    return rc;
}

/* One member of a page: c<id>, in this room, the new membership. */
static bool member_right(struct bn *b, struct storm_state *ss, uint32_t room, const cJSON *m)
{
    const char *nick = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "nickname"));
    const cJSON *since = cJSON_GetObjectItemCaseSensitive(m, "since");
    char *end = NULL;
    unsigned long id = nick && nick[0] == 'c' ? strtoul(nick + 1, &end, 10) : 0;
    if (!end || *end || end == nick + 1 || id >= b->nconns || b->conns[id].room != (int32_t)room) {
        snprintf(ss->wrong, sizeof(ss->wrong), "%s lists %s, not one of its clients",
                 b->rooms[room].name, nick ? nick : "a member without a nickname");
        return false;
    }
    if (id < ss->clients &&
        (!cJSON_IsNumber(since) || since->valuedouble < (double)ss->drop_wall_ms)) {
        snprintf(ss->wrong, sizeof(ss->wrong), "%s lists %s with a since before the drop",
                 b->rooms[room].name, nick);
        return false;
    }
    ss->seen[id] = ss->look; /* a member may be on two pages: counted once */
    return true;
}

/* Reads every page of one room's list; true when it is right. */
static bool room_right(struct bn *b, struct storm_state *ss, uint32_t room)
{
    char path[256], cursor[32] = "0";
    uint32_t listed = 0;
    long long count = -1;
    /* Bounded: a page of the default size per member would be 100 times this. */
    for (uint32_t page = 0; page < ss->expect[room] + 100; page++) {
        snprintf(path, sizeof(path), "/api/rooms/%s/members?cursor=%s", b->rooms[room].name,
                 cursor);
        char *body;
        int status = bn_http_get(&b->cfg.urls[0], path, &body);
        cJSON *o = status == 200 ? cJSON_Parse(body) : NULL;
        free(body);
        if (!o) {
            snprintf(ss->wrong, sizeof(ss->wrong), "GET %s: %s %d", path,
                     status == 200 ? "not JSON, status" : "status", status);
            return false;
        }
        const cJSON *m;
        bool ok = true;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "members")) {
            if (!(ok = member_right(b, ss, room, m)))
                break;
        }
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "count");
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "cursor"));
        count = cJSON_IsNumber(c) ? (long long)c->valuedouble : -1;
        snprintf(cursor, sizeof(cursor), "%s", next && strlen(next) < sizeof(cursor) ? next : "0");
        cJSON_Delete(o);
        if (!ok)
            return false;
        if (strcmp(cursor, "0") == 0)
            break;
    }
    for (uint32_t i = room; i < b->nconns; i += b->nrooms)
        listed += ss->seen[i] == ss->look;
    if (count != (long long)ss->expect[room] || listed != ss->expect[room]) {
        snprintf(ss->wrong, sizeof(ss->wrong), "%s: count %lld, %u of its %u clients listed",
                 b->rooms[room].name, count, listed, ss->expect[room]);
        return false;
    }
    return true;
}

/* Reads every room's list once; true when all are right. */
static bool look(struct bn *b, struct storm_state *ss)
{
    int k = ss->nstorms - 1;
    uint64_t t0 = bn_now_ns();
    bool right = true;
    ss->look++;
    for (uint32_t r = 0; r < b->nrooms && right; r++)
        right = room_right(b, ss, r);
    uint64_t t1 = bn_now_ns();
    double ms = (double)(t1 - t0) / 1e6;
    ss->storm[k].looks++;
    if (ms > ss->storm[k].look_ms)
        ss->storm[k].look_ms = ms;
    ss->next_look_ns = t1 + LOOK_NS;
    return right;
}

/* bn_run's done for the check: looks every LOOK_NS until the lists are right. */
static bool presence_right(struct bn *b)
{
    struct storm_state *ss = b->mode;
    uint64_t now = bn_now_ns();
    if (ss->right || now < ss->next_look_ns)
        return ss->right;
    ss->right = look(b, ss);
    if (ss->right)
        ss->storm[ss->nstorms - 1].presence_s = (double)(now - ss->t_drop) / 1e9;
    return ss->right;
}

/* After the sending that follows a storm: still right (no late leave of an
 * old membership took a new one away)? */
static void check_still_right(struct bn *b, struct storm_state *ss)
{
    int k = ss->nstorms - 1;
    if (b->cfg.presence_within <= 0 || ss->storm[k].presence_s < 0)
        return;
    ss->storm[k].still_right = look(b, ss);
    if (!ss->storm[k].still_right) {
        printf("  storm %d: member lists wrong again %.1f s after the drop: %s\n", k + 1,
               (double)(bn_now_ns() - ss->t_drop) / 1e9, ss->wrong);
        bn_problem(b, "storm %d: member lists wrong again after being right: %s", k + 1, ss->wrong);
    }
}

/* After a storm: the member lists, until right or --presence-within. */
static int check_presence(struct bn *b, struct storm_state *ss)
{
    int k = ss->nstorms - 1;
    if (b->cfg.presence_within <= 0)
        return 0;
    ss->right = false;
    ss->wrong[0] = '\0';
    ss->next_look_ns = 0;
    uint64_t limit = ss->t_drop + (uint64_t)(b->cfg.presence_within * 1e9);
    int rc = bn_run(b, presence_right, storm_tick, limit);
    if (ss->right) {
        printf("  storm %d: member lists right %.2f s after the drop (%u looks, the longest "
               "%.0f ms)\n",
               k + 1, ss->storm[k].presence_s, ss->storm[k].looks, ss->storm[k].look_ms);
        return rc;
    }
    printf("  storm %d: member lists not right within %.1f s of the drop (%u looks): %s\n", k + 1,
           b->cfg.presence_within, ss->storm[k].looks, ss->wrong);
    bn_problem(b, "storm %d: member lists not right within %.1f s: %s", k + 1,
               b->cfg.presence_within, ss->wrong);
    return rc == 1 ? 0 : rc;
}

static void report(struct bn *b, struct storm_state *ss, struct bn_json *j)
{
    bn_json_open(j, "storms", '[');
    for (int k = 0; k < ss->nstorms; k++) {
        bn_json_open(j, NULL, '{');
        bn_json_int(j, "rejoined", ss->storm[k].rejoined);
        bn_json_num(j, "seconds", round(ss->storm[k].seconds * 1000) / 1000);
        bn_json_int(j, "failed_attempts", (long long)ss->storm[k].failures);
        if (b->cfg.presence_within > 0) {
            bn_json_num(j, "presence_right_s", round(ss->storm[k].presence_s * 1000) / 1000);
            bn_json_int(j, "presence_looks", ss->storm[k].looks);
            bn_json_num(j, "presence_check_ms", round(ss->storm[k].look_ms * 10) / 10);
            bn_json_bool(j, "presence_still_right", ss->storm[k].still_right);
        }
        bn_json_close(j, '}');
    }
    bn_json_close(j, ']');
    bn_json_int(j, "recovered", (long long)b->st.recovered);
    bn_json_int(j, "not_recovered", (long long)b->st.not_recovered);
    bn_json_int(j, "recovery_gaps", (long long)b->st.recovery_gaps);
    bn_json_int(j, "history_received", (long long)b->st.history_received);
    bn_json_latency(j, "rejoin_latency_us", &b->rejoin_lat);
    bn_json_open(j, "rss_peak_kib", '{');
    for (int i = 0; i < b->cfg.npids; i++)
        bn_json_int(j, b->cfg.pids[i].name, ss->peak_kib[i]);
    bn_json_close(j, '}');
}

int bn_storm_run(struct bn *b)
{
    const struct bn_config *cfg = &b->cfg;
    struct storm_state state, *ss = &state;
    struct bn_proc_sample before[BN_MAX_PIDS], after[BN_MAX_PIDS];
    static const char *drops[] = {"rst", "fin", "close"};
    int rc;

    memset(ss, 0, sizeof(*ss));
    ss->clients = (uint32_t)cfg->clients;
    b->mode = ss;
    b->ops.on_ready = storm_on_ready;
    b->ops.on_closed = storm_on_closed;
    ss->expect = calloc(b->nrooms, sizeof(*ss->expect));
    ss->seen = calloc(b->nconns, sizeof(*ss->seen));
    if (!ss->expect || !ss->seen) {
        free(ss->expect);
        free(ss->seen);
        fprintf(stderr, "chat-bench: out of memory\n");
        return 2;
    }
    for (uint32_t i = 0; i < b->nconns; i++) {
        b->conns[i].room = (int32_t)(i % b->nrooms);
        ss->expect[i % b->nrooms]++;
    }
    b->nsenders = (uint32_t)cfg->senders;
    for (uint32_t k = 0; k < b->nsenders; k++) {
        b->senders[k] = ss->clients + k;
        b->conns[ss->clients + k].flags |= BN_F_SENDER;
    }
    printf("chat-bench storm: %u clients in %u rooms over %d gateway(s), %u extra senders at "
           "%.0f msg/s, %ld storm(s) %.0f s apart, drop by %s\n",
           ss->clients, b->nrooms, cfg->nurls, b->nsenders, cfg->rate, cfg->storms, cfg->duration,
           drops[cfg->drop]);

    bn_open_all(b, 0, b->nconns);
    rc = bn_run(b, all_joined, NULL, bn_now_ns() + (uint64_t)(30 + b->nconns / 200) * BN_NS);
    if (b->ready < b->nconns)
        bn_problem(b, "only %u of %u connections joined", b->ready, b->nconns);
    printf("  joined %u/%u in %.2f s\n", b->ready, b->nconns,
           (double)(bn_now_ns() - b->t_start_ns) / 1e9);
    if (rc >= 0)
        rc = bn_run(b, NULL, NULL, bn_now_ns() + (uint64_t)(cfg->settle * 1e9));
    bn_proc_read_all(b, before);
    sample_memory(b, ss);
    bn_hist_reset(&b->lat);

    if (rc >= 0 && b->ready == b->nconns) {
        b->send_for_s = 1e9; /* stopped below, after the last storm */
        bn_send_start(b);
        rc = bn_run(b, NULL, storm_tick, bn_now_ns() + (uint64_t)(cfg->duration * 1e9));
        for (long k = 0; rc >= 0 && k < cfg->storms; k++) {
            rc = one_storm(b, ss);
            if (rc >= 0 && ss->rejoined == ss->clients)
                rc = check_presence(b, ss);
            if (rc >= 0)
                rc = bn_run(b, NULL, storm_tick, bn_now_ns() + (uint64_t)(cfg->duration * 1e9));
            if (rc >= 0)
                check_still_right(b, ss);
        }
        bn_send_stop(b);
        if (rc >= 0) {
            rc = bn_run(b, bn_chat_drained, NULL, bn_now_ns() + (uint64_t)(cfg->drain * 1e9));
            if (rc == 1)
                bn_problem(b, "not drained within --drain %.1f s", cfg->drain);
        }
    }
    bn_proc_read_all(b, after);
    sample_memory(b, ss);
    bn_progress(b, true);

    uint64_t expected, loss, extra;
    bn_chat_loss(b, &expected, &loss, &extra);
    const struct bn_stats *s = &b->st;
    struct bn_json j;
    bn_json_init(&j);
    bn_json_str(&j, "mode", "storm");
    bn_json_int(&j, "clients", ss->clients);
    bn_json_int(&j, "rooms", b->nrooms);
    bn_json_int(&j, "gateways", cfg->nurls);
    bn_json_int(&j, "senders", b->nsenders);
    bn_json_num(&j, "rate", cfg->rate);
    bn_json_str(&j, "drop", drops[cfg->drop]);
    bn_json_int(&j, "storm_concurrency", cfg->storm_concurrency);
    report(b, ss, &j);
    bn_json_int(&j, "sent", (long long)s->sent);
    bn_json_int(&j, "acked", (long long)s->acked);
    bn_json_int(&j, "send_errors", (long long)s->send_errors);
    bn_json_int(&j, "expected", (long long)expected);
    bn_json_int(&j, "received", (long long)(s->received + s->history_received));
    bn_json_int(&j, "loss", (long long)loss);
    bn_json_int(&j, "unexpected", (long long)extra);
    bn_json_int(&j, "duplicates", (long long)s->duplicates);
    bn_json_int(&j, "seq_gaps", (long long)s->gaps);
    bn_json_latency(&j, "latency_us", &b->lat);
    printf("  rejoins: %llu recovered, %llu not recovered, %llu recovered with a gap\n",
           (unsigned long long)s->recovered, (unsigned long long)s->not_recovered,
           (unsigned long long)s->recovery_gaps);
    bn_print_latency("drop->joined again", &b->rejoin_lat);
    printf("  messages: sent %llu, acked %llu, errors %llu; deliveries %llu live + %llu from "
           "history of "
           "%llu expected: loss %llu, duplicates %llu, seq gaps %llu\n",
           (unsigned long long)s->sent, (unsigned long long)s->acked,
           (unsigned long long)s->send_errors, (unsigned long long)s->received,
           (unsigned long long)s->history_received, (unsigned long long)expected,
           (unsigned long long)loss, (unsigned long long)s->duplicates,
           (unsigned long long)s->gaps);
    bn_print_latency("latency send->receipt", &b->lat);
    bn_report_servers(b, &j, before, after);
    for (int i = 0; i < cfg->npids; i++)
        printf("  server %-12s peak rss seen %ld KiB (before the storms %ld KiB)\n",
               cfg->pids[i].name, ss->peak_kib[i], before[i].rss_kib);
    bn_report_common(b, &j);

    bool all_back = ss->nstorms == cfg->storms;
    for (int k = 0; k < ss->nstorms; k++)
        all_back = all_back && ss->storm[k].rejoined == ss->clients &&
                   (cfg->presence_within <= 0 ||
                    (ss->storm[k].presence_s >= 0 && ss->storm[k].still_right));
    bool ok = rc >= 0 && all_back && s->not_recovered == 0 && s->recovery_gaps == 0 && loss == 0 &&
              extra == 0 && s->duplicates == 0 && s->gaps == 0 && s->disconnects == 0;
    bn_report_delivery_problems(b, loss, expected, extra);
    bn_close_all(b);
    bn_report_finish(b, &j, ok);
    free(ss->expect);
    free(ss->seen);
    return ok ? 0 : 1;
}
