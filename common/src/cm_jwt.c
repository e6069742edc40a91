#include "cm_jwt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#define JWT_MAX 4096

/* Decodes base64url without padding into out; returns the length or -1. */
static long b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return -1; /* a dangling character, or non-zero padding bits */
    return (long)n;
}

/* Decodes one base64url part into a parsed JSON object (or NULL). */
static cJSON *decode_json(const char *part, size_t len)
{
    unsigned char buf[JWT_MAX];
    long n = b64url_decode(part, len, buf, sizeof(buf));
    if (n < 0)
        return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, (size_t)n);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static bool signature_ok(const char *token, size_t signed_len, const char *sig, size_t sig_len,
                         const char *secret)
{
    unsigned char want[EVP_MAX_MD_SIZE], got[64];
    unsigned int want_len = 0;
    long got_len = b64url_decode(sig, sig_len, got, sizeof(got));
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)token, signed_len,
              want, &want_len))
        return false;
    /* Constant time: how much of a forged signature matched must not leak. */
    return got_len == (long)want_len && CRYPTO_memcmp(want, got, want_len) == 0;
}

/* A NumericDate claim: absent is fine (0), present must be a whole number. */
static int numeric_date(const cJSON *payload, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, name);
    *out = 0;
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 1e15)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int read_rooms(const cJSON *payload, struct cm_jwt_claims *out)
{
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(payload, "rooms");
    const cJSON *r;
    if (!rooms)
        return 0;
    if (!cJSON_IsArray(rooms) || cJSON_GetArraySize(rooms) > CM_JWT_MAX_ROOMS)
        return -1;
    out->has_rooms = true;
    cJSON_ArrayForEach(r, rooms) {
        const char *s = cJSON_GetStringValue(r);
        size_t n = s ? strlen(s) : 0;
        bool prefix = n > 0 && s[n - 1] == '*';
        /* A pattern's prefix may be empty ("*": every room). */
        if (!s || n > CM_ROOM_MAX || (!prefix && !cm_room_valid(s, n)) ||
            (prefix && n > 1 && !cm_room_valid(s, n - 1)))
            return -1;
        memcpy(out->rooms[out->nrooms++], s, n + 1);
    }
    return 0;
}

static int read_claims(const cJSON *payload, int64_t now, int64_t skew,
                       struct cm_jwt_claims *out, const char **why)
{
    const char *sub = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(payload, "sub"));
    int64_t nbf;
    if (!sub || !cm_nickname_valid(sub, strlen(sub))) {
        *why = "the token's sub is not a valid nickname";
        return -1;
    }
    snprintf(out->sub, sizeof(out->sub), "%s", sub);
    if (numeric_date(payload, "exp", &out->exp) || numeric_date(payload, "nbf", &nbf)) {
        *why = "the token's exp or nbf is not a date";
        return -1;
    }
    if (out->exp && now > out->exp + skew) {
        *why = "the token has expired";
        return -1;
    }
    if (nbf && now + skew < nbf) {
        *why = "the token is not valid yet";
        return -1;
    }
    if (read_rooms(payload, out)) {
        *why = "the token's rooms claim is not a list of room names";
        return -1;
    }
    return 0;
}

int cm_jwt_verify(const char *token, size_t len, const char *secret, int64_t now, int64_t skew,
                  struct cm_jwt_claims *out, const char **why)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    cJSON *header = NULL, *payload = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    *why = "malformed token";
    if (len > JWT_MAX || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        goto out;
    header = decode_json(token, (size_t)(dot1 - token));
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0) {
        *why = "only HS256 tokens are accepted";
        goto out;
    }
    if (!signature_ok(token, (size_t)(dot2 - token), dot2 + 1, len - (size_t)(dot2 + 1 - token),
                      secret)) {
        *why = "bad signature";
        goto out;
    }
    payload = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!payload)
        goto out;
    rc = read_claims(payload, now, skew, out, why);
out:
    cJSON_Delete(header);
    cJSON_Delete(payload);
    return rc;
}

bool cm_jwt_room_allowed(const struct cm_jwt_claims *c, const char *room)
{
    if (!c->has_rooms)
        return true;
    for (size_t i = 0; i < c->nrooms; i++) {
        size_t n = strlen(c->rooms[i]);
        if (n && c->rooms[i][n - 1] == '*' ? strncmp(room, c->rooms[i], n - 1) == 0
                                           : strcmp(room, c->rooms[i]) == 0)
            return true;
    }
    return false;
}
