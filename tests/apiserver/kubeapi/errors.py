"""Kubernetes Status objects and errors, shaped as k8s.io/apimachinery builds them."""

import json


def qualified_resource(group, resource):
    return resource if not group else "%s.%s" % (resource, group)


def qualified_kind(group, kind):
    return kind if not group else "%s.%s" % (kind, group)


def status_obj(code, reason, message, details=None, status="Failure", list_meta=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": dict(list_meta or {}), "status": status}
    if message:
        s["message"] = message
    if reason:
        s["reason"] = reason
    if details:
        s["details"] = details
    if code is not None:
        s["code"] = code
    return s


class APIError(Exception):
    """An error answered as a Status object (or plain text when text is set)."""

    def __init__(self, code, reason, message, details=None, headers=None, text=None, list_meta=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})
        self.text = text
        self.list_meta = list_meta

    def status(self):
        return status_obj(self.code, self.reason, self.message, self.details, list_meta=self.list_meta)

    def body(self):
        return json.dumps(self.status(), separators=(",", ":")).encode() + b"\n"


def _details(name=None, group=None, kind=None, causes=None, retry=None, uid=None):
    d = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    if uid:
        d["uid"] = uid
    if causes:
        d["causes"] = causes
    if retry:
        d["retryAfterSeconds"] = retry
    return d or None


def not_found(group, resource, name):
    return APIError(404, "NotFound", '%s "%s" not found' % (qualified_resource(group, resource), name),
                    _details(name=name, group=group, kind=resource))


def not_found_generic():
    return APIError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(group, resource, name):
    return APIError(409, "AlreadyExists", '%s "%s" already exists' % (qualified_resource(group, resource), name),
                    _details(name=name, group=group, kind=resource))


def conflict(group, resource, name, why):
    return APIError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s' % (qualified_resource(group, resource), name, why),
                    _details(name=name, group=group, kind=resource))


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def bad_request(message):
    return APIError(400, "BadRequest", message)


def method_not_supported(group, resource, action):
    return APIError(405, "MethodNotAllowed", '%s is not supported on resources of kind "%s"' % (action, qualified_resource(group, resource)),
                    _details(group=group, kind=resource))


def method_not_allowed():
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})


def not_acceptable(message):
    return APIError(406, "NotAcceptable", message)


def unsupported_media_type(content_type):
    return APIError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/cbor'
                    if content_type is None else
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json")


def expired(message):
    return APIError(410, "Expired", message)


def timeout(message, retry_after):
    return APIError(504, "Timeout", "Timeout: %s" % message, _details(retry=retry_after))


def too_large_rv(requested, current, retry_after=1):
    e = timeout("Too large resource version: %d, current: %d" % (requested, current), retry_after)
    e.details = dict(e.details or {})
    e.details["causes"] = [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    return e


def internal(message):
    return APIError(500, "InternalError", "Internal error occurred: %s" % message,
                    {"causes": [{"message": message}]})


def unauthorized():
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(message):
    return APIError(403, "Forbidden", message)


class FieldError:
    """field.Error from k8s.io/apimachinery/pkg/util/validation/field."""

    TYPES = {
        "FieldValueNotFound": "Not found",
        "FieldValueRequired": "Required value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "InternalError": "Internal error",
        "FieldValueTypeInvalid": "Invalid value",
    }
    NO_VALUE = ("FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError")

    def __init__(self, type_, field, value=None, detail=""):
        self.type = type_
        self.field = field
        self.value = value
        self.detail = detail

    def body(self):
        t = self.TYPES[self.type]
        if self.type in self.NO_VALUE:
            s = t
        else:
            v = self.value
            if v is None:
                s = "%s: null" % t
            elif isinstance(v, bool):
                s = "%s: %s" % (t, "true" if v else "false")
            elif isinstance(v, (int, float)):
                s = "%s: %s" % (t, v)
            elif isinstance(v, str):
                s = "%s: %s" % (t, go_quote(v))
            else:
                s = "%s: %s" % (t, json.dumps(v, separators=(",", ":")))
        if self.detail:
            s += ": " + self.detail
        return s

    def __str__(self):
        return "%s: %s" % (self.field, self.body())


def required(field, detail=""):
    return FieldError("FieldValueRequired", field, "", detail)


def invalid(field, value, detail):
    return FieldError("FieldValueInvalid", field, value, detail)


def not_supported(field, value, valid):
    return FieldError("FieldValueNotSupported", field, value,
                      "supported values: " + ", ".join(go_quote(str(v)) for v in valid) if valid else "")


def forbidden_field(field, detail):
    return FieldError("FieldValueForbidden", field, "", detail)


def too_long(field, max_len):
    return FieldError("FieldValueTooLong", field, None, "may not be more than %d bytes" % max_len)


def type_invalid(field, value, detail):
    return FieldError("FieldValueTypeInvalid", field, value, detail)


def duplicate(field, value):
    return FieldError("FieldValueDuplicate", field, value)


def invalid_error(group, kind, name, errs):
    causes = [{"reason": e.type, "message": e.body(), "field": e.field} for e in errs]
    msgs = []
    for e in errs:
        m = str(e)
        if m not in msgs:
            msgs.append(m)
    qk = qualified_kind(group, kind)
    if not msgs:
        message = '%s "%s" is invalid' % (qk, name)
    elif len(msgs) == 1:
        message = '%s "%s" is invalid: %s' % (qk, name, msgs[0])
    else:
        message = '%s "%s" is invalid: [%s]' % (qk, name, ", ".join(msgs))
    return APIError(422, "Invalid", message, _details(name=name, group=group, kind=kind, causes=causes))


def go_quote(s):
    """strconv.Quote / %q for a Go string."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
