/*
 * The chat protocol as a benchmark client speaks it: join (with since and
 * epoch after a drop), bench messages, and the accounting of what arrives.
 *
 * Received frames take a fast path when they start the way our gateway
 * writes them ({"type":"message","seq":N,...}, {"type":"ack",...}): the seq
 * and the send timestamp are read without a JSON parse. Anything else goes
 * through cJSON, so a gateway that orders fields differently is still
 * understood, only more slowly.
 *
 * A bench message's text is "b:<run>:<sender>:<ns>:" padded with 'x' to
 * --size bytes; <ns> is CLOCK_MONOTONIC at the send, so send-to-receipt
 * latency needs no clock agreement (sender and receiver are this process).
 */
#include "bench.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PFX_MESSAGE "{\"type\":\"message\","
#define PFX_ACK "{\"type\":\"ack\","
#define PFX_PRESENCE "{\"type\":\"presence\","
#define PFX_PRESENCE_BATCH "{\"type\":\"presence_" /* presence_diff, presence_count */
#define PFX_PONG "{\"type\":\"pong\""
#define LIT(s) s, sizeof(s) - 1

uint64_t bn_rand(struct bn *b)
{
    /* xorshift64*: masks and handshake nonces need no more than this. */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static bool starts(const char *p, size_t n, const char *lit, size_t litlen)
{
    return n >= litlen && memcmp(p, lit, litlen) == 0;
}

/* Parses decimal digits at *pp (advancing it); -1 if there are none. */
static int64_t parse_uint(const char **pp, const char *end)
{
    const char *p = *pp;
    int64_t v = 0;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    while (p < end && *p >= '0' && *p <= '9' && v < (INT64_MAX - 9) / 10)
        v = v * 10 + (*p++ - '0');
    *pp = p;
    return v;
}

/* Reads the bench marker "b:<run>:<sender>:<ns>:" of a message text; returns
 * true and the send time when the text is one of this run's messages. */
static bool bench_marker(const struct bn *b, const char *t, const char *end, uint64_t *sent_ns)
{
    if (end - t < 12 || t[0] != 'b' || t[1] != ':' || memcmp(t + 2, b->run_id, 8) != 0 ||
        t[10] != ':')
        return false;
    const char *p = t + 11;
    if (parse_uint(&p, end) < 0 || p >= end || *p++ != ':')
        return false;
    int64_t ns = parse_uint(&p, end);
    if (ns < 0)
        return false;
    *sent_ns = (uint64_t)ns;
    return true;
}

/* One message of c's room, live (now set) or from a joined history (now 0). */
/* A churn member's message: its order is checked, nothing else counted. */
static void receive_churn(struct bn *b, struct bn_conn *c, int64_t seq, bool bench)
{
    if (!(c->flags & BN_F_JOINED))
        return; /* before its joined: the seq to start from is not known yet */
    if (seq <= c->last_seq)
        b->st.churn_duplicates++;
    else if (seq > c->last_seq + 1)
        b->st.churn_gaps++;
    if (seq > c->last_seq)
        c->last_seq = seq;
    if (bench)
        b->st.churn_received++;
}

static void receive(struct bn *b, struct bn_conn *c, int64_t seq, bool bench, uint64_t sent_ns,
                    uint64_t now)
{
    if (c->flags & BN_F_CHURN) {
        receive_churn(b, c, seq, bench);
        return;
    }
    if (!(c->flags & BN_F_JOINED)) {
        b->st.early_messages++;
        return;
    }
    if (seq <= c->last_seq) {
        b->st.duplicates++;
        return;
    }
    if (seq > c->last_seq + 1) {
        b->st.gaps++;
        b->st.gap_missing += (uint64_t)(seq - c->last_seq - 1);
    }
    c->last_seq = seq;
    if (!bench) {
        b->st.foreign++;
        return;
    }
    c->received++;
    if (!now) {
        b->st.history_received++;
        return;
    }
    b->st.received++;
    uint64_t lat = now > sent_ns ? now - sent_ns : 0;
    bn_hist_add(&b->lat, lat);
    bn_hist_add(&b->lat_sec, lat);
    b->t_last_rx_ns = now;
}

/* The join was answered (joined or an error). */
static void join_answered(struct bn *b, struct bn_conn *c)
{
    if (c->flags & BN_F_JOINING) {
        c->flags &= (uint16_t)~BN_F_JOINING;
        b->joining--;
    }
}

static void on_message_fast(struct bn *b, struct bn_conn *c, const char *p, size_t n, uint64_t now)
{
    const char *end = p + n;
    const char *q = p + sizeof(PFX_MESSAGE) - 1;
    if (starts(q, (size_t)(end - q), LIT("\"seq\":"))) {
        q += 6;
    } else {
        /* An unescaped "seq": can only be the key: inside a JSON string
         * every quote is escaped. */
        q = memmem(p, n, LIT("\"seq\":"));
        if (!q) {
            b->st.protocol_errors++;
            return;
        }
        q += 6;
    }
    int64_t seq = parse_uint(&q, end);
    const char *t = memmem(q, (size_t)(end - q), LIT("\"message\":\""));
    if (seq <= 0 || !t) {
        b->st.protocol_errors++;
        return;
    }
    t += sizeof("\"message\":\"") - 1;
    uint64_t sent_ns = 0;
    bool bench = bench_marker(b, t, end, &sent_ns);
    receive(b, c, seq, bench, sent_ns, now);
}

static void on_ack_fast(struct bn *b, struct bn_conn *c, const char *p, size_t n)
{
    const char *q = memmem(p, n, LIT("\"seq\":"));
    int64_t seq = -1;
    if (q) {
        q += 6;
        seq = parse_uint(&q, p + n);
    }
    if (seq <= 0 || c->room < 0) {
        b->st.protocol_errors++;
        return;
    }
    struct bn_room *r = &b->rooms[c->room];
    if (r->nacked == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 1024;
        int64_t *na = realloc(r->acked, ncap * sizeof(*na));
        if (!na) {
            bn_problem(b, "out of memory recording acks");
            return;
        }
        r->acked = na;
        r->cap = ncap;
    }
    r->acked[r->nacked++] = seq;
    if (seq > r->max_acked)
        r->max_acked = seq;
    b->st.acked++;
    if (c->inflight)
        c->inflight--;
}

static int64_t json_int(const cJSON *o, const char *key, int64_t def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A message object (a live frame in another field order, or a history item). */
static void on_message_obj(struct bn *b, struct bn_conn *c, const cJSON *o, uint64_t now)
{
    int64_t seq = json_int(o, "seq", -1);
    const char *text = json_str(o, "message");
    if (seq <= 0 || !text) {
        b->st.protocol_errors++;
        return;
    }
    uint64_t sent_ns = 0;
    bool bench = bench_marker(b, text, text + strlen(text), &sent_ns);
    receive(b, c, seq, bench, sent_ns, now);
}

static void on_joined(struct bn *b, struct bn_conn *c, const cJSON *o, uint64_t now)
{
    struct bn_room *r = c->room >= 0 ? &b->rooms[c->room] : NULL;
    const char *room = json_str(o, "room");
    const char *epoch = json_str(o, "epoch");
    int64_t seq = json_int(o, "seq", -1);
    if (!r || !room || strcmp(room, r->name) != 0 || seq < 0 || !epoch) {
        b->st.protocol_errors++;
        bn_problem(b, "connection %u: a joined frame that does not match its join", c->id);
        return;
    }
    if (!r->epoch[0]) {
        snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    } else if (strcmp(r->epoch, epoch) != 0) {
        b->st.epoch_changes++;
        bn_problem(b, "room %s: epoch changed from %s to %s", r->name, r->epoch, epoch);
        snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
    }
    join_answered(b, c);
    bool first = !(c->flags & BN_F_EVER_JOINED);
    c->flags |= BN_F_JOINED | BN_F_EVER_JOINED;
    b->st.joins_ok++;
    if (first) {
        c->base_seq = c->last_seq = seq;
    } else {
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(o, "recovered");
        if (cJSON_IsTrue(rec)) {
            b->st.recovered++;
        } else {
            b->st.not_recovered++;
            bn_problem(b, "connection %u: rejoin of %s since %lld not recovered", c->id, r->name,
                       (long long)c->last_seq);
        }
        const cJSON *item, *history = cJSON_GetObjectItemCaseSensitive(o, "history");
        if (!cJSON_IsTrue(rec)) {
            /* Not recovered (history trimmed, or a new epoch): what the
             * client knew of seqs no longer applies; it starts again from
             * the history it was given, as a client must. */
            const cJSON *oldest = cJSON_GetArrayItem(history, 0);
            int64_t from = oldest ? json_int(oldest, "seq", 0) : 0;
            c->last_seq = from > 0 ? from - 1 : seq;
        }
        cJSON_ArrayForEach(item, history)
            on_message_obj(b, c, item, 0);
        if (c->last_seq < seq) { /* history stopped short of the room's seq */
            if (cJSON_IsTrue(rec))
                b->st.recovery_gaps++;
            b->st.gaps++;
            b->st.gap_missing += (uint64_t)(seq - c->last_seq);
            c->last_seq = seq;
        }
    }
    (void)now;
    if (b->ops.on_ready)
        b->ops.on_ready(b, c);
}

static void on_error(struct bn *b, struct bn_conn *c, const cJSON *o)
{
    const char *code = json_str(o, "code");
    const char *id = json_str(o, "id");
    const char *msg = json_str(o, "message");
    if (code && strcmp(code, "rate_limited") == 0)
        b->st.rate_limited++;
    if (id && id[0] == 'm') {
        b->st.send_errors++;
        if (c->inflight)
            c->inflight--;
    } else if (id && id[0] == 'j' && code && strcmp(code, "unavailable") == 0) {
        /* The broker link is down or was dropped: a client tries again
         * after a pause, 0.5-1 s, spread so the retries do not bunch. */
        b->st.join_unavailable++;
        join_answered(b, c);
        c->flags |= BN_F_RETRY;
        c->retry_ns = bn_now_ns() + 500000000ull + bn_rand(b) % 500000000ull;
        if (b->st.join_unavailable > 1)
            return; /* one line for people is enough */
    } else if (id && id[0] == 'j') {
        b->st.join_errors++;
        join_answered(b, c);
    } else {
        b->st.other_errors++;
    }
    bn_problem(b, "connection %u: error %s (%s) for %s", c->id, code ? code : "?", msg ? msg : "",
               id ? id : "a frame without id");
}

static void on_text_slow(struct bn *b, struct bn_conn *c, const char *p, size_t n, uint64_t now)
{
    cJSON *o = cJSON_ParseWithLength(p, n);
    const char *type = o ? json_str(o, "type") : NULL;
    if (!type) {
        b->st.protocol_errors++;
        bn_problem(b, "connection %u: a frame that is not a protocol object: %.*s", c->id,
                   (int)(n < 80 ? n : 80), p);
    } else if (strcmp(type, "message") == 0) {
        on_message_obj(b, c, o, now);
    } else if (strcmp(type, "welcome") == 0) {
        c->flags |= BN_F_WELCOMED;
        if (c->room < 0 && b->ops.on_ready)
            b->ops.on_ready(b, c);
    } else if (strcmp(type, "joined") == 0) {
        on_joined(b, c, o, now);
    } else if (strcmp(type, "error") == 0) {
        on_error(b, c, o);
    } else if (strcmp(type, "reconnect") == 0) {
        b->st.reconnect_frames++;
    } else if (strcmp(type, "presence") == 0) {
        b->st.presence++;
    } else if (strcmp(type, "ack") == 0) {
        on_ack_fast(b, c, p, n);
    } else if (strcmp(type, "left") == 0) {
        bn_problem(b, "connection %u: left its room (%s)", c->id,
                   json_str(o, "reason") ? json_str(o, "reason") : "?");
        c->flags &= (uint16_t)~BN_F_JOINED;
    } /* pong and anything added later: nothing to count */
    cJSON_Delete(o);
}

void bn_chat_on_text(struct bn *b, struct bn_conn *c, const char *p, size_t n, uint64_t now)
{
    if (starts(p, n, LIT(PFX_MESSAGE)))
        on_message_fast(b, c, p, n, now);
    else if (starts(p, n, LIT(PFX_ACK)))
        on_ack_fast(b, c, p, n);
    else if (starts(p, n, LIT(PFX_PRESENCE)) || starts(p, n, LIT(PFX_PRESENCE_BATCH)))
        b->st.presence++;
    else if (starts(p, n, LIT(PFX_PONG)))
        b->st.pongs++;
    else
        on_text_slow(b, c, p, n, now);
}

static int send_join(struct bn *b, struct bn_conn *c)
{
    const struct bn_room *r = &b->rooms[c->room];
    char frame[512], nick[32], presence[32] = "";
    int n;
    if (b->cfg.presence[0])
        snprintf(presence, sizeof(presence), ",\"presence\":\"%s\"", b->cfg.presence);
    /* A slot of the connect mode that joins again takes a fresh nickname, so
     * that it measures joins, not takeovers of its previous self. */
    if (c->cycle)
        snprintf(nick, sizeof(nick), "c%u.%u", c->id, c->cycle);
    else
        snprintf(nick, sizeof(nick), "c%u", c->id);
    if (c->flags & BN_F_REJOIN)
        n = snprintf(frame, sizeof(frame),
                     "{\"type\":\"join\",\"id\":\"j\",\"room\":\"%s\",\"nickname\":\"%s\","
                     "\"history\":0,\"since\":%lld,\"epoch\":\"%s\"%s}",
                     r->name, nick, (long long)c->last_seq, r->epoch, presence);
    else
        n = snprintf(frame, sizeof(frame),
                     "{\"type\":\"join\",\"id\":\"j\",\"room\":\"%s\",\"nickname\":\"%s\","
                     "\"history\":0%s}",
                     r->name, nick, presence);
    c->flags |= BN_F_JOINING;
    b->joining++;
    return bn_ws_send(b, c, 0x1, frame, (size_t)n);
}

void bn_chat_retry(struct bn *b, struct bn_conn *c, uint64_t now)
{
    if (!(c->flags & BN_F_RETRY) || now < c->retry_ns)
        return;
    c->flags &= (uint16_t)~BN_F_RETRY;
    if (c->state == BN_OPEN && c->room >= 0)
        send_join(b, c);
}

void bn_chat_on_open(struct bn *b, struct bn_conn *c)
{
    c->close_code = 0;
    if (b->ops.on_open)
        b->ops.on_open(b, c);
    if (c->fd >= 0 && c->room >= 0)
        send_join(b, c);
}

/* Writes v in decimal at p; returns the digits written. */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static size_t put_lit(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

int bn_chat_send(struct bn *b, struct bn_conn *c)
{
    if (c->state != BN_OPEN || !(c->flags & BN_F_JOINED) || c->room < 0)
        return -1;
    char frame[256 + 65536];
    size_t n = 0;
    n += put_lit(frame + n, "{\"type\":\"message\",\"id\":\"m");
    n += put_u64(frame + n, ++b->msg_id);
    n += put_lit(frame + n, "\",\"room\":\"");
    n += put_lit(frame + n, b->rooms[c->room].name);
    n += put_lit(frame + n, "\",\"message\":\"b:");
    size_t text0 = n - 2;
    n += put_lit(frame + n, b->run_id);
    frame[n++] = ':';
    n += put_u64(frame + n, c->id);
    frame[n++] = ':';
    n += put_u64(frame + n, bn_now_ns());
    frame[n++] = ':';
    size_t want = text0 + (size_t)b->cfg.size;
    if (n < want) {
        memset(frame + n, 'x', want - n);
        n = want;
    }
    n += put_lit(frame + n, "\"}");
    if (bn_ws_send(b, c, 0x1, frame, n) < 0)
        return -1;
    b->st.sent++;
    c->inflight++;
    return 0;
}

uint64_t bn_chat_inflight(const struct bn *b)
{
    uint64_t done = b->st.acked + b->st.send_errors + b->st.unanswered;
    return b->st.sent > done ? b->st.sent - done : 0;
}

bool bn_chat_drained(struct bn *b)
{
    if (bn_chat_inflight(b) > 0)
        return false;
    for (uint32_t i = 0; i < b->nconns; i++) {
        const struct bn_conn *c = &b->conns[i];
        if (c->room < 0 || c->state != BN_OPEN || !(c->flags & BN_F_JOINED) ||
            (c->flags & BN_F_CHURN))
            continue;
        if (c->last_seq < b->rooms[c->room].max_acked)
            return false;
    }
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* How many of the room's acked seqs are above seq (acked is sorted). */
static uint64_t acked_above(const struct bn_room *r, int64_t seq)
{
    size_t lo = 0, hi = r->nacked;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->acked[mid] <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->nacked - lo;
}

void bn_chat_loss(struct bn *b, uint64_t *expected, uint64_t *loss, uint64_t *extra)
{
    *expected = *loss = *extra = 0;
    for (uint32_t i = 0; i < b->nrooms; i++)
        if (b->rooms[i].nacked)
            qsort(b->rooms[i].acked, b->rooms[i].nacked, sizeof(int64_t), cmp_i64);
    for (uint32_t i = 0; i < b->nconns; i++) {
        const struct bn_conn *c = &b->conns[i];
        if (c->room < 0 || !(c->flags & BN_F_EVER_JOINED) || (c->flags & BN_F_CHURN))
            continue;
        uint64_t want = acked_above(&b->rooms[c->room], c->base_seq);
        *expected += want;
        if (c->received < want)
            *loss += want - c->received;
        else
            *extra += c->received - want;
    }
}

void bn_rooms_init(struct bn *b)
{
    for (uint32_t i = 0; i < b->nrooms; i++)
        snprintf(b->rooms[i].name, sizeof(b->rooms[i].name), "%s-%s-%u", b->cfg.room_prefix,
                 b->run_id, i);
}

bool bn_all_settled(struct bn *b)
{
    return b->qlen == 0 && b->pending == 0;
}

void bn_open_all(struct bn *b, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n && i < b->nconns; i++) {
        struct bn_conn *c = &b->conns[i];
        c->url = (uint8_t)(i % (uint32_t)b->cfg.nurls);
        bn_conn_queue(b, c);
    }
}

static bool all_closed(struct bn *b)
{
    return b->open == 0 && b->pending == 0;
}

void bn_close_all(struct bn *b)
{
    b->qlen = 0; /* nothing more is started */
    for (uint32_t i = 0; i < b->nconns; i++) {
        struct bn_conn *c = &b->conns[i];
        c->flags |= BN_F_SHUT;
        if (c->state == BN_QUEUED)
            c->state = BN_IDLE_SLOT;
        else if (c->state == BN_OPEN)
            bn_conn_close(b, c, 1000);
        else if (c->state == BN_CONNECTING || c->state == BN_HANDSHAKE)
            bn_conn_drop(b, c, false, false);
    }
    /* The servers answer the close frames; bounded, then the rest is dropped. */
    uint64_t until = bn_now_ns() + BN_CLOSE_TIMEOUT_NS;
    if (until > b->deadline_ns)
        until = b->deadline_ns;
    bn_run(b, all_closed, NULL, until);
    for (uint32_t i = 0; i < b->nconns; i++)
        bn_conn_drop(b, &b->conns[i], false, false);
}
