/*
 * Unit tests of common/src/cm_keys.c: the Redis key and channel names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cm_keys.h"

#include <string.h>

static void test_room_keys(void **state)
{
    char k[CM_KEY_MAX];
    static const struct {
        enum cm_room_key which;
        const char *want;
    } cases[] = {
        {CM_ROOM_CHANNEL, "chat:{lobby}"},
        {CM_ROOM_META, "chat:{lobby}:meta"},
        {CM_ROOM_HISTORY, "chat:{lobby}:history"},
        {CM_ROOM_MEMBERS, "chat:{lobby}:members"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cm_key_room(k, cases[i].which, "lobby");
        assert_string_equal(k, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    /* The channel prefix the gateway matches on is what cm_key_room writes. */
    cm_key_room(k, CM_ROOM_CHANNEL, "x");
    assert_memory_equal(k, CM_CHANNEL_PREFIX, strlen(CM_CHANNEL_PREFIX));
}

/* The longest valid room fits every key with room to spare. */
static void test_longest_room(void **state)
{
    char room[65], k[CM_KEY_MAX];
    memset(room, 'r', 64);
    room[64] = '\0';
    size_t n = cm_key_room(k, CM_ROOM_MEMBERS, room);
    assert_int_equal(n, strlen("chat:{}:members") + 64);
    assert_int_equal(strlen(k), n);
}

/* The returned length never exceeds what was written, even if truncated. */
static void test_truncation(void **state)
{
    char id[300], k[CM_KEY_MAX];
    memset(id, 'g', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    size_t n = cm_key_gw_sessions(k, id);
    assert_int_equal(n, CM_KEY_MAX - 1);
    assert_int_equal(strlen(k), n);
    n = cm_key_room(k, CM_ROOM_META, id);
    assert_int_equal(strlen(k), n);
}

static void test_gateway_keys(void **state)
{
    char k[CM_KEY_MAX];
    assert_int_equal(cm_key_gw_control(k, "gw-1"), strlen("chat:gw:gw-1"));
    assert_string_equal(k, "chat:gw:gw-1");
    assert_int_equal(cm_key_gw_sessions(k, "gw-1"), strlen("chat:gw:gw-1:sessions"));
    assert_string_equal(k, "chat:gw:gw-1:sessions");
}

/* One Redis keeps the old names; a cluster puts all three in one slot. */
static void test_gateways_keys(void **state)
{
    static const char *const single[] = {"chat:gateways", "chat:gateways:dead",
                                         "chat:gateways:sweep"};
    static const char *const cluster[] = {"chat:{gateways}", "chat:{gateways}:dead",
                                          "chat:{gateways}:sweep"};
    char k[CM_KEY_MAX];
    for (int w = CM_GATEWAYS_LIVE; w <= CM_GATEWAYS_SWEEP; w++) {
        assert_int_equal(cm_key_gateways(k, (enum cm_gateways_key)w, false), strlen(single[w]));
        assert_string_equal(k, single[w]);
        assert_int_equal(cm_key_gateways(k, (enum cm_gateways_key)w, true), strlen(cluster[w]));
        assert_string_equal(k, cluster[w]);
        assert_int_equal(cm_key_slot(k, strlen(k)), cm_key_slot("{gateways}", 10));
    }
}

static int channel_room(const char *channel, char *room)
{
    return cm_key_channel_room(channel, strlen(channel), room);
}

static void test_channel_room(void **state)
{
    char room[65];
    assert_int_equal(channel_room("chat:{lobby}", room), 0);
    assert_string_equal(room, "lobby");
    assert_int_equal(channel_room("chat:{a.b:c-d_e}", room), 0);
    assert_string_equal(room, "a.b:c-d_e");

    char ch[80];
    memset(room, 0, sizeof(room));
    strcpy(ch, "chat:{");
    memset(ch + 6, 'r', 64);
    strcpy(ch + 70, "}");
    assert_int_equal(channel_room(ch, room), 0);
    assert_int_equal(strlen(room), 64);
    strcpy(ch + 6 + 64, "r}"); /* 65 characters */
    assert_int_equal(channel_room(ch, room), -1);

    static const char *const not_rooms[] = {
        "chat:{}",    "chat:{",     "chat:",      "chat:{a",    "chat:{a}:meta",
        "chat:{a}b}", "chat:{a b}", "chat:{{a}}", "chat:gw:g1", "chat:events",
        "xhat:{a}",   "",           "}",
    };
    for (size_t i = 0; i < sizeof(not_rooms) / sizeof(not_rooms[0]); i++) {
        if (channel_room(not_rooms[i], room) != -1)
            fail_msg("'%s' taken for a room channel", not_rooms[i]);
    }

    /* The length bounds the channel; it need not be NUL-terminated. */
    assert_int_equal(cm_key_channel_room("chat:{abc}XYZ", 10, room), 0);
    assert_string_equal(room, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_keys),    cmocka_unit_test(test_longest_room),
        cmocka_unit_test(test_truncation),   cmocka_unit_test(test_gateway_keys),
        cmocka_unit_test(test_gateways_keys),
        cmocka_unit_test(test_channel_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
