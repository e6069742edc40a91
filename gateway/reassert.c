/*
 * Re-asserting memberships. After the gateway lost touch with Redis (the
 * broker restarted, perhaps empty, or a worker declared this gateway dead
 * and removed its members), every membership it still serves is written
 * again, under a new membership id so that a cleanup still running for the
 * old id cannot undo it. A nickname that another session took meanwhile
 * stays with that session, and ours is told `left` with reason `replaced`.
 */
#include "gw_server.h"

#include "cm_keys.h"
#include "cm_log.h"

#include <stdlib.h>
#include <string.h>

struct reassert {
    struct gw_session *session; /* holds a reference */
    char room[CM_ROOM_MAX + 1];
    char mid[GW_MID_MAX];     /* the new mid */
    char old_mid[GW_MID_MAX];
};

static void on_reassert_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct gw_server *srv = ac->data;
    struct reassert *ra = priv;
    redisReply *reply = r;
    struct gw_member *m = ra->session->wsi ? gw_session_member(ra->session, ra->room) : NULL;

    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        if (reply)
            gw_redis_check_error(srv, reply);
        /* Not applied; the next reconnect or heartbeat check tries again. */
    } else {
        /* Applied: the old mid owns nothing any more, whether or not the
         * member is still here (its leave names the new mid). */
        gw_redis_registry_del(srv, ra->old_mid);
        if (reply->integer == 0 && m && strcmp(m->mid, ra->mid) == 0)
            gw_member_replaced(ra->session, m);
    }
    gw_session_unref(ra->session);
    free(ra);
}

static void reassert_member(struct gw_server *srv, struct gw_member *m)
{
    struct gw_session *s = m->session;
    struct reassert *ra = cm_calloc(1, sizeof(*ra));
    char members[CM_KEY_MAX], chan[CM_KEY_MAX];
    struct cm_sbuf value, presence;
    int64_t now = cm_now_ms();

    ra->session = gw_session_ref(s);
    snprintf(ra->room, sizeof(ra->room), "%s", m->room_name);
    snprintf(ra->old_mid, sizeof(ra->old_mid), "%s", m->mid);
    snprintf(m->mid, sizeof(m->mid), "%s.%u", s->id, ++s->joins);
    snprintf(ra->mid, sizeof(ra->mid), "%s", m->mid);

    cm_key_room(members, CM_ROOM_MEMBERS, m->room_name);
    cm_key_room(chan, CM_ROOM_CHANNEL, m->room_name);
    cm_sbuf_init(&value, 0);
    cm_sbuf_init(&presence, 0);
    cm_encode_member(&value, s->id, m->mid, srv->cfg.id, now);
    cm_encode_presence(&presence, m->room_name, "join", m->nickname, NULL, now);
    const char *argv[] = {members, chan, m->nickname, cm_sbuf_data(&value), ra->old_mid,
                          cm_sbuf_data(&presence)};
    size_t argvlen[CM_ARRAY_LEN(argv)];
    for (size_t i = 0; i < CM_ARRAY_LEN(argv); i++)
        argvlen[i] = strlen(argv[i]);
    /* The new registry entry goes first: if this gateway dies now, the
     * sweep finds the membership under either id. */
    gw_redis_registry_add(srv, m);
    if (gw_redis_script(srv, CM_SCRIPT_REASSERT, 1, (int)CM_ARRAY_LEN(argv), argv, argvlen,
                        on_reassert_reply, ra) != 0) {
        gw_session_unref(ra->session);
        free(ra);
    }
    cm_sbuf_free(&value);
    cm_sbuf_free(&presence);
}

void gw_reassert_all(struct gw_server *srv)
{
    struct gw_session *s, *tmp;
    size_t n = 0;
    HASH_ITER(hh, srv->sessions, s, tmp) {
        for (struct gw_member *m = s->members; m; m = m->session_next) {
            if (m->state == GW_MEMBER_JOINED || m->state == GW_MEMBER_RESYNC) {
                reassert_member(srv, m);
                n++;
            }
        }
    }
    if (n)
        CM_INFO("re-asserting %zu memberships", n);
}
