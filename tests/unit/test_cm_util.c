/*
 * Unit tests of common/src/cm_util.c: allocation helpers, clocks, random
 * ids, and the growable buffer with its JSON string escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void test_alloc(void **state)
{
    char *p = cm_malloc(0); /* never NULL, even for 0 bytes */
    assert_non_null(p);
    free(p);
    unsigned char *z = cm_calloc(64, 4);
    for (size_t i = 0; i < 256; i++)
        assert_int_equal(z[i], 0);
    z = cm_realloc(z, 4096);
    assert_int_equal(z[255], 0);
    free(z);
    char *d = cm_strdup("hello");
    assert_string_equal(d, "hello");
    free(d);
    d = cm_strndup("hello world", 5);
    assert_string_equal(d, "hello");
    free(d);
    d = cm_strndup("a\0b", 3); /* copies n bytes, NUL included, then terminates */
    assert_memory_equal(d, "a\0b\0", 4);
    free(d);
}

static void test_clocks(void **state)
{
    int64_t now = cm_now_ms();
    assert_true(now > 1600000000000LL); /* after September 2020 */
    int64_t a = cm_mono_ms(), b = cm_mono_ms();
    assert_true(a >= 0 && b >= a);
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strchr("0123456789abcdef", s[i]) || s[i] == '\0')
            return false;
    }
    return true;
}

static void test_random_hex(void **state)
{
    char a[33], b[33];
    cm_random_hex(a, 16);
    cm_random_hex(b, 16);
    assert_int_equal(strlen(a), 32);
    assert_true(all_hex(a, 32));
    assert_string_not_equal(a, b);

    char z[1] = {'x'};
    cm_random_hex(z, 0);
    assert_int_equal(z[0], '\0');

    /* More than one internal chunk: every byte the caller sized for is filled. */
    char big[2 * 100 + 1];
    memset(big, 'x', sizeof(big));
    cm_random_hex(big, 100);
    assert_int_equal(strlen(big), 200);
    assert_true(all_hex(big, 200));
}

static void test_sbuf_growth(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 16);
    assert_int_equal(b.len, 0);
    assert_string_equal(cm_sbuf_data(&b), "");
    memset(b.mem, 0xAB, 16); /* the transport's headroom is ours to scribble on */

    /* Grow well past the first allocation, one byte at a time and in blocks. */
    for (int i = 0; i < 1000; i++)
        cm_sbuf_append(&b, "x", 1);
    char block[5000];
    memset(block, 'y', sizeof(block));
    cm_sbuf_append(&b, block, sizeof(block));
    assert_int_equal(b.len, 6000);
    assert_true(b.cap >= b.len);
    assert_ptr_equal(cm_sbuf_data(&b), b.mem + 16);
    assert_int_equal(cm_sbuf_data(&b)[6000], '\0');
    assert_int_equal(cm_sbuf_data(&b)[999], 'x');
    assert_int_equal(cm_sbuf_data(&b)[1000], 'y');
    for (int i = 0; i < 16; i++)
        assert_int_equal((unsigned char)b.mem[i], 0xAB);

    cm_sbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(cm_sbuf_data(&b), "");
    cm_sbuf_puts(&b, "abc");
    cm_sbuf_append(&b, "", 0);
    assert_string_equal(cm_sbuf_data(&b), "abc");
    cm_sbuf_free(&b);
    assert_null(b.mem);
    cm_sbuf_free(&b); /* twice is harmless */
}

static void test_sbuf_printf(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_sbuf_printf(&b, "%s=%d", "n", 42);
    assert_string_equal(cm_sbuf_data(&b), "n=42");
    char wide[1000];
    memset(wide, 'w', sizeof(wide) - 1);
    wide[sizeof(wide) - 1] = '\0';
    cm_sbuf_printf(&b, "[%s]", wide);
    assert_int_equal(b.len, 4 + 2 + 999);
    assert_int_equal(cm_sbuf_data(&b)[b.len - 1], ']');
    assert_int_equal(cm_sbuf_data(&b)[b.len], '\0');
    cm_sbuf_printf(&b, "%s", "");
    assert_int_equal(b.len, 1005);
    cm_sbuf_free(&b);
}

/* A zeroed or freed buffer is usable: appending allocates again (this once
 * looped forever doubling a capacity of 0). */
static void test_sbuf_from_zero(void **state)
{
    struct cm_sbuf z = {0};
    cm_sbuf_puts(&z, "hello");
    assert_string_equal(cm_sbuf_data(&z), "hello");
    cm_sbuf_free(&z);

    struct cm_sbuf b;
    cm_sbuf_init(&b, 8);
    cm_sbuf_free(&b);
    cm_sbuf_reset(&b);
    cm_sbuf_printf(&b, "%d", 7);
    assert_string_equal(cm_sbuf_data(&b), "7");
    assert_ptr_equal(cm_sbuf_data(&b), b.mem + 8);
    cm_sbuf_free(&b);
}

static void json_str(struct cm_sbuf *b, const char *s, size_t len)
{
    cm_sbuf_reset(b);
    cm_sbuf_put_json_str(b, s, len);
}

static void test_json_str(void **state)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"", "\"\""},
        {"plain", "\"plain\""},
        {"q\"q", "\"q\\\"q\""},
        {"b\\s", "\"b\\\\s\""},
        {"/", "\"/\""},
        {"\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""},
        {"\x01\x1f", "\"\\u0001\\u001f\""},
        {"\x1b[0m", "\"\\u001b[0m\""},
        {"\x7f", "\"\x7f\""},
        {"caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
        {"\xe2\x80\xa8", "\"\xe2\x80\xa8\""},
        {"\"\"\\\\", "\"\\\"\\\"\\\\\\\\\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_str(&b, cases[i].in, strlen(cases[i].in));
        assert_string_equal(cm_sbuf_data(&b), cases[i].out);
        assert_int_equal(b.len, strlen(cases[i].out));
    }
    json_str(&b, "a\0b", 3);
    assert_string_equal(cm_sbuf_data(&b), "\"a\\u0000b\"");
    json_str(&b, "abcdef", 2); /* only len bytes */
    assert_string_equal(cm_sbuf_data(&b), "\"ab\"");

    /* Appends after what is there; long strings with escapes spread out. */
    cm_sbuf_reset(&b);
    cm_sbuf_puts(&b, "[");
    char many[3000];
    for (size_t i = 0; i < sizeof(many); i++)
        many[i] = i % 3 == 0 ? '"' : 'x';
    cm_sbuf_put_json_str(&b, many, sizeof(many));
    assert_int_equal(b.len, 1 + 2 + sizeof(many) + 1000);
    assert_memory_equal(cm_sbuf_data(&b), "[\"\\\"xx\\\"", 8);
    cm_sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc),       cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_random_hex),  cmocka_unit_test(test_sbuf_growth),
        cmocka_unit_test(test_sbuf_printf), cmocka_unit_test(test_sbuf_from_zero),
        cmocka_unit_test(test_json_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
