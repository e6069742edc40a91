/*
 * Unit tests of common/src/cm_redis_url.c: redis://[[user]:password@]host[:port][/db].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_redis_url.h"

#include <string.h>

static void expect_url(const char *url, const char *host, int port, const char *user,
                       const char *password, int db)
{
    struct cm_redis_url u;
    char err[128] = "";
    if (cm_redis_url_parse(url, &u, err, sizeof(err)) != 0)
        fail_msg("'%s' refused: %s", url, err);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    assert_string_equal(u.user, user);
    assert_string_equal(u.password, password);
    assert_int_equal(u.db, db);
}

static void test_host_port_db(void **state)
{
    expect_url("redis://localhost", "localhost", 6379, "", "", 0);
    expect_url("redis://127.0.0.1:6380", "127.0.0.1", 6380, "", "", 0);
    expect_url("redis://db.example:1/15", "db.example", 1, "", "", 15);
    expect_url("redis://h/", "h", 6379, "", "", 0);
    expect_url("redis://h/0", "h", 6379, "", "", 0);
    expect_url("redis://h:65535/1000000", "h", 65535, "", "", 1000000);
}

static void test_ipv6(void **state)
{
    expect_url("redis://[::1]:6380", "::1", 6380, "", "", 0);
    expect_url("redis://[::1]", "::1", 6379, "", "", 0);
    expect_url("redis://[::1]/3", "::1", 6379, "", "", 3);
    expect_url("redis://:pw@[2001:db8::7]:7000/1", "2001:db8::7", 7000, "", "pw", 1);
}

static void test_credentials(void **state)
{
    expect_url("redis://:secret@h", "h", 6379, "", "secret", 0);
    expect_url("redis://alice:s3cret@h:6380/2", "h", 6380, "alice", "s3cret", 2);
    /* A lone credential is a password, as redis-cli reads it. */
    expect_url("redis://secret@h", "h", 6379, "", "secret", 0);
    /* The first colon splits user from password; the last '@' ends them. */
    expect_url("redis://:a:b@h", "h", 6379, "", "a:b", 0);
    expect_url("redis://u:a@b@h", "h", 6379, "u", "a@b", 0);
    expect_url("redis://@h", "h", 6379, "", "", 0);
    expect_url("redis://user:@h", "h", 6379, "user", "", 0);
}

static void test_percent_encoding(void **state)
{
    expect_url("redis://us%40er:p%3Ass%2Fw%25rd@h", "h", 6379, "us@er", "p:ss/w%rd", 0);
    expect_url("redis://:%e2%82%ac@h", "h", 6379, "", "\xe2\x82\xac", 0);
    expect_url("redis://:%41%4a%4A@h", "h", 6379, "", "AJJ", 0);
}

static void test_errors(void **state)
{
    static const char *const bad[] = {
        "",
        "localhost:6379",
        "http://h",
        "rediss://h",
        "redis://",
        "redis:///0",
        "redis://:pw@",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:-1",
        "redis://h:port",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/+1",
        "redis://h/ 1",
        "redis://h/1/2",
        "redis://h/1000001",
        "redis://::1",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[::1]x:80",
        "redis://[]",
        "redis://h]",
        "redis://a[b",
        "redis://:%00@h",
        "redis://:%4@h",
        "redis://:%@h",
        "redis://:%zz@h",
        "redis://%G1:x@h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cm_redis_url u;
        char err[128] = "";
        if (cm_redis_url_parse(bad[i], &u, err, sizeof(err)) != -1)
            fail_msg("'%s' accepted as host '%s' port %d", bad[i], u.host, u.port);
        assert_true(strlen(err) > 0);
    }
}

static void test_overlong(void **state)
{
    char url[1200], err[128];
    struct cm_redis_url u;
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 300); /* longer than the password field */
    strcpy(url + 309, "@h");
    assert_int_equal(cm_redis_url_parse(url, &u, err, sizeof(err)), -1);

    strcpy(url, "redis://");
    memset(url + 8, 'h', 260); /* longer than the host field */
    url[268] = '\0';
    assert_int_equal(cm_redis_url_parse(url, &u, err, sizeof(err)), -1);

    memset(url + 8, 'h', 255); /* the longest host that fits */
    url[263] = '\0';
    assert_int_equal(cm_redis_url_parse(url, &u, err, sizeof(err)), 0);
    assert_int_equal(strlen(u.host), 255);
}

static void test_check(void **state)
{
    char err[128];
    assert_int_equal(cm_check_redis_url("redis://h:1/2", err, sizeof(err)), 0);
    assert_int_equal(cm_check_redis_url("h:1", err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_port_db), cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_credentials),  cmocka_unit_test(test_percent_encoding),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
