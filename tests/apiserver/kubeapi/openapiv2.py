"""A minimal /openapi/v2 document: paths with their operations, the
x-kubernetes-group-version-kind extension and the query parameters
(fieldValidation in particular), as JSON or as the gnostic OpenAPIv2
protobuf older kubectl versions (1.27, 1.28) ask for.  No definitions
(models) are published, so kubectl does no client-side schema validation
and falls back to its compiled-in types for strategic merge patches."""

import json

PROTO_MIME = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTO_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _key(num, wt):
    return _varint((num << 3) | wt)


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return _key(num, 2) + _varint(len(data)) + data


def _bool(num, v):
    return _key(num, 0) + _varint(1 if v else 0) if v else b""


def _named_any(name, yaml_text):
    any_msg = _bytes(2, yaml_text)  # Any.yaml = 2
    return _bytes(1, name) + _bytes(2, any_msg)


def _query_param(name, desc, type_="string"):
    q = _bytes(2, "query") + _bytes(3, desc) + _bytes(4, name) + _bytes(6, type_) + _bool(20, True)
    non_body = _bytes(3, q)          # NonBodyParameter.query_parameter_sub_schema = 3
    param = _bytes(2, non_body)      # Parameter.non_body_parameter = 2
    return _bytes(1, param)          # ParametersItem.parameter = 1


def _gvk_yaml(g, v, k):
    return 'group: "%s"\nkind: %s\nversion: %s\n' % (g, k, v)


def _operation(op_id, action, gvk, params):
    out = _bytes(5, op_id)
    for p in params:
        out += _bytes(8, p)
    ok = _bytes(1, "200") + _bytes(2, _bytes(1, _bytes(1, "OK")))  # NamedResponseValue{name, ResponseValue{response{description}}}
    out += _bytes(9, _bytes(1, ok))
    out += _bytes(13, _named_any("x-kubernetes-action", action + "\n"))
    out += _bytes(13, _named_any("x-kubernetes-group-version-kind", _gvk_yaml(*gvk)))
    return out


COMMON = [("dryRun", "When present, indicates that modifications should not be persisted."),
          ("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
          ("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields.")]


def _paths(registry):
    """[(path, {method: (operationId, action, gvk, [param names])})]"""
    out = []
    for g, vs in registry.groups():
        for v in vs:
            for rt in registry.resources(g, v):
                base = ("/api/%s" % v) if not g else "/apis/%s/%s" % (g, v)
                coll = base + ("/namespaces/{namespace}/%s" % rt.plural if rt.namespaced else "/%s" % rt.plural)
                gvk = (g, v, rt.kind)
                names = [n for n, _ in COMMON]
                out.append((coll, {"get": ("list" + rt.kind, "list", gvk, []),
                                   "post": ("create" + rt.kind, "post", gvk, names)}))
                out.append((coll + "/{name}", {"get": ("read" + rt.kind, "get", gvk, []),
                                               "put": ("replace" + rt.kind, "put", gvk, names),
                                               "patch": ("patch" + rt.kind, "patch", gvk, names + ["force"]),
                                               "delete": ("delete" + rt.kind, "delete", gvk, [])}))
    return out


def document_proto(registry, version):
    desc = dict(COMMON)
    desc["force"] = 'Force is going to "force" Apply requests.'
    order = ["get", "put", "post", "delete", "options", "head", "patch"]
    field = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}
    paths = b""
    for path, ops in _paths(registry):
        item = b""
        for m in order:
            if m not in ops:
                continue
            op_id, action, gvk, params = ops[m]
            item += _bytes(field[m], _operation(op_id, action, gvk,
                                                [_query_param(p, desc[p], "boolean" if p == "force" else "string") for p in params]))
        paths += _bytes(2, _bytes(1, path) + _bytes(2, item))  # Paths.path = 2 (NamedPathItem)
    info = _bytes(1, "Kubernetes") + _bytes(2, version)
    return _bytes(1, "2.0") + _bytes(2, info) + _bytes(8, paths)


def document_json(registry, version):
    desc = dict(COMMON)
    desc["force"] = 'Force is going to "force" Apply requests.'
    paths = {}
    for path, ops in _paths(registry):
        item = {}
        for m, (op_id, action, gvk, params) in ops.items():
            item[m] = {"operationId": op_id,
                       "parameters": [{"uniqueItems": True, "type": "boolean" if p == "force" else "string",
                                       "description": desc[p], "name": p, "in": "query"} for p in params],
                       "responses": {"200": {"description": "OK"}},
                       "x-kubernetes-action": action,
                       "x-kubernetes-group-version-kind": {"group": gvk[0], "kind": gvk[2], "version": gvk[1]}}
        paths[path] = item
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": version}, "paths": paths, "definitions": {}}
