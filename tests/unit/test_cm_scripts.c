/*
 * Unit tests of the embedded Lua scripts (common/scripts, cmake/embed.cmake):
 * each enum value has its script, under its file's name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_scripts.h"

#include <string.h>

static void test_names(void **state)
{
    assert_string_equal(cm_script_name(CM_SCRIPT_PUBLISH), "publish");
    assert_string_equal(cm_script_name(CM_SCRIPT_JOIN), "join");
    assert_string_equal(cm_script_name(CM_SCRIPT_LEAVE), "leave");
    assert_string_equal(cm_script_name(CM_SCRIPT_MEMBERS), "members");
    for (int i = 0; i < CM_SCRIPT__COUNT; i++) {
        for (int j = 0; j < i; j++)
            assert_string_not_equal(cm_script_name(i), cm_script_name(j));
    }
}

/* Every script is there in full: Lua that calls Redis and returns. */
static void test_sources(void **state)
{
    for (int i = 0; i < CM_SCRIPT__COUNT; i++) {
        const char *src = cm_script_source(i);
        assert_non_null(src);
        if (!strstr(src, "redis.call") || !strstr(src, "return"))
            fail_msg("script '%s' looks wrong:\n%s", cm_script_name(i), src);
    }
    assert_non_null(strstr(cm_script_source(CM_SCRIPT_PUBLISH), "PUBLISH"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_sources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
