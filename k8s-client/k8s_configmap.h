/* k8s_configmap: read and write one ConfigMap's data with optimistic concurrency, asynchronously
 * on the client's loop. The controller keeps its region IDs in one.
 *
 * A read hands back the data object and the resourceVersion it was read at. A write either
 * creates the ConfigMap (no resourceVersion: POST, AlreadyExists is -EEXIST) or merges keys into
 * it with a JSON merge PATCH carrying metadata.resourceVersion, which kube-apiserver turns into a
 * precondition: if anyone wrote in between, the answer is 409 Conflict, reported as -EAGAIN, and
 * the caller reads again, merges its change and retries. Nothing is retried here except what
 * k8s_http retries (429, and 5xx for GET).
 *
 * Each request holds a small allocation released when its callback has run. Requests cannot be
 * cancelled: let them complete before k8s_client_free(), which drops them without calling back
 * (and so leaks that allocation). Not done here: binaryData, immutable ConfigMaps, deleting. */
#ifndef DC_K8S_CONFIGMAP_H
#define DC_K8S_CONFIGMAP_H

#include "err.h"

#include <jansson.h>

struct k8s_client;

/* Whole-request time of each read or write, in ms. Our limit. */
#define K8S_CONFIGMAP_TIMEOUT_MS 10000u
/* Extra attempts k8s_http makes for a retriable answer. Our choice: a few, not forever. */
#define K8S_CONFIGMAP_RETRIES 3u
/* Longest namespace (a DNS label) and ConfigMap name (a DNS subdomain), in bytes. */
#define K8S_CONFIGMAP_MAX_NAMESPACE_LEN 63u
#define K8S_CONFIGMAP_MAX_NAME_LEN      253u

/* The outcome of a read or write, on the loop. error: 0; -ENOENT (no such ConfigMap, or its
 * namespace is missing); -EEXIST (create of one that exists); -EAGAIN (write with a stale
 * resourceVersion: read again); -EPROTO (the answer is not a ConfigMap); else a transport error
 * from k8s_http or -EIO for another HTTP status. data: the ConfigMap's data object (borrowed for
 * the call; an empty object when it has none) or NULL on error. resource_version: the
 * ConfigMap's, borrowed, "" on error. errmsg: one sentence on error, else "". */
typedef void (*k8s_configmap_cb)(void *arg, int error, const json_t *data,
                                 const char *resource_version, const char *errmsg);

/* Reads ConfigMap ns/name; cb(arg, ...) runs once on the loop. Returns 0, or without calling
 * back: -EINVAL (empty or non-DNS ns or name; err says which), -ENOMEM, or k8s_request()'s
 * error. */
int k8s_configmap_get(struct k8s_client *c, const char *ns, const char *name, k8s_configmap_cb cb,
                      void *arg, char *err) DC_MUST_CHECK;

/* Writes data_to_merge (an object of string values; with a resourceVersion, a null value
 * deletes that key) into ConfigMap ns/name. resource_version NULL: create it with that data
 * (null values left out); else merge PATCH conditioned on resource_version. labels (NULL or an
 * object of string values) are merged into metadata.labels. cb gets the new resourceVersion and
 * the resulting data. Both JSON values are borrowed for the call. Returns 0, or without calling
 * back -EINVAL (bad ns/name, data or labels not as described: err says which), -ENOMEM, or
 * k8s_request()'s error. */
int k8s_configmap_write(struct k8s_client *c, const char *ns, const char *name,
                        const json_t *data_to_merge, const char *resource_version,
                        const json_t *labels, k8s_configmap_cb cb, void *arg,
                        char *err) DC_MUST_CHECK;

#endif
