/*
 * Sessions for unit tests: see fakes.h. Frames are kept as text, in order.
 */
#include "fakes.h"

#include <stdlib.h>
#include <string.h>

struct frames {
    int n;
    char *text[FAKE_MAX];
    bool overflowed;
    int close_code; /* gw_session_close's, 0 if none */
};

/* The fake keeps its record where the real session keeps its I/O state. */
static struct frames *frames_of(const struct gw_session *s)
{
    return (struct frames *)s->io;
}

struct gw_session *fake_session_new(struct gw_server *srv, const char *id)
{
    struct gw_session *s = cm_calloc(1, sizeof(*s));
    s->srv = srv;
    s->wsi = (struct lws *)s; /* anything but NULL: the socket is open */
    s->refs = 1;
    s->v1 = true;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->io = (struct gw_session_io *)cm_calloc(1, sizeof(struct frames));
    HASH_ADD_STR(srv->sessions, id, s);
    return s;
}

int fake_session_frames(const struct gw_session *s)
{
    return frames_of(s)->n;
}

const char *fake_session_frame(const struct gw_session *s, int i)
{
    return i < frames_of(s)->n ? frames_of(s)->text[i] : "";
}

bool fake_session_overflowed(const struct gw_session *s)
{
    return frames_of(s)->overflowed;
}

struct gw_session *gw_session_ref(struct gw_session *s)
{
    s->refs++;
    return s;
}

void gw_session_unref(struct gw_session *s)
{
    if (!s || --s->refs > 0)
        return;
    struct frames *f = frames_of(s);
    for (int i = 0; i < f->n; i++)
        free(f->text[i]);
    free(f);
    free(s);
}

void fake_session_close(struct gw_session *s, const char *reason)
{
    gw_members_leave_all(s, reason);
    s->wsi = NULL;
    HASH_DEL(s->srv->sessions, s);
    gw_session_unref(s);
}

int gw_session_send(struct gw_session *s, struct gw_payload *p)
{
    struct frames *f = frames_of(s);
    if (!s->wsi || f->n >= FAKE_MAX)
        return -1;
    f->text[f->n++] = cm_strndup((const char *)p->buf + GW_PAYLOAD_PRE, p->len);
    return 0;
}

void gw_session_send_sbuf(struct gw_session *s, struct cm_sbuf *b)
{
    struct gw_payload *p = gw_payload_new(cm_sbuf_data(b), b->len);
    gw_session_send(s, p);
    gw_payload_unref(p);
}

void gw_session_send_error(struct gw_session *s, const char *id, enum cm_err code,
                           const char *message)
{
    struct cm_sbuf b;
    cm_sbuf_init(&b, 0);
    cm_encode_error(&b, id, code, message);
    gw_session_send_sbuf(s, &b);
    cm_sbuf_free(&b);
}

void gw_session_close(struct gw_session *s, int code, const char *why, bool after_flush)
{
    if (!frames_of(s)->close_code)
        frames_of(s)->close_code = code;
}

int fake_session_close_code(const struct gw_session *s)
{
    return frames_of(s)->close_code;
}

void gw_session_overflow(struct gw_session *s)
{
    frames_of(s)->overflowed = true;
}
