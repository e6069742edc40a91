/*
 * chat.v1 frames (docs/PROTOCOL.md).
 *
 * Decoding runs in three steps: a byte-level pass that checks UTF-8 and
 * finds NUL characters (which cJSON cannot represent), cJSON for the syntax,
 * then a field pass driven by a per-type table. Encoding writes compact JSON
 * straight into the caller's cm_sbuf: no tree, no intermediate strings, which
 * matters for the frames sent once per message and per recipient.
 */
#include "cm_proto.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Error codes ------------------------------------------------------- */

static const char *const err_names[CM_ERR__COUNT] = {
    [CM_ERR_NONE] = "",
    [CM_ERR_BAD_JSON] = "bad_json",
    [CM_ERR_BAD_REQUEST] = "bad_request",
    [CM_ERR_UNKNOWN_TYPE] = "unknown_type",
    [CM_ERR_INVALID_ROOM] = "invalid_room",
    [CM_ERR_INVALID_NICKNAME] = "invalid_nickname",
    [CM_ERR_TOO_LARGE] = "too_large",
    [CM_ERR_NOT_JOINED] = "not_joined",
    [CM_ERR_RATE_LIMITED] = "rate_limited",
    [CM_ERR_FORBIDDEN] = "forbidden",
    [CM_ERR_UNAUTHORIZED] = "unauthorized",
    [CM_ERR_UNAVAILABLE] = "unavailable",
    [CM_ERR_INTERNAL] = "internal",
};

/* What cm_encode_error says when its caller gives no text of its own. */
static const char *const err_texts[CM_ERR__COUNT] = {
    [CM_ERR_NONE] = "",
    [CM_ERR_BAD_JSON] = "the frame is not a JSON object",
    [CM_ERR_BAD_REQUEST] = "the frame is malformed",
    [CM_ERR_UNKNOWN_TYPE] = "unknown frame type",
    [CM_ERR_INVALID_ROOM] = "room must be 1-64 characters of A-Z a-z 0-9 . _ : -",
    [CM_ERR_INVALID_NICKNAME] =
        "nickname must be 1-32 characters, without control characters or edge spaces",
    [CM_ERR_TOO_LARGE] = "the message is too long",
    [CM_ERR_NOT_JOINED] = "join the room first",
    [CM_ERR_RATE_LIMITED] = "too many frames, slow down",
    [CM_ERR_FORBIDDEN] = "not allowed",
    [CM_ERR_UNAUTHORIZED] = "authentication required",
    [CM_ERR_UNAVAILABLE] = "the service is unavailable, nothing was sent",
    [CM_ERR_INTERNAL] = "internal error",
};

/* Unknown values map to "internal" so that an error frame always carries a
 * code a client knows. */
const char *cm_err_name(enum cm_err e)
{
    if ((unsigned)e >= CM_ERR__COUNT)
        return err_names[CM_ERR_INTERNAL];
    return err_names[e];
}

/* ---- Validators -------------------------------------------------------- */

/*
 * Decodes the UTF-8 sequence at s (avail bytes available) into *cp and
 * returns its length, or 0 if it is not a valid sequence. Valid means RFC
 * 3629, table 3-7 of Unicode: shortest form only, no surrogates (ED A0..BF),
 * nothing above U+10FFFF (F4 90.., F5..FF), no lone continuation bytes.
 */
static size_t utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t n;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlongs, F5..FF */
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            return 0;
        lo = 0x80, hi = 0xBF;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* True when [s, s+len) is valid UTF-8. NUL is a valid character here; the
 * frame decoder rejects it separately. */
bool cm_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* True for 1..CM_ROOM_MAX bytes of [A-Za-z0-9._:-]. Rooms become parts of
 * Redis keys with a {hash tag}, so braces and spaces must never get in. */
bool cm_room_valid(const char *s, size_t len)
{
    if (len == 0 || len > CM_ROOM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/*
 * True for 1..CM_NICK_MAX_CHARS characters of valid UTF-8 with no control
 * character (C0, DEL, C1) and no space (U+0020) at either end. Nicknames are
 * shown to people and written into legacy "nickname@room said" lines, so
 * invisible edges and terminal controls are kept out.
 */
bool cm_nickname_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;

    if (len == 0 || len > CM_NICK_MAX_BYTES || p[0] == ' ' || p[len - 1] == ' ')
        return false;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || ++chars > CM_NICK_MAX_CHARS)
            return false;
        i += n;
    }
    return true;
}

/* ---- Decoding ---------------------------------------------------------- */

/*
 * Copies the len bytes of a frame into copy (len + 1 bytes) and terminates
 * it, so that cJSON never reads past the end, whatever the input. Every NUL,
 * raw or escaped as \u0000, is replaced by 0xFF bytes of the same length:
 * cJSON would end a string at the NUL and silently drop the rest, while 0xFF
 * never occurs in valid UTF-8, so a string that carries it is known to have
 * held a NUL, and the other fields (the id, for the error reply) still
 * decode. Returns whether a NUL was found.
 *
 * The string tracking needs only quotes and backslashes: both are ASCII and
 * never part of a multibyte UTF-8 sequence. If the frame is not valid JSON,
 * the tracking may go wrong, but then cJSON rejects the frame anyway.
 */
static bool copy_masking_nul(const char *buf, size_t len, char *copy)
{
    enum { OUTSIDE, IN_STRING, AFTER_BACKSLASH } st = OUTSIDE;
    bool found = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        copy[i] = c;
        if (c == '\0') {
            copy[i] = (char)0xFF;
            found = true;
        } else if (st == AFTER_BACKSLASH) {
            st = IN_STRING;
            if (c == 'u' && len - i >= 5 && memcmp(buf + i + 1, "0000", 4) == 0) {
                memset(copy + i - 1, 0xFF, 6); /* the backslash, u and 0000 */
                found = true;
                i += 4;
            }
        } else if (st == IN_STRING) {
            if (c == '\\')
                st = AFTER_BACKSLASH;
            else if (c == '"')
                st = OUTSIDE;
        } else if (c == '"') {
            st = IN_STRING;
        }
    }
    copy[len] = '\0';
    return found;
}

/* cJSON stops at the end of the first value and does not mind what follows;
 * we accept only JSON whitespace there. */
static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
    }
    return true;
}

static int fail(struct cm_decode_error *err, enum cm_err code, const char *message)
{
    err->code = code;
    err->message = message;
    return -1;
}

/* Looks up a string member. Returns 1 and sets *s and *len when it is a string,
 * 0 when absent, -1 when present with another JSON type. */
static int get_str(const cJSON *obj, const char *key, const char **s, size_t *len)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    *s = NULL;
    *len = 0;
    if (!item)
        return 0;
    if (!cJSON_IsString(item) || !item->valuestring)
        return -1;
    *s = item->valuestring;
    *len = strlen(item->valuestring);
    return 1;
}

/*
 * Reads an optional integer member into *dst (left alone when absent). It
 * must be a JSON number whose value is a whole number in [min, max]: 1.5,
 * -1, 1e400 (infinite to cJSON) and strings are refused. The value is
 * judged as the double cJSON parsed, so 1.0 and 1e2 count as whole numbers,
 * and a fraction finer than a double can hold (1e-400, 0.99999999999999999)
 * has been rounded away before we see it; no client sends such numbers.
 */
static int get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *dst)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item)
        return 0;
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    /* Written so that NaN fails too; the range check makes the cast defined. */
    if (!(v >= (double)min && v <= (double)max) || (double)(int64_t)v != v)
        return -1;
    *dst = (int64_t)v;
    return 0;
}

/* get_int for the int-sized fields of struct cm_frame. */
static int get_small_int(const cJSON *obj, const char *key, int min, int max, int *dst)
{
    int64_t v = *dst;
    int r = get_int(obj, key, min, max, &v);
    *dst = (int)v;
    return r;
}

/* The correlation id: a string of at most CM_ID_MAX bytes of valid UTF-8
 * (so that echoing it keeps the reply valid; a masked NUL fails here). */
static int decode_id(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    const char *s;
    size_t n;
    int r = get_str(root, "id", &s, &n);
    if (r == 0)
        return 0;
    if (r < 0 || n > CM_ID_MAX || !cm_utf8_valid(s, n))
        return fail(err, CM_ERR_BAD_REQUEST, "id must be a string of at most 64 bytes");
    memcpy(out->id, s, n + 1);
    out->has_id = true;
    return 0;
}

/* cJSON_HasObjectItem ignores case; keys here are matched exactly. */
static bool has_key(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

static int decode_type(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    static const struct {
        const char *name;
        enum cm_frame_type type;
    } types[] = {
        {"message", CM_FRAME_MESSAGE}, {"join", CM_FRAME_JOIN},       {"leave", CM_FRAME_LEAVE},
        {"history", CM_FRAME_HISTORY}, {"members", CM_FRAME_MEMBERS}, {"ping", CM_FRAME_PING},
    };
    const char *s;
    size_t n;
    int r = get_str(root, "type", &s, &n);

    if (r == 0) {
        /* The classic chat page sends {nickname, room, message} and nothing else. */
        if (has_key(root, "nickname") && has_key(root, "room") && has_key(root, "message")) {
            out->type = CM_FRAME_LEGACY;
            return 0;
        }
        return fail(err, CM_ERR_BAD_REQUEST, "the frame has no type");
    }
    if (r < 0)
        return fail(err, CM_ERR_BAD_REQUEST, "type must be a string");
    for (size_t i = 0; i < CM_ARRAY_LEN(types); i++) {
        if (strcmp(s, types[i].name) == 0) {
            out->type = types[i].type;
            return 0;
        }
    }
    return fail(err, CM_ERR_UNKNOWN_TYPE, "unknown frame type");
}

/* Which fields each frame type reads. Room, nickname and message are
 * required where listed; the rest are optional. */
enum {
    F_ROOM = 1 << 0,
    F_NICKNAME = 1 << 1,
    F_MESSAGE = 1 << 2,
    F_SINCE = 1 << 3,
    F_EPOCH = 1 << 4,
    F_HISTORY = 1 << 5,
    F_BEFORE = 1 << 6,
    F_LIMIT = 1 << 7,
    F_GRACE = 1 << 8,
    F_CURSOR = 1 << 9,
    F_PRESENCE = 1 << 10,
};

static const unsigned frame_fields[] = {
    [CM_FRAME_JOIN] = F_ROOM | F_NICKNAME | F_SINCE | F_EPOCH | F_HISTORY | F_GRACE | F_PRESENCE,
    [CM_FRAME_MESSAGE] = F_ROOM | F_MESSAGE,
    [CM_FRAME_LEAVE] = F_ROOM,
    [CM_FRAME_HISTORY] = F_ROOM | F_BEFORE | F_LIMIT,
    [CM_FRAME_MEMBERS] = F_ROOM | F_CURSOR,
    [CM_FRAME_PING] = 0,
    [CM_FRAME_LEGACY] = F_ROOM | F_NICKNAME | F_MESSAGE,
};

/* The rule of one required name field, and what to say when it is broken. */
struct name_rule {
    const char *key;
    const char *missing;    /* "room is required" */
    const char *not_string; /* "room must be a string" */
    bool (*valid)(const char *s, size_t len);
    enum cm_err invalid;
};

/* Reads a required name field by its rule into dst (which holds any valid
 * value). */
static int decode_name(const cJSON *root, const struct name_rule *rule, char *dst,
                       struct cm_decode_error *err)
{
    const char *s;
    size_t n;
    int r = get_str(root, rule->key, &s, &n);
    if (r == 0)
        return fail(err, CM_ERR_BAD_REQUEST, rule->missing);
    if (r < 0)
        return fail(err, CM_ERR_BAD_REQUEST, rule->not_string);
    if (!rule->valid(s, n))
        return fail(err, rule->invalid, err_texts[rule->invalid]);
    memcpy(dst, s, n + 1);
    return 0;
}

static int decode_room(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    static const struct name_rule room = {"room", "room is required", "room must be a string",
                                          cm_room_valid, CM_ERR_INVALID_ROOM};
    return decode_name(root, &room, out->room, err);
}

static int decode_nickname(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    static const struct name_rule nickname = {"nickname", "nickname is required",
                                              "nickname must be a string", cm_nickname_valid,
                                              CM_ERR_INVALID_NICKNAME};
    return decode_name(root, &nickname, out->nickname, err);
}

/* Checks the message text and copies it into out; message_max is in bytes. */
static int decode_message(const cJSON *root, size_t message_max, struct cm_frame *out,
                          struct cm_decode_error *err)
{
    const char *s;
    size_t n;
    int r = get_str(root, "message", &s, &n);
    if (r == 0)
        return fail(err, CM_ERR_BAD_REQUEST, "message is required");
    if (r < 0)
        return fail(err, CM_ERR_BAD_REQUEST, "message must be a string");
    if (n == 0)
        return fail(err, CM_ERR_BAD_REQUEST, "message must not be empty");
    if (n > message_max)
        return fail(err, CM_ERR_TOO_LARGE, err_texts[CM_ERR_TOO_LARGE]);
    out->message = cm_strndup(s, n);
    out->message_len = n;
    return 0;
}

/* A members cursor: 1..20 decimal digits, as the previous page gave it. */
static int decode_cursor(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    const char *s;
    size_t n;
    int r = get_str(root, "cursor", &s, &n);
    if (r == 0)
        return 0;
    bool ok = r > 0 && n >= 1 && n <= CM_CURSOR_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = s[i] >= '0' && s[i] <= '9';
    if (!ok)
        return fail(err, CM_ERR_BAD_REQUEST, "cursor must be a string of 1-20 digits");
    memcpy(out->cursor, s, n + 1);
    return 0;
}

/* A join's presence mode: "events" (the default), "diff" or "count". */
static int decode_presence(const cJSON *root, struct cm_frame *out, struct cm_decode_error *err)
{
    const char *s;
    size_t n;
    int r = get_str(root, "presence", &s, &n);
    if (r == 0)
        return 0;
    if (r > 0 && strcmp(s, "events") == 0)
        out->presence = CM_PRESENCE_EVENTS;
    else if (r > 0 && strcmp(s, "diff") == 0)
        out->presence = CM_PRESENCE_DIFF;
    else if (r > 0 && strcmp(s, "count") == 0)
        out->presence = CM_PRESENCE_COUNT;
    else
        return fail(err, CM_ERR_BAD_REQUEST, "presence must be \"events\", \"diff\" or \"count\"");
    return 0;
}

/* since, epoch, history, grace_ms and presence of a join; before and limit of a
 * history; cursor of a members request. */
static int decode_options(const cJSON *root, unsigned fields, struct cm_frame *out,
                          struct cm_decode_error *err)
{
    if ((fields & F_SINCE) && get_int(root, "since", 0, CM_SEQ_MAX, &out->since) != 0)
        return fail(err, CM_ERR_BAD_REQUEST, "since must be a whole number of at least 0");
    if (fields & F_EPOCH) {
        const char *s;
        size_t n;
        int r = get_str(root, "epoch", &s, &n);
        if (r < 0 || n > CM_EPOCH_MAX)
            return fail(err, CM_ERR_BAD_REQUEST, "epoch must be a string of at most 64 bytes");
        if (r > 0) {
            memcpy(out->epoch, s, n + 1);
            out->has_epoch = true;
        }
    }
    if ((fields & F_HISTORY) &&
        get_small_int(root, "history", 0, CM_HISTORY_LIMIT, &out->history) != 0)
        return fail(err, CM_ERR_BAD_REQUEST, "history must be a whole number from 0 to 500");
    if ((fields & F_BEFORE) && get_int(root, "before", 0, CM_SEQ_MAX, &out->before) != 0)
        return fail(err, CM_ERR_BAD_REQUEST, "before must be a whole number of at least 0");
    if ((fields & F_LIMIT) && get_small_int(root, "limit", 1, CM_HISTORY_LIMIT, &out->limit) != 0)
        return fail(err, CM_ERR_BAD_REQUEST, "limit must be a whole number from 1 to 500");
    if ((fields & F_GRACE) &&
        get_small_int(root, "grace_ms", 0, CM_GRACE_MAX_MS, &out->grace_ms) != 0)
        return fail(err, CM_ERR_BAD_REQUEST, "grace_ms must be a whole number from 0 to 10000");
    if ((fields & F_CURSOR) && decode_cursor(root, out, err) != 0)
        return -1;
    if ((fields & F_PRESENCE) && decode_presence(root, out, err) != 0)
        return -1;
    return 0;
}

/* Everything after the id: type, then the fields that type reads. The
 * message text is copied last, so a failing frame owns nothing. */
static int decode_fields(const cJSON *root, size_t message_max, struct cm_frame *out,
                         struct cm_decode_error *err)
{
    if (decode_type(root, out, err) != 0)
        return -1;
    unsigned fields = frame_fields[out->type];
    if ((fields & F_ROOM) && decode_room(root, out, err) != 0)
        return -1;
    if ((fields & F_NICKNAME) && decode_nickname(root, out, err) != 0)
        return -1;
    if (decode_options(root, fields, out, err) != 0)
        return -1;
    if ((fields & F_MESSAGE) && decode_message(root, message_max, out, err) != 0)
        return -1;
    return 0;
}

static void frame_init(struct cm_frame *f)
{
    memset(f, 0, sizeof(*f));
    f->since = -1;
    f->before = -1;
    f->history = CM_HISTORY_DEFAULT;
    f->limit = CM_HISTORY_DEFAULT;
    strcpy(f->cursor, "0");
    f->presence = CM_PRESENCE_EVENTS;
}

/* Parses buf as one JSON object after the byte-level checks. Returns the
 * object (free with cJSON_Delete), or NULL with err filled. *dirty is set to
 * a byte-level problem that is reported only after the caller has read what
 * it wants to echo (the id); *copy must be freed by the caller. */
static cJSON *parse_object(const char *buf, size_t len, char **copy, const char **dirty,
                           struct cm_decode_error *err)
{
    *dirty = NULL;
    if (!cm_utf8_valid(buf, len))
        *dirty = "the frame is not valid UTF-8";
    *copy = cm_malloc(len + 1);
    if (copy_masking_nul(buf, len, *copy))
        *dirty = "the frame must not contain NUL characters";

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(*copy, len, &end, 0);
    if (!root || !cJSON_IsObject(root) || !only_whitespace(end, *copy + len)) {
        if (*dirty)
            fail(err, CM_ERR_BAD_REQUEST, *dirty);
        else
            fail(err, CM_ERR_BAD_JSON,
                 root ? "the frame must be one JSON object" : "the frame is not valid JSON");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int cm_frame_decode(const char *buf, size_t len, size_t message_max, struct cm_frame *out,
                    struct cm_decode_error *err)
{
    frame_init(out);
    err->code = CM_ERR_NONE;
    err->message = "";

    /* Byte-level problems are noted now but reported after the id is read,
     * so that the error reply can still echo it. */
    const char *dirty;
    char *copy;
    cJSON *root = parse_object(buf, len, &copy, &dirty, err);
    int rc = -1;
    if (!root)
        goto out;
    if (decode_id(root, out, err) != 0)
        goto out;
    if (dirty) {
        fail(err, CM_ERR_BAD_REQUEST, dirty);
        goto out;
    }
    rc = decode_fields(root, message_max, out, err);
out:
    cJSON_Delete(root);
    free(copy);
    return rc;
}

int cm_push_decode(const char *buf, size_t len, size_t message_max, struct cm_frame *out,
                   struct cm_decode_error *err)
{
    frame_init(out);
    out->type = CM_FRAME_MESSAGE;
    err->code = CM_ERR_NONE;
    err->message = "";

    const char *dirty;
    char *copy;
    cJSON *root = parse_object(buf, len, &copy, &dirty, err);
    int rc = -1;
    if (!root)
        goto out;
    if (dirty) {
        fail(err, CM_ERR_BAD_REQUEST, dirty);
        goto out;
    }
    if (decode_nickname(root, out, err) == 0 && decode_message(root, message_max, out, err) == 0)
        rc = 0;
out:
    cJSON_Delete(root);
    free(copy);
    return rc;
}

void cm_frame_clear(struct cm_frame *f)
{
    free(f->message);
    f->message = NULL;
    f->message_len = 0;
}

/* ---- Encoding ---------------------------------------------------------- */

/* Appends a JSON string; NULL is written as "" rather than crashing. */
static void put_str(struct cm_sbuf *b, const char *s)
{
    cm_sbuf_put_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

/* Appends prefix (a literal such as ",\"room\":") and then a string value. */
static void put_str_field(struct cm_sbuf *b, const char *prefix, const char *s)
{
    cm_sbuf_puts(b, prefix);
    put_str(b, s);
}

/* Appends prefix and then v in decimal, without printf. */
static void put_int_field(struct cm_sbuf *b, const char *prefix, int64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--i] = '-';
    cm_sbuf_puts(b, prefix);
    cm_sbuf_append(b, digits + i, sizeof(digits) - i);
}

/* Appends prefix and then raw JSON text, or [] when there is none. */
static void put_raw_field(struct cm_sbuf *b, const char *prefix, const char *json)
{
    cm_sbuf_puts(b, prefix);
    cm_sbuf_puts(b, json && *json ? json : "[]");
}

/* Opens a server frame: {"type":"<type>" and ,"id":... when id is set. */
static void put_head(struct cm_sbuf *b, const char *type, const char *id)
{
    cm_sbuf_puts(b, "{\"type\":\"");
    cm_sbuf_puts(b, type);
    cm_sbuf_append(b, "\"", 1);
    if (id)
        put_str_field(b, ",\"id\":", id);
}

static void put_end(struct cm_sbuf *b)
{
    cm_sbuf_append(b, "}", 1);
}

void cm_encode_welcome(struct cm_sbuf *b, const char *session, const char *gateway,
                       const struct cm_limits *limits)
{
    put_head(b, "welcome", NULL);
    put_str_field(b, ",\"session\":", session);
    put_str_field(b, ",\"gateway\":", gateway);
    put_int_field(b, ",\"limits\":{\"message_bytes\":", limits->message_bytes);
    put_int_field(b, ",\"frame_bytes\":", limits->frame_bytes);
    put_int_field(b, ",\"rate_per_sec\":", limits->rate_per_sec);
    put_int_field(b, ",\"rooms\":", limits->rooms);
    put_int_field(b, ",\"rate_burst\":", limits->rate_burst);
    put_int_field(b, ",\"joins_per_sec\":", limits->joins_per_sec);
    put_int_field(b, ",\"send_queue_bytes\":", limits->send_queue_bytes);
    put_int_field(b, ",\"max_conns_per_ip\":", limits->max_conns_per_ip);
    put_int_field(b, ",\"max_connections\":", limits->max_connections);
    put_int_field(b, ",\"members_page\":", limits->members_page);
    put_int_field(b, ",\"presence_batch_above\":", limits->presence_batch_above);
    put_int_field(b, ",\"presence_tick_ms\":", limits->presence_tick_ms);
    cm_sbuf_puts(b, "}}");
}

/* ,"count":N and ,"<cursor_key>":"c" of a members page, each when set. */
static void put_page_fields(struct cm_sbuf *b, const struct cm_members_page *m,
                            const char *cursor_prefix)
{
    if (m->count >= 0)
        put_int_field(b, ",\"count\":", m->count);
    if (m->cursor && *m->cursor && strcmp(m->cursor, "0") != 0)
        put_str_field(b, cursor_prefix, m->cursor);
}

void cm_encode_joined(struct cm_sbuf *b, const char *id, const char *room, const char *nickname,
                      int64_t seq, const char *epoch, const struct cm_members_page *members,
                      const char *history_json, int recovered)
{
    put_head(b, "joined", id);
    put_str_field(b, ",\"room\":", room);
    put_str_field(b, ",\"nickname\":", nickname);
    put_int_field(b, ",\"seq\":", seq);
    put_str_field(b, ",\"epoch\":", epoch);
    if (recovered >= 0)
        cm_sbuf_puts(b, recovered ? ",\"recovered\":true" : ",\"recovered\":false");
    put_raw_field(b, ",\"members\":", members->json);
    put_page_fields(b, members, ",\"members_cursor\":");
    put_raw_field(b, ",\"history\":", history_json);
    put_end(b);
}

void cm_encode_ack(struct cm_sbuf *b, const char *id, const char *room, int64_t seq,
                   bool replicated)
{
    put_head(b, "ack", id);
    put_str_field(b, ",\"room\":", room);
    put_int_field(b, ",\"seq\":", seq);
    if (!replicated)
        cm_sbuf_puts(b, ",\"replicated\":false");
    put_end(b);
}

void cm_encode_left(struct cm_sbuf *b, const char *id, const char *room, const char *reason)
{
    put_head(b, "left", id);
    put_str_field(b, ",\"room\":", room);
    put_str_field(b, ",\"reason\":", reason);
    put_end(b);
}

void cm_encode_history(struct cm_sbuf *b, const char *id, const char *room,
                       const char *messages_json)
{
    put_head(b, "history", id);
    put_str_field(b, ",\"room\":", room);
    put_raw_field(b, ",\"messages\":", messages_json);
    put_end(b);
}

void cm_encode_members(struct cm_sbuf *b, const char *id, const char *room,
                       const struct cm_members_page *members)
{
    put_head(b, "members", id);
    put_str_field(b, ",\"room\":", room);
    put_raw_field(b, ",\"members\":", members->json);
    put_page_fields(b, members, ",\"cursor\":");
    put_end(b);
}

void cm_encode_presence_diff(struct cm_sbuf *b, const char *room, int64_t count,
                             const char *joins_json, const char *leaves_json)
{
    put_head(b, "presence_diff", NULL);
    put_str_field(b, ",\"room\":", room);
    put_int_field(b, ",\"count\":", count);
    put_raw_field(b, ",\"joins\":", joins_json);
    put_raw_field(b, ",\"leaves\":", leaves_json);
    put_end(b);
}

void cm_encode_pong(struct cm_sbuf *b, const char *id)
{
    put_head(b, "pong", id);
    put_end(b);
}

/* message NULL: a default text for the code. */
void cm_encode_error(struct cm_sbuf *b, const char *id, enum cm_err code, const char *message)
{
    if ((unsigned)code >= CM_ERR__COUNT || code == CM_ERR_NONE)
        code = CM_ERR_INTERNAL;
    put_head(b, "error", id);
    put_str_field(b, ",\"code\":", cm_err_name(code));
    put_str_field(b, ",\"message\":", message ? message : err_texts[code]);
    put_end(b);
}

void cm_encode_reconnect(struct cm_sbuf *b, const char *reason, int64_t after_ms)
{
    put_head(b, "reconnect", NULL);
    put_str_field(b, ",\"reason\":", reason);
    put_int_field(b, ",\"after_ms\":", after_ms);
    put_end(b);
}

void cm_encode_presence(struct cm_sbuf *b, const char *room, const char *event,
                        const char *nickname, const char *reason, int64_t ts)
{
    put_head(b, "presence", NULL);
    put_str_field(b, ",\"room\":", room);
    put_str_field(b, ",\"event\":", event);
    put_str_field(b, ",\"nickname\":", nickname);
    if (reason)
        put_str_field(b, ",\"reason\":", reason);
    put_int_field(b, ",\"ts\":", ts);
    put_end(b);
}

void cm_encode_message_tail(struct cm_sbuf *b, const char *room, const char *nickname,
                            const char *message, size_t message_len)
{
    put_str_field(b, "\"room\":", room);
    put_str_field(b, ",\"nickname\":", nickname);
    cm_sbuf_puts(b, ",\"message\":");
    cm_sbuf_put_json_str(b, message ? message : "", message ? message_len : 0);
    put_end(b);
}

void cm_encode_member(struct cm_sbuf *b, const char *session, const char *mid, const char *gateway,
                      int64_t since)
{
    put_str_field(b, "{\"session\":", session);
    put_str_field(b, ",\"mid\":", mid);
    put_str_field(b, ",\"gateway\":", gateway);
    put_int_field(b, ",\"since\":", since);
    put_end(b);
}

void cm_encode_presence_count(struct cm_sbuf *b, const char *room, int64_t count)
{
    put_head(b, "presence_count", NULL);
    put_str_field(b, ",\"room\":", room);
    put_int_field(b, ",\"count\":", count);
    put_end(b);
}

int cm_presence_decode(const char *buf, size_t len, struct cm_presence *out)
{
    memset(out, 0, sizeof(*out));
    out->count = -1;
    cJSON *o = cJSON_ParseWithLength(buf, len);
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
    const char *event = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "event"));
    const char *nick = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "nickname"));
    const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "reason"));
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(o, "count");
    int rc = -1;
    if (!type || strcmp(type, "presence") != 0 || !event || !nick ||
        strlen(nick) > CM_NICK_MAX_BYTES)
        goto out;
    if (strcmp(event, "join") == 0)
        out->join = true;
    else if (strcmp(event, "leave") != 0)
        goto out;
    snprintf(out->nickname, sizeof(out->nickname), "%s", nick);
    snprintf(out->reason, sizeof(out->reason), "%s", reason && !out->join ? reason : "");
    out->ts = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
    if (cJSON_IsNumber(count) && count->valuedouble >= 0)
        out->count = (int64_t)count->valuedouble;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}
