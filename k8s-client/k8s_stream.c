#include "k8s_stream.h"

#include <errno.h>
#include <string.h>

/* Wire names of the event types, indexed by enum k8s_event_type. */
static const char *const EVENT_NAMES[] = {
    [K8S_EVENT_ADDED] = "ADDED",     [K8S_EVENT_MODIFIED] = "MODIFIED",
    [K8S_EVENT_DELETED] = "DELETED", [K8S_EVENT_BOOKMARK] = "BOOKMARK",
    [K8S_EVENT_ERROR] = "ERROR",
};

#define EVENT_NAMES_LEN (sizeof(EVENT_NAMES) / sizeof(EVENT_NAMES[0]))

void k8s_stream_init(struct k8s_stream *st, size_t max_event)
{
    if (max_event == 0) {
        max_event = K8S_STREAM_MAX_EVENT;
    }
    dc_buf_init(&st->buf, max_event);
    st->max_event = max_event;
    st->event_len = 0;
    st->depth = 0;
    st->in_string = false;
    st->escaped = false;
    st->error = 0;
}

void k8s_stream_deinit(struct k8s_stream *st)
{
    dc_buf_deinit(&st->buf);
    st->event_len = 0;
    st->depth = 0;
    st->in_string = false;
    st->escaped = false;
    st->error = 0;
}

void k8s_stream_reset(struct k8s_stream *st)
{
    k8s_stream_deinit(st);
}

size_t k8s_stream_pending(const struct k8s_stream *st)
{
    return st->event_len;
}

const char *k8s_event_type_name(enum k8s_event_type type)
{
    if ((size_t)type >= EVENT_NAMES_LEN || EVENT_NAMES[type] == NULL) {
        return "?";
    }
    return EVENT_NAMES[type];
}

/* Copies up to max bytes of p[0..len) into out (max + 4 bytes) as printable
 * ASCII, anything else as '?', adding "..." when cut; always NUL-terminates.
 * Error text ends up in logs and Kubernetes Events, which must stay UTF-8. */
static void quote(char *out, size_t max, const char *p, size_t len)
{
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static int fail_malformed(const char *p, size_t len, const json_error_t *jerr, char *err)
{
    char text[JSON_ERROR_TEXT_LENGTH + 4];
    char prefix[K8S_STREAM_QUOTE_LEN + 4];
    quote(text, JSON_ERROR_TEXT_LENGTH - 1, jerr->text, strnlen(jerr->text, sizeof(jerr->text)));
    quote(prefix, K8S_STREAM_QUOTE_LEN, p, len);
    return dc_err_set(err, -EINVAL, "watch event: malformed JSON at byte %d (%s): `%s'",
                      jerr->position, text, prefix);
}

/* Maps a "type" string to the enum; 0 when unknown. */
static enum k8s_event_type event_type_parse(const char *s, size_t len)
{
    for (size_t t = 1; t < EVENT_NAMES_LEN; t++) {
        if (strlen(EVENT_NAMES[t]) == len && memcmp(EVENT_NAMES[t], s, len) == 0) {
            return (enum k8s_event_type)t;
        }
    }
    return 0;
}

/* Parses one complete event p[0..len) and hands it to cb. */
static int dispatch(const char *p, size_t len, k8s_event_cb cb, void *arg, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(p, len, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        return fail_malformed(p, len, &jerr, err);
    }
    int rc = 0;
    json_t *type = json_object_get(root, "type");
    json_t *object = json_object_get(root, "object");
    if (!json_is_string(type)) {
        rc = dc_err_set(err, -EINVAL, "watch event: no \"type\" string");
        goto out;
    }
    enum k8s_event_type t = event_type_parse(json_string_value(type), json_string_length(type));
    if (t == 0) {
        char name[K8S_STREAM_QUOTE_LEN + 4];
        quote(name, K8S_STREAM_QUOTE_LEN, json_string_value(type), json_string_length(type));
        rc = dc_err_set(err, -EINVAL, "watch event: unknown type `%s'", name);
        goto out;
    }
    if (!json_is_object(object)) {
        rc = dc_err_set(err, -EINVAL, "watch event: %s event without an \"object\" object",
                        EVENT_NAMES[t]);
        goto out;
    }
    struct k8s_event ev = {.type = t, .object = object, .raw = {(const uint8_t *)p, len}};
    rc = cb(&ev, arg);
    if (rc < 0) {
        dc_err_set(err, rc, "watch event: %s handler failed: %s", EVENT_NAMES[t], dc_strerror(rc));
    } else {
        rc = 0;
    }
out:
    json_decref(root);
    return rc;
}

/* Advances the splitter over p[0..len), bytes of the current event. Returns
 * the bytes consumed: all of them, or up to and including the byte that
 * closes the event, in which case *done is set. */
static size_t scan(struct k8s_stream *st, const char *p, size_t len, bool *done)
{
    size_t i = 0;
    *done = false;
    while (i < len) {
        char c = p[i++];
        if (st->in_string) {
            if (st->escaped) {
                st->escaped = false;
            } else if (c == '\\') {
                st->escaped = true;
            } else if (c == '"') {
                st->in_string = false;
            }
        } else if (c == '"') {
            st->in_string = true;
        } else if (c == '{' || c == '[') {
            st->depth++;
        } else if (c == '}' || c == ']') {
            st->depth--;
            if (st->depth == 0) {
                *done = true;
                break;
            }
        }
    }
    st->event_len += i;
    return i;
}

/* Frees the event buffer if it grew large, else just empties it. */
static void release_buf(struct k8s_stream *st)
{
    if (st->buf.cap > K8S_STREAM_KEEP_LEN) {
        dc_buf_deinit(&st->buf);
    } else {
        dc_buf_reset(&st->buf);
    }
}

/* Completes the current event whose last bytes are p[0..len) (its earlier
 * bytes, if any, are buffered) and dispatches it. */
static int finish_event(struct k8s_stream *st, const char *p, size_t len, k8s_event_cb cb,
                        void *arg, char *err)
{
    int rc;
    st->event_len = 0;
    if (st->buf.len == 0) {
        return dispatch(p, len, cb, arg, err); /* whole event in this chunk: no copy */
    }
    rc = dc_buf_append(&st->buf, p, len);
    if (rc < 0) {
        return dc_err_set(err, rc, "watch event: buffering %zu bytes: %s", st->buf.len + len,
                          dc_strerror(rc));
    }
    rc = dispatch((const char *)st->buf.p, st->buf.len, cb, arg, err);
    release_buf(st);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int feed(struct k8s_stream *st, const char *data, size_t len, k8s_event_cb cb, void *arg,
                char *err)
{
    size_t i = 0;
    while (i < len) {
        if (st->event_len == 0) {
            if (is_space(data[i])) {
                i++;
                continue;
            }
            if (data[i] != '{') {
                char bad[K8S_STREAM_QUOTE_LEN + 4];
                quote(bad, K8S_STREAM_QUOTE_LEN, data + i, len - i);
                return dc_err_set(err, -EINVAL, "watch stream: expected '{' between events: `%s'",
                                  bad);
            }
        }
        /* An event may grow to max_event bytes; one byte more is too many. */
        size_t room = st->max_event - st->event_len;
        size_t avail = len - i;
        bool done;
        size_t n = scan(st, data + i, avail < room ? avail : room, &done);
        if (done) {
            int rc = finish_event(st, data + i, n, cb, arg, err);
            if (rc < 0) {
                return rc;
            }
        } else if (n < avail) {
            return dc_err_set(err, -EMSGSIZE, "watch event: longer than %zu bytes", st->max_event);
        } else {
            int rc = dc_buf_append(&st->buf, data + i, n);
            if (rc < 0) {
                return dc_err_set(err, rc, "watch event: buffering %zu bytes: %s", st->buf.len + n,
                                  dc_strerror(rc));
            }
        }
        i += n;
    }
    return 0;
}

int k8s_stream_feed(struct k8s_stream *st, const char *data, size_t len, k8s_event_cb cb, void *arg,
                    char *err)
{
    if (st->error != 0) {
        return dc_err_set(err, st->error, "watch stream: failed earlier (%s); reset it",
                          dc_strerror(st->error));
    }
    int rc = feed(st, data, len, cb, arg, err);
    if (rc < 0) {
        st->error = rc;
        dc_buf_deinit(&st->buf);
    }
    return rc;
}

/* Reads an optional string member; absent is "", another type is an error. */
static int opt_string(const json_t *obj, const char *key, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        *out = "";
        return 0;
    }
    if (!json_is_string(v)) {
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

static void status_clear(struct k8s_status *out)
{
    out->code = 0;
    out->status = "";
    out->reason = "";
    out->message = "";
}

int k8s_status_parse(const json_t *obj, struct k8s_status *out)
{
    status_clear(out);
    if (!json_is_object(obj)) {
        return -EINVAL;
    }
    const json_t *kind = json_object_get(obj, "kind");
    if (kind != NULL && !(json_is_string(kind) && strcmp(json_string_value(kind), "Status") == 0)) {
        return -EINVAL;
    }
    const json_t *code = json_object_get(obj, "code");
    if (code != NULL) {
        if (!json_is_integer(code) || json_integer_value(code) < 0 ||
            json_integer_value(code) > 999) {
            return -EINVAL;
        }
        out->code = (int)json_integer_value(code);
    }
    if (opt_string(obj, "status", &out->status) < 0 ||
        opt_string(obj, "reason", &out->reason) < 0 ||
        opt_string(obj, "message", &out->message) < 0) {
        status_clear(out);
        return -EINVAL;
    }
    return 0;
}

bool k8s_status_is_expired(const struct k8s_status *st)
{
    return st->code == 410 || strcmp(st->reason, "Expired") == 0 || strcmp(st->reason, "Gone") == 0;
}

/* A string member of obj without NUL bytes, else NULL. */
static const char *string_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        return NULL;
    }
    return s;
}

static const char *meta_field(const json_t *obj, const char *key)
{
    const json_t *meta = json_is_object(obj) ? json_object_get(obj, "metadata") : NULL;
    return json_is_object(meta) ? string_member(meta, key) : NULL;
}

const char *k8s_meta_resource_version(const json_t *obj)
{
    return meta_field(obj, "resourceVersion");
}

const char *k8s_meta_name(const json_t *obj)
{
    return meta_field(obj, "name");
}

const char *k8s_meta_namespace(const json_t *obj)
{
    return meta_field(obj, "namespace");
}

const char *k8s_meta_uid(const json_t *obj)
{
    return meta_field(obj, "uid");
}

const char *k8s_meta_annotation(const json_t *obj, const char *key)
{
    const json_t *meta = json_is_object(obj) ? json_object_get(obj, "metadata") : NULL;
    const json_t *annots = json_is_object(meta) ? json_object_get(meta, "annotations") : NULL;
    return json_is_object(annots) ? string_member(annots, key) : NULL;
}
