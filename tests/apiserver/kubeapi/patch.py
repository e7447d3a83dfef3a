"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
subset (k8s.io/apimachinery/pkg/util/strategicpatch) for built-in kinds."""

import copy

from .errors import APIError, bad_request


class PatchError(Exception):
    pass


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    else:
        target = dict(target)
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


# ---------------------------------------------------------------- JSON patch

def _unescape(tok):
    return tok.replace("~1", "/").replace("~0", "~")


def _split_pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %s" % path)
    return [_unescape(t) for t in path[1:].split("/")]


def _container(doc, toks, op):
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                i = int(t)
            except ValueError:
                raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
            if i < 0 or i >= len(cur):
                raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
            cur = cur[i]
        else:
            raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
    return cur


def _get(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError):
                raise KeyError(t)
        else:
            raise KeyError(t)
    return cur


def json_patch(doc, ops):
    """Apply RFC 6902 operations; raises PatchError with evanphx/json-patch-like messages."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise bad_request("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        kind = op.get("op")
        path = op.get("path")
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise PatchError("Unexpected kind: %s" % kind)
        if path is None:
            raise PatchError("%s operation missing path" % kind)
        toks = _split_pointer(path)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("%s operation missing value" % kind)
        if kind == "test":
            try:
                cur = _get(doc, toks)
            except KeyError:
                cur = None
            if cur != op.get("value"):
                raise PatchError("testing value %s failed: test failed" % path)
            continue
        if kind in ("move", "copy"):
            frm = _split_pointer(op.get("from", ""))
            try:
                val = copy.deepcopy(_get(doc, frm))
            except KeyError:
                raise PatchError("%s operation does not apply: doc is missing from path: %s" % (kind, op.get("from")))
            if kind == "move":
                doc = _remove(doc, frm, "move")
            doc = _add(doc, toks, val, kind)
            continue
        if kind == "remove":
            doc = _remove(doc, toks, "remove")
        elif kind == "add":
            doc = _add(doc, toks, copy.deepcopy(op["value"]), "add")
        elif kind == "replace":
            if not toks:
                doc = copy.deepcopy(op["value"])
                continue
            c = _container(doc, toks, "replace")
            last = toks[-1]
            if isinstance(c, dict):
                if last not in c:
                    raise PatchError("replace operation does not apply: doc is missing key: %s: missing value" % path)
                c[last] = copy.deepcopy(op["value"])
            elif isinstance(c, list):
                try:
                    i = int(last)
                    c[i] = copy.deepcopy(op["value"])
                except (ValueError, IndexError):
                    raise PatchError("replace operation does not apply: doc is missing key: %s: missing value" % path)
            else:
                raise PatchError("replace operation does not apply: doc is missing path: %s: missing value" % path)
    return doc


def _add(doc, toks, val, op):
    if not toks:
        return val
    c = _container(doc, toks, op)
    last = toks[-1]
    if isinstance(c, dict):
        c[last] = val
    elif isinstance(c, list):
        if last == "-":
            c.append(val)
        else:
            try:
                i = int(last)
            except ValueError:
                raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
            if i < 0 or i > len(c):
                raise PatchError("Unable to access invalid index: %d: invalid index referenced" % i)
            c.insert(i, val)
    else:
        raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
    return doc


def _remove(doc, toks, op):
    if not toks:
        return None
    c = _container(doc, toks, op)
    last = toks[-1]
    if isinstance(c, dict):
        if last not in c:
            raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
        del c[last]
    elif isinstance(c, list):
        try:
            i = int(last)
            if i < 0:
                raise IndexError
            del c[i]
        except (ValueError, IndexError):
            raise PatchError("Unable to remove nonexistent key: %s: missing value" % last)
    else:
        raise PatchError("%s operation does not apply: doc is missing path: \"%s\": missing value" % (op, "/" + "/".join(toks)))
    return doc


# ------------------------------------------------------- strategic merge patch

# Merge keys of lists that built-in types declare with patchStrategy=merge.
# Key: (parent field name, context); context is the nearest enclosing list
# field, which tells container ports (containerPort) from service ports (port).
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "ownerReferences": "uid", "conditions": "type",
    "hostAliases": "ip", "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
    "schedulingGates": "name", "readinessGates": "conditionType", "secrets": "name",
}
PRIMITIVE_MERGE = {"finalizers"}


def _merge_key(field, in_containers):
    if field == "ports":
        return "containerPort" if in_containers else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(original, patch, in_containers=False):
    """Apply a strategic merge patch to original (both dicts)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        out = {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        return out
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise APIError(400, "BadRequest", "Unknown patch type: %s" % directive)
    result = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(v, list):
                result[field] = [x for x in result[field] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
            continue
        cur = result.get(k)
        if isinstance(v, dict):
            if v.get("$patch") == "delete" and len(v) == 1:
                result.pop(k, None)
                continue
            merged = strategic_merge(cur if isinstance(cur, dict) else {}, v, in_containers or k in ("containers", "initContainers", "ephemeralContainers"))
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(k, cur if isinstance(cur, list) else [], v, in_containers,
                                    patch.get("$setElementOrder/" + k))
        else:
            result[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        for k in list(result.keys()):
            if k not in retain:
                del result[k]
    return result


def _merge_list(field, cur, patch_list, in_containers, order):
    if field in PRIMITIVE_MERGE:
        out = list(cur)
        for x in patch_list:
            if isinstance(x, dict) and x.get("$patch") == "replace":
                return []
            if x not in out:
                out.append(x)
        return _apply_order(out, order, None)
    key = _merge_key(field, in_containers)
    if key is None:
        return [x for x in copy.deepcopy(patch_list) if not (isinstance(x, dict) and "$patch" in x and len(x) == 1)]
    # a {"$patch": "replace"} element replaces the whole list
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch_list):
        return [copy.deepcopy(x) for x in patch_list if not (isinstance(x, dict) and x.get("$patch") == "replace")]
    out = copy.deepcopy(cur)
    for item in patch_list:
        if not isinstance(item, dict):
            out.append(copy.deepcopy(item))
            continue
        kv = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            merged = strategic_merge(out[idx], item, in_containers or field in ("containers", "initContainers", "ephemeralContainers"))
            if merged is None:
                del out[idx]
            else:
                out[idx] = merged
    return _apply_order(out, order, key)


def _apply_order(items, order, key):
    if not isinstance(order, list) or not order:
        return items
    if key is None:
        rank = {repr(v): i for i, v in enumerate(order)}
        return sorted(items, key=lambda x: rank.get(repr(x), len(rank)))
    rank = {}
    for i, o in enumerate(order):
        if isinstance(o, dict) and key in o:
            rank[repr(o[key])] = i
    return sorted(items, key=lambda x: rank.get(repr(x.get(key)) if isinstance(x, dict) else "", len(rank)))
