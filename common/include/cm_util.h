/*
 * Small utilities shared by every binary.
 *
 * Allocation policy: a daemon that cannot allocate a few hundred bytes has
 * no sensible way to go on, so cm_malloc and friends abort with the call
 * site on failure and never return NULL. Callers therefore carry no NULL
 * checks for these.
 */
#ifndef CM_UTIL_H
#define CM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define cm_malloc(n) cm_malloc_at((n), __FILE__, __LINE__)
#define cm_calloc(n, m) cm_calloc_at((n), (m), __FILE__, __LINE__)
#define cm_realloc(p, n) cm_realloc_at((p), (n), __FILE__, __LINE__)
#define cm_strdup(s) cm_strdup_at((s), __FILE__, __LINE__)
#define cm_strndup(s, n) cm_strndup_at((s), (n), __FILE__, __LINE__)

void *cm_malloc_at(size_t n, const char *file, int line);
void *cm_calloc_at(size_t n, size_t m, const char *file, int line);
void *cm_realloc_at(void *p, size_t n, const char *file, int line);
char *cm_strdup_at(const char *s, const char *file, int line);
char *cm_strndup_at(const char *s, size_t n, const char *file, int line);

#define CM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wall-clock milliseconds since the Unix epoch. */
int64_t cm_now_ms(void);
/* Monotonic milliseconds, for timeouts and rates. */
int64_t cm_mono_ms(void);

/* Fills buf with 2*n lowercase hex characters of randomness from
 * getrandom(2) (falling back to a time-seeded mix if it fails), plus NUL.
 * buf must hold 2*n+1 bytes. */
void cm_random_hex(char *buf, size_t n);
/* A random value in [0, n) from the same source (0 when n is 0): for
 * jitter, where a slight modulo bias does not matter. */
uint64_t cm_random_below(uint64_t n);

/*
 * A growable byte buffer. `headroom` bytes are kept free before the data so
 * that a transport (lws needs LWS_PRE) can prepend its framing without a
 * copy. Data is always NUL-terminated for convenience.
 */
struct cm_sbuf {
    char *mem;       /* allocation; data starts at mem + headroom */
    size_t headroom; /* bytes reserved before the data */
    size_t len;      /* bytes of data */
    size_t cap;      /* bytes available for data, excluding the NUL */
};

void cm_sbuf_init(struct cm_sbuf *b, size_t headroom);
void cm_sbuf_free(struct cm_sbuf *b);
void cm_sbuf_reset(struct cm_sbuf *b);
void cm_sbuf_append(struct cm_sbuf *b, const void *data, size_t len);
void cm_sbuf_puts(struct cm_sbuf *b, const char *s);
void cm_sbuf_printf(struct cm_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included, escaping what RFC
 * 8259 requires (quote, backslash, control characters); other bytes pass
 * through, so valid UTF-8 stays valid. */
void cm_sbuf_put_json_str(struct cm_sbuf *b, const char *s, size_t len);
static inline char *cm_sbuf_data(const struct cm_sbuf *b)
{
    return b->mem + b->headroom;
}

#endif
