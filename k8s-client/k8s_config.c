#include "k8s_config.h"

#include "k8s_yaml.h"
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Room for a field path such as `users[12].user.exec.env[3].name'. */
#define KC_FIELD_LEN 160
/* Largest namespace file read (namespace names are at most 63 bytes). */
#define KC_NAMESPACE_MAX_LEN 4096u
/* Name of the variable that carries the ExecCredential input to a plugin. */
#define KC_EXEC_INFO_ENV "KUBERNETES_EXEC_INFO"
/* Bytes of a plugin's first stderr line quoted in an error. */
#define KC_STDERR_QUOTE_LEN 160

/* What every cluster, user and context entry starts with. */
struct kc_entry {
    char *name;   /* owned */
    char *origin; /* owned; the file that defined it */
    size_t index; /* position in that file's list */
};

/* clusters[i].cluster of one file. */
struct kc_cluster {
    struct kc_entry e;                                    /* first member */
    char *server, *tls_server_name, *proxy_url, *ca_file; /* owned or NULL */
    uint8_t *ca_data;                                     /* owned or NULL */
    size_t ca_data_len;
    bool is_insecure, is_compression_disabled;
    char *exec_config; /* owned JSON of the K8S_EXEC_CLUSTER_EXTENSION extension, or NULL */
};

/* users[i].user of one file. */
struct kc_user {
    struct kc_entry e;                                  /* first member */
    char *cert_file, *key_file, *token_file, *username; /* owned or NULL */
    uint8_t *cert_data, *key_data;                      /* owned or NULL; key_data secret */
    size_t cert_data_len, key_data_len;
    char *token; /* owned or NULL; secret */
    size_t token_len;
    char *password;               /* owned or NULL; secret */
    bool has_auth_provider;       /* auth-provider is set */
    char *auth_provider;          /* owned or NULL; its name */
    const char *impersonation;    /* static field name of a set impersonation field, or NULL */
    struct k8s_exec_config *exec; /* owned or NULL; interactive_mode not yet resolved */
    char *exec_interactive;       /* owned or NULL; interactiveMode as written */
};

/* contexts[i].context of one file. */
struct kc_context {
    struct kc_entry e;                /* first member */
    char *cluster, *user, *namespace; /* owned or NULL */
};

/* The three lists differ only in their keys, entry type and parser. */
enum kc_list { KC_CLUSTERS, KC_USERS, KC_CONTEXTS, KC_N_LISTS };

static const char *const kc_list_key[] = {"clusters", "users", "contexts"};
static const char *const kc_item_key[] = {"cluster", "user", "context"};
static const size_t kc_item_size[] = {sizeof(struct kc_cluster), sizeof(struct kc_user),
                                      sizeof(struct kc_context)};

/* A growable array of entries of one list. */
struct kc_vec {
    void *items; /* owned; n entries of kc_item_size[list] bytes, each a struct kc_entry first */
    size_t n, cap;
};

struct k8s_kubeconfig {
    char *origin;                    /* owned; the file, or the list of files merged */
    struct kc_vec lists[KC_N_LISTS]; /* clusters, users, contexts */
    char *current_context;           /* owned or NULL */
    char *current_origin;            /* owned; the file that set current-context */
};

/* Parsing state of one file. */
struct kc_parser {
    const char *origin; /* borrowed */
    char *err;          /* caller's buffer or NULL */
};

/* The entries a context selects. */
struct kc_selection {
    const struct kc_context *ctx;
    const struct kc_cluster *cluster;
    const struct kc_user *user; /* NULL for a context without a user */
    enum k8s_exec_interactive interactive;
};

/* --- small helpers --- */

static int kc_err(char *err, int code, const char *origin, const char *field, const char *fmt, ...)
    DC_PRINTF(5, 6);

/* Writes "kubeconfig `origin': field: message" into err; returns code. */
static int kc_err(char *err, int code, const char *origin, const char *field, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    char msg[DC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        msg[0] = '\0';
    }
    if (field != NULL && field[0] != '\0') {
        return dc_err_set(err, code, "kubeconfig `%s': %s: %s", origin, field, msg);
    }
    return dc_err_set(err, code, "kubeconfig `%s': %s", origin, msg);
}

static void field_printf(char *out, const char *fmt, ...) DC_PRINTF(2, 3);

/* Formats a field path into out (KC_FIELD_LEN bytes). A truncated path only shortens an
 * error message, so truncation is accepted here. */
static void field_printf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, KC_FIELD_LEN, fmt, ap);
    va_end(ap);
    if (n < 0) {
        out[0] = '\0';
    }
}

static void field_join(char *out, const char *parent, const char *key)
{
    field_printf(out, "%s.%s", parent, key);
}

static void free_secret(void *p, size_t len)
{
    if (p != NULL) {
        sodium_memzero(p, len);
        free(p);
    }
}

static void free_secret_str(char *s)
{
    if (s != NULL) {
        free_secret(s, strlen(s));
    }
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL) {
        return 0;
    }
    *out = strdup(s);
    return *out == NULL ? -ENOMEM : 0;
}

static int dup_bytes(const uint8_t *p, size_t len, uint8_t **out)
{
    *out = NULL;
    if (p == NULL) {
        return 0;
    }
    *out = malloc(len + 1);
    if (*out == NULL) {
        return -ENOMEM;
    }
    memcpy(*out, p, len);
    (*out)[len] = 0;
    return 0;
}

/* Concatenates a, b and c into a new string. */
static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s != NULL) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        memcpy(s + la + lb, c, lc);
        s[la + lb + lc] = '\0';
    }
    return s;
}

static struct kc_entry *kc_at(const struct k8s_kubeconfig *kc, enum kc_list list, size_t i)
{
    return (struct kc_entry *)((char *)kc->lists[list].items + i * kc_item_size[list]);
}

static struct kc_cluster *kc_cluster_at(const struct k8s_kubeconfig *kc, size_t i)
{
    return (struct kc_cluster *)kc_at(kc, KC_CLUSTERS, i);
}

static struct kc_user *kc_user_at(const struct k8s_kubeconfig *kc, size_t i)
{
    return (struct kc_user *)kc_at(kc, KC_USERS, i);
}

static struct kc_context *kc_context_at(const struct k8s_kubeconfig *kc, size_t i)
{
    return (struct kc_context *)kc_at(kc, KC_CONTEXTS, i);
}

/* Makes room for one more zeroed entry at the end of list and returns it (not yet counted). */
static struct kc_entry *kc_room(struct k8s_kubeconfig *kc, enum kc_list list)
{
    struct kc_vec *v = &kc->lists[list];
    size_t elem = kc_item_size[list];
    if (v->n == v->cap) {
        size_t ncap = v->cap == 0 ? 4 : v->cap * 2;
        void *na = realloc(v->items, ncap * elem);
        if (na == NULL) {
            return NULL;
        }
        memset((char *)na + v->cap * elem, 0, (ncap - v->cap) * elem);
        v->items = na;
        v->cap = ncap;
    }
    return kc_at(kc, list, v->n);
}

static struct kc_entry *kc_find(const struct k8s_kubeconfig *kc, enum kc_list list,
                                const char *name)
{
    for (size_t i = 0; i < kc->lists[list].n; i++) {
        struct kc_entry *e = kc_at(kc, list, i);
        if (e->name != NULL && strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* True when s holds a byte below 0x20 or DEL: such a token cannot go in an HTTP header. */
static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Go's strings.TrimSpace for ASCII: sets (*start, *len) to the trimmed span of s. */
static void trim_span(const char *s, size_t n, size_t *start, size_t *len)
{
    size_t a = 0, b = n;
    while (a < b && is_space(s[a])) {
        a++;
    }
    while (b > a && is_space(s[b - 1])) {
        b--;
    }
    *start = a;
    *len = b - a;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* obj[key], or NULL when absent or null (Go decodes both to the zero value). */
static json_t *member(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* --- freeing --- */

static void exec_free(struct k8s_exec_config *ex)
{
    if (ex == NULL) {
        return;
    }
    free(ex->api_version);
    free(ex->command);
    for (size_t i = 0; i < ex->n_args; i++) {
        free(ex->args[i]);
    }
    free(ex->args);
    for (size_t i = 0; i < ex->n_env; i++) {
        free(ex->env[i].name);
        free_secret_str(ex->env[i].value);
    }
    free(ex->env);
    free(ex->install_hint);
    free(ex->cluster_config_json);
    free(ex);
}

static void cluster_deinit(struct kc_cluster *c)
{
    free(c->server);
    free(c->tls_server_name);
    free(c->proxy_url);
    free(c->ca_file);
    free(c->ca_data);
    free(c->exec_config);
}

static void user_deinit(struct kc_user *u)
{
    free(u->cert_file);
    free(u->key_file);
    free(u->token_file);
    free(u->username);
    free(u->cert_data);
    free_secret(u->key_data, u->key_data_len);
    free_secret(u->token, u->token_len);
    free_secret_str(u->password);
    free(u->auth_provider);
    exec_free(u->exec);
    free(u->exec_interactive);
}

static void context_deinit(struct kc_context *c)
{
    free(c->cluster);
    free(c->user);
    free(c->namespace);
}

void k8s_kubeconfig_free(struct k8s_kubeconfig *kc)
{
    if (kc == NULL) {
        return;
    }
    for (size_t i = 0; i < kc->lists[KC_CLUSTERS].n; i++) {
        cluster_deinit(kc_cluster_at(kc, i));
    }
    for (size_t i = 0; i < kc->lists[KC_USERS].n; i++) {
        user_deinit(kc_user_at(kc, i));
    }
    for (size_t i = 0; i < kc->lists[KC_CONTEXTS].n; i++) {
        context_deinit(kc_context_at(kc, i));
    }
    for (int l = 0; l < KC_N_LISTS; l++) {
        for (size_t i = 0; i < kc->lists[l].n; i++) {
            struct kc_entry *e = kc_at(kc, (enum kc_list)l, i);
            free(e->name);
            free(e->origin);
        }
        free(kc->lists[l].items);
    }
    free(kc->origin);
    free(kc->current_context);
    free(kc->current_origin);
    free(kc);
}

void k8s_config_free(struct k8s_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->server);
    free(cfg->tls_server_name);
    free(cfg->proxy_url);
    free(cfg->ca_file);
    free(cfg->ca_data);
    free(cfg->cert_file);
    free(cfg->cert_data);
    free(cfg->key_file);
    free_secret(cfg->key_data, cfg->key_data_len);
    free_secret(cfg->token, cfg->token_len);
    free(cfg->token_file);
    free(cfg->username);
    free_secret_str(cfg->password);
    free(cfg->namespace);
    free(cfg->context_name);
    free(cfg->cluster_name);
    free(cfg->user_name);
    exec_free(cfg->exec);
    free(cfg);
}

void k8s_exec_credential_deinit(struct k8s_exec_credential *cred)
{
    if (cred == NULL) {
        return;
    }
    free_secret(cred->token, cred->token_len);
    free(cred->cert_data);
    free_secret(cred->key_data, cred->key_data_len);
    memset(cred, 0, sizeof(*cred));
}

/* --- typed field readers: absent and null read as unset, wrong types are errors --- */

/* Copies string v (field names it) into *out; "" reads as unset (client-go checks len). */
static int want_string(const struct kc_parser *p, const json_t *v, const char *field, char **out)
{
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return kc_err(p->err, -EINVAL, p->origin, field, "expected a string, got %s", type_name(v));
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (memchr(s, '\0', n) != NULL) {
        return kc_err(p->err, -EINVAL, p->origin, field, "contains a NUL character");
    }
    if (n == 0) {
        return 0;
    }
    *out = strndup(s, n);
    return *out == NULL ? -ENOMEM : 0;
}

static int get_string(const struct kc_parser *p, const json_t *obj, const char *parent,
                      const char *key, char **out)
{
    char field[KC_FIELD_LEN];
    field_join(field, parent, key);
    return want_string(p, member(obj, key), field, out);
}

static int get_bool(const struct kc_parser *p, const json_t *obj, const char *parent,
                    const char *key, bool *out)
{
    json_t *v = member(obj, key);
    *out = false;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        char field[KC_FIELD_LEN];
        field_join(field, parent, key);
        return kc_err(p->err, -EINVAL, p->origin, field, "expected true or false, got %s",
                      type_name(v));
    }
    *out = json_is_true(v);
    return 0;
}

/* Decodes a *-data field: standard base64 with padding, CR and LF ignored (Go's
 * encoding/json for []byte). The value is never quoted: it may be a key. */
static int get_data(const struct kc_parser *p, const json_t *obj, const char *parent,
                    const char *key, uint8_t **out, size_t *out_len)
{
    char field[KC_FIELD_LEN];
    char *text = NULL;
    field_join(field, parent, key);
    *out = NULL;
    *out_len = 0;
    int rc = want_string(p, member(obj, key), field, &text);
    if (rc != 0 || text == NULL) {
        return rc;
    }
    size_t n = strlen(text), bin_len = 0;
    const char *end = NULL;
    uint8_t *bin = malloc(n + 1);
    if (bin == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (sodium_base642bin(bin, n, text, n, "\r\n", &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + n) {
        size_t at = end != NULL ? (size_t)(end - text) : 0;
        rc = kc_err(p->err, -EINVAL, p->origin, field,
                    "not valid base64 (standard alphabet with = padding), at byte %zu of %zu", at,
                    n);
        goto out;
    }
    bin[bin_len] = 0;
    *out = bin;
    *out_len = bin_len;
    bin = NULL;
out:
    free_secret(bin, n + 1);
    free_secret(text, n);
    return rc;
}

/* obj[key] must be a mapping (or unset: *out NULL). */
static int get_object(const struct kc_parser *p, const json_t *obj, const char *parent,
                      const char *key, json_t **out)
{
    json_t *v = member(obj, key);
    *out = NULL;
    if (v != NULL && !json_is_object(v)) {
        char field[KC_FIELD_LEN];
        field_join(field, parent, key);
        return kc_err(p->err, -EINVAL, p->origin, field, "expected a mapping, got %s",
                      type_name(v));
    }
    *out = v;
    return 0;
}

static int get_array(const struct kc_parser *p, const json_t *obj, const char *parent,
                     const char *key, json_t **out)
{
    json_t *v = member(obj, key);
    *out = NULL;
    if (v != NULL && !json_is_array(v)) {
        char field[KC_FIELD_LEN];
        field_join(field, parent, key);
        return kc_err(p->err, -EINVAL, p->origin, field, "expected a list, got %s", type_name(v));
    }
    *out = v;
    return 0;
}

/* --- clusters --- */

/* Finds the K8S_EXEC_CLUSTER_EXTENSION entry of cluster.extensions; keeps its JSON. */
static int parse_cluster_extensions(const struct kc_parser *p, const json_t *cluster,
                                    const char *field, char **out)
{
    json_t *list = NULL, *item;
    size_t i;
    int rc = get_array(p, cluster, field, "extensions", &list);
    if (rc != 0 || list == NULL) {
        return rc;
    }
    json_array_foreach(list, i, item)
    {
        char f[KC_FIELD_LEN];
        field_printf(f, "%s.extensions[%zu]", field, i);
        if (!json_is_object(item)) {
            return kc_err(p->err, -EINVAL, p->origin, f, "expected a mapping, got %s",
                          type_name(item));
        }
        json_t *name = member(item, "name"), *ext = member(item, "extension");
        if (*out != NULL || !json_is_string(name) ||
            strcmp(json_string_value(name), K8S_EXEC_CLUSTER_EXTENSION) != 0 || ext == NULL) {
            continue;
        }
        *out = json_dumps(ext, JSON_COMPACT | JSON_ENCODE_ANY);
        if (*out == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int parse_cluster(const struct kc_parser *p, struct kc_cluster *c, const json_t *obj,
                         const char *field)
{
    int rc = get_string(p, obj, field, "server", &c->server);
    if (rc == 0) {
        rc = get_string(p, obj, field, "certificate-authority", &c->ca_file);
    }
    if (rc == 0) {
        rc = get_data(p, obj, field, "certificate-authority-data", &c->ca_data, &c->ca_data_len);
    }
    if (rc == 0) {
        rc = get_bool(p, obj, field, "insecure-skip-tls-verify", &c->is_insecure);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "tls-server-name", &c->tls_server_name);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "proxy-url", &c->proxy_url);
    }
    if (rc == 0) {
        rc = get_bool(p, obj, field, "disable-compression", &c->is_compression_disabled);
    }
    if (rc == 0) {
        rc = parse_cluster_extensions(p, obj, field, &c->exec_config);
    }
    return rc;
}

/* --- users --- */

static int parse_exec_args(const struct kc_parser *p, struct k8s_exec_config *ex,
                           const json_t *exec, const char *field)
{
    json_t *list = NULL, *item;
    size_t i;
    int rc = get_array(p, exec, field, "args", &list);
    if (rc != 0 || list == NULL || json_array_size(list) == 0) {
        return rc;
    }
    ex->args = calloc(json_array_size(list), sizeof(*ex->args));
    if (ex->args == NULL) {
        return -ENOMEM;
    }
    json_array_foreach(list, i, item)
    {
        char f[KC_FIELD_LEN];
        field_printf(f, "%s.args[%zu]", field, i);
        char *arg = NULL;
        rc = want_string(p, item, f, &arg);
        if (rc == 0 && arg == NULL) {
            arg = strdup(""); /* null and "" are both an empty argument */
            rc = arg == NULL ? -ENOMEM : 0;
        }
        if (rc != 0) {
            return rc;
        }
        ex->args[ex->n_args++] = arg;
    }
    return 0;
}

static int parse_exec_env_item(const struct kc_parser *p, struct k8s_exec_env *env,
                               const json_t *item, const char *f)
{
    char vf[KC_FIELD_LEN];
    if (!json_is_object(item)) {
        return kc_err(p->err, -EINVAL, p->origin, f,
                      "expected a mapping with name and value, got %s", type_name(item));
    }
    int rc = get_string(p, item, f, "name", &env->name);
    if (rc != 0) {
        return rc;
    }
    field_join(vf, f, "value");
    rc = want_string(p, member(item, "value"), vf, &env->value);
    if (rc == 0 && env->value == NULL) {
        env->value = strdup("");
        rc = env->value == NULL ? -ENOMEM : 0;
    }
    return rc;
}

static int parse_exec_env(const struct kc_parser *p, struct k8s_exec_config *ex, const json_t *exec,
                          const char *field)
{
    json_t *list = NULL, *item;
    size_t i;
    int rc = get_array(p, exec, field, "env", &list);
    if (rc != 0 || list == NULL || json_array_size(list) == 0) {
        return rc;
    }
    ex->env = calloc(json_array_size(list), sizeof(*ex->env));
    if (ex->env == NULL) {
        return -ENOMEM;
    }
    json_array_foreach(list, i, item)
    {
        char f[KC_FIELD_LEN];
        field_printf(f, "%s.env[%zu]", field, i);
        rc = parse_exec_env_item(p, &ex->env[ex->n_env++], item, f);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_exec(const struct kc_parser *p, struct kc_user *u, const json_t *user,
                      const char *parent)
{
    char field[KC_FIELD_LEN];
    json_t *exec = NULL;
    field_join(field, parent, "exec");
    int rc = get_object(p, user, parent, "exec", &exec);
    if (rc != 0 || exec == NULL) {
        return rc;
    }
    u->exec = calloc(1, sizeof(*u->exec));
    if (u->exec == NULL) {
        return -ENOMEM;
    }
    rc = get_string(p, exec, field, "apiVersion", &u->exec->api_version);
    if (rc == 0) {
        rc = get_string(p, exec, field, "command", &u->exec->command);
    }
    if (rc == 0) {
        rc = parse_exec_args(p, u->exec, exec, field);
    }
    if (rc == 0) {
        rc = parse_exec_env(p, u->exec, exec, field);
    }
    if (rc == 0) {
        rc = get_string(p, exec, field, "interactiveMode", &u->exec_interactive);
    }
    if (rc == 0) {
        rc = get_bool(p, exec, field, "provideClusterInfo", &u->exec->is_cluster_info_provided);
    }
    if (rc == 0) {
        rc = get_string(p, exec, field, "installHint", &u->exec->install_hint);
    }
    return rc;
}

/* Notes (without keeping) the auth-provider and impersonation fields, which this client
 * refuses when the user is selected. */
static int parse_unsupported(const struct kc_parser *p, struct kc_user *u, const json_t *user,
                             const char *field)
{
    static const char *const fields[] = {"as", "as-uid", "as-groups", "as-user-extra"};
    json_t *provider = NULL;
    int rc = get_object(p, user, field, "auth-provider", &provider);
    if (rc != 0) {
        return rc;
    }
    if (provider != NULL) {
        u->has_auth_provider = true;
        char f[KC_FIELD_LEN];
        field_join(f, field, "auth-provider");
        rc = get_string(p, provider, f, "name", &u->auth_provider);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = member(user, fields[i]);
        bool is_set = (json_is_string(v) && json_string_length(v) > 0) ||
                      (json_is_array(v) && json_array_size(v) > 0) ||
                      (json_is_object(v) && json_object_size(v) > 0);
        if (is_set && u->impersonation == NULL) {
            u->impersonation = fields[i];
        }
    }
    return 0;
}

static int parse_user(const struct kc_parser *p, struct kc_user *u, const json_t *obj,
                      const char *field)
{
    char *token = NULL;
    int rc = get_string(p, obj, field, "client-certificate", &u->cert_file);
    if (rc == 0) {
        rc = get_data(p, obj, field, "client-certificate-data", &u->cert_data, &u->cert_data_len);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "client-key", &u->key_file);
    }
    if (rc == 0) {
        rc = get_data(p, obj, field, "client-key-data", &u->key_data, &u->key_data_len);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "token", &token);
        u->token = token;
        u->token_len = token != NULL ? strlen(token) : 0;
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "tokenFile", &u->token_file);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "username", &u->username);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "password", &u->password);
    }
    if (rc == 0) {
        rc = parse_unsupported(p, u, obj, field);
    }
    if (rc == 0) {
        rc = parse_exec(p, u, obj, field);
    }
    return rc;
}

/* --- contexts --- */

static int parse_context(const struct kc_parser *p, struct kc_context *c, const json_t *obj,
                         const char *field)
{
    int rc = get_string(p, obj, field, "cluster", &c->cluster);
    if (rc == 0) {
        rc = get_string(p, obj, field, "user", &c->user);
    }
    if (rc == 0) {
        rc = get_string(p, obj, field, "namespace", &c->namespace);
    }
    return rc;
}

/* --- the named lists --- */

/* Appends a zeroed entry named name (index i of the file's list) to list. When the file
 * already used the name, returns -EEXIST with the earlier entry's index in *dup. */
static int kc_append(const struct kc_parser *p, struct k8s_kubeconfig *kc, enum kc_list list,
                     const char *name, size_t i, void **entry, size_t *dup)
{
    struct kc_entry *old = kc_find(kc, list, name);
    if (old != NULL) {
        *dup = old->index;
        return -EEXIST;
    }
    struct kc_entry *e = kc_room(kc, list);
    if (e == NULL) {
        return -ENOMEM;
    }
    kc->lists[list].n++; /* counted at once, so freeing the kubeconfig frees it */
    e->name = strdup(name);
    e->origin = strdup(p->origin);
    e->index = i;
    *entry = e;
    return e->name == NULL || e->origin == NULL ? -ENOMEM : 0;
}

/* Reads item i of a list: a mapping with a non-empty string `name' and an optional
 * mapping under the item key. */
static int parse_item(const struct kc_parser *p, struct k8s_kubeconfig *kc, enum kc_list list,
                      const json_t *item, size_t i)
{
    char field[KC_FIELD_LEN], inner_field[KC_FIELD_LEN];
    char *name = NULL;
    json_t *inner = NULL;
    void *entry = NULL;
    size_t dup = 0;
    field_printf(field, "%s[%zu]", kc_list_key[list], i);
    if (!json_is_object(item)) {
        return kc_err(p->err, -EINVAL, p->origin, field,
                      "expected a mapping with name and %s, got %s", kc_item_key[list],
                      type_name(item));
    }
    int rc = get_string(p, item, field, "name", &name);
    if (rc == 0 && name == NULL) {
        rc = kc_err(p->err, -EINVAL, p->origin, field, "name: not set");
    }
    if (rc == 0) {
        rc = get_object(p, item, field, kc_item_key[list], &inner);
    }
    if (rc == 0) {
        rc = kc_append(p, kc, list, name, i, &entry, &dup);
    }
    if (rc == -EEXIST) {
        rc = kc_err(p->err, -EINVAL, p->origin, field, "name `%s' is also the name of %s[%zu]",
                    name, kc_list_key[list], dup);
    }
    field_join(inner_field, field, kc_item_key[list]);
    if (rc == 0 && inner != NULL) {
        rc = list == KC_CLUSTERS ? parse_cluster(p, entry, inner, inner_field)
             : list == KC_USERS  ? parse_user(p, entry, inner, inner_field)
                                 : parse_context(p, entry, inner, inner_field);
    }
    free(name);
    return rc;
}

static int parse_list(const struct kc_parser *p, struct k8s_kubeconfig *kc, const json_t *root,
                      enum kc_list list)
{
    json_t *v = member(root, kc_list_key[list]), *item;
    size_t i;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_array(v)) {
        return kc_err(p->err, -EINVAL, p->origin, kc_list_key[list], "expected a list, got %s",
                      type_name(v));
    }
    json_array_foreach(v, i, item)
    {
        int rc = parse_item(p, kc, list, item, i);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Checks an optional string field of the top level against its only accepted value. */
static int check_header(const struct kc_parser *p, const json_t *root, const char *key,
                        const char *want)
{
    char *v = NULL;
    int rc = want_string(p, member(root, key), key, &v);
    if (rc == 0 && v != NULL && strcmp(v, want) != 0) {
        rc = kc_err(p->err, -EINVAL, p->origin, key, "`%s' is not `%s'", v, want);
    }
    free(v);
    return rc;
}

static int parse_root(const struct kc_parser *p, struct k8s_kubeconfig *kc, const json_t *root)
{
    if (root == NULL || json_is_null(root)) {
        return 0;
    }
    if (!json_is_object(root)) {
        return kc_err(p->err, -EINVAL, p->origin, NULL,
                      "expected a mapping at the top level, got %s", type_name(root));
    }
    int rc = check_header(p, root, "apiVersion", "v1");
    if (rc == 0) {
        rc = check_header(p, root, "kind", "Config");
    }
    for (int l = KC_CLUSTERS; rc == 0 && l <= KC_CONTEXTS; l++) {
        rc = parse_list(p, kc, root, (enum kc_list)l);
    }
    if (rc == 0) {
        rc = want_string(p, member(root, "current-context"), "current-context",
                         &kc->current_context);
    }
    if (rc == 0 && kc->current_context != NULL) {
        rc = dup_opt(p->origin, &kc->current_origin);
    }
    return rc;
}

/* The one document of a kubeconfig: empty documents (a stray `---') are skipped. */
static int single_document(const struct kc_parser *p, const json_t *docs, const json_t **root)
{
    size_t i, count = 0;
    json_t *doc;
    *root = NULL;
    json_array_foreach(docs, i, doc)
    {
        if (json_is_null(doc)) {
            continue;
        }
        if (++count > 1) {
            return kc_err(p->err, -EINVAL, p->origin, NULL,
                          "holds more than one YAML document; a kubeconfig is one");
        }
        *root = doc;
    }
    return 0;
}

int k8s_kubeconfig_parse(const char *text, size_t len, const char *origin_path,
                         struct k8s_kubeconfig **out, char *err)
{
    struct kc_parser p = {origin_path != NULL ? origin_path : "-", err};
    json_t *docs = NULL;
    const json_t *root = NULL;
    char yerr[DC_ERR_LEN] = "";
    int rc = 0;
    struct k8s_kubeconfig *kc = calloc(1, sizeof(*kc));
    *out = NULL;
    if (kc == NULL || dup_opt(p.origin, &kc->origin) != 0) {
        rc = -ENOMEM;
        goto out;
    }
    rc = k8s_yaml_parse(text, len, &docs, yerr);
    if (rc != 0) {
        rc = kc_err(err, rc, p.origin, NULL, "%s", yerr);
        goto out;
    }
    rc = single_document(&p, docs, &root);
    if (rc == 0) {
        rc = parse_root(&p, kc, root);
    }
out:
    if (rc == -ENOMEM) {
        kc_err(err, rc, p.origin, NULL, "out of memory");
    }
    k8s_yaml_wipe(docs);
    json_decref(docs);
    if (rc != 0) {
        k8s_kubeconfig_free(kc);
        return rc;
    }
    *out = kc;
    return 0;
}

const char *k8s_kubeconfig_current_context(const struct k8s_kubeconfig *kc)
{
    return kc->current_context;
}

size_t k8s_kubeconfig_context_count(const struct k8s_kubeconfig *kc)
{
    return kc->lists[KC_CONTEXTS].n;
}

const char *k8s_kubeconfig_context_name(const struct k8s_kubeconfig *kc, size_t i)
{
    return i < kc->lists[KC_CONTEXTS].n ? kc_context_at(kc, i)->e.name : NULL;
}

/* --- selecting a context (pure) --- */

/* Finds the context to use and the cluster and user it names. */
static int kc_choose(const struct k8s_kubeconfig *kc, const char *context, struct kc_selection *sel,
                     char *err)
{
    const char *name = context;
    if (name == NULL || name[0] == '\0') {
        name = kc->current_context;
        if (name == NULL) {
            size_t n = kc->lists[KC_CONTEXTS].n;
            if (n == 0 && kc->lists[KC_CLUSTERS].n == 0 && kc->lists[KC_USERS].n == 0) {
                return kc_err(err, -ENOENT, kc->origin, "current-context",
                              "not set and no context was named: the kubeconfig is empty");
            }
            return kc_err(err, -ENOENT, kc->origin, "current-context",
                          "not set and no context was named (%zu context%s defined)", n,
                          n == 1 ? " is" : "s are");
        }
        sel->ctx = (const struct kc_context *)kc_find(kc, KC_CONTEXTS, name);
        if (sel->ctx == NULL) {
            return kc_err(err, -ENOENT, kc->current_origin, "current-context",
                          "context `%s' is not defined", name);
        }
    } else {
        sel->ctx = (const struct kc_context *)kc_find(kc, KC_CONTEXTS, name);
        if (sel->ctx == NULL) {
            return kc_err(err, -ENOENT, kc->origin, NULL, "context `%s' is not defined", name);
        }
    }
    const struct kc_context *c = sel->ctx;
    char field[KC_FIELD_LEN];
    field_printf(field, "contexts[%zu]", c->e.index);
    if (c->cluster == NULL) {
        return kc_err(err, -EINVAL, c->e.origin, field, "context `%s' names no cluster", c->e.name);
    }
    sel->cluster = (const struct kc_cluster *)kc_find(kc, KC_CLUSTERS, c->cluster);
    if (sel->cluster == NULL) {
        return kc_err(err, -EINVAL, c->e.origin, field,
                      "context `%s' names cluster `%s' which is not defined", c->e.name,
                      c->cluster);
    }
    sel->user = NULL;
    if (c->user != NULL) {
        sel->user = (const struct kc_user *)kc_find(kc, KC_USERS, c->user);
        if (sel->user == NULL) {
            return kc_err(err, -EINVAL, c->e.origin, field,
                          "context `%s' names user `%s' which is not defined", c->e.name, c->user);
        }
    }
    return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* client-go's validateClusterInfo plus its TLS rule (no CA together with insecure). */
static int check_cluster(const struct kc_cluster *c, char *err)
{
    char f[KC_FIELD_LEN], sf[KC_FIELD_LEN], inf[KC_FIELD_LEN];
    field_printf(f, "clusters[%zu].cluster", c->e.index);
    field_join(sf, f, "server");
    field_join(inf, f, "insecure-skip-tls-verify");
    if (c->server == NULL) {
        return kc_err(err, -EINVAL, c->e.origin, sf, "not set (cluster `%s')", c->e.name);
    }
    if (!has_prefix(c->server, "https://") && !has_prefix(c->server, "http://")) {
        return kc_err(err, -EINVAL, c->e.origin, sf, "`%s' does not start with https:// or http://",
                      c->server);
    }
    if (c->ca_file != NULL && c->ca_data != NULL) {
        return kc_err(err, -EINVAL, c->e.origin, f,
                      "certificate-authority and certificate-authority-data are both set");
    }
    if (c->is_insecure && (c->ca_file != NULL || c->ca_data != NULL)) {
        return kc_err(err, -EINVAL, c->e.origin, inf,
                      "true together with a certificate authority is not allowed");
    }
    return 0;
}

/* Resolves interactiveMode (client-go defaults it to IfAvailable for v1beta1 only). */
static int check_exec_interactive(const struct kc_user *u, const char *f,
                                  enum k8s_exec_interactive *mode, char *err)
{
    char mf[KC_FIELD_LEN];
    const char *m = u->exec_interactive;
    field_join(mf, f, "interactiveMode");
    if (m == NULL && strcmp(u->exec->api_version, K8S_EXEC_API_V1) == 0) {
        return kc_err(err, -EINVAL, u->e.origin, mf, "not set; apiVersion %s requires it",
                      K8S_EXEC_API_V1);
    }
    if (m == NULL || strcmp(m, "IfAvailable") == 0) {
        *mode = K8S_EXEC_INTERACTIVE_IF_AVAILABLE;
    } else if (strcmp(m, "Never") == 0) {
        *mode = K8S_EXEC_INTERACTIVE_NEVER;
    } else if (strcmp(m, "Always") == 0) {
        *mode = K8S_EXEC_INTERACTIVE_ALWAYS;
    } else {
        return kc_err(err, -EINVAL, u->e.origin, mf, "`%s' is not IfAvailable, Never or Always", m);
    }
    return 0;
}

static int check_exec(const struct kc_user *u, const char *user_field,
                      enum k8s_exec_interactive *mode, char *err)
{
    const struct k8s_exec_config *ex = u->exec;
    char f[KC_FIELD_LEN], af[KC_FIELD_LEN], cf[KC_FIELD_LEN];
    field_join(f, user_field, "exec");
    field_join(af, f, "apiVersion");
    field_join(cf, f, "command");
    if (ex->api_version == NULL) {
        return kc_err(err, -EINVAL, u->e.origin, af, "not set");
    }
    if (strcmp(ex->api_version, K8S_EXEC_API_V1) != 0 &&
        strcmp(ex->api_version, K8S_EXEC_API_V1BETA1) != 0) {
        return kc_err(err, -EINVAL, u->e.origin, af, "`%s' is not %s or %s", ex->api_version,
                      K8S_EXEC_API_V1, K8S_EXEC_API_V1BETA1);
    }
    if (ex->command == NULL) {
        return kc_err(err, -EINVAL, u->e.origin, cf, "not set");
    }
    for (size_t i = 0; i < ex->n_env; i++) {
        if (ex->env[i].name == NULL) {
            char nf[KC_FIELD_LEN];
            field_printf(nf, "%s.env[%zu].name", f, i);
            return kc_err(err, -EINVAL, u->e.origin, nf, "not set");
        }
    }
    return check_exec_interactive(u, f, mode, err);
}

/* client-go's validateAuthInfo, plus the features this client refuses. */
static int check_user(const struct kc_user *u, enum k8s_exec_interactive *mode, char *err)
{
    char f[KC_FIELD_LEN], xf[KC_FIELD_LEN];
    field_printf(f, "users[%zu].user", u->e.index);
    if (u->has_auth_provider) {
        field_join(xf, f, "auth-provider");
        return kc_err(err, -EINVAL, u->e.origin, xf,
                      "auth provider `%s' is not supported; use an exec credential plugin "
                      "(gke-gcloud-auth-plugin, kubelogin)",
                      u->auth_provider != NULL ? u->auth_provider : "");
    }
    if (u->impersonation != NULL) {
        field_join(xf, f, u->impersonation);
        return kc_err(err, -EINVAL, u->e.origin, xf, "impersonation is not supported");
    }
    if (u->cert_file != NULL && u->cert_data != NULL) {
        return kc_err(err, -EINVAL, u->e.origin, f,
                      "client-certificate and client-certificate-data are both set");
    }
    if (u->key_file != NULL && u->key_data != NULL) {
        return kc_err(err, -EINVAL, u->e.origin, f, "client-key and client-key-data are both set");
    }
    bool has_cert = u->cert_file != NULL || u->cert_data != NULL;
    bool has_key = u->key_file != NULL || u->key_data != NULL;
    if (has_cert != has_key) {
        return kc_err(err, -EINVAL, u->e.origin, f, "%s",
                      has_cert ? "a client certificate without client-key or client-key-data"
                               : "a client key without client-certificate or "
                                 "client-certificate-data");
    }
    if ((u->token != NULL || u->token_file != NULL) &&
        (u->username != NULL || u->password != NULL)) {
        return kc_err(err, -EINVAL, u->e.origin, f,
                      "a token and username/password are both set; only one authentication "
                      "method is allowed");
    }
    if (u->token != NULL && has_control(u->token, u->token_len)) {
        field_join(xf, f, "token");
        return kc_err(err, -EINVAL, u->e.origin, xf, "contains a control character");
    }
    return u->exec != NULL ? check_exec(u, f, mode, err) : 0;
}

/* Deep copy of a user's exec settings with the resolved mode and the cluster's extension. */
static int copy_exec(const struct k8s_exec_config *src, enum k8s_exec_interactive mode,
                     const char *cluster_config, struct k8s_exec_config **out)
{
    struct k8s_exec_config *ex = calloc(1, sizeof(*ex));
    int rc = ex == NULL ? -ENOMEM : 0;
    if (rc == 0 && src->n_args > 0) {
        ex->args = calloc(src->n_args, sizeof(*ex->args));
        rc = ex->args == NULL ? -ENOMEM : 0;
    }
    if (rc == 0 && src->n_env > 0) {
        ex->env = calloc(src->n_env, sizeof(*ex->env));
        rc = ex->env == NULL ? -ENOMEM : 0;
    }
    for (size_t i = 0; rc == 0 && i < src->n_args; i++) {
        rc = dup_opt(src->args[i], &ex->args[ex->n_args++]);
    }
    for (size_t i = 0; rc == 0 && i < src->n_env; i++) {
        struct k8s_exec_env *e = &ex->env[ex->n_env++];
        rc = dup_opt(src->env[i].name, &e->name);
        rc = rc == 0 ? dup_opt(src->env[i].value, &e->value) : rc;
    }
    if (rc == 0) {
        ex->interactive_mode = mode;
        ex->is_cluster_info_provided = src->is_cluster_info_provided;
        ex->timeout_ms = K8S_EXEC_TIMEOUT_MS;
        rc = dup_opt(src->api_version, &ex->api_version);
        rc = rc == 0 ? dup_opt(src->command, &ex->command) : rc;
        rc = rc == 0 ? dup_opt(src->install_hint, &ex->install_hint) : rc;
        rc = rc == 0 ? dup_opt(cluster_config, &ex->cluster_config_json) : rc;
    }
    if (rc != 0) {
        exec_free(ex);
        return -ENOMEM;
    }
    *out = ex;
    return 0;
}

static int build_user(const struct kc_selection *sel, struct k8s_config *cfg)
{
    const struct kc_user *u = sel->user;
    int rc = dup_opt(u->e.name, &cfg->user_name);
    rc = rc == 0 ? dup_opt(u->cert_file, &cfg->cert_file) : rc;
    rc = rc == 0 ? dup_bytes(u->cert_data, u->cert_data_len, &cfg->cert_data) : rc;
    rc = rc == 0 ? dup_opt(u->key_file, &cfg->key_file) : rc;
    rc = rc == 0 ? dup_bytes(u->key_data, u->key_data_len, &cfg->key_data) : rc;
    cfg->key_data_len = cfg->key_data != NULL ? u->key_data_len : 0;
    rc = rc == 0 ? dup_opt(u->token, &cfg->token) : rc;
    cfg->token_len = cfg->token != NULL ? u->token_len : 0;
    rc = rc == 0 ? dup_opt(u->token_file, &cfg->token_file) : rc;
    rc = rc == 0 ? dup_opt(u->username, &cfg->username) : rc;
    rc = rc == 0 ? dup_opt(u->password, &cfg->password) : rc;
    if (rc == 0 && u->exec != NULL) {
        rc = copy_exec(u->exec, sel->interactive, sel->cluster->exec_config, &cfg->exec);
    }
    cfg->cert_data_len = cfg->cert_data != NULL ? u->cert_data_len : 0;
    return rc;
}

static int build_config(const struct kc_selection *sel, struct k8s_config **out)
{
    const struct kc_cluster *c = sel->cluster;
    struct k8s_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        return -ENOMEM;
    }
    cfg->is_insecure = c->is_insecure;
    cfg->is_compression_disabled = c->is_compression_disabled;
    int rc = dup_opt(c->server, &cfg->server);
    rc = rc == 0 ? dup_opt(c->tls_server_name, &cfg->tls_server_name) : rc;
    rc = rc == 0 ? dup_opt(c->proxy_url, &cfg->proxy_url) : rc;
    rc = rc == 0 ? dup_opt(c->ca_file, &cfg->ca_file) : rc;
    rc = rc == 0 ? dup_bytes(c->ca_data, c->ca_data_len, &cfg->ca_data) : rc;
    cfg->ca_data_len = cfg->ca_data != NULL ? c->ca_data_len : 0;
    rc = rc == 0 ? dup_opt(sel->ctx->e.name, &cfg->context_name) : rc;
    rc = rc == 0 ? dup_opt(c->e.name, &cfg->cluster_name) : rc;
    rc = rc == 0
             ? dup_opt(sel->ctx->namespace != NULL ? sel->ctx->namespace : K8S_DEFAULT_NAMESPACE,
                       &cfg->namespace)
             : rc;
    if (rc == 0 && sel->user != NULL) {
        rc = build_user(sel, cfg);
    }
    if (rc != 0) {
        k8s_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* Chooses, checks and builds; *sel describes the entries used. */
static int kc_select(const struct k8s_kubeconfig *kc, const char *context, struct kc_selection *sel,
                     struct k8s_config **out, char *err)
{
    memset(sel, 0, sizeof(*sel));
    int rc = kc_choose(kc, context, sel, err);
    if (rc == 0) {
        rc = check_cluster(sel->cluster, err);
    }
    if (rc == 0 && sel->user != NULL) {
        rc = check_user(sel->user, &sel->interactive, err);
    }
    if (rc == 0) {
        rc = build_config(sel, out);
        if (rc != 0) {
            kc_err(err, rc, kc->origin, NULL, "out of memory");
        }
    }
    return rc;
}

int k8s_kubeconfig_select(const struct k8s_kubeconfig *kc, const char *context,
                          struct k8s_config **out, char *err)
{
    struct kc_selection sel;
    *out = NULL;
    return kc_select(kc, context, &sel, out, err);
}

/* --- files and paths --- */

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + (int64_t)st->st_mtim.tv_nsec;
}

/* Reads path whole, at most max bytes, into *out (NUL-terminated, *out_len bytes before the
 * NUL) and its fstat into *st. Pipes work too. The bytes may be secret: release them with
 * free_secret(*out, *out_len + 1). Returns 0 or negative errno; -EMSGSIZE past max. */
static int read_file(const char *path, size_t max, char **out, size_t *out_len, struct stat *st)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, st) != 0) {
        rc = -errno;
        goto out;
    }
    if (S_ISDIR(st->st_mode)) {
        rc = -EISDIR;
        goto out;
    }
    cap = st->st_size > 0 && (uint64_t)st->st_size <= max ? (size_t)st->st_size + 2 : 4096;
    cap = cap > max + 2 ? max + 2 : cap;
    buf = malloc(cap);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (len > max) {
                rc = -EMSGSIZE;
                goto out;
            }
            size_t ncap = cap <= (max + 2) / 2 ? cap * 2 : max + 2;
            char *nb = malloc(ncap);
            if (nb == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            memcpy(nb, buf, len);
            free_secret(buf, cap);
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
out:
    free_secret(buf, cap);
    close(fd);
    return rc;
}

/* Go's filepath.Clean of an absolute path, in place: no empty, `.' or `..' elements. */
static void path_clean(char *p)
{
    size_t n = strlen(p), r = 1, w = 1;
    while (r < n) {
        if (p[r] == '/') {
            r++;
        } else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
            r++;
        } else if (p[r] == '.' && p[r + 1] == '.' && (r + 2 == n || p[r + 2] == '/')) {
            r += 2;
            if (w > 1) {
                w--;
                while (w > 1 && p[w] != '/') {
                    w--;
                }
            }
        } else {
            if (w != 1) {
                p[w++] = '/';
            }
            while (r < n && p[r] != '/') {
                p[w++] = p[r++];
            }
        }
    }
    p[w] = '\0';
}

/* The absolute, clean directory of file (a relative file is taken from the working
 * directory), as client-go's filepath.Abs(filepath.Dir(file)). */
static int abs_dir(const char *file, char **out)
{
    char *abs = NULL;
    *out = NULL;
    if (file[0] == '/') {
        abs = strdup(file);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (cwd == NULL) {
            return errno == ENOMEM ? -ENOMEM : -errno;
        }
        abs = concat3(cwd, "/", file);
        free(cwd);
    }
    if (abs == NULL) {
        return -ENOMEM;
    }
    path_clean(abs);
    char *slash = strrchr(abs, '/');
    slash[slash == abs ? 1 : 0] = '\0';
    *out = abs;
    return 0;
}

/* client-go's ResolvePaths: a relative path becomes filepath.Join(dir, path). */
static int resolve_one(char **path, const char *dir)
{
    if (*path == NULL || (*path)[0] == '/') {
        return 0;
    }
    char *joined = concat3(dir, "/", *path);
    if (joined == NULL) {
        return -ENOMEM;
    }
    path_clean(joined);
    free(*path);
    *path = joined;
    return 0;
}

static int resolve_paths(struct k8s_kubeconfig *kc, const char *file, char *err)
{
    char *dir = NULL;
    int rc = abs_dir(file, &dir);
    if (rc != 0) {
        return kc_err(err, rc, file, NULL, "cannot make its directory absolute: %s",
                      dc_strerror(rc));
    }
    for (size_t i = 0; rc == 0 && i < kc->lists[KC_CLUSTERS].n; i++) {
        rc = resolve_one(&kc_cluster_at(kc, i)->ca_file, dir);
    }
    for (size_t i = 0; rc == 0 && i < kc->lists[KC_USERS].n; i++) {
        struct kc_user *u = kc_user_at(kc, i);
        rc = resolve_one(&u->cert_file, dir);
        rc = rc == 0 ? resolve_one(&u->key_file, dir) : rc;
        rc = rc == 0 ? resolve_one(&u->token_file, dir) : rc;
        /* Only a command with a '/' is a path; a bare name is looked up in PATH. */
        if (rc == 0 && u->exec != NULL && u->exec->command != NULL &&
            strchr(u->exec->command, '/') != NULL) {
            rc = resolve_one(&u->exec->command, dir);
        }
    }
    free(dir);
    return rc != 0 ? kc_err(err, rc, file, NULL, "out of memory") : 0;
}

/* Moves the entries of src whose names dst lacks into dst (the first file wins, whole entry),
 * and src's current-context when dst has none. The caller frees src. */
static int kc_merge(struct k8s_kubeconfig *dst, struct k8s_kubeconfig *src)
{
    for (int l = 0; l < KC_N_LISTS; l++) {
        for (size_t i = 0; i < src->lists[l].n; i++) {
            struct kc_entry *e = kc_at(src, (enum kc_list)l, i);
            if (e->name == NULL || kc_find(dst, (enum kc_list)l, e->name) != NULL) {
                continue;
            }
            struct kc_entry *slot = kc_room(dst, (enum kc_list)l);
            if (slot == NULL) {
                return -ENOMEM;
            }
            memcpy(slot, e, kc_item_size[l]);
            memset(e, 0, kc_item_size[l]);
            dst->lists[l].n++;
        }
    }
    if (dst->current_context == NULL && src->current_context != NULL) {
        dst->current_context = src->current_context;
        dst->current_origin = src->current_origin;
        src->current_context = NULL;
        src->current_origin = NULL;
    }
    return 0;
}

/* Reads, parses and resolves one file. -ENOENT (err untouched) when it does not exist. */
static int load_file(const char *path, struct k8s_kubeconfig **out, char *err)
{
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    *out = NULL;
    int rc = read_file(path, K8S_KUBECONFIG_MAX_LEN, &text, &len, &st);
    if (rc == -ENOENT) {
        return rc;
    }
    if (rc == -EMSGSIZE) {
        return kc_err(err, rc, path, NULL, "larger than %u bytes", K8S_KUBECONFIG_MAX_LEN);
    }
    if (rc != 0) {
        return kc_err(err, rc, path, NULL, "cannot read: %s", dc_strerror(rc));
    }
    rc = k8s_kubeconfig_parse(text, len, path, out, err);
    free_secret(text, len + 1);
    if (rc == 0) {
        rc = resolve_paths(*out, path, err);
    }
    if (rc != 0) {
        k8s_kubeconfig_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Loads and merges every file of a ':'-separated list (empty entries and repeats ignored,
 * missing files skipped); *n_loaded counts the files that existed. */
static int load_list(const char *paths, struct k8s_kubeconfig **out, size_t *n_loaded, char *err)
{
    struct k8s_kubeconfig *merged = calloc(1, sizeof(*merged)), *one = NULL;
    char *copy = strdup(paths), *next = copy;
    int rc = merged == NULL || copy == NULL ? -ENOMEM : dup_opt(paths, &merged->origin);
    *out = NULL;
    *n_loaded = 0;
    while (rc == 0 && next != NULL) {
        char *entry = next, *colon = strchr(next, ':');
        next = colon != NULL ? colon + 1 : NULL;
        if (colon != NULL) {
            *colon = '\0';
        }
        bool is_repeat = false;
        for (char *q = copy; q < entry && !is_repeat; q += strlen(q) + 1) {
            is_repeat = strcmp(q, entry) == 0;
        }
        if (entry[0] == '\0' || is_repeat) {
            continue;
        }
        rc = load_file(entry, &one, err);
        if (rc == -ENOENT) {
            rc = 0;
            continue;
        }
        rc = rc == 0 ? kc_merge(merged, one) : rc;
        *n_loaded += rc == 0 ? 1 : 0;
        k8s_kubeconfig_free(one);
        one = NULL;
    }
    if (rc == -ENOMEM) {
        kc_err(err, rc, paths, NULL, "out of memory");
    }
    free(copy);
    if (rc != 0) {
        k8s_kubeconfig_free(merged);
        return rc;
    }
    *out = merged;
    return 0;
}

/* --- bearer tokens --- */

/* Reads a token file: the trimmed token goes to a new *tok. why (DC_ERR_LEN) gets the
 * reason of a failure, without the path. */
static int token_read(const char *path, char **tok, size_t *tok_len, struct stat *st, char *why)
{
    char *buf = NULL;
    size_t len = 0, start = 0, n = 0;
    int rc = read_file(path, K8S_TOKEN_MAX_LEN, &buf, &len, st);
    if (rc == -EMSGSIZE) {
        return dc_err_set(why, rc, "larger than %u bytes", K8S_TOKEN_MAX_LEN);
    }
    if (rc != 0) {
        return dc_err_set(why, rc, "%s", dc_strerror(rc));
    }
    trim_span(buf, len, &start, &n);
    if (n == 0) {
        rc = dc_err_set(why, -EINVAL, "the file is empty");
    } else if (has_control(buf + start, n)) {
        rc = dc_err_set(why, -EINVAL, "the token contains a control character");
    } else {
        *tok = strndup(buf + start, n);
        *tok_len = n;
        rc = *tok == NULL ? dc_err_set(why, -ENOMEM, "out of memory") : 0;
    }
    free_secret(buf, len + 1);
    return rc;
}

/* Re-reads cfg->token_file into cfg->token and records the attempt in the stamp. */
static int token_refresh(struct k8s_config *cfg, char *why)
{
    char *tok = NULL;
    size_t n = 0;
    struct stat st;
    uint64_t now = dc_now_ms();
    int rc = token_read(cfg->token_file, &tok, &n, &st, why);
    cfg->token_stamp.read_ms = now;
    if (rc != 0) {
        cfg->token_stamp.is_stale = true;
        return rc;
    }
    free_secret(cfg->token, cfg->token_len);
    cfg->token = tok;
    cfg->token_len = n;
    cfg->token_stamp = (struct k8s_token_stamp){
        .is_valid = true,
        .dev = st.st_dev,
        .ino = st.st_ino,
        .size = st.st_size,
        .mtime_ns = mtime_ns(&st),
        .read_ms = now,
    };
    return 0;
}

static bool token_is_due(const struct k8s_config *cfg, uint64_t now)
{
    const struct k8s_token_stamp *s = &cfg->token_stamp;
    struct stat st;
    if (s->is_stale) {
        return now - s->read_ms >= K8S_TOKEN_RETRY_MS;
    }
    if (!s->is_valid || now - s->read_ms >= K8S_TOKEN_REREAD_MS) {
        return true;
    }
    if (stat(cfg->token_file, &st) != 0) {
        return true;
    }
    return st.st_dev != s->dev || st.st_ino != s->ino || st.st_size != s->size ||
           mtime_ns(&st) != s->mtime_ns;
}

int k8s_config_token(struct k8s_config *cfg, char *out, size_t len, char *err)
{
    if (err != NULL) {
        err[0] = '\0';
    }
    if (cfg->token_file != NULL && token_is_due(cfg, dc_now_ms())) {
        char why[DC_ERR_LEN];
        int rc = token_refresh(cfg, why);
        if (rc != 0 && (cfg->token == NULL || rc == -ENOMEM)) {
            return dc_err_set(err, rc, "token file `%s': %s", cfg->token_file, why);
        }
        if (rc != 0) {
            dc_err_set(err, 0, "token file `%s': %s; keeping the previous token", cfg->token_file,
                       why);
        }
    }
    size_t n = cfg->token != NULL ? cfg->token_len : 0;
    if (len == 0 || n > len - 1) {
        return dc_err_set(err, -EMSGSIZE, "the bearer token (%zu bytes) does not fit in %zu bytes",
                          n, len);
    }
    if (n > 0) {
        memcpy(out, cfg->token, n);
    }
    out[n] = '\0';
    return 0;
}

/* --- loading --- */

static int check_readable(const char *path, const char *origin, const char *field, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int rc = -errno;
        return kc_err(err, rc, origin, field, "cannot read `%s': %s", path, dc_strerror(rc));
    }
    close(fd);
    return 0;
}

/* The I/O half of client-go's checks: the selected files can be opened, and a token file
 * without an inline token can be read (client-go reads it when building the client). */
static int check_files(const struct kc_selection *sel, struct k8s_config *cfg, char *err)
{
    char f[KC_FIELD_LEN], uf[KC_FIELD_LEN], xf[KC_FIELD_LEN];
    int rc = 0;
    field_printf(f, "clusters[%zu].cluster.certificate-authority", sel->cluster->e.index);
    if (cfg->ca_file != NULL) {
        rc = check_readable(cfg->ca_file, sel->cluster->e.origin, f, err);
    }
    if (rc != 0 || sel->user == NULL) {
        return rc;
    }
    const char *origin = sel->user->e.origin;
    field_printf(uf, "users[%zu].user", sel->user->e.index);
    if (cfg->cert_file != NULL) {
        field_join(xf, uf, "client-certificate");
        rc = check_readable(cfg->cert_file, origin, xf, err);
    }
    if (rc == 0 && cfg->key_file != NULL) {
        field_join(xf, uf, "client-key");
        rc = check_readable(cfg->key_file, origin, xf, err);
    }
    if (rc == 0 && cfg->token_file != NULL) {
        char why[DC_ERR_LEN];
        field_join(xf, uf, "tokenFile");
        int trc = token_refresh(cfg, why);
        if (trc != 0 && (cfg->token == NULL || trc == -ENOMEM)) {
            rc = kc_err(err, trc, origin, xf, "`%s': %s", cfg->token_file, why);
        }
    }
    return rc;
}

static int load_selected(const struct k8s_kubeconfig *kc, const char *context,
                         struct k8s_config **out, char *err)
{
    struct kc_selection sel;
    struct k8s_config *cfg = NULL;
    int rc = kc_select(kc, context, &sel, &cfg, err);
    if (rc == 0) {
        rc = check_files(&sel, cfg, err);
    }
    if (rc != 0) {
        k8s_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int k8s_config_load_kubeconfig(const char *paths, const char *context, struct k8s_config **out,
                               char *err)
{
    struct k8s_kubeconfig *kc = NULL;
    size_t n = 0;
    *out = NULL;
    if (paths == NULL || paths[0] == '\0') {
        return dc_err_set(err, -EINVAL, "kubeconfig: no path given");
    }
    int rc = load_list(paths, &kc, &n, err);
    if (rc == 0 && n == 0) {
        rc = strchr(paths, ':') != NULL
                 ? kc_err(err, -ENOENT, paths, NULL, "none of these files exists")
                 : kc_err(err, -ENOENT, paths, NULL, "%s", dc_strerror(ENOENT));
    }
    if (rc == 0) {
        rc = load_selected(kc, context, out, err);
    }
    k8s_kubeconfig_free(kc);
    return rc;
}

/* A decimal TCP port, 1..65535. */
static bool is_port(const char *s)
{
    if (s[0] < '0' || s[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= 65535;
}

/* A host name or IP literal that can go between "https://" and ":port". */
static bool is_host(const char *s)
{
    for (const char *c = s; *c != '\0'; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch <= 0x20 || ch == 0x7f || strchr("/?#@[]\\", ch) != NULL) {
            return false;
        }
    }
    return s[0] != '\0';
}

/* clientcmd's in-cluster Namespace(): POD_NAMESPACE, the namespace file, "default". */
static int in_cluster_namespace(const char *dir, char **out)
{
    const char *env = getenv("POD_NAMESPACE");
    char *path = NULL, *buf = NULL;
    size_t len = 0, start = 0, n = 0;
    struct stat st;
    *out = NULL;
    if (env != NULL && env[0] != '\0') {
        return dup_opt(env, out);
    }
    path = concat3(dir, "/", "namespace");
    if (path == NULL) {
        return -ENOMEM;
    }
    int rc = read_file(path, KC_NAMESPACE_MAX_LEN, &buf, &len, &st);
    if (rc == 0) {
        trim_span(buf, len, &start, &n);
        if (n > 0 && !has_control(buf + start, n)) {
            *out = strndup(buf + start, n);
            rc = *out == NULL ? -ENOMEM : 0;
        }
        free(buf);
    }
    free(path);
    if (rc == -ENOMEM) {
        return rc;
    }
    return *out != NULL ? 0 : dup_opt(K8S_DEFAULT_NAMESPACE, out);
}

static int in_cluster_server(const char *host, const char *port, char **out)
{
    bool is_v6 = strchr(host, ':') != NULL;
    size_t size = strlen("https://[]:") + strlen(host) + strlen(port) + 1;
    *out = malloc(size);
    if (*out == NULL) {
        return -ENOMEM;
    }
    int n =
        snprintf(*out, size, "https://%s%s%s:%s", is_v6 ? "[" : "", host, is_v6 ? "]" : "", port);
    return n > 0 && (size_t)n < size ? 0 : -EINVAL;
}

int k8s_config_load_in_cluster(const char *sa_dir, struct k8s_config **out, char *err)
{
    const char *dir = sa_dir != NULL ? sa_dir : K8S_SA_DIR;
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    char why[DC_ERR_LEN], *ca = NULL;
    struct k8s_config *cfg = NULL;
    int rc = 0;
    *out = NULL;
    if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
        return dc_err_set(err, -ENOENT,
                          "in-cluster config: KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT must be set");
    }
    if (!is_port(port)) {
        return dc_err_set(err, -EINVAL,
                          "in-cluster config: KUBERNETES_SERVICE_PORT: `%s' is not a port number",
                          port);
    }
    if (!is_host(host)) {
        return dc_err_set(err, -EINVAL,
                          "in-cluster config: KUBERNETES_SERVICE_HOST: `%s' is not a host name "
                          "or IP address",
                          host);
    }
    cfg = calloc(1, sizeof(*cfg));
    ca = concat3(dir, "/", "ca.crt");
    if (cfg != NULL) {
        cfg->token_file = concat3(dir, "/", "token");
    }
    if (cfg == NULL || ca == NULL || cfg->token_file == NULL ||
        in_cluster_server(host, port, &cfg->server) != 0) {
        rc = dc_err_set(err, -ENOMEM, "in-cluster config: out of memory");
        goto out;
    }
    rc = token_refresh(cfg, why);
    if (rc != 0) {
        rc = dc_err_set(err, rc, "in-cluster config: token file `%s': %s", cfg->token_file, why);
        goto out;
    }
    int fd = open(ca, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd >= 0) {
        close(fd);
        cfg->ca_file = ca;
        ca = NULL;
    }
    rc = in_cluster_namespace(dir, &cfg->namespace);
    if (rc != 0) {
        rc = dc_err_set(err, rc, "in-cluster config: out of memory");
    }
out:
    free(ca);
    if (rc != 0) {
        k8s_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* clientcmd's inClusterClientConfig.Possible(): the variables and the token file exist. */
static bool in_cluster_possible(const char *sa_dir)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
        return false;
    }
    char *token = concat3(sa_dir != NULL ? sa_dir : K8S_SA_DIR, "/", "token");
    struct stat st;
    bool ok = token != NULL && stat(token, &st) == 0;
    free(token);
    return ok;
}

int k8s_config_load_default(const char *context, const char *sa_dir, struct k8s_config **out,
                            char *err)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME"), *paths = NULL;
    char *home_path = NULL;
    struct k8s_kubeconfig *kc = NULL;
    size_t n = 0;
    int rc = 0;
    *out = NULL;
    if (env != NULL && env[0] != '\0') {
        paths = env;
    } else if (home != NULL && home[0] != '\0') {
        home_path = concat3(home, "/", ".kube/config");
        paths = home_path;
        rc = home_path == NULL ? dc_err_set(err, -ENOMEM, "kubeconfig: out of memory") : 0;
    }
    if (rc == 0 && paths != NULL) {
        rc = load_list(paths, &kc, &n, err);
    }
    if (rc != 0) {
        goto out;
    }
    bool has_context =
        (context != NULL && context[0] != '\0') || (kc != NULL && kc->current_context != NULL);
    if (!has_context && in_cluster_possible(sa_dir)) {
        rc = k8s_config_load_in_cluster(sa_dir, out, err);
    } else if (n == 0) {
        rc = dc_err_set(err, -ENOENT,
                        "no Kubernetes configuration: no kubeconfig in `%s' and not in a cluster "
                        "(KUBERNETES_SERVICE_HOST/PORT or `%s/token' missing)",
                        paths != NULL ? paths : "$HOME/.kube/config",
                        sa_dir != NULL ? sa_dir : K8S_SA_DIR);
    } else {
        rc = load_selected(kc, context, out, err);
    }
out:
    free(home_path);
    k8s_kubeconfig_free(kc);
    return rc;
}

/* --- exec credential plugins --- */

/* One run of a plugin. */
struct exec_run {
    pid_t pid;          /* the child, or 0 */
    bool is_reaped;     /* waitpid() collected it */
    int status;         /* its wait status once reaped */
    int out_fd, err_fd; /* read ends of its stdout and stderr, or -1 */
    char *out;          /* owned; stdout bytes, secret */
    size_t out_len, out_cap;
    char errtext[K8S_EXEC_MAX_STDERR_LEN + 1]; /* first bytes of stderr, NUL-terminated */
    size_t err_len;
};

/* Base64 (standard, padded) of the cluster's CA for spec.cluster.certificate-authority-data;
 * client-go reads a CA file into bytes for this too. */
static int exec_ca_base64(const struct k8s_config *cfg, char **out, char *err)
{
    const uint8_t *ca = cfg->ca_data;
    size_t ca_len = cfg->ca_data_len, len = 0;
    char *file = NULL;
    struct stat st;
    *out = NULL;
    if (ca == NULL && cfg->ca_file == NULL) {
        return 0;
    }
    if (ca == NULL) {
        int rc = read_file(cfg->ca_file, K8S_KUBECONFIG_MAX_LEN, &file, &len, &st);
        if (rc != 0) {
            return dc_err_set(err, rc,
                              "exec plugin `%s': cannot read certificate-authority `%s': %s",
                              cfg->exec->command, cfg->ca_file, dc_strerror(rc));
        }
        ca = (const uint8_t *)file;
        ca_len = len;
    }
    size_t b64_len = sodium_base64_ENCODED_LEN(ca_len, sodium_base64_VARIANT_ORIGINAL);
    *out = malloc(b64_len);
    if (*out != NULL) {
        sodium_bin2base64(*out, b64_len, ca, ca_len, sodium_base64_VARIANT_ORIGINAL);
    }
    free(file);
    return *out == NULL ? dc_err_set(err, -ENOMEM, "exec plugin: out of memory") : 0;
}

/* spec.cluster of KUBERNETES_EXEC_INFO (client.authentication.k8s.io Cluster). */
static int exec_cluster_json(const struct k8s_config *cfg, json_t *spec, char *err)
{
    char *ca = NULL;
    json_t *cluster = json_object(), *config = NULL;
    int rc = exec_ca_base64(cfg, &ca, err), bad = cluster == NULL;
    if (rc != 0) {
        json_decref(cluster);
        return rc;
    }
    bad |= json_object_set_new(cluster, "server", json_string(cfg->server));
    if (cfg->tls_server_name != NULL) {
        bad |= json_object_set_new(cluster, "tls-server-name", json_string(cfg->tls_server_name));
    }
    if (cfg->is_insecure) {
        bad |= json_object_set_new(cluster, "insecure-skip-tls-verify", json_true());
    }
    if (ca != NULL) {
        bad |= json_object_set_new(cluster, "certificate-authority-data", json_string(ca));
    }
    if (cfg->proxy_url != NULL) {
        bad |= json_object_set_new(cluster, "proxy-url", json_string(cfg->proxy_url));
    }
    if (cfg->is_compression_disabled) {
        bad |= json_object_set_new(cluster, "disable-compression", json_true());
    }
    if (cfg->exec->cluster_config_json != NULL) {
        config = json_loads(cfg->exec->cluster_config_json, JSON_DECODE_ANY, NULL);
        bad |= json_object_set_new(cluster, "config", config);
    }
    bad |= json_object_set_new(spec, "cluster", cluster);
    free(ca);
    return bad != 0 ? dc_err_set(err, -ENOMEM, "exec plugin: out of memory") : 0;
}

/* The ExecCredential input, as client-go encodes it for the configured apiVersion. */
static int exec_info(const struct k8s_config *cfg, char **out, char *err)
{
    json_t *root = json_object(), *spec = json_object();
    int rc = 0, bad = root == NULL || spec == NULL;
    *out = NULL;
    if (!bad && cfg->exec->is_cluster_info_provided) {
        rc = exec_cluster_json(cfg, spec, err);
    }
    if (rc == 0) {
        bad |= json_object_set_new(spec, "interactive", json_false());
        bad |= json_object_set_new(root, "kind", json_string("ExecCredential"));
        bad |= json_object_set_new(root, "apiVersion", json_string(cfg->exec->api_version));
        bad |= json_object_set(root, "spec", spec);
        *out = bad ? NULL : json_dumps(root, JSON_COMPACT);
        rc = *out == NULL ? dc_err_set(err, -ENOMEM, "exec plugin: out of memory") : 0;
    }
    json_decref(spec);
    json_decref(root);
    return rc;
}

static bool env_name_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* True when the configured env (from index `from' on) or KUBERNETES_EXEC_INFO sets the
 * variable of entry ("NAME=value"): later settings win, as in Go's os/exec. */
static bool env_overridden(const struct k8s_exec_config *ex, const char *entry, size_t from)
{
    if (env_name_is(entry, KC_EXEC_INFO_ENV)) {
        return true;
    }
    for (size_t i = from; i < ex->n_env; i++) {
        if (env_name_is(entry, ex->env[i].name)) {
            return true;
        }
    }
    return false;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free_secret_str(v[i]);
    }
    free(v);
}

/* This process's environment, then the configured env, then KUBERNETES_EXEC_INFO. */
static char **exec_envp(const struct k8s_exec_config *ex, const char *info)
{
    size_t n = 0, k = 0;
    while (environ != NULL && environ[n] != NULL) {
        n++;
    }
    char **envp = calloc(n + ex->n_env + 2, sizeof(*envp));
    bool ok = envp != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        if (!env_overridden(ex, environ[i], 0)) {
            ok = (envp[k++] = strdup(environ[i])) != NULL;
        }
    }
    for (size_t i = 0; ok && i < ex->n_env; i++) {
        char *entry = concat3(ex->env[i].name, "=", ex->env[i].value);
        ok = entry != NULL;
        if (ok && env_overridden(ex, entry, i + 1)) {
            free_secret_str(entry);
        } else if (ok) {
            envp[k++] = entry;
        }
    }
    if (ok) {
        ok = (envp[k++] = concat3(KC_EXEC_INFO_ENV, "=", info)) != NULL;
    }
    if (!ok) {
        strv_free(envp);
        return NULL;
    }
    return envp;
}

/* In the child: stdio from /dev/null and the pipes, default signal state, then the plugin.
 * Only async-signal-safe calls; the parent learns of an exec failure through st_fd. */
__attribute__((noreturn)) static void exec_child(int null_fd, int out_fd, int err_fd, int st_fd,
                                                 const char *cmd, char **argv, char **envp)
{
    sigset_t none;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&none);
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &none, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    /* Move the three fds above 2 first, so none is overwritten by another's dup2. */
    int in = fcntl(null_fd, F_DUPFD_CLOEXEC, 3), o = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
    int e = fcntl(err_fd, F_DUPFD_CLOEXEC, 3);
    if (in >= 0 && o >= 0 && e >= 0 && dup2(in, 0) == 0 && dup2(o, 1) == 1 && dup2(e, 2) == 2) {
        execvpe(cmd, argv, envp);
    }
    int code = errno;
    ssize_t w = write(st_fd, &code, sizeof(code));
    (void)w;
    _exit(127);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int exec_not_started(const struct k8s_exec_config *ex, int code, char *err)
{
    if (code == ENOENT) {
        return dc_err_set(err, -ENOENT, "exec plugin `%s': not found%s%s", ex->command,
                          ex->install_hint != NULL ? "; " : "",
                          ex->install_hint != NULL ? ex->install_hint : "");
    }
    return dc_err_set(err, -code, "exec plugin `%s': cannot run it: %s", ex->command,
                      dc_strerror(code));
}

/* Starts the plugin with its stdout and stderr on pipes; r->pid is set once it is forked. */
static int exec_spawn(const struct k8s_exec_config *ex, char **argv, char **envp,
                      struct exec_run *r, char *err)
{
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1}, st_p[2] = {-1, -1}, null_fd = -1, rc = 0;
    if (pipe2(out_p, O_CLOEXEC) == 0 && pipe2(err_p, O_CLOEXEC) == 0 &&
        pipe2(st_p, O_CLOEXEC) == 0) {
        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (null_fd < 0) {
        rc = -errno;
        dc_err_set(err, rc, "exec plugin `%s': pipe: %s", ex->command, dc_strerror(rc));
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        dc_err_set(err, rc, "exec plugin `%s': fork: %s", ex->command, dc_strerror(rc));
        goto out;
    }
    if (pid == 0) {
        exec_child(null_fd, out_p[1], err_p[1], st_p[1], ex->command, argv, envp);
    }
    r->pid = pid;
    setpgid(pid, pid); /* also in the child: whichever runs first wins the race */
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    close_fd(&st_p[1]);
    r->out_fd = out_p[0];
    r->err_fd = err_p[0];
    out_p[0] = err_p[0] = -1;
    int code = 0;
    ssize_t n;
    do {
        n = read(st_p[0], &code, sizeof(code));
    } while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(code)) {
        rc = exec_not_started(ex, code, err);
    }
out:
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    close_fd(&st_p[0]);
    close_fd(&st_p[1]);
    close_fd(&null_fd);
    return rc;
}

/* Appends stdout bytes, growing the secret buffer (old copies wiped). */
static int exec_keep_out(struct exec_run *r, const char *p, size_t n)
{
    if (n > K8S_EXEC_MAX_OUTPUT_LEN - r->out_len) {
        return -EMSGSIZE;
    }
    if (r->out_len + n + 1 > r->out_cap) {
        size_t cap = r->out_cap == 0 ? 4096 : r->out_cap;
        while (cap < r->out_len + n + 1) {
            cap *= 2;
        }
        char *nb = malloc(cap);
        if (nb == NULL) {
            return -ENOMEM;
        }
        if (r->out_len > 0) {
            memcpy(nb, r->out, r->out_len);
        }
        free_secret(r->out, r->out_cap);
        r->out = nb;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
    r->out[r->out_len] = '\0';
    return 0;
}

/* Reads what is ready on *fd into the run; closes *fd at EOF. */
static int exec_drain(struct exec_run *r, int *fd, bool is_stdout)
{
    char chunk[4096];
    ssize_t n = read(*fd, chunk, sizeof(chunk));
    int rc = 0;
    if (n < 0) {
        rc = errno == EINTR || errno == EAGAIN ? 0 : -errno;
    } else if (n == 0) {
        close_fd(fd);
    } else if (is_stdout) {
        rc = exec_keep_out(r, chunk, (size_t)n);
    } else {
        size_t room = K8S_EXEC_MAX_STDERR_LEN - r->err_len,
               take = (size_t)n < room ? (size_t)n : room;
        memcpy(r->errtext + r->err_len, chunk, take);
        r->err_len += take;
        r->errtext[r->err_len] = '\0';
    }
    sodium_memzero(chunk, sizeof(chunk));
    return rc;
}

/* Collects stdout and stderr until both close and the child has exited, or the deadline. */
static int exec_collect(struct exec_run *r, uint64_t deadline_ms)
{
    while (r->out_fd >= 0 || r->err_fd >= 0 || !r->is_reaped) {
        uint64_t now = dc_now_ms();
        if (now >= deadline_ms) {
            return -ETIMEDOUT;
        }
        int wait_ms = deadline_ms - now > INT_MAX ? INT_MAX : (int)(deadline_ms - now);
        if (r->out_fd < 0 && r->err_fd < 0) {
            pid_t w = waitpid(r->pid, &r->status, WNOHANG);
            if (w < 0 && errno != EINTR) {
                return -errno;
            }
            r->is_reaped = w == r->pid;
            struct timespec nap = {0, 5 * 1000 * 1000};
            if (!r->is_reaped) {
                nanosleep(&nap, NULL);
            }
            continue;
        }
        struct pollfd pfd[2];
        nfds_t n = 0;
        if (r->out_fd >= 0) {
            pfd[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
        }
        if (r->err_fd >= 0) {
            pfd[n++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
        }
        int ready = poll(pfd, n, wait_ms);
        if (ready < 0 && errno != EINTR) {
            return -errno;
        }
        for (nfds_t i = 0; ready > 0 && i < n; i++) {
            if (pfd[i].revents == 0) {
                continue;
            }
            bool is_out = pfd[i].fd == r->out_fd;
            int rc = exec_drain(r, is_out ? &r->out_fd : &r->err_fd, is_out);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Kills the plugin's process group unless it was reaped, and reaps it. */
static void exec_reap(struct exec_run *r)
{
    if (r->pid <= 0 || r->is_reaped) {
        return;
    }
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR) {
    }
    r->is_reaped = true;
}

/* The first line of the plugin's stderr, trimmed, for an error message. */
static void first_line(const struct exec_run *r, char *out, size_t len)
{
    size_t start = 0, n = 0, end = 0;
    trim_span(r->errtext, r->err_len, &start, &n);
    while (end < n && r->errtext[start + end] != '\n' && r->errtext[start + end] != '\r') {
        end++;
    }
    n = end < len - 1 ? end : len - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)r->errtext[start + i];
        out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    out[n] = '\0';
}

static int exec_status(const struct k8s_exec_config *ex, const struct exec_run *r, char *err)
{
    char line[KC_STDERR_QUOTE_LEN];
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0) {
        return 0;
    }
    first_line(r, line, sizeof(line));
    if (WIFSIGNALED(r->status)) {
        return dc_err_set(err, -EIO, "exec plugin `%s' was killed by signal %d%s%s", ex->command,
                          WTERMSIG(r->status), line[0] != '\0' ? ": " : "", line);
    }
    return dc_err_set(err, -EIO, "exec plugin `%s' exited with status %d: %s", ex->command,
                      WEXITSTATUS(r->status), line[0] != '\0' ? line : "(nothing on stderr)");
}

/* --- ExecCredential output --- */

static bool is_digit_char(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool two_digits(const char *s, int *v)
{
    if (!is_digit_char(s[0]) || !is_digit_char(s[1])) {
        return false;
    }
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2 ? 1 : 0;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Parses Go's time.RFC3339 (what metav1.Time accepts): YYYY-MM-DDTHH:MM:SS, an optional
 * fraction (dropped), then Z or +HH:MM / -HH:MM. Returns 0 with Unix seconds, or -EINVAL. */
static int parse_rfc3339(const char *s, size_t len, int64_t *out)
{
    int y1, y2, mo, d, h, mi, se, oh = 0, om = 0;
    size_t i = 19;
    if (len < 20 || !two_digits(s, &y1) || !two_digits(s + 2, &y2) || s[4] != '-' ||
        !two_digits(s + 5, &mo) || s[7] != '-' || !two_digits(s + 8, &d) || s[10] != 'T' ||
        !two_digits(s + 11, &h) || s[13] != ':' || !two_digits(s + 14, &mi) || s[16] != ':' ||
        !two_digits(s + 17, &se)) {
        return -EINVAL;
    }
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && is_digit_char(s[i])) {
            i++;
        }
        if (i == start) {
            return -EINVAL;
        }
    }
    int sign = 0;
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-') && len - i == 6 &&
               two_digits(s + i + 1, &oh) && s[i + 3] == ':' && two_digits(s + i + 4, &om)) {
        sign = s[i] == '+' ? 1 : -1;
        i += 6;
    } else {
        return -EINVAL;
    }
    int y = y1 * 100 + y2;
    if (i != len || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        se > 59 || oh > 23 || om > 59) {
        return -EINVAL;
    }
    *out =
        days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60);
    return 0;
}

/* status.<key>: a string or unset; *out points into the document. */
static int status_string(const json_t *status, const char *key, const char **out, size_t *len)
{
    json_t *v = member(status, key);
    *out = NULL;
    *len = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v)) {
        return -EPROTO;
    }
    *out = json_string_value(v);
    *len = json_string_length(v);
    if (*len == 0) {
        *out = NULL;
    }
    return 0;
}

/* Checks the ExecCredential envelope: apiVersion as configured, kind, a status mapping. */
static int exec_envelope(const struct k8s_exec_config *ex, const json_t *doc, const json_t **status,
                         char *err)
{
    const char *av = json_string_value(member(doc, "apiVersion"));
    const char *kind = json_string_value(member(doc, "kind"));
    if (av == NULL || strcmp(av, ex->api_version) != 0) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': output has apiVersion `%.80s', expected `%s'",
                          ex->command, av != NULL ? av : "", ex->api_version);
    }
    if (kind == NULL || strcmp(kind, "ExecCredential") != 0) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': output has kind `%.80s', expected `ExecCredential'",
                          ex->command, kind != NULL ? kind : "");
    }
    *status = member(doc, "status");
    if (!json_is_object(*status)) {
        return dc_err_set(err, -EPROTO, "exec plugin `%s': output has no status", ex->command);
    }
    return 0;
}

/* The fields of status, checked as client-go checks them. */
static int exec_status_fields(const struct k8s_exec_config *ex, const json_t *status,
                              struct k8s_exec_credential *cred, char *err)
{
    const char *tok, *cert, *key, *exp;
    size_t tok_len, cert_len, key_len, exp_len;
    if (status_string(status, "token", &tok, &tok_len) != 0 ||
        status_string(status, "clientCertificateData", &cert, &cert_len) != 0 ||
        status_string(status, "clientKeyData", &key, &key_len) != 0 ||
        status_string(status, "expirationTimestamp", &exp, &exp_len) != 0) {
        return dc_err_set(err, -EPROTO, "exec plugin `%s': a status field is not a string",
                          ex->command);
    }
    if (tok == NULL && cert == NULL && key == NULL) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': status has neither a token nor a "
                          "client certificate and key",
                          ex->command);
    }
    if ((cert == NULL) != (key == NULL)) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': status has only one of "
                          "clientCertificateData and clientKeyData",
                          ex->command);
    }
    if (tok != NULL && has_control(tok, tok_len)) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': status.token contains a control character",
                          ex->command);
    }
    if (exp != NULL && parse_rfc3339(exp, exp_len, &cred->expires_unix) != 0) {
        return dc_err_set(
            err, -EPROTO,
            "exec plugin `%s': status.expirationTimestamp `%.40s' is not an RFC 3339 time",
            ex->command, exp);
    }
    cred->has_expiry = exp != NULL;
    uint8_t *token = NULL;
    int rc = dup_bytes((const uint8_t *)tok, tok_len, &token);
    cred->token = (char *)token;
    cred->token_len = token != NULL ? tok_len : 0;
    rc = rc == 0 ? dup_bytes((const uint8_t *)cert, cert_len, &cred->cert_data) : rc;
    cred->cert_data_len = cred->cert_data != NULL ? cert_len : 0;
    rc = rc == 0 ? dup_bytes((const uint8_t *)key, key_len, &cred->key_data) : rc;
    cred->key_data_len = cred->key_data != NULL ? key_len : 0;
    return rc != 0 ? dc_err_set(err, rc, "exec plugin: out of memory") : 0;
}

/* Parses the plugin's stdout. Error text never quotes the output's secrets: jansson's own
 * message (which quotes the text near a syntax error) is left out. */
static int exec_parse(const struct k8s_exec_config *ex, const char *text, size_t len,
                      struct k8s_exec_credential *cred, char *err)
{
    json_error_t jerr;
    const json_t *status = NULL;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    int rc = 0;
    if (doc == NULL) {
        return dc_err_set(err, -EPROTO,
                          "exec plugin `%s': output is not valid JSON (line %d column %d)",
                          ex->command, jerr.line, jerr.column);
    }
    if (!json_is_object(doc)) {
        rc = dc_err_set(err, -EPROTO, "exec plugin `%s': output is not a JSON object", ex->command);
    }
    if (rc == 0) {
        rc = exec_envelope(ex, doc, &status, err);
    }
    if (rc == 0) {
        rc = exec_status_fields(ex, status, cred, err);
    }
    k8s_yaml_wipe(doc);
    json_decref(doc);
    if (rc != 0) {
        k8s_exec_credential_deinit(cred);
    }
    return rc;
}

/* argv for execvpe: the command, then the args; the strings stay cfg's. */
static char **exec_argv(const struct k8s_exec_config *ex)
{
    char **argv = calloc(ex->n_args + 2, sizeof(*argv));
    if (argv != NULL) {
        argv[0] = ex->command;
        for (size_t i = 0; i < ex->n_args; i++) {
            argv[i + 1] = ex->args[i];
        }
    }
    return argv;
}

int k8s_config_exec_credential(const struct k8s_config *cfg, struct k8s_exec_credential *out,
                               char *err)
{
    const struct k8s_exec_config *ex = cfg->exec;
    struct exec_run run = {.out_fd = -1, .err_fd = -1};
    char *info = NULL, **argv = NULL, **envp = NULL;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (ex == NULL) {
        return dc_err_set(err, -EINVAL, "exec plugin: the user has no exec settings");
    }
    if (ex->interactive_mode == K8S_EXEC_INTERACTIVE_ALWAYS) {
        return dc_err_set(err, -EINVAL,
                          "exec plugin `%s': interactiveMode is Always, but this "
                          "client gives plugins no terminal",
                          ex->command);
    }
    rc = exec_info(cfg, &info, err);
    if (rc != 0) {
        goto out;
    }
    argv = exec_argv(ex);
    envp = exec_envp(ex, info);
    if (argv == NULL || envp == NULL) {
        rc = dc_err_set(err, -ENOMEM, "exec plugin `%s': out of memory", ex->command);
        goto out;
    }
    uint32_t timeout_ms = ex->timeout_ms != 0 ? ex->timeout_ms : K8S_EXEC_TIMEOUT_MS;
    uint64_t deadline = dc_now_ms() + timeout_ms;
    rc = exec_spawn(ex, argv, envp, &run, err);
    if (rc == 0) {
        rc = exec_collect(&run, deadline);
        if (rc == -ETIMEDOUT) {
            dc_err_set(err, rc, "exec plugin `%s': no answer within %u ms; killed it", ex->command,
                       (unsigned)timeout_ms);
        } else if (rc == -EMSGSIZE) {
            dc_err_set(err, rc, "exec plugin `%s': wrote more than %u bytes to stdout", ex->command,
                       K8S_EXEC_MAX_OUTPUT_LEN);
        } else if (rc != 0) {
            dc_err_set(err, rc, "exec plugin `%s': %s", ex->command, dc_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = exec_status(ex, &run, err);
    }
    if (rc == 0) {
        rc = exec_parse(ex, run.out != NULL ? run.out : "", run.out_len, out, err);
    }
out:
    exec_reap(&run);
    close_fd(&run.out_fd);
    close_fd(&run.err_fd);
    free_secret(run.out, run.out_cap);
    sodium_memzero(run.errtext, sizeof(run.errtext));
    strv_free(envp);
    free(argv);
    free_secret_str(info);
    return rc;
}
