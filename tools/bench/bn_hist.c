/*
 * A latency histogram in the manner of HdrHistogram: values below 256 ns
 * are counted exactly; above, each power of two is split into 128 buckets,
 * so a bucket is at most 1/128 of its values wide and its midpoint, which
 * is what a quantile reports, is within 0.4% of any value in it. Adding a
 * value is a count-leading-zeros and an increment.
 */
#include "bench.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 256)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* 8..63 */
    unsigned sub = (unsigned)(v >> (msb - 7));         /* 128..255 */
    return 256 + (msb - 8) * 128 + (sub - 128);
}

/* The midpoint of bucket i. */
static uint64_t bucket_value(unsigned i)
{
    if (i < 256)
        return i;
    unsigned msb = (i - 256) / 128 + 8;
    uint64_t sub = (i - 256) % 128 + 128;
    uint64_t lo = sub << (msb - 7);
    return lo + ((1ull << (msb - 7)) >> 1);
}

void bn_hist_reset(struct bn_hist *h)
{
    memset(h, 0, sizeof(*h));
}

void bn_hist_add(struct bn_hist *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
}

uint64_t bn_hist_quantile(const struct bn_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count || rank == 0)
        rank++; /* the smallest value with at least q of all at or below it */
    uint64_t seen = 0;
    for (unsigned i = 0; i < BN_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_value(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

void bn_hist_merge(struct bn_hist *dst, const struct bn_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < BN_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
}
