/*
 * Redis connection URLs: redis://[[user]:password@]host[:port][/db].
 *
 * The user and password may be percent-encoded (a '/' or '@' in them must
 * be). A password with no user ("redis://:secret@host", or as redis-cli
 * also reads it, "redis://secret@host") authenticates as the default user;
 * a user with a password uses Redis 6 ACLs (AUTH user password).
 */
#ifndef CM_REDIS_URL_H
#define CM_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#define CM_REDIS_DEFAULT "redis://127.0.0.1:6379"
#define CM_SEEDS_MAX 32

struct cm_redis_url {
    char host[256];
    int port;          /* default 6379 */
    char user[128];    /* empty: default user */
    char password[256]; /* empty: no AUTH */
    int db;            /* default 0 */
};

/* Returns 0, or -1 with a reason in err. */
int cm_redis_url_parse(const char *url, struct cm_redis_url *out, char *err, size_t errlen);

/* A cm_option.check for Redis URLs. */
int cm_check_redis_url(const char *value, char *err, size_t errlen);

/* A Redis Cluster's seed nodes: a comma-separated list of host:port or
 * redis:// URLs (database 0 only). Returns 0 with *n entries in out, or -1
 * with a reason in err. */
int cm_redis_seeds_parse(const char *list, struct cm_redis_url *out, size_t max, size_t *n,
                         char *err, size_t errlen);
/* A cm_option.check for seed lists. */
int cm_check_redis_seeds(const char *value, char *err, size_t errlen);

/* The three rows of a cm_option table (cm_config.h) that say what both
 * binaries talk to: --redis, --redis-cluster and --event-partitions, stored
 * at the three offsets given (a string, a string, a long long). */
/* clang-format off: three table rows, laid out as rows */
#define CM_REDIS_OPTIONS(redis_offset, cluster_offset, partitions_offset)                          \
    {"redis", CM_OPT_STR, (redis_offset), NULL, "URL",                                             \
     "one Redis: redis://[[user]:password@]host[:port][/db] (default: " CM_REDIS_DEFAULT ")", 0,   \
     0, cm_check_redis_url},                                                                       \
    {"redis-cluster", CM_OPT_STR, (cluster_offset), NULL, "NODES",                                 \
     "a Redis Cluster instead: seed nodes, host:port or redis:// URLs, comma-separated", 0,        \
     0, cm_check_redis_seeds},                                                                     \
    {"event-partitions", CM_OPT_INT, (partitions_offset), "16", "N",                               \
     "Redis Cluster: the streams of join and leave events (the same for gateways and "             \
     "workers)",                                                                                   \
     1, 1024, NULL}
/* clang-format on */

/* What a process talks to: one Redis (--redis, by default CM_REDIS_DEFAULT)
 * or a Redis Cluster (--redis-cluster), never both. */
struct cm_redis_target {
    struct cm_redis_url seeds[CM_SEEDS_MAX];
    size_t nseeds;
    bool cluster;
};
/* From the two flags' values (NULL: not given). 0, or -1 with a reason. */
int cm_redis_target_parse(const char *redis, const char *cluster, struct cm_redis_target *t,
                          char *err, size_t errlen);

#endif
