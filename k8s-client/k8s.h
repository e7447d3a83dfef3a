/* k8s: umbrella header of libk8s, the Kubernetes API client library.
 *
 * Modules (each header is its own contract):
 *   k8s_config  kubeconfig (KUBECONFIG list, contexts, exec plugins) and
 *               in-cluster configuration
 *   k8s_yaml    libyaml documents to jansson values (shared by the parsers)
 *   k8s_stream  watch-event stream splitter (pure)
 *   k8s_fields  projections: keep only the JSON pointers a caller names
 *   k8s_http    requests over one libcurl multi handle driven by the caller's
 *               loop: TLS, tokens, Status errors, Retry-After, capped backoff
 *   k8s_watch   LIST then WATCH as client-go's reflector: bookmarks, resume,
 *               410 relist with the missed changes, projected store
 *   k8s_event   Event recorder: events.k8s.io/v1 (core/v1 fallback), series
 *               counting, per-object spam filter
 *   k8s_lease   leader election on a coordination.k8s.io/v1 Lease
 *   k8s_configmap  ConfigMap read / write with optimistic concurrency
 * Libraries do not own a loop: the program's loop drives them. */
#ifndef DC_K8S_H
#define DC_K8S_H

#endif
