/*
 * Unit tests of common/src/cm_log.c: level names, filtering, and the shape
 * of a log line (captured by pointing stderr at a temporary file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_level_parse(void **state)
{
    static const struct {
        const char *name;
        enum cm_log_level level;
    } cases[] = {
        {"debug", CM_LOG_DEBUG}, {"info", CM_LOG_INFO}, {"warn", CM_LOG_WARN},
        {"error", CM_LOG_ERROR}, {"INFO", CM_LOG_INFO}, {"Warn", CM_LOG_WARN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum cm_log_level l = CM_LOG_ERROR;
        assert_int_equal(cm_log_level_parse(cases[i].name, &l), 0);
        assert_int_equal(l, cases[i].level);
    }
    enum cm_log_level l = CM_LOG_WARN;
    assert_int_equal(cm_log_level_parse("verbose", &l), -1);
    assert_int_equal(cm_log_level_parse("", &l), -1);
    assert_int_equal(cm_log_level_parse("info ", &l), -1);
    assert_int_equal(l, CM_LOG_WARN); /* untouched on failure */
}

static void test_enabled(void **state)
{
    cm_log_set_level(CM_LOG_WARN);
    assert_false(cm_log_enabled(CM_LOG_DEBUG));
    assert_false(cm_log_enabled(CM_LOG_INFO));
    assert_true(cm_log_enabled(CM_LOG_WARN));
    assert_true(cm_log_enabled(CM_LOG_ERROR));
    cm_log_set_level(CM_LOG_DEBUG);
    assert_true(cm_log_enabled(CM_LOG_DEBUG));
    cm_log_set_level(CM_LOG_INFO);
}

/* Runs fn with stderr redirected and returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    struct stat st;
    assert_int_equal(fstat(fileno(tmp), &st), 0);
    size_t n = (size_t)st.st_size;
    rewind(tmp);
    char *out = calloc(1, n + 1);
    assert_int_equal(fread(out, 1, n, tmp), n);
    fclose(tmp);
    return out;
}

static void log_some(void)
{
    cm_log_set_level(CM_LOG_INFO);
    CM_DEBUG("hidden %d", 1);
    CM_INFO("gateway listening on %s:%d", "127.0.0.1", 8080);
    CM_WARN("warned");
    CM_ERROR("failed");
}

static void test_line_format(void **state)
{
    char *out = capture(log_some);
    assert_null(strstr(out, "hidden"));
    /* 2026-11-21T08:58:13.475Z INFO gateway listening on 127.0.0.1:8080 */
    char *line = strtok(out, "\n");
    assert_non_null(line);
    assert_int_equal(strlen(line), 25 + strlen("INFO gateway listening on 127.0.0.1:8080"));
    assert_true(line[4] == '-' && line[7] == '-' && line[10] == 'T' && line[13] == ':' &&
                line[16] == ':' && line[19] == '.' && line[23] == 'Z' && line[24] == ' ');
    assert_string_equal(line + 25, "INFO gateway listening on 127.0.0.1:8080");
    line = strtok(NULL, "\n");
    assert_string_equal(line + 25, "WARN warned");
    line = strtok(NULL, "\n");
    assert_string_equal(line + 25, "ERROR failed");
    assert_null(strtok(NULL, "\n"));
    free(out);
}

static void log_long(void)
{
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CM_WARN("%s", big);
}

/* An overlong message is cut, but still ends in exactly one newline. */
static void test_long_line(void **state)
{
    char *out = capture(log_long);
    size_t n = strlen(out);
    assert_true(n > 1000 && n <= 1024);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_enabled),
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
