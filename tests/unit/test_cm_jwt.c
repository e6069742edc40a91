/* Unit tests for common/src/cm_jwt.c: HS256 verification and claims. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cm_jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define NOW 1800000000LL
#define SECRET "s3cret"

static void b64url(const char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* Makes header.payload.signature, signed with secret. */
static void make_token(char *out, const char *header, const char *payload, const char *secret)
{
    char h[512], p[1024], sig[128];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    b64url(header, strlen(header), h);
    b64url(payload, strlen(payload), p);
    sprintf(out, "%s.%s", h, p);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)out, strlen(out), mac, &n);
    b64url((const char *)mac, n, sig);
    strcat(out, ".");
    strcat(out, sig);
}

static const char *HS256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static int verify(const char *token, struct cm_jwt_claims *c, const char **why)
{
    return cm_jwt_verify(token, strlen(token), SECRET, NOW, 30, c, why);
}

static void test_valid(void **state)
{
    char t[2048];
    struct cm_jwt_claims c;
    const char *why;
    make_token(t, HS256, "{\"sub\":\"ann\",\"exp\":1800000100,\"rooms\":[\"lobby\",\"team-*\"]}",
               SECRET);
    assert_int_equal(verify(t, &c, &why), 0);
    assert_string_equal(c.sub, "ann");
    assert_int_equal(c.exp, 1800000100);
    assert_true(c.has_rooms);
    assert_int_equal(c.nrooms, 2);
    assert_true(cm_jwt_room_allowed(&c, "lobby"));
    assert_true(cm_jwt_room_allowed(&c, "team-a"));
    assert_true(cm_jwt_room_allowed(&c, "team-"));
    assert_false(cm_jwt_room_allowed(&c, "lobby2"));
    assert_false(cm_jwt_room_allowed(&c, "team"));
    assert_false(cm_jwt_room_allowed(&c, "other"));
}

static void test_no_rooms_claim_allows_all(void **state)
{
    char t[2048];
    struct cm_jwt_claims c;
    const char *why;
    make_token(t, HS256, "{\"sub\":\"ann\"}", SECRET);
    assert_int_equal(verify(t, &c, &why), 0);
    assert_false(c.has_rooms);
    assert_int_equal(c.exp, 0);
    assert_true(cm_jwt_room_allowed(&c, "anything"));
}

static void test_rejected(void **state)
{
    static const struct {
        const char *header, *payload, *secret;
    } cases[] = {
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\"}", "wrong"},              /* bad signature */
        {"{\"alg\":\"none\"}", "{\"sub\":\"ann\"}", SECRET},                /* alg none */
        {"{\"alg\":\"RS256\"}", "{\"sub\":\"ann\"}", SECRET},               /* other alg */
        {"{\"typ\":\"JWT\"}", "{\"sub\":\"ann\"}", SECRET},                 /* no alg */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\",\"exp\":1799999900}", SECRET}, /* expired */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\",\"nbf\":1800000100}", SECRET}, /* not yet */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\" ann\"}", SECRET},              /* bad nickname */
        {"{\"alg\":\"HS256\"}", "{\"exp\":1800000100}", SECRET},            /* no sub */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\",\"exp\":\"soon\"}", SECRET},   /* exp type */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\",\"rooms\":\"lobby\"}", SECRET}, /* rooms type */
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"ann\",\"rooms\":[\"a b\"]}", SECRET}, /* bad room */
        {"{\"alg\":\"HS256\"}", "[1,2]", SECRET},                         /* not an object */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char t[2048];
        struct cm_jwt_claims c;
        const char *why = NULL;
        make_token(t, cases[i].header, cases[i].payload, cases[i].secret);
        if (verify(t, &c, &why) == 0)
            fail_msg("case %zu accepted: %s / %s", i, cases[i].header, cases[i].payload);
        assert_non_null(why);
    }
}

static void test_skew(void **state)
{
    char t[2048];
    struct cm_jwt_claims c;
    const char *why;
    /* Expired 20 s ago: inside the 30 s allowance. */
    make_token(t, HS256, "{\"sub\":\"ann\",\"exp\":1799999980}", SECRET);
    assert_int_equal(verify(t, &c, &why), 0);
}

static void test_malformed(void **state)
{
    static const char *const cases[] = {
        "", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "eyJhbGciOiJIUzI1NiJ9..", ".....",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_jwt_claims c;
        const char *why = NULL;
        assert_int_equal(verify(cases[i], &c, &why), -1);
    }
}

static void test_tampered_payload(void **state)
{
    char t[2048], other[2048];
    struct cm_jwt_claims c;
    const char *why;
    make_token(t, HS256, "{\"sub\":\"ann\"}", SECRET);
    make_token(other, HS256, "{\"sub\":\"eve\"}", SECRET);
    /* eve's payload with ann's signature. */
    char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    char *odot1 = strchr(other, '.'), *odot2 = strchr(odot1 + 1, '.');
    char forged[4096];
    snprintf(forged, sizeof(forged), "%.*s%.*s%s", (int)(dot1 - t), t, (int)(odot2 - odot1),
             odot1, dot2);
    assert_int_equal(verify(forged, &c, &why), -1);
    assert_string_equal(why, "bad signature");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),     cmocka_unit_test(test_no_rooms_claim_allows_all),
        cmocka_unit_test(test_rejected),  cmocka_unit_test(test_skew),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_tampered_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
