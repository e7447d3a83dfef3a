/* derp_admit: decides whether a client may log in, as derper's
 * --verify-client-url does, plus an allowed-keys file.
 *
 * Two independent checks; a client must pass every one configured:
 *  1. --allowed-keys-file: the key is in the file (derp_policy.h format). The
 *     file is re-read when its directory changes (derp_filewatch) and on
 *     derp_admit_reload(); a file that fails to load keeps the previous list.
 *  2. --verify-client-url: a POST of {"NodePublic","Source"} answered by
 *     {"Allow":bool} (derp_policy.h). The request runs on libcurl's multi
 *     interface driven by the caller's loop (its sockets and timer are loop
 *     watches), so the loop never blocks; the answer comes back through a
 *     callback. Answers (allow and deny, not failures) are cached per key for
 *     DERP_ADMIT_CACHE_MS. As in derper: an unreachable controller (no
 *     connection, no answer within DERP_ADMIT_TIMEOUT_MS) lets the client in
 *     when fail-open is set (derper's default), any answer but 200 or a body
 *     that is not {"Allow":...} refuses it.
 * Mesh peers are never asked about: the server skips admission for them.
 * This module logs the file's reloads (tag "derp"); refusals are the
 * server's to log. */
#ifndef DC_RELAY_DERP_ADMIT_H
#define DC_RELAY_DERP_ADMIT_H

#include "derp_proto.h"
#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct dc_loop;
struct dc_buf;
struct derp_admit;
struct derp_admit_req;

/* Time the admission controller gets per request (derper verifyClient:
 * context.WithTimeout(ctx, 5*time.Second)). */
#define DERP_ADMIT_TIMEOUT_MS 5000
/* How long a controller's answer for a key is reused (ours; derper asks on
 * every connection). */
#define DERP_ADMIT_CACHE_MS 30000
/* Cache slots: direct-mapped by a keyed hash of the node key; a collision
 * evicts the older answer (ours). */
#define DERP_ADMIT_CACHE_SLOTS 4096
/* Requests in flight at once; past this a client is treated as if the
 * controller were unreachable (ours: bounds memory under a login flood). */
#define DERP_ADMIT_MAX_PENDING 256

/* The outcome of an admission check. */
enum derp_admit_result {
    DERP_ADMIT_ALLOWED,     /* listed and/or the controller said yes */
    DERP_ADMIT_FAIL_OPEN,   /* controller unreachable; let in (fail-open) */
    DERP_ADMIT_NOT_LISTED,  /* not in the allowed-keys file */
    DERP_ADMIT_DENIED,      /* the controller answered Allow false */
    DERP_ADMIT_UNREACHABLE, /* controller unreachable; refused (fail-closed) */
    DERP_ADMIT_ERROR,       /* the controller answered non-200 or a bad body */
    DERP_ADMIT_PENDING,     /* asked; the callback tells the outcome */
    DERP_ADMIT_RESULT_COUNT,
};

struct derp_admit_config {
    const char *allowed_keys_file; /* borrowed for the call (copied); NULL = no list */
    const char *verify_url;        /* borrowed for the call (copied); NULL = no controller */
    bool verify_fail_open;         /* --verify-client-url-fail-open */
};

/* Receives a pending check's outcome (never DERP_ADMIT_PENDING) on the loop;
 * why is a sentence for the log, valid for the call. */
typedef void (*derp_admit_cb)(void *data, enum derp_admit_result r, const char *why);
/* Told that the allowed-keys list changed (so connected clients can be
 * checked again with derp_admit_is_listed()). */
typedef void (*derp_admit_changed_cb)(void *data);

/* Loads the allowed-keys file and sets up the controller client on loop.
 * Returns 0 and *out (free with derp_admit_free()), or negative errno with
 * err filled (file unreadable, too big, bad URL scheme, no memory). */
int derp_admit_new(struct dc_loop *loop, const struct derp_admit_config *cfg,
                   struct derp_admit **out, char *err) DC_MUST_CHECK;
/* Cancels every request and frees a; accepts NULL. */
void derp_admit_free(struct derp_admit *a);
/* Sets the callback for list changes (data borrowed; NULL cb removes it). */
void derp_admit_set_changed_cb(struct derp_admit *a, derp_admit_changed_cb cb, void *data);

/* Checks key connecting from ip16 (IPv4 as ::ffff:a.b.c.d). Returns the
 * outcome now, with why (DC_ERR_LEN, may be NULL) filled for a refusal; or
 * DERP_ADMIT_PENDING with *req set, and cb(data, ...) is called later unless
 * derp_admit_cancel(a, *req) comes first. */
enum derp_admit_result derp_admit_check(struct derp_admit *a,
                                        const uint8_t key[static DERP_KEY_LEN],
                                        const uint8_t ip16[static 16], derp_admit_cb cb, void *data,
                                        struct derp_admit_req **req, char *why);
/* Drops interest in a pending check: cb will not be called. The request
 * itself runs to its end (its answer still fills the cache). */
void derp_admit_cancel(struct derp_admit *a, struct derp_admit_req *req);
/* True when key is in the allowed-keys list, or when there is no list. */
bool derp_admit_is_listed(const struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN]);
/* Re-reads the allowed-keys file now (SIGHUP), even if it looks unchanged. */
void derp_admit_reload(struct derp_admit *a);
/* True when an outcome lets the client in. */
bool derp_admit_result_is_allowed(enum derp_admit_result r);
/* The Prometheus label of an outcome ("allowed", "not_listed", ...). */
const char *derp_admit_result_name(enum derp_admit_result r);
/* Appends the module's Prometheus text (derp_admission_*, derp_allowed_keys*). */
void derp_admit_metrics_format(const struct derp_admit *a, struct dc_buf *out);

#endif
