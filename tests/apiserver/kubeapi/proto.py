"""Decoding of Kubernetes protobuf request bodies (application/vnd.kubernetes.protobuf).

kubectl's typed commands (`kubectl create namespace|configmap|secret|service|
serviceaccount`) send protobuf.  A body is the magic "k8s\\x00" followed by a
runtime.Unknown message whose `raw` field holds the object.  The table below
gives the wire field numbers of the messages those kinds use (k8s.io/api
core/v1 and k8s.io/apimachinery meta/v1); unknown fields are skipped."""

import base64
import datetime

MAGIC = b"k8s\x00"

# message -> {field number: (json name, type)}; type is a scalar kind
# ("string", "bytes", "int", "bool"), a message name, "map<string,string>",
# "map<string,bytes>", or "repeated:<type>".
MESSAGES = {
    "Unknown": {1: ("typeMeta", "RuntimeTypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "RuntimeTypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"),
                   4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"),
                   7: ("generation", "int"), 8: ("creationTimestamp", "Time"), 9: ("deletionTimestamp", "Time"),
                   10: ("deletionGracePeriodSeconds", "int"), 11: ("labels", "map<string,string>"),
                   12: ("annotations", "map<string,string>"), 13: ("ownerReferences", "repeated:OwnerReference"),
                   14: ("finalizers", "repeated:string"), 17: ("managedFields", "repeated:ManagedFieldsEntry")},
    "OwnerReference": {5: ("apiVersion", "string"), 1: ("kind", "string"), 3: ("name", "string"),
                       4: ("uid", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ManagedFieldsEntry": {1: ("manager", "string"), 2: ("operation", "string"), 3: ("apiVersion", "string"),
                           4: ("time", "Time"), 6: ("fieldsType", "string"), 7: ("fieldsV1", "FieldsV1"),
                           8: ("subresource", "string")},
    "FieldsV1": {1: ("Raw", "bytes")},
    "Condition": {1: ("type", "string"), 2: ("status", "string"), 3: ("observedGeneration", "int"),
                  4: ("lastTransitionTime", "Time"), 5: ("reason", "string"), 6: ("message", "string")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "repeated:string")},
    "NamespaceStatus": {1: ("phase", "string"), 2: ("conditions", "repeated:NamespaceCondition")},
    "NamespaceCondition": {1: ("type", "string"), 2: ("status", "string"), 4: ("lastTransitionTime", "Time"),
                           5: ("reason", "string"), 6: ("message", "string")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 4: ("immutable", "bool"), 2: ("data", "map<string,string>"),
                  3: ("binaryData", "map<string,bytes>")},
    "Secret": {1: ("metadata", "ObjectMeta"), 5: ("immutable", "bool"), 2: ("data", "map<string,bytes>"),
               4: ("stringData", "map<string,string>"), 3: ("type", "string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "repeated:ObjectReference"),
                       3: ("imagePullSecrets", "repeated:LocalObjectReference"),
                       4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"),
                        5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec"), 3: ("status", "ServiceStatus")},
    "ServiceSpec": {1: ("ports", "repeated:ServicePort"), 2: ("selector", "map<string,string>"),
                    3: ("clusterIP", "string"), 18: ("clusterIPs", "repeated:string"), 4: ("type", "string"),
                    5: ("externalIPs", "repeated:string"), 7: ("sessionAffinity", "string"),
                    8: ("loadBalancerIP", "string"), 9: ("loadBalancerSourceRanges", "repeated:string"),
                    10: ("externalName", "string"), 11: ("externalTrafficPolicy", "string"),
                    12: ("healthCheckNodePort", "int"), 13: ("publishNotReadyAddresses", "bool"),
                    14: ("sessionAffinityConfig", "SessionAffinityConfig"), 19: ("ipFamilies", "repeated:string"),
                    17: ("ipFamilyPolicy", "string"), 20: ("allocateLoadBalancerNodePorts", "bool"),
                    21: ("loadBalancerClass", "string"), 22: ("internalTrafficPolicy", "string"),
                    23: ("trafficDistribution", "string")},
    "ServicePort": {1: ("name", "string"), 2: ("protocol", "string"), 6: ("appProtocol", "string"),
                    3: ("port", "int"), 4: ("targetPort", "IntOrString"), 5: ("nodePort", "int")},
    "SessionAffinityConfig": {1: ("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: ("timeoutSeconds", "int")},
    "ServiceStatus": {1: ("loadBalancer", "LoadBalancerStatus"), 2: ("conditions", "repeated:Condition")},
    "LoadBalancerStatus": {1: ("ingress", "repeated:LoadBalancerIngress")},
    "LoadBalancerIngress": {1: ("ip", "string"), 2: ("hostname", "string"), 3: ("ipMode", "string"),
                            4: ("ports", "repeated:PortStatus")},
    "PortStatus": {1: ("port", "int"), 2: ("protocol", "string"), 3: ("error", "string")},
}

KIND_MESSAGE = {("v1", "Namespace"): "Namespace", ("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret",
                ("v1", "Service"): "Service", ("v1", "ServiceAccount"): "ServiceAccount"}


class ProtoError(ValueError):
    pass


def _varint(buf, i):
    shift = 0
    result = 0
    while True:
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtoError("truncated field")
            v = buf[i:i + n]
            i += n
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ProtoError("unsupported wire type %d" % wt)
        yield num, wt, v


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _scalar(kind, wt, v):
    if kind == "string":
        return bytes(v).decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(bytes(v)).decode()
    if kind == "int":
        return _signed(v)
    if kind == "bool":
        return bool(v)
    raise ProtoError("bad scalar kind %s" % kind)


def decode_message(name, buf):
    if name == "Time":
        secs = nanos = 0
        for num, wt, v in _fields(buf):
            if num == 1:
                secs = _signed(v)
            elif num == 2:
                nanos = v
        dt = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if name == "IntOrString":
        t, iv, sv = 0, 0, ""
        for num, wt, v in _fields(buf):
            if num == 1:
                t = v
            elif num == 2:
                iv = _signed(v) & 0xFFFFFFFF
                iv = iv - (1 << 32) if iv >= 1 << 31 else iv
            elif num == 3:
                sv = bytes(v).decode()
        return sv if t == 1 else iv
    schema = MESSAGES[name]
    out = {}
    for num, wt, v in _fields(buf):
        if num not in schema:
            continue
        jname, typ = schema[num]
        if typ.startswith("map<"):
            vkind = "bytes" if typ.endswith("bytes>") else "string"
            k = val = None
            for n2, w2, v2 in _fields(v):
                if n2 == 1:
                    k = bytes(v2).decode()
                elif n2 == 2:
                    val = _scalar(vkind, w2, v2)
            out.setdefault(jname, {})[k or ""] = val if val is not None else ""
        elif typ.startswith("repeated:"):
            et = typ[len("repeated:"):]
            if et in ("string", "bytes", "int", "bool"):
                out.setdefault(jname, []).append(_scalar(et, wt, v))
            else:
                out.setdefault(jname, []).append(decode_message(et, v))
        elif typ in ("string", "bytes", "int", "bool"):
            out[jname] = _scalar(typ, wt, v)
        else:
            out[jname] = decode_message(typ, v)
    # Go's marshaller writes optional scalars even when zero; the JSON form omits
    # them (omitempty), so drop zero values as decoding into Go structs would.
    for k in list(out):
        v = out[k]
        if v is None or v is False or (isinstance(v, (str, dict, list)) and len(v) == 0) or (type(v) is int and v == 0):
            del out[k]
    if name == "FieldsV1" and "Raw" in out:
        import json
        return json.loads(base64.b64decode(out["Raw"]).decode() or "{}")
    return out


def decode(body):
    """Decode a protobuf request body into a JSON-like object."""
    if not body.startswith(MAGIC):
        raise ProtoError("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    unk = decode_message("Unknown", body[len(MAGIC):])
    tm = unk.get("typeMeta") or {}
    av, kind = tm.get("apiVersion", ""), tm.get("kind", "")
    msg = KIND_MESSAGE.get((av, kind))
    if msg is None:
        raise ProtoError('no kind "%s" is registered for version "%s"' % (kind, av))
    raw = base64.b64decode(unk.get("raw", ""))
    obj = decode_message(msg, raw)
    out = {"kind": kind, "apiVersion": av}
    out.update(obj)
    return out
