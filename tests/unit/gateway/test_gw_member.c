/*
 * Unit tests of gateway/member.c and gateway/room.c: a membership's life
 * and a room's subscription, fan-out and resync, against the fake store
 * and fake sessions of fakes.h. Each test drives the store's answers by
 * hand, in the orders a real Redis can produce them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fakes.h"

#include <stdio.h>
#include <string.h>

static struct gw_server srv;

static int setup(void **state)
{
    memset(&srv, 0, sizeof(srv));
    srv.store = (struct gw_store *)&srv; /* never dereferenced by the fake */
    srv.cfg.send_queue_bytes = 1 << 20;
    srv.cfg.history_max = 100;
    fake_store_reset();
    return 0;
}

/* Answers whatever is still pending with LOST and closes every session, so
 * that the sanitizer build sees nothing leak. */
static int teardown(void **state)
{
    while (fake_store.ncalls > 0) {
        struct fake_call c = fake_store_take(0);
        switch (c.kind) {
        case FAKE_PUBLISH: ((gw_store_publish_fn *)c.fn)(c.priv, GW_STORE_LOST, 0, false); break;
        case FAKE_JOIN: ((gw_store_join_fn *)c.fn)(c.priv, GW_STORE_LOST, NULL); break;
        case FAKE_HISTORY: ((gw_store_history_fn *)c.fn)(c.priv, GW_STORE_LOST, NULL); break;
        case FAKE_MEMBERS: ((gw_store_members_fn *)c.fn)(c.priv, GW_STORE_LOST, NULL); break;
        case FAKE_REASSERT: ((gw_store_reassert_fn *)c.fn)(c.priv, GW_STORE_LOST, false); break;
        }
    }
    struct gw_session *s, *tmp;
    HASH_ITER(hh, srv.sessions, s, tmp) {
        fake_session_close(s, "closed");
    }
    gw_presence_tick(&srv); /* rooms kept for a batch go at the tick */
    assert_null(srv.rooms); /* every room went with its last member */
    return 0;
}

/* ---- helpers ---- */

static struct gw_member *join(struct gw_session *s, const char *room, const char *nick)
{
    char buf[256];
    struct cm_frame f;
    struct cm_decode_error err;
    snprintf(buf, sizeof(buf), "{\"type\":\"join\",\"id\":\"j\",\"room\":\"%s\",\"nickname\":\"%s\"}",
             room, nick);
    assert_int_equal(cm_frame_decode(buf, strlen(buf), 1000, &f, &err), 0);
    struct gw_member *m = gw_member_join(s, &f);
    cm_frame_clear(&f);
    return m;
}

static void answer_join(const char *room, enum gw_store_status status, int64_t seq,
                        const char *epoch)
{
    int i = fake_store_find(FAKE_JOIN, room);
    assert_true(i >= 0);
    struct fake_call c = fake_store_take(i);
    struct gw_store_joined j = {
        .seq = seq, .epoch = epoch, .recovered = -1, .members = {.count = 1, .cursor = "0"}};
    ((gw_store_join_fn *)c.fn)(c.priv, status, status == GW_STORE_OK ? &j : NULL);
}

/* A member of room at seq, live. */
static struct gw_member *joined(struct gw_session *s, const char *room, int64_t seq)
{
    struct gw_member *m = join(s, room, s->id);
    assert_non_null(m);
    gw_room_on_subscribed(&srv, room);
    answer_join(room, GW_STORE_OK, seq, "e1");
    assert_int_equal(m->state, GW_MEMBER_JOINED);
    return m;
}

static void envelope(char *buf, size_t size, int64_t seq)
{
    snprintf(buf, size, "{\"type\":\"message\",\"seq\":%lld,\"room\":\"r\",\"text\":\"m%lld\"}",
             (long long)seq, (long long)seq);
}

static void message(const char *room, int64_t seq)
{
    char buf[128];
    envelope(buf, sizeof(buf), seq);
    gw_room_on_message(&srv, room, buf, strlen(buf));
}

/* The seqs of the message frames s was sent, as "4 5 6". */
static const char *seqs(const struct gw_session *s)
{
    static char out[512];
    out[0] = '\0';
    for (int i = 0; i < fake_session_frames(s); i++) {
        const char *f = fake_session_frame(s, i);
        long long seq;
        if (sscanf(f, "{\"type\":\"message\",\"seq\":%lld", &seq) == 1)
            snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%lld", out[0] ? " " : "",
                     seq);
    }
    return out;
}

static bool sent(const struct gw_session *s, const char *needle)
{
    for (int i = 0; i < fake_session_frames(s); i++)
        if (strstr(fake_session_frame(s, i), needle))
            return true;
    return false;
}

static bool logged(const char *line)
{
    return fake_store_logged(line, 0) >= 0;
}

/* A second member of a subscribed room, joined with "presence":mode. */
static struct gw_member *join_mode(struct gw_session *s, const char *room, const char *mode)
{
    char buf[256];
    struct cm_frame f;
    struct cm_decode_error err;
    snprintf(buf, sizeof(buf),
             "{\"type\":\"join\",\"room\":\"%s\",\"nickname\":\"%s\","
             "\"presence\":\"%s\"}",
             room, s->id, mode);
    assert_int_equal(cm_frame_decode(buf, strlen(buf), 1000, &f, &err), 0);
    struct gw_member *m = gw_member_join(s, &f);
    cm_frame_clear(&f);
    answer_join(room, GW_STORE_OK, 0, "e1"); /* the room is subscribed already */
    assert_int_equal(m->state, GW_MEMBER_JOINED);
    return m;
}

/* A presence frame as the scripts publish it, with the room's count. */
static void presence(const char *room, const char *event, const char *nick, int count)
{
    char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"type\":\"presence\",\"room\":\"%s\",\"event\":\"%s\","
             "\"nickname\":\"%s\",%s\"ts\":7,\"count\":%d}",
             room, event, nick, strcmp(event, "leave") == 0 ? "\"reason\":\"left\"," : "", count);
    gw_room_on_message(&srv, room, buf, strlen(buf));
}

/* How many frames s was sent that contain needle. */
static int count_sent(const struct gw_session *s, const char *needle)
{
    int n = 0;
    for (int i = 0; i < fake_session_frames(s); i++)
        n += strstr(fake_session_frame(s, i), needle) != NULL;
    return n;
}

/* ---- joining ---- */

/* The join script runs only once the room's channel is confirmed, so that
 * nothing published after it can be missed. */
static void test_join_waits_for_subscription(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    struct gw_member *m = join(s, "r", "ann");
    assert_non_null(m);
    assert_true(logged("subscribe r"));
    assert_int_equal(fake_store_find(FAKE_JOIN, "r"), -1);
    assert_int_equal(m->state, GW_MEMBER_SUBSCRIBING);

    gw_room_on_subscribed(&srv, "r");
    assert_true(fake_store_find(FAKE_JOIN, "r") >= 0);
    assert_true(logged("join r s1.1"));
    answer_join("r", GW_STORE_OK, 0, "e1");
    assert_true(sent(s, "\"type\":\"joined\""));
    assert_true(logged("event join s1.1"));
    assert_int_equal(m->state, GW_MEMBER_JOINED);
}

/* A second member of a subscribed room joins at once. */
static void test_second_member_joins_at_once(void **state)
{
    joined(fake_session_new(&srv, "s1"), "r", 0);
    join(fake_session_new(&srv, "s2"), "r", "bob");
    assert_true(fake_store_find(FAKE_JOIN, "r") >= 0);
    assert_int_equal(fake_store_logged("subscribe r", 1), -1); /* subscribed once */
}

/* A message sent before the subscription is confirmed waits, and goes out
 * behind the join, in order. */
static void test_publish_before_subscribed_runs_after_join(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    struct gw_member *m = join(s, "r", "ann");
    gw_member_publish(m, "p1", true, "hello", 5);
    assert_int_equal(fake_store_find(FAKE_PUBLISH, "r"), -1);
    gw_room_on_subscribed(&srv, "r");
    int j = fake_store_logged("join r s1.1", 0), p = fake_store_logged("publish r", 0);
    assert_true(j >= 0 && p > j);
    answer_join("r", GW_STORE_OK, 0, "e1");
    struct fake_call c = fake_store_take(fake_store_find(FAKE_PUBLISH, "r"));
    ((gw_store_publish_fn *)c.fn)(c.priv, GW_STORE_OK, 1, true);
    assert_true(sent(s, "\"type\":\"ack\""));
}

/* A deferred message whose member leaves first is answered not_joined. */
static void test_deferred_publish_answered_when_leaving(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    struct gw_member *m = join(s, "r", "ann");
    gw_member_publish(m, "p1", true, "hello", 5);
    gw_member_left(m, "l1");
    assert_true(sent(s, "\"code\":\"not_joined\""));
    assert_true(sent(s, "\"type\":\"left\""));
    assert_true(logged("unsubscribe r"));
    assert_int_equal(fake_store_find(FAKE_PUBLISH, NULL), -1);
}

/* Live frames that arrive while the join script runs are held, and only
 * those above the joined seq go out: no hole, no duplicate. */
static void test_live_frames_held_while_joining(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    message("r", 5);
    message("r", 6);
    assert_string_equal(seqs(s), "");
    answer_join("r", GW_STORE_OK, 5, "e1");
    assert_string_equal(seqs(s), "6");
    message("r", 6); /* again, as after a resubscribe */
    message("r", 7);
    assert_string_equal(seqs(s), "6 7");
}

/* Held frames count against the send queue bound. */
static void test_held_frames_overflow_closes(void **state)
{
    srv.cfg.send_queue_bytes = 100; /* two envelopes of 49 bytes, not three */
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    message("r", 1);
    message("r", 2);
    assert_false(fake_session_overflowed(s));
    message("r", 3);
    assert_true(fake_session_overflowed(s));
}

/* A join the store cannot send fails at once, with nothing left behind. */
static void test_join_fails_when_store_down(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    fake_store.down = true;
    gw_room_on_subscribed(&srv, "r");
    assert_true(sent(s, "\"code\":\"unavailable\""));
    assert_null(gw_member_find(s, "r"));
    assert_int_equal(s->nrooms, 0);
    assert_true(logged("registry del s1.1"));
    assert_true(logged("unsubscribe r"));
}

/* ---- a join whose fate is unknown ---- */

/* The client went away while its join ran: if it ran, the worker undoes it. */
static void test_leave_while_joining_undone_by_reply(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    fake_session_close(s, "closed");
    assert_false(logged("event leave s1.1 closed")); /* not before the reply */
    answer_join("r", GW_STORE_OK, 0, "e1");
    int j = fake_store_logged("event join s1.1", 0);
    assert_true(j >= 0);
    assert_true(fake_store_logged("event leave s1.1 closed", j) > j);
}

/* ...and if Redis refused it, only the registry entry goes. */
static void test_leave_while_joining_refused(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    fake_session_close(s, "closed");
    answer_join("r", GW_STORE_REFUSED, 0, NULL);
    assert_true(logged("registry del s1.1"));
    assert_false(logged("event join s1.1"));
}

/* The link dropped under a join: undone through the worker, client told. */
static void test_lost_join_undone_through_worker(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    answer_join("r", GW_STORE_LOST, 0, NULL);
    assert_true(logged("event join s1.1"));
    assert_true(logged("event leave s1.1 faulted"));
    assert_true(sent(s, "\"code\":\"unavailable\""));
    assert_null(gw_member_find(s, "r"));
}

/* ---- leaving ---- */

static void test_last_member_out_unsubscribes(void **state)
{
    struct gw_session *a = fake_session_new(&srv, "s1"), *b = fake_session_new(&srv, "s2");
    struct gw_member *ma = joined(a, "r", 0);
    join(b, "r", "s2");
    answer_join("r", GW_STORE_OK, 0, "e1");
    gw_member_left(ma, NULL);
    assert_true(logged("event leave s1.1 left"));
    assert_false(logged("unsubscribe r"));
    fake_session_close(b, "closed");
    assert_true(logged("event leave s2.1 closed"));
    assert_true(logged("unsubscribe r"));
}

/* A takeover elsewhere reaches us on the control channel. */
static void test_takeover_by_control_message(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    joined(s, "r", 0);
    const char *stale = "{\"type\":\"replaced\",\"session\":\"s1\",\"mid\":\"s1.9\",\"room\":\"r\"}";
    gw_member_control(&srv, stale, strlen(stale));
    assert_non_null(gw_member_find(s, "r")); /* another mid: already gone */
    const char *msg = "{\"type\":\"replaced\",\"session\":\"s1\",\"mid\":\"s1.1\",\"room\":\"r\"}";
    gw_member_control(&srv, msg, strlen(msg));
    assert_true(sent(s, "\"reason\":\"replaced\""));
    assert_true(logged("event leave s1.1 replaced"));
    assert_null(gw_member_find(s, "r"));
}

/* ---- recovery ---- */

/* The pub/sub link dropped: frames are held until history from the last
 * seq has been re-read, then each seq goes out once. */
static void test_resync_after_pubsub_loss(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    struct gw_member *m = joined(s, "r", 3);
    gw_room_lost(&srv, "r");
    assert_int_equal(m->state, GW_MEMBER_RESYNC);
    gw_room_on_subscribed(&srv, "r");
    message("r", 6); /* live, while history is read */
    int i = fake_store_find(FAKE_HISTORY, "r");
    assert_true(i >= 0);
    assert_int_equal(fake_store.calls[i].from, 3);
    char e4[128], e5[128], e6[128];
    envelope(e4, sizeof(e4), 4);
    envelope(e5, sizeof(e5), 5);
    envelope(e6, sizeof(e6), 6);
    const char *items[] = {e4, e5, e6};
    size_t lens[] = {strlen(e4), strlen(e5), strlen(e6)};
    struct gw_store_history h = {.seq = 6, .epoch = "e1", .items = {.n = 3, .s = items, .len = lens}};
    struct fake_call c = fake_store_take(i);
    ((gw_store_history_fn *)c.fn)(c.priv, GW_STORE_OK, &h);
    assert_string_equal(seqs(s), "4 5 6");
    assert_int_equal(m->state, GW_MEMBER_JOINED);
}

/* History lost in Redis (a new epoch): seqs start again, so a chat.v1
 * member is closed with 1012 to rejoin afresh, never shown a seq twice. */
static void test_resync_new_epoch_closes_members(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    joined(s, "r", 10);
    gw_room_lost(&srv, "r");
    gw_room_on_subscribed(&srv, "r");
    char e1[128];
    envelope(e1, sizeof(e1), 1);
    const char *items[] = {e1};
    size_t lens[] = {strlen(e1)};
    struct gw_store_history h = {.seq = 1, .epoch = "e2", .items = {.n = 1, .s = items, .len = lens}};
    struct fake_call c = fake_store_take(fake_store_find(FAKE_HISTORY, "r"));
    ((gw_store_history_fn *)c.fn)(c.priv, GW_STORE_OK, &h);
    assert_string_equal(seqs(s), "");
    assert_int_equal(fake_session_close_code(s), 1012);
    assert_false(logged("epoch bump r e1"));
}

/* Same epoch, but the room's seq went back behind what members were
 * handed (a failover lost messages): a new epoch, and members rejoin. */
static void test_resync_seq_went_back_bumps_epoch(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    joined(s, "r", 10);
    gw_room_lost(&srv, "r");
    gw_room_on_subscribed(&srv, "r");
    struct gw_store_history h = {.seq = 7, .epoch = "e1", .items = {.n = 0}};
    struct fake_call c = fake_store_take(fake_store_find(FAKE_HISTORY, "r"));
    ((gw_store_history_fn *)c.fn)(c.priv, GW_STORE_OK, &h);
    assert_true(logged("epoch bump r e1"));
    assert_int_equal(fake_session_close_code(s), 1012);
    assert_string_equal(seqs(s), "");
}

/* Redis lost our memberships: each is written again under a new mid, and
 * a nickname another session took meanwhile stays with that session. */
static void test_reassert_new_mid_and_replaced(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    struct gw_member *m = joined(s, "r", 0);
    gw_members_reassert(&srv);
    int i = fake_store_find(FAKE_REASSERT, "r");
    assert_true(i >= 0);
    assert_string_equal(fake_store.calls[i].old_mid, "s1.1");
    assert_string_equal(fake_store.calls[i].mid, "s1.2");
    assert_string_equal(m->mid, "s1.2");
    struct fake_call c = fake_store_take(i);
    ((gw_store_reassert_fn *)c.fn)(c.priv, GW_STORE_OK, false);
    assert_true(sent(s, "\"reason\":\"replaced\""));
    assert_true(logged("event leave s1.2 replaced"));
}

/* A member still in its join is not re-asserted: its join writes it. */
static void test_reassert_skips_joining(void **state)
{
    struct gw_session *s = fake_session_new(&srv, "s1");
    join(s, "r", "ann");
    gw_room_on_subscribed(&srv, "r");
    gw_members_reassert(&srv);
    assert_int_equal(fake_store_find(FAKE_REASSERT, NULL), -1);
}

/* ---- presence ---- */

/* Above the threshold every member gets one diff per tick, with the latest
 * event of each nickname and the last count. */
static void test_presence_batched_in_big_room(void **state)
{
    srv.cfg.presence_batch_above = 2;
    struct gw_session *a = fake_session_new(&srv, "a"), *b = fake_session_new(&srv, "b");
    joined(a, "r", 0);
    join_mode(b, "r", "diff");
    presence("r", "join", "x", 3);
    presence("r", "join", "y", 4);
    presence("r", "leave", "x", 3);
    assert_int_equal(count_sent(a, "presence"), 0);
    assert_int_equal(count_sent(b, "presence"), 0);
    gw_presence_tick(&srv);
    const char *want = "{\"type\":\"presence_diff\",\"room\":\"r\",\"count\":3,\"joins\":"
                       "[{\"nickname\":\"y\",\"since\":7}],\"leaves\":[{\"nickname\":\"x\","
                       "\"reason\":\"left\",\"ts\":7}]}";
    assert_int_equal(count_sent(a, want), 1);
    assert_int_equal(count_sent(b, want), 1);
    gw_presence_tick(&srv); /* nothing new: no empty diff */
    assert_int_equal(count_sent(a, "presence_diff"), 1);
}

/* At or below it, a member that did not ask gets each frame at once; one
 * that asked gets diffs. */
static void test_presence_small_room(void **state)
{
    srv.cfg.presence_batch_above = 5;
    struct gw_session *a = fake_session_new(&srv, "a"), *b = fake_session_new(&srv, "b");
    joined(a, "r", 0);
    join_mode(b, "r", "diff");
    presence("r", "join", "x", 3);
    assert_int_equal(count_sent(a, "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\""), 1);
    assert_int_equal(count_sent(b, "presence"), 0);
    gw_presence_tick(&srv);
    assert_int_equal(count_sent(b, "\"joins\":[{\"nickname\":\"x\""), 1);
    assert_int_equal(count_sent(a, "presence_diff"), 0);
}

/* A member that asked for the count gets presence_count once per tick, in
 * a room of any size, and no names. */
static void test_presence_count_only(void **state)
{
    srv.cfg.presence_batch_above = 5;
    struct gw_session *a = fake_session_new(&srv, "a"), *c = fake_session_new(&srv, "c");
    joined(a, "r", 0);
    join_mode(c, "r", "count");
    presence("r", "join", "x", 3);
    presence("r", "join", "y", 4);
    assert_int_equal(count_sent(c, "presence"), 0);
    gw_presence_tick(&srv);
    assert_int_equal(count_sent(c, "{\"type\":\"presence_count\",\"room\":\"r\",\"count\":4}"), 1);
    assert_int_equal(count_sent(c, "presence"), 1);
    assert_int_equal(count_sent(a, "presence_count"), 0);
    srv.cfg.presence_batch_above = 2; /* big now: a gets a diff, c still only the count */
    presence("r", "leave", "x", 3);
    gw_presence_tick(&srv);
    assert_int_equal(count_sent(c, "\"count\":3}"), 1);
    assert_int_equal(count_sent(c, "presence_diff"), 0);
    assert_int_equal(count_sent(a, "presence_diff"), 1);
}

/* A frame without a count (a script of an older release) moves the count
 * we know by one. */
static void test_presence_without_count(void **state)
{
    srv.cfg.presence_batch_above = 2;
    struct gw_session *a = fake_session_new(&srv, "a");
    joined(a, "r", 0);
    presence("r", "join", "x", 3);
    const char *old = "{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\","
                      "\"nickname\":\"y\",\"ts\":7}";
    gw_room_on_message(&srv, "r", old, strlen(old));
    gw_presence_tick(&srv);
    assert_int_equal(count_sent(a, "\"count\":4,"), 1);
}

/* Crossing the threshold sends what is batched first: no member gets two
 * events of one nickname out of order. */
static void test_presence_crossing_keeps_order(void **state)
{
    srv.cfg.presence_batch_above = 2;
    struct gw_session *a = fake_session_new(&srv, "a");
    joined(a, "r", 0);
    presence("r", "join", "x", 3);
    presence("r", "leave", "x", 2);
    int n = fake_session_frames(a);
    assert_true(n >= 2);
    assert_non_null(strstr(fake_session_frame(a, n - 2), "\"joins\":[{\"nickname\":\"x\""));
    assert_non_null(strstr(fake_session_frame(a, n - 1), "\"event\":\"leave\""));
    gw_presence_tick(&srv);
    assert_int_equal(fake_session_frames(a), n);
}

/* A room kept for its batch after the last member left subscribes again
 * for the next member. */
static void test_room_kept_for_batch_subscribes_again(void **state)
{
    srv.cfg.presence_batch_above = 0;
    struct gw_session *a = fake_session_new(&srv, "a");
    struct gw_member *m = joined(a, "r", 0);
    presence("r", "join", "x", 2);
    gw_member_left(m, NULL);
    assert_true(logged("unsubscribe r"));
    int from = fake_store_logged("unsubscribe r", 0);
    struct gw_session *b = fake_session_new(&srv, "b");
    assert_non_null(join(b, "r", "b"));
    assert_true(fake_store_logged("subscribe r", from) > from);
    gw_presence_tick(&srv);
    assert_non_null(srv.rooms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_waits_for_subscription, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_member_joins_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_before_subscribed_runs_after_join, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deferred_publish_answered_when_leaving, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_live_frames_held_while_joining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_frames_overflow_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_fails_when_store_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_while_joining_undone_by_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_while_joining_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_join_undone_through_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_member_out_unsubscribes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_by_control_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_after_pubsub_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_new_epoch_closes_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_seq_went_back_bumps_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reassert_new_mid_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reassert_skips_joining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_batched_in_big_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_small_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_count_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_without_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_crossing_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_kept_for_batch_subscribes_again, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
