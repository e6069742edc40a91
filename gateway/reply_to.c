/*
 * Where to answer a client frame once Redis has (session.h). Its own file
 * so that the unit tests' fake sessions link it as it is.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>

struct gw_reply_to *gw_reply_to_new(struct gw_session *s, const char *room, const char *id,
                                    bool has_id)
{
    struct gw_reply_to *r = cm_malloc(sizeof(*r));
    r->session = gw_session_ref(s);
    snprintf(r->room, sizeof(r->room), "%s", room);
    snprintf(r->id, sizeof(r->id), "%s", has_id ? id : "");
    r->has_id = has_id;
    return r;
}

void gw_reply_to_free(struct gw_reply_to *r)
{
    gw_session_unref(r->session);
    free(r);
}

const char *gw_reply_to_id(const struct gw_reply_to *r)
{
    return r->has_id ? r->id : NULL;
}
