/* k8s_fields: keeps only the fields a caller names (JSON pointers), pure.
 *
 * A controller that watches Clusters reads a handful of fields (name,
 * resourceVersion, two annotations, spec.displayName) out of objects that
 * carry managedFields, last-applied-configuration and status. A projection
 * is built once from a list of RFC 6901 JSON pointers such as
 *
 *   "/metadata/name"  "/metadata/annotations/loft.sh~1derp-endpoint"
 *   "/spec/displayName"  "/endpoints/0/addresses"
 *
 * and k8s_project() copies just those paths out of each object into a new,
 * small object, so memory stays flat for the parts the controller does not
 * read and the big source object can be freed at once.
 *
 * Pointer syntax (RFC 6901): "/" token { "/" token }; in a token "~0" means
 * '~' and "~1" means '/', any other '~' is an error. A token names an object
 * member, or an array element when it is "0" or [1-9][0-9]* and the value is
 * an array ("-" and anything else never match an array element). There is
 * no wildcard: name each element you keep.
 *
 * The result mirrors the source: every kept value sits at the same pointer,
 * with the same container types on the way (objects created as needed; an
 * array element kept at index i is preceded by nulls at indices not kept).
 * So for every kept pointer p, k8s_pointer_get(result, p) equals
 * k8s_pointer_get(source, p). Paths absent from the source are left out.
 * No I/O, no logging; nothing in the result is shared with the source. */
#ifndef DC_K8S_FIELDS_H
#define DC_K8S_FIELDS_H

#include "err.h"

#include <jansson.h>
#include <stddef.h>

/* Longest pointer accepted, in bytes (without the NUL). Our limit: the
 * longest Kubernetes field path in use is an annotation, whose key is at
 * most 253 + 1 + 63 bytes (a DNS-subdomain prefix, '/', a name), about 340
 * bytes once each '/' is written "~1" after "/metadata/annotations/". */
#define K8S_POINTER_MAX_LEN 1024
/* Most pointers in one projection. Our limit: a controller keeps a few
 * dozen fields at most; more means it should keep the whole object. */
#define K8S_PROJECTION_MAX_POINTERS 256

/* One parsed pointer. */
struct k8s_pointer {
    char *tokens;   /* owned: the decoded reference tokens, each NUL-terminated,
                       back to back ("metadata\0name\0"); NULL when ntokens == 0 */
    size_t ntokens; /* number of tokens, >= 1 */
};

/* A set of pointers to keep. The all-zero struct is an empty projection
 * (projects to {}) and is safe to deinit. */
struct k8s_projection {
    struct k8s_pointer *ptrs; /* owned: n entries, in the order given */
    size_t n;                 /* number of pointers */
};

/* Parses pointers[0..n) (borrowed; each a NUL-terminated RFC 6901 pointer
 * that starts with '/') into p. Returns 0, -EINVAL for a pointer that is
 * NULL, empty, does not start with '/' or has a '~' not followed by '0' or
 * '1' (err quotes it), -EMSGSIZE for a pointer longer than
 * K8S_POINTER_MAX_LEN or more than K8S_PROJECTION_MAX_POINTERS pointers, or
 * -ENOMEM. On failure p is the empty projection. err: DC_ERR_LEN bytes or
 * NULL. Free with k8s_projection_deinit(). */
int k8s_projection_init(struct k8s_projection *p, const char *const *pointers, size_t n,
                        char *err) DC_MUST_CHECK;
/* Frees the parsed pointers; p becomes the empty projection. Accepts the
 * all-zero struct. */
void k8s_projection_deinit(struct k8s_projection *p);

/* Returns a NEW value (caller json_decref()s it) holding deep copies of the
 * values at p's pointers in object (borrowed; not modified), at the same
 * paths: an object when object is an object, an array when it is an array.
 * Returns NULL when object is NULL or neither an object nor an array, or
 * when out of memory. */
json_t *k8s_project(const struct k8s_projection *p, const json_t *object);

/* Resolves pointer (NUL-terminated, borrowed) in root: the value found,
 * borrowed from root (valid while root is, not a new reference), or NULL
 * when absent, when root is NULL, or when pointer is invalid (as above, or
 * longer than K8S_POINTER_MAX_LEN). The empty pointer "" names root itself. */
const json_t *k8s_pointer_get(const json_t *root, const char *pointer);
/* Like k8s_pointer_get() for a string value: the string, pointing into root,
 * or NULL when absent, not a string, or holding a NUL byte. */
const char *k8s_pointer_get_string(const json_t *root, const char *pointer);

#endif
