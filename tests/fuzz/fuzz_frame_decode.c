/*
 * libFuzzer driver for cm_frame_decode, the parser of every client frame.
 * Any input must decode or fail cleanly; a frame that decodes must satisfy
 * the contract of cm_proto.h and re-encode to valid JSON carrying the same
 * values; a failure must produce a valid error reply (echoing the id).
 */
#include "cm_proto.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses an encoder's output; anything but one valid JSON object is a bug. */
static cJSON *parse_back(const struct cm_sbuf *b)
{
    const char *end = NULL;
    if (strlen(cm_sbuf_data(b)) != b->len || !cm_utf8_valid(cm_sbuf_data(b), b->len))
        abort();
    cJSON *o = cJSON_ParseWithOpts(cm_sbuf_data(b), &end, 1);
    if (!o || !cJSON_IsObject(o))
        abort();
    return o;
}

static void expect_str(const cJSON *o, const char *key, const char *want, size_t len)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(it) || strlen(it->valuestring) != len || memcmp(it->valuestring, want, len))
        abort();
}

/* What every decoded frame promises, whatever its type. */
static void check_frame(const struct cm_frame *f)
{
    bool has_room = f->type != CM_FRAME_PING;
    bool has_nick = f->type == CM_FRAME_JOIN || f->type == CM_FRAME_LEGACY;
    bool has_msg = f->type == CM_FRAME_MESSAGE || f->type == CM_FRAME_LEGACY;
    if (has_room != cm_room_valid(f->room, strlen(f->room)) ||
        has_nick != cm_nickname_valid(f->nickname, strlen(f->nickname)) ||
        has_msg != (f->message != NULL))
        abort();
    if (f->message &&
        (f->message_len == 0 || f->message_len > MESSAGE_MAX ||
         strlen(f->message) != f->message_len || !cm_utf8_valid(f->message, f->message_len)))
        abort();
    if (f->since < -1 || f->since > CM_SEQ_MAX || f->before < -1 || f->before > CM_SEQ_MAX ||
        f->history < 0 || f->history > CM_HISTORY_LIMIT || f->limit < 1 ||
        f->limit > CM_HISTORY_LIMIT || (f->has_id && strlen(f->id) > CM_ID_MAX))
        abort();
}

/* Re-encodes the decoded values into the server frame they lead to. */
static void reencode(const struct cm_frame *f, struct cm_sbuf *b)
{
    const char *id = f->has_id ? f->id : NULL;
    cJSON *o;
    if (f->message) {
        cm_sbuf_puts(b, "{\"type\":\"message\",\"seq\":1,\"ts\":2,");
        cm_encode_message_tail(b, f->room, f->nickname, f->message, f->message_len);
        o = parse_back(b);
        expect_str(o, "message", f->message, f->message_len);
        expect_str(o, "nickname", f->nickname, strlen(f->nickname));
        expect_str(o, "room", f->room, strlen(f->room));
        cJSON_Delete(o);
        cm_sbuf_reset(b); /* the envelope carries no id; the sender's ack does */
        cm_encode_ack(b, id, f->room, 1, f->message_len % 2 == 0);
        o = parse_back(b);
    } else if (f->type == CM_FRAME_JOIN) {
        const struct cm_members_page page = {"[]", f->since, f->cursor};
        cm_encode_joined(b, id, f->room, f->nickname, f->since, f->epoch, &page, "[]",
                         f->since >= 0);
        o = parse_back(b);
        expect_str(o, "nickname", f->nickname, strlen(f->nickname));
    } else {
        cm_encode_left(b, id, f->room, "left");
        o = parse_back(b);
    }
    expect_str(o, "room", f->room, strlen(f->room));
    if (id)
        expect_str(o, "id", id, strlen(id));
    cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_frame f;
    struct cm_decode_error err;
    struct cm_sbuf b;

    cm_sbuf_init(&b, 0);
    if (cm_frame_decode((const char *)data, size, MESSAGE_MAX, &f, &err) == 0) {
        if (err.code != CM_ERR_NONE)
            abort();
        check_frame(&f);
        reencode(&f, &b);
    } else {
        if (err.code <= CM_ERR_NONE || err.code >= CM_ERR__COUNT || !err.message ||
            f.message != NULL)
            abort();
        cm_encode_error(&b, f.has_id ? f.id : NULL, err.code, err.message);
        cJSON *o = parse_back(&b);
        if (f.has_id)
            expect_str(o, "id", f.id, strlen(f.id));
        cJSON_Delete(o);
    }
    cm_frame_clear(&f);
    cm_sbuf_free(&b);
    return 0;
}
