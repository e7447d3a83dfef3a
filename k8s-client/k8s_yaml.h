/* k8s_yaml: YAML (or JSON) text to jansson values, resolved the way Kubernetes tools do.
 *
 * Every document of a YAML stream becomes one json_t, with the scalar rules of
 * sigs.k8s.io/yaml (go-yaml v2, YAML 1.1), which kubectl and client-go use:
 *   - plain scalars: `~`, `null`, `Null`, `NULL` and the empty scalar are null;
 *     true/false, yes/no, on/off and y/n (lower, Capitalised or UPPER) are booleans;
 *     integers are decimal, 0x hex, 0o or leading-0 octal, 0b binary, with `_`
 *     ignored; floats match [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?;
 *     everything else (timestamps, .inf, .nan included) is a string;
 *   - quoted, literal and folded scalars are strings, as is any scalar tagged
 *     !!str or with a tag this module does not know; !!null, !!bool, !!int and
 *     !!float must match their text;
 *   - anchors and aliases share one json_t (json_incref); merge keys (`<<: *a`,
 *     `<<: [*a, *b]`) copy missing keys, explicit keys win, earlier sources win;
 *   - mapping keys must be scalars (or aliases of strings) and become their text;
 *     a repeated key replaces the earlier value (go-yaml v2).
 * JSON is YAML here, so JSON input gives the JSON value.
 *
 * Pure: no I/O, no logging, no globals. It does not keep comments, styles or
 * line numbers of values, and it has no complex keys. Scalar bytes are wiped
 * from libyaml's events once copied; k8s_yaml_wipe() wipes the result. */
#ifndef DC_K8S_YAML_H
#define DC_K8S_YAML_H

#include "err.h"

#include <jansson.h>
#include <stddef.h>

/* Deepest nesting of sequences and mappings accepted: Kubernetes objects need
 * about 20; jansson's own decoder stops at 2048 and its free recurses. */
#define K8S_YAML_MAX_DEPTH 256
/* Most nodes a stream may expand to once aliases are counted at their full
 * size: stops "billion laughs" documents (go-yaml caps alias expansion too). */
#define K8S_YAML_MAX_NODES 1000000

/* Parses (text, len) (no NUL needed) into *docs, a JSON array with one element
 * per document (JSON null for an empty document, an empty array for an empty
 * stream). Returns 0; -EINVAL with err naming the line and column (1-based) of
 * a syntax error, or the byte offset of bad UTF-8; -EMSGSIZE past a limit
 * above; -ENOMEM. Error text never quotes scalar values. Caller frees *docs
 * with json_decref(). */
int k8s_yaml_parse(const char *text, size_t len, json_t **docs, char *err) DC_MUST_CHECK;

/* Zeroes the bytes of every string value in v, recursively (keys are kept),
 * so a document that held secrets can be released with json_decref() without
 * leaving them in freed memory. Accepts NULL. */
void k8s_yaml_wipe(json_t *v);

#endif
