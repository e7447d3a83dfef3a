"""metadata.managedFields bookkeeping and a server-side apply subset.

Field sets are sets of paths (tuples of map keys).  Maps are walked; lists
and scalars are leaves (lists are treated as atomic, which is what
kube-apiserver does for lists without x-kubernetes-list-type=map/set)."""

import copy

from . import errors as E
from . import util as U

IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName"}


def leaves(obj, prefix=(), skip_status=False, only_status=False):
    out = set()
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if not prefix:
            if k in ("apiVersion", "kind"):
                continue
            if skip_status and k == "status":
                continue
            if only_status and k != "status":
                continue
        if prefix == ("metadata",) and k in IGNORED_META:
            continue
        p = prefix + (k,)
        if isinstance(v, dict) and v:
            out |= leaves(v, p)
        else:
            out.add(p)
    return out


def get_path(obj, path):
    cur = obj
    for k in path:
        if not isinstance(cur, dict) or k not in cur:
            return _MISSING
        cur = cur[k]
    return cur


_MISSING = object()


def del_path(obj, path):
    cur = obj
    parents = []
    for k in path[:-1]:
        if not isinstance(cur, dict) or k not in cur:
            return
        parents.append((cur, k))
        cur = cur[k]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # drop maps left empty by the removal
    for parent, k in reversed(parents):
        if isinstance(parent.get(k), dict) and not parent[k]:
            del parent[k]
        else:
            break


def set_path(obj, path, value):
    cur = obj
    for k in path[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[path[-1]] = copy.deepcopy(value)


def encode_fields(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for k in p:
            cur = cur.setdefault("f:" + k, {})
    return root


def decode_fields(fv1, prefix=()):
    out = set()
    if not isinstance(fv1, dict):
        return out
    children = [k for k in fv1 if k.startswith("f:")]
    if not children:
        if prefix:
            out.add(prefix)
        return out
    for k in children:
        out |= decode_fields(fv1[k], prefix + (k[2:],))
    return out


def _entries(obj):
    md = obj.get("metadata") or {}
    res = []
    for e in md.get("managedFields") or []:
        if not isinstance(e, dict):
            continue
        res.append([e, decode_fields(e.get("fieldsV1") or {})])
    return res


def _same_manager(e, manager, operation, subresource):
    return (e.get("manager") == manager and e.get("operation") == operation
            and (e.get("subresource") or "") == (subresource or ""))


def _store(obj, entries):
    out = []
    for e, fs in entries:
        if not fs:
            continue
        e = dict(e)
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = encode_fields(fs)
        out.append(e)
    md = obj.setdefault("metadata", {})
    if out:
        md["managedFields"] = out
    else:
        md.pop("managedFields", None)


def update(old, new, manager, api_version, subresource=None, incoming_has_managed=False):
    """Record an Update operation by manager turning old into new (new is modified)."""
    status_only = subresource == "status"
    base = new if incoming_has_managed or old is None else old
    entries = _entries(base) if base is not None else []
    new_leaves = leaves(new, only_status=status_only) if status_only else leaves(new)
    if old is None:
        changed = set(new_leaves)
    else:
        changed = {p for p in new_leaves if get_path(old, p) != get_path(new, p)}
    all_new = leaves(new)
    mine = None
    for ent in entries:
        e, fs = ent
        if _same_manager(e, manager, "Update", subresource):
            mine = ent
            continue
        fs -= changed
        fs &= all_new
    if mine is None and changed:
        mine = [{"manager": manager, "operation": "Update", "apiVersion": api_version, "time": U.rfc3339()}, set()]
        if subresource:
            mine[0]["subresource"] = subresource
        entries.append(mine)
    if mine is not None:
        mine[1] = (mine[1] & all_new) | changed
        mine[0]["apiVersion"] = api_version
        if changed:
            mine[0]["time"] = U.rfc3339()
    _store(new, entries)


def _print_manager(e):
    if e.get("operation") == "Update":
        if e.get("time"):
            return '"%s" using %s at %s' % (e.get("manager"), e.get("apiVersion"), e.get("time"))
        return '"%s" using %s' % (e.get("manager"), e.get("apiVersion"))
    return '"%s"' % e.get("manager")


def _path_str(p):
    return "".join("." + k for k in p)


def apply(current, applied, manager, api_version, force, subresource=None):
    """Server-side apply of `applied` onto `current` (None to create).
    Returns the new object (not yet validated); raises a 409 on conflicts."""
    app_leaves = leaves(applied, only_status=subresource == "status") if subresource == "status" else leaves(applied, skip_status=False)
    base = copy.deepcopy(current) if current is not None else {}
    entries = _entries(base) if current is not None else []
    conflicts = []
    if current is not None:
        for p in sorted(app_leaves):
            cv = get_path(current, p)
            if cv is _MISSING or cv == get_path(applied, p):
                continue
            for e, fs in entries:
                if _same_manager(e, manager, "Apply", subresource):
                    continue
                if p in fs:
                    conflicts.append((e, p))
    if conflicts and not force:
        causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s" % _print_manager(e),
                   "field": _path_str(p)} for e, p in conflicts]
        if len(conflicts) == 1:
            msg = "Apply failed with 1 conflict: conflict with %s: %s" % (_print_manager(conflicts[0][0]), _path_str(conflicts[0][1]))
        else:
            by = {}
            for e, p in conflicts:
                by.setdefault(_print_manager(e), []).append(_path_str(p))
            lines = []
            for m in sorted(by):
                lines.append("conflicts with %s:" % m)
                lines.extend("- %s" % p for p in by[m])
            msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(lines))
        raise E.APIError(409, "Conflict", msg, {"causes": causes})
    mine = None
    for ent in entries:
        if _same_manager(ent[0], manager, "Apply", subresource):
            mine = ent
    prev_applied = set(mine[1]) if mine else set()
    new = base
    # fields this manager applied before but no longer applies: remove unless someone else owns them
    for p in prev_applied - app_leaves:
        owned_by_other = any(p in fs for e, fs in entries if e is not (mine[0] if mine else None))
        if not owned_by_other:
            del_path(new, p)
    for p in app_leaves:
        set_path(new, p, get_path(applied, p))
    for k in ("apiVersion", "kind"):
        if k in applied:
            new[k] = applied[k]
    md_app = applied.get("metadata") or {}
    md = new.setdefault("metadata", {})
    for k in ("name", "namespace", "generateName"):
        if k in md_app and k not in md:
            md[k] = md_app[k]
    # ownership: others lose what changed hands
    for e, fs in entries:
        if mine is not None and e is mine[0]:
            continue
        for p in list(fs):
            if p in app_leaves and (current is None or get_path(current, p) != get_path(applied, p)):
                fs.discard(p)
    if mine is None:
        mine = [{"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": U.rfc3339()}, set()]
        if subresource:
            mine[0]["subresource"] = subresource
        entries.append(mine)
    mine[1] = set(app_leaves)
    mine[0]["apiVersion"] = api_version
    mine[0]["time"] = U.rfc3339()
    all_new = leaves(new)
    for e, fs in entries:
        fs &= all_new
    _store(new, entries)
    return new
