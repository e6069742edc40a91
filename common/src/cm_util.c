#include "cm_util.h"

#include "cm_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n, const char *file, int line)
{
    CM_ERROR("out of memory allocating %zu bytes at %s:%d", n, file, line);
    abort();
}

void *cm_malloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n, file, line);
    return p;
}

void *cm_calloc_at(size_t n, size_t m, const char *file, int line)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom(n * m, file, line);
    return p;
}

void *cm_realloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n, file, line);
    return q;
}

char *cm_strdup_at(const char *s, const char *file, int line)
{
    return cm_strndup_at(s, strlen(s), file, line);
}

char *cm_strndup_at(const char *s, size_t n, const char *file, int line)
{
    char *p = cm_malloc_at(n + 1, file, line);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t cm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cm_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Fills raw with n random bytes. getrandom(2) does not fail or come up short
 * for requests of at most 256 bytes once the kernel's pool is ready; the
 * fallback exists for kernels and sandboxes without the call, and mixes the
 * clocks, the pid and a caller address so that two calls still differ.
 */
static void random_bytes(unsigned char *raw, size_t n, const void *salt)
{
    if (getrandom(raw, n, 0) == (ssize_t)n)
        return;
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t x = (uint64_t)a.tv_nsec ^ ((uint64_t)a.tv_sec << 30) ^ ((uint64_t)b.tv_nsec << 17) ^
                 ((uint64_t)getpid() << 40) ^ (uintptr_t)salt ^ (uintptr_t)raw;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        raw[i] = (unsigned char)(x >> 24);
    }
}

void cm_random_hex(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];

    /* In chunks, so that any n gets the 2*n characters the caller sized for. */
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof(raw) ? n - done : sizeof(raw);
        random_bytes(raw, k, buf + 2 * done);
        for (size_t i = 0; i < k; i++) {
            buf[2 * (done + i)] = hex[raw[i] >> 4];
            buf[2 * (done + i) + 1] = hex[raw[i] & 15];
        }
        done += k;
    }
    buf[2 * n] = '\0';
}

uint64_t cm_random_below(uint64_t n)
{
    uint64_t x;
    random_bytes((unsigned char *)&x, sizeof(x), &x);
    return n ? x % n : 0; /* the modulo bias is negligible for jitter */
}

void cm_sbuf_init(struct cm_sbuf *b, size_t headroom)
{
    b->headroom = headroom;
    b->len = 0;
    b->cap = 256;
    b->mem = cm_malloc(headroom + b->cap + 1);
    b->mem[headroom] = '\0';
}

/* Leaves b empty but usable: a later append allocates again. */
void cm_sbuf_free(struct cm_sbuf *b)
{
    free(b->mem);
    b->mem = NULL;
    b->len = b->cap = 0;
}

void cm_sbuf_reset(struct cm_sbuf *b)
{
    b->len = 0;
    if (b->mem)
        b->mem[b->headroom] = '\0';
}

/*
 * Makes room for extra more bytes plus the NUL. Works from any state,
 * including a zeroed or freed buffer (cap 0, which doubling alone would
 * never grow). A size that cannot be represented is treated as out of
 * memory, like any other allocation failure.
 */
static void reserve(struct cm_sbuf *b, size_t extra)
{
    if (b->mem && extra <= b->cap - b->len)
        return;
    size_t need = b->len + extra;
    if (need < b->len || need > (SIZE_MAX - b->headroom - 1) / 2) {
        CM_ERROR("buffer of %zu + %zu bytes is too large", b->len, extra);
        abort();
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->mem = cm_realloc(b->mem, b->headroom + cap + 1);
    b->cap = cap;
}

void cm_sbuf_append(struct cm_sbuf *b, const void *data, size_t len)
{
    if (len == 0)
        return; /* data may be NULL then, and memcpy(NULL, 0) is undefined */
    reserve(b, len);
    memcpy(cm_sbuf_data(b) + b->len, data, len);
    b->len += len;
    cm_sbuf_data(b)[b->len] = '\0';
}

void cm_sbuf_puts(struct cm_sbuf *b, const char *s)
{
    cm_sbuf_append(b, s, strlen(s));
}

void cm_sbuf_printf(struct cm_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(cm_sbuf_data(b) + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cm_sbuf_put_json_str(struct cm_sbuf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    reserve(b, len + 2);
    cm_sbuf_append(b, "\"", 1);
    size_t run = 0; /* bytes that need no escaping, copied in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        cm_sbuf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            n = 6;
        }
        cm_sbuf_append(b, esc, n);
    }
    cm_sbuf_append(b, s + run, len - run);
    cm_sbuf_append(b, "\"", 1);
}
