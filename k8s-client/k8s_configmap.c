#include "k8s_configmap.h"

#include "k8s_http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest request path: the prefix, a 63-byte namespace and a 253-byte name fit (both are
 * checked first), so the snprintf()s building paths cannot truncate. */
#define CM_PATH_MAX_LEN 512u

/* One request in flight: what its answer means and whom to tell. */
struct cm_op {
    k8s_configmap_cb cb; /* the caller's */
    void *arg;           /* borrowed */
    bool is_create;      /* POST: 409 is AlreadyExists */
    bool is_write;       /* POST or PATCH: 409 is -EEXIST or -EAGAIN */
};

/* Checks that s is a DNS name of at most max bytes: it goes into a URL path unescaped. */
static int check_name(const char *what, const char *s, size_t max, char *err)
{
    if (s == NULL || s[0] == '\0') {
        return dc_err_set(err, -EINVAL, "configmap: %s is empty", what);
    }
    size_t n = strlen(s);
    char q[DC_QUOTE_BUF_LEN];
    if (n > max) {
        return dc_err_set(err, -EINVAL, "configmap: %s is longer than %zu bytes: `%s'", what, max,
                          dc_err_quote(s, n, q));
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            return dc_err_set(err, -EINVAL, "configmap: %s is not a DNS name: `%s'", what,
                              dc_err_quote(s, n, q));
        }
    }
    return 0;
}

/* Checks that v is NULL or an object whose values are strings (or null when is_null_ok). */
static int check_strings(const char *what, const json_t *v, bool is_null_ok, char *err)
{
    if (v == NULL) {
        return 0;
    }
    if (!json_is_object(v)) {
        return dc_err_set(err, -EINVAL, "configmap: %s is not a JSON object", what);
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        if (!json_is_string(value) && !(is_null_ok && json_is_null(value))) {
            char q[DC_QUOTE_BUF_LEN];
            return dc_err_set(err, -EINVAL, "configmap: %s: value of `%s' is not a string", what,
                              dc_err_quote(key, strlen(key), q));
        }
    }
    return 0;
}

/* Maps a failed answer to the error the callback gets. */
static int answer_error(const struct cm_op *op, const struct k8s_response *resp)
{
    if (resp->error != 0) {
        return resp->error;
    }
    if (resp->status == 404) {
        return -ENOENT;
    }
    if (resp->status == 409 && op->is_write) {
        return op->is_create ? -EEXIST : -EAGAIN;
    }
    return -EIO;
}

static void cm_done(void *arg, const struct k8s_response *resp)
{
    struct cm_op *op = arg;
    json_t *obj = NULL;
    int error = 0;
    const char *errmsg = "";
    if (!k8s_response_is_ok(resp)) {
        error = answer_error(op, resp);
        errmsg = resp->err;
    } else {
        obj = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
        const json_t *rv = json_object_get(json_object_get(obj, "metadata"), "resourceVersion");
        if (!json_is_string(rv)) {
            error = -EPROTO;
            errmsg = "configmap: the answer is not a ConfigMap (no metadata.resourceVersion)";
        }
    }
    if (error != 0) {
        op->cb(op->arg, error, NULL, "", errmsg);
    } else {
        const json_t *data = json_object_get(obj, "data");
        json_t *empty = json_object();
        const char *rv =
            json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
        op->cb(op->arg, 0, json_is_object(data) ? data : empty, rv, "");
        json_decref(empty);
    }
    json_decref(obj);
    free(op);
}

/* Sends one request for ns/name (or its collection, for a POST); body is borrowed. */
static int cm_send(struct k8s_client *c, enum k8s_method m, const char *ns, const char *name,
                   const json_t *body, struct cm_op *tmpl, char *err)
{
    char path[CM_PATH_MAX_LEN];
    if (m == K8S_POST) {
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", ns);
    } else {
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", ns, name);
    }
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    struct cm_op *op = malloc(sizeof(*op));
    if ((body != NULL && text == NULL) || op == NULL) {
        free(text);
        free(op);
        return dc_err_set(err, -ENOMEM, "configmap: out of memory");
    }
    *op = *tmpl;
    struct k8s_request_opts o = {
        .method = m,
        .path = path,
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
        .content_type = m == K8S_PATCH ? K8S_CONTENT_MERGE_PATCH : NULL,
        .timeout_ms = K8S_CONFIGMAP_TIMEOUT_MS,
        .retries = K8S_CONFIGMAP_RETRIES,
    };
    int rc = k8s_request(c, &o, cm_done, op, NULL, err);
    free(text);
    if (rc != 0) {
        free(op);
    }
    return rc;
}

static int check_target(const char *ns, const char *name, char *err)
{
    int rc = check_name("namespace", ns, K8S_CONFIGMAP_MAX_NAMESPACE_LEN, err);
    if (rc == 0) {
        rc = check_name("name", name, K8S_CONFIGMAP_MAX_NAME_LEN, err);
    }
    return rc;
}

int k8s_configmap_get(struct k8s_client *c, const char *ns, const char *name, k8s_configmap_cb cb,
                      void *arg, char *err)
{
    int rc = check_target(ns, name, err);
    if (rc != 0) {
        return rc;
    }
    struct cm_op op = {.cb = cb, .arg = arg};
    return cm_send(c, K8S_GET, ns, name, NULL, &op, err);
}

/* The new ConfigMap: data without its null values, labels when given. */
static json_t *create_body(const char *ns, const char *name, const json_t *data,
                           const json_t *labels)
{
    json_t *d = json_object();
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)data, key, value)
    {
        if (json_is_string(value)) {
            json_object_set(d, key, (json_t *)value);
        }
    }
    json_t *meta = json_pack("{s:s, s:s}", "name", name, "namespace", ns);
    if (labels != NULL) {
        json_object_set(meta, "labels", (json_t *)labels);
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                     meta, "data", d);
}

/* The merge patch: resourceVersion as the precondition, labels and data merged. */
static json_t *patch_body(const json_t *data, const char *rv, const json_t *labels)
{
    json_t *meta = json_pack("{s:s}", "resourceVersion", rv);
    if (labels != NULL) {
        json_object_set(meta, "labels", (json_t *)labels);
    }
    return json_pack("{s:o, s:O}", "metadata", meta, "data", (json_t *)data);
}

int k8s_configmap_write(struct k8s_client *c, const char *ns, const char *name,
                        const json_t *data_to_merge, const char *resource_version,
                        const json_t *labels, k8s_configmap_cb cb, void *arg, char *err)
{
    int rc = check_target(ns, name, err);
    if (rc == 0 && data_to_merge == NULL) {
        rc = dc_err_set(err, -EINVAL, "configmap: no data to write");
    }
    if (rc == 0) {
        rc = check_strings("data", data_to_merge, true, err);
    }
    if (rc == 0) {
        rc = check_strings("labels", labels, false, err);
    }
    if (rc == 0 && resource_version != NULL && resource_version[0] == '\0') {
        rc = dc_err_set(err, -EINVAL, "configmap: empty resourceVersion (NULL creates)");
    }
    if (rc != 0) {
        return rc;
    }
    bool is_create = resource_version == NULL;
    json_t *body = is_create ? create_body(ns, name, data_to_merge, labels)
                             : patch_body(data_to_merge, resource_version, labels);
    if (body == NULL) {
        return dc_err_set(err, -ENOMEM, "configmap: out of memory");
    }
    struct cm_op op = {.cb = cb, .arg = arg, .is_create = is_create, .is_write = true};
    rc = cm_send(c, is_create ? K8S_POST : K8S_PATCH, ns, name, body, &op, err);
    json_decref(body);
    return rc;
}
