"""Structural-schema pruning and validation for custom resources (a subset of
k8s.io/apiextensions-apiserver/pkg/apiserver/schema and kube-openapi validate)."""

import re

from . import errors as E

OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
}


def _join(path, key):
    return key if not path else "%s.%s" % (path, key)


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "unknown"


def prune(obj, schema, path="", unknown=None, root=True):
    """Drop fields the schema does not declare; record their paths in unknown."""
    if unknown is None:
        unknown = []
    if schema is None:
        return obj
    if isinstance(obj, dict):
        if root:
            out = {}
            for k, v in obj.items():
                if k in ("apiVersion", "kind"):
                    out[k] = v
                elif k == "metadata":
                    out[k] = prune_metadata(v, unknown)
                else:
                    props = schema.get("properties") or {}
                    if k in props:
                        out[k] = prune(v, props[k], k, unknown, False)
                    elif schema.get("x-kubernetes-preserve-unknown-fields"):
                        out[k] = v
                    else:
                        unknown.append(k)
            return out
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        out = {}
        for k, v in obj.items():
            if props is not None and k in props:
                out[k] = prune(v, props[k], _join(path, k), unknown, False)
            elif isinstance(addl, dict):
                out[k] = prune(v, addl, _join(path, k), unknown, False)
            elif addl is True or preserve or (props is None and addl is None and schema.get("type") != "object"):
                out[k] = v
            elif props is None and addl is None and preserve is None and schema.get("type") == "object":
                # an object with neither properties nor additionalProperties keeps nothing
                unknown.append(_join(path, k))
            else:
                unknown.append(_join(path, k))
        return out
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(x, items, "%s[%d]" % (path, i), unknown, False) for i, x in enumerate(obj)]
        return obj
    return obj


def prune_metadata(meta, unknown):
    if not isinstance(meta, dict):
        return meta
    out = {}
    for k, v in meta.items():
        if k in OBJECT_META_FIELDS:
            out[k] = v
        else:
            unknown.append("metadata.%s" % k)
    return out


def validate(obj, schema, path="", root=True):
    """Return a list of FieldError."""
    errs = []
    if schema is None:
        return errs
    if root:
        props = schema.get("properties") or {}
        for k, v in (obj or {}).items():
            if k in ("apiVersion", "kind", "metadata"):
                continue
            if k in props:
                errs.extend(validate(v, props[k], k, False))
        for r in schema.get("required") or []:
            if r not in (obj or {}) and r not in ("apiVersion", "kind", "metadata"):
                errs.append(E.required(r))
        return errs
    if obj is None:
        if schema.get("nullable"):
            return errs
        t = schema.get("type")
        if t:
            errs.append(E.type_invalid(path, "null", "%s in body must be of type %s: \"null\"" % (path, t)))
        return errs
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(obj, (int, str)) or isinstance(obj, bool):
            errs.append(E.type_invalid(path, _type_name(obj), "%s in body must be of type integer-or-string: %s" % (path, E.go_quote(_type_name(obj)))))
            return errs
    elif t:
        actual = _type_name(obj)
        ok = (actual == t) or (t == "number" and actual == "integer")
        if not ok:
            errs.append(E.type_invalid(path, actual, "%s in body must be of type %s: %s" % (path, t, E.go_quote(actual))))
            return errs
    if "enum" in schema and schema["enum"] is not None and obj not in schema["enum"]:
        errs.append(E.not_supported(path, obj, [v if isinstance(v, str) else str(v) for v in schema["enum"]]))
    if isinstance(obj, str):
        if "maxLength" in schema and len(obj) > schema["maxLength"]:
            errs.append(E.too_long(path, schema["maxLength"]))
        if "minLength" in schema and len(obj) < schema["minLength"]:
            errs.append(E.invalid(path, obj, "%s in body should be at least %d chars long" % (path, schema["minLength"])))
        if "pattern" in schema:
            try:
                if not re.search(schema["pattern"], obj):
                    errs.append(E.invalid(path, obj, "%s in body should match '%s'" % (path, schema["pattern"])))
            except re.error:
                pass
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        if "minimum" in schema:
            if schema.get("exclusiveMinimum") and not obj > schema["minimum"]:
                errs.append(E.invalid(path, obj, "%s in body should be greater than %s" % (path, schema["minimum"])))
            elif obj < schema["minimum"]:
                errs.append(E.invalid(path, obj, "%s in body should be greater than or equal to %s" % (path, schema["minimum"])))
        if "maximum" in schema:
            if schema.get("exclusiveMaximum") and not obj < schema["maximum"]:
                errs.append(E.invalid(path, obj, "%s in body should be less than %s" % (path, schema["maximum"])))
            elif obj > schema["maximum"]:
                errs.append(E.invalid(path, obj, "%s in body should be less than or equal to %s" % (path, schema["maximum"])))
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in obj.items():
            if k in props:
                errs.extend(validate(v, props[k], _join(path, k), False))
            elif isinstance(addl, dict):
                errs.extend(validate(v, addl, _join(path, k), False))
        for r in schema.get("required") or []:
            if r not in obj:
                errs.append(E.required(_join(path, r)))
        if "maxProperties" in schema and len(obj) > schema["maxProperties"]:
            errs.append(E.FieldError("FieldValueTooMany", path, len(obj), "must have at most %d items" % schema["maxProperties"]))
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, x in enumerate(obj):
                errs.extend(validate(x, items, "%s[%d]" % (path, i), False))
        if "maxItems" in schema and len(obj) > schema["maxItems"]:
            errs.append(E.FieldError("FieldValueTooMany", path, len(obj), "must have at most %d items" % schema["maxItems"]))
        if "minItems" in schema and len(obj) < schema["minItems"]:
            errs.append(E.invalid(path, len(obj), "%s in body should have at least %d items" % (path, schema["minItems"])))
    return errs


def apply_defaults(obj, schema, root=True):
    """Apply 'default' values from the schema (structural defaulting)."""
    if schema is None or not isinstance(obj, dict):
        return obj
    props = schema.get("properties") or {}
    for k, sub in props.items():
        if root and k in ("apiVersion", "kind", "metadata"):
            continue
        if k not in obj and isinstance(sub, dict) and "default" in sub:
            import copy
            obj[k] = copy.deepcopy(sub["default"])
        if k in obj and isinstance(obj[k], dict):
            apply_defaults(obj[k], sub, False)
        elif k in obj and isinstance(obj[k], list) and isinstance(sub.get("items"), dict):
            for x in obj[k]:
                apply_defaults(x, sub["items"], False)
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict):
        for k, v in obj.items():
            if k not in props and isinstance(v, dict):
                apply_defaults(v, addl, False)
    return obj
