/* fuzz_kubeconfig: the pure kubeconfig parser of k8s-client/k8s_config.c, and the YAML to JSON
 * converter (k8s_yaml.c) under it, on arbitrary bytes. No file system, environment or process
 * is touched: k8s_kubeconfig_parse() and k8s_kubeconfig_select() are pure, and token files and
 * exec plugins are never used here.
 *
 * Checks: the same answer with and without err; a failure fills err with a NUL-terminated
 * sentence naming the origin; selecting the current context and every named one either builds
 * a config (server with a scheme, namespace, the context's name) or fails with err filled; an
 * inline token reads back through k8s_config_token(); the converter alone agrees with the
 * parser on YAML syntax. Everything is freed, so leaks show. */
#include "k8s_config.h"
#include "k8s_yaml.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN "fuzz/config"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_err(const char *err)
{
    check(memchr(err, '\0', DC_ERR_LEN) != NULL && err[0] != '\0');
    check(strncmp(err, "kubeconfig `" ORIGIN "': ", strlen("kubeconfig `" ORIGIN "': ")) == 0);
}

static void check_select(const struct k8s_kubeconfig *kc, const char *context)
{
    struct k8s_config *cfg = NULL;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = k8s_kubeconfig_select(kc, context, &cfg, err);
    check(rc == 0 || rc == -EINVAL || rc == -ENOENT || rc == -ENOMEM);
    if (rc != 0) {
        check(cfg == NULL);
        check_err(err);
        return;
    }
    check(cfg->server != NULL &&
          (strncmp(cfg->server, "https://", 8) == 0 || strncmp(cfg->server, "http://", 7) == 0));
    check(cfg->namespace != NULL && cfg->namespace[0] != '\0');
    check(cfg->context_name != NULL && cfg->cluster_name != NULL);
    check(context == NULL || strcmp(cfg->context_name, context) == 0);
    check((cfg->ca_file == NULL) || (cfg->ca_data == NULL));
    check(!cfg->is_insecure || (cfg->ca_file == NULL && cfg->ca_data == NULL));
    if (cfg->token_file == NULL) {
        char tok[256];
        rc = k8s_config_token(cfg, tok, sizeof(tok), err);
        check(rc == 0 || rc == -EMSGSIZE);
        check(rc != 0 || strlen(tok) == cfg->token_len);
    }
    if (cfg->exec != NULL) {
        check(cfg->exec->command != NULL && cfg->exec->api_version != NULL);
        check(cfg->exec->timeout_ms == K8S_EXEC_TIMEOUT_MS);
    }
    k8s_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct k8s_kubeconfig *kc = NULL, *quiet = NULL;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = k8s_kubeconfig_parse(text, size, ORIGIN, &kc, err);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE || rc == -ENOMEM);
    check(k8s_kubeconfig_parse(text, size, ORIGIN, &quiet, NULL) == rc);
    k8s_kubeconfig_free(quiet);

    json_t *docs = NULL;
    char yerr[DC_ERR_LEN];
    int yrc = k8s_yaml_parse(text, size, &docs, yerr);
    check((yrc == 0) == (docs != NULL));
    check(yrc == 0 || rc == yrc);
    k8s_yaml_wipe(docs);
    json_decref(docs);

    if (rc != 0) {
        check(kc == NULL);
        check_err(err);
        return 0;
    }
    check_select(kc, NULL);
    for (size_t i = 0; i < k8s_kubeconfig_context_count(kc); i++) {
        const char *name = k8s_kubeconfig_context_name(kc, i);
        check(name != NULL && name[0] != '\0');
        check_select(kc, name);
    }
    check(k8s_kubeconfig_context_name(kc, k8s_kubeconfig_context_count(kc)) == NULL);
    k8s_kubeconfig_free(kc);
    return 0;
}
