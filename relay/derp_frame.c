#include "derp_frame.h"

#include "bytes.h"
#include "derp_key.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

size_t derp_frame_header_decode(const uint8_t *buf, size_t len, uint8_t *type,
                                uint32_t *payload_len)
{
    if (len < DERP_FRAME_HDR_LEN) {
        return 0;
    }
    *type = buf[0];
    *payload_len = dc_get_be32(buf + 1);
    return DERP_FRAME_HDR_LEN;
}

/* Smallest and largest payload the server accepts for each type it reads
 * whole; other types are skipped. Handlers check exact sizes (NotePreferred
 * 1, ClosePeer 32, WatchConns 0, Ping 8..1000). */
static bool frame_limits(uint8_t type, uint32_t *min_len, uint32_t *max_len)
{
    *min_len = 0;
    switch (type) {
    case DERP_FRAME_SEND_PACKET:
        *min_len = DERP_KEY_LEN;
        *max_len = DERP_KEY_LEN + DERP_MAX_PACKET_LEN;
        return true;
    case DERP_FRAME_FORWARD_PACKET:
        *min_len = 2 * DERP_KEY_LEN;
        *max_len = 2 * DERP_KEY_LEN + DERP_MAX_PACKET_LEN;
        return true;
    case DERP_FRAME_NOTE_PREFERRED:
    case DERP_FRAME_PING:
    case DERP_FRAME_CLOSE_PEER:
    case DERP_FRAME_WATCH_CONNS:
        *max_len = DERP_MAX_PING_LEN;
        return true;
    default:
        return false;
    }
}

long derp_frame_next(struct derp_frame_reader *r, const uint8_t *buf, size_t len,
                     struct derp_frame *f, bool *has_frame, const char **why)
{
    size_t off = 0;
    *has_frame = false;
    if (r->skip > 0) {
        size_t n = len < r->skip ? len : (size_t)r->skip;
        r->skip -= n;
        return (long)n;
    }
    uint8_t type;
    uint32_t plen;
    if (derp_frame_header_decode(buf, len, &type, &plen) == 0) {
        return 0;
    }
    uint32_t min_len = 0;
    uint32_t max_len = DERP_MAX_CLIENT_INFO_LEN;
    if (r->is_client) {
        if (plen > max_len) {
            r->skip = plen;
            return DERP_FRAME_HDR_LEN;
        }
    } else if (r->is_login) {
        min_len = type == DERP_FRAME_CLIENT_INFO ? DERP_KEY_LEN + DERP_NONCE_LEN : 0;
    } else if (!frame_limits(type, &min_len, &max_len)) {
        r->skip = plen;
        return DERP_FRAME_HDR_LEN;
    }
    if (plen > max_len) {
        *why = "frame longer than its type allows";
        return -EMSGSIZE;
    }
    if (plen < min_len) {
        *why = "frame shorter than its type needs";
        return -EPROTO;
    }
    off = DERP_FRAME_HDR_LEN;
    if (len - off < plen) {
        return 0;
    }
    f->type = type;
    f->payload = buf + off;
    f->len = plen;
    *has_frame = true;
    return (long)(off + plen);
}

void derp_frame_header_encode(uint8_t out[static DERP_FRAME_HDR_LEN], uint8_t type,
                              uint32_t payload_len)
{
    out[0] = type;
    dc_put_be32(out + 1, payload_len);
}

void derp_frame_server_key_encode(uint8_t out[static DERP_SERVER_KEY_FRAME_LEN],
                                  const uint8_t server_pub[static DERP_KEY_LEN])
{
    derp_frame_header_encode(out, DERP_FRAME_SERVER_KEY, DERP_MAGIC_LEN + DERP_KEY_LEN);
    memcpy(out + DERP_FRAME_HDR_LEN, DERP_MAGIC, DERP_MAGIC_LEN);
    memcpy(out + DERP_FRAME_HDR_LEN + DERP_MAGIC_LEN, server_pub, DERP_KEY_LEN);
}

int derp_frame_server_key_decode(const uint8_t *payload, size_t len,
                                 uint8_t server_pub[static DERP_KEY_LEN])
{
    if (len < DERP_MAGIC_LEN + DERP_KEY_LEN || memcmp(payload, DERP_MAGIC, DERP_MAGIC_LEN) != 0) {
        return -EPROTO;
    }
    memcpy(server_pub, payload + DERP_MAGIC_LEN, DERP_KEY_LEN);
    return 0;
}

void derp_frame_peer_gone_encode(uint8_t out[static DERP_PEER_GONE_FRAME_LEN],
                                 const uint8_t peer[static DERP_KEY_LEN], uint8_t reason)
{
    derp_frame_header_encode(out, DERP_FRAME_PEER_GONE, DERP_KEY_LEN + 1);
    memcpy(out + DERP_FRAME_HDR_LEN, peer, DERP_KEY_LEN);
    out[DERP_FRAME_HDR_LEN + DERP_KEY_LEN] = reason;
}

void derp_frame_peer_present_encode(uint8_t out[static DERP_PEER_PRESENT_FRAME_LEN],
                                    const uint8_t peer[static DERP_KEY_LEN],
                                    const uint8_t ip16[static 16], uint16_t port, uint8_t flags)
{
    uint8_t *p = out + DERP_FRAME_HDR_LEN;
    derp_frame_header_encode(out, DERP_FRAME_PEER_PRESENT, DERP_PEER_PRESENT_LEN);
    memcpy(p, peer, DERP_KEY_LEN);
    memcpy(p + DERP_KEY_LEN, ip16, 16);
    dc_put_be16(p + DERP_KEY_LEN + 16, port);
    p[DERP_KEY_LEN + 18] = flags;
}

void derp_frame_pong_encode(uint8_t out[static DERP_PONG_FRAME_LEN],
                            const uint8_t data[static DERP_PING_LEN])
{
    derp_frame_header_encode(out, DERP_FRAME_PONG, DERP_PING_LEN);
    memcpy(out + DERP_FRAME_HDR_LEN, data, DERP_PING_LEN);
}

void derp_frame_restarting_encode(uint8_t out[static DERP_RESTARTING_FRAME_LEN],
                                  uint32_t reconnect_in_ms, uint32_t try_for_ms)
{
    derp_frame_header_encode(out, DERP_FRAME_RESTARTING, 8);
    dc_put_be32(out + DERP_FRAME_HDR_LEN, reconnect_in_ms);
    dc_put_be32(out + DERP_FRAME_HDR_LEN + 4, try_for_ms);
}

bool derp_packet_is_disco(const uint8_t *packet, size_t len)
{
    return len >= DERP_DISCO_MIN_LEN && memcmp(packet, DERP_DISCO_MAGIC, DERP_DISCO_MAGIC_LEN) == 0;
}

static int json_bool_field(json_t *root, const char *name, bool *out, char *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return dc_err_set(err, -EINVAL, "client info: `%s' is not a boolean", name);
    }
    *out = json_is_true(v);
    return 0;
}

static int json_int_field(json_t *root, const char *name, long *out, char *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return dc_err_set(err, -EINVAL, "info: `%s' is not an integer", name);
    }
    json_int_t i = json_integer_value(v);
    if (i < -2147483647 || i > 2147483647) {
        return dc_err_set(err, -EINVAL, "info: `%s' out of range", name);
    }
    *out = (long)i;
    return 0;
}

static json_t *load_object(const char *json, size_t len, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL) {
        dc_err_set(err, -EINVAL, "info: not JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        dc_err_set(err, -EINVAL, "info: not a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

static void parse_mesh_key(json_t *root, struct derp_client_info *ci)
{
    json_t *mk = json_object_get(root, "meshKey");
    if (!json_is_string(mk)) {
        return;
    }
    const char *s = json_string_value(mk);
    size_t n = json_string_length(mk);
    if (derp_key_parse_hex(s, n, ci->mesh_key) == 0) {
        ci->has_mesh_key = true;
    }
}

int derp_client_info_parse(const char *json, size_t len, struct derp_client_info *ci, char *err)
{
    memset(ci, 0, sizeof(*ci));
    json_t *root = load_object(json, len, err);
    if (root == NULL) {
        return -EINVAL;
    }
    long version = 0;
    int rc = json_int_field(root, "version", &version, err);
    if (rc == 0) {
        rc = json_bool_field(root, "CanAckPings", &ci->can_ack_pings, err);
    }
    if (rc == 0) {
        rc = json_bool_field(root, "IsProber", &ci->is_prober, err);
    }
    ci->version = (int)version;
    parse_mesh_key(root, ci);
    json_t *app = json_object_get(root, "AppName");
    if (rc == 0 && app != NULL && !json_is_null(app) && !json_is_string(app)) {
        rc = dc_err_set(err, -EINVAL, "client info: `AppName' is not a string");
    }
    if (rc == 0 && json_is_string(app)) {
        const char *name = json_string_value(app);
        size_t n = json_string_length(app);
        if (n > DERP_APP_NAME_MAX) {
            n = DERP_APP_NAME_MAX;
            /* Cut at a character boundary: never leave half a UTF-8 sequence. */
            while (n > 0 && ((uint8_t)name[n] & 0xc0) == 0x80) {
                n--;
            }
        }
        memcpy(ci->app_name, name, n);
        ci->app_name[n] = '\0';
    }
    json_decref(root);
    return rc;
}

static int dump_checked(json_t *obj, char *out, size_t out_len)
{
    if (obj == NULL) {
        return -ENOMEM;
    }
    size_t n = json_dumpb(obj, out, out_len, JSON_COMPACT);
    json_decref(obj);
    if (n == 0 || n >= out_len) {
        return -EMSGSIZE;
    }
    out[n] = '\0';
    return (int)n;
}

int derp_client_info_format(const struct derp_client_info *ci, char *out, size_t out_len)
{
    json_t *o = json_object();
    if (o == NULL) {
        return -ENOMEM;
    }
    if (ci->has_mesh_key) {
        char hex[DERP_KEY_HEX_LEN + 1];
        derp_key_hex(ci->mesh_key, hex);
        json_object_set_new(o, "meshKey", json_string(hex));
    }
    if (ci->version != 0) {
        json_object_set_new(o, "version", json_integer(ci->version));
    }
    json_object_set_new(o, "CanAckPings", json_boolean(ci->can_ack_pings));
    if (ci->is_prober) {
        json_object_set_new(o, "IsProber", json_true());
    }
    if (ci->app_name[0] != '\0' &&
        json_object_set_new(o, "AppName", json_string(ci->app_name)) != 0) {
        json_decref(o);
        return -EINVAL; /* not UTF-8: refuse rather than drop it silently */
    }
    return dump_checked(o, out, out_len);
}

int derp_server_info_parse(const char *json, size_t len, struct derp_server_info *si, char *err)
{
    memset(si, 0, sizeof(*si));
    json_t *root = load_object(json, len, err);
    if (root == NULL) {
        return -EINVAL;
    }
    long version = 0;
    int rc = json_int_field(root, "version", &version, err);
    if (rc == 0) {
        rc =
            json_int_field(root, "TokenBucketBytesPerSecond", &si->token_bucket_bytes_per_sec, err);
    }
    if (rc == 0) {
        rc = json_int_field(root, "TokenBucketBytesBurst", &si->token_bucket_bytes_burst, err);
    }
    si->version = (int)version;
    json_decref(root);
    return rc;
}

int derp_server_info_format(const struct derp_server_info *si, char *out, size_t out_len)
{
    json_t *o = json_object();
    if (o == NULL) {
        return -ENOMEM;
    }
    if (si->version != 0) {
        json_object_set_new(o, "version", json_integer(si->version));
    }
    if (si->token_bucket_bytes_per_sec != 0) {
        json_object_set_new(o, "TokenBucketBytesPerSecond",
                            json_integer(si->token_bucket_bytes_per_sec));
    }
    if (si->token_bucket_bytes_burst != 0) {
        json_object_set_new(o, "TokenBucketBytesBurst", json_integer(si->token_bucket_bytes_burst));
    }
    return dump_checked(o, out, out_len);
}
