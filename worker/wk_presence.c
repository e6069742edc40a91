/*
 * Presence changes the worker makes: a member leaving a room. Used for
 * leave events (wk_events.c) and for every session of a dead gateway
 * (wk_sweep.c). Joins are applied by the gateway's join script.
 */
#include "cm_keys.h"
#include "cm_proto.h"
#include "cm_util.h"
#include "wk_server.h"

#include <string.h>

int wk_presence_leave(struct wk_server *srv, const char *room, const char *nickname,
                      const char *mid, const char *reason, wk_reply_fn *fn, void *priv)
{
    char members[CM_KEY_MAX], channel[CM_KEY_MAX];
    struct cm_sbuf frame;

    size_t mlen = cm_key_room(members, CM_ROOM_MEMBERS, room);
    size_t clen = cm_key_room(channel, CM_ROOM_CHANNEL, room);
    cm_sbuf_init(&frame, 0);
    /* The frame is published only if the script removes the member; its ts
     * is this worker's clock, as for every frame the cluster stamps. */
    cm_encode_presence(&frame, room, "leave", nickname, reason, cm_now_ms());

    const char *argv[] = {members, channel, nickname, mid, cm_sbuf_data(&frame)};
    const size_t lens[] = {mlen, clen, strlen(nickname), strlen(mid), frame.len};
    int rc = wk_redis_script(&srv->cmd, CM_SCRIPT_LEAVE, 1, 5, argv, lens, fn, priv);
    cm_sbuf_free(&frame);
    return rc;
}
