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

#include <stddef.h>

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

#endif
