/* k8s_config: where the Kubernetes API server is and how to authenticate to it, found as client-go
 * finds it.
 *
 * Sources:
 *   kubeconfig  YAML or JSON (libyaml, through k8s_yaml): clusters, users, contexts,
 *               current-context. A KUBECONFIG-style list "a:b:c" is merged with client-go's
 *               precedence: the first file to define a cluster, user or context name wins (the
 *               whole entry, not field by field), the first file to set current-context wins,
 *               empty entries and repeated paths are ignored, missing files are skipped.
 *               Relative paths (certificate-authority, client-certificate, client-key,
 *               tokenFile, and an exec command that contains a '/') resolve against the
 *               directory of the file that defined them (client-go's ResolveLocalPaths).
 *   in-cluster  KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service-account
 *               directory (token, ca.crt, namespace).
 *
 * Validation follows client-go. A file is rejected as a whole for a YAML error, a wrong type
 * or bad base64 anywhere in it; the reference and consistency checks (cluster and user exist,
 * server set, certificate with key, one authentication method, exec settings) and the file
 * readability checks apply only to the context that is selected, so a broken entry nobody uses
 * does not stop the program. Error text names the file and the field, as in
 *   kubeconfig `/home/x/.kube/config': contexts[1]: context `prod' names cluster `missing'
 *   which is not defined
 * Unknown fields, preferences and extensions are ignored, except the cluster extension
 * `client.authentication.k8s.io/exec`, which is handed to exec plugins. Not supported, with an
 * error naming the field when the selected user sets them: auth-provider (client-go removed the
 * gcp and azure providers; their exec plugins replace them) and impersonation (as, as-uid,
 * as-groups, as-user-extra).
 *
 * Secrets (tokens, passwords, client keys, exec env values, plugin stdout) never appear in
 * error text and are wiped with sodium_memzero when freed; call sodium_init() once in main.
 *
 * Loading reads files and is synchronous: do it at startup, before the loop runs.
 * k8s_config_token() does one stat() (and, on change, one small read) per call.
 * k8s_config_exec_credential() blocks until the plugin answers or its timeout ends: call it
 * when no cached credential is valid, never per request. This module does not talk to the API
 * server, check certificates, or log. */
#ifndef DC_K8S_CONFIG_H
#define DC_K8S_CONFIG_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Service-account directory of in-cluster pods (client-go's rest.InClusterConfig). */
#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
/* Namespace used when the context (or the pod) names none. */
#define K8S_DEFAULT_NAMESPACE "default"
/* Largest kubeconfig file read, in bytes (embedded certificates make big files). */
#define K8S_KUBECONFIG_MAX_LEN (16u << 20)
/* Largest token file read, in bytes (projected service-account tokens are about 1 KiB). */
#define K8S_TOKEN_MAX_LEN (64u << 10)
/* A token file is re-read when its identity, size or mtime changes, and at least this often
 * (client-go's cachingTokenSource period: 1 minute). */
#define K8S_TOKEN_REREAD_MS 60000u
/* After a failed re-read (the previous token is kept), wait this long before trying again, so a
 * deleted file costs one attempt and one warning per second, not one per request. */
#define K8S_TOKEN_RETRY_MS 1000u
/* Default time an exec plugin may take. client-go sets none; a controller must not hang. */
#define K8S_EXEC_TIMEOUT_MS 30000u
/* Most bytes of ExecCredential JSON read from a plugin's stdout. */
#define K8S_EXEC_MAX_OUTPUT_LEN (1u << 20)
/* Bytes of a plugin's stderr kept for the error message (the rest is read and dropped). */
#define K8S_EXEC_MAX_STDERR_LEN 4096u
/* The exec credential API versions client-go accepts (v1alpha1 was removed in 1.24). */
#define K8S_EXEC_API_V1      "client.authentication.k8s.io/v1"
#define K8S_EXEC_API_V1BETA1 "client.authentication.k8s.io/v1beta1"
/* Name of the cluster extension passed to exec plugins as spec.cluster.config. */
#define K8S_EXEC_CLUSTER_EXTENSION "client.authentication.k8s.io/exec"

/* A parsed kubeconfig (one file or several merged); opaque. */
struct k8s_kubeconfig;

/* users[].user.exec.interactiveMode. This client never gives a plugin a terminal (its stdin is
 * /dev/null), so IfAvailable and Never both run it non-interactively and Always fails. */
enum k8s_exec_interactive {
    K8S_EXEC_INTERACTIVE_IF_AVAILABLE, /* "IfAvailable"; the default for v1beta1 */
    K8S_EXEC_INTERACTIVE_NEVER,        /* "Never" */
    K8S_EXEC_INTERACTIVE_ALWAYS,       /* "Always" */
};

/* One users[].user.exec.env entry. */
struct k8s_exec_env {
    char *name;  /* owned */
    char *value; /* owned, "" when empty; wiped on free (may be a secret) */
};

/* users[].user.exec: a credential plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin). */
struct k8s_exec_config {
    char *api_version;        /* owned; K8S_EXEC_API_V1 or K8S_EXEC_API_V1BETA1 */
    char *command;            /* owned; absolute when it contained '/', else looked up in PATH */
    char **args;              /* owned array of n_args owned strings */
    size_t n_args;            /* entries in args */
    struct k8s_exec_env *env; /* owned array of n_env entries, added to the plugin's environment */
    size_t n_env;             /* entries in env */
    enum k8s_exec_interactive interactive_mode; /* see the enum */
    bool is_cluster_info_provided; /* provideClusterInfo: spec.cluster goes in KUBERNETES_EXEC_INFO
                                    */
    char *install_hint;            /* owned or NULL; shown when the command is not found */
    char *cluster_config_json; /* owned or NULL; the cluster's K8S_EXEC_CLUSTER_EXTENSION as JSON */
    uint32_t timeout_ms;       /* K8S_EXEC_TIMEOUT_MS after loading; callers may change it */
};

/* What the token file looked like when last read (private to k8s_config_token()). */
struct k8s_token_stamp {
    bool is_valid;    /* a read succeeded and dev..mtime_ns describe that file */
    bool is_stale;    /* the last attempt failed; the next one waits K8S_TOKEN_RETRY_MS */
    dev_t dev;        /* st_dev */
    ino_t ino;        /* st_ino (kubelet swaps the file through a symlink) */
    off_t size;       /* st_size */
    int64_t mtime_ns; /* st_mtim in nanoseconds */
    uint64_t read_ms; /* dc_now_ms() of the last attempt */
};

/* Everything needed to reach and authenticate to one API server. Free with k8s_config_free().
 * Exactly one of a *_file / *_data pair is set, or neither. */
struct k8s_config {
    char *server;          /* owned; "https://host:port" plus any path prefix, as written */
    char *tls_server_name; /* owned or NULL; name to send (SNI) and verify instead of the host */
    bool is_insecure;      /* insecure-skip-tls-verify: do not verify the server certificate */
    bool is_compression_disabled; /* disable-compression */
    char *proxy_url;              /* owned or NULL; proxy-url, accepted and kept, not checked */
    char *ca_file;        /* owned or NULL; PEM bundle path (absolute when from a kubeconfig) */
    uint8_t *ca_data;     /* owned or NULL; PEM bytes (certificate-authority-data, decoded) */
    size_t ca_data_len;   /* bytes in ca_data */
    char *cert_file;      /* owned or NULL; client certificate PEM path */
    uint8_t *cert_data;   /* owned or NULL; client certificate PEM bytes */
    size_t cert_data_len; /* bytes in cert_data */
    char *key_file;       /* owned or NULL; client key PEM path */
    uint8_t *key_data;    /* owned or NULL; client key PEM bytes; secret, wiped on free */
    size_t key_data_len;  /* bytes in key_data */
    char *token;          /* owned or NULL; current bearer token, NUL-terminated; secret.
                           * With token_file set, k8s_config_token() replaces it on change. */
    size_t token_len;     /* bytes in token */
    char *token_file;     /* owned or NULL; bearer token file, re-read on rotation */
    char *username;       /* owned or NULL; basic authentication */
    char *password;       /* owned or NULL; basic authentication; secret, wiped on free */
    char *namespace;      /* owned, never NULL; K8S_DEFAULT_NAMESPACE when none is set */
    char *context_name;   /* owned or NULL (in-cluster); the selected context */
    char *cluster_name;   /* owned or NULL (in-cluster) */
    char *user_name;      /* owned or NULL (in-cluster, or a context without a user) */
    struct k8s_exec_config *exec;       /* owned or NULL; credential plugin of the user */
    struct k8s_token_stamp token_stamp; /* private: token file cache state */
};

/* What an exec plugin returned (ExecCredential status). The all-zero struct is empty;
 * release with k8s_exec_credential_deinit(). */
struct k8s_exec_credential {
    char *token;          /* owned or NULL; bearer token, NUL-terminated; secret */
    size_t token_len;     /* bytes in token */
    uint8_t *cert_data;   /* owned or NULL; client certificate PEM (clientCertificateData) */
    size_t cert_data_len; /* bytes in cert_data */
    uint8_t *key_data;    /* owned or NULL; client key PEM (clientKeyData); secret */
    size_t key_data_len;  /* bytes in key_data */
    bool has_expiry;      /* status.expirationTimestamp was given */
    int64_t expires_unix; /* that time in Unix seconds (fraction dropped); 0 without one */
};

/* --- pure kubeconfig parsing (no file system, no environment) --- */

/* Parses one kubeconfig document (text, len; no NUL needed). origin_path names the file in
 * error text and is recorded as each entry's origin; paths inside stay as written (not
 * resolved). An empty document is a valid empty kubeconfig (as in client-go, where merging
 * skips it); k8s_kubeconfig_select() reports it. Returns 0, -EINVAL with err naming file and
 * field, -EMSGSIZE or -ENOMEM. Caller frees *out with k8s_kubeconfig_free(). */
int k8s_kubeconfig_parse(const char *text, size_t len, const char *origin_path,
                         struct k8s_kubeconfig **out, char *err) DC_MUST_CHECK;

/* Frees a kubeconfig, wiping its secrets. Accepts NULL. */
void k8s_kubeconfig_free(struct k8s_kubeconfig *kc);

/* current-context, or NULL when unset. Points into kc. */
const char *k8s_kubeconfig_current_context(const struct k8s_kubeconfig *kc);
/* Number of contexts, and the name of context i (< count), pointing into kc. */
size_t k8s_kubeconfig_context_count(const struct k8s_kubeconfig *kc);
const char *k8s_kubeconfig_context_name(const struct k8s_kubeconfig *kc, size_t i);

/* Builds the config of context (NULL: current-context) and checks it as client-go does, without
 * touching files: paths are copied as they are in kc. Returns 0; -ENOENT when the context is not
 * defined or none is set; -EINVAL for an inconsistent context, cluster or user; -ENOMEM. err
 * names the file and field. Caller frees *out with k8s_config_free(). */
int k8s_kubeconfig_select(const struct k8s_kubeconfig *kc, const char *context,
                          struct k8s_config **out, char *err) DC_MUST_CHECK;

/* --- loading --- */

/* Loads paths, a single file or a KUBECONFIG-style ':'-separated list, and selects context
 * (NULL: current-context). Missing files in a list are skipped, but at least one file must
 * exist (a single path is client-go's --kubeconfig, which must exist). Relative paths
 * are resolved, the selected cluster's and user's files must be readable, and a token file is
 * read once. Returns 0; -ENOENT (no file, no such context), -EINVAL (bad content), -EACCES,
 * -EMSGSIZE or -ENOMEM, with err naming file and field. Caller frees *out. */
int k8s_config_load_kubeconfig(const char *paths, const char *context, struct k8s_config **out,
                               char *err) DC_MUST_CHECK;

/* In-cluster config, as client-go's rest.InClusterConfig: server "https://HOST:PORT" from
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (an IPv6 host gets brackets), bearer
 * token read from sa_dir/token (re-read on rotation through token_file), ca_file sa_dir/ca.crt
 * when that file is readable (otherwise none: the system roots apply, as in client-go), and
 * the namespace from POD_NAMESPACE, else sa_dir/namespace, else "default" (clientcmd's order).
 * sa_dir NULL means K8S_SA_DIR; tests pass a temporary directory. Returns 0; -ENOENT when the
 * variables are unset or the token is missing; -EINVAL (bad port, empty token); -ENOMEM. */
int k8s_config_load_in_cluster(const char *sa_dir, struct k8s_config **out,
                               char *err) DC_MUST_CHECK;

/* client-go's default loading rules (clientcmd.NewDefaultClientConfigLoadingRules with the
 * in-cluster fallback of DeferredLoadingClientConfig):
 *   1. the KUBECONFIG list when the variable is set and not empty, missing files skipped;
 *   2. otherwise $HOME/.kube/config when it exists;
 *   3. when that yields no usable context (no file, empty files, or no current-context and
 *      no context named) and KUBERNETES_SERVICE_HOST/PORT are set with sa_dir/token present,
 *      the in-cluster config from sa_dir (NULL: K8S_SA_DIR).
 * A kubeconfig that exists but is broken is an error, never a fallback. context NULL means
 * current-context. Returns as k8s_config_load_kubeconfig(); -ENOENT when nothing applies. */
int k8s_config_load_default(const char *context, const char *sa_dir, struct k8s_config **out,
                            char *err) DC_MUST_CHECK;

/* Frees a config, wiping token, password, key data and exec env values. Accepts NULL. */
void k8s_config_free(struct k8s_config *cfg);

/* --- credentials at request time --- */

/* Writes the current bearer token plus NUL into out (len bytes); "" when the config has none.
 * With token_file set, the file is re-read (and trimmed of surrounding whitespace) when its
 * device, inode, size or mtime changed or K8S_TOKEN_REREAD_MS passed, as client-go does for
 * rotated service-account tokens; a failed re-read keeps the previous token (client-go does
 * too) and returns 0 with err holding the reason, so the caller can log it. err is "" after a
 * clean success. Returns 0; -ENOENT/-EACCES/-EINVAL (file unreadable or empty, no previous
 * token), -EMSGSIZE when out is too small, -ENOMEM. */
int k8s_config_token(struct k8s_config *cfg, char *out, size_t len, char *err) DC_MUST_CHECK;

/* Runs cfg->exec's plugin once (fork, then execvpe: PATH is searched with this process's PATH,
 * never a shell) with stdin /dev/null, the configured args, this process's environment plus
 * the configured env, and KUBERNETES_EXEC_INFO: {"kind":"ExecCredential","apiVersion":API,
 * "spec":{"interactive":false}} with spec.cluster (server, tls-server-name,
 * insecure-skip-tls-verify, certificate-authority-data, proxy-url, disable-compression,
 * config) when provideClusterInfo is set. It reads the ExecCredential JSON from stdout, which
 * must carry the configured apiVersion and a status with a token, a certificate and key pair,
 * or both; status.expirationTimestamp (RFC 3339) becomes out->expires_unix. The plugin runs in
 * its own process group, killed with SIGKILL after cfg->exec->timeout_ms. It waits only for its
 * own child, so nothing else may reap children meanwhile (a signalfd read later is fine).
 * The caller caches the credential and runs the plugin again only when it has expired
 * (has_expiry and now >= expires_unix) or the API server answered 401 (client-go's rule).
 * Returns 0; -EINVAL (no exec config, interactiveMode Always); -ENOENT (command not found,
 * with the install hint); -EACCES (not executable); -EIO (plugin failed: err has its exit status
 * and the first line of its stderr); -ETIMEDOUT; -EPROTO (output not a valid ExecCredential);
 * -EMSGSIZE; -ENOMEM. err never quotes the token, key or certificate; besides the stderr
 * line it may quote the output's apiVersion, kind or expirationTimestamp. */
int k8s_config_exec_credential(const struct k8s_config *cfg, struct k8s_exec_credential *out,
                               char *err) DC_MUST_CHECK;

/* Frees and wipes a credential; the struct is empty afterwards. Accepts zero state. */
void k8s_exec_credential_deinit(struct k8s_exec_credential *cred);

#endif
