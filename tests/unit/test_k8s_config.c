/* test_k8s_config: kubeconfig parsing and merging, in-cluster config, token file rotation and
 * exec credential plugins (k8s-client/k8s_config.c), plus the YAML rules of k8s_yaml.c it
 * relies on. Expectations come from client-go: clientcmd's loader (merge precedence, relative
 * paths), validation.go (what a usable context needs), rest.InClusterConfig and the exec
 * authenticator. Every case runs in its own temporary directory. */
#include "k8s_config.h"
#include "k8s_yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#define PATH_LEN 512
#define TEXT_LEN 16384

/* Invented PEM-looking payloads: only their bytes matter here. */
#define CA_PEM   "-----BEGIN CERTIFICATE-----\nMIIBcaFAKEca\n-----END CERTIFICATE-----\n"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBclientFAKE\n-----END CERTIFICATE-----\n"
#define KEY_PEM  "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKEYFAKE\n-----END EC PRIVATE KEY-----\n"

/* 2030-01-02T03:04:05Z in Unix seconds. */
#define EXPIRY_2030 INT64_C(1893553445)

static const char *const env_vars[] = {"KUBECONFIG", "KUBERNETES_SERVICE_HOST",
                                       "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"};

/* A scratch directory per test; HOME and the working directory are restored afterwards. */
struct fixture {
    char dir[64];
    char cwd[PATH_LEN];
    char *home; /* saved $HOME, owned */
};

static int fixture_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    memcpy(f->dir, "/tmp/test_k8s_config.XXXXXX", sizeof("/tmp/test_k8s_config.XXXXXX"));
    if (mkdtemp(f->dir) == NULL || getcwd(f->cwd, sizeof(f->cwd)) == NULL) {
        free(f);
        return -1;
    }
    const char *home = getenv("HOME");
    f->home = home != NULL ? strdup(home) : NULL;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++) {
        unsetenv(env_vars[i]);
    }
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int fixture_teardown(void **state)
{
    struct fixture *f = *state;
    int rc = chdir(f->cwd);
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (f->home != NULL) {
        setenv("HOME", f->home, 1);
    } else {
        unsetenv("HOME");
    }
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++) {
        unsetenv(env_vars[i]);
    }
    free(f->home);
    free(f);
    return rc;
}

static void fmt(char *out, size_t len, const char *format, ...) DC_PRINTF(3, 4);

static void fmt(char *out, size_t len, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(out, len, format, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < len);
}

static void path_in(const struct fixture *f, const char *name, char out[PATH_LEN])
{
    fmt(out, PATH_LEN, "%s/%s", f->dir, name);
}

static void make_dir(const struct fixture *f, const char *name)
{
    char p[PATH_LEN];
    path_in(f, name, p);
    assert_int_equal(mkdir(p, 0700), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Writes name under the fixture directory; out (PATH_LEN) gets its path when not NULL. */
static void put(const struct fixture *f, const char *name, const char *text, char *out)
{
    char p[PATH_LEN];
    path_in(f, name, p);
    write_file(p, text, 0600);
    if (out != NULL) {
        memcpy(out, p, strlen(p) + 1);
    }
}

/* A shell script that the exec tests run as a plugin. */
static void put_script(const struct fixture *f, const char *name, const char *body, char *out)
{
    char p[PATH_LEN], text[TEXT_LEN];
    path_in(f, name, p);
    fmt(text, sizeof(text), "#!/bin/sh\n%s", body);
    write_file(p, text, 0700);
    memcpy(out, p, strlen(p) + 1);
}

/* Standard base64 with padding of a string, in a static buffer (one at a time). */
static const char *b64(const char *text, char *out, size_t out_len)
{
    size_t n = strlen(text);
    assert_true(out_len >= sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL));
    sodium_bin2base64(out, out_len, (const unsigned char *)text, n, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

static struct k8s_kubeconfig *parse_ok(const char *text)
{
    struct k8s_kubeconfig *kc = NULL;
    char err[DC_ERR_LEN] = "";
    int rc = k8s_kubeconfig_parse(text, strlen(text), "/test/config", &kc, err);
    if (rc != 0) {
        fprintf(stderr, "parse failed: %s\n", err);
    }
    assert_int_equal(rc, 0);
    return kc;
}

/* Parses text and selects context; returns the code, err filled. */
static int parse_select(const char *text, const char *context, char *err)
{
    struct k8s_kubeconfig *kc = NULL;
    struct k8s_config *cfg = NULL;
    int rc = k8s_kubeconfig_parse(text, strlen(text), "/test/config", &kc, err);
    if (rc == 0) {
        rc = k8s_kubeconfig_select(kc, context, &cfg, err);
    }
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
    return rc;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) == NULL) {
        fprintf(stderr, "`%s' does not contain `%s'\n", haystack, needle);
        fail();
    }
}

static void assert_lacks(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) != NULL) {
        fprintf(stderr, "`%s' contains `%s'\n", haystack, needle);
        fail();
    }
}

/* Two clusters, users and contexts, as `kubectl config view --raw' prints them. */
static void realistic_kubeconfig(char *out, size_t len)
{
    char ca[256], cert[256], key[256];
    fmt(out, len,
        "apiVersion: v1\n"
        "kind: Config\n"
        "preferences: {}\n"
        "clusters:\n"
        "- cluster:\n"
        "    certificate-authority-data: %s\n"
        "    server: https://prod.k8s.example.com:6443\n"
        "    tls-server-name: api.prod.internal\n"
        "  name: prod-cluster\n"
        "- cluster:\n"
        "    insecure-skip-tls-verify: true\n"
        "    proxy-url: socks5://localhost:1080\n"
        "    server: https://10.0.0.5:6443\n"
        "  name: dev-cluster\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: prod-cluster\n"
        "    namespace: platform\n"
        "    user: prod-admin\n"
        "  name: prod\n"
        "- context:\n"
        "    cluster: dev-cluster\n"
        "    user: dev-token\n"
        "  name: dev\n"
        "current-context: prod\n"
        "users:\n"
        "- name: prod-admin\n"
        "  user:\n"
        "    client-certificate-data: %s\n"
        "    client-key-data: %s\n"
        "- name: dev-token\n"
        "  user:\n"
        "    token: dev-SECRET-token-123\n",
        b64(CA_PEM, ca, sizeof(ca)), b64(CERT_PEM, cert, sizeof(cert)),
        b64(KEY_PEM, key, sizeof(key)));
}

static void test_k8s_config_realistic(void **state)
{
    (void)state;
    char text[TEXT_LEN], err[DC_ERR_LEN];
    realistic_kubeconfig(text, sizeof(text));
    struct k8s_kubeconfig *kc = parse_ok(text);
    assert_string_equal(k8s_kubeconfig_current_context(kc), "prod");
    assert_int_equal(k8s_kubeconfig_context_count(kc), 2);
    assert_string_equal(k8s_kubeconfig_context_name(kc, 0), "prod");
    assert_string_equal(k8s_kubeconfig_context_name(kc, 1), "dev");
    assert_null(k8s_kubeconfig_context_name(kc, 2));

    struct k8s_config *cfg = NULL;
    assert_int_equal(k8s_kubeconfig_select(kc, NULL, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://prod.k8s.example.com:6443");
    assert_string_equal(cfg->tls_server_name, "api.prod.internal");
    assert_false(cfg->is_insecure);
    assert_int_equal(cfg->ca_data_len, strlen(CA_PEM));
    assert_memory_equal(cfg->ca_data, CA_PEM, strlen(CA_PEM));
    assert_int_equal(cfg->cert_data_len, strlen(CERT_PEM));
    assert_memory_equal(cfg->cert_data, CERT_PEM, strlen(CERT_PEM));
    assert_int_equal(cfg->key_data_len, strlen(KEY_PEM));
    assert_memory_equal(cfg->key_data, KEY_PEM, strlen(KEY_PEM));
    assert_null(cfg->ca_file);
    assert_null(cfg->token);
    assert_null(cfg->token_file);
    assert_null(cfg->exec);
    assert_string_equal(cfg->namespace, "platform");
    assert_string_equal(cfg->context_name, "prod");
    assert_string_equal(cfg->cluster_name, "prod-cluster");
    assert_string_equal(cfg->user_name, "prod-admin");

    char tok[64];
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "");
    assert_string_equal(err, "");
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
}

static void test_k8s_config_named_context(void **state)
{
    (void)state;
    char text[TEXT_LEN], err[DC_ERR_LEN], tok[64];
    realistic_kubeconfig(text, sizeof(text));
    struct k8s_kubeconfig *kc = parse_ok(text);
    struct k8s_config *cfg = NULL;

    assert_int_equal(k8s_kubeconfig_select(kc, "dev", &cfg, err), 0);
    assert_string_equal(cfg->server, "https://10.0.0.5:6443");
    assert_true(cfg->is_insecure);
    assert_string_equal(cfg->proxy_url, "socks5://localhost:1080");
    assert_null(cfg->ca_data);
    assert_null(cfg->cert_data);
    assert_string_equal(cfg->namespace, "default");
    assert_string_equal(cfg->token, "dev-SECRET-token-123");
    assert_int_equal(cfg->token_len, strlen("dev-SECRET-token-123"));
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "dev-SECRET-token-123");
    assert_int_equal(k8s_config_token(cfg, tok, 5, err), -EMSGSIZE);
    assert_lacks(err, "SECRET");
    k8s_config_free(cfg);

    /* An empty name means current-context, as client-go's override does. */
    assert_int_equal(k8s_kubeconfig_select(kc, "", &cfg, err), 0);
    assert_string_equal(cfg->context_name, "prod");
    k8s_config_free(cfg);

    cfg = NULL;
    assert_int_equal(k8s_kubeconfig_select(kc, "staging", &cfg, err), -ENOENT);
    assert_null(cfg);
    assert_string_equal(err, "kubeconfig `/test/config': context `staging' is not defined");
    k8s_kubeconfig_free(kc);
}

/* `kubectl config view -o json' output is the same kubeconfig. */
static void test_k8s_config_json_input(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    const char *text =
        "{\n"
        "\t\"kind\": \"Config\",\n"
        "\t\"apiVersion\": \"v1\",\n"
        "\t\"preferences\": {},\n"
        "\t\"clusters\": [{\"name\": \"kind-dev\", \"cluster\": {\"server\": "
        "\"https://127.0.0.1:40123\", \"insecure-skip-tls-verify\": true}}],\n"
        "\t\"users\": [{\"name\": \"kind-dev\", \"user\": {\"token\": \"abc.def\"}}],\n"
        "\t\"contexts\": [{\"name\": \"kind-dev\", \"context\": {\"cluster\": \"kind-dev\", "
        "\"user\": \"kind-dev\", \"namespace\": \"42\"}}],\n"
        "\t\"current-context\": \"kind-dev\"\n"
        "}\n";
    struct k8s_kubeconfig *kc = parse_ok(text);
    struct k8s_config *cfg = NULL;
    assert_int_equal(k8s_kubeconfig_select(kc, NULL, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://127.0.0.1:40123");
    assert_true(cfg->is_insecure);
    assert_string_equal(cfg->token, "abc.def");
    assert_string_equal(cfg->namespace, "42");
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
}

/* Files next to a kubeconfig in conf/: ca.crt, certs/, token, bin/plugin. */
static void put_relative_tree(const struct fixture *f)
{
    make_dir(f, "conf");
    make_dir(f, "certs");
    make_dir(f, "conf/bin");
    put(f, "conf/ca.crt", CA_PEM, NULL);
    put(f, "certs/client.crt", CERT_PEM, NULL);
    put(f, "certs/client.key", KEY_PEM, NULL);
    put(f, "conf/token", "  file-token-1\n", NULL);
    put(f, "conf/config",
        "apiVersion: v1\n"
        "kind: Config\n"
        "current-context: files\n"
        "clusters:\n"
        "- name: c\n"
        "  cluster: {server: 'https://files.example.com', certificate-authority: ca.crt}\n"
        "users:\n"
        "- name: files\n"
        "  user:\n"
        "    client-certificate: ../certs/client.crt\n"
        "    client-key: ./x/../../certs//client.key\n"
        "    tokenFile: token\n"
        "- name: plugin\n"
        "  user:\n"
        "    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: bin/plugin}\n"
        "- name: pathless\n"
        "  user:\n"
        "    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}\n"
        "contexts:\n"
        "- {name: files, context: {cluster: c, user: files}}\n"
        "- {name: plugin, context: {cluster: c, user: plugin}}\n"
        "- {name: pathless, context: {cluster: c, user: pathless}}\n",
        NULL);
}

static void test_k8s_config_relative_paths(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[PATH_LEN], err[DC_ERR_LEN], tok[64];
    struct k8s_config *cfg = NULL;
    put_relative_tree(f);
    path_in(f, "conf/config", path);

    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), 0);
    path_in(f, "conf/ca.crt", want);
    assert_string_equal(cfg->ca_file, want);
    path_in(f, "certs/client.crt", want);
    assert_string_equal(cfg->cert_file, want);
    path_in(f, "certs/client.key", want);
    assert_string_equal(cfg->key_file, want);
    path_in(f, "conf/token", want);
    assert_string_equal(cfg->token_file, want);
    assert_string_equal(cfg->token, "file-token-1");
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "file-token-1");
    k8s_config_free(cfg);

    /* An exec command with a '/' is a path; a bare name stays for the PATH search. */
    assert_int_equal(k8s_config_load_kubeconfig(path, "plugin", &cfg, err), 0);
    path_in(f, "conf/bin/plugin", want);
    assert_string_equal(cfg->exec->command, want);
    assert_int_equal(cfg->exec->interactive_mode, K8S_EXEC_INTERACTIVE_IF_AVAILABLE);
    assert_int_equal(cfg->exec->timeout_ms, K8S_EXEC_TIMEOUT_MS);
    k8s_config_free(cfg);
    assert_int_equal(k8s_config_load_kubeconfig(path, "pathless", &cfg, err), 0);
    assert_string_equal(cfg->exec->command, "aws");
    k8s_config_free(cfg);

    /* A relative kubeconfig path resolves against the working directory first. */
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(k8s_config_load_kubeconfig("./conf/../conf/config", NULL, &cfg, err), 0);
    path_in(f, "conf/ca.crt", want);
    assert_string_equal(cfg->ca_file, want);
    k8s_config_free(cfg);

    /* The pure parser leaves paths as written. */
    struct k8s_kubeconfig *kc = NULL;
    char text[TEXT_LEN];
    fmt(text, sizeof(text), "%s",
        "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: ca.crt}}]\n"
        "contexts: [{name: x, context: {cluster: c}}]\n");
    kc = parse_ok(text);
    assert_int_equal(k8s_kubeconfig_select(kc, "x", &cfg, err), 0);
    assert_string_equal(cfg->ca_file, "ca.crt");
    assert_null(cfg->user_name);
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
}

static void test_k8s_config_data_and_file_fields(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[PATH_LEN], err[DC_ERR_LEN], ca[256], key[256];
    struct k8s_config *cfg = NULL;

    /* A file field whose file is missing fails for the selected user only. */
    put(f, "config",
        "current-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
        "users:\n"
        "- {name: a, user: {client-certificate: a.crt, client-key: missing.key}}\n"
        "- {name: b, user: {username: admin, password: SECRET-pw}}\n"
        "contexts: [{name: a, context: {cluster: c, user: a}}, {name: b, context: {cluster: c, "
        "user: b}}]\n",
        path);
    put(f, "a.crt", CERT_PEM, NULL);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -ENOENT);
    path_in(f, "missing.key", want);
    assert_contains(err, path);
    assert_contains(err, "users[0].user.client-key: cannot read");
    assert_contains(err, want);
    assert_int_equal(k8s_config_load_kubeconfig(path, "b", &cfg, err), 0);
    assert_string_equal(cfg->username, "admin");
    assert_string_equal(cfg->password, "SECRET-pw");
    k8s_config_free(cfg);

    /* Data and file for the same thing: client-go refuses the pair. */
    char text[TEXT_LEN];
    fmt(text, sizeof(text),
        "current-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: /ca.crt, "
        "certificate-authority-data: %s}}]\n"
        "contexts: [{name: x, context: {cluster: c}}]\n",
        b64(CA_PEM, ca, sizeof(ca)));
    assert_int_equal(parse_select(text, NULL, err), -EINVAL);
    assert_string_equal(err,
                        "kubeconfig `/test/config': clusters[0].cluster: certificate-authority "
                        "and certificate-authority-data are both set");
    fmt(text, sizeof(text),
        "current-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {client-key-data: %s}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n",
        b64(KEY_PEM, key, sizeof(key)));
    assert_int_equal(parse_select(text, NULL, err), -EINVAL);
    assert_contains(err, "users[0].user: a client key without client-certificate");
}

/* Three files and a missing one, with client-go's rule: the first to set a name wins, whole. */
static void test_k8s_config_merge_precedence(void **state)
{
    struct fixture *f = *state;
    char a[PATH_LEN], c[PATH_LEN], d[PATH_LEN], missing[PATH_LEN], list[4 * PATH_LEN];
    char want[PATH_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    make_dir(f, "one");
    make_dir(f, "three");
    put(f, "one/a.yaml",
        "clusters: [{name: shared, cluster: {server: 'https://a.example.com'}}]\n"
        "users: [{name: me, user: {token: token-from-a}}]\n"
        "contexts: [{name: ctx1, context: {cluster: shared, user: me, namespace: from-a}}]\n",
        a);
    path_in(f, "two/missing.yaml", missing);
    put(f, "three/c.yaml",
        "current-context: ctx2\n"
        "clusters:\n"
        "- {name: shared, cluster: {server: 'https://c.example.com'}}\n"
        "- {name: only-c, cluster: {server: 'https://only-c.example.com', "
        "certificate-authority: ca.pem}}\n"
        "users: [{name: me, user: {token: token-from-c}}]\n"
        "contexts:\n"
        "- {name: ctx1, context: {cluster: only-c, user: me, namespace: from-c}}\n"
        "- {name: ctx2, context: {cluster: only-c, user: me}}\n",
        c);
    put(f, "three/ca.pem", CA_PEM, NULL);
    put(f, "d.yaml",
        "current-context: ctx1\n"
        "contexts: [{name: ctx3, context: {cluster: shared}}]\n",
        d);
    fmt(list, sizeof(list), "%s::%s:%s:%s:%s:", a, missing, c, d, a);

    /* current-context comes from c (a sets none, d comes later). */
    assert_int_equal(k8s_config_load_kubeconfig(list, NULL, &cfg, err), 0);
    assert_string_equal(cfg->context_name, "ctx2");
    assert_string_equal(cfg->server, "https://only-c.example.com");
    assert_string_equal(cfg->token, "token-from-a");
    path_in(f, "three/ca.pem", want);
    assert_string_equal(cfg->ca_file, want);
    k8s_config_free(cfg);

    /* ctx1 and cluster `shared' are a's, whole entries. */
    assert_int_equal(k8s_config_load_kubeconfig(list, "ctx1", &cfg, err), 0);
    assert_string_equal(cfg->server, "https://a.example.com");
    assert_string_equal(cfg->namespace, "from-a");
    k8s_config_free(cfg);
    assert_int_equal(k8s_config_load_kubeconfig(list, "ctx3", &cfg, err), 0);
    assert_string_equal(cfg->server, "https://a.example.com");
    k8s_config_free(cfg);

    /* The same list through KUBECONFIG. */
    setenv("KUBECONFIG", list, 1);
    assert_int_equal(k8s_config_load_default(NULL, f->dir, &cfg, err), 0);
    assert_string_equal(cfg->context_name, "ctx2");
    k8s_config_free(cfg);

    /* Nothing exists: an error naming the list; a single missing path names the file. */
    fmt(list, sizeof(list), "%s:%s/nope.yaml", missing, f->dir);
    assert_int_equal(k8s_config_load_kubeconfig(list, NULL, &cfg, err), -ENOENT);
    assert_contains(err, "none of these files exists");
    assert_int_equal(k8s_config_load_kubeconfig(missing, NULL, &cfg, err), -ENOENT);
    assert_contains(err, missing);
    assert_null(cfg);
}

/* A service-account directory as kubelet projects it. */
static void put_sa_dir(const struct fixture *f, const char *token)
{
    make_dir(f, "sa");
    put(f, "sa/token", token, NULL);
    put(f, "sa/ca.crt", CA_PEM, NULL);
    put(f, "sa/namespace", "kube-system\n", NULL);
}

static void test_k8s_config_in_cluster(void **state)
{
    struct fixture *f = *state;
    char sa[PATH_LEN], want[PATH_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    put_sa_dir(f, "eyJhbGciOiJSUzI1NiJ9.sa-token-1.sig\n");
    path_in(f, "sa", sa);

    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), -ENOENT);
    assert_contains(err, "KUBERNETES_SERVICE_HOST");

    setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://[fd00:10:96::1]:443");
    assert_string_equal(cfg->token, "eyJhbGciOiJSUzI1NiJ9.sa-token-1.sig");
    path_in(f, "sa/token", want);
    assert_string_equal(cfg->token_file, want);
    path_in(f, "sa/ca.crt", want);
    assert_string_equal(cfg->ca_file, want);
    assert_string_equal(cfg->namespace, "kube-system");
    assert_null(cfg->context_name);
    assert_null(cfg->exec);
    k8s_config_free(cfg);

    /* POD_NAMESPACE wins over the file (clientcmd); IPv4 stays bare; no ca.crt, no CA. */
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("POD_NAMESPACE", "vcluster-platform", 1);
    path_in(f, "sa/ca.crt", want);
    assert_int_equal(unlink(want), 0);
    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->namespace, "vcluster-platform");
    assert_null(cfg->ca_file);
    k8s_config_free(cfg);

    setenv("KUBERNETES_SERVICE_PORT", "https", 1);
    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), -EINVAL);
    assert_contains(err, "KUBERNETES_SERVICE_PORT: `https'");
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    path_in(f, "sa/token", want);
    assert_int_equal(unlink(want), 0);
    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), -ENOENT);
    assert_contains(err, want);
    assert_null(cfg);
}

/* kubelet rotates projected tokens by swapping the file; the next call sees the new one. */
static void test_k8s_config_token_rotation(void **state)
{
    struct fixture *f = *state;
    char sa[PATH_LEN], tmp[PATH_LEN], token[PATH_LEN], err[DC_ERR_LEN], tok[256];
    struct k8s_config *cfg = NULL;
    put_sa_dir(f, "token-one\n");
    path_in(f, "sa", sa);
    path_in(f, "sa/token", token);
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
    assert_int_equal(k8s_config_load_in_cluster(sa, &cfg, err), 0);
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "token-one");
    assert_string_equal(err, "");

    /* Atomic replace (new inode), as kubelet's atomic writer does. */
    put(f, "sa/token.new", "token-two-rotated\n", tmp);
    assert_int_equal(rename(tmp, token), 0);
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "token-two-rotated");
    assert_string_equal(err, "");

    /* Rewritten in place with another size. */
    write_file(token, "token-3\n", 0600);
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "token-3");

    /* Gone: the previous token stays in use, and err says why. */
    assert_int_equal(unlink(token), 0);
    assert_int_equal(k8s_config_token(cfg, tok, sizeof(tok), err), 0);
    assert_string_equal(tok, "token-3");
    assert_contains(err, token);
    assert_contains(err, "keeping the previous token");
    assert_lacks(err, "token-3");
    k8s_config_free(cfg);
}

/* --- exec plugins --- */

/* A kubeconfig whose current user runs plugin (absolute path) with apiVersion api. */
static void exec_kubeconfig(char *out, size_t len, const char *plugin, const char *api,
                            const char *extra_exec, const char *info_out)
{
    char ca[256];
    fmt(out, len,
        "current-context: eks\n"
        "clusters:\n"
        "- name: eks-cluster\n"
        "  cluster:\n"
        "    server: https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com\n"
        "    certificate-authority-data: %s\n"
        "    extensions:\n"
        "    - name: client.authentication.k8s.io/exec\n"
        "      extension: {audience: sts.amazonaws.com, region: eu-west-1}\n"
        "users:\n"
        "- name: eks-user\n"
        "  user:\n"
        "    exec:\n"
        "      apiVersion: %s\n"
        "      command: %s\n"
        "      args: [--region, eu-west-1]\n"
        "      env:\n"
        "      - {name: INFO_OUT, value: %s}\n"
        "      - {name: AWS_PROFILE, value: prod}\n"
        "%s"
        "contexts: [{name: eks, context: {cluster: eks-cluster, user: eks-user}}]\n",
        b64(CA_PEM, ca, sizeof(ca)), api, plugin, info_out, extra_exec);
}

static struct k8s_config *exec_config(const struct fixture *f, const char *body, const char *api,
                                      const char *extra_exec)
{
    char plugin[PATH_LEN], info[PATH_LEN], text[TEXT_LEN], err[DC_ERR_LEN];
    struct k8s_kubeconfig *kc = NULL;
    struct k8s_config *cfg = NULL;
    put_script(f, "plugin.sh", body, plugin);
    path_in(f, "exec-info.json", info);
    exec_kubeconfig(text, sizeof(text), plugin, api, extra_exec, info);
    kc = parse_ok(text);
    int rc = k8s_kubeconfig_select(kc, NULL, &cfg, err);
    if (rc != 0) {
        fprintf(stderr, "select: %s\n", err);
    }
    assert_int_equal(rc, 0);
    k8s_kubeconfig_free(kc);
    return cfg;
}

static json_t *read_exec_info(const struct fixture *f)
{
    char info[PATH_LEN];
    json_error_t jerr;
    path_in(f, "exec-info.json", info);
    json_t *doc = json_load_file(info, 0, &jerr);
    assert_non_null(doc);
    return doc;
}

static void test_k8s_config_exec_v1(void **state)
{
    struct fixture *f = *state;
    char err[DC_ERR_LEN], ca[256];
    struct k8s_exec_credential cred = {0};
    struct k8s_config *cfg = exec_config(
        f,
        "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$INFO_OUT\"\n"
        "echo 'fetching token' >&2\n"
        "cat <<EOF\n"
        "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\",\n"
        " \"status\": {\"token\": \"k8s-aws-v1.$AWS_PROFILE.$1$2\",\n"
        "            \"expirationTimestamp\": \"2030-01-02T03:04:05Z\"}}\n"
        "EOF\n",
        K8S_EXEC_API_V1, "      interactiveMode: Never\n      provideClusterInfo: true\n");
    assert_int_equal(cfg->exec->interactive_mode, K8S_EXEC_INTERACTIVE_NEVER);
    assert_true(cfg->exec->is_cluster_info_provided);
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), 0);
    assert_string_equal(cred.token, "k8s-aws-v1.prod.--regioneu-west-1");
    assert_int_equal(cred.token_len, strlen(cred.token));
    assert_true(cred.has_expiry);
    assert_int_equal(cred.expires_unix, EXPIRY_2030);
    assert_null(cred.cert_data);
    assert_null(cred.key_data);
    k8s_exec_credential_deinit(&cred);
    assert_null(cred.token);

    /* KUBERNETES_EXEC_INFO: the v1 ExecCredential with the cluster and its extension. */
    json_t *info = read_exec_info(f);
    assert_string_equal(json_string_value(json_object_get(info, "apiVersion")), K8S_EXEC_API_V1);
    assert_string_equal(json_string_value(json_object_get(info, "kind")), "ExecCredential");
    json_t *spec = json_object_get(info, "spec");
    assert_true(json_is_false(json_object_get(spec, "interactive")));
    json_t *cluster = json_object_get(spec, "cluster");
    assert_string_equal(json_string_value(json_object_get(cluster, "server")),
                        "https://ABCDEF.gr7.eu-west-1.eks.amazonaws.com");
    assert_string_equal(json_string_value(json_object_get(cluster, "certificate-authority-data")),
                        b64(CA_PEM, ca, sizeof(ca)));
    json_t *config = json_object_get(cluster, "config");
    assert_string_equal(json_string_value(json_object_get(config, "region")), "eu-west-1");
    assert_null(json_object_get(cluster, "insecure-skip-tls-verify"));
    json_decref(info);
    k8s_config_free(cfg);
}

static void test_k8s_config_exec_v1beta1(void **state)
{
    struct fixture *f = *state;
    char err[DC_ERR_LEN];
    struct k8s_exec_credential cred = {0};
    struct k8s_config *cfg = exec_config(
        f,
        "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$INFO_OUT\"\n"
        "printf '%s' '{\"kind\":\"ExecCredential\",\"apiVersion\":"
        "\"client.authentication.k8s.io/v1beta1\",\"spec\":{},\"status\":{"
        "\"expirationTimestamp\":\"2030-01-02T05:04:05.123456+02:00\","
        "\"token\":\"ya29.gke-token\","
        "\"clientCertificateData\":\"-----BEGIN CERTIFICATE-----\\nX\\n-----END "
        "CERTIFICATE-----\\n\","
        "\"clientKeyData\":\"-----BEGIN PRIVATE KEY-----\\nY\\n-----END PRIVATE KEY-----\\n\"}}'\n",
        K8S_EXEC_API_V1BETA1, "");
    assert_int_equal(cfg->exec->interactive_mode, K8S_EXEC_INTERACTIVE_IF_AVAILABLE);
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), 0);
    assert_string_equal(cred.token, "ya29.gke-token");
    assert_int_equal(cred.expires_unix, EXPIRY_2030);
    assert_int_equal(cred.cert_data_len,
                     strlen("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"));
    assert_memory_equal(cred.cert_data, "-----BEGIN CERTIFICATE-----\nX\n", 30);
    assert_memory_equal(cred.key_data, "-----BEGIN PRIVATE KEY-----\nY\n", 30);
    k8s_exec_credential_deinit(&cred);

    json_t *info = read_exec_info(f);
    assert_string_equal(json_string_value(json_object_get(info, "apiVersion")),
                        K8S_EXEC_API_V1BETA1);
    assert_null(json_object_get(json_object_get(info, "spec"), "cluster"));
    json_decref(info);
    k8s_config_free(cfg);
}

static void test_k8s_config_exec_failure(void **state)
{
    struct fixture *f = *state;
    char err[DC_ERR_LEN];
    struct k8s_exec_credential cred = {0};
    struct k8s_config *cfg = exec_config(f,
                                         "echo 'error: SSO session for profile prod expired' >&2\n"
                                         "echo 'run aws sso login' >&2\n"
                                         "echo '{\"status\": {\"token\": \"leaked-SECRET\"}}'\n"
                                         "exit 3\n",
                                         K8S_EXEC_API_V1, "      interactiveMode: IfAvailable\n");
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), -EIO);
    assert_contains(err, "plugin.sh' exited with status 3: ");
    assert_contains(err, "error: SSO session for profile prod expired");
    assert_lacks(err, "aws sso login");
    assert_lacks(err, "SECRET");
    assert_null(cred.token);
    k8s_config_free(cfg);
}

static void test_k8s_config_exec_timeout(void **state)
{
    struct fixture *f = *state;
    char err[DC_ERR_LEN];
    struct k8s_exec_credential cred = {0};
    struct k8s_config *cfg =
        exec_config(f, "echo 'waiting for the browser login' >&2\nsleep 30\necho '{}'\n",
                    K8S_EXEC_API_V1, "      interactiveMode: Never\n");
    cfg->exec->timeout_ms = 300;
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), -ETIMEDOUT);
    assert_contains(err, "no answer within 300 ms");
    k8s_config_free(cfg);
}

static void expect_bad_output(const struct fixture *f, const char *output, const char *want)
{
    char body[TEXT_LEN], err[DC_ERR_LEN];
    struct k8s_exec_credential cred = {0};
    fmt(body, sizeof(body), "cat <<'EOF'\n%s\nEOF\n", output);
    struct k8s_config *cfg =
        exec_config(f, body, K8S_EXEC_API_V1, "      interactiveMode: Never\n");
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), -EPROTO);
    assert_contains(err, want);
    assert_lacks(err, "SECRET");
    assert_null(cred.token);
    k8s_config_free(cfg);
}

static void test_k8s_config_exec_malformed(void **state)
{
    struct fixture *f = *state;
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
                      "\"ExecCredential\", \"status\": {\"token\": \"tok-SECRET",
                      "output is not valid JSON (line");
    expect_bad_output(f, "token: SECRET", "output is not valid JSON");
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1beta1\", \"kind\": "
                      "\"ExecCredential\", \"status\": {\"token\": \"SECRET\"}}",
                      "output has apiVersion `client.authentication.k8s.io/v1beta1', expected "
                      "`client.authentication.k8s.io/v1'");
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
                      "\"ExecCredential\"}",
                      "output has no status");
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
                      "\"ExecCredential\", \"status\": {\"clientKeyData\": \"SECRET\"}}",
                      "only one of clientCertificateData and clientKeyData");
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
                      "\"ExecCredential\", \"status\": {\"token\": \"SECRET\", "
                      "\"expirationTimestamp\": \"tomorrow\"}}",
                      "status.expirationTimestamp `tomorrow' is not an RFC 3339 time");
    expect_bad_output(f,
                      "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
                      "\"ExecCredential\", \"status\": {\"token\": 42}}",
                      "a status field is not a string");
}

static void test_k8s_config_exec_not_found(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    struct k8s_kubeconfig *kc = parse_ok(
        "current-context: gke\n"
        "clusters: [{name: gke, cluster: {server: 'https://34.1.2.3'}}]\n"
        "users:\n"
        "- name: gke\n"
        "  user:\n"
        "    exec:\n"
        "      apiVersion: client.authentication.k8s.io/v1beta1\n"
        "      command: dc-test-no-such-plugin-7f3a\n"
        "      installHint: Install gke-gcloud-auth-plugin for use with kubectl\n"
        "- name: always\n"
        "  user:\n"
        "    exec: {apiVersion: client.authentication.k8s.io/v1, command: kubelogin, "
        "interactiveMode: Always}\n"
        "contexts: [{name: gke, context: {cluster: gke, user: gke}}, {name: always, context: "
        "{cluster: gke, user: always}}]\n");
    struct k8s_config *cfg = NULL;
    struct k8s_exec_credential cred = {0};
    assert_int_equal(k8s_kubeconfig_select(kc, NULL, &cfg, err), 0);
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), -ENOENT);
    assert_string_equal(err, "exec plugin `dc-test-no-such-plugin-7f3a': not found; Install "
                             "gke-gcloud-auth-plugin for use with kubectl");
    k8s_config_free(cfg);
    assert_int_equal(k8s_kubeconfig_select(kc, "always", &cfg, err), 0);
    assert_int_equal(cfg->exec->interactive_mode, K8S_EXEC_INTERACTIVE_ALWAYS);
    assert_int_equal(k8s_config_exec_credential(cfg, &cred, err), -EINVAL);
    assert_contains(err, "interactiveMode is Always");
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
}

/* --- broken kubeconfigs: every error names the file and the field --- */

static void test_k8s_config_missing_current_context(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[DC_ERR_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    put(f, "config",
        "current-context: ghost\n"
        "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
        "contexts: [{name: real, context: {cluster: c}}]\n",
        path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -ENOENT);
    fmt(want, sizeof(want), "kubeconfig `%s': current-context: context `ghost' is not defined",
        path);
    assert_string_equal(err, want);

    put(f, "config", "contexts: [{name: real, context: {cluster: c}}]\n", path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -ENOENT);
    assert_contains(err, path);
    assert_contains(err,
                    "current-context: not set and no context was named (1 context is defined)");
    assert_null(cfg);
}

static void test_k8s_config_unknown_cluster(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[DC_ERR_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    put(f, "config",
        "current-context: prod\n"
        "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
        "users: [{name: u, user: {token: SECRET-abc}}]\n"
        "contexts:\n"
        "- {name: dev, context: {cluster: c, user: u}}\n"
        "- {name: prod, context: {cluster: missing, user: u}}\n"
        "- {name: nouser, context: {cluster: c, user: nobody}}\n"
        "- {name: nocluster, context: {user: u}}\n",
        path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -EINVAL);
    fmt(want, sizeof(want),
        "kubeconfig `%s': contexts[1]: context `prod' names cluster `missing' which is not "
        "defined",
        path);
    assert_string_equal(err, want);
    assert_int_equal(k8s_config_load_kubeconfig(path, "nouser", &cfg, err), -EINVAL);
    assert_contains(err, "contexts[2]: context `nouser' names user `nobody' which is not defined");
    assert_int_equal(k8s_config_load_kubeconfig(path, "nocluster", &cfg, err), -EINVAL);
    assert_contains(err, "contexts[3]: context `nocluster' names no cluster");
    assert_lacks(err, "SECRET");
    /* The broken contexts do not stop the good one. */
    assert_int_equal(k8s_config_load_kubeconfig(path, "dev", &cfg, err), 0);
    k8s_config_free(cfg);
}

static void test_k8s_config_bad_base64(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    assert_int_equal(parse_select("users:\n"
                                  "- name: u\n"
                                  "  user:\n"
                                  "    client-certificate-data: YWJj\n"
                                  "    client-key-data: LS0tLS1CRUdJTi!SECRET\n",
                                  NULL, err),
                     -EINVAL);
    assert_contains(err, "kubeconfig `/test/config': users[0].user.client-key-data: not valid "
                         "base64");
    assert_contains(err, "at byte 14 of 21");
    assert_lacks(err, "SECRET");
    assert_lacks(err, "LS0t");

    /* Padding: required, and checked (Go's StdEncoding); line breaks are ignored. */
    assert_int_equal(
        parse_select("clusters: [{name: c, cluster: {certificate-authority-data: YWI}}]\n", NULL,
                     err),
        -EINVAL);
    assert_contains(err, "clusters[0].cluster.certificate-authority-data: not valid base64");
    assert_int_equal(
        parse_select("clusters: [{name: c, cluster: {certificate-authority-data: YW==}}]\n", NULL,
                     err),
        -EINVAL);
    struct k8s_kubeconfig *kc = parse_ok("current-context: x\n"
                                         "clusters:\n"
                                         "- name: c\n"
                                         "  cluster:\n"
                                         "    server: https://x\n"
                                         "    certificate-authority-data: |\n"
                                         "      YWJj\n"
                                         "      ZA==\n"
                                         "contexts: [{name: x, context: {cluster: c}}]\n");
    struct k8s_config *cfg = NULL;
    assert_int_equal(k8s_kubeconfig_select(kc, NULL, &cfg, err), 0);
    assert_int_equal(cfg->ca_data_len, 4);
    assert_memory_equal(cfg->ca_data, "abcd", 4);
    k8s_config_free(cfg);
    k8s_kubeconfig_free(kc);
}

static void test_k8s_config_wrong_types(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    assert_int_equal(parse_select("clusters: [{name: c, cluster: [https://x, 443]}]\n", NULL, err),
                     -EINVAL);
    assert_string_equal(err, "kubeconfig `/test/config': clusters[0].cluster: expected a mapping, "
                             "got a list");
    assert_int_equal(parse_select("users: {name: u}\n", NULL, err), -EINVAL);
    assert_string_equal(err, "kubeconfig `/test/config': users: expected a list, got a mapping");
    assert_int_equal(parse_select("contexts: [prod]\n", NULL, err), -EINVAL);
    assert_contains(err, "contexts[0]: expected a mapping with name and context, got a string");
    assert_int_equal(
        parse_select("clusters: [{name: c, cluster: {insecure-skip-tls-verify: 'true'}}]\n", NULL,
                     err),
        -EINVAL);
    assert_contains(err,
                    "clusters[0].cluster.insecure-skip-tls-verify: expected true or false, got a "
                    "string");
    assert_int_equal(parse_select("users: [{name: u, user: {exec: {command: aws, args: [eks, "
                                  "{a: b}]}}}]\n",
                                  NULL, err),
                     -EINVAL);
    assert_contains(err, "users[0].user.exec.args[1]: expected a string, got a mapping");
    assert_int_equal(parse_select("users: [{name: u, user: {password: 12345}}]\n", NULL, err),
                     -EINVAL);
    assert_contains(err, "users[0].user.password: expected a string, got a number");
    assert_int_equal(parse_select("- just\n- a list\n", NULL, err), -EINVAL);
    assert_contains(err, "expected a mapping at the top level, got a list");
    assert_int_equal(parse_select("apiVersion: v2\n", NULL, err), -EINVAL);
    assert_contains(err, "apiVersion: `v2' is not `v1'");
    assert_int_equal(parse_select("clusters: [{cluster: {server: 'https://x'}}]\n", NULL, err),
                     -EINVAL);
    assert_contains(err, "clusters[0]: name: not set");
    assert_int_equal(parse_select("clusters: [{name: a}, {name: b}, {name: a}]\n", NULL, err),
                     -EINVAL);
    assert_contains(err, "clusters[2]: name `a' is also the name of clusters[0]");
}

static void test_k8s_config_yaml_syntax_error(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[DC_ERR_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    put(f, "config",
        "clusters:\n"
        "- name: a\n"
        "  cluster:\n"
        "    server: [unclosed\n",
        path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -EINVAL);
    fmt(want, sizeof(want), "kubeconfig `%s': YAML syntax error at line 5 column 1: ", path);
    assert_contains(err, want);
    assert_contains(err, "(while parsing a flow sequence at line 4 column 13)");

    assert_int_equal(parse_select("users:\n  - name: u\n\tuser: {}\n", NULL, err), -EINVAL);
    assert_contains(err, "YAML syntax error at line 3 column 1");
    assert_int_equal(parse_select("a: 1\n---\nb: 2\n", NULL, err), -EINVAL);
    assert_contains(err, "more than one YAML document");
    assert_int_equal(parse_select("a: \xff\xfe\n", NULL, err), -EINVAL);
    assert_contains(err, "YAML input error at byte offset 3");
}

static void test_k8s_config_empty_file(void **state)
{
    struct fixture *f = *state;
    char path[PATH_LEN], want[DC_ERR_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    put(f, "empty", "", path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -ENOENT);
    fmt(want, sizeof(want),
        "kubeconfig `%s': current-context: not set and no context was named: the kubeconfig is "
        "empty",
        path);
    assert_string_equal(err, want);
    put(f, "empty", "---\n# nothing here\n", path);
    assert_int_equal(k8s_config_load_kubeconfig(path, NULL, &cfg, err), -ENOENT);
    assert_string_equal(err, want);
    assert_null(cfg);
}

static void test_k8s_config_inconsistent_users(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    const char *head = "current-context: x\n"
                       "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
                       "contexts: [{name: x, context: {cluster: c, user: u}}]\n";
    struct {
        const char *users;
        const char *want;
    } cases[] = {
        {"users: [{name: u, user: {token: SECRET-t, username: admin, password: SECRET-p}}]\n",
         "users[0].user: a token and username/password are both set"},
        {"users: [{name: u, user: {client-certificate: a.crt}}]\n",
         "users[0].user: a client certificate without client-key or client-key-data"},
        {"users: [{name: u, user: {auth-provider: {name: gcp, config: {access-token: SECRET}}}}]\n",
         "users[0].user.auth-provider: auth provider `gcp' is not supported"},
        {"users: [{name: u, user: {token: SECRET, as: system:admin}}]\n",
         "users[0].user.as: impersonation is not supported"},
        {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: "
         "kubelogin}}}]\n",
         "users[0].user.exec.interactiveMode: not set; apiVersion "
         "client.authentication.k8s.io/v1 requires it"},
        {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
         "command: x}}}]\n",
         "users[0].user.exec.apiVersion: `client.authentication.k8s.io/v1alpha1' is not"},
        {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1}}}]\n",
         "users[0].user.exec.command: not set"},
        {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
         "command: x, interactiveMode: Sometimes}}}]\n",
         "users[0].user.exec.interactiveMode: `Sometimes' is not IfAvailable, Never or Always"},
        {"users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
         "command: x, env: [{value: SECRET}]}}}]\n",
         "users[0].user.exec.env[0].name: not set"},
        {"users: [{name: u, user: {token: \"SECRET\\r\\nX-Evil: 1\"}}]\n",
         "users[0].user.token: contains a control character"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[TEXT_LEN];
        fmt(text, sizeof(text), "%s%s", head, cases[i].users);
        assert_int_equal(parse_select(text, NULL, err), -EINVAL);
        assert_contains(err, "kubeconfig `/test/config': ");
        assert_contains(err, cases[i].want);
        assert_lacks(err, "SECRET");
    }
    assert_int_equal(parse_select("current-context: x\n"
                                  "clusters: [{name: c, cluster: {server: 10.0.0.1:6443}}]\n"
                                  "contexts: [{name: x, context: {cluster: c}}]\n",
                                  NULL, err),
                     -EINVAL);
    assert_contains(err,
                    "clusters[0].cluster.server: `10.0.0.1:6443' does not start with https://");
    assert_int_equal(parse_select("current-context: x\n"
                                  "clusters: [{name: c, cluster: {certificate-authority: /ca}}]\n"
                                  "contexts: [{name: x, context: {cluster: c}}]\n",
                                  NULL, err),
                     -EINVAL);
    assert_contains(err, "clusters[0].cluster.server: not set (cluster `c')");
    assert_int_equal(parse_select("current-context: x\n"
                                  "clusters: [{name: c, cluster: {server: 'https://x', "
                                  "certificate-authority: /ca, insecure-skip-tls-verify: true}}]\n"
                                  "contexts: [{name: x, context: {cluster: c}}]\n",
                                  NULL, err),
                     -EINVAL);
    assert_contains(err, "clusters[0].cluster.insecure-skip-tls-verify: true together with a "
                         "certificate authority");
}

/* client-go's default rules: KUBECONFIG, else ~/.kube/config, else in-cluster. */
static void test_k8s_config_load_default(void **state)
{
    struct fixture *f = *state;
    char sa[PATH_LEN], home[PATH_LEN], path[PATH_LEN], err[DC_ERR_LEN];
    struct k8s_config *cfg = NULL;
    path_in(f, "home", home);
    make_dir(f, "home");
    setenv("HOME", home, 1);
    put_sa_dir(f, "in-cluster-token\n");
    path_in(f, "sa", sa);

    /* No kubeconfig anywhere, not in a cluster. */
    assert_int_equal(k8s_config_load_default(NULL, sa, &cfg, err), -ENOENT);
    assert_contains(err, "no Kubernetes configuration");
    assert_contains(err, "/home/.kube/config");

    /* In a cluster. */
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(k8s_config_load_default(NULL, sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->token, "in-cluster-token");
    k8s_config_free(cfg);

    /* ~/.kube/config without a current-context still falls back (client-go's empty config). */
    make_dir(f, "home/.kube");
    put(f, "home/.kube/config",
        "clusters: [{name: c, cluster: {server: 'https://home'}}]\n"
        "contexts: [{name: home, context: {cluster: c}}]\n",
        path);
    assert_int_equal(k8s_config_load_default(NULL, sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    k8s_config_free(cfg);
    /* ... but a named context, or a current-context, picks the kubeconfig. */
    assert_int_equal(k8s_config_load_default("home", sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://home");
    k8s_config_free(cfg);
    put(f, "home/.kube/config",
        "current-context: home\n"
        "clusters: [{name: c, cluster: {server: 'https://home'}}]\n"
        "contexts: [{name: home, context: {cluster: c}}]\n",
        path);
    assert_int_equal(k8s_config_load_default(NULL, sa, &cfg, err), 0);
    assert_string_equal(cfg->server, "https://home");
    k8s_config_free(cfg);

    /* KUBECONFIG replaces ~/.kube/config; a broken file is an error, never a fallback. */
    put(f, "broken", "clusters: {\n", path);
    setenv("KUBECONFIG", path, 1);
    assert_int_equal(k8s_config_load_default(NULL, sa, &cfg, err), -EINVAL);
    assert_contains(err, path);
    assert_null(cfg);
}

/* --- the YAML rules (k8s_yaml) --- */

static json_t *yaml_one(const char *text)
{
    json_t *docs = NULL;
    char err[DC_ERR_LEN];
    int rc = k8s_yaml_parse(text, strlen(text), &docs, err);
    if (rc != 0) {
        fprintf(stderr, "yaml: %s\n", err);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(docs), 1);
    json_t *doc = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    return doc;
}

static void test_k8s_config_yaml_scalars(void **state)
{
    (void)state;
    json_t *d = yaml_one("a: yes\nb: Off\nc: n\nd: ~\ne:\nf: 0x1F\ng: 0755\nh: 1_000\ni: 08\n"
                         "j: 1e3\nk: 'true'\nl: !!str 123\nm: 2030-01-02T03:04:05Z\nn: -0b101\n"
                         "o: .inf\np: 99999999999999999999\nq: \"x\\0y\"\nr: 0o17\n");
    assert_true(json_is_true(json_object_get(d, "a")));
    assert_true(json_is_false(json_object_get(d, "b")));
    assert_true(json_is_false(json_object_get(d, "c")));
    assert_true(json_is_null(json_object_get(d, "d")));
    assert_true(json_is_null(json_object_get(d, "e")));
    assert_int_equal(json_integer_value(json_object_get(d, "f")), 31);
    assert_int_equal(json_integer_value(json_object_get(d, "g")), 493);
    assert_int_equal(json_integer_value(json_object_get(d, "h")), 1000);
    assert_true(json_is_real(json_object_get(d, "i")));
    assert_true(json_real_value(json_object_get(d, "i")) == 8.0);
    assert_true(json_real_value(json_object_get(d, "j")) == 1000.0);
    assert_string_equal(json_string_value(json_object_get(d, "k")), "true");
    assert_string_equal(json_string_value(json_object_get(d, "l")), "123");
    assert_string_equal(json_string_value(json_object_get(d, "m")), "2030-01-02T03:04:05Z");
    assert_int_equal(json_integer_value(json_object_get(d, "n")), -5);
    assert_string_equal(json_string_value(json_object_get(d, "o")), ".inf");
    assert_true(json_is_real(json_object_get(d, "p")));
    assert_int_equal(json_string_length(json_object_get(d, "q")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "r")), 15);
    json_decref(d);
}

static void test_k8s_config_yaml_anchors(void **state)
{
    (void)state;
    char err[DC_ERR_LEN];
    json_t *docs = NULL;
    json_t *d = yaml_one("base: &b {a: 1, b: 2}\n"
                         "more: &m {c: 3}\n"
                         "x:\n  b: 9\n  <<: [*b, *m]\n"
                         "y: *b\n"
                         "&k key: value\n"
                         "z: {*k : aliased}\n");
    json_t *x = json_object_get(d, "x");
    assert_int_equal(json_integer_value(json_object_get(x, "a")), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "b")), 9);
    assert_int_equal(json_integer_value(json_object_get(x, "c")), 3);
    assert_null(json_object_get(x, "<<"));
    assert_ptr_equal(json_object_get(d, "y"), json_object_get(d, "base"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "z"), "key")),
                        "aliased");
    json_decref(d);

    /* Billion laughs stops at K8S_YAML_MAX_NODES; nesting at K8S_YAML_MAX_DEPTH. */
    const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                         "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    assert_int_equal(k8s_yaml_parse(laughs, strlen(laughs), &docs, err), -EMSGSIZE);
    assert_contains(err, "once aliases are expanded");
    char deep[1024];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    assert_int_equal(k8s_yaml_parse(deep, strlen(deep), &docs, err), -EMSGSIZE);
    assert_contains(err, "nested deeper than 256 levels");
    assert_int_equal(k8s_yaml_parse("a: *nope\n", 9, &docs, err), -EINVAL);
    assert_contains(err, "alias `*nope' names no earlier complete anchor");
    assert_int_equal(k8s_yaml_parse("? [a]\n: b\n", 10, &docs, err), -EINVAL);
    assert_contains(err, "a mapping key must be a scalar");
    assert_null(docs);

    assert_int_equal(k8s_yaml_parse("a: 1\n---\n---\nb: 2\n", 18, &docs, err), 0);
    assert_int_equal(json_array_size(docs), 3);
    assert_true(json_is_null(json_array_get(docs, 1)));
    json_decref(docs);
    assert_int_equal(k8s_yaml_parse("", 0, &docs, err), 0);
    assert_int_equal(json_array_size(docs), 0);
    json_decref(docs);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_k8s_config_realistic),
        T(test_k8s_config_named_context),
        T(test_k8s_config_json_input),
        T(test_k8s_config_relative_paths),
        T(test_k8s_config_data_and_file_fields),
        T(test_k8s_config_merge_precedence),
        T(test_k8s_config_in_cluster),
        T(test_k8s_config_token_rotation),
        T(test_k8s_config_exec_v1),
        T(test_k8s_config_exec_v1beta1),
        T(test_k8s_config_exec_failure),
        T(test_k8s_config_exec_timeout),
        T(test_k8s_config_exec_malformed),
        T(test_k8s_config_exec_not_found),
        T(test_k8s_config_missing_current_context),
        T(test_k8s_config_unknown_cluster),
        T(test_k8s_config_bad_base64),
        T(test_k8s_config_wrong_types),
        T(test_k8s_config_yaml_syntax_error),
        T(test_k8s_config_empty_file),
        T(test_k8s_config_inconsistent_users),
        T(test_k8s_config_load_default),
        T(test_k8s_config_yaml_scalars),
        T(test_k8s_config_yaml_anchors),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
