"""The HTTP(S) front end: authentication, routing, content negotiation and the
REST verbs, following kube-apiserver's handlers (k8s.io/apiserver/pkg/endpoints)."""

import base64
import copy
import http.server
import json
import os
import random
import re
import select
import socket
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

from . import errors as E
from . import fieldmanager as FM
from . import patch as P
from . import resources as R
from . import schema as S
from . import util as U
from . import yamlish
from .faults import Faults
from .registry import Registry
from .selectors import parse_field_selector, parse_label_selector
from .store import Store, Watcher

VERSION_INFO = {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                "gitCommit": "59526cd4867447956156ae3a602fcbac5e0d7b6f", "gitTreeState": "clean",
                "buildDate": "2025-04-22T15:55:38Z", "goVersion": "go1.23.6", "compiler": "gc",
                "platform": "linux/amd64"}

TABLE_GVS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")

# top-level fields each built-in kind accepts (for fieldValidation=Strict/Warn)
BUILTIN_FIELDS = {
    "ConfigMap": {"data", "binaryData", "immutable"},
    "Secret": {"data", "stringData", "type", "immutable"},
    "Namespace": {"spec", "status"},
    "Service": {"spec", "status"},
    "Endpoints": {"subsets"},
    "Pod": {"spec", "status"},
    "ServiceAccount": {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Lease": {"spec"},
    "EndpointSlice": {"addressType", "endpoints", "ports"},
    "Deployment": {"spec", "status"},
    "ClusterRole": {"rules", "aggregationRule"},
    "ClusterRoleBinding": {"subjects", "roleRef"},
    "Role": {"rules"},
    "RoleBinding": {"subjects", "roleRef"},
    "PodDisruptionBudget": {"spec", "status"},
    "Ingress": {"spec", "status"},
    "CustomResourceDefinition": {"spec", "status"},
    "Event@v1": {"involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
                 "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"},
    "Event@events.k8s.io/v1": {"eventTime", "series", "reportingController", "reportingInstance", "action", "reason",
                               "regarding", "related", "note", "type", "deprecatedSource", "deprecatedFirstTimestamp",
                               "deprecatedLastTimestamp", "deprecatedCount"},
}


class Ctx:
    """Allocators used by defaulting (cluster IPs, node ports)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next_ip = 10
        self.next_port = 30000

    def allocate_cluster_ip(self):
        with self.lock:
            n = self.next_ip
            self.next_ip += 1
        return "10.96.%d.%d" % (n // 256, n % 256)

    def allocate_node_port(self):
        with self.lock:
            p = self.next_port
            self.next_port += 1
        return p


class Stop(Exception):
    """Abort handling; the response has already been dealt with."""


class APIServer:
    def __init__(self, pki, tokens, version_info=None, bookmark_interval=60.0, watch_timeout=1800,
                 anonymous=False, history=100000, log_requests=False):
        self.pki = pki
        self.tokens = dict(tokens)  # token -> {"user": ..., "groups": [...]}
        self.store = Store(history=history)
        self.registry = Registry()
        self.faults = Faults()
        self.ctx = Ctx()
        self.version_info = dict(version_info or VERSION_INFO)
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.anonymous = anonymous
        self.requests = []
        self.req_lock = threading.Lock()
        self.log_requests = log_requests
        self.started = U.utcnow()
        self._bootstrap()

    # ------------------------------------------------------------ bootstrap
    def _bootstrap(self):
        with self.store.lock:
            for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
                rt = self.registry.get("", "v1", "namespaces")
                self._create_internal(rt, {"metadata": {"name": ns}}, manager="kube-apiserver")
            rt = self.registry.get("", "v1", "services")
            self._create_internal(rt, {"metadata": {"name": "kubernetes", "namespace": "default",
                                                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                                       "spec": {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                                                "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                           "targetPort": 6443}]}}, manager="kube-apiserver")
            for ns in ("default", "kube-node-lease", "kube-public", "kube-system"):
                self.publish_root_ca(ns)

    def publish_root_ca(self, ns):
        """kube-controller-manager's root-ca-cert-publisher: a kube-root-ca.crt
        ConfigMap in every namespace."""
        ca = open(self.pki["ca.crt"]).read() if self.pki else ""
        cm = self.registry.get("", "v1", "configmaps")
        with self.store.lock:
            if self.store.get(cm.storage, (ns, "kube-root-ca.crt")) is not None:
                return
            self._create_internal(cm, {"metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                                                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                                       "data": {"ca.crt": ca}}, manager="kube-controller-manager")

    def _create_internal(self, rt, obj, manager):
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        md["uid"] = U.new_uid()
        md["creationTimestamp"] = U.rfc3339()
        if rt.defaulter:
            rt.defaulter(obj, None, self.ctx)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        FM.update(None, obj, manager, rt.api_version)
        obj.pop("apiVersion", None)
        obj.pop("kind", None)
        rv = self.store.next_rv()
        md["resourceVersion"] = str(rv)
        key = (md.get("namespace", ""), md["name"])
        self.store.write(rt.storage, key, obj, "ADDED")
        return obj

    def load_crd(self, crd):
        """Preload a CRD object (as from --crd files)."""
        rt = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        with self.store.lock:
            existing = self.store.get(rt.storage, ("", crd["metadata"]["name"]))
            if existing is not None:
                return
            obj = copy.deepcopy(crd)
            obj.pop("status", None)
            R.crd_defaults(obj, None, self.ctx)
            errs = R.crd_validate(obj, None) + _validate_meta(rt, obj, None)
            if errs:
                raise ValueError("invalid CRD %s: %s" % (crd["metadata"].get("name"), "; ".join(str(e) for e in errs)))
            md = obj.setdefault("metadata", {})
            md["uid"] = U.new_uid()
            md["creationTimestamp"] = U.rfc3339()
            md["generation"] = 1
            R.crd_establish(obj)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            FM.update(None, obj, "kube-apiserver", rt.api_version)
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
            md["resourceVersion"] = str(self.store.next_rv())
            self.store.write(rt.storage, ("", md["name"]), obj, "ADDED")
            self.registry.register_crd(obj)

    # ------------------------------------------------------------ request log
    def record(self, entry):
        with self.req_lock:
            self.requests.append(entry)
            if len(self.requests) > 20000:
                del self.requests[:5000]
        if self.log_requests:
            sys.stderr.write("%s %s %s -> %s\n" % (entry["method"], entry["path"], entry["query"], entry.get("code")))


# ====================================================================== HTTP

class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, api, ssl_ctx):
        self.api = api
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError, socket.timeout):
                try:
                    request.close()
                except OSError:
                    pass
                return
            request.settimeout(None)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def parse_accept(header):
    out = []
    for part in (header or "*/*").split(","):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((bits[0].lower(), params))
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-test"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    # entry points
    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def do_PUT(self):
        self._serve()

    def do_PATCH(self):
        self._serve()

    def do_DELETE(self):
        self._serve()

    def do_HEAD(self):
        self._serve()

    def do_OPTIONS(self):
        self._serve()

    # ---------------------------------------------------------------- plumbing
    @property
    def api(self):
        return self.server.api

    def _serve(self):
        self.t0 = time.time()
        u = urllib.parse.urlsplit(self.path)
        self.url_path = urllib.parse.unquote(u.path) or "/"
        self.raw_query = u.query
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        self.query_multi = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.user = None
        self.status_code = None
        self.fault = None
        self.cut_after = None
        self.warnings = []
        self.body_bytes = None
        entry = {"time": U.rfc3339_micro(), "method": self.command, "path": self.url_path, "query": self.raw_query,
                 "userAgent": self.headers.get("User-Agent", ""), "accept": self.headers.get("Accept", ""),
                 "contentType": self.headers.get("Content-Type", "")}
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.body_bytes = self.rfile.read(length)
            elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                self.body_bytes = self._read_chunked()
            else:
                self.body_bytes = b""
            if self.command in ("POST", "PUT", "PATCH") and self.body_bytes:
                entry["body"] = self.body_bytes.decode("utf-8", "replace")[:65536]
            self._dispatch()
        except Stop:
            pass
        except E.APIError as e:
            self.send_error_status(e)
        except (ConnectionError, BrokenPipeError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # a bug in the test server: answer 500 and log it
            import traceback
            traceback.print_exc()
            try:
                self.send_error_status(E.internal("test apiserver bug: %s: %s" % (type(e).__name__, e)))
            except Exception:
                self.close_connection = True
        finally:
            entry["code"] = self.status_code
            entry["user"] = self.user
            if self.fault:
                entry["fault"] = self.fault.get("id")
            entry["durationMs"] = int((time.time() - self.t0) * 1000)
            if not self.url_path.startswith("/__test/"):
                self.api.record(entry)

    def _read_chunked(self):
        out = b""
        while True:
            line = self.rfile.readline()
            n = int(line.strip().split(b";")[0] or b"0", 16)
            if n == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(n)
            self.rfile.readline()

    def send_raw(self, code, body, content_type="application/json", headers=None):
        self.status_code = code
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", U.new_uid())
        for w in self.warnings:
            self.send_header("Warning", '299 - %s' % json.dumps(w))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", self.date_time_string())
        self.end_headers()
        if self.fault and self.fault["action"] == "stall" and self.fault.get("phase") == "headers":
            self.wfile.flush()
            time.sleep(float(self.fault["seconds"]))
        if self.command == "HEAD":
            return
        if self.cut_after is not None:
            self.wfile.write(body[:self.cut_after])
            self.wfile.flush()
            self._abort_connection()
            raise Stop()
        self.wfile.write(body)
        self.wfile.flush()

    def _abort_connection(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock = self.connection
            if isinstance(sock, ssl.SSLSocket):
                # close the TCP socket underneath without a TLS close_notify: a real cut
                raw = socket.socket(fileno=os.dup(sock.fileno()))
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                raw.close()
        except OSError:
            pass

    def send_json(self, code, obj, headers=None, content_type="application/json"):
        if self.response_yaml():
            body = yamlish.dump(U.sort_keys(obj)).encode()
            content_type = "application/yaml"
        else:
            body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        self.send_raw(code, body, content_type, headers)

    def send_error_status(self, e):
        if e.text is not None:
            self.send_raw(e.code, e.text.encode(), "text/plain; charset=utf-8", e.headers)
        else:
            self.send_raw(e.code, e.body(), "application/json", e.headers)

    def response_yaml(self):
        for mt, params in parse_accept(self.headers.get("Accept")):
            if mt in ("application/json", "*/*", "application/*"):
                return False
            if mt == "application/yaml":
                return True
        return False

    # ---------------------------------------------------------------- auth
    def authenticate(self):
        cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                cert = self.connection.getpeercert()
            except (ValueError, OSError):
                cert = None
        if cert:
            cn = None
            groups = []
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
                    elif k == "organizationName":
                        groups.append(v)
            if cn:
                return {"user": cn, "groups": groups + ["system:authenticated"], "via": "x509"}
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            tok = auth[7:].strip()
            info = self.api.tokens.get(tok)
            if info:
                return {"user": info["user"], "groups": list(info.get("groups", [])) + ["system:authenticated"],
                        "via": "token"}
            raise E.unauthorized()
        if auth.lower().startswith("basic "):
            raise E.unauthorized()
        if self.api.anonymous:
            return {"user": "system:anonymous", "groups": ["system:unauthenticated"], "via": "anonymous"}
        raise E.unauthorized()

    # ---------------------------------------------------------------- routing
    def _dispatch(self):
        path = self.url_path
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            self.user = "-"
            return self.send_raw(200, b"ok", "text/plain; charset=utf-8")
        ident = self.authenticate()
        self.user = ident["user"]
        self.ident = ident
        if path.startswith("/__test/"):
            return self.control()
        is_watch = self._looks_like_watch()
        f = self.api.faults.match(self.command, path, self.raw_query, is_watch, self.user)
        if f:
            self.fault = f
            self._apply_fault_before(f)
        self.route()

    def _looks_like_watch(self):
        if self.command != "GET":
            return False
        if "/watch/" in self.url_path:
            return True
        w = self.query.get("watch", "")
        return w in ("1", "true", "True")

    def _apply_fault_before(self, f):
        a = f["action"]
        if a == "stall":
            if f.get("phase", "before") == "before":
                time.sleep(float(f["seconds"]))
                self.fault = None
            then = f.get("then")
            if then:
                nf = dict(then)
                nf.setdefault("action", nf.get("type"))
                self.fault = nf
                return self._apply_fault_before(nf)
            return
        if a == "reset":
            self._abort_connection()
            raise Stop()
        if a == "status":
            code = int(f["code"])
            headers = {}
            if f.get("retryAfter") is not None:
                headers["Retry-After"] = str(f["retryAfter"])
            body_kind = f.get("body", "text" if code == 429 else "status")
            if body_kind == "empty":
                self.send_raw(code, b"", "text/plain; charset=utf-8", headers)
                raise Stop()
            if body_kind == "text":
                text = f.get("message") or ("Too many requests, please try again later.\n" if code == 429 else "injected fault\n")
                self.send_raw(code, text.encode(), "text/plain; charset=utf-8", headers)
                raise Stop()
            reason, message = _default_reason(code)
            if f.get("reason"):
                reason = f["reason"]
            if f.get("message"):
                message = f["message"]
            details = f.get("details")
            if details is None and f.get("retryAfter") is not None and code in (429, 500, 503, 504):
                details = {"retryAfterSeconds": int(f["retryAfter"])}
            if code == 500 and not f.get("message"):
                details = dict(details or {})
                details["causes"] = [{"message": "injected fault"}]
            e = E.APIError(code, reason, message, details, headers)
            self.send_error_status(e)
            raise Stop()
        if a == "body":
            code = int(f.get("code", 200))
            body = f.get("body", "")
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            self.send_raw(code, body.encode(), f.get("contentType", "application/json"), f.get("headers"))
            raise Stop()
        if a == "cut":
            self.cut_after = int(f.get("afterBytes", 0))

    def route(self):
        path = self.url_path
        m = self.command
        if m == "OPTIONS":
            return self.send_raw(200, b"", "text/plain")
        if path == "/version" or path == "/version/":
            self._only_get()
            return self.send_json(200, self.api.version_info)
        if path in ("/api", "/api/"):
            self._only_get()
            return self.discovery(True)
        if path in ("/apis", "/apis/"):
            self._only_get()
            return self.discovery(False)
        if path == "/openapi/v2":
            self._only_get()
            from . import openapiv2
            for mt, _params in parse_accept(self.headers.get("Accept")):
                if mt == openapiv2.PROTO_MIME:
                    body = openapiv2.document_proto(self.api.registry, self.api.version_info["gitVersion"])
                    return self.send_raw(200, body, openapiv2.PROTO_CONTENT_TYPE)
                if mt in ("application/json", "*/*", "application/*"):
                    return self.send_json(200, openapiv2.document_json(self.api.registry, self.api.version_info["gitVersion"]))
            raise E.not_acceptable("only the following media types are accepted: application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
        if path == "/openapi/v3" or path == "/openapi/v3/":
            self._only_get()
            return self.send_json(200, self.api.registry.openapi_paths())
        if path.startswith("/openapi/v3/"):
            self._only_get()
            rest = path[len("/openapi/v3/"):].strip("/")
            parts = rest.split("/")
            if parts[:2] == ["api", "v1"] and len(parts) == 2:
                doc = self.api.registry.openapi_gv("", "v1")
            elif parts[0] == "apis" and len(parts) == 3 and self.api.registry.resources(parts[1], parts[2]):
                doc = self.api.registry.openapi_gv(parts[1], parts[2])
            else:
                raise E.APIError(404, "", "", text="404 page not found\n")
            return self.send_json(200, doc, headers={"Cache-Control": "public, immutable" if self.query.get("hash") else "no-cache, private"})
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            raise E.APIError(404, "", "", text="404 page not found\n")
        if parts[0] == "api":
            if len(parts) == 1:
                return self.discovery(True)
            if parts[1] != "v1":
                raise E.APIError(404, "", "", text="404 page not found\n")
            group, version, rest = "", "v1", parts[2:]
        else:
            if len(parts) == 2:
                self._only_get()
                g = self.api.registry.api_group(parts[1])
                if not g:
                    raise E.APIError(404, "", "", text="404 page not found\n")
                g = dict(g)
                return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", **g})
            group, version, rest = parts[1], parts[2], parts[3:]
            if not self.api.registry.resources(group, version):
                raise E.APIError(404, "", "", text="404 page not found\n")
        if not rest:
            self._only_get()
            return self.send_json(200, self.api.registry.api_resource_list(group, version))
        watch_prefix = False
        if rest[0] == "watch":
            watch_prefix = True
            rest = rest[1:]
            if not rest:
                raise E.not_found_generic()
        ns = None
        if rest[0] == "namespaces" and len(rest) > 1:
            if len(rest) > 2 and rest[2] not in ("status", "finalize"):
                ns = rest[1]
                rest = rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise E.not_found_generic()
        rt = self.api.registry.get(group, version, resource)
        if rt is None:
            raise E.not_found_generic()
        if rt.namespaced and ns is None and name is not None:
            raise E.not_found_generic()
        if not rt.namespaced and ns is not None:
            raise E.not_found_generic()
        if sub is not None and sub not in rt.subresources:
            raise E.not_found_generic()
        if name is not None and name == "":
            raise E.not_found_generic()
        self.rt = rt
        if watch_prefix:
            if m != "GET":
                raise E.method_not_allowed()
            return self.do_watch(rt, ns, name)
        if m in ("GET", "HEAD"):
            if name is None:
                if self._looks_like_watch():
                    return self.do_watch(rt, ns, None)
                return self.do_list(rt, ns)
            if self._looks_like_watch():
                return self.do_watch(rt, ns, name)
            return self.do_get(rt, ns, name, sub)
        if m == "POST":
            if name is not None:
                raise E.method_not_allowed()
            return self.do_create(rt, ns)
        if m == "PUT":
            if name is None:
                raise E.method_not_allowed()
            return self.do_update(rt, ns, name, sub)
        if m == "PATCH":
            if name is None:
                raise E.method_not_allowed()
            return self.do_patch(rt, ns, name, sub)
        if m == "DELETE":
            if name is None:
                if "deletecollection" not in rt.verbs:
                    raise E.method_not_allowed()
                return self.do_deletecollection(rt, ns)
            if sub is not None:
                raise E.method_not_allowed()
            return self.do_delete(rt, ns, name)
        raise E.method_not_allowed()

    def _only_get(self):
        if self.command not in ("GET", "HEAD"):
            raise E.method_not_allowed()

    # ---------------------------------------------------------------- discovery
    def discovery(self, legacy):
        reg = self.api.registry
        for mt, params in parse_accept(self.headers.get("Accept")):
            if mt == "application/json" and params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io":
                v = params.get("v")
                if v in ("v2", "v2beta1"):
                    doc = reg.aggregated(legacy, v)
                    body = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
                    import hashlib
                    etag = '"%s"' % hashlib.sha512(body).hexdigest().upper()
                    if self.headers.get("If-None-Match") == etag:
                        self.status_code = 304
                        self.send_response(304)
                        self.send_header("Etag", etag)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    return self.send_raw(200, body, "application/json;g=apidiscovery.k8s.io;v=%s;as=APIGroupDiscoveryList" % v,
                                         {"Etag": etag, "Vary": "Accept"})
                continue
            if mt in ("application/json", "*/*", "application/*", "application/yaml"):
                break
            if params.get("as"):
                continue
        if legacy:
            return self.send_json(200, reg.legacy_api_versions(), headers={"Vary": "Accept"})
        return self.send_json(200, reg.api_group_list(), headers={"Vary": "Accept"})

    # ---------------------------------------------------------------- output negotiation
    def output_mode(self, allow_table=True, allow_partial=True, is_list=False):
        """Returns ('json'|'table'|'partial'|'yaml', gv)."""
        for mt, params in parse_accept(self.headers.get("Accept")):
            a = params.get("as")
            if a:
                gv = "%s/%s" % (params.get("g", ""), params.get("v", ""))
                if mt != "application/json" or gv not in TABLE_GVS:
                    continue
                if a == "Table" and allow_table:
                    return "table", gv
                if a in ("PartialObjectMetadata", "PartialObjectMetadataList") and allow_partial:
                    if (a == "PartialObjectMetadataList") == is_list:
                        return "partial", gv
                continue
            if mt in ("application/json", "*/*", "application/*", "application/json;stream=watch"):
                return "json", None
            if mt == "application/yaml":
                return "yaml", None
        raise E.not_acceptable("only the following media types are accepted: application/json, application/yaml")

    def encode_out(self, rt, stored):
        o = rt.encode(stored)
        if not rt.builtin:
            return U.sort_keys(o)
        return _order_builtin(o)

    def table_for(self, rt, stored_objs, gv, list_meta=None, no_headers=False):
        include = self.query.get("includeObject", "Metadata") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise E.bad_request('unrecognized includeObject value: "%s"' % include)
        cols, rows = rt.table(stored_objs)
        t = {"kind": "Table", "apiVersion": gv, "metadata": dict(list_meta or {}),
             "columnDefinitions": None if no_headers else cols, "rows": []}
        for cells, o in rows:
            row = {"cells": cells}
            if include == "Object":
                row["object"] = self.encode_out(rt, o)
            elif include == "Metadata":
                md = copy.deepcopy(o.get("metadata") or {})
                row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": gv, "metadata": md}
            rows_obj = row
            t["rows"].append(rows_obj)
        return t

    def partial(self, o, gv):
        return {"kind": "PartialObjectMetadata", "apiVersion": gv, "metadata": copy.deepcopy(o.get("metadata") or {})}

    def respond_object(self, code, rt, stored, headers=None):
        mode, gv = self.output_mode(allow_table=self.command == "GET", allow_partial=True)
        if mode == "table":
            md = {"resourceVersion": stored["metadata"].get("resourceVersion", "")}
            return self.send_json(code, self.table_for(rt, [stored], gv, md), headers)
        if mode == "partial":
            return self.send_json(code, self.partial(stored, gv), headers)
        return self.send_json(code, self.encode_out(rt, stored), headers)

    # ---------------------------------------------------------------- GET
    def key_for(self, rt, ns, name):
        return ((ns or "") if rt.namespaced else "", name)

    def do_get(self, rt, ns, name, sub):
        o = self.api.store.get(rt.storage, self.key_for(rt, ns, name))
        if o is None:
            raise E.not_found(rt.group, rt.plural, name)
        return self.respond_object(200, rt, o)

    def _selectors(self, rt):
        ls = parse_label_selector(self.query.get("labelSelector", ""))
        fs_raw = self.query.get("fieldSelector", "")
        fs = parse_field_selector(fs_raw, rt.supported_fields())
        return ls, fs

    def _matches(self, rt, o, ls, fs):
        if o is None:
            return False
        if not ls.empty() and not ls.matches((o.get("metadata") or {}).get("labels")):
            return False
        if not fs.empty() and not fs.matches(rt.fields(o)):
            return False
        return True

    def _parse_rv(self, s):
        try:
            v = int(s)
        except (TypeError, ValueError):
            v = -1
        if v < 0:
            raise E.bad_request('invalid resource version "%s"' % s)
        return v

    def do_list(self, rt, ns):
        st = self.api.store
        ls, fs = self._selectors(rt)
        rv_s = self.query.get("resourceVersion", "")
        match = self.query.get("resourceVersionMatch", "")
        cont = self.query.get("continue", "")
        limit = self.query.get("limit", "")
        try:
            limit = int(limit) if limit else 0
        except ValueError:
            raise E.bad_request('invalid limit "%s"' % limit)
        if match and match not in ("Exact", "NotOlderThan"):
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan"])])
        if match and not rv_s:
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided")])
        if cont and rv_s:
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field("resourceVersion", "specifying resource version is not allowed when using continue")])
        if match == "Exact" and rv_s == "0":
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field("resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')])
        start_key = None
        prefix = ("%s/" % ns) if (rt.namespaced and ns) else ""
        with st.lock:
            current = st.rv
            list_rv = current
            exact = False
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                    if tok.get("v") != "meta.k8s.io/v1" or not tok.get("start"):
                        raise ValueError
                    start_key = tok["start"]
                    trv = int(tok.get("rv", 0))
                    if trv == 0:
                        raise ValueError
                except (ValueError, TypeError, json.JSONDecodeError, base64.binascii.Error):
                    raise E.bad_request("continue key is not valid")
                if trv > 0:
                    if trv < st.compacted:
                        newtok = _encode_continue(start_key, -1)
                        err = E.expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
                        err.list_meta = {"continue": newtok}
                        raise err
                    list_rv = trv
                    exact = True
            elif rv_s and rv_s != "0":
                want = self._parse_rv(rv_s)
                if match == "Exact":
                    if want < st.compacted:
                        raise E.expired("The resourceVersion for the provided list is too old.")
                    if want <= current:
                        list_rv = want
                        exact = True
        if rv_s and rv_s != "0" and not cont:
            want = self._parse_rv(rv_s)
            if want > st.current_rv():
                if not st.wait_for_rv(want, 3.0):
                    raise E.too_large_rv(want, st.current_rv())
                if match == "Exact":
                    list_rv = want
                    exact = True
                else:
                    list_rv = st.current_rv()
        with st.lock:
            if exact:
                items = st.list_at(rt.storage, list_rv, ns if rt.namespaced else None)
            else:
                items = st.list(rt.storage, ns if rt.namespaced else None)
                list_rv = st.rv
        keyed = []
        for o in items:
            md = o["metadata"]
            k = ("%s/%s" % (md.get("namespace", ""), md["name"])) if rt.namespaced and not ns else md["name"]
            keyed.append((k, o))
        keyed.sort(key=lambda kv: kv[0])
        if start_key is not None:
            sk = start_key[len(prefix):] if prefix and start_key.startswith(prefix) else start_key
            keyed = [(k, o) for k, o in keyed if k >= sk]
        matched = [(k, o) for k, o in keyed if self._matches(rt, o, ls, fs)]
        meta = {"resourceVersion": str(list_rv)}
        if limit > 0 and len(matched) > limit:
            page = matched[:limit]
            meta["continue"] = _encode_continue(prefix + page[-1][0] + "\x00", list_rv)
            if ls.empty() and fs.empty():
                meta["remainingItemCount"] = len(matched) - limit
            matched = page
        objs = [o for _k, o in matched]
        mode, gv = self.output_mode(allow_table=True, allow_partial=True, is_list=True)
        if mode == "table":
            return self.send_json(200, self.table_for(rt, objs, gv, meta))
        if mode == "partial":
            return self.send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": gv, "metadata": meta,
                                        "items": [self.partial(o, gv) for o in objs]})
        out_items = []
        for o in objs:
            e = self.encode_out(rt, o)
            if rt.builtin:
                e.pop("kind", None)
                e.pop("apiVersion", None)
            out_items.append(e)
        body = {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": out_items}
        if not rt.builtin:
            body = {"apiVersion": rt.api_version, "items": out_items, "kind": rt.list_kind, "metadata": meta}
        return self.send_json(200, body)

    # ---------------------------------------------------------------- WATCH
    def do_watch(self, rt, ns, name):
        st = self.api.store
        ls, fs = self._selectors(rt)
        if name is not None:
            fs.reqs.append(("metadata.name", "=", name))
        rv_s = self.query.get("resourceVersion", "")
        bookmarks = self.query.get("allowWatchBookmarks", "") in ("1", "true", "True")
        initial_events = self.query.get("sendInitialEvents", "")
        match = self.query.get("resourceVersionMatch", "")
        send_initial = initial_events in ("true", "1", "True")
        if send_initial and match != "NotOlderThan":
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field(
                "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        if send_initial and not bookmarks:
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field(
                "allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true")])
        if match and not initial_events:
            raise E.invalid_error("meta.k8s.io", "ListOptions", "", [E.forbidden_field("resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")])
        timeout = self.api.watch_timeout
        if self.query.get("timeoutSeconds"):
            try:
                timeout = min(timeout, max(0, int(self.query["timeoutSeconds"])))
            except ValueError:
                raise E.bad_request('invalid timeoutSeconds "%s"' % self.query["timeoutSeconds"])
        mode, gv = self.output_mode(allow_table=True, allow_partial=True, is_list=False)
        w = Watcher(rt.storage, {"path": self.url_path, "query": self.raw_query, "user": self.user,
                                 "bookmarks": bookmarks})
        initial = []
        error_event = None
        start_rv = None
        if rv_s not in ("", "0"):
            want = self._parse_rv(rv_s)
            if want > st.current_rv() and not st.wait_for_rv(want, 3.0):
                error_event = E.too_large_rv(want, st.current_rv()).status()
        with st.lock:
            if error_event is None:
                if rv_s in ("", "0") or send_initial:
                    objs = st.list(rt.storage, ns if rt.namespaced else None)
                    for o in objs:
                        if self._matches(rt, o, ls, fs):
                            initial.append(("ADDED", o))
                    start_rv = st.rv
                else:
                    want = self._parse_rv(rv_s)
                    if want < st.compacted:
                        error_event = E.expired("too old resource version: %d (%d)" % (want, st.compacted)).status()
                    else:
                        for ch in st.changes_since(rt.storage, want):
                            ev = self._watch_event(rt, ns, ls, fs, ch)
                            if ev:
                                initial.append(ev)
                        start_rv = st.rv
            if error_event is None:
                st.add_watcher(w)
        # start the stream
        self.status_code = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json;stream=watch" if mode != "yaml" else "application/yaml;stream=watch")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", U.new_uid())
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Date", self.date_time_string())
        self.end_headers()
        self.wfile.flush()
        self.watch_bytes = 0
        self.first_table = True
        try:
            if self.fault and self.fault["action"] == "stall" and self.fault.get("phase") == "headers":
                time.sleep(float(self.fault["seconds"]))
            if error_event is not None:
                self._write_event({"type": "ERROR", "object": error_event})
                self._end_chunks()
                return
            for typ, o in initial:
                self._write_event(self._render_event(rt, typ, o, mode, gv))
            last_rv = start_rv
            if send_initial:
                self._write_event(self._render_event(rt, "BOOKMARK", self._bookmark_obj(rt, st.current_rv(), True), mode, gv))
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.api.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    # kube-apiserver sends a last bookmark shortly before the timeout
                    break
                wait = min(deadline, next_bookmark if bookmarks else deadline) - now
                changes, bm_now, closed = w.wait(max(0.0, min(wait, 1.0)))
                if not changes and not bm_now and not closed and self._client_gone():
                    self.close_connection = True
                    return
                for ch in changes:
                    ev = self._watch_event(rt, ns, ls, fs, ch)
                    if ev:
                        self._write_event(self._render_event(rt, ev[0], ev[1], mode, gv))
                    last_rv = ch.rv
                if closed:
                    if w.close_mode == "cut":
                        self._abort_connection()
                        raise Stop()
                    if w.close_mode == "error410":
                        self._write_event({"type": "ERROR", "object": E.expired(
                            "too old resource version: %d (%d)" % (last_rv, st.compacted)).status()})
                    break
                if bookmarks and (bm_now or time.monotonic() >= next_bookmark):
                    self._write_event(self._render_event(rt, "BOOKMARK", self._bookmark_obj(rt, st.current_rv()), mode, gv))
                    next_bookmark = time.monotonic() + self.api.bookmark_interval
            self._end_chunks()
        finally:
            st.remove_watcher(w)

    def _client_gone(self):
        """True when the client closed the connection (checked while a watch idles)."""
        sock = self.connection
        try:
            r, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        try:
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            finally:
                sock.setblocking(True)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except (OSError, ssl.SSLError):
            return True
        return data == b""

    def _watch_event(self, rt, ns, ls, fs, ch):
        """Turn a stored Change into (type, obj) for this watcher, applying the
        selector transitions the watch cache makes (or None)."""
        key_ns = ch.key[0]
        if rt.namespaced and ns and key_ns != ns:
            return None
        cur_ok = ch.type != "DELETED" and self._matches(rt, ch.obj, ls, fs)
        prev_ok = ch.prev is not None and self._matches(rt, ch.prev, ls, fs)
        if ch.type == "ADDED":
            return ("ADDED", ch.obj) if cur_ok else None
        if ch.type == "DELETED":
            return ("DELETED", ch.obj) if prev_ok or self._matches(rt, ch.obj, ls, fs) else None
        if cur_ok and prev_ok:
            return ("MODIFIED", ch.obj)
        if cur_ok:
            return ("ADDED", ch.obj)
        if prev_ok:
            o = copy.deepcopy(ch.prev)
            o["metadata"]["resourceVersion"] = str(ch.rv)
            return ("DELETED", o)
        return None

    def _bookmark_obj(self, rt, rv, initial_end=False):
        md = {"resourceVersion": str(rv)}
        if rt.builtin:
            md["creationTimestamp"] = None
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"__bookmark__": True, "metadata": md}

    def _render_event(self, rt, typ, o, mode, gv):
        if o.get("__bookmark__"):
            obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": o["metadata"]}
            if not rt.builtin:
                obj = U.sort_keys(obj)
            if mode == "table":
                obj = {"kind": "Table", "apiVersion": gv, "metadata": {"resourceVersion": o["metadata"]["resourceVersion"]},
                       "columnDefinitions": None, "rows": None}
            return {"type": typ, "object": obj}
        if mode == "table":
            t = self.table_for(rt, [o], gv, {"resourceVersion": o["metadata"].get("resourceVersion", "")},
                               no_headers=not self.first_table)
            self.first_table = False
            return {"type": typ, "object": t}
        if mode == "partial":
            return {"type": typ, "object": self.partial(o, gv)}
        return {"type": typ, "object": self.encode_out(rt, o)}

    def _write_event(self, ev):
        data = json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        if self.cut_after is not None and self.watch_bytes + len(data) > self.cut_after:
            part = data[:max(0, self.cut_after - self.watch_bytes)]
            if part:
                self._write_chunk(part)
            self.wfile.flush()
            self._abort_connection()
            raise Stop()
        self.watch_bytes += len(data)
        self._write_chunk(data)
        self.wfile.flush()

    def _write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---------------------------------------------------------------- body decoding
    def read_body_object(self, allow_yaml=True):
        ct = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        raw = self.body_bytes or b""
        if ct == "application/json" or ct == "":
            try:
                obj = json.loads(raw.decode("utf-8") or "null", object_pairs_hook=_dup_check_pairs)
            except (ValueError, UnicodeDecodeError) as e:
                raise E.bad_request("couldn't get version/kind; json parse error: %s" % _json_err(e))
        elif ct in ("application/yaml", "application/x-yaml", "text/yaml") and allow_yaml:
            try:
                obj = yamlish.load(raw.decode("utf-8"))
            except (yamlish.YAMLError, UnicodeDecodeError) as e:
                raise E.bad_request("error decoding YAML: %s" % e)
        elif ct == "application/vnd.kubernetes.protobuf":
            from . import proto
            try:
                obj = proto.decode(raw)
            except proto.ProtoError as e:
                raise E.bad_request("couldn't decode protobuf body: %s" % e)
            except (KeyError, UnicodeDecodeError, ValueError) as e:
                raise E.bad_request("couldn't decode protobuf body: %s" % e)
        else:
            raise E.APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf, application/cbor")
        if not isinstance(obj, dict):
            raise E.bad_request("couldn't get version/kind; json parse error: json: cannot unmarshal %s into Go value of type struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }" % _json_type_name(obj))
        return obj

    def check_kind(self, rt, obj):
        av = obj.get("apiVersion")
        kind = obj.get("kind")
        if av is not None and not isinstance(av, str) or kind is not None and not isinstance(kind, str):
            raise E.bad_request("couldn't get version/kind; json parse error: json: cannot unmarshal into Go struct field .apiVersion of type string")
        if kind and kind != rt.kind:
            raise E.bad_request('%s in version "%s" cannot be handled as a %s: no kind "%s" is registered for version "%s" in scheme "k8s.io/apimachinery@v1.32.4/pkg/runtime/scheme.go:100"' % (kind, (av or "").split("/")[-1], rt.kind, kind, av or rt.api_version))
        if av and av != rt.api_version:
            if kind:
                raise E.bad_request('the API version in the data (%s) does not match the expected API version (%s)' % (av, rt.api_version))
        md = obj.get("metadata")
        if md is not None and not isinstance(md, dict):
            raise E.bad_request('%s in version "%s" cannot be handled as a %s: json: cannot unmarshal %s into Go struct field %s.metadata of type v1.ObjectMeta' % (rt.kind, rt.version, rt.kind, _json_type_name(md), rt.kind))

    def field_validation(self):
        v = self.query.get("fieldValidation", "")
        if v not in ("", "Ignore", "Warn", "Strict"):
            raise E.invalid_error("meta.k8s.io", "CreateOptions", "", [E.not_supported("fieldValidation", v, ["Ignore", "Strict", "Warn"])])
        return v or "Warn"

    def strict_check(self, rt, obj, directive, decode_errs=None):
        """Unknown / duplicate fields according to fieldValidation."""
        unknown = list(decode_errs or [])
        if rt.builtin:
            key = rt.kind if rt.kind != "Event" else "Event@%s" % rt.api_version
            allowed = BUILTIN_FIELDS.get(key)
            if allowed is not None:
                for k in obj:
                    if k not in allowed and k not in ("apiVersion", "kind", "metadata"):
                        unknown.append('unknown field "%s"' % k)
            for k in (obj.get("metadata") or {}):
                if k not in S.OBJECT_META_FIELDS:
                    unknown.append('unknown field "metadata.%s"' % k)
        if not unknown or directive == "Ignore":
            return
        if directive == "Warn":
            self.warnings.extend(unknown)
            return
        raise E.bad_request('%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (rt.kind, rt.version, rt.kind, ", ".join(unknown)))

    def cr_prune(self, rt, obj, directive):
        """Prune unknown fields of a custom resource; report them per fieldValidation."""
        if rt.builtin or not rt.schema:
            return obj
        unknown = []
        obj = S.prune(obj, rt.schema, "", unknown)
        if unknown and directive != "Ignore":
            msgs = ['unknown field "%s"' % u for u in unknown]
            if directive == "Warn":
                self.warnings.extend(msgs)
            else:
                raise E.bad_request('%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (rt.kind, rt.version, rt.kind, ", ".join(msgs)))
        return obj

    def dry_run(self):
        vals = self.query_multi.get("dryRun", [])
        for v in vals:
            if v != "All":
                raise E.invalid_error("meta.k8s.io", "CreateOptions", "", [E.not_supported("dryRun", v, ["All"])])
        return bool(vals)

    def manager(self, default=None):
        fm = self.query.get("fieldManager")
        if fm:
            if len(fm) > 128:
                raise E.invalid_error("meta.k8s.io", "CreateOptions", "", [E.too_long("fieldManager", 128)])
            return fm
        if default:
            return default
        ua = self.headers.get("User-Agent", "")
        return ua.split("/")[0][:128] if ua else ""

    # ---------------------------------------------------------------- CREATE
    def do_create(self, rt, ns):
        obj = self.read_body_object()
        self.check_kind(rt, obj)
        directive = self.field_validation()
        self.strict_check(rt, obj, directive, getattr(self, "_dup_errors", None))
        dry = self.dry_run()
        created = self.api_create(rt, ns, obj, directive, dry, self.manager())
        return self.respond_object(201, rt, created)

    def api_create(self, rt, ns, obj, directive, dry, manager, subresource=None, from_apply=False, managed_done=False):
        api = self.api
        st = api.store
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if rt.namespaced:
            bns = md.get("namespace")
            if bns and ns and bns != ns:
                raise E.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = U.generate_name(md["generateName"])
            else:
                raise E.invalid_error(rt.group, rt.kind, "", [E.required("metadata.name", "name or generateName is required")])
        if md.get("resourceVersion") not in (None, "", "0"):
            # etcd3 store: storage.ErrResourceVersionSetOnCreate, answered as a plain 500
            raise E.APIError(500, "", "resourceVersion should not be set on objects to be created")
        obj = self.cr_prune(rt, obj, directive)
        md = obj["metadata"]
        stored = rt.decode(obj)
        smd = stored.setdefault("metadata", {})
        for f in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generation"):
            smd.pop(f, None)
        smd["uid"] = U.new_uid()
        smd["creationTimestamp"] = U.rfc3339()
        if rt.generation:
            smd["generation"] = 1
        if not rt.builtin and rt.status_sub:
            stored.pop("status", None)
        if rt.defaulter:
            rt.defaulter(stored, None, api.ctx)
        if not rt.builtin:
            R.cr_defaults(rt, stored)
        errs = _validate_meta(rt, stored, None)
        if rt.validator:
            errs += rt.validator(stored, None)
        if not rt.builtin and rt.schema:
            errs += S.validate(stored, rt.schema)
        if errs:
            raise E.invalid_error(rt.group, rt.kind, smd.get("name", ""), errs)
        ext = rt.encode(stored)
        if not managed_done:
            FM.update(None, ext, manager, rt.api_version, subresource)
        stored = rt.decode(ext)
        stored.pop("apiVersion", None)
        stored.pop("kind", None)
        key = self.key_for(rt, ns, smd["name"])
        with st.lock:
            if rt.namespaced:
                nsobj = st.get("core/namespaces", ("", ns))
                if nsobj is None:
                    raise E.not_found("", "namespaces", ns)
                if (nsobj.get("status") or {}).get("phase") == "Terminating":
                    raise E.forbidden('%s "%s" is forbidden: unable to create new content in namespace %s because it is being terminated' % (rt.qualified_resource(), smd["name"], ns))
            if st.get(rt.storage, key) is not None:
                raise E.already_exists(rt.group, rt.plural, smd["name"])
            if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
                R.crd_establish(stored)
            if dry:
                stored["metadata"]["resourceVersion"] = ""
                return stored
            stored["metadata"]["resourceVersion"] = str(st.next_rv())
            st.write(rt.storage, key, stored, "ADDED")
            if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
                api.registry.register_crd(stored)
            if rt.kind == "Namespace" and rt.group == "":
                api.publish_root_ca(smd["name"])
        return stored

    # ---------------------------------------------------------------- UPDATE
    def do_update(self, rt, ns, name, sub):
        obj = self.read_body_object()
        self.check_kind(rt, obj)
        directive = self.field_validation()
        self.strict_check(rt, obj, directive, getattr(self, "_dup_errors", None))
        dry = self.dry_run()
        md = obj.get("metadata") or {}
        if md.get("name") and md["name"] != name:
            raise E.bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (md["name"], name))
        if rt.namespaced and md.get("namespace") and md["namespace"] != ns:
            raise E.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        st = self.api.store
        with st.lock:
            old = st.get(rt.storage, self.key_for(rt, ns, name))
            if old is None:
                if rt.allow_create_on_update and sub is None:
                    obj.setdefault("metadata", {})["name"] = name
                    obj["metadata"].pop("resourceVersion", None)
                    created = self.api_create(rt, ns, obj, directive, dry, self.manager())
                    return self.respond_object(201, rt, created)
                raise E.not_found(rt.group, rt.plural, name)
            new_rv = md.get("resourceVersion")
            if not new_rv and not rt.allow_unconditional_update:
                raise E.invalid_error(rt.group, rt.kind, name, [E.invalid("metadata.resourceVersion", 0, "must be specified for an update")])
            if new_rv and new_rv != old["metadata"].get("resourceVersion"):
                raise E.conflict(rt.group, rt.plural, name, E.OPTIMISTIC_LOCK)
            result, code = self.api_update(rt, ns, name, old, obj, directive, dry, self.manager(), sub)
        return self.respond_object(code, rt, result)

    def api_update(self, rt, ns, name, old, obj, directive, dry, manager, sub, applied=False):
        """old: stored object; obj: incoming object in rt's version. Caller holds the store lock."""
        api = self.api
        st = api.store
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        md["name"] = name
        if rt.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        incoming_managed = "managedFields" in md and md.get("managedFields") != old["metadata"].get("managedFields")
        obj = self.cr_prune(rt, obj, directive)
        new = rt.decode(obj)
        nmd = new.setdefault("metadata", {})
        omd = old["metadata"]
        if nmd.get("uid") and nmd["uid"] != omd.get("uid"):
            raise E.invalid_error(rt.group, rt.kind, name, [E.invalid("metadata.uid", nmd["uid"], "field is immutable")])
        nmd["uid"] = omd.get("uid")
        nmd["creationTimestamp"] = omd.get("creationTimestamp")
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if omd.get(f) is not None:
                nmd[f] = omd[f]
            else:
                nmd.pop(f, None)
        if omd.get("generation") is not None:
            nmd["generation"] = omd["generation"]
        else:
            nmd.pop("generation", None)
        nmd["resourceVersion"] = omd.get("resourceVersion")
        if sub == "status":
            # only status changes through the status subresource
            status = new.get("status")
            new_full = copy.deepcopy(old)
            if status is None:
                new_full.pop("status", None)
            else:
                new_full["status"] = status
            # metadata edits are ignored by the status subresource
            new_full["metadata"]["managedFields"] = nmd.get("managedFields", omd.get("managedFields"))
            new = new_full
            nmd = new["metadata"]
        elif sub == "finalize":
            fin = (new.get("spec") or {}).get("finalizers")
            new_full = copy.deepcopy(old)
            new_full.setdefault("spec", {})["finalizers"] = fin or []
            new = new_full
            nmd = new["metadata"]
        elif rt.status_sub:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if sub is None and rt.defaulter:
            rt.defaulter(new, old, api.ctx)
        if not rt.builtin and sub is None:
            R.cr_defaults(rt, new)
        # finalizers cannot be added while deleting
        if omd.get("deletionTimestamp"):
            added = set(nmd.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                raise E.invalid_error(rt.group, rt.kind, name, [E.forbidden_field("metadata.finalizers", "no new finalizers can be added if the object is being deleted, found new finalizers %s" % _go_slice(sorted(added)))])
        errs = _validate_meta(rt, new, old)
        if rt.validator and sub is None:
            errs += rt.validator(new, old)
        if not rt.builtin and rt.schema:
            errs += S.validate(new, rt.schema)
        if errs:
            raise E.invalid_error(rt.group, rt.kind, name, errs)
        # generation: bumps when anything but metadata and status changes
        if rt.generation and sub is None:
            def body(o):
                return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}
            if not U.deep_equal(body(old), body(new)):
                nmd["generation"] = int(omd.get("generation") or 1) + 1
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            R.crd_establish(new)
        ext_new = rt.encode(new)
        if not applied:
            FM.update(rt.encode(old), ext_new, manager, rt.api_version, sub, incoming_has_managed=incoming_managed)
        new = rt.decode(ext_new)
        new.pop("apiVersion", None)
        new.pop("kind", None)
        if _same_object(old, new):
            return old, 200
        key = self.key_for(rt, ns, name)
        if dry:
            return new, 200
        # the last finalizer went away on an object being deleted: delete it now
        if nmd.get("deletionTimestamp") and not nmd.get("finalizers") and not (rt.kind == "Namespace" and (new.get("spec") or {}).get("finalizers")):
            new["metadata"]["resourceVersion"] = str(st.next_rv())
            st.write(rt.storage, key, new, "DELETED")
            self._after_delete(rt, new)
            return new, 200
        new["metadata"]["resourceVersion"] = str(st.next_rv())
        st.write(rt.storage, key, new, "MODIFIED")
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            api.registry.register_crd(new)
        return new, 200

    # ---------------------------------------------------------------- PATCH
    def do_patch(self, rt, ns, name, sub):
        ct = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        types = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml",
                 "application/strategic-merge-patch+json", "application/apply-patch+cbor")
        if ct not in types or (ct == "application/strategic-merge-patch+json" and not rt.builtin) or ct == "application/apply-patch+cbor":
            accepted = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            if rt.builtin:
                accepted += ", application/strategic-merge-patch+json"
            raise E.APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: %s" % accepted)
        directive = self.field_validation()
        dry = self.dry_run()
        raw = (self.body_bytes or b"").decode("utf-8", "replace")
        st = self.api.store
        force = self.query.get("force", "") in ("true", "1", "True")
        if ct == "application/apply-patch+yaml":
            fm = self.query.get("fieldManager")
            if not fm:
                raise E.invalid_error("meta.k8s.io", "PatchOptions", "", [E.required("fieldManager", "is required for apply patch")])
            try:
                applied = yamlish.load(raw) if raw.strip() else None
            except yamlish.YAMLError as e:
                raise E.bad_request("error decoding YAML: %s" % e)
            if not isinstance(applied, dict):
                raise E.bad_request("error decoding YAML: object expected")
            self.check_kind(rt, applied)
            if not applied.get("apiVersion") or not applied.get("kind"):
                raise E.bad_request("invalid object type: /, Kind=")
            amd = applied.setdefault("metadata", {})
            if amd.get("name") and amd["name"] != name:
                raise E.bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (amd["name"], name))
            self.strict_check(rt, applied, "Strict" if directive == "Strict" else directive)
            if not rt.builtin and rt.schema:
                unknown = []
                applied = S.prune(applied, rt.schema, "", unknown)
                if unknown and directive == "Strict":
                    raise E.bad_request('%s in version "%s" cannot be handled as a %s: strict decoding error: %s' % (rt.kind, rt.version, rt.kind, ", ".join('unknown field "%s"' % u for u in unknown)))
                elif unknown and directive == "Warn":
                    self.warnings.extend('unknown field "%s"' % u for u in unknown)
            with st.lock:
                old = st.get(rt.storage, self.key_for(rt, ns, name))
                if old is None:
                    if sub is not None:
                        raise E.not_found(rt.group, rt.plural, name)
                    new_ext = FM.apply(None, applied, fm, rt.api_version, force)
                    new_ext["metadata"]["name"] = name
                    created = self.api_create(rt, ns, new_ext, "Ignore", dry, fm, managed_done=True)
                    return self.respond_object(201, rt, created)
                arv = amd.get("resourceVersion")
                if arv and arv != old["metadata"].get("resourceVersion"):
                    raise E.conflict(rt.group, rt.plural, name, E.OPTIMISTIC_LOCK)
                new_ext = FM.apply(rt.encode(old), applied, fm, rt.api_version, force, sub)
                result, code = self.api_update(rt, ns, name, old, new_ext, "Ignore", dry, fm, sub, applied=True)
            return self.respond_object(code, rt, result)
        try:
            patch_doc = json.loads(raw or "null")
        except ValueError as e:
            raise E.bad_request("error decoding patch: %s" % _json_err(e)) if ct != "application/json-patch+json" else E.bad_request(_json_err(e))
        with st.lock:
            old = st.get(rt.storage, self.key_for(rt, ns, name))
            if old is None:
                raise E.not_found(rt.group, rt.plural, name)
            cur = rt.encode(old)
            try:
                if ct == "application/json-patch+json":
                    new_ext = P.json_patch(cur, patch_doc)
                elif ct == "application/merge-patch+json":
                    if not isinstance(patch_doc, dict):
                        raise E.bad_request("Invalid JSON Patch")
                    new_ext = P.merge_patch(cur, patch_doc)
                else:
                    if not isinstance(patch_doc, dict):
                        raise E.bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}" % _json_type_name(patch_doc))
                    new_ext = P.strategic_merge(cur, patch_doc)
            except P.PatchError as e:
                raise E.APIError(422, "Invalid", "the server rejected our request due to an error in our request", {})
            if not isinstance(new_ext, dict):
                raise E.invalid_error("", "", "", [E.invalid("patch", U.dumps(new_ext), "json: cannot unmarshal into Go value")])
            if directive in ("Strict", "Warn") and isinstance(patch_doc, dict):
                self.strict_check(rt, new_ext, directive)
            nmd = new_ext.get("metadata") or {}
            if nmd.get("name") != name:
                raise E.invalid_error(rt.group, rt.kind, name, [E.invalid("metadata.name", nmd.get("name"), "field is immutable")])
            prv = nmd.get("resourceVersion")
            if prv and prv != old["metadata"].get("resourceVersion"):
                raise E.conflict(rt.group, rt.plural, name, E.OPTIMISTIC_LOCK)
            result, code = self.api_update(rt, ns, name, old, new_ext, directive, dry, self.manager(), sub)
        return self.respond_object(code, rt, result)

    # ---------------------------------------------------------------- DELETE
    def delete_options(self):
        opts = {}
        if self.body_bytes:
            try:
                opts = json.loads(self.body_bytes.decode("utf-8"))
            except ValueError as e:
                raise E.bad_request("json: %s" % e)
            if not isinstance(opts, dict):
                raise E.bad_request("json: cannot unmarshal into DeleteOptions")
        for k in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if k in self.query:
                opts[k] = self.query[k]
        if "dryRun" in self.query_multi:
            opts["dryRun"] = self.query_multi["dryRun"]
        pp = opts.get("propagationPolicy")
        if pp not in (None, "Orphan", "Background", "Foreground"):
            raise E.invalid_error("meta.k8s.io", "DeleteOptions", "", [E.not_supported("propagationPolicy", pp, ["Foreground", "Background", "Orphan", "nil"])])
        if opts.get("orphanDependents") in (True, "true"):
            opts["propagationPolicy"] = "Orphan"
        return opts

    def do_delete(self, rt, ns, name):
        opts = self.delete_options()
        dry = bool(opts.get("dryRun"))
        st = self.api.store
        with st.lock:
            old = st.get(rt.storage, self.key_for(rt, ns, name))
            if old is None:
                raise E.not_found(rt.group, rt.plural, name)
            pre = opts.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
                raise E.conflict(rt.group, rt.plural, name, "Precondition failed: UID in precondition: %s, UID in object meta: %s" % (pre["uid"], old["metadata"].get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"].get("resourceVersion"):
                raise E.conflict(rt.group, rt.plural, name, "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s" % (pre["resourceVersion"], old["metadata"].get("resourceVersion")))
            result, deleted = self.api_delete(rt, ns, name, old, opts, dry)
        if deleted and not rt.return_deleted:
            details = {"name": name, "kind": rt.plural, "uid": old["metadata"].get("uid")}
            if rt.group:
                details = {"name": name, "group": rt.group, "kind": rt.plural, "uid": old["metadata"].get("uid")}
            return self.send_json(200, E.status_obj(None, None, None, details, status="Success"))
        return self.respond_object(200, rt, result)

    def api_delete(self, rt, ns, name, old, opts, dry):
        """Caller holds the store lock. Returns (object, deleted_now)."""
        st = self.api.store
        key = self.key_for(rt, ns, name)
        omd = old["metadata"]
        if rt.kind == "Namespace" and rt.group == "":
            if name in PROTECTED_NAMESPACES:
                raise E.forbidden('namespaces "%s" is forbidden: this namespace may not be deleted' % name)
            if omd.get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = U.rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            if dry:
                return new, False
            new["metadata"]["resourceVersion"] = str(st.next_rv())
            st.write(rt.storage, key, new, "MODIFIED")
            threading.Thread(target=self.api_finalize_namespace, args=(self.api, name), daemon=True).start()
            return new, False
        finalizers = list(omd.get("finalizers") or [])
        policy = opts.get("propagationPolicy")
        if finalizers:
            if omd.get("deletionTimestamp"):
                return old, False
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = U.rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if dry:
                return new, False
            new["metadata"]["resourceVersion"] = str(st.next_rv())
            st.write(rt.storage, key, new, "MODIFIED")
            return new, False
        if dry:
            return old, True
        if policy == "Foreground":
            self._gc_dependents(omd.get("uid"), "Foreground")
        final = copy.deepcopy(old)
        final["metadata"]["resourceVersion"] = str(st.next_rv())
        st.write(rt.storage, key, final, "DELETED")
        self._after_delete(rt, final, policy)
        return old, True

    def _after_delete(self, rt, obj, policy=None):
        api = self.api
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            skey = api.registry.crd_storage_key(obj)
            with api.store.lock:
                for o in api.store.list(skey):
                    o["metadata"]["resourceVersion"] = str(api.store.next_rv())
                    api.store.write(skey, (o["metadata"].get("namespace", ""), o["metadata"]["name"]), o, "DELETED")
            for w in list(api.store.watchers):
                if w.skey == skey:
                    w.close("clean")
            api.registry.unregister_crd(obj["metadata"]["name"])
        uid = obj["metadata"].get("uid")
        if policy == "Orphan":
            self._gc_dependents(uid, "Orphan")
        elif uid:
            self._gc_dependents(uid, "Background")

    def _gc_dependents(self, uid, policy):
        """A minimal garbage collector: dependents whose only owner is gone are
        deleted (Background/Foreground) or have the reference removed (Orphan)."""
        api = self.api
        st = api.store
        for rt2 in api.registry.storage_types():
            for o in st.list(rt2.storage):
                refs = (o.get("metadata") or {}).get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                key = (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                rest = [r for r in refs if r.get("uid") != uid]
                if policy == "Orphan" or rest:
                    n = copy.deepcopy(o)
                    if rest:
                        n["metadata"]["ownerReferences"] = rest
                    else:
                        n["metadata"].pop("ownerReferences", None)
                    n["metadata"]["resourceVersion"] = str(st.next_rv())
                    st.write(rt2.storage, key, n, "MODIFIED")
                else:
                    if (o["metadata"].get("finalizers") or []):
                        if not o["metadata"].get("deletionTimestamp"):
                            n = copy.deepcopy(o)
                            n["metadata"]["deletionTimestamp"] = U.rfc3339()
                            n["metadata"]["deletionGracePeriodSeconds"] = 0
                            n["metadata"]["resourceVersion"] = str(st.next_rv())
                            st.write(rt2.storage, key, n, "MODIFIED")
                        continue
                    f = copy.deepcopy(o)
                    f["metadata"]["resourceVersion"] = str(st.next_rv())
                    st.write(rt2.storage, key, f, "DELETED")
                    self._gc_dependents(o["metadata"].get("uid"), "Background")

    @staticmethod
    def api_finalize_namespace(api, name):
        """The namespace controller: delete the namespace's content, then the namespace."""
        time.sleep(0.2)
        st = api.store
        with st.lock:
            for rt in api.registry.storage_types():
                if not rt.namespaced:
                    continue
                for o in st.list(rt.storage, name):
                    key = (name, o["metadata"]["name"])
                    f = copy.deepcopy(o)
                    f["metadata"]["resourceVersion"] = str(st.next_rv())
                    st.write(rt.storage, key, f, "DELETED")
            nsobj = st.get("core/namespaces", ("", name))
            if nsobj is None:
                return
            final = copy.deepcopy(nsobj)
            final.setdefault("spec", {})["finalizers"] = []
            final["metadata"]["resourceVersion"] = str(st.next_rv())
            st.write("core/namespaces", ("", name), final, "DELETED")

    def do_deletecollection(self, rt, ns):
        opts = self.delete_options()
        dry = bool(opts.get("dryRun"))
        ls, fs = self._selectors(rt)
        st = self.api.store
        out = []
        with st.lock:
            for o in st.list(rt.storage, ns if rt.namespaced else None):
                if not self._matches(rt, o, ls, fs):
                    continue
                res, _ = self.api_delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"], o, opts, dry)
                out.append(res)
            rv = st.rv
        items = []
        for o in out:
            e = self.encode_out(rt, o)
            if rt.builtin:
                e.pop("kind", None)
                e.pop("apiVersion", None)
            items.append(e)
        return self.send_json(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                    "metadata": {"resourceVersion": str(rv)}, "items": items})

    # ---------------------------------------------------------------- /__test control API
    def control(self):
        api = self.api
        path = self.url_path[len("/__test"):].rstrip("/")
        m = self.command
        body = None
        if self.body_bytes:
            try:
                body = json.loads(self.body_bytes.decode())
            except ValueError as e:
                raise E.bad_request("control body must be JSON: %s" % e)
        if path == "/faults":
            if m == "GET":
                return self.send_json(200, {"faults": api.faults.list(), "fired": api.faults.fired[-200:]})
            if m == "POST":
                specs = body if isinstance(body, list) else [body]
                try:
                    added = [api.faults.add(s) for s in specs]
                except (ValueError, re.error) as e:
                    raise E.bad_request(str(e))
                return self.send_json(201, {"faults": added})
            if m == "DELETE":
                api.faults.clear()
                return self.send_json(200, {"faults": []})
        if path.startswith("/faults/") and m == "DELETE":
            api.faults.remove(int(path.split("/")[-1]))
            return self.send_json(200, {"faults": api.faults.list()})
        if path == "/fault" and m == "POST":
            specs = body if isinstance(body, list) else [body]
            try:
                added = [api.faults.add(s) for s in specs]
            except (ValueError, re.error) as e:
                raise E.bad_request(str(e))
            return self.send_json(201, {"faults": added})
        if path == "/compact" and m == "POST":
            rv = (body or {}).get("resourceVersion") if isinstance(body, dict) else None
            c = api.store.compact(int(rv) if rv else None)
            return self.send_json(200, {"compacted": c, "resourceVersion": api.store.current_rv()})
        if path == "/bookmark" and m == "POST":
            n = 0
            for w in list(api.store.watchers):
                if w.info.get("bookmarks"):
                    w.request_bookmark()
                    n += 1
            return self.send_json(200, {"watches": n})
        if path == "/close-watches" and m == "POST":
            b = body or {}
            mode = b.get("mode", "clean")
            if mode not in ("clean", "cut", "error410"):
                raise E.bad_request("mode must be clean, cut or error410")
            n = 0
            for w in list(api.store.watchers):
                if b.get("path") and not re.search(b["path"], w.info.get("path", "")):
                    continue
                w.close(mode)
                n += 1
            return self.send_json(200, {"closed": n})
        if path == "/state" and m == "GET":
            return self.send_json(200, {"resourceVersion": api.store.current_rv(), "compacted": api.store.compacted,
                                        "watches": [w.info for w in list(api.store.watchers)],
                                        "faults": api.faults.list()})
        if path == "/requests":
            if m == "GET":
                with api.req_lock:
                    reqs = list(api.requests)
                return self.send_json(200, {"requests": reqs})
            if m == "DELETE":
                with api.req_lock:
                    api.requests.clear()
                return self.send_json(200, {"requests": []})
        if path == "/tokens":
            if m == "GET":
                return self.send_json(200, {"tokens": [{"token": t, **v} for t, v in api.tokens.items()]})
            if m == "POST":
                b = body or {}
                if b.get("remove"):
                    api.tokens.pop(b["remove"], None)
                if b.get("token"):
                    api.tokens[b["token"]] = {"user": b.get("user", "token-user"), "groups": b.get("groups", [])}
                return self.send_json(200, {"tokens": [{"token": t, **v} for t, v in api.tokens.items()]})
        if path == "/settings" and m == "POST":
            b = body or {}
            if "bookmarkInterval" in b:
                api.bookmark_interval = float(b["bookmarkInterval"])
            if "watchTimeout" in b:
                api.watch_timeout = float(b["watchTimeout"])
            return self.send_json(200, {"bookmarkInterval": api.bookmark_interval, "watchTimeout": api.watch_timeout})
        raise E.not_found_generic()


# ====================================================================== helpers

def _default_reason(code):
    return {
        400: ("BadRequest", "injected fault"),
        401: ("Unauthorized", "Unauthorized"),
        403: ("Forbidden", "injected fault: forbidden"),
        404: ("NotFound", "the server could not find the requested resource"),
        409: ("Conflict", "injected fault: conflict"),
        410: ("Expired", "injected fault: too old resource version"),
        422: ("Invalid", "injected fault: invalid"),
        429: ("TooManyRequests", "Too many requests, please try again later."),
        500: ("InternalError", "Internal error occurred: injected fault"),
        502: ("", "injected fault: bad gateway"),
        503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
        504: ("Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"),
    }.get(code, ("", "injected fault"))


META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "ownerReferences", "finalizers", "managedFields"]


def _order_builtin(o):
    """Field order of Go structs: TypeMeta, ObjectMeta (in its field order), spec, ..., status."""
    out = {}
    for k in ("kind", "apiVersion"):
        if k in o:
            out[k] = o[k]
    md = o.get("metadata")
    if isinstance(md, dict):
        out["metadata"] = {k: md[k] for k in META_ORDER if k in md}
        out["metadata"].update({k: v for k, v in md.items() if k not in out["metadata"]})
    for k, v in o.items():
        if k not in out and k != "status":
            out[k] = v
    if "status" in o:
        out["status"] = o["status"]
    return out


def _encode_continue(start, rv):
    tok = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(tok.encode()).decode().rstrip("=")


def _json_type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _json_err(e):
    msg = str(e)
    m = re.match(r"^(.*): line \d+ column \d+ \(char (\d+)\)$", msg)
    if m:
        return "%s at offset %s" % (m.group(1), m.group(2))
    return msg


def _dup_check_pairs(pairs):
    d = {}
    for k, v in pairs:
        d[k] = v
    return d


def _go_slice(items):
    return "[" + " ".join(items) + "]"


def _same_object(a, b):
    """True when b differs from a only in fields an update cannot change (no-op update)."""
    def strip(o):
        o = copy.deepcopy(o)
        md = o.get("metadata") or {}
        md.pop("resourceVersion", None)
        for e in md.get("managedFields") or []:
            e.pop("time", None)
        return o
    return U.deep_equal(strip(a), strip(b))


def _validate_meta(rt, o, old):
    errs = []
    md = o.get("metadata") or {}
    name = md.get("name", "")
    if not name:
        errs.append(E.required("metadata.name", "name or generateName is required"))
    else:
        if rt.name_check == "label":
            msgs = U.is_dns1123_label(name)
        elif rt.name_check == "dns1035":
            msgs = U.is_dns1035_label(name)
        elif rt.name_check == "path":  # RBAC names (ValidateRBACName)
            msgs = U.is_path_segment_name(name)
        else:
            msgs = U.is_dns1123_subdomain(name)
        if rt.kind == "Event":
            msgs = U.is_path_segment_name(name)
        for m in msgs:
            errs.append(E.invalid("metadata.name", name, m))
    gn = md.get("generateName")
    if gn:
        msgs = U.is_dns1123_subdomain(gn.rstrip("-") or "a") if rt.kind != "Event" else []
        for m in msgs:
            errs.append(E.invalid("metadata.generateName", gn, m))
    errs += U.validate_labels(md.get("labels"), "metadata.labels")
    errs += U.validate_annotations(md.get("annotations"), "metadata.annotations")
    for i, f in enumerate(md.get("finalizers") or []):
        if not isinstance(f, str):
            errs.append(E.invalid("metadata.finalizers[%d]" % i, f, "must be a string"))
            continue
        for m in U.is_qualified_name(f):
            errs.append(E.invalid("metadata.finalizers[%d]" % i, f, m))
    for i, r in enumerate(md.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not (r or {}).get(f):
                errs.append(E.invalid("metadata.ownerReferences[%d].%s" % (i, f), "", "%s must not be empty" % f) if f != "uid" else
                            E.invalid("metadata.ownerReferences[%d].uid" % i, "", "uid must not be empty"))
    if old is not None:
        omd = old.get("metadata") or {}
        if md.get("name") != omd.get("name"):
            errs.append(E.invalid("metadata.name", md.get("name"), "field is immutable"))
        if rt.namespaced and md.get("namespace") != omd.get("namespace"):
            errs.append(E.invalid("metadata.namespace", md.get("namespace"), "field is immutable"))
    return errs
