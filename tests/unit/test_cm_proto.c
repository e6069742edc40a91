/*
 * Unit tests of common/src/cm_proto.c: the validators, cm_frame_decode with
 * every frame type and every error it can produce, and every encoder, whose
 * output is parsed back with cJSON and checked field by field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_proto.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX CM_MESSAGE_BYTES_DEFAULT

/* ---- Helpers ----------------------------------------------------------- */

/* A malloc'd string of unit repeated n times. */
static char *repeat(const char *unit, size_t n)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * n] = '\0';
    return s;
}

/* A malloc'd printf. */
__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

/* Decodes len bytes, checks the error contract, and returns the error code
 * (CM_ERR_NONE on success). *f is left for the caller to inspect and clear. */
static enum cm_err decode_into(const char *s, size_t len, size_t max, struct cm_frame *f)
{
    struct cm_decode_error err = {CM_ERR_INTERNAL, NULL};
    int rc = cm_frame_decode(s, len, max, f, &err);
    if (rc == 0) {
        assert_int_equal(err.code, CM_ERR_NONE);
        return CM_ERR_NONE;
    }
    assert_int_equal(rc, -1);
    assert_int_not_equal(err.code, CM_ERR_NONE);
    assert_non_null(err.message);
    assert_true(strlen(err.message) > 0 && strlen(err.message) < 100);
    assert_null(f->message); /* a failing frame owns nothing */
    return err.code;
}

static void check_code(const char *s, size_t len, size_t max, enum cm_err want, const char *file,
                       int line)
{
    struct cm_frame f;
    enum cm_err got = decode_into(s, len, max, &f);
    cm_frame_clear(&f);
    if (got != want)
        fail_msg("%s:%d: decoding '%.*s' gave '%s', expected '%s'", file, line,
                 (int)(len > 120 ? 120 : len), s, cm_err_name(got), cm_err_name(want));
}

#define EXPECT(json, code) check_code((json), strlen(json), MAX, (code), __FILE__, __LINE__)
#define EXPECT_LEN(buf, len, code) check_code((buf), (len), MAX, (code), __FILE__, __LINE__)
#define EXPECT_OK(json) EXPECT(json, CM_ERR_NONE)

/* Decodes a frame that must be valid. */
static void decode_ok(const char *s, struct cm_frame *f)
{
    enum cm_err got = decode_into(s, strlen(s), MAX, f);
    if (got != CM_ERR_NONE)
        fail_msg("decoding '%s' failed with '%s'", s, cm_err_name(got));
}

/* Expects `code` and returns whether the frame carried an id back out. */
static bool decode_fail_id(const char *s, size_t len, enum cm_err code, char *id)
{
    struct cm_frame f;
    enum cm_err got = decode_into(s, len, MAX, &f);
    if (got != code)
        fail_msg("decoding '%.*s' gave '%s', expected '%s'", (int)len, s, cm_err_name(got),
                 cm_err_name(code));
    bool has = f.has_id;
    if (has)
        strcpy(id, f.id);
    cm_frame_clear(&f);
    return has;
}

/* ---- Error names ------------------------------------------------------- */

static void test_err_names(void **state)
{
    static const char *const want[] = {
        "",
        "bad_json",
        "bad_request",
        "unknown_type",
        "invalid_room",
        "invalid_nickname",
        "too_large",
        "not_joined",
        "rate_limited",
        "forbidden",
        "unauthorized",
        "unavailable",
        "internal",
    };
    assert_int_equal(CM_ARRAY_LEN(want), CM_ERR__COUNT);
    for (int e = 0; e < CM_ERR__COUNT; e++)
        assert_string_equal(cm_err_name((enum cm_err)e), want[e]);
    assert_string_equal(cm_err_name(CM_ERR__COUNT), "internal");
    assert_string_equal(cm_err_name((enum cm_err)(-1)), "internal");
}

/* ---- Validators -------------------------------------------------------- */

static void test_utf8_valid(void **state)
{
    static const char *const good[] = {
        "",
        "plain ascii",
        "\xc2\x80",         /* U+0080, smallest 2-byte */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800, smallest 3-byte */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above them */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the largest */
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    };
    static const char *const bad[] = {
        "\x80",                     /* lone continuation */
        "\xbf",                     /* lone continuation */
        "\xc0\x80",                 /* overlong NUL */
        "\xc0\xaf",                 /* overlong '/' */
        "\xc1\xbf",                 /* overlong U+007F */
        "\xe0\x80\x80",             /* overlong NUL, 3 bytes */
        "\xe0\x9f\xbf",             /* overlong U+07FF */
        "\xf0\x80\x80\x80",         /* overlong NUL, 4 bytes */
        "\xf0\x8f\xbf\xbf",         /* overlong U+FFFF */
        "\xed\xa0\x80",             /* U+D800, a surrogate */
        "\xed\xbf\xbf",             /* U+DFFF */
        "\xed\xa0\xbd\xed\xb8\x80", /* a surrogate pair in CESU-8 */
        "\xf4\x90\x80\x80",         /* U+110000 */
        "\xf5\x80\x80\x80",         /* beyond any plane */
        "\xf8\x88\x80\x80\x80",     /* 5-byte form */
        "\xfe",
        "\xff",
        "\xc3",         /* truncated 2-byte */
        "\xe2\x82",     /* truncated 3-byte */
        "\xf0\x9f\x98", /* truncated 4-byte */
        "a\xc3",        /* truncated at the end */
        "\xc3\x41",     /* continuation missing */
        "\xe2\x28\xa1",
        "\xe2\x82\xac\xe2\x82", /* good, then truncated */
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(good); i++) {
        if (!cm_utf8_valid(good[i], strlen(good[i])))
            fail_msg("good[%zu] refused", i);
    }
    for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++) {
        if (cm_utf8_valid(bad[i], strlen(bad[i])))
            fail_msg("bad[%zu] accepted", i);
    }
    /* NUL is a valid character; the length, not a terminator, bounds the check. */
    assert_true(cm_utf8_valid("a\0b", 3));
    assert_true(cm_utf8_valid("\xc3\xa9", 1) == false);
}

static void test_room_valid(void **state)
{
    char *r64 = repeat("a", 64), *r65 = repeat("a", 65);
    assert_true(cm_room_valid("lobby", 5));
    assert_true(cm_room_valid("A-Z.a_z:0-9", 11));
    assert_true(cm_room_valid(r64, 64));
    assert_false(cm_room_valid(r65, 65));
    assert_false(cm_room_valid("", 0));
    static const char *const bad[] = {"a b", "{a}", "a}", "a/b", "caf\xc3\xa9", "a\tb", "a*", "#x"};
    for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++)
        assert_false(cm_room_valid(bad[i], strlen(bad[i])));
    assert_false(cm_room_valid("a\0b", 3));
    free(r64);
    free(r65);
}

static void test_nickname_valid(void **state)
{
    struct {
        const char *unit; /* repeated 32 times is valid, 33 times is not */
    } units[] = {{"a"}, {"\xc3\xa9"}, {"\xe2\x82\xac"}, {"\xf0\x9f\x98\x80"}};
    for (size_t i = 0; i < CM_ARRAY_LEN(units); i++) {
        char *ok = repeat(units[i].unit, 32), *long_ = repeat(units[i].unit, 33);
        if (!cm_nickname_valid(ok, strlen(ok)))
            fail_msg("32 x unit %zu refused", i);
        if (cm_nickname_valid(long_, strlen(long_)))
            fail_msg("33 x unit %zu accepted", i);
        free(ok);
        free(long_);
    }
    static const char *const good[] = {"bob",     "Bob Smith", "\xc2\xa0nbsp",
                                       "a\"b\\c", "x",         "\xe2\x80\xae"};
    for (size_t i = 0; i < CM_ARRAY_LEN(good); i++)
        assert_true(cm_nickname_valid(good[i], strlen(good[i])));
    static const char *const bad[] = {
        "",     " bob",     "bob ",     " ",        "a\tb", "a\nb",     "\x1f",         "a\x7f",
        "\x7f", "\xc2\x80", "\xc2\x85", "\xc2\x9f", "\xc3", "\xc0\xaf", "\xed\xa0\x80",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++) {
        if (cm_nickname_valid(bad[i], strlen(bad[i])))
            fail_msg("bad[%zu] accepted", i);
    }
    assert_false(cm_nickname_valid("a\0b", 3));
}

/* ---- Decoding: each frame type ----------------------------------------- */

static void test_decode_join(void **state)
{
    struct cm_frame f;
    decode_ok("{\"type\":\"join\",\"room\":\"lobby\",\"nickname\":\"bob\"}", &f);
    assert_int_equal(f.type, CM_FRAME_JOIN);
    assert_string_equal(f.room, "lobby");
    assert_string_equal(f.nickname, "bob");
    assert_int_equal(f.since, -1);
    assert_int_equal(f.history, CM_HISTORY_DEFAULT);
    assert_int_equal(f.grace_ms, 0);
    assert_false(f.has_epoch);
    assert_false(f.has_id);
    assert_null(f.message);
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"grace_ms\":10000}", &f);
    assert_int_equal(f.grace_ms, CM_GRACE_MAX_MS);
    cm_frame_clear(&f);
    EXPECT("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"grace_ms\":10001}",
           CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"grace_ms\":-1}",
           CM_ERR_BAD_REQUEST);

    decode_ok("{\"type\":\"join\",\"id\":\"j1\",\"room\":\"r\",\"nickname\":\"Zo\xc3\xab\","
              "\"since\":17,\"epoch\":\"ab12\",\"history\":0}",
              &f);
    assert_string_equal(f.nickname, "Zo\xc3\xab");
    assert_int_equal(f.since, 17);
    assert_true(f.has_epoch);
    assert_string_equal(f.epoch, "ab12");
    assert_int_equal(f.history, 0);
    assert_true(f.has_id);
    assert_string_equal(f.id, "j1");
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"history\":500,"
              "\"since\":9007199254740991,\"epoch\":\"\"}",
              &f);
    assert_int_equal(f.history, 500);
    assert_int_equal(f.since, CM_SEQ_MAX);
    assert_true(f.has_epoch);
    assert_string_equal(f.epoch, "");
    cm_frame_clear(&f);
}

static void test_decode_message(void **state)
{
    struct cm_frame f;
    decode_ok("{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"hello\",\"id\":\"m1\"}", &f);
    assert_int_equal(f.type, CM_FRAME_MESSAGE);
    assert_string_equal(f.room, "lobby");
    assert_int_equal(f.message_len, 5);
    assert_string_equal(f.message, "hello");
    assert_string_equal(f.id, "m1");
    assert_string_equal(f.nickname, "");
    cm_frame_clear(&f);
    assert_null(f.message);
    cm_frame_clear(&f); /* twice is harmless */

    /* Newlines and tabs, raw or escaped, are part of chat text. */
    decode_ok("{\"type\":\"message\",\"room\":\"r\",\"message\":\"a\\nb\\tc\td\\r\\u0001\"}", &f);
    assert_int_equal(f.message_len, 9);
    assert_memory_equal(f.message, "a\nb\tc\td\r\x01", 9);
    cm_frame_clear(&f);

    /* Escapes decode before the checks: an escaped pair is one 4-byte character. */
    decode_ok("{\"type\":\"message\",\"room\":\"r\",\"message\":\"\\u00e9\\ud83d\\ude00\\/\"}", &f);
    assert_string_equal(f.message, "\xc3\xa9\xf0\x9f\x98\x80/");
    assert_int_equal(f.message_len, 7);
    cm_frame_clear(&f);

    /* An escaped backslash followed by the text u0000 is not a NUL. */
    decode_ok("{\"type\":\"message\",\"room\":\"r\",\"message\":\"\\\\u0000\"}", &f);
    assert_string_equal(f.message, "\\u0000");
    cm_frame_clear(&f);
}

static void test_decode_leave_members_ping(void **state)
{
    struct cm_frame f;
    decode_ok("{\"type\":\"leave\",\"room\":\"a.b\"}", &f);
    assert_int_equal(f.type, CM_FRAME_LEAVE);
    assert_string_equal(f.room, "a.b");
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"members\",\"room\":\"x:y\",\"id\":\"q\"}", &f);
    assert_int_equal(f.type, CM_FRAME_MEMBERS);
    assert_string_equal(f.room, "x:y");
    assert_string_equal(f.id, "q");
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"ping\"}", &f);
    assert_int_equal(f.type, CM_FRAME_PING);
    assert_false(f.has_id);
    cm_frame_clear(&f);

    /* A ping reads no other field, so whatever else it carries is ignored. */
    decode_ok("{\"type\":\"ping\",\"id\":\"p\",\"room\":5,\"since\":-1}", &f);
    assert_int_equal(f.type, CM_FRAME_PING);
    assert_string_equal(f.id, "p");
    cm_frame_clear(&f);
}

static void test_decode_history(void **state)
{
    struct cm_frame f;
    decode_ok("{\"type\":\"history\",\"room\":\"r\"}", &f);
    assert_int_equal(f.type, CM_FRAME_HISTORY);
    assert_int_equal(f.before, -1);
    assert_int_equal(f.limit, CM_HISTORY_DEFAULT);
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"history\",\"room\":\"r\",\"before\":0,\"limit\":1}", &f);
    assert_int_equal(f.before, 0);
    assert_int_equal(f.limit, 1);
    cm_frame_clear(&f);

    decode_ok("{\"type\":\"history\",\"room\":\"r\",\"before\":123456789012,\"limit\":500}", &f);
    assert_int_equal(f.before, 123456789012LL);
    assert_int_equal(f.limit, 500);
    cm_frame_clear(&f);
}

static void test_decode_legacy(void **state)
{
    struct cm_frame f;
    decode_ok("{\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"hi all\"}", &f);
    assert_int_equal(f.type, CM_FRAME_LEGACY);
    assert_string_equal(f.nickname, "bob");
    assert_string_equal(f.room, "lobby");
    assert_string_equal(f.message, "hi all");
    assert_int_equal(f.message_len, 6);
    cm_frame_clear(&f);

    decode_ok("{\"message\":\"m\",\"id\":\"7\",\"room\":\"r\",\"nickname\":\"n\",\"extra\":[1]}",
              &f);
    assert_int_equal(f.type, CM_FRAME_LEGACY);
    assert_string_equal(f.id, "7");
    cm_frame_clear(&f);

    /* Legacy frames get the same field checks as join + message. */
    EXPECT("{\"nickname\":\" bob\",\"room\":\"lobby\",\"message\":\"hi\"}",
           CM_ERR_INVALID_NICKNAME);
    EXPECT("{\"nickname\":\"bob\",\"room\":\"the lobby\",\"message\":\"hi\"}", CM_ERR_INVALID_ROOM);
    EXPECT("{\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":null}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"nickname\":5,\"room\":\"lobby\",\"message\":\"x\"}", CM_ERR_BAD_REQUEST);
    char *big = repeat("x", MAX + 1);
    char *frame = fmt("{\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"%s\"}", big);
    EXPECT(frame, CM_ERR_TOO_LARGE);
    free(frame);
    free(big);

    /* Without all three, a frame with no type is just incomplete. */
    EXPECT("{\"nickname\":\"bob\",\"room\":\"lobby\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"room\":\"lobby\",\"message\":\"hi\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{}", CM_ERR_BAD_REQUEST);
    /* Legacy keys are matched exactly, like every other key. */
    EXPECT("{\"Nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"hi\"}", CM_ERR_BAD_REQUEST);
    /* A type that is there but null is not "no type". */
    EXPECT("{\"type\":null,\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"hi\"}",
           CM_ERR_BAD_REQUEST);
}

static void test_decode_whitespace_and_unknown_fields(void **state)
{
    EXPECT_OK(" \t\r\n{ \"type\" : \"ping\" }\r\n ");
    EXPECT_OK("{\"type\":\"ping\",\"x\":{\"y\":[1,2.5,-3e9,null,true,\"\\u0001\"]}}");
    EXPECT_OK("{\"type\":\"leave\",\"room\":\"r\",\"nickname\":[],\"message\":{}}");
    EXPECT_OK("{\"type\":\"message\",\"room\":\"r\",\"message\":\"m\",\"nickname\":5}");
    /* Keys are case-sensitive. */
    EXPECT("{\"Type\":\"ping\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"Room\":\"r\",\"nickname\":\"n\"}", CM_ERR_BAD_REQUEST);
    /* Room and nickname escapes decode before validation. */
    EXPECT_OK("{\"type\":\"join\",\"room\":\"lob\\u0062y\",\"nickname\":\"\\u00e9\"}");
    EXPECT("{\"type\":\"leave\",\"room\":\"a\\/b\"}", CM_ERR_INVALID_ROOM);
}

/* The frame is not NUL-terminated: bytes past len must never be read. */
static void test_decode_unterminated(void **state)
{
    static const char text[] = "{\"type\":\"ping\"}GARBAGE";
    struct cm_frame f;
    assert_int_equal(decode_into(text, 15, MAX, &f), CM_ERR_NONE);
    cm_frame_clear(&f);

    /* Exact-size heap copies, so that AddressSanitizer sees any overread,
     * including cJSON's at a trailing backslash inside a string. */
    static const char *const cuts[] = {"{\"a\":\"\\",    "{\"type\":\"pi", "{\"type\":\"ping\"",
                                       "{\"a\":\"\\u00", "{\"a\":1",       "{\"a\":tru"};
    for (size_t i = 0; i < CM_ARRAY_LEN(cuts); i++) {
        size_t n = strlen(cuts[i]);
        char *exact = malloc(n);
        memcpy(exact, cuts[i], n);
        EXPECT_LEN(exact, n, CM_ERR_BAD_JSON);
        free(exact);
    }
}

/* ---- Decoding: errors -------------------------------------------------- */

static void test_bad_json(void **state)
{
    static const char *const frames[] = {
        "",
        " ",
        "ping",
        "{",
        "}",
        "{\"type\":\"ping\"",
        "{\"type\":\"ping\",}",
        "{'type':'ping'}",
        "{type:\"ping\"}",
        "[]",
        "[{\"type\":\"ping\"}]",
        "\"ping\"",
        "42",
        "null",
        "true",
        "{\"type\":\"ping\"} x",
        "{\"type\":\"ping\"}{\"type\":\"ping\"}",
        "{\"type\":\"ping\"},",
        "{\"type\":\"ping\",\"x\":NaN}",
        "{\"type\":\"ping\",\"x\":Infinity}",
        "{\"type\":\"ping\",\"x\":0x10}",
        "{\"type\":\"ping\",\"x\":\"\\x41\"}",
        "{\"type\":\"ping\",\"x\":\"\\ud800\"}", /* lone surrogates cJSON cannot decode */
        "{\"type\":\"ping\",\"x\":\"\\udc00\"}",
        "{\"type\":\"ping\",\"x\":\"\\ud800\\u0041\"}",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(frames); i++)
        EXPECT(frames[i], CM_ERR_BAD_JSON);
}

/* cJSON refuses nesting beyond its limit (1000) instead of recursing on. */
static void test_deep_nesting(void **state)
{
    char *open = repeat("[", 10000), *close = repeat("]", 10000);
    char *arrays = fmt("%s%s", open, close);
    EXPECT(arrays, CM_ERR_BAD_JSON);
    char *inside = fmt("{\"type\":\"ping\",\"x\":%s%s}", open, close);
    EXPECT(inside, CM_ERR_BAD_JSON);
    free(arrays);
    free(inside);
    free(open);
    free(close);

    open = repeat("{\"a\":", 10000);
    close = repeat("}", 10000);
    char *objects = fmt("%s1%s", open, close);
    EXPECT(objects, CM_ERR_BAD_JSON);
    free(objects);
    free(open);
    free(close);

    /* Moderate nesting in an unknown field is simply ignored. */
    open = repeat("[", 100);
    close = repeat("]", 100);
    inside = fmt("{\"type\":\"ping\",\"x\":%s%s}", open, close);
    EXPECT_OK(inside);
    free(inside);
    free(open);
    free(close);
}

static void test_bad_request_type(void **state)
{
    EXPECT("{\"type\":5}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":null}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":true}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":[\"ping\"]}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":{}}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"id\":\"1\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"nope\"}", CM_ERR_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"\"}", CM_ERR_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"PING\"}", CM_ERR_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"ping \"}", CM_ERR_UNKNOWN_TYPE);
    EXPECT("{\"type\":\"welcome\"}", CM_ERR_UNKNOWN_TYPE); /* server frames are not requests */
    EXPECT("{\"type\":\"pong\"}", CM_ERR_UNKNOWN_TYPE);
}

static void test_required_fields(void **state)
{
    static const char *const frames[] = {
        "{\"type\":\"join\",\"nickname\":\"n\"}",
        "{\"type\":\"join\",\"room\":\"r\"}",
        "{\"type\":\"message\",\"room\":\"r\"}",
        "{\"type\":\"message\",\"message\":\"m\"}",
        "{\"type\":\"leave\"}",
        "{\"type\":\"history\"}",
        "{\"type\":\"members\"}",
        /* wrong JSON types */
        "{\"type\":\"join\",\"room\":5,\"nickname\":\"n\"}",
        "{\"type\":\"join\",\"room\":\"r\",\"nickname\":null}",
        "{\"type\":\"join\",\"room\":[\"r\"],\"nickname\":\"n\"}",
        "{\"type\":\"message\",\"room\":\"r\",\"message\":42}",
        "{\"type\":\"message\",\"room\":\"r\",\"message\":[\"m\"]}",
        "{\"type\":\"leave\",\"room\":null}",
        "{\"type\":\"leave\",\"room\":{}}",
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"\"}",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(frames); i++)
        EXPECT(frames[i], CM_ERR_BAD_REQUEST);
}

static void test_invalid_room(void **state)
{
    char *r64 = repeat("r", 64), *r65 = repeat("r", 65);
    char *ok = fmt("{\"type\":\"leave\",\"room\":\"%s\"}", r64);
    char *bad = fmt("{\"type\":\"leave\",\"room\":\"%s\"}", r65);
    EXPECT_OK(ok);
    EXPECT(bad, CM_ERR_INVALID_ROOM);
    free(ok);
    free(bad);
    free(r64);
    free(r65);

    static const char *const rooms[] = {"",      " ",        "a b", "{a}", "a}", "caf\xc3\xa9",
                                        "a\\tb", "a\\u0001", "a/b", "*"};
    for (size_t i = 0; i < CM_ARRAY_LEN(rooms); i++) {
        char *frame = fmt("{\"type\":\"members\",\"room\":\"%s\"}", rooms[i]);
        EXPECT(frame, CM_ERR_INVALID_ROOM);
        free(frame);
    }
}

static void test_invalid_nickname(void **state)
{
    /* 32 characters of 1, 2, 3 and 4 bytes pass; 33 do not. */
    static const char *const units[] = {
        "n", "\xc3\xa9", "\\u00e9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\ud83d\\ude00"};
    for (size_t i = 0; i < CM_ARRAY_LEN(units); i++) {
        char *n32 = repeat(units[i], 32), *n33 = repeat(units[i], 33);
        char *ok = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"%s\"}", n32);
        char *bad = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"%s\"}", n33);
        EXPECT_OK(ok);
        EXPECT(bad, CM_ERR_INVALID_NICKNAME);
        free(ok);
        free(bad);
        free(n32);
        free(n33);
    }
    static const char *const nicks[] = {"",        " ",        " bob",    "bob ",
                                        "a\\tb",   "a\tb",     "a\\nb",   "\\u007f",
                                        "\\u0085", "\xc2\x85", "\\u009f", "\\u001b[31m"};
    for (size_t i = 0; i < CM_ARRAY_LEN(nicks); i++) {
        char *frame = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"%s\"}", nicks[i]);
        EXPECT(frame, CM_ERR_INVALID_NICKNAME);
        free(frame);
    }
    EXPECT_OK("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"\\u00a0x\\u00a0\"}");
    EXPECT_OK("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"say \\\"hi\\\" \\\\o/\"}");
}

static void test_message_size(void **state)
{
    struct {
        const char *unit;
        size_t count;
        enum cm_err want;
    } cases[] = {
        {"a", MAX, CM_ERR_NONE},
        {"a", MAX + 1, CM_ERR_TOO_LARGE},
        {"\xc3\xa9", MAX / 2, CM_ERR_NONE}, /* limits count bytes, not characters */
        {"\xc3\xa9", MAX / 2 + 1, CM_ERR_TOO_LARGE},
        {"\\u00e9", MAX / 2, CM_ERR_NONE}, /* and decoded bytes, not escape text */
        {"\\n", MAX, CM_ERR_NONE},
        {"\\n", MAX + 1, CM_ERR_TOO_LARGE},
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
        char *text = repeat(cases[i].unit, cases[i].count);
        char *frame = fmt("{\"type\":\"message\",\"room\":\"r\",\"message\":\"%s\"}", text);
        EXPECT(frame, cases[i].want);
        free(frame);
        free(text);
    }
    /* message_max is the caller's. */
    static const char small[] = "{\"type\":\"message\",\"room\":\"r\",\"message\":\"0123456789\"}";
    check_code(small, strlen(small), 10, CM_ERR_NONE, __FILE__, __LINE__);
    check_code(small, strlen(small), 9, CM_ERR_TOO_LARGE, __FILE__, __LINE__);
}

static void test_numbers(void **state)
{
    static const struct {
        const char *field, *value;
        enum cm_err want;
    } cases[] = {
        {"since", "0", CM_ERR_NONE},
        {"since", "9007199254740991", CM_ERR_NONE},
        {"since", "9007199254740992", CM_ERR_BAD_REQUEST},
        {"since", "18446744073709551616", CM_ERR_BAD_REQUEST},
        {"since",
         "1000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000",
         CM_ERR_BAD_REQUEST},
        {"since", "-1", CM_ERR_BAD_REQUEST},
        {"since", "1.5", CM_ERR_BAD_REQUEST},
        {"since", "0.999999", CM_ERR_BAD_REQUEST},
        {"since", "1e400", CM_ERR_BAD_REQUEST},
        {"since", "-1e400", CM_ERR_BAD_REQUEST},
        {"since", "1e308", CM_ERR_BAD_REQUEST},
        {"since", "\"5\"", CM_ERR_BAD_REQUEST},
        {"since", "true", CM_ERR_BAD_REQUEST},
        {"since", "null", CM_ERR_BAD_REQUEST},
        {"since", "[]", CM_ERR_BAD_REQUEST},
        {"since", "{}", CM_ERR_BAD_REQUEST},
        {"history", "0", CM_ERR_NONE},
        {"history", "500", CM_ERR_NONE},
        {"history", "501", CM_ERR_BAD_REQUEST},
        {"history", "-1", CM_ERR_BAD_REQUEST},
        {"history", "2.5", CM_ERR_BAD_REQUEST},
        {"history", "\"50\"", CM_ERR_BAD_REQUEST},
        {"epoch", "\"e\"", CM_ERR_NONE},
        {"epoch", "5", CM_ERR_BAD_REQUEST},
        {"epoch", "null", CM_ERR_BAD_REQUEST},
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
        char *frame = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"%s\":%s}",
                          cases[i].field, cases[i].value);
        EXPECT(frame, cases[i].want);
        free(frame);
    }
    static const struct {
        const char *field, *value;
        enum cm_err want;
    } hist[] = {
        {"before", "0", CM_ERR_NONE},          {"before", "-1", CM_ERR_BAD_REQUEST},
        {"before", "1.5", CM_ERR_BAD_REQUEST}, {"before", "\"9\"", CM_ERR_BAD_REQUEST},
        {"limit", "1", CM_ERR_NONE},           {"limit", "500", CM_ERR_NONE},
        {"limit", "0", CM_ERR_BAD_REQUEST},    {"limit", "501", CM_ERR_BAD_REQUEST},
        {"limit", "1e3", CM_ERR_BAD_REQUEST},  {"limit", "-0.5", CM_ERR_BAD_REQUEST},
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(hist); i++) {
        char *frame =
            fmt("{\"type\":\"history\",\"room\":\"r\",\"%s\":%s}", hist[i].field, hist[i].value);
        EXPECT(frame, hist[i].want);
        free(frame);
    }

    /* Whole numbers are judged by value: 1.0, 1e2 and -0 are whole. */
    struct cm_frame f;
    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"since\":1.0,\"history\":1e2}",
              &f);
    assert_int_equal(f.since, 1);
    assert_int_equal(f.history, 100);
    cm_frame_clear(&f);
    decode_ok("{\"type\":\"history\",\"room\":\"r\",\"before\":-0,\"limit\":5E1}", &f);
    assert_int_equal(f.before, 0);
    assert_int_equal(f.limit, 50);
    cm_frame_clear(&f);
}

static void test_epoch_size(void **state)
{
    char *e64 = repeat("e", 64), *e65 = repeat("e", 65);
    char *ok = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"epoch\":\"%s\"}", e64);
    char *bad = fmt("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"epoch\":\"%s\"}", e65);
    struct cm_frame f;
    decode_ok(ok, &f);
    assert_string_equal(f.epoch, e64);
    cm_frame_clear(&f);
    EXPECT(bad, CM_ERR_BAD_REQUEST);
    free(ok);
    free(bad);
    free(e64);
    free(e65);
}

/* NUL, raw or escaped, is refused as bad_request wherever it is. */
static void test_nul(void **state)
{
    static const char raw_msg[] = "{\"type\":\"message\",\"room\":\"r\",\"message\":\"a\0b\"}";
    EXPECT_LEN(raw_msg, sizeof(raw_msg) - 1, CM_ERR_BAD_REQUEST);
    static const char raw_after[] = "{\"type\":\"ping\"}\0";
    EXPECT_LEN(raw_after, sizeof(raw_after) - 1, CM_ERR_BAD_REQUEST);
    static const char raw_key[] = "{\"type\":\"ping\",\"a\0\":1}";
    EXPECT_LEN(raw_key, sizeof(raw_key) - 1, CM_ERR_BAD_REQUEST);
    static const char raw_outside[] = "{\"type\":\"ping\",\0\"a\":1}";
    EXPECT_LEN(raw_outside, sizeof(raw_outside) - 1, CM_ERR_BAD_REQUEST);
    static const char raw_after_backslash[] = "{\"type\":\"ping\",\"a\":\"\\\0\"}";
    EXPECT_LEN(raw_after_backslash, sizeof(raw_after_backslash) - 1, CM_ERR_BAD_REQUEST);
    EXPECT_LEN("\0", 1, CM_ERR_BAD_REQUEST);
    EXPECT_LEN("\0\0\0\0", 4, CM_ERR_BAD_REQUEST);

    static const char *const escaped[] = {
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"a\\u0000b\"}",
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"\\u0000\"}",
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"x\\\\\\u0000\"}",
        "{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"bob\\u0000\"}",
        "{\"type\":\"join\",\"room\":\"r\\u0000\",\"nickname\":\"bob\"}",
        "{\"type\":\"ping\\u0000\"}",
        "{\"type\":\"ping\",\"x\":\"\\u0000\"}",
        "{\"type\":\"ping\",\"\\u0000\":1}",
        "{\"type\\u0000\":\"ping\"}",
        "{\"nickname\":\"bob\",\"room\":\"lobby\",\"message\":\"hi\\u0000\"}",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(escaped); i++)
        EXPECT(escaped[i], CM_ERR_BAD_REQUEST);
    /* Other escaped controls are fine in a message; u0000 written out is text. */
    EXPECT_OK("{\"type\":\"message\",\"room\":\"r\",\"message\":\"\\u0001\\u001f\"}");
    EXPECT_OK("{\"type\":\"message\",\"room\":\"r\",\"message\":\"u0000 \\\\u0000\"}");
}

/* Invalid UTF-8 anywhere in the frame is bad_request, not bad_json. */
static void test_invalid_utf8(void **state)
{
    static const char *const texts[] = {
        "\xc0\xaf",     "\xc0\x80",         "\xe0\x80\xaf",     "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80",
        "\xff",         "\xe2\x82",         "\xf0\x9f\x98",     "\xc3\x28",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(texts); i++) {
        char *frame = fmt("{\"type\":\"message\",\"room\":\"r\",\"message\":\"%s\"}", texts[i]);
        EXPECT(frame, CM_ERR_BAD_REQUEST);
        free(frame);
        frame = fmt("{\"type\":\"ping\",\"x\":\"%s\"}", texts[i]);
        EXPECT(frame, CM_ERR_BAD_REQUEST);
        free(frame);
    }
    EXPECT("\xff\xfe{}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"ping\"}\xc3", CM_ERR_BAD_REQUEST);
    /* A truncated sequence at the very end of the buffer. */
    static const char cut[] =
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"\xf0\x9f\x98\x80\"}";
    EXPECT_LEN(cut, 42, CM_ERR_BAD_REQUEST);

    struct cm_frame f;
    decode_ok(
        "{\"type\":\"message\",\"room\":\"r\",\"message\":\"\xf4\x8f\xbf\xbf\xf0\x9f\x98\x80\"}",
        &f);
    assert_int_equal(f.message_len, 8);
    cm_frame_clear(&f);
}

/* A frame's valid id is echoed even when the frame fails later. */
static void test_id_echo(void **state)
{
    char id[CM_ID_MAX + 1];
    static const struct {
        const char *frame;
        enum cm_err code;
    } cases[] = {
        {"{\"type\":\"nope\",\"id\":\"q1\"}", CM_ERR_UNKNOWN_TYPE},
        {"{\"id\":\"q1\",\"type\":5}", CM_ERR_BAD_REQUEST},
        {"{\"id\":\"q1\"}", CM_ERR_BAD_REQUEST},
        {"{\"type\":\"join\",\"id\":\"q1\",\"room\":\"a b\",\"nickname\":\"n\"}",
         CM_ERR_INVALID_ROOM},
        {"{\"type\":\"join\",\"id\":\"q1\",\"room\":\"r\",\"nickname\":\" \"}",
         CM_ERR_INVALID_NICKNAME},
        {"{\"type\":\"message\",\"id\":\"q1\",\"room\":\"r\"}", CM_ERR_BAD_REQUEST},
        {"{\"type\":\"message\",\"id\":\"q1\",\"room\":\"r\",\"message\":\"a\\u0000\"}",
         CM_ERR_BAD_REQUEST},
        {"{\"type\":\"message\",\"id\":\"q1\",\"room\":\"r\",\"message\":\"\xc0\xaf\"}",
         CM_ERR_BAD_REQUEST},
        {"{\"type\":\"history\",\"id\":\"q1\",\"room\":\"r\",\"limit\":0}", CM_ERR_BAD_REQUEST},
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(cases); i++) {
        if (!decode_fail_id(cases[i].frame, strlen(cases[i].frame), cases[i].code, id))
            fail_msg("case %zu: no id", i);
        assert_string_equal(id, "q1");
    }

    static const char raw_nul[] =
        "{\"type\":\"message\",\"id\":\"q2\",\"room\":\"r\",\"message\":\"\0\"}";
    assert_true(decode_fail_id(raw_nul, sizeof(raw_nul) - 1, CM_ERR_BAD_REQUEST, id));
    assert_string_equal(id, "q2");

    char *long_msg = repeat("m", MAX + 1);
    char *frame = fmt(
        "{\"type\":\"message\",\"id\":\"\xc3\xa9\",\"room\":\"r\",\"message\":\"%s\"}", long_msg);
    assert_true(decode_fail_id(frame, strlen(frame), CM_ERR_TOO_LARGE, id));
    assert_string_equal(id, "\xc3\xa9");
    free(frame);
    free(long_msg);

    /* 64 bytes (here 32 two-byte characters) is the most an id may hold. */
    char *id64 = repeat("\xc3\xa9", 32), *id65 = repeat("i", 65);
    frame = fmt("{\"type\":\"nope\",\"id\":\"%s\"}", id64);
    assert_true(decode_fail_id(frame, strlen(frame), CM_ERR_UNKNOWN_TYPE, id));
    assert_string_equal(id, id64);
    free(frame);
    frame = fmt("{\"type\":\"ping\",\"id\":\"%s\"}", id65);
    assert_false(decode_fail_id(frame, strlen(frame), CM_ERR_BAD_REQUEST, id));
    free(frame);
    free(id64);
    free(id65);

    /* Ids that cannot be echoed are not. */
    static const char *const no_id[] = {
        "{\"type\":\"ping\",\"id\":5}",
        "{\"type\":\"ping\",\"id\":null}",
        "{\"type\":\"ping\",\"id\":[\"x\"]}",
        "{\"type\":\"ping\",\"id\":\"a\\u0000b\"}",
        "{\"type\":\"ping\",\"id\":\"\xc0\xaf\"}",
        "{\"type\":\"ping\",\"id\":\"\xed\xa0\x80\"}",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(no_id); i++)
        assert_false(decode_fail_id(no_id[i], strlen(no_id[i]), CM_ERR_BAD_REQUEST, id));
    assert_false(decode_fail_id("{\"id\":\"q\"", 9, CM_ERR_BAD_JSON, id));
    assert_false(decode_fail_id("[{\"id\":\"q\"}]", 12, CM_ERR_BAD_JSON, id));

    struct cm_frame f;
    decode_ok("{\"type\":\"ping\",\"id\":\"\"}", &f);
    assert_true(f.has_id);
    assert_string_equal(f.id, "");
    cm_frame_clear(&f);
}

/* ---- Encoding ---------------------------------------------------------- */

/* Parses a whole encoded buffer, which must be valid UTF-8, compact (no
 * whitespace outside strings) and exactly one JSON object. */
static cJSON *parse_back(const struct cm_sbuf *b)
{
    const char *s = cm_sbuf_data(b);
    assert_int_equal(strlen(s), b->len);
    assert_true(cm_utf8_valid(s, b->len));
    bool in_str = false;
    for (size_t i = 0; i < b->len; i++) {
        if (in_str && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            in_str = !in_str;
        else if (!in_str && strchr(" \t\r\n", s[i]))
            fail_msg("whitespace at %zu in %s", i, s);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(s, &end, 1);
    if (!root || !cJSON_IsObject(root))
        fail_msg("not one JSON object: %s", s);
    return root;
}

static void assert_str_field(const cJSON *o, const char *key, const char *want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(it))
        fail_msg("\"%s\" is missing or not a string", key);
    assert_string_equal(it->valuestring, want);
}

static void assert_num_field(const cJSON *o, const char *key, double want)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it))
        fail_msg("\"%s\" is missing or not a number", key);
    assert_true(it->valuedouble == want);
}

static void assert_nfields(const cJSON *o, int n)
{
    assert_int_equal(cJSON_GetArraySize(o), n);
}

static void test_encode_exact(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 16);
    static const struct cm_limits lim = {4096,    65536, 20,     100, 40,  10,
                                         1048576, 0,     100000, 100, 100, 200};
    static const struct cm_members_page none = {"[]", -1, NULL};
    static const struct cm_members_page one = {"[{\"nickname\":\"n\",\"since\":1}]", 1, "0"};
    static const struct cm_members_page first = {"[{\"nickname\":\"n\",\"since\":1}]", 250, "17"};

#define CASE(call, expected)                                                                       \
    do {                                                                                           \
        cm_sbuf_reset(&b);                                                                         \
        call;                                                                                      \
        assert_string_equal(cm_sbuf_data(&b), expected);                                           \
        cJSON_Delete(parse_back(&b));                                                              \
    } while (0)

    CASE(cm_encode_pong(&b, NULL), "{\"type\":\"pong\"}");
    CASE(cm_encode_pong(&b, "1"), "{\"type\":\"pong\",\"id\":\"1\"}");
    CASE(cm_encode_ack(&b, "7", "lobby", 42, true),
         "{\"type\":\"ack\",\"id\":\"7\",\"room\":\"lobby\",\"seq\":42}");
    CASE(cm_encode_left(&b, NULL, "lobby", "replaced"),
         "{\"type\":\"left\",\"room\":\"lobby\",\"reason\":\"replaced\"}");
    CASE(cm_encode_history(&b, "h", "r", "[{\"a\":1}]"),
         "{\"type\":\"history\",\"id\":\"h\",\"room\":\"r\",\"messages\":[{\"a\":1}]}");
    CASE(cm_encode_history(&b, NULL, "r", NULL),
         "{\"type\":\"history\",\"room\":\"r\",\"messages\":[]}");
    CASE(cm_encode_members(&b, NULL, "r", &none),
         "{\"type\":\"members\",\"room\":\"r\",\"members\":[]}");
    CASE(cm_encode_members(&b, "p", "r", &first),
         "{\"type\":\"members\",\"id\":\"p\",\"room\":\"r\",\"members\":[{\"nickname\":\"n\","
         "\"since\":1}],\"count\":250,\"cursor\":\"17\"}");
    CASE(cm_encode_presence_count(&b, "r", 3),
         "{\"type\":\"presence_count\",\"room\":\"r\",\"count\":3}");
    CASE(cm_encode_presence_diff(&b, "r", 3, "[{\"nickname\":\"a\",\"since\":1}]", NULL),
         "{\"type\":\"presence_diff\",\"room\":\"r\",\"count\":3,\"joins\":[{\"nickname\":"
         "\"a\",\"since\":1}],\"leaves\":[]}");
    CASE(cm_encode_error(&b, "9", CM_ERR_NOT_JOINED, "join first"),
         "{\"type\":\"error\",\"id\":\"9\",\"code\":\"not_joined\",\"message\":\"join first\"}");
    CASE(cm_encode_reconnect(&b, "shutdown", 1500),
         "{\"type\":\"reconnect\",\"reason\":\"shutdown\",\"after_ms\":1500}");
    CASE(cm_encode_presence(&b, "r", "join", "bob", NULL, 123),
         "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\",\"nickname\":\"bob\",\"ts\":"
         "123}");
    CASE(cm_encode_presence(&b, "r", "leave", "bob", "timeout", 1700000000000),
         "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"leave\",\"nickname\":\"bob\","
         "\"reason\":\"timeout\",\"ts\":1700000000000}");
    CASE(cm_encode_member(&b, "s1", "s1.1", "gw-1", 5),
         "{\"session\":\"s1\",\"mid\":\"s1.1\",\"gateway\":\"gw-1\",\"since\":5}");
    CASE(cm_encode_welcome(&b, "s", "g", &lim),
         "{\"type\":\"welcome\",\"session\":\"s\",\"gateway\":\"g\",\"limits\":{\"message_bytes\":"
         "4096,\"frame_bytes\":65536,\"rate_per_sec\":20,\"rooms\":100,\"rate_burst\":40,"
         "\"joins_per_sec\":10,\"send_queue_bytes\":1048576,\"max_conns_per_ip\":0,"
         "\"max_connections\":100000,\"members_page\":100,\"presence_batch_above\":100,"
         "\"presence_tick_ms\":200}}");
    CASE(cm_encode_joined(&b, "j", "r", "n", 3, "e", &one, "[]", 1),
         "{\"type\":\"joined\",\"id\":\"j\",\"room\":\"r\",\"nickname\":\"n\",\"seq\":3,\"epoch\":"
         "\"e\",\"recovered\":true,\"members\":[{\"nickname\":\"n\",\"since\":1}],\"count\":1,"
         "\"history\":[]}");
    CASE(cm_encode_joined(&b, NULL, "r", "n", 3, "e", &first, "[]", -1),
         "{\"type\":\"joined\",\"room\":\"r\",\"nickname\":\"n\",\"seq\":3,\"epoch\":"
         "\"e\",\"members\":[{\"nickname\":\"n\",\"since\":1}],\"count\":250,"
         "\"members_cursor\":\"17\",\"history\":[]}");
#undef CASE
    /* The headroom stayed in front of the data. */
    assert_ptr_equal(cm_sbuf_data(&b), b.mem + 16);
    cm_sbuf_free(&b);
}

static void test_encode_fields(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    static const struct cm_members_page nothing = {NULL, -1, NULL};

    cm_encode_joined(&b, NULL, "room.1",
                     "N\xc3\xad"
                     "ck",
                     0, "ep", &nothing, NULL, -1);
    cJSON *o = parse_back(&b);
    assert_str_field(o, "type", "joined");
    assert_str_field(o, "room", "room.1");
    assert_str_field(o, "nickname",
                     "N\xc3\xad"
                     "ck");
    assert_num_field(o, "seq", 0);
    assert_str_field(o, "epoch", "ep");
    assert_null(cJSON_GetObjectItem(o, "recovered"));
    assert_null(cJSON_GetObjectItem(o, "id"));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(o, "members")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(o, "history")));
    assert_nfields(o, 7);
    cJSON_Delete(o);

    cm_sbuf_reset(&b);
    cm_encode_joined(&b, "x", "r", "n", CM_SEQ_MAX, "e", &nothing,
                     "[{\"type\":\"message\",\"seq\":1},{\"type\":\"message\",\"seq\":2}]", 0);
    o = parse_back(&b);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "recovered")));
    assert_num_field(o, "seq", (double)CM_SEQ_MAX);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "history")), 2);
    assert_str_field(o, "id", "x");
    assert_nfields(o, 9);
    cJSON_Delete(o);

    cm_sbuf_reset(&b);
    static const struct cm_limits lim = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    cm_encode_welcome(&b, "sess", "gw", &lim);
    o = parse_back(&b);
    assert_str_field(o, "session", "sess");
    assert_str_field(o, "gateway", "gw");
    const cJSON *l = cJSON_GetObjectItem(o, "limits");
    assert_num_field(l, "message_bytes", 1);
    assert_num_field(l, "frame_bytes", 2);
    assert_num_field(l, "rate_per_sec", 3);
    assert_num_field(l, "rooms", 4);
    assert_num_field(l, "rate_burst", 5);
    assert_num_field(l, "joins_per_sec", 6);
    assert_num_field(l, "send_queue_bytes", 7);
    assert_num_field(l, "max_conns_per_ip", 8);
    assert_num_field(l, "max_connections", 9);
    assert_num_field(l, "members_page", 10);
    assert_num_field(l, "presence_batch_above", 11);
    assert_num_field(l, "presence_tick_ms", 12);
    assert_nfields(l, 12);
    assert_nfields(o, 4);
    cJSON_Delete(o);
    cm_sbuf_free(&b);
}

static void test_encode_error(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    for (int e = CM_ERR_BAD_JSON; e < CM_ERR__COUNT; e++) {
        cm_sbuf_reset(&b);
        cm_encode_error(&b, NULL, (enum cm_err)e, NULL);
        cJSON *o = parse_back(&b);
        assert_str_field(o, "type", "error");
        assert_str_field(o, "code", cm_err_name((enum cm_err)e));
        const cJSON *m = cJSON_GetObjectItem(o, "message");
        assert_true(cJSON_IsString(m) && strlen(m->valuestring) > 0); /* a default text */
        assert_nfields(o, 3);
        cJSON_Delete(o);
    }
    /* An error frame always carries a code a client knows. */
    cm_sbuf_reset(&b);
    cm_encode_error(&b, "i", CM_ERR_NONE, "x");
    cJSON *o = parse_back(&b);
    assert_str_field(o, "code", "internal");
    assert_str_field(o, "id", "i");
    cJSON_Delete(o);
    cm_sbuf_free(&b);
}

/* Quotes, backslashes and control characters survive a round trip. */
static void test_encode_escaping(void **state)
{
    static const char nasty[] = "q\"b\\s/n\nr\rt\tb\bf\f\x01\x1f\x7f \xc3\xa9\xf0\x9f\x98\x80"
                                "</script>\xe2\x80\xa8";
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);

    cm_encode_presence(&b, "r", "leave", nasty, "closed", 1);
    cJSON *o = parse_back(&b);
    assert_str_field(o, "nickname", nasty);
    assert_str_field(o, "reason", "closed");
    cJSON_Delete(o);

    cm_sbuf_reset(&b);
    cm_encode_error(&b, nasty, CM_ERR_BAD_REQUEST, nasty);
    o = parse_back(&b);
    assert_str_field(o, "id", nasty);
    assert_str_field(o, "message", nasty);
    cJSON_Delete(o);

    cm_sbuf_reset(&b);
    cm_encode_member(&b, nasty, "m\"", "g\\", -7);
    o = parse_back(&b);
    assert_str_field(o, "session", nasty);
    assert_str_field(o, "mid", "m\"");
    assert_str_field(o, "gateway", "g\\");
    assert_num_field(o, "since", -7);
    assert_nfields(o, 4);
    cJSON_Delete(o);

    /* The exact escapes: short forms where JSON has them, \u00XX otherwise. */
    cm_sbuf_reset(&b);
    cm_encode_pong(&b, "\"\\\n\r\t\b\f\x01\x1f\x7f");
    assert_string_equal(cm_sbuf_data(&b),
                        "{\"type\":\"pong\",\"id\":\"\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"}");
    cm_sbuf_free(&b);
}

/* The tail completes the envelope the publish script starts. */
static void test_encode_message_tail(void **state)
{
    static const char head[] = "{\"type\":\"message\",\"seq\":12,\"ts\":1700000000123,";
    static const char text[] = "line one\nline \"two\" \\ \xf0\x9f\x98\x80 and more";
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_sbuf_puts(&b, head);
    cm_encode_message_tail(&b, "lobby", "b\"ob", text, sizeof(text) - 1);
    cJSON *o = parse_back(&b);
    assert_str_field(o, "type", "message");
    assert_num_field(o, "seq", 12);
    assert_num_field(o, "ts", 1700000000123.0);
    assert_str_field(o, "room", "lobby");
    assert_str_field(o, "nickname", "b\"ob");
    assert_str_field(o, "message", text);
    assert_nfields(o, 6);
    cJSON_Delete(o);

    /* Only message_len bytes are taken, and a NUL among them is escaped. */
    cm_sbuf_reset(&b);
    cm_encode_message_tail(&b, "r", "n", "a\0bcdef", 3);
    assert_string_equal(cm_sbuf_data(&b),
                        "\"room\":\"r\",\"nickname\":\"n\",\"message\":\"a\\u0000b\"}");
    cm_sbuf_free(&b);
}

/* A decoded message re-encodes to the same text. */
static void test_decode_encode_roundtrip(void **state)
{
    static const char frame[] =
        "{\"type\":\"message\",\"room\":\"r\",\"message\":"
        "\"\\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0007 \\u00e9 \\ud83d\\ude00\"}";
    struct cm_frame f;
    decode_ok(frame, &f);
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_sbuf_puts(&b, "{");
    cm_encode_message_tail(&b, f.room, "n", f.message, f.message_len);
    cJSON *o = parse_back(&b);
    const cJSON *m = cJSON_GetObjectItem(o, "message");
    assert_int_equal(strlen(m->valuestring), f.message_len);
    assert_memory_equal(m->valuestring, f.message, f.message_len);
    cJSON_Delete(o);
    cm_sbuf_free(&b);
    cm_frame_clear(&f);
}

static void test_encode_numbers_and_nulls(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_ack(&b, "a", "r", INT64_MAX, true);
    assert_string_equal(
        cm_sbuf_data(&b),
        "{\"type\":\"ack\",\"id\":\"a\",\"room\":\"r\",\"seq\":9223372036854775807}");
    cm_sbuf_reset(&b);
    cm_encode_reconnect(&b, "shutdown", INT64_MIN);
    assert_string_equal(cm_sbuf_data(&b),
                        "{\"type\":\"reconnect\",\"reason\":\"shutdown\",\"after_ms\":"
                        "-9223372036854775808}");
    cm_sbuf_reset(&b);
    cm_encode_reconnect(&b, NULL, 0);
    assert_string_equal(cm_sbuf_data(&b),
                        "{\"type\":\"reconnect\",\"reason\":\"\",\"after_ms\":0}");

    /* Encoders append; they never reset what is already there. */
    cm_sbuf_reset(&b);
    cm_encode_pong(&b, NULL);
    cm_encode_pong(&b, NULL);
    assert_string_equal(cm_sbuf_data(&b), "{\"type\":\"pong\"}{\"type\":\"pong\"}");
    cm_sbuf_free(&b);
}

/* Big rooms: members' cursor and join's presence mode. */
static void test_decode_cursor_presence(void **state)
{
    struct cm_frame f;
    decode_ok("{\"type\":\"members\",\"room\":\"r\"}", &f);
    assert_string_equal(f.cursor, "0");
    cm_frame_clear(&f);
    decode_ok("{\"type\":\"members\",\"room\":\"r\",\"cursor\":\"18446744073709551615\"}", &f);
    assert_string_equal(f.cursor, "18446744073709551615");
    cm_frame_clear(&f);
    EXPECT("{\"type\":\"members\",\"room\":\"r\",\"cursor\":5}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"members\",\"room\":\"r\",\"cursor\":\"\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"members\",\"room\":\"r\",\"cursor\":\"1a\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"members\",\"room\":\"r\",\"cursor\":\"-1\"}", CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"members\",\"room\":\"r\",\"cursor\":\"184467440737095516150\"}",
           CM_ERR_BAD_REQUEST);

    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\"}", &f);
    assert_int_equal(f.presence, CM_PRESENCE_EVENTS);
    cm_frame_clear(&f);
    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"presence\":\"diff\"}", &f);
    assert_int_equal(f.presence, CM_PRESENCE_DIFF);
    cm_frame_clear(&f);
    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"presence\":\"events\"}", &f);
    assert_int_equal(f.presence, CM_PRESENCE_EVENTS);
    cm_frame_clear(&f);
    decode_ok("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"presence\":\"count\"}", &f);
    assert_int_equal(f.presence, CM_PRESENCE_COUNT);
    cm_frame_clear(&f);
    EXPECT("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"presence\":\"all\"}",
           CM_ERR_BAD_REQUEST);
    EXPECT("{\"type\":\"join\",\"room\":\"r\",\"nickname\":\"n\",\"presence\":true}",
           CM_ERR_BAD_REQUEST);
}

/* Presence frames as the scripts publish them, count spliced in last. */
static void test_presence_decode(void **state)
{
    struct cm_presence p;
    const char *join = "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\",\"nickname\":"
                       "\"b\\u00f6b\",\"ts\":17,\"count\":101}";
    assert_int_equal(cm_presence_decode(join, strlen(join), &p), 0);
    assert_true(p.join);
    assert_string_equal(p.nickname, "b\xc3\xb6"
                                    "b");
    assert_string_equal(p.reason, "");
    assert_int_equal(p.ts, 17);
    assert_int_equal(p.count, 101);
    const char *leave = "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"leave\",\"nickname\":"
                        "\"x\",\"reason\":\"gateway_lost\",\"ts\":5}";
    assert_int_equal(cm_presence_decode(leave, strlen(leave), &p), 0);
    assert_false(p.join);
    assert_string_equal(p.reason, "gateway_lost");
    assert_int_equal(p.count, -1); /* from a worker that does not add it */
    static const char *const bad[] = {
        "{\"type\":\"message\",\"seq\":1}",
        "{\"type\":\"presence\",\"event\":\"wave\",\"nickname\":\"x\"}",
        "{\"type\":\"presence\",\"event\":\"join\"}",
        "not json",
    };
    for (size_t i = 0; i < CM_ARRAY_LEN(bad); i++)
        assert_int_equal(cm_presence_decode(bad[i], strlen(bad[i]), &p), -1);
}

/* Inputs that tests/fuzz finds crashing go here as cases of their own; 18
 * million runs of fuzz_frame_decode have found none so far. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_room_valid),
        cmocka_unit_test(test_nickname_valid),
        cmocka_unit_test(test_decode_join),
        cmocka_unit_test(test_decode_message),
        cmocka_unit_test(test_decode_leave_members_ping),
        cmocka_unit_test(test_decode_cursor_presence),
        cmocka_unit_test(test_presence_decode),
        cmocka_unit_test(test_decode_history),
        cmocka_unit_test(test_decode_legacy),
        cmocka_unit_test(test_decode_whitespace_and_unknown_fields),
        cmocka_unit_test(test_decode_unterminated),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_bad_request_type),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_invalid_room),
        cmocka_unit_test(test_invalid_nickname),
        cmocka_unit_test(test_message_size),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_epoch_size),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_id_echo),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_encode_fields),
        cmocka_unit_test(test_encode_error),
        cmocka_unit_test(test_encode_escaping),
        cmocka_unit_test(test_encode_message_tail),
        cmocka_unit_test(test_decode_encode_roundtrip),
        cmocka_unit_test(test_encode_numbers_and_nulls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
