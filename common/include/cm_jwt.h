/*
 * HS256 JSON Web Tokens, as PROTOCOL.md's optional authentication uses them:
 * the signature checked with OpenSSL's HMAC-SHA256 and a constant-time
 * compare, then the claims the gateway enforces.
 */
#ifndef CM_JWT_H
#define CM_JWT_H

#include "cm_proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CM_JWT_MAX_ROOMS 64

/* What a valid token grants. */
struct cm_jwt_claims {
    char sub[CM_NICK_MAX_BYTES + 1]; /* the only nickname allowed */
    int64_t exp;                     /* seconds since the epoch; 0: never expires */
    bool has_rooms;                  /* false: every room */
    size_t nrooms;
    char rooms[CM_JWT_MAX_ROOMS][CM_ROOM_MAX + 1]; /* exact names, or prefixes ending in '*' */
};

/*
 * Verifies token (len bytes, not necessarily NUL-terminated) against the
 * shared secret at time now (seconds), allowing skew seconds of clock
 * difference for exp and nbf. Returns 0 and fills out, or -1 with a static
 * reason in *why. Only alg HS256 is accepted; sub must be a valid nickname;
 * rooms, when present, an array of strings.
 */
int cm_jwt_verify(const char *token, size_t len, const char *secret, int64_t now, int64_t skew,
                  struct cm_jwt_claims *out, const char **why);

/* Whether the claims allow joining room. */
bool cm_jwt_room_allowed(const struct cm_jwt_claims *c, const char *room);

#endif
