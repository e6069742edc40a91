/*
 * Presence in a room's local members: the presence frames the join, leave
 * and reassert scripts publish, delivered one by one or batched into one
 * presence_diff per room per tick (presence.c).
 */
#ifndef GW_PRESENCE_H
#define GW_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>

struct gw_server;
struct gw_room;

/* A frame from the room's channel that is not a chat message. Returns
 * true when it was a presence frame and has been delivered or batched;
 * false when it is something else, for the caller to deliver as it is. */
bool gw_presence_on_frame(struct gw_server *srv, struct gw_room *room, const char *data,
                          size_t len);
/* Sends every room's pending diff (the tick, --presence-tick-ms). */
void gw_presence_tick(struct gw_server *srv);
/* Frees what a room still has batched (the room is being freed). */
void gw_presence_clear(struct gw_room *room);

#endif
