"""Label and field selectors (k8s.io/apimachinery/pkg/labels and pkg/fields)."""

import re

from .errors import bad_request

_KEY_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class LabelSelector:
    def __init__(self, reqs):
        self.reqs = reqs  # list of (key, op, values)

    def matches(self, labels):
        labels = labels or {}
        for key, op, values in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op in ("=", "==", "in"):
                if not has or v not in values:
                    return False
            elif op in ("!=", "notin"):
                if has and v in values:
                    return False
            elif op == "exists":
                if not has:
                    return False
            elif op == "!":
                if has:
                    return False
            elif op in (">", "<"):
                if not has:
                    return False
                try:
                    lv = int(v)
                    rv = int(values[0])
                except (TypeError, ValueError):
                    return False
                if op == ">" and not lv > rv:
                    return False
                if op == "<" and not lv < rv:
                    return False
        return True

    def empty(self):
        return not self.reqs


def _split_top(s):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(s):
    s = (s or "").strip()
    if not s:
        return LabelSelector([])
    reqs = []
    for part in _split_top(s):
        part = part.strip()
        if not part:
            raise bad_request("unable to parse requirement: found '', expected: identifier")
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", part)
        if m:
            key, op, vals = m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",")]
            _check_key(key)
            reqs.append((key, op, vals))
            continue
        if part.startswith("!"):
            key = part[1:].strip()
            _check_key(key)
            reqs.append((key, "!", []))
            continue
        m = re.match(r"^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$", part)
        if m:
            key, op, val = m.group(1), m.group(2), m.group(3).strip()
            _check_key(key)
            reqs.append((key, op, [val]))
            continue
        _check_key(part)
        reqs.append((part, "exists", []))
    return LabelSelector(reqs)


def _check_key(key):
    if not _KEY_RE.match(key) or len(key.split("/")[-1]) > 63:
        raise bad_request("unable to parse requirement: values[0][%s]: Invalid value: %s: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')" % (key, '"%s"' % key))


class FieldSelector:
    def __init__(self, reqs):
        self.reqs = reqs  # list of (field, op, value), op in "=", "!="

    def matches(self, fields):
        for f, op, v in self.reqs:
            have = fields.get(f, "")
            if op == "=" and have != v:
                return False
            if op == "!=" and have == v:
                return False
        return True

    def empty(self):
        return not self.reqs

    def exact_name(self):
        for f, op, v in self.reqs:
            if f == "metadata.name" and op == "=":
                return v
        return None


def _unescape_field_value(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "\\" and i + 1 < len(v):
            out.append(v[i + 1])
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def parse_field_selector(s, supported):
    """supported: set of field paths this kind can be selected by."""
    s = (s or "").strip()
    if not s:
        return FieldSelector([])
    reqs = []
    parts, cur, i = [], [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if s[i] == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(s[i])
        i += 1
    parts.append("".join(cur))
    for part in parts:
        m = re.match(r"^([^=!]+?)\s*(==|=|!=)\s*(.*)$", part.strip())
        if not m:
            raise bad_request("invalid selector: '%s'; can't understand '%s'" % (s, part))
        f, op, v = m.group(1).strip(), m.group(2), _unescape_field_value(m.group(3).strip())
        if op == "==":
            op = "="
        if f not in supported:
            raise bad_request("field label not supported: %s" % f)
        reqs.append((f, op, v))
    return FieldSelector(reqs)


def format_labels(labels):
    """labels.FormatLabels: sorted k=v joined by ',' or <none>."""
    if not labels:
        return "<none>"
    return ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels))
