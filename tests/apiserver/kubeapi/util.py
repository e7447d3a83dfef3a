"""Shared helpers: time formats, durations, name validation."""

import datetime
import json
import random
import re
import uuid

from . import errors as E


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(dt=None):
    dt = dt or utcnow()
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(dt=None):
    dt = dt or utcnow()
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    if not s or not isinstance(s, str):
        return None
    t = s.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # Python 3.11 fromisoformat accepts fractions of any length up to 6 digits.
    m = re.match(r"^(.*\.\d{6})\d+(.*)$", t)
    if m:
        t = m.group(1) + m.group(2)
    try:
        dt = datetime.datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt


def human_duration(seconds_float):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    seconds = int(seconds_float)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return "%dm" % minutes if s == 0 else "%dm%ds" % (minutes, s)
    if minutes < 60 * 3:
        return "%dm" % minutes
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return "%dh" % hours if m == 0 else "%dh%dm" % (hours, m)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        h = hours % 24
        return "%dd" % (hours // 24) if h == 0 else "%dd%dh" % (hours // 24, h)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if dy == 0 else "%dy%dd" % (hours // 24 // 365, dy)
    return "%dy" % (hours // 24 // 365)


def since(ts):
    """translateTimestampSince: '<unknown>' for a zero time."""
    dt = parse_time(ts)
    if dt is None:
        return "<unknown>"
    return human_duration((utcnow() - dt).total_seconds())


def new_uid():
    return str(uuid.uuid4())


_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix):
    if len(prefix) > 58:
        prefix = prefix[:58]
    return prefix + "".join(random.choice(_GEN_ALPHABET) for _ in range(5))


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QUALIFIED_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                      "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                      "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                   "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def is_dns1123_subdomain(v):
    errs = []
    if len(v) > 253:
        errs.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN_RE.match(v):
        errs.append(SUBDOMAIN_MSG)
    return errs


def is_dns1123_label(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1123_LABEL_RE.match(v):
        errs.append(LABEL_MSG)
    return errs


def is_dns1035_label(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not DNS1035_LABEL_RE.match(v):
        errs.append(DNS1035_MSG)
    return errs


def is_path_segment_name(v):
    if v in (".", ".."):
        return ['may not be "%s"' % v]
    for bad in ("/", "%"):
        if bad in v:
            return ["may not contain '%s'" % bad]
    return []


def is_qualified_name(v):
    errs = []
    parts = v.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [QUALIFIED_NAME_MSG.replace("name part must", "a qualified name must") +
                " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not QUALIFIED_NAME_RE.match(name):
        errs.append(QUALIFIED_NAME_MSG)
    return errs


def is_label_value(v):
    errs = []
    if len(v) > 63:
        errs.append("must be no more than 63 characters")
    if not LABEL_VALUE_RE.match(v):
        errs.append(LABEL_VALUE_MSG)
    return errs


def validate_labels(labels, path):
    errs = []
    if labels is None:
        return errs
    if not isinstance(labels, dict):
        return [E.invalid(path, labels, "must be a map of strings")]
    for k, v in labels.items():
        for m in is_qualified_name(k):
            errs.append(E.invalid(path, k, m))
        if not isinstance(v, str):
            errs.append(E.invalid(path, v, "must be a string"))
            continue
        for m in is_label_value(v):
            errs.append(E.invalid(path, v, m))
    return errs


def validate_annotations(ann, path):
    errs = []
    if ann is None:
        return errs
    if not isinstance(ann, dict):
        return [E.invalid(path, ann, "must be a map of strings")]
    total = 0
    for k, v in ann.items():
        for m in is_qualified_name(k.lower()):
            errs.append(E.invalid(path, k, m))
        if not isinstance(v, str):
            errs.append(E.invalid(path, v, "must be a string"))
            continue
        total += len(k) + len(v)
    if total > 256 * 1024:
        errs.append(E.too_long(path, 256 * 1024))
    return errs


def deep_equal(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def sort_keys(obj):
    """Recursively sort map keys, as Go's encoding/json does for unstructured objects."""
    if isinstance(obj, dict):
        return {k: sort_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sort_keys(x) for x in obj]
    return obj
