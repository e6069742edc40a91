/*
 * Reporting: lines for people on stdout, then exactly one JSON line, the
 * last line of stdout, for scripts. Latencies in the JSON are microseconds,
 * memory KiB, CPU seconds.
 */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct bn_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct bn_json *j, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < j->cap - j->len) {
            j->len += (size_t)n;
            return;
        }
        size_t ncap = (j->cap + (size_t)n) * 2;
        char *nb = realloc(j->buf, ncap);
        if (!nb)
            return;
        j->buf = nb;
        j->cap = ncap;
    }
}

void bn_json_init(struct bn_json *j)
{
    j->cap = 4096;
    j->buf = malloc(j->cap);
    j->len = 0;
    j->buf[0] = '\0';
    j->first = true;
    put(j, "{");
}

void bn_json_free(struct bn_json *j)
{
    free(j->buf);
    j->buf = NULL;
}

static void key(struct bn_json *j, const char *k)
{
    if (!j->first)
        put(j, ",");
    j->first = false;
    if (k)
        put(j, "\"%s\":", k);
}

void bn_json_num(struct bn_json *j, const char *k, double v)
{
    key(j, k);
    if (!isfinite(v))
        put(j, "null");
    else if (fabs(v) >= 1e15 || v == floor(v))
        put(j, "%.0f", v);
    else
        put(j, "%.6g", v);
}

void bn_json_int(struct bn_json *j, const char *k, long long v)
{
    key(j, k);
    put(j, "%lld", v);
}

void bn_json_str(struct bn_json *j, const char *k, const char *v)
{
    key(j, k);
    put(j, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(j, "\\%c", *p);
        else if (*p < 0x20)
            put(j, "\\u%04x", *p);
        else
            put(j, "%c", *p);
    }
    put(j, "\"");
}

void bn_json_bool(struct bn_json *j, const char *k, bool v)
{
    key(j, k);
    put(j, v ? "true" : "false");
}

void bn_json_open(struct bn_json *j, const char *k, char bracket)
{
    key(j, k);
    put(j, "%c", bracket);
    j->first = true;
}

void bn_json_close(struct bn_json *j, char bracket)
{
    put(j, "%c", bracket);
    j->first = false;
}

const char *bn_fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 10000)
        snprintf(buf, len, "%.2f us", (double)ns / 1e3);
    else if (ns < 10000000)
        snprintf(buf, len, "%.3f ms", (double)ns / 1e6);
    else if (ns < 10000000000ull)
        snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", (double)ns / 1e9);
    return buf;
}

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

void bn_json_latency(struct bn_json *j, const char *k, const struct bn_hist *h)
{
    bn_json_open(j, k, '{');
    bn_json_int(j, "count", (long long)h->count);
    bn_json_num(j, "p50", round(us(bn_hist_quantile(h, 0.50)) * 10) / 10);
    bn_json_num(j, "p90", round(us(bn_hist_quantile(h, 0.90)) * 10) / 10);
    bn_json_num(j, "p99", round(us(bn_hist_quantile(h, 0.99)) * 10) / 10);
    bn_json_num(j, "p999", round(us(bn_hist_quantile(h, 0.999)) * 10) / 10);
    bn_json_num(j, "max", round(us(h->max) * 10) / 10);
    bn_json_close(j, '}');
}

void bn_print_latency(const char *label, const struct bn_hist *h)
{
    char a[32], b5[32], c[32], d[32], e[32];
    if (h->count == 0) {
        printf("  %-22s no samples\n", label);
        return;
    }
    printf("  %-22s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%llu samples)\n", label,
           bn_fmt_ns(bn_hist_quantile(h, 0.5), a, sizeof(a)),
           bn_fmt_ns(bn_hist_quantile(h, 0.9), b5, sizeof(b5)),
           bn_fmt_ns(bn_hist_quantile(h, 0.99), c, sizeof(c)),
           bn_fmt_ns(bn_hist_quantile(h, 0.999), d, sizeof(d)), bn_fmt_ns(h->max, e, sizeof(e)),
           (unsigned long long)h->count);
}

double bn_report_servers(struct bn *b, struct bn_json *j, const struct bn_proc_sample *before,
                         const struct bn_proc_sample *after)
{
    double cpu = 0;
    long rss = 0;
    bn_json_open(j, "servers", '[');
    for (int i = 0; i < b->cfg.npids; i++) {
        const struct bn_proc_sample *x = &before[i], *y = &after[i];
        double d = x->ok && y->ok ? y->cpu_s - x->cpu_s : 0;
        cpu += d;
        rss += y->rss_kib;
        bn_json_open(j, NULL, '{');
        bn_json_str(j, "name", b->cfg.pids[i].name);
        bn_json_int(j, "pid", b->cfg.pids[i].pid);
        bn_json_bool(j, "alive", y->ok);
        bn_json_num(j, "cpu_s", round(d * 100) / 100);
        bn_json_int(j, "rss_kib", y->rss_kib);
        bn_json_int(j, "hwm_kib", y->hwm_kib);
        bn_json_close(j, '}');
        printf("  server %-12s pid %-7d cpu %6.2f s  rss %7ld KiB  peak %7ld KiB%s\n",
               b->cfg.pids[i].name, b->cfg.pids[i].pid, d, y->rss_kib, y->hwm_kib,
               y->ok ? "" : "  (GONE)");
        if (!y->ok)
            bn_problem(b, "server %s (pid %d) is gone", b->cfg.pids[i].name, b->cfg.pids[i].pid);
    }
    bn_json_close(j, ']');
    bn_json_num(j, "server_cpu_s", round(cpu * 100) / 100);
    bn_json_int(j, "server_rss_kib", rss);
    return cpu;
}

static uint64_t calls_of(const struct bn_redis_stats *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->calls[i];
    return 0;
}

void bn_report_redis(struct bn_json *j, const struct bn_redis_stats *before,
                     const struct bn_redis_stats *after, uint64_t messages)
{
    if (!before->ok || !after->ok)
        return;
    uint64_t total = 0;
    double per = messages ? 1.0 / (double)messages : 0;
    bn_json_open(j, "redis", '{');
    bn_json_int(j, "messages", (long long)messages);
    bn_json_open(j, "calls", '{');
    printf("  redis commands in the window (%llu messages acked):\n", (unsigned long long)messages);
    for (int i = 0; i < after->n; i++) {
        if (strcmp(after->names[i], "info") == 0)
            continue; /* our own two reads */
        uint64_t d = after->calls[i] - calls_of(before, after->names[i]);
        if (d == 0)
            continue;
        total += d;
        bn_json_int(j, after->names[i], (long long)d);
        printf("    %-22s %10llu  (%.3f per message)\n", after->names[i], (unsigned long long)d,
               (double)d * per);
    }
    bn_json_close(j, '}');
    uint64_t evalsha = calls_of(after, "evalsha") - calls_of(before, "evalsha");
    bn_json_num(j, "evalsha_per_message", round((double)evalsha * per * 1000) / 1000);
    bn_json_num(j, "commands_per_message", round((double)total * per * 1000) / 1000);
    bn_json_close(j, '}');
    printf("    evalsha per message %.3f, all commands per message %.3f\n", (double)evalsha * per,
           (double)total * per);
}

void bn_report_common(struct bn *b, struct bn_json *j)
{
    const struct bn_stats *s = &b->st;
    bn_json_int(j, "connects_ok", (long long)s->connects_ok);
    bn_json_int(j, "connect_failures", (long long)s->connect_failures);
    bn_json_int(j, "disconnects", (long long)s->disconnects);
    bn_json_open(j, "close_codes", '{');
    static const char *names[] = {"1000", "1001", "1008", "1013", "other"};
    for (int i = 0; i < 5; i++)
        if (s->close_codes[i])
            bn_json_int(j, names[i], (long long)s->close_codes[i]);
    bn_json_close(j, '}');
    bn_json_int(j, "join_unavailable", (long long)s->join_unavailable);
    bn_json_int(j, "protocol_errors", (long long)s->protocol_errors);
    bn_json_int(j, "error_frames", (long long)(s->send_errors + s->join_errors + s->other_errors));
    bn_json_int(j, "frames_in", (long long)s->frames_in);
    bn_json_int(j, "bytes_in", (long long)s->bytes_in);
    printf("  connections: %llu ok, %llu failed, %llu dropped by the server",
           (unsigned long long)s->connects_ok, (unsigned long long)s->connect_failures,
           (unsigned long long)s->disconnects);
    if (s->join_unavailable)
        printf(", %llu joins answered unavailable (retried)",
               (unsigned long long)s->join_unavailable);
    if (s->protocol_errors)
        printf(", %llu protocol errors", (unsigned long long)s->protocol_errors);
    printf("\n");
}

void bn_report_delivery_problems(struct bn *b, uint64_t loss, uint64_t expected, uint64_t extra)
{
    if (loss)
        bn_problem(b, "%llu of %llu expected deliveries lost", (unsigned long long)loss,
                   (unsigned long long)expected);
    if (extra)
        bn_problem(b,
                   "%llu deliveries of messages that were never acked (answered "
                   "`unavailable`, or their sender went away)",
                   (unsigned long long)extra);
}

void bn_report_finish(struct bn *b, struct bn_json *j, bool ok)
{
    double cpu = bn_self_cpu_s();
    bn_json_num(j, "bench_cpu_s", round(cpu * 100) / 100);
    bn_json_num(j, "elapsed_s", round((double)(bn_now_ns() - b->t_start_ns) / 1e7) / 100);
    bn_json_str(j, "problem", b->problem);
    bn_json_bool(j, "ok", ok);
    put(j, "}");
    if (!b->problem[0])
        printf("  result: %s\n", ok ? "OK" : "FAILED");
    else
        printf("  result: %s — %s: %s\n", ok ? "OK" : "FAILED", ok ? "note" : "first problem",
               b->problem);
    printf("%s\n", j->buf);
    fflush(stdout);
    bn_json_free(j);
}
