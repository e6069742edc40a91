/*
 * Unit tests of common/src/cm_config.c: cm_config_parse over a small option
 * table (defaults, CHAT_* variables, flags, errors, --help and --version)
 * and the host:port helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_config.h"
#include "cm_redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_cfg {
    const char *listen;
    long long history_max;
    int verbose;
    const char *redis;
    const char *name; /* no default */
};

static const struct cm_option opts[] = {
    {"listen", CM_OPT_STR, offsetof(struct test_cfg, listen), "127.0.0.1:8080", "HOST:PORT",
     "where to listen", 0, 0, cm_check_hostport},
    {"history-max", CM_OPT_INT, offsetof(struct test_cfg, history_max), "1000", "N",
     "messages kept per room", 1, 100000, NULL},
    {"verbose", CM_OPT_FLAG, offsetof(struct test_cfg, verbose), "0", NULL, "log more", 0, 1, NULL},
    {"redis", CM_OPT_STR, offsetof(struct test_cfg, redis), "redis://127.0.0.1:6379", "URL",
     "the broker", 0, 0, cm_check_redis_url},
    {"name", CM_OPT_STR, offsetof(struct test_cfg, name), NULL, "NAME", "a name", 0, 0, NULL},
};

static const struct cm_program prog = {"chat-test", "1.2.3", "tests the option parser"};

static const char *const env_vars[] = {"CHAT_LISTEN", "CHAT_HISTORY_MAX", "CHAT_VERBOSE",
                                       "CHAT_REDIS", "CHAT_NAME"};

static int clear_env(void **state)
{
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    return 0;
}

/* Parses the NULL-terminated argument list (argv[0] is added) into *cfg. */
static int parse(struct test_cfg *cfg, ...)
{
    char *argv[16] = {"chat-test"};
    int argc = 1;
    va_list ap;
    va_start(ap, cfg);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;)
        argv[argc++] = a;
    va_end(ap);
    memset(cfg, 0, sizeof(*cfg));
    return cm_config_parse(&prog, opts, sizeof(opts) / sizeof(opts[0]), cfg, argc, argv);
}

static void test_defaults(void **state)
{
    struct test_cfg c;
    assert_int_equal(parse(&c, NULL), CM_CONFIG_OK);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_int_equal(c.history_max, 1000);
    assert_int_equal(c.verbose, 0);
    assert_string_equal(c.redis, "redis://127.0.0.1:6379");
    assert_null(c.name);
}

static void test_env_overrides_default(void **state)
{
    setenv("CHAT_LISTEN", "0.0.0.0:9000", 1);
    setenv("CHAT_HISTORY_MAX", "42", 1);
    setenv("CHAT_VERBOSE", "true", 1);
    setenv("CHAT_NAME", "from-env", 1);
    struct test_cfg c;
    assert_int_equal(parse(&c, NULL), CM_CONFIG_OK);
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_int_equal(c.history_max, 42);
    assert_int_equal(c.verbose, 1);
    assert_string_equal(c.name, "from-env");
    setenv("CHAT_VERBOSE", "0", 1);
    assert_int_equal(parse(&c, NULL), CM_CONFIG_OK);
    assert_int_equal(c.verbose, 0);
}

static void test_flag_beats_env(void **state)
{
    setenv("CHAT_HISTORY_MAX", "42", 1);
    setenv("CHAT_LISTEN", "0.0.0.0:9000", 1);
    struct test_cfg c;
    assert_int_equal(parse(&c, "--history-max", "7", "--listen=[::1]:80", "--verbose", NULL),
                     CM_CONFIG_OK);
    assert_int_equal(c.history_max, 7);
    assert_string_equal(c.listen, "[::1]:80");
    assert_int_equal(c.verbose, 1);

    /* The last of a repeated flag wins. */
    assert_int_equal(parse(&c, "--history-max", "7", "--history-max", "8", NULL), CM_CONFIG_OK);
    assert_int_equal(c.history_max, 8);

    /* A bad variable that a flag overrides is never judged. */
    setenv("CHAT_HISTORY_MAX", "lots", 1);
    assert_int_equal(parse(&c, "--history-max", "9", NULL), CM_CONFIG_OK);
    assert_int_equal(c.history_max, 9);
    assert_int_equal(parse(&c, NULL), CM_CONFIG_ERROR);
}

static void test_int_errors(void **state)
{
    static const char *const bad[] = {
        "0", "100001", "-5", "abc", "12abc", "", " 5", "+5", "99999999999999999999999"};
    struct test_cfg c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(&c, "--history-max", bad[i], NULL) != CM_CONFIG_ERROR)
            fail_msg("--history-max '%s' accepted", bad[i]);
    }
    assert_int_equal(parse(&c, "--history-max", "1", NULL), CM_CONFIG_OK);
    assert_int_equal(parse(&c, "--history-max", "100000", NULL), CM_CONFIG_OK);
    setenv("CHAT_HISTORY_MAX", "0", 1);
    assert_int_equal(parse(&c, NULL), CM_CONFIG_ERROR);
}

static void test_string_checks(void **state)
{
    struct test_cfg c;
    assert_int_equal(parse(&c, "--listen", "nowhere", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "--redis", "http://x", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "--redis", "redis://:pw@db:6380/2", NULL), CM_CONFIG_OK);
    assert_string_equal(c.redis, "redis://:pw@db:6380/2");
    setenv("CHAT_LISTEN", "bad", 1);
    assert_int_equal(parse(&c, NULL), CM_CONFIG_ERROR);
}

static void test_flag_values(void **state)
{
    struct test_cfg c;
    static const char *const yes[] = {"1", "true", "TRUE", "yes"};
    static const char *const no[] = {"0", "false", "False", "no"};
    for (size_t i = 0; i < 4; i++) {
        setenv("CHAT_VERBOSE", yes[i], 1);
        assert_int_equal(parse(&c, NULL), CM_CONFIG_OK);
        assert_int_equal(c.verbose, 1);
        setenv("CHAT_VERBOSE", no[i], 1);
        assert_int_equal(parse(&c, NULL), CM_CONFIG_OK);
        assert_int_equal(c.verbose, 0);
    }
    setenv("CHAT_VERBOSE", "maybe", 1);
    assert_int_equal(parse(&c, NULL), CM_CONFIG_ERROR);
    /* A flag takes no value on the command line. */
    unsetenv("CHAT_VERBOSE");
    assert_int_equal(parse(&c, "--verbose=1", NULL), CM_CONFIG_ERROR);
}

static void test_command_line_errors(void **state)
{
    struct test_cfg c;
    assert_int_equal(parse(&c, "--nope", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "--nope=1", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "-x", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "--listen", NULL), CM_CONFIG_ERROR); /* value missing */
    assert_int_equal(parse(&c, "stray", NULL), CM_CONFIG_ERROR);
    assert_int_equal(parse(&c, "--verbose", "stray", NULL), CM_CONFIG_ERROR);
    /* getopt's state is reset each time: a clean parse after errors works. */
    assert_int_equal(parse(&c, "--name", "n", NULL), CM_CONFIG_OK);
    assert_string_equal(c.name, "n");
}

static void test_help_and_version(void **state)
{
    struct test_cfg c;
    assert_int_equal(parse(&c, "--help", NULL), CM_CONFIG_EXIT);
    assert_int_equal(parse(&c, "-h", NULL), CM_CONFIG_EXIT);
    assert_int_equal(parse(&c, "--version", NULL), CM_CONFIG_EXIT);
    assert_int_equal(parse(&c, "-V", NULL), CM_CONFIG_EXIT);
    assert_int_equal(parse(&c, "--verbose", "--help", NULL), CM_CONFIG_EXIT);
    /* --help answers whatever the environment holds. */
    setenv("CHAT_HISTORY_MAX", "broken", 1);
    assert_int_equal(parse(&c, "--help", NULL), CM_CONFIG_EXIT);
}

static void test_usage_text(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    cm_config_usage(&prog, opts, sizeof(opts) / sizeof(opts[0]), f);
    char text[4096];
    rewind(f);
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    static const char *const want[] = {
        "chat-test 1.2.3: tests the option parser",
        "--history-max N",
        "CHAT_HISTORY_MAX",
        "default 1000",
        "--verbose",
        "CHAT_VERBOSE",
        "--listen HOST:PORT",
        "--help",
        "--version",
        "messages kept per room",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(text, want[i]))
            fail_msg("usage lacks '%s':\n%s", want[i], text);
    }
}

static void test_hostport(void **state)
{
    char host[64], err[128];
    int port = -1;
    static const struct {
        const char *in, *host;
        int port;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"localhost:0", "localhost", 0},
        {"[::1]:80", "::1", 80},
        {"[fe80::1%eth0]:65535", "fe80::1%eth0", 65535},
        {"example.com:6379", "example.com", 6379},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (cm_hostport_parse(good[i].in, host, sizeof(host), &port, err, sizeof(err)) != 0)
            fail_msg("'%s' refused: %s", good[i].in, err);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    static const char *const bad[] = {
        "localhost", ":80",      "host:",       "host:65536", "host:-1", "host:+80",
        "host: 80",  "host:80x", "host:999999", "[::1]",      "[::1]80", "[]:80",
        "::1:80",    "[::1:80",  "a]:80",       "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (cm_hostport_parse(bad[i], host, sizeof(host), &port, err, sizeof(err)) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(strlen(err) > 0);
    }
    /* A host longer than the caller's buffer is an error, not a truncation. */
    char longhost[100];
    memset(longhost, 'h', 70);
    strcpy(longhost + 70, ":1");
    assert_int_equal(cm_hostport_parse(longhost, host, sizeof(host), &port, err, sizeof(err)), -1);
    assert_int_equal(cm_check_hostport("h:1", err, sizeof(err)), 0);
    assert_int_equal(cm_check_hostport("h", err, sizeof(err)), -1);
}

static void test_check_id(void **state)
{
    char err[128];
    assert_int_equal(cm_check_id("gw-1", err, sizeof(err)), 0);
    assert_int_equal(cm_check_id("a.b:c_d", err, sizeof(err)), 0);
    assert_int_equal(cm_check_id("", err, sizeof(err)), -1);
    assert_int_equal(cm_check_id("gw 1", err, sizeof(err)), -1);
    assert_int_equal(cm_check_id("{gw}", err, sizeof(err)), -1);
    char id[66];
    memset(id, 'i', 65);
    id[65] = '\0';
    assert_int_equal(cm_check_id(id, err, sizeof(err)), -1);
    id[64] = '\0';
    assert_int_equal(cm_check_id(id, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_env_overrides_default, clear_env),
        cmocka_unit_test_setup(test_flag_beats_env, clear_env),
        cmocka_unit_test_setup(test_int_errors, clear_env),
        cmocka_unit_test_setup(test_string_checks, clear_env),
        cmocka_unit_test_setup(test_flag_values, clear_env),
        cmocka_unit_test_setup(test_command_line_errors, clear_env),
        cmocka_unit_test_setup(test_help_and_version, clear_env),
        cmocka_unit_test(test_usage_text),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_check_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
