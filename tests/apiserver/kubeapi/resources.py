"""Resource types: the built-in kinds the project uses and kinds made from CRDs.

Each ResourceType knows its discovery data, defaulting, validation, field
selectors and server-side Table printing, following kube-apiserver's
registry strategies and pkg/printers/internalversion/printers.go."""

import base64
import binascii
import copy
import hashlib
import ipaddress
import re

from . import errors as E
from . import schema as S
from . import util as U
from .selectors import format_labels

STD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, although some resources may "
             "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
             "for creation idempotence and configuration definition. Cannot be updated. More info: "
             "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
CREATION_DESC = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
                 "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
                 "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
                 "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")


def col(name, type_="string", fmt="", desc="", priority=0):
    return {"name": name, "type": type_, "format": fmt, "description": desc, "priority": priority}


NAME_COL = col("Name", "string", "name", NAME_DESC)
AGE_COL = col("Age", "string", "", CREATION_DESC)


class ResourceType:
    def __init__(self, group, version, kind, plural, singular=None, namespaced=True, short_names=None,
                 categories=None, verbs=None, subresources=None, storage=None, builtin=True,
                 name_check="subdomain", generation=False, status_sub=False, allow_create_on_update=False,
                 allow_unconditional_update=True, return_deleted=False, columns=None, printer=None,
                 defaulter=None, validator=None, update_validator=None, field_fn=None, field_set=None,
                 to_storage=None, from_storage=None, list_items_typed=True, priority=0):
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.singular = singular or kind.lower()
        self.namespaced = namespaced
        self.short_names = short_names or []
        self.categories = categories or []
        self.verbs = verbs or list(STD_VERBS)
        self.subresources = subresources or {}
        self.storage = storage or ("%s/%s" % (group or "core", plural))
        self.builtin = builtin
        self.name_check = name_check
        self.generation = generation
        self.status_sub = status_sub
        self.allow_create_on_update = allow_create_on_update
        self.allow_unconditional_update = allow_unconditional_update
        self.return_deleted = return_deleted
        self.columns = columns or [NAME_COL, AGE_COL]
        self.printer = printer
        self.defaulter = defaulter
        self.validator = validator
        self.update_validator = update_validator
        self.field_fn = field_fn
        self.field_set = set(field_set or [])
        self.to_storage = to_storage
        self.from_storage = from_storage
        self.list_items_typed = list_items_typed
        self.priority = priority
        self.schema = None
        self.crd_name = None
        self.selectable_fields = []

    @property
    def api_version(self):
        return self.version if not self.group else "%s/%s" % (self.group, self.version)

    @property
    def group_version(self):
        return self.api_version

    @property
    def list_kind(self):
        return getattr(self, "list_kind_name", None) or self.kind + "List"

    def qualified_resource(self):
        return E.qualified_resource(self.group, self.plural)

    def supported_fields(self):
        f = {"metadata.name"}
        if self.namespaced:
            f.add("metadata.namespace")
        return f | self.field_set | set(self.selectable_fields)

    def fields(self, obj):
        md = obj.get("metadata") or {}
        out = {"metadata.name": md.get("name", "")}
        if self.namespaced:
            out["metadata.namespace"] = md.get("namespace", "")
        if self.field_fn:
            out.update(self.field_fn(obj))
        for path in self.selectable_fields:
            v = jsonpath_simple(obj, path)
            out[path] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        return out

    def storage_version_hash(self):
        h = hashlib.sha256(("%s/%s/%s" % (self.group, self.version, self.kind)).encode()).digest()
        return base64.b64encode(h[:8]).decode()

    # -- conversion between the served version and the stored form
    def encode(self, obj):
        """Stored form -> this resource's API version (a deep copy)."""
        o = copy.deepcopy(obj)
        if self.from_storage:
            o = self.from_storage(o)
        o.pop("apiVersion", None)
        o.pop("kind", None)
        out = {"kind": self.kind, "apiVersion": self.api_version}
        out.update(o)
        return out

    def decode(self, obj):
        """This resource's API version -> stored form."""
        o = copy.deepcopy(obj)
        if self.to_storage:
            o = self.to_storage(o)
        return o

    # -- Table printing
    def table(self, objs, now_cells=True):
        rows = []
        for o in objs:
            if self.printer:
                cells = self.printer(o)
            else:
                cells = [o["metadata"].get("name", ""), U.since(o["metadata"].get("creationTimestamp"))]
            rows.append((cells, o))
        return self.columns, rows


def jsonpath_simple(obj, path):
    """Evaluate a JSONPath like .metadata.annotations.loft\\.sh/x or .spec.items[0].name."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1]
    if p.startswith("$"):
        p = p[1:]
    toks = []
    cur = ""
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            cur += p[i + 1]
            i += 2
            continue
        if c == ".":
            if cur:
                toks.append(cur)
            cur = ""
        elif c == "[":
            if cur:
                toks.append(cur)
            cur = ""
            j = p.index("]", i)
            inner = p[i + 1:j].strip("'\"")
            toks.append(int(inner) if re.match(r"^-?\d+$", inner) else inner)
            i = j
        else:
            cur += c
        i += 1
    if cur:
        toks.append(cur)
    v = obj
    for t in toks:
        if isinstance(t, int):
            if not isinstance(v, list) or not -len(v) <= t < len(v):
                return None
            v = v[t]
        else:
            if not isinstance(v, dict) or t not in v:
                return None
            v = v[t]
    return v


# ----------------------------------------------------------------- helpers

def _md(o):
    return o.setdefault("metadata", {})


def _age(o):
    return U.since((o.get("metadata") or {}).get("creationTimestamp"))


# ----------------------------------------------------------------- Namespace

def ns_defaults(o, old, ctx):
    spec = o.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    st = o.setdefault("status", {})
    if old is None:
        st["phase"] = "Active"
    else:
        o["status"] = copy.deepcopy(old.get("status") or {"phase": "Active"})
        o["spec"] = copy.deepcopy(old.get("spec") or spec)
    labels = _md(o).setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = o["metadata"].get("name", "")


def ns_printer(o):
    return [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)]


# ----------------------------------------------------------------- ConfigMap / Secret

def cm_validate(o, old):
    errs = []
    data = o.get("data") or {}
    bdata = o.get("binaryData") or {}
    if not isinstance(data, dict):
        return [E.invalid("data", data, "must be a map of strings")]
    for k, v in data.items():
        if not U.CONFIG_KEY_RE.match(k):
            errs.append(E.invalid("data", k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
        if not isinstance(v, str):
            raise E.bad_request('ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal %s into Go struct field ConfigMap.data of type string' % _json_type(v))
        if k in bdata:
            errs.append(E.invalid("data", k, "duplicate of key present in binaryData"))
    if o.get("immutable") is None and old is not None and old.get("immutable"):
        errs.append(E.forbidden_field("immutable", "field is immutable when `immutable` is set"))
    if old is not None and old.get("immutable") and (old.get("data") != o.get("data") or old.get("binaryData") != o.get("binaryData")):
        errs.append(E.forbidden_field("data", "field is immutable when `immutable` is set"))
    return errs


def _json_type(v):
    return {dict: "object", list: "array", bool: "bool", int: "number", float: "number"}.get(type(v), "value")


def cm_printer(o):
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)]


def secret_defaults(o, old, ctx):
    o.setdefault("type", "Opaque")
    sd = o.pop("stringData", None)
    data = o.get("data")
    if data is not None and not isinstance(data, dict):
        raise E.bad_request('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal %s into Go struct field Secret.data of type map[string][]uint8' % _json_type(data))
    for k, v in (data or {}).items():
        if not isinstance(v, str):
            raise E.bad_request('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal %s into Go struct field Secret.data of type []uint8' % _json_type(v))
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as e:
            raise E.bad_request('Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte %d' % _bad_b64_index(v))
    if sd:
        o.setdefault("data", {})
        for k, v in sd.items():
            o["data"][k] = base64.b64encode(str(v).encode()).decode()


def _bad_b64_index(v):
    for i, c in enumerate(v):
        if not (c.isalnum() or c in "+/="):
            return i
    return len(v) - len(v) % 4


def secret_validate(o, old):
    errs = []
    for k in (o.get("data") or {}):
        if not U.CONFIG_KEY_RE.match(k):
            errs.append(E.invalid("data[%s]" % k, k, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
    if old is not None and old.get("type") != o.get("type"):
        errs.append(E.invalid("type", o.get("type"), "field is immutable"))
    return errs


def secret_printer(o):
    return [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}), _age(o)]


# ----------------------------------------------------------------- Service

def svc_defaults(o, old, ctx):
    spec = o.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "targetPort" not in p and "port" in p:
                p["targetPort"] = p["port"]
    if old is not None:
        ospec = old.get("spec") or {}
        if "clusterIP" not in spec and ospec.get("clusterIP"):
            spec["clusterIP"] = ospec["clusterIP"]
            spec["clusterIPs"] = ospec.get("clusterIPs", [ospec["clusterIP"]])
        o["status"] = copy.deepcopy(old.get("status") or {"loadBalancer": {}})
    if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        ip = ctx.allocate_cluster_ip()
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    elif spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    if spec["type"] in ("NodePort", "LoadBalancer"):
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and not p.get("nodePort"):
                p["nodePort"] = ctx.allocate_node_port()
    o.setdefault("status", {"loadBalancer": {}})


def svc_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    t = spec.get("type")
    if t not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        errs.append(E.not_supported("spec.type", t, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]))
    ports = spec.get("ports") or []
    if t != "ExternalName" and not ports and spec.get("clusterIP") != "None":
        errs.append(E.required("spec.ports"))
    for i, p in enumerate(ports):
        if not isinstance(p, dict):
            continue
        port = p.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            errs.append(E.invalid("spec.ports[%d].port" % i, port, "must be between 1 and 65535, inclusive"))
        if p.get("protocol") not in ("TCP", "UDP", "SCTP"):
            errs.append(E.not_supported("spec.ports[%d].protocol" % i, p.get("protocol"), ["SCTP", "TCP", "UDP"]))
        if len(ports) > 1 and not p.get("name"):
            errs.append(E.required("spec.ports[%d].name" % i))
    if old is not None:
        oip = (old.get("spec") or {}).get("clusterIP")
        if oip and spec.get("clusterIP") != oip:
            errs.append(E.invalid("spec.clusterIPs[0]", spec.get("clusterIP"), "may not change once set"))
    return errs


def _port_string(ports):
    out = []
    for p in ports or []:
        proto = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append("%d:%d/%s" % (p.get("port", 0), p["nodePort"], proto))
        else:
            out.append("%d/%s" % (p.get("port", 0), proto))
    return ",".join(out)


def svc_printer(o):
    spec = o.get("spec") or {}
    t = spec.get("type", "ClusterIP")
    internal = (spec.get("clusterIPs") or [None])[0] or "<none>"
    ext = "<none>"
    eips = spec.get("externalIPs") or []
    if t == "ExternalName":
        ext = spec.get("externalName", "")
    elif t == "LoadBalancer":
        ing = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips = [i.get("ip") or i.get("hostname") for i in ing if i.get("ip") or i.get("hostname")] + eips
        ext = ",".join(ips) if ips else "<pending>"
    elif eips:
        ext = ",".join(eips)
    ports = _port_string(spec.get("ports")) or "<none>"
    return [o["metadata"]["name"], t, internal, ext, ports, _age(o), format_labels(spec.get("selector"))]


# ----------------------------------------------------------------- Endpoints

def ep_printer(o):
    out = []
    count = 0
    more = False
    for ss in o.get("subsets") or []:
        for p in ss.get("ports") or [{"port": None}]:
            for a in ss.get("addresses") or []:
                count += 1
                if len(out) == 3:
                    more = True
                    continue
                ip = a.get("ip", "")
                if p.get("port") is None:
                    out.append(ip)
                else:
                    out.append(("[%s]:%d" % (ip, p["port"])) if ":" in ip else "%s:%d" % (ip, p["port"]))
    s = ",".join(out)
    if more:
        s = "%s + %d more..." % (s, count - 3)
    return [o["metadata"]["name"], s or "<none>", _age(o)]


# ----------------------------------------------------------------- Pod (minimal)

def _containers(spec):
    """The pod spec's containers and init containers, with kube's defaults set
    (imagePullPolicy from the tag, termination message, resources, TCP ports)."""
    out = []
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        img = c.get("image", "")
        tag = img.rsplit("/", 1)[-1]
        c.setdefault("imagePullPolicy", "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in img else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
        out.append(c)
    return out


def pod_defaults(o, old, ctx):
    spec = o.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])
    _containers(spec)
    if old is None:
        o["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    else:
        o["status"] = copy.deepcopy(old.get("status") or {"phase": "Pending"})


def pod_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    cs = spec.get("containers")
    if not cs:
        errs.append(E.required("spec.containers"))
    names = set()
    for i, c in enumerate(cs or []):
        if not isinstance(c, dict):
            continue
        n = c.get("name")
        if not n:
            errs.append(E.required("spec.containers[%d].name" % i))
        else:
            for m in U.is_dns1123_label(n):
                errs.append(E.invalid("spec.containers[%d].name" % i, n, m))
            if n in names:
                errs.append(E.duplicate("spec.containers[%d].name" % i, n))
            names.add(n)
        if not c.get("image") and old is None:
            errs.append(E.required("spec.containers[%d].image" % i))
    if old is not None:
        ospec = copy.deepcopy(old.get("spec") or {})
        nspec = copy.deepcopy(spec)
        for s in (ospec, nspec):
            for c in s.get("containers") or []:
                c.pop("image", None)
            s.pop("activeDeadlineSeconds", None)
            s.pop("tolerations", None)
        if not U.deep_equal(ospec, nspec):
            errs.append(E.forbidden_field("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"))
    return errs


def pod_printer(o):
    spec = o.get("spec") or {}
    st = o.get("status") or {}
    total = len(spec.get("containers") or [])
    cstat = st.get("containerStatuses") or []
    ready = sum(1 for c in cstat if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstat)
    reason = st.get("reason") or st.get("phase") or ""
    for c in cstat:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [o["metadata"]["name"], "%d/%d" % (ready, total), reason, str(restarts), _age(o),
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            st.get("nominatedNodeName") or "<none>",
            "<none>" if not gates else "0/%d" % len(gates)]


def pod_fields(o):
    spec = o.get("spec") or {}
    st = o.get("status") or {}
    return {"spec.nodeName": spec.get("nodeName", ""), "spec.restartPolicy": spec.get("restartPolicy", ""),
            "spec.schedulerName": spec.get("schedulerName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "spec.hostNetwork": "true" if spec.get("hostNetwork") else "false",
            "status.phase": st.get("phase", ""), "status.podIP": st.get("podIP", ""),
            "status.nominatedNodeName": st.get("nominatedNodeName", "")}


# ----------------------------------------------------------------- Events

def event_fields(o):
    io = o.get("involvedObject") or {}
    src = o.get("source") or {}
    return {"involvedObject.kind": io.get("kind", ""), "involvedObject.namespace": io.get("namespace", ""),
            "involvedObject.name": io.get("name", ""), "involvedObject.uid": io.get("uid", ""),
            "involvedObject.apiVersion": io.get("apiVersion", ""),
            "involvedObject.resourceVersion": io.get("resourceVersion", ""),
            "involvedObject.fieldPath": io.get("fieldPath", ""), "reason": o.get("reason", ""),
            "reportingComponent": o.get("reportingComponent", ""), "source": src.get("component", ""),
            "type": o.get("type", "")}


EVENTS_V1_FIELD_MAP = {
    "regarding.kind": "involvedObject.kind", "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name", "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion", "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath", "reportingController": "reportingComponent",
    "deprecatedSource.component": "source", "reason": "reason", "type": "type",
}


def events_v1_fields(o):
    core = event_fields(o)
    out = {}
    for k, v in EVENTS_V1_FIELD_MAP.items():
        out[k] = core.get(v, "")
    return out


def event_from_storage_v1(o):
    """core/v1 Event (stored form) -> events.k8s.io/v1 Event."""
    out = {"metadata": o.get("metadata", {})}
    if o.get("eventTime"):
        out["eventTime"] = o["eventTime"]
    else:
        out["eventTime"] = None
    if o.get("series"):
        out["series"] = {"count": o["series"].get("count"), "lastObservedTime": o["series"].get("lastObservedTime")}
    if o.get("reportingComponent"):
        out["reportingController"] = o["reportingComponent"]
    if o.get("reportingInstance"):
        out["reportingInstance"] = o["reportingInstance"]
    if o.get("action"):
        out["action"] = o["action"]
    if o.get("reason"):
        out["reason"] = o["reason"]
    if o.get("involvedObject"):
        out["regarding"] = o["involvedObject"]
    if o.get("related"):
        out["related"] = o["related"]
    if o.get("message"):
        out["note"] = o["message"]
    if o.get("type"):
        out["type"] = o["type"]
    src = o.get("source") or {}
    if src:
        out["deprecatedSource"] = src
    if o.get("firstTimestamp"):
        out["deprecatedFirstTimestamp"] = o["firstTimestamp"]
    if o.get("lastTimestamp"):
        out["deprecatedLastTimestamp"] = o["lastTimestamp"]
    if o.get("count"):
        out["deprecatedCount"] = o["count"]
    return out


def event_to_storage_v1(o):
    """events.k8s.io/v1 Event -> core/v1 Event (stored form)."""
    out = {"metadata": o.get("metadata", {})}
    out["involvedObject"] = o.get("regarding") or {}
    for a, b in (("reason", "reason"), ("note", "message"), ("type", "type"), ("action", "action"),
                 ("related", "related"), ("reportingController", "reportingComponent"),
                 ("reportingInstance", "reportingInstance"), ("eventTime", "eventTime"),
                 ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                 ("deprecatedCount", "count")):
        if o.get(a) not in (None, ""):
            out[b] = o[a]
    out["source"] = o.get("deprecatedSource") or {}
    if o.get("series"):
        out["series"] = o["series"]
    return out


def event_core_defaults(o, old, ctx):
    o.setdefault("involvedObject", {})
    o.setdefault("source", {})
    if o.get("reportingComponent") is None:
        o["reportingComponent"] = ""
    if o.get("reportingInstance") is None:
        o["reportingInstance"] = ""
    if "eventTime" not in o:
        o["eventTime"] = None
    if "firstTimestamp" not in o:
        o["firstTimestamp"] = None
    if "lastTimestamp" not in o:
        o["lastTimestamp"] = None


def _legacy_event_validate(o):
    errs = []
    io = o.get("involvedObject") or {}
    ns = (o.get("metadata") or {}).get("namespace", "")
    if not o.get("eventTime"):
        if not io.get("namespace"):
            if ns not in ("", "default"):
                errs.append(E.invalid("involvedObject.namespace", io.get("namespace", ""), "does not match event.namespace"))
        elif ns != io.get("namespace"):
            errs.append(E.invalid("involvedObject.namespace", io.get("namespace", ""), "does not match event.namespace"))
    else:
        if not io.get("namespace") and ns not in ("default", "kube-system"):
            errs.append(E.invalid("involvedObject.namespace", io.get("namespace", ""), "does not match event.namespace"))
        rc = o.get("reportingComponent", "")
        if not rc:
            errs.append(E.required("reportingController"))
        for m in U.is_qualified_name(rc) if rc else []:
            errs.append(E.invalid("reportingController", rc, m))
        if not o.get("reportingInstance"):
            errs.append(E.required("reportingInstance"))
        elif len(o["reportingInstance"]) > 128:
            errs.append(E.invalid("reportingInstance", "", "can have at most 128 characters"))
        if not o.get("action"):
            errs.append(E.required("action"))
        elif len(o["action"]) > 128:
            errs.append(E.invalid("action", "", "can have at most 128 characters"))
        if not o.get("reason"):
            errs.append(E.required("reason"))
        elif len(o["reason"]) > 128:
            errs.append(E.invalid("reason", "", "can have at most 128 characters"))
        if len(o.get("message") or "") > 1024:
            errs.append(E.invalid("message", "", "can have at most 1024 characters"))
    for m in U.is_dns1123_subdomain(ns) if ns else []:
        errs.append(E.invalid("namespace", ns, m))
    return errs


def event_core_validate(o, old):
    return _legacy_event_validate(o)


def event_v1_validate(o, old):
    """Validation for events.k8s.io/v1 (o is in stored/core form)."""
    errs = _legacy_event_validate(o)
    if old is None:
        s = o.get("series")
        if s:
            if (s.get("count") or 0) < 2:
                errs.append(E.invalid("series.count", "", "should be at least 2"))
            if not s.get("lastObservedTime"):
                errs.append(E.required("series.lastObservedTime"))
        if not o.get("eventTime"):
            errs.append(E.required("eventTime"))
        if o.get("type") not in ("Normal", "Warning"):
            errs.append(E.invalid("type", "", "has invalid value: %s" % (o.get("type") or "")))
        if o.get("firstTimestamp"):
            errs.append(E.invalid("firstTimestamp", "", "needs to be unset"))
        if o.get("lastTimestamp"):
            errs.append(E.invalid("lastTimestamp", "", "needs to be unset"))
        if o.get("count"):
            errs.append(E.invalid("count", "", "needs to be unset"))
        src = o.get("source") or {}
        if src.get("component") or src.get("host"):
            errs.append(E.invalid("source", "", "needs to be unset"))
    else:
        for f in ("involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
                  "type", "eventTime", "action", "related", "reportingComponent", "reportingInstance"):
            if not U.deep_equal(o.get(f), old.get(f)):
                name = {"reportingComponent": "reportingController"}.get(f, f)
                errs.append(E.invalid(name, o.get(f), "field is immutable"))
    return errs


def event_printer(o):
    first = U.since(o.get("firstTimestamp")) if o.get("firstTimestamp") else U.since(o.get("eventTime"))
    last = U.since(o.get("lastTimestamp")) if o.get("lastTimestamp") else first
    count = o.get("count") or 0
    if o.get("series"):
        last = U.since(o["series"].get("lastObservedTime"))
        count = o["series"].get("count") or 0
    elif count == 0:
        count = 1
    io = o.get("involvedObject") or {}
    target = "%s/%s" % ((io.get("kind") or "").lower(), io["name"]) if io.get("name") else (io.get("kind") or "").lower()
    src = o.get("source") or {}
    comp = src.get("component") or o.get("reportingComponent") or ""
    inst = src.get("host") or o.get("reportingInstance") or ""
    source = comp if not inst else "%s, %s" % (comp, inst)
    return [last, o.get("type", ""), o.get("reason", ""), target, io.get("fieldPath", ""), source,
            (o.get("message") or "").strip(), first, int(count), o["metadata"]["name"]]


EVENT_COLUMNS = [
    col("Last Seen", desc="The time at which the most recent occurrence of this event was recorded."),
    col("Type", desc="Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", desc="This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", desc="The object that this event is about."),
    col("Subobject", priority=1, desc="If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    col("Source", priority=1, desc="The component reporting this event. Should be a short machine understandable string."),
    col("Message", desc="A human-readable description of the status of this operation."),
    col("First Seen", priority=1, desc="The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    col("Count", priority=1, desc="The number of times this event has occurred."),
    col("Name", fmt="name", priority=1, desc=NAME_DESC),
]


# ----------------------------------------------------------------- Lease

def lease_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    d = spec.get("leaseDurationSeconds")
    if d is not None and (not isinstance(d, int) or d <= 0):
        errs.append(E.invalid("spec.leaseDurationSeconds", d, "must be greater than 0"))
    t = spec.get("leaseTransitions")
    if t is not None and (not isinstance(t, int) or t < 0):
        errs.append(E.invalid("spec.leaseTransitions", t, "must be greater than or equal to 0"))
    for f in ("acquireTime", "renewTime"):
        v = spec.get(f)
        if v is not None and U.parse_time(v) is None:
            raise E.bad_request('Lease in version "v1" cannot be handled as a Lease: parsing time "%s" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "%s" as "2006"' % (v, v))
    return errs


def lease_printer(o):
    return [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity") or "", _age(o)]


# ----------------------------------------------------------------- EndpointSlice

def eps_defaults(o, old, ctx):
    for p in o.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    if o.get("endpoints") is None:
        o["endpoints"] = None


def eps_validate(o, old):
    errs = []
    at = o.get("addressType")
    if at not in ("IPv4", "IPv6", "FQDN"):
        if not at:
            errs.append(E.required("addressType"))
        else:
            errs.append(E.not_supported("addressType", at, ["FQDN", "IPv4", "IPv6"]))
    elif old is not None and old.get("addressType") != at:
        errs.append(E.invalid("addressType", at, "field is immutable"))
    for i, ep in enumerate(o.get("endpoints") or []):
        addrs = (ep or {}).get("addresses") or []
        if not addrs:
            errs.append(E.required("endpoints[%d].addresses" % i, "must contain at least 1 address"))
        for j, a in enumerate(addrs):
            if at in ("IPv4", "IPv6"):
                try:
                    ip = ipaddress.ip_address(a)
                    if (at == "IPv4") != (ip.version == 4):
                        errs.append(E.invalid("endpoints[%d].addresses[%d]" % (i, j), a, "must be an %s address" % at))
                except ValueError:
                    errs.append(E.invalid("endpoints[%d].addresses[%d]" % (i, j), a, "must be a valid IP address"))
    return errs


def eps_printer(o):
    ports = []
    for p in o.get("ports") or []:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(p["name"])
        else:
            ports.append("*")
    eps = [a for ep in (o.get("endpoints") or []) for a in ((ep or {}).get("addresses") or [])]
    return [o["metadata"]["name"], o.get("addressType", ""), _more(ports), _more(eps), _age(o)]


def _more(lst):
    if len(lst) > 3:
        return "%s + %d more..." % (",".join(lst[:3]), len(lst) - 3)
    return ",".join(lst) or "<unset>"


# ----------------------------------------------------------------- ServiceAccount

def sa_printer(o):
    return [o["metadata"]["name"], len(o.get("secrets") or []), _age(o)]


# ----------------------------------------------------------------- apps/v1 Deployment

def _format_selector(sel):
    """metav1.FormatLabelSelector: requirements sorted by key, or <none>."""
    if not isinstance(sel, dict):
        return "<none>"
    reqs = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, "%s=%s" % (k, v)))
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key", ""), e.get("operator", ""), e.get("values") or []
        if op == "In":
            reqs.append((k, "%s in (%s)" % (k, ",".join(sorted(vals)))))
        elif op == "NotIn":
            reqs.append((k, "%s notin (%s)" % (k, ",".join(sorted(vals)))))
        elif op == "Exists":
            reqs.append((k, k))
        elif op == "DoesNotExist":
            reqs.append((k, "!" + k))
    if not reqs:
        return "<none>"
    return ",".join(r for _k, r in sorted(reqs, key=lambda x: x[0]))


def _probe_defaults(pr):
    if not isinstance(pr, dict):
        return
    pr.setdefault("timeoutSeconds", 1)
    pr.setdefault("periodSeconds", 10)
    pr.setdefault("successThreshold", 1)
    pr.setdefault("failureThreshold", 3)
    if isinstance(pr.get("httpGet"), dict):
        pr["httpGet"].setdefault("scheme", "HTTP")


def pod_template_defaults(spec):
    """SetDefaults_PodSpec and friends for a pod template (no admission defaults)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if spec.get("serviceAccountName") and "serviceAccount" not in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for c in _containers(spec):
        for f in ("livenessProbe", "readinessProbe", "startupProbe"):
            _probe_defaults(c.get(f))
        for e in c.get("env") or []:
            fr = ((e or {}).get("valueFrom") or {}).get("fieldRef")
            if isinstance(fr, dict):
                fr.setdefault("apiVersion", "v1")
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("secret"), dict):
            v["secret"].setdefault("defaultMode", 420)
        if isinstance(v.get("configMap"), dict):
            v["configMap"].setdefault("defaultMode", 420)


def deploy_defaults(o, old, ctx):
    spec = o.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    st = spec.setdefault("strategy", {})
    st.setdefault("type", "RollingUpdate")
    if st["type"] == "RollingUpdate":
        ru = st.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    tmpl = spec.setdefault("template", {})
    tmpl.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    pod_template_defaults(tmpl.setdefault("spec", {}))
    if old is None:
        o["status"] = {}


def _validate_pod_template(tmpl, path):
    errs = []
    pspec = (tmpl or {}).get("spec") or {}
    cs = pspec.get("containers")
    if not cs:
        errs.append(E.required(path + ".spec.containers"))
    names = set()
    for i, c in enumerate(cs or []):
        if not isinstance(c, dict):
            continue
        n = c.get("name")
        p = "%s.spec.containers[%d]" % (path, i)
        if not n:
            errs.append(E.required(p + ".name"))
        else:
            for m in U.is_dns1123_label(n):
                errs.append(E.invalid(p + ".name", n, m))
            if n in names:
                errs.append(E.duplicate(p + ".name", n))
            names.add(n)
        if not c.get("image"):
            errs.append(E.required(p + ".image"))
    return errs


def _selector_matches(sel, labels):
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def deploy_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    r = spec.get("replicas")
    if isinstance(r, int) and r < 0:
        errs.append(E.invalid("spec.replicas", r, "must be greater than or equal to 0"))
    sel = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        errs.append(E.required("spec.selector"))
        errs.append(E.invalid("spec.selector", sel or {}, "empty selector is invalid for deployment"))
    elif not _selector_matches(sel, labels):
        errs.append(E.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    if old is not None and isinstance(sel, dict) and (old.get("spec") or {}).get("selector") != sel:
        errs.append(E.invalid("spec.selector", sel, "field is immutable"))
    errs += _validate_pod_template(spec.get("template"), "spec.template")
    st = (spec.get("strategy") or {}).get("type")
    if st not in (None, "RollingUpdate", "Recreate"):
        errs.append(E.not_supported("spec.strategy.type", st, ["Recreate", "RollingUpdate"]))
    return errs


def deploy_printer(o):
    spec = o.get("spec") or {}
    st = o.get("status") or {}
    cs = (((spec.get("template") or {}).get("spec") or {}).get("containers") or [])
    return [o["metadata"]["name"], "%d/%d" % (st.get("readyReplicas") or 0, spec.get("replicas") or 0),
            st.get("updatedReplicas") or 0, st.get("availableReplicas") or 0, _age(o),
            ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs),
            _format_selector(spec.get("selector"))]


DEPLOY_COLUMNS = [
    NAME_COL,
    col("Ready", desc="Number of the pod with ready state"),
    col("Up-to-date", "integer", desc="Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", desc="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE_COL,
    col("Containers", priority=1, desc="Names of each container in the template."),
    col("Images", priority=1, desc="Images referenced by each container in the template."),
    col("Selector", priority=1, desc="Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
]


# ----------------------------------------------------------------- rbac.authorization.k8s.io/v1

def _rules_validate(o, namespaced):
    errs = []
    for i, r in enumerate(o.get("rules") or []):
        r = r or {}
        p = "rules[%d]" % i
        if not r.get("verbs"):
            errs.append(E.required(p + ".verbs", "verbs must contain at least one value"))
        if r.get("nonResourceURLs"):
            if namespaced:
                errs.append(E.invalid(p + ".nonResourceURLs", r["nonResourceURLs"], "namespaced rules cannot apply to non-resource URLs"))
            if r.get("apiGroups") or r.get("resources") or r.get("resourceNames"):
                errs.append(E.invalid(p + ".nonResourceURLs", r["nonResourceURLs"], "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not r.get("apiGroups"):
            errs.append(E.required(p + ".apiGroups", "resource rules must supply at least one api group"))
        if not r.get("resources"):
            errs.append(E.required(p + ".resources", "resource rules must supply at least one resource"))
    return errs


def role_validate(o, old):
    return _rules_validate(o, True)


def clusterrole_validate(o, old):
    return _rules_validate(o, False)


def _binding_validate(o, old, kinds):
    errs = []
    ref = o.get("roleRef")
    if not isinstance(ref, dict):
        errs.append(E.required("roleRef"))
        ref = {}
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        errs.append(E.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), ["rbac.authorization.k8s.io"]))
    if ref.get("kind") not in kinds:
        errs.append(E.not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        errs.append(E.required("roleRef.name"))
    for i, sub in enumerate(o.get("subjects") or []):
        sub = sub or {}
        p = "subjects[%d]" % i
        if not sub.get("name"):
            errs.append(E.required(p + ".name"))
        k = sub.get("kind")
        if k not in ("ServiceAccount", "User", "Group"):
            errs.append(E.not_supported(p + ".kind", k or "", ["ServiceAccount", "User", "Group"]))
        elif k == "ServiceAccount":
            if sub.get("apiGroup"):
                errs.append(E.not_supported(p + ".apiGroup", sub["apiGroup"], [""]))
            if len(kinds) == 1 and not sub.get("namespace"):
                errs.append(E.required(p + ".namespace"))
        elif sub.get("apiGroup") != "rbac.authorization.k8s.io":
            errs.append(E.not_supported(p + ".apiGroup", sub.get("apiGroup", ""), ["rbac.authorization.k8s.io"]))
    if old is not None and old.get("roleRef") != o.get("roleRef"):
        errs.append(E.invalid("roleRef", o.get("roleRef"), "cannot change roleRef"))
    return errs


def rolebinding_validate(o, old):
    return _binding_validate(o, old, ["Role", "ClusterRole"])


def crb_validate(o, old):
    return _binding_validate(o, old, ["ClusterRole"])


def role_printer(o):
    return [o["metadata"]["name"], ((o.get("metadata") or {}).get("creationTimestamp") or "")]


def binding_printer(o):
    ref = o.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in o.get("subjects") or []:
        k = (s or {}).get("kind")
        if k == "User":
            users.append(s.get("name", ""))
        elif k == "Group":
            groups.append(s.get("name", ""))
        elif k == "ServiceAccount":
            sas.append("%s/%s" % (s.get("namespace", ""), s.get("name", "")))
    return [o["metadata"]["name"], "%s/%s" % (ref.get("kind", ""), ref.get("name", "")), _age(o),
            ", ".join(users), ", ".join(groups), ", ".join(sas)]


ROLE_COLUMNS = [NAME_COL, col("Created At", "date", "", CREATION_DESC)]
BINDING_COLUMNS = [
    NAME_COL,
    col("Role", desc="RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
    AGE_COL,
    col("Users", priority=1, desc="Users in the roleBinding"),
    col("Groups", priority=1, desc="Groups in the roleBinding"),
    col("ServiceAccounts", priority=1, desc="ServiceAccounts in the roleBinding"),
]


# ----------------------------------------------------------------- policy/v1 PodDisruptionBudget

def pdb_defaults(o, old, ctx):
    o.setdefault("spec", {})
    if old is None:
        o["status"] = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}


def _int_or_percent(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0 or \
        isinstance(v, str) and re.match(r"^(\d+%|\d+)$", v) is not None


def pdb_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    mn, mx = spec.get("minAvailable"), spec.get("maxUnavailable")
    if mn is not None and mx is not None:
        errs.append(E.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    for f, v in (("minAvailable", mn), ("maxUnavailable", mx)):
        if v is not None and not _int_or_percent(v):
            errs.append(E.invalid("spec." + f, v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
    return errs


def _ios(v):
    return "N/A" if v is None else str(v)


def pdb_printer(o):
    spec = o.get("spec") or {}
    return [o["metadata"]["name"], _ios(spec.get("minAvailable")), _ios(spec.get("maxUnavailable")),
            (o.get("status") or {}).get("disruptionsAllowed") or 0, _age(o)]


PDB_COLUMNS = [
    NAME_COL,
    col("Min Available", desc="The minimum number of pods that must be available"),
    col("Max Unavailable", desc="The maximum number of pods that may be unavailable"),
    col("Allowed Disruptions", "integer", desc="Calculated number of pods that may be disrupted at this time"),
    AGE_COL,
]


# ----------------------------------------------------------------- networking.k8s.io/v1 Ingress

def ing_defaults(o, old, ctx):
    o.setdefault("spec", {})
    if old is None:
        o["status"] = {"loadBalancer": {}}


def _ing_backend_validate(b, path):
    errs = []
    if not isinstance(b, dict):
        return [E.required(path)]
    svc, res = b.get("service"), b.get("resource")
    if svc is None and res is None:
        errs.append(E.invalid(path, b, "one backend must be specified"))
    if isinstance(svc, dict):
        if not svc.get("name"):
            errs.append(E.required(path + ".service.name"))
        port = svc.get("port") or {}
        if not port.get("name") and not port.get("number"):
            errs.append(E.required(path + ".service.port", "port name or number is required"))
        if port.get("name") and port.get("number"):
            errs.append(E.invalid(path + ".service.port", port, "cannot set both port name & port number"))
    return errs


def ing_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    if not spec.get("rules") and not spec.get("defaultBackend"):
        errs.append(E.invalid("spec", spec, "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errs += _ing_backend_validate(spec["defaultBackend"], "spec.defaultBackend")
    for i, r in enumerate(spec.get("rules") or []):
        r = r or {}
        h = r.get("host")
        if h:
            hv = h[2:] if h.startswith("*.") else h
            for m in U.is_dns1123_subdomain(hv):
                errs.append(E.invalid("spec.rules[%d].host" % i, h, m))
        for j, pth in enumerate(((r.get("http") or {}).get("paths")) or []):
            pth = pth or {}
            p = "spec.rules[%d].http.paths[%d]" % (i, j)
            pt = pth.get("pathType")
            if pt is None:
                errs.append(E.required(p + ".pathType", "pathType must be specified"))
            elif pt not in ("Exact", "Prefix", "ImplementationSpecific"):
                errs.append(E.not_supported(p + ".pathType", pt, ["Exact", "ImplementationSpecific", "Prefix"]))
            if pt in ("Exact", "Prefix") and not str(pth.get("path", "")).startswith("/"):
                errs.append(E.invalid(p + ".path", pth.get("path", ""), "must be an absolute path"))
            errs += _ing_backend_validate(pth.get("backend"), p + ".backend")
    for i, t in enumerate(spec.get("tls") or []):
        for j, h in enumerate((t or {}).get("hosts") or []):
            hv = h[2:] if h.startswith("*.") else h
            for m in U.is_dns1123_subdomain(hv):
                errs.append(E.invalid("spec.tls[%d].hosts[%d]" % (i, j), h, m))
    return errs


def ing_printer(o):
    spec = o.get("spec") or {}
    hosts = [r.get("host") for r in (spec.get("rules") or []) if (r or {}).get("host")]
    if not hosts:
        hosts_s = "*"
    elif len(hosts) > 3:
        hosts_s = "%s + %d more..." % (",".join(hosts[:3]), len(hosts) - 3)
    else:
        hosts_s = ",".join(hosts)
    lb = (((o.get("status") or {}).get("loadBalancer") or {}).get("ingress")) or []
    addr = ",".join(i.get("ip") or i.get("hostname") or "" for i in lb if i.get("ip") or i.get("hostname"))
    return [o["metadata"]["name"], spec.get("ingressClassName") or "<none>", hosts_s, addr,
            "80, 443" if spec.get("tls") else "80", _age(o)]


ING_COLUMNS = [
    NAME_COL,
    col("Class", desc="The name of the IngressClass resource that should be used for this Ingress."),
    col("Hosts", desc="Hosts that incoming requests are matched against before the ingress rule"),
    col("Address", desc="Address is a list containing ingress points for the load-balancer"),
    col("Ports", desc="Ports of TLS configurations that open"),
    AGE_COL,
]


# ----------------------------------------------------------------- CustomResourceDefinition

def crd_printer(o):
    return [o["metadata"]["name"], ((o.get("metadata") or {}).get("creationTimestamp") or "")]


CRD_COLUMNS = [NAME_COL, col("Created At", "date", "", CREATION_DESC)]


def crd_defaults(o, old, ctx):
    spec = o.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for v in spec.get("versions") or []:
        if isinstance(v, dict):
            v.setdefault("served", True)
            v.setdefault("storage", False)
    if old is None:
        o["status"] = {}
    else:
        o["status"] = copy.deepcopy(old.get("status") or {})


def crd_validate(o, old):
    errs = []
    spec = o.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    name = (o.get("metadata") or {}).get("name", "")
    if not group:
        errs.append(E.required("spec.group"))
    else:
        for m in U.is_dns1123_subdomain(group):
            errs.append(E.invalid("spec.group", group, m))
        if len(group.split(".")) < 2:
            errs.append(E.invalid("spec.group", group, "should be a domain with at least one dot"))
    plural = names.get("plural") or ""
    if not plural:
        errs.append(E.required("spec.names.plural"))
    else:
        for m in U.is_dns1123_label(plural):
            errs.append(E.invalid("spec.names.plural", plural, m))
    if names.get("singular"):
        for m in U.is_dns1123_label(names["singular"]):
            errs.append(E.invalid("spec.names.singular", names["singular"], m))
    if not names.get("kind"):
        errs.append(E.required("spec.names.kind"))
    elif not re.match(r"^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$", names["kind"]):
        errs.append(E.invalid("spec.names.kind", names["kind"], "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))
    for i, s in enumerate(names.get("shortNames") or []):
        for m in U.is_dns1123_label(s):
            errs.append(E.invalid("spec.names.shortNames[%d]" % i, s, m))
    if plural and group and name != "%s.%s" % (plural, group):
        errs.append(E.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if scope not in ("Cluster", "Namespaced"):
        if not scope:
            errs.append(E.required("spec.scope"))
        else:
            errs.append(E.not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(E.required("spec.versions", "must have exactly one version marked as storage version"))
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        errs.append(E.invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
    seen = set()
    for i, v in enumerate(versions):
        if not isinstance(v, dict):
            continue
        vn = v.get("name") or ""
        if not vn:
            errs.append(E.required("spec.versions[%d].name" % i))
        elif vn in seen:
            errs.append(E.invalid("spec.versions", versions, "must contain unique version names"))
        seen.add(vn)
        if vn and not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", vn):
            errs.append(E.invalid("spec.versions[%d].name" % i, vn, U.LABEL_MSG))
        sch = (v.get("schema") or {}).get("openAPIV3Schema")
        if sch is None:
            errs.append(E.required("spec.versions[%d].schema.openAPIV3Schema" % i, "schemas are required"))
        elif not isinstance(sch, dict) or sch.get("type") != "object":
            errs.append(E.required("spec.versions[%d].schema.openAPIV3Schema.type" % i, "must not be empty at the root"))
        for j, c in enumerate(v.get("additionalPrinterColumns") or []):
            if not c.get("name"):
                errs.append(E.required("spec.versions[%d].additionalPrinterColumns[%d].name" % (i, j)))
            if c.get("type") not in ("integer", "number", "string", "boolean", "date"):
                errs.append(E.not_supported("spec.versions[%d].additionalPrinterColumns[%d].type" % (i, j), c.get("type"), ["boolean", "date", "integer", "number", "string"]))
            if not c.get("jsonPath"):
                errs.append(E.required("spec.versions[%d].additionalPrinterColumns[%d].JSONPath" % (i, j)))
    if old is not None:
        ospec = old.get("spec") or {}
        if ospec.get("group") != group:
            errs.append(E.invalid("spec.group", group, "field is immutable"))
        if (ospec.get("names") or {}).get("plural") != plural:
            errs.append(E.invalid("status.storedVersions", None, "must have the same plural"))
        if ospec.get("scope") != scope:
            errs.append(E.invalid("spec.scope", scope, "field is immutable"))
    return errs


def crd_establish(o):
    """Set status as apiextensions-apiserver's controllers do once names are accepted."""
    spec = o.get("spec") or {}
    names = copy.deepcopy(spec.get("names") or {})
    st = o.setdefault("status", {})
    now = U.rfc3339()
    st["acceptedNames"] = names
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    if "NamesAccepted" not in conds:
        conds["NamesAccepted"] = {"lastTransitionTime": now, "message": "no conflicts found", "reason": "NoConflicts",
                                  "status": "True", "type": "NamesAccepted"}
    if "Established" not in conds:
        conds["Established"] = {"lastTransitionTime": now, "message": "the initial names have been accepted",
                                "reason": "InitialNamesAccepted", "status": "True", "type": "Established"}
    st["conditions"] = [conds["NamesAccepted"], conds["Established"]]
    stored = list(st.get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if v.get("storage") and v.get("name") not in stored:
            stored.append(v["name"])
    st["storedVersions"] = stored


# ----------------------------------------------------------------- built-in table

def builtin_types():
    core_ns = dict(group="", version="v1")
    t = [
        ResourceType(kind="ConfigMap", plural="configmaps", short_names=["cm"], printer=cm_printer,
                     columns=[NAME_COL, col("Data", desc="Data contains the configuration data."), AGE_COL],
                     validator=cm_validate, **core_ns),
        ResourceType(kind="Endpoints", plural="endpoints", singular="endpoints", short_names=["ep"], printer=ep_printer,
                     columns=[NAME_COL, col("Endpoints", desc="The set of all endpoints is the union of all subsets."), AGE_COL],
                     allow_create_on_update=True, **core_ns),
        ResourceType(kind="Event", plural="events", short_names=["ev"], printer=event_printer, columns=EVENT_COLUMNS,
                     defaulter=event_core_defaults, validator=event_core_validate, field_fn=event_fields,
                     field_set=event_fields({}).keys(), allow_create_on_update=True, storage="core/events", **core_ns),
        ResourceType(kind="Namespace", plural="namespaces", short_names=["ns"], namespaced=False,
                     verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
                     subresources={"finalize": ["update"], "status": ["get", "patch", "update"]},
                     printer=ns_printer, columns=[NAME_COL, col("Status", desc="The status of the namespace"), AGE_COL],
                     name_check="label", defaulter=ns_defaults, status_sub=True, return_deleted=True,
                     field_fn=lambda o: {"status.phase": (o.get("status") or {}).get("phase", "")},
                     field_set=["status.phase"], **core_ns),
        ResourceType(kind="Pod", plural="pods", short_names=["po"], categories=["all"], printer=pod_printer,
                     subresources={"status": ["get", "patch", "update"]}, status_sub=True,
                     columns=[NAME_COL, col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
                              col("Status", desc="The aggregate status of the containers in this pod."),
                              col("Restarts", desc="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                              AGE_COL, col("IP", priority=1, desc="podIP address allocated to the pod."),
                              col("Node", priority=1, desc="NodeName indicates in which node this pod is scheduled."),
                              col("Nominated Node", priority=1, desc="nominatedNodeName is set only when this pod preempts other pods on the node."),
                              col("Readiness Gates", priority=1, desc="If specified, all readiness gates will be evaluated for pod readiness.")],
                     defaulter=pod_defaults, validator=pod_validate, return_deleted=True, field_fn=pod_fields,
                     field_set=pod_fields({}).keys(), **core_ns),
        ResourceType(kind="Secret", plural="secrets", printer=secret_printer,
                     columns=[NAME_COL, col("Type", desc="Used to facilitate programmatic handling of secret data."),
                              col("Data", desc="Data contains the secret data."), AGE_COL],
                     defaulter=secret_defaults, validator=secret_validate,
                     field_fn=lambda o: {"type": o.get("type", "")}, field_set=["type"], **core_ns),
        ResourceType(kind="ServiceAccount", plural="serviceaccounts", short_names=["sa"], printer=sa_printer,
                     columns=[NAME_COL, col("Secrets", desc="Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), AGE_COL],
                     **core_ns),
        ResourceType(kind="Service", plural="services", short_names=["svc"], categories=["all"], printer=svc_printer,
                     subresources={"status": ["get", "patch", "update"]}, status_sub=True, name_check="dns1035",
                     verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                     columns=[NAME_COL, col("Type", desc="type determines how the Service is exposed."),
                              col("Cluster-IP", desc="clusterIP is the IP address of the service."),
                              col("External-IP", desc="externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                              col("Port(s)", desc="The list of ports that are exposed by this service."), AGE_COL,
                              col("Selector", priority=1, desc="Route service traffic to pods with label keys and values matching this selector.")],
                     defaulter=svc_defaults, validator=svc_validate, allow_create_on_update=True,
                     field_fn=lambda o: {"spec.clusterIP": (o.get("spec") or {}).get("clusterIP", ""),
                                         "spec.type": (o.get("spec") or {}).get("type", "")},
                     field_set=["spec.clusterIP", "spec.type"], **core_ns),
        ResourceType(group="apiextensions.k8s.io", version="v1", kind="CustomResourceDefinition",
                     plural="customresourcedefinitions", short_names=["crd", "crds"], namespaced=False,
                     categories=["api-extensions"], subresources={"status": ["get", "patch", "update"]},
                     printer=crd_printer, columns=CRD_COLUMNS, defaulter=crd_defaults, validator=crd_validate,
                     generation=True, status_sub=True, allow_unconditional_update=True, priority=1),
        ResourceType(group="coordination.k8s.io", version="v1", kind="Lease", plural="leases", printer=lease_printer,
                     columns=[NAME_COL, col("Holder", desc="holderIdentity contains the identity of the holder of a current lease."), AGE_COL],
                     validator=lease_validate, allow_create_on_update=True, priority=2),
        ResourceType(group="discovery.k8s.io", version="v1", kind="EndpointSlice", plural="endpointslices",
                     printer=eps_printer,
                     columns=[NAME_COL, col("AddressType", desc="addressType specifies the type of address carried by this EndpointSlice."),
                              col("Ports", desc="ports specifies the list of network ports exposed by each endpoint in this slice."),
                              col("Endpoints", desc="endpoints is a list of unique endpoints in this slice."), AGE_COL],
                     defaulter=eps_defaults, validator=eps_validate, generation=True, priority=3),
        ResourceType(group="apps", version="v1", kind="Deployment", plural="deployments", short_names=["deploy"],
                     categories=["all"], subresources={"status": ["get", "patch", "update"]}, status_sub=True,
                     printer=deploy_printer, columns=DEPLOY_COLUMNS, defaulter=deploy_defaults,
                     validator=deploy_validate, generation=True, priority=0),
        ResourceType(group="rbac.authorization.k8s.io", version="v1", kind="ClusterRole", plural="clusterroles",
                     namespaced=False, printer=role_printer, columns=ROLE_COLUMNS, validator=clusterrole_validate,
                     name_check="path", priority=0),
        ResourceType(group="rbac.authorization.k8s.io", version="v1", kind="ClusterRoleBinding",
                     plural="clusterrolebindings", namespaced=False, printer=binding_printer, columns=BINDING_COLUMNS,
                     validator=crb_validate, name_check="path", priority=0),
        ResourceType(group="rbac.authorization.k8s.io", version="v1", kind="Role", plural="roles",
                     printer=role_printer, columns=ROLE_COLUMNS, validator=role_validate, name_check="path", priority=0),
        ResourceType(group="rbac.authorization.k8s.io", version="v1", kind="RoleBinding", plural="rolebindings",
                     printer=binding_printer, columns=BINDING_COLUMNS, validator=rolebinding_validate,
                     name_check="path", priority=0),
        ResourceType(group="policy", version="v1", kind="PodDisruptionBudget", plural="poddisruptionbudgets",
                     short_names=["pdb"], subresources={"status": ["get", "patch", "update"]}, status_sub=True,
                     printer=pdb_printer, columns=PDB_COLUMNS, defaulter=pdb_defaults, validator=pdb_validate,
                     generation=True, priority=0),
        ResourceType(group="networking.k8s.io", version="v1", kind="Ingress", plural="ingresses", short_names=["ing"],
                     subresources={"status": ["get", "patch", "update"]}, status_sub=True, printer=ing_printer,
                     columns=ING_COLUMNS, defaulter=ing_defaults, validator=ing_validate, generation=True, priority=0),
        ResourceType(group="events.k8s.io", version="v1", kind="Event", plural="events", short_names=["ev"],
                     printer=event_printer, columns=EVENT_COLUMNS, storage="core/events",
                     from_storage=event_from_storage_v1, to_storage=event_to_storage_v1,
                     defaulter=event_core_defaults, validator=event_v1_validate, field_fn=events_v1_fields,
                     field_set=EVENTS_V1_FIELD_MAP.keys(), allow_create_on_update=True, priority=0),
    ]
    return t


def crd_resource_type(crd, version):
    """A ResourceType serving one version of a CRD."""
    spec = crd["spec"]
    names = spec["names"]
    v = next(x for x in spec["versions"] if x["name"] == version)
    storage_version = next(x["name"] for x in spec["versions"] if x.get("storage"))
    subs = v.get("subresources") or {}
    subresources = {}
    if "status" in subs:
        subresources["status"] = ["get", "patch", "update"]
    if "scale" in subs:
        subresources["scale"] = ["get", "patch", "update"]
    apc = v.get("additionalPrinterColumns")
    if not apc:
        apc = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns = [NAME_COL]
    for c in apc:
        columns.append(col(c["name"], c.get("type", "string"), c.get("format", ""),
                           c.get("description") or "Custom resource definition column (in JSONPath format): %s" % c["jsonPath"],
                           c.get("priority", 0)))

    def printer(o, apc=apc):
        cells = [o["metadata"].get("name", "")]
        for c in apc:
            val = jsonpath_simple(o, c["jsonPath"])
            t = c.get("type", "string")
            if val is None:
                cells.append(None)
            elif t == "string":
                cells.append(val if isinstance(val, str) else (U.dumps(val) if isinstance(val, (dict, list)) else
                                                               ("true" if val is True else "false" if val is False else str(val))))
            elif t == "integer":
                cells.append(int(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else None)
            elif t == "number":
                cells.append(float(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else None)
            elif t == "boolean":
                cells.append(val if isinstance(val, bool) else None)
            elif t == "date":
                if isinstance(val, str):
                    dt = U.parse_time(val)
                    cells.append("<invalid>" if dt is None else U.since(val))
                else:
                    cells.append(None)
            else:
                cells.append(None)
        return cells

    rt = ResourceType(group=spec["group"], version=version, kind=names["kind"], plural=names["plural"],
                      singular=names.get("singular") or names["kind"].lower(),
                      namespaced=spec.get("scope") == "Namespaced", short_names=names.get("shortNames"),
                      categories=names.get("categories"), subresources=subresources,
                      storage="%s/%s" % (spec["group"], names["plural"]), builtin=False, generation=True,
                      status_sub="status" in subs, allow_unconditional_update=False, return_deleted=True,
                      columns=columns, printer=printer, list_items_typed=True, priority=1000)
    rt.schema = (v.get("schema") or {}).get("openAPIV3Schema")
    rt.crd_name = crd["metadata"]["name"]
    rt.storage_version = storage_version
    rt.selectable_fields = [f["jsonPath"].lstrip(".") for f in (v.get("selectableFields") or [])]
    rt.list_kind_name = names.get("listKind") or names["kind"] + "List"
    return rt


def cr_defaults(rt, o):
    if rt.schema:
        S.apply_defaults(o, rt.schema)
