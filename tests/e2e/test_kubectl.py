#!/usr/bin/env python3
"""Real kubectl against the Kubernetes API test server (tests/apiserver/run).

Run from anywhere:  python3 tests/e2e/test_kubectl.py [-v] [-k SUBSTRING]

Prints PASS/FAIL/SKIP per test and a final line `N passed, N failed`
(skips are listed with their reason); exits 1 when a test failed.
Environment: KUBECTL (default: kubectl on PATH).  Python standard library only.
"""

import base64
import glob
import http.client
import json
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import queue

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUN = os.path.join(ROOT, "tests", "apiserver", "run")
CRD_FILE = os.path.join(ROOT, "manifests", "crds", "clusters.management.loft.sh.yaml")
VERBOSE = "-v" in sys.argv
ONLY = None
if "-k" in sys.argv:
    ONLY = sys.argv[sys.argv.index("-k") + 1]

KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what=""):
    if got != want:
        raise Fail("%s\n  want: %r\n  got:  %r" % (what or "mismatch", want, got))


# ----------------------------------------------------------------------------- server

class LineReader:
    """Reads a pipe's lines on a thread, so waiting for a line can time out."""

    def __init__(self, pipe):
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.t.start()

    def _run(self, pipe):
        for line in iter(pipe.readline, ""):
            self.q.put(line)
        self.q.put(None)

    def get(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None


class Server:
    def __init__(self, workdir, extra=()):
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.kubeconfig = os.path.join(workdir, "kubeconfig")
        self.home = os.path.join(workdir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.errlog = open(os.path.join(workdir, "server.log"), "w")
        self.proc = subprocess.Popen([sys.executable, RUN, "--port", "0", "--kubeconfig-out", self.kubeconfig,
                                      "--control-port", "0", "--pki-dir", os.path.join(workdir, "pki")] + list(extra),
                                     stdout=subprocess.PIPE, stderr=self.errlog, text=True)
        self.info = {}
        lines = LineReader(self.proc.stdout)
        deadline = time.time() + 30
        while True:
            line = lines.get(max(0.0, deadline - time.time()))
            if line is None:
                self.stop()
                raise RuntimeError("test apiserver did not become ready; see %s" % self.errlog.name)
            line = line.strip()
            if line == "ready":
                break
            k, _, v = line.partition(" ")
            self.info[k] = v
        if "port" not in self.info:
            self.stop()
            raise RuntimeError("test apiserver failed to start; see %s" % self.errlog.name)
        self.port = int(self.info["port"])
        self.control_port = int(self.info["control-port"])
        self.token = self.info["token"]
        self.pki = self.info["pki"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errlog.close()

    def env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("KUBECTL_") or k == "KUBECONFIG":
                del env[k]
        env["HOME"] = self.home
        env["KUBECONFIG"] = self.kubeconfig
        env["KUBECACHEDIR"] = os.path.join(self.home, ".kube", "cache")
        return env

    def control(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=10)
        data = json.dumps(body) if body is not None else None
        c.request(method, "/__test" + path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.read()
        c.close()
        if r.status >= 300:
            raise Fail("control %s %s -> %d %s" % (method, path, r.status, out[:300]))
        return json.loads(out) if out else None

    def fault(self, **spec):
        return self.control("POST", "/faults", spec)["faults"][0]

    def requests(self):
        return self.control("GET", "/requests")["requests"]

    def clear_requests(self):
        self.control("DELETE", "/requests")

    def https(self, method, path, body=None, headers=None, cert=True, token=None):
        """A raw HTTPS request with the admin client certificate (or a token)."""
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if cert:
            ctx.load_cert_chain(os.path.join(self.pki, "client.crt"), os.path.join(self.pki, "client.key"))
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=15)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data


SERVER = None
WORK = None


def kubectl(*args, input=None, timeout=60, binary=None, server=None):
    s = server or SERVER
    cmd = [binary or KUBECTL] + list(args)
    t0 = time.time()
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=s.env())
    if VERBOSE:
        sys.stdout.write("  $ kubectl %s  [rc=%d %.2fs]\n" % (" ".join(args), p.returncode, time.time() - t0))
        for line in (p.stdout + p.stderr).splitlines()[:30]:
            sys.stdout.write("    | %s\n" % line)
    return p.returncode, p.stdout, p.stderr


def ok(*args, **kw):
    rc, out, err = kubectl(*args, **kw)
    if rc != 0:
        raise Fail("kubectl %s failed (rc=%d): %s%s" % (" ".join(args), rc, out, err))
    return out


def fails(*args, **kw):
    rc, out, err = kubectl(*args, **kw)
    if rc == 0:
        raise Fail("kubectl %s unexpectedly succeeded: %s" % (" ".join(args), out))
    return err.strip()


def columns(line):
    return re.split(r"\s{2,}", line.strip())


def table(out):
    lines = [l for l in out.splitlines() if l.strip()]
    return columns(lines[0]), [columns(l) for l in lines[1:]]


def write(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


CLUSTER = """apiVersion: management.loft.sh/v1
kind: Cluster
metadata:
  name: %(name)s
spec:
  displayName: %(display)s
"""

# ----------------------------------------------------------------------------- tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def version_and_discovery():
    out = json.loads(ok("version", "-o", "json"))
    eq(out["serverVersion"]["gitVersion"], "v1.32.4", "server version")
    out = ok("api-resources")
    rows = {tuple(columns(l)[:1] + columns(l)[-3:]) for l in out.splitlines()[1:]}
    for want in [("configmaps", "v1", "true", "ConfigMap"), ("events", "v1", "true", "Event"),
                 ("namespaces", "v1", "false", "Namespace"), ("leases", "coordination.k8s.io/v1", "true", "Lease"),
                 ("endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"),
                 ("events", "events.k8s.io/v1", "true", "Event"),
                 ("customresourcedefinitions", "apiextensions.k8s.io/v1", "false", "CustomResourceDefinition")]:
        check(want in rows, "api-resources lacks %r:\n%s" % (want, out))
    check("clusters" not in out, "no CRD is loaded yet (server started with --crd none)")
    check(re.search(r"^configmaps\s+cm\s", out, re.M), "configmaps short name cm")
    check(re.search(r"^namespaces\s+ns\s", out, re.M), "namespaces short name ns")


@test
def apply_crd_registers_clusters():
    out = ok("apply", "-f", CRD_FILE)
    eq(out.strip(), "customresourcedefinition.apiextensions.k8s.io/clusters.management.loft.sh created")
    out = ok("wait", "--for=condition=Established", "crd/clusters.management.loft.sh", "--timeout=10s")
    eq(out.strip(), "customresourcedefinition.apiextensions.k8s.io/clusters.management.loft.sh condition met")
    hdr, rows = table(ok("get", "crd"))
    eq(hdr, ["NAME", "CREATED AT"], "CRD columns")
    eq(rows[0][0], "clusters.management.loft.sh")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", rows[0][1]), "CREATED AT is RFC 3339: %r" % rows[0][1])
    out = ok("api-resources", "--api-group=management.loft.sh")
    check(re.search(r"^clusters\s+management\.loft\.sh/v1\s+false\s+Cluster$", out.splitlines()[1]), out)
    rc, out, err = kubectl("get", "clusters")
    eq((rc, out, err.strip()), (0, "", "No resources found"), "empty list")
    out = ok("apply", "-f", CRD_FILE)
    eq(out.strip(), "customresourcedefinition.apiextensions.k8s.io/clusters.management.loft.sh unchanged")


@test
def create_and_get_cluster():
    f = write("eu.yaml", CLUSTER % {"name": "eu-west-cluster", "display": "EU West"})
    eq(ok("create", "-f", f).strip(), "cluster.management.loft.sh/eu-west-cluster created")
    err = fails("create", "-f", f)
    eq(err, 'Error from server (AlreadyExists): error when creating "%s": clusters.management.loft.sh '
            '"eu-west-cluster" already exists' % f)
    hdr, rows = table(ok("get", "clusters"))
    eq(hdr, ["NAME", "DISPLAY NAME", "DERP ENDPOINT", "AGE"], "columns from additionalPrinterColumns")
    eq(rows[0][:2], ["eu-west-cluster", "EU West"])
    check(re.match(r"^\d+s$", rows[0][-1]), "AGE like 0s: %r" % rows[0][-1])
    obj = json.loads(ok("get", "cluster", "eu-west-cluster", "-o", "json"))
    eq((obj["apiVersion"], obj["kind"], obj["metadata"]["name"]), ("management.loft.sh/v1", "Cluster", "eu-west-cluster"))
    md = obj["metadata"]
    check(re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", md["uid"]), "uid")
    check(md["resourceVersion"].isdigit(), "resourceVersion is a decimal string")
    eq(md["generation"], 1, "generation")
    check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", md["creationTimestamp"]), "creationTimestamp")
    check("namespace" not in md, "cluster-scoped objects have no namespace")
    check("managedFields" not in md, "kubectl hides managedFields by default")
    y = ok("get", "cluster", "eu-west-cluster", "-o", "yaml")
    check(y.startswith("apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n"), y)
    check("  displayName: EU West\n" in y, y)
    y = ok("get", "cluster", "eu-west-cluster", "-o", "yaml", "--show-managed-fields")
    check("manager: kubectl-create" in y and "operation: Update" in y, "managedFields record kubectl-create:\n" + y)
    eq(ok("get", "cluster", "eu-west-cluster", "-o", "jsonpath={.spec.displayName}"), "EU West")
    eq(ok("get", "clusters", "-o", "name").strip(), "cluster.management.loft.sh/eu-west-cluster")


@test
def get_missing_is_notfound():
    err = fails("get", "cluster", "nope")
    eq(err, 'Error from server (NotFound): clusters.management.loft.sh "nope" not found')
    err = fails("get", "configmap", "nope", "-n", "default")
    eq(err, 'Error from server (NotFound): configmaps "nope" not found')
    err = fails("delete", "cluster", "nope")
    eq(err, 'Error from server (NotFound): clusters.management.loft.sh "nope" not found')


class Watch:
    """A background `kubectl get -w` whose output lines we can wait for."""

    def __init__(self, *args, server=None):
        s = server or SERVER
        self.p = subprocess.Popen([KUBECTL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=s.env(), text=True)
        self.reader = LineReader(self.p.stdout)
        self.lines = []
        self.err = ""
        self.eof = False

    def wait_for(self, pred, timeout=10):
        deadline = time.time() + timeout
        while True:
            for l in self.lines:
                if pred(l):
                    return l
            if self.eof or time.time() >= deadline:
                break
            line = self.reader.get(min(0.2, max(0.0, deadline - time.time())))
            if line is None:
                if self.p.poll() is not None and self.reader.q.empty():
                    self.eof = True
                continue
            self.lines.append(line.rstrip("\n"))
        raise Fail("watch output never matched; got %r" % (self.lines,))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err = self.p.stderr.read()
        return self.p.returncode


@test
def watch_sees_annotate():
    w = Watch("get", "clusters", "-w")
    try:
        hdr = w.wait_for(lambda l: l.startswith("NAME"))
        eq(columns(hdr), ["NAME", "DISPLAY NAME", "DERP ENDPOINT", "AGE"], "watch header")
        w.wait_for(lambda l: l.startswith("eu-west-cluster"))
        out = ok("annotate", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint=eu.example.com")
        eq(out.strip(), "cluster.management.loft.sh/eu-west-cluster annotated")
        line = w.wait_for(lambda l: "eu.example.com" in l)
        eq(columns(line)[:3], ["eu-west-cluster", "EU West", "eu.example.com"], "watched row")
    finally:
        w.stop()


@test
def annotate_overwrite_and_remove():
    err = fails("annotate", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint=eu2.example.com")
    eq(err, "error: --overwrite is false but found the following declared annotation(s): "
            "'loft.sh/derp-endpoint' already has a value (eu.example.com)")
    eq(ok("annotate", "--overwrite", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint=eu2.example.com:8443").strip(),
       "cluster.management.loft.sh/eu-west-cluster annotated")
    eq(ok("get", "cluster", "eu-west-cluster", "-o", "jsonpath={.metadata.annotations.loft\\.sh/derp-endpoint}"),
       "eu2.example.com:8443")
    ok("annotate", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint-insecure=true")
    eq(ok("annotate", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint-").strip(),
       "cluster.management.loft.sh/eu-west-cluster annotated")
    ann = json.loads(ok("get", "cluster", "eu-west-cluster", "-o", "jsonpath={.metadata.annotations}"))
    eq(ann, {"loft.sh/derp-endpoint-insecure": "true"}, "annotations after removal")
    # removing a key that is not there is not an error for kubectl
    ok("annotate", "cluster", "eu-west-cluster", "loft.sh/derp-endpoint-")
    eq(json.loads(ok("get", "cluster", "eu-west-cluster", "-o", "json"))["metadata"]["generation"], 1,
       "metadata changes do not bump generation")


@test
def label_and_selectors():
    eq(ok("label", "cluster", "eu-west-cluster", "region=eu").strip(), "cluster.management.loft.sh/eu-west-cluster labeled")
    err = fails("label", "cluster", "eu-west-cluster", "region=us")
    eq(err, "error: 'region' already has a value (eu), and --overwrite is false")
    ok("label", "--overwrite", "cluster", "eu-west-cluster", "region=west-eu")
    eq(ok("get", "clusters", "-l", "region=west-eu", "-o", "name").strip(), "cluster.management.loft.sh/eu-west-cluster")
    rc, out, err = kubectl("get", "clusters", "-l", "region=nowhere")
    eq((rc, out, err.strip()), (0, "", "No resources found"))
    hdr, rows = table(ok("get", "clusters", "--show-labels"))
    eq(hdr[-1], "LABELS")
    eq(rows[0][-1], "region=west-eu")
    eq(ok("get", "clusters", "--field-selector", "metadata.name=eu-west-cluster", "-o", "name").strip(),
       "cluster.management.loft.sh/eu-west-cluster")
    err = fails("get", "clusters", "--field-selector", "spec.displayName=x")
    eq(err, 'Error from server (BadRequest): Unable to find "management.loft.sh/v1, Resource=clusters" that match '
            'label selector "", field selector "spec.displayName=x": field label not supported: spec.displayName')
    ok("label", "cluster", "eu-west-cluster", "region-")
    check("region" not in ok("get", "clusters", "--show-labels"), "label removed")


@test
def apply_create_modify_unchanged():
    f = write("us.yaml", CLUSTER % {"name": "us-east", "display": "US East"})
    eq(ok("apply", "-f", f).strip(), "cluster.management.loft.sh/us-east created")
    obj = json.loads(ok("get", "cluster", "us-east", "-o", "json"))
    last = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    eq(last["spec"], {"displayName": "US East"}, "last-applied-configuration")
    write("us.yaml", CLUSTER % {"name": "us-east", "display": "US East 1"})
    eq(ok("apply", "-f", f).strip(), "cluster.management.loft.sh/us-east configured")
    eq(ok("apply", "-f", f).strip(), "cluster.management.loft.sh/us-east unchanged")
    obj = json.loads(ok("get", "cluster", "us-east", "-o", "json"))
    eq(obj["spec"]["displayName"], "US East 1")
    eq(obj["metadata"]["generation"], 2, "spec change bumps generation")
    # a field dropped from the manifest is removed by the three-way merge
    write("us.yaml", "apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: us-east\n")
    eq(ok("apply", "-f", f).strip(), "cluster.management.loft.sh/us-east configured")
    eq(json.loads(ok("get", "cluster", "us-east", "-o", "json")).get("spec"), None, "spec removed by apply")
    # built-in kinds use strategic merge patch
    cm = write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: derp-config\n  namespace: default\n"
                          "data:\n  a: \"1\"\n  b: \"2\"\n")
    eq(ok("apply", "-f", cm).strip(), "configmap/derp-config created")
    write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: derp-config\n  namespace: default\n"
                     "data:\n  a: \"1\"\n  c: \"3\"\n")
    eq(ok("apply", "-f", cm).strip(), "configmap/derp-config configured")
    eq(json.loads(ok("get", "cm", "derp-config", "-o", "json"))["data"], {"a": "1", "c": "3"})
    reqs = [r for r in SERVER.requests() if r["method"] == "PATCH" and r["path"].endswith("/configmaps/derp-config")]
    check(reqs and reqs[-1]["contentType"] == "application/strategic-merge-patch+json",
          "kubectl apply of a ConfigMap sends a strategic merge patch: %r" % reqs[-1:])
    reqs = [r for r in SERVER.requests() if r["method"] == "PATCH" and r["path"].endswith("/clusters/us-east")]
    eq(reqs[-1]["contentType"], "application/merge-patch+json", "custom resources get JSON merge patches")


@test
def server_side_apply_and_conflicts():
    f = write("ap.yaml", CLUSTER % {"name": "ap-south", "display": "AP South"})
    eq(ok("apply", "--server-side", "-f", f).strip(), "cluster.management.loft.sh/ap-south serverside-applied")
    write("ap.yaml", CLUSTER % {"name": "ap-south", "display": "AP South 2"})
    err = fails("apply", "--server-side", "--field-manager=other", "-f", f)
    first = err.splitlines()[0]
    eq(first, 'error: Apply failed with 1 conflict: conflict with "kubectl": .spec.displayName')
    check("--force-conflicts" in err, err)
    eq(ok("apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", f).strip(),
       "cluster.management.loft.sh/ap-south serverside-applied")
    eq(ok("get", "cluster", "ap-south", "-o", "jsonpath={.spec.displayName}"), "AP South 2")
    mf = json.loads(ok("get", "cluster", "ap-south", "-o", "json", "--show-managed-fields"))["metadata"]["managedFields"]
    owners = {(e["manager"], e["operation"]): e["fieldsV1"] for e in mf}
    eq(owners.get(("other", "Apply")), {"f:spec": {"f:displayName": {}}}, "forced apply takes ownership")
    check(("kubectl", "Apply") not in owners, "the old owner lost its only field: %r" % owners)
    ok("delete", "cluster", "ap-south")


@test
def events_core_and_events_k8s_io():
    core = write("ev-core.yaml", """apiVersion: v1
kind: Event
metadata:
  name: eu-west-cluster.invalid-endpoint
  namespace: default
involvedObject:
  apiVersion: management.loft.sh/v1
  kind: Cluster
  name: eu-west-cluster
reason: InvalidDERPEndpoint
message: 'annotation loft.sh/derp-endpoint "bad host": contains a space'
type: Warning
source:
  component: derp-controller
count: 1
""")
    eq(ok("create", "-f", core).strip(), "event/eu-west-cluster.invalid-endpoint created")
    new = write("ev-new.yaml", """apiVersion: events.k8s.io/v1
kind: Event
metadata:
  name: eu-west-cluster.relay-healthy
  namespace: default
eventTime: "%s"
reportingController: loft.sh/derp-controller
reportingInstance: derp-controller-0
action: Probe
reason: RelayHealthy
regarding:
  apiVersion: management.loft.sh/v1
  kind: Cluster
  name: eu-west-cluster
note: relay answered a probe in 3ms
type: Normal
""" % time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()))
    eq(ok("create", "-f", new).strip(), "event.events.k8s.io/eu-west-cluster.relay-healthy created")
    hdr, rows = table(ok("get", "events", "-n", "default"))
    eq(hdr, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], "event columns")
    got = {r[2]: r for r in rows}
    check("InvalidDERPEndpoint" in got and "RelayHealthy" in got, "both events listed: %r" % rows)
    eq(got["InvalidDERPEndpoint"][1:4], ["Warning", "InvalidDERPEndpoint", "cluster/eu-west-cluster"])
    eq(got["InvalidDERPEndpoint"][4], 'annotation loft.sh/derp-endpoint "bad host": contains a space')
    eq(got["RelayHealthy"][1:], ["Normal", "RelayHealthy", "cluster/eu-west-cluster", "relay answered a probe in 3ms"])
    # one storage: the core event is visible through events.k8s.io and the reverse
    ev = json.loads(ok("get", "events.events.k8s.io", "eu-west-cluster.invalid-endpoint", "-n", "default", "-o", "json"))
    eq((ev["regarding"]["name"], ev["note"], ev["deprecatedSource"]["component"]),
       ("eu-west-cluster", 'annotation loft.sh/derp-endpoint "bad host": contains a space', "derp-controller"))
    ev = json.loads(ok("get", "events.v1.", "eu-west-cluster.relay-healthy", "-n", "default", "-o", "json"))
    eq((ev["involvedObject"]["kind"], ev["message"], ev["reportingComponent"]),
       ("Cluster", "relay answered a probe in 3ms", "loft.sh/derp-controller"))
    hdr, rows = table(ok("get", "events", "-n", "default", "-o", "wide"))
    eq(hdr, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"])
    out = ok("get", "events", "-n", "default", "--field-selector", "type=Warning,involvedObject.name=eu-west-cluster", "-o", "name")
    eq(out.strip(), "event/eu-west-cluster.invalid-endpoint")
    # kube-apiserver only accepts an Event about a cluster-scoped object in "default"
    bad = write("ev-bad.yaml", open(core).read().replace("namespace: default", "namespace: kube-system")
                .replace("invalid-endpoint", "elsewhere"))
    err = fails("create", "-f", bad)
    eq(err, 'The Event "eu-west-cluster.elsewhere" is invalid: involvedObject.namespace: Invalid value: "": '
            'does not match event.namespace')
    bad2 = write("ev-bad2.yaml", open(new).read().replace("action: Probe\n", "").replace("relay-healthy", "no-action"))
    err = fails("create", "-f", bad2)
    eq(err, 'The Event "eu-west-cluster.no-action" is invalid: action: Required value')


@test
def schema_and_strict_field_validation():
    bad = write("bad.yaml", "apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: bad\nfoo: bar\n")
    err = fails("create", "-f", bad)
    eq(err, 'Error from server (BadRequest): error when creating "%s": Cluster in version "v1" cannot be handled '
            'as a Cluster: strict decoding error: unknown field "foo"' % bad)
    rc, out, err = kubectl("create", "-f", bad, "--validate=warn")
    eq((rc, out.strip(), err.strip()), (0, "cluster.management.loft.sh/bad created", 'Warning: unknown field "foo"'))
    check("foo" not in ok("get", "cluster", "bad", "-o", "json"), "unknown fields are pruned")
    ok("delete", "cluster", "bad")
    bad = write("bad2.yaml", "apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: bad2\nspec:\n  displayName: 5\n")
    err = fails("create", "-f", bad)
    eq(err, 'The Cluster "bad2" is invalid: spec.displayName: Invalid value: "integer": spec.displayName in body '
            'must be of type string: "integer"')
    bad = write("bad3.yaml", "apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: Bad_Name\n")
    err = fails("create", "-f", bad)
    check(err.startswith('The Cluster "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'), err)


@test
def status_subresource():
    out = ok("patch", "cluster", "eu-west-cluster", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Ready"}}')
    eq(out.strip(), "cluster.management.loft.sh/eu-west-cluster patched")
    eq(ok("get", "cluster", "eu-west-cluster", "-o", "jsonpath={.status.phase}"), "Ready")
    # the main resource ignores status changes
    out = ok("patch", "cluster", "eu-west-cluster", "--type=merge", "-p", '{"status":{"phase":"Gone"}}')
    eq(out.strip(), "cluster.management.loft.sh/eu-west-cluster patched (no change)")
    eq(ok("get", "cluster", "eu-west-cluster", "-o", "jsonpath={.status.phase}"), "Ready")
    out = ok("patch", "cluster", "eu-west-cluster", "--type=json", "-p", '[{"op":"add","path":"/spec/displayName","value":"EU"}]')
    eq(out.strip(), "cluster.management.loft.sh/eu-west-cluster patched")
    err = fails("patch", "cluster", "eu-west-cluster", "--type=json", "-p", '[{"op":"test","path":"/spec/displayName","value":"x"}]')
    eq(err, "The request is invalid: the server rejected our request due to an error in our request")
    err = fails("patch", "cluster", "eu-west-cluster", "--type=strategic", "-p", '{"spec":{}}')
    eq(err, "error: application/strategic-merge-patch+json is not supported by management.loft.sh/v1, Kind=Cluster: "
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


@test
def optimistic_concurrency_on_update():
    obj = json.loads(ok("get", "cluster", "eu-west-cluster", "-o", "json"))
    obj["spec"]["displayName"] = "EU West"
    stale = json.loads(json.dumps(obj))
    eq(ok("replace", "-f", "-", input=json.dumps(obj)).strip(), "cluster.management.loft.sh/eu-west-cluster replaced")
    stale["spec"]["displayName"] = "stale"
    err = fails("replace", "-f", "-", input=json.dumps(stale))
    eq(err, 'Error from server (Conflict): error when replacing "STDIN": Operation cannot be fulfilled on '
            'clusters.management.loft.sh "eu-west-cluster": the object has been modified; please apply your '
            'changes to the latest version and try again')


@test
def finalizers_delay_deletion():
    f = write("fin.yaml", "apiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: fin\n"
                          "  finalizers: [loft.sh/cleanup]\n")
    ok("create", "-f", f)
    w = Watch("get", "cluster", "fin", "-w", "--output-watch-events")
    try:
        w.wait_for(lambda l: l.startswith("ADDED"))
        eq(ok("delete", "cluster", "fin", "--wait=false").strip(), 'cluster.management.loft.sh "fin" deleted')
        obj = json.loads(ok("get", "cluster", "fin", "-o", "json"))
        check(obj["metadata"].get("deletionTimestamp"), "deletionTimestamp set while a finalizer remains")
        ok("patch", "cluster", "fin", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        w.wait_for(lambda l: l.startswith("DELETED"))
    finally:
        w.stop()
    fails("get", "cluster", "fin")


@test
def builtin_kinds_tables():
    ok("create", "namespace", "vcluster-platform")
    eq(ok("get", "ns", "vcluster-platform", "-o", "jsonpath={.status.phase}"), "Active")
    ok("create", "configmap", "cfg", "-n", "vcluster-platform", "--from-literal=a=1", "--from-literal=b=2")
    ok("create", "secret", "generic", "sec", "-n", "vcluster-platform", "--from-literal=k=v")
    ok("create", "service", "clusterip", "loft", "-n", "vcluster-platform", "--tcp=443:8443")
    lease = write("lease.yaml", """apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: derp-controller
  namespace: vcluster-platform
spec:
  holderIdentity: derp-controller-0
  leaseDurationSeconds: 15
""")
    ok("create", "-f", lease)
    eps = write("eps.yaml", """apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: loft-abc12
  namespace: vcluster-platform
  labels:
    kubernetes.io/service-name: loft
addressType: IPv4
ports:
- name: derp
  port: 8443
endpoints:
- addresses: ["10.0.0.5"]
- addresses: ["10.0.0.6"]
""")
    ok("create", "-f", eps)
    pod = write("pod.yaml", """apiVersion: v1
kind: Pod
metadata:
  name: derp-0
  namespace: vcluster-platform
spec:
  containers:
  - name: relay
    image: derp-relay:1.0
""")
    ok("create", "-f", pod)
    ns = ["-n", "vcluster-platform"]
    hdr, rows = table(ok("get", "cm", *ns))
    eq(hdr, ["NAME", "DATA", "AGE"])
    eq(sorted(r[:2] for r in rows), [["cfg", "2"], ["kube-root-ca.crt", "1"]])
    hdr, rows = table(ok("get", "secret", *ns))
    eq((hdr, rows[0][:3]), (["NAME", "TYPE", "DATA", "AGE"], ["sec", "Opaque", "1"]))
    hdr, rows = table(ok("get", "svc", *ns))
    eq(hdr, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"])
    eq([rows[0][0], rows[0][1], rows[0][3], rows[0][4]], ["loft", "ClusterIP", "<none>", "443/TCP"])
    check(re.match(r"^10\.96\.\d+\.\d+$", rows[0][2]), "cluster IP allocated: %r" % rows)
    hdr, rows = table(ok("get", "lease", *ns))
    eq((hdr, rows[0][:2]), (["NAME", "HOLDER", "AGE"], ["derp-controller", "derp-controller-0"]))
    hdr, rows = table(ok("get", "endpointslices", *ns))
    eq((hdr, rows[0][:4]), (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], ["loft-abc12", "IPv4", "8443", "10.0.0.5,10.0.0.6"]))
    hdr, rows = table(ok("get", "pods", *ns))
    eq((hdr, rows[0][:4]), (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["derp-0", "0/1", "Pending", "0"]))
    hdr, rows = table(ok("get", "ns"))
    eq(hdr, ["NAME", "STATUS", "AGE"])
    check(["vcluster-platform", "Active"] in [r[:2] for r in rows], rows)
    err = fails("create", "configmap", "x", "-n", "nope")
    eq(err, 'error: failed to create configmap: namespaces "nope" not found')
    err = fails("create", "-f", lease, "-n", "default")
    check(err.startswith("error: the namespace from the provided object"), err)


@test
def list_pagination_chunks():
    for i in range(7):
        ok("create", "configmap", "page-%d" % i, "-n", "vcluster-platform")
    out = ok("get", "cm", "-n", "vcluster-platform", "--chunk-size=3", "-o", "name")
    eq(len([l for l in out.splitlines() if "page-" in l]), 7, "all pages")
    lists = [r for r in SERVER.requests() if r["path"] == "/api/v1/namespaces/vcluster-platform/configmaps"
             and "limit=3" in r["query"]]
    check(len(lists) >= 3 and any("continue=" in r["query"] for r in lists), "chunked with continue tokens: %r" % lists)
    st, _, body = SERVER.https("GET", "/api/v1/namespaces/vcluster-platform/configmaps?limit=4")
    page = json.loads(body)
    eq((st, len(page["items"]), page["metadata"]["remainingItemCount"]), (200, 4, 5))
    st, _, body = SERVER.https("GET", "/api/v1/namespaces/vcluster-platform/configmaps?limit=4&continue=" + page["metadata"]["continue"])
    page2 = json.loads(body)
    eq([i["metadata"]["name"] for i in page2["items"]], ["page-2", "page-3", "page-4", "page-5"])
    eq(page2["metadata"]["remainingItemCount"], 1)


@test
def delete_namespace_cascades():
    out = ok("delete", "namespace", "vcluster-platform", timeout=60)
    eq(out.strip(), 'namespace "vcluster-platform" deleted')
    err = fails("get", "ns", "vcluster-platform")
    eq(err, 'Error from server (NotFound): namespaces "vcluster-platform" not found')
    rc, out, err = kubectl("get", "cm", "-n", "vcluster-platform")
    eq((rc, err.strip()), (0, "No resources found in vcluster-platform namespace."))
    err = fails("delete", "ns", "default")
    eq(err, 'Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted')


@test
def delete_cluster():
    out = ok("delete", "cluster", "us-east")
    eq(out.strip(), 'cluster.management.loft.sh "us-east" deleted')
    fails("get", "cluster", "us-east")
    out = ok("delete", "-f", os.path.join(WORK, "us.yaml"), "--ignore-not-found")
    eq(out.strip(), "")


@test
def raw_status_objects():
    st, hdrs, body = SERVER.https("GET", "/apis/management.loft.sh/v1/clusters/nope")
    eq((st, hdrs.get("Content-Type"), json.loads(body)), (404, "application/json", {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'clusters.management.loft.sh "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "group": "management.loft.sh", "kind": "clusters"}, "code": 404}))
    body = {"apiVersion": "management.loft.sh/v1", "kind": "Cluster", "metadata": {"name": "eu-west-cluster"}}
    st, _, out = SERVER.https("POST", "/apis/management.loft.sh/v1/clusters", body)
    eq((st, json.loads(out)), (409, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'clusters.management.loft.sh "eu-west-cluster" already exists', "reason": "AlreadyExists",
        "details": {"name": "eu-west-cluster", "group": "management.loft.sh", "kind": "clusters"}, "code": 409}))
    cur = json.loads(SERVER.https("GET", "/apis/management.loft.sh/v1/clusters/eu-west-cluster")[2])
    stale = dict(cur, metadata=dict(cur["metadata"], resourceVersion="1"))
    st, _, out = SERVER.https("PUT", "/apis/management.loft.sh/v1/clusters/eu-west-cluster", stale)
    s = json.loads(out)
    eq((st, s["reason"], s["details"]), (409, "Conflict", {"name": "eu-west-cluster", "group": "management.loft.sh",
                                                         "kind": "clusters"}))
    nov = dict(cur, metadata={k: v for k, v in cur["metadata"].items() if k != "resourceVersion"})
    st, _, out = SERVER.https("PUT", "/apis/management.loft.sh/v1/clusters/eu-west-cluster", nov)
    s = json.loads(out)
    eq((st, s["message"]), (422, 'Cluster.management.loft.sh "eu-west-cluster" is invalid: metadata.resourceVersion: '
                                 'Invalid value: 0: must be specified for an update'))
    eq(s["details"]["causes"], [{"reason": "FieldValueInvalid", "message": "Invalid value: 0: must be specified for an update",
                                 "field": "metadata.resourceVersion"}])
    st, _, out = SERVER.https("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "x"}})
    eq((st, json.loads(out)["message"], json.loads(out)["details"]), (404, 'namespaces "nope" not found',
                                                                      {"name": "nope", "kind": "namespaces"}))
    st, _, out = SERVER.https("DELETE", "/api/v1/namespaces/default/configmaps/derp-config")
    s = json.loads(out)
    eq((st, s["status"], s["details"]["name"], s["details"]["kind"], "code" in s), (200, "Success", "derp-config", "configmaps", False))
    st, _, out = SERVER.https("GET", "/apis/management.loft.sh/v1/nothere")
    eq((st, json.loads(out)["message"]), (404, "the server could not find the requested resource"))


@test
def raw_discovery_documents():
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    st, hdrs, body = SERVER.https("GET", "/apis", headers={"Accept": agg})
    eq(hdrs.get("Content-Type"), "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    doc = json.loads(body)
    eq((doc["kind"], doc["apiVersion"]), ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2"))
    groups = [i["metadata"]["name"] for i in doc["items"]]
    check(groups[-1] == "management.loft.sh" and "coordination.k8s.io" in groups, groups)
    res = doc["items"][-1]["versions"][0]["resources"][0]
    eq((res["resource"], res["scope"], res["singularResource"], res["responseKind"]["kind"]),
       ("clusters", "Cluster", "cluster", "Cluster"))
    eq(res["subresources"][0]["subresource"], "status")
    st, hdrs, body = SERVER.https("GET", "/apis", headers={"Accept": "application/json"})
    eq((st, json.loads(body)["kind"]), (200, "APIGroupList"))
    st, hdrs, body = SERVER.https("GET", "/api", headers={"Accept": "application/json"})
    eq(json.loads(body)["versions"], ["v1"])
    lst = json.loads(SERVER.https("GET", "/apis/management.loft.sh/v1")[2])
    eq(lst["resources"][0], {"name": "clusters", "singularName": "cluster", "namespaced": False, "kind": "Cluster",
                             "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                             "storageVersionHash": lst["resources"][0]["storageVersionHash"]})
    eq(lst["resources"][1]["name"], "clusters/status")


@test
def watch_ends_when_client_leaves():
    base = len(SERVER.control("GET", "/state")["watches"])
    w = Watch("get", "clusters", "-w")
    w.wait_for(lambda l: l.startswith("eu-west-cluster"))
    deadline = time.time() + 5  # kubectl prints the list before its watch request arrives
    while time.time() < deadline and len(SERVER.control("GET", "/state")["watches"]) == base:
        time.sleep(0.1)
    eq(len(SERVER.control("GET", "/state")["watches"]), base + 1, "one more watch")
    w.stop()
    deadline = time.time() + 5
    while time.time() < deadline and len(SERVER.control("GET", "/state")["watches"]) > base:
        time.sleep(0.2)
    eq(len(SERVER.control("GET", "/state")["watches"]), base, "the server noticed the client left")


@test
def token_contexts():
    hdr, rows = table(ok("--context", "test-token", "get", "clusters"))
    eq(rows[0][0], "eu-west-cluster")
    err = fails("--context", "test-bad-token", "get", "clusters")
    eq(err, "error: You must be logged in to the server (Unauthorized)")
    st, _, body = SERVER.https("GET", "/api/v1/namespaces", cert=False, token="wrong")
    eq((st, json.loads(body)), (401, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                      "message": "Unauthorized", "reason": "Unauthorized", "code": 401}))
    st, _, _ = SERVER.https("GET", "/api/v1/namespaces", cert=False, token=SERVER.token)
    eq(st, 200, "bearer token accepted")
    # tokens can be rotated through the control API
    SERVER.control("POST", "/tokens", {"token": "rotated-token", "user": "rotated"})
    eq(SERVER.https("GET", "/version", cert=False, token="rotated-token")[0], 200)
    SERVER.control("POST", "/tokens", {"remove": "rotated-token"})
    eq(SERVER.https("GET", "/version", cert=False, token="rotated-token")[0], 401)


CL_PATH = "/apis/management.loft.sh/v1/clusters/eu-west-cluster$"


@test
def fault_429_with_retry_after_is_retried():
    SERVER.clear_requests()
    SERVER.fault(action="status", code=429, retryAfter=1, count=2, method="GET", path=CL_PATH)
    t0 = time.time()
    hdr, rows = table(ok("get", "cluster", "eu-west-cluster"))
    took = time.time() - t0
    eq(rows[0][0], "eu-west-cluster")
    gets = [r["code"] for r in SERVER.requests() if re.search(CL_PATH, r["path"])]
    eq(gets, [429, 429, 200], "client-go retried twice after Retry-After")
    check(took >= 2.0, "kubectl waited Retry-After each time (%.1fs)" % took)


@test
def fault_429_without_retry_after_fails():
    SERVER.fault(action="status", code=429, method="GET", path=CL_PATH)
    err = fails("get", "cluster", "eu-west-cluster")
    eq(err, "Error from server (TooManyRequests): the server has received too many requests and has asked us "
            "to try again later (get clusters.management.loft.sh eu-west-cluster)")


@test
def fault_500_and_503():
    SERVER.fault(action="status", code=500, method="GET", path=CL_PATH)
    err = fails("get", "cluster", "eu-west-cluster")
    eq(err, "Error from server (InternalError): Internal error occurred: injected fault")
    SERVER.clear_requests()
    SERVER.fault(action="status", code=503, retryAfter=1, method="GET", path=CL_PATH)
    ok("get", "cluster", "eu-west-cluster")
    eq([r["code"] for r in SERVER.requests() if re.search(CL_PATH, r["path"])], [503, 200], "503 + Retry-After retried")
    SERVER.fault(action="status", code=500, method="PATCH", path=CL_PATH, message="etcdserver: request timed out")
    err = fails("annotate", "cluster", "eu-west-cluster", "a=b")
    eq(err, "Error from server (InternalError): etcdserver: request timed out")


@test
def fault_stall():
    SERVER.fault(action="stall", seconds=3, method="GET", path=CL_PATH)
    t0 = time.time()
    err = fails("get", "cluster", "eu-west-cluster", "--request-timeout=1s")
    check(time.time() - t0 < 2.5, "kubectl gave up after its timeout")
    # client-go words the timeout either way, depending on which timer fires first
    check(err in ("Unable to connect to the server: context deadline exceeded",
                  "Unable to connect to the server: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                  "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers)"), err)
    time.sleep(2.2)  # let the stalled handler finish
    SERVER.fault(action="stall", seconds=1, method="GET", path=CL_PATH)
    t0 = time.time()
    ok("get", "cluster", "eu-west-cluster")
    check(time.time() - t0 >= 1.0, "the stalled answer still arrives")


@test
def fault_cut_watch_mid_object():
    SERVER.fault(action="cut", afterBytes=150, watch=True, path="/apis/management.loft.sh/v1/clusters$")
    w = Watch("get", "clusters", "-w", "-v=6")
    try:
        w.wait_for(lambda l: l.startswith("eu-west-cluster"))
        ok("annotate", "--overwrite", "cluster", "eu-west-cluster", "cut=1")
        deadline = time.time() + 10
        while w.p.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        check(w.p.poll() is not None, "kubectl get -w ends when the stream is cut")
    finally:
        rc = w.stop()
    eq(rc, 0, "kubectl get -w exits 0 when its watch ends")
    check("Unexpected EOF during watch stream event decoding: unexpected EOF" in w.err, w.err[-600:])
    check(not any("cut=1" in l for l in w.lines), "the half-sent event is not printed")
    # the raw stream: exactly 150 bytes, then the connection drops without a last chunk
    SERVER.fault(action="cut", afterBytes=40, watch=True, path="/apis/management.loft.sh/v1/clusters$")
    try:
        SERVER.https("GET", "/apis/management.loft.sh/v1/clusters?watch=1")
        raise Fail("the cut stream completed")
    except http.client.IncompleteRead as e:
        eq(len(e.partial), 40, "bytes before the cut")
    except (ConnectionError, ssl.SSLError, http.client.RemoteDisconnected):
        pass


@test
def compaction_expires_old_resource_versions():
    rv = int(json.loads(ok("get", "cluster", "eu-west-cluster", "-o", "json"))["metadata"]["resourceVersion"])
    ok("annotate", "--overwrite", "cluster", "eu-west-cluster", "compact=1")
    res = SERVER.control("POST", "/compact")
    check(res["compacted"] > rv, res)
    out = ok("get", "--raw", "/apis/management.loft.sh/v1/clusters?watch=1&resourceVersion=%d" % rv)
    ev = json.loads(out.splitlines()[0])
    eq(ev, {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "too old resource version: %d (%d)" % (rv, res["compacted"]),
                                        "reason": "Expired", "code": 410}}, "watch from a compacted version")
    err = fails("get", "--raw", "/apis/management.loft.sh/v1/clusters?resourceVersion=%d&resourceVersionMatch=Exact" % rv)
    eq(err, "Error from server (Expired): The resourceVersion for the provided list is too old.")
    st, _, body = SERVER.https("GET", "/api/v1/namespaces?limit=1")
    tok = json.loads(body)["metadata"]["continue"]
    ok("create", "namespace", "after-compaction")
    SERVER.control("POST", "/compact")
    st, _, body = SERVER.https("GET", "/api/v1/namespaces?limit=1&continue=" + tok)
    s = json.loads(body)
    eq((st, s["reason"], s["code"]), (410, "Expired", 410))
    check(s["metadata"].get("continue"), "a 410 for an old continue token carries a fresh token")
    # a watch from the current version still works after compaction
    cur = json.loads(SERVER.https("GET", "/api/v1/namespaces")[2])["metadata"]["resourceVersion"]
    out = ok("get", "--raw", "/api/v1/namespaces?watch=1&timeoutSeconds=1&resourceVersion=" + cur)
    eq(out, "", "no events, clean end after timeoutSeconds")
    ok("delete", "namespace", "after-compaction")


@test
def watch_bookmarks_and_initial_events():
    SERVER.control("POST", "/settings", {"bookmarkInterval": 0.5})
    try:
        lst = json.loads(SERVER.https("GET", "/apis/management.loft.sh/v1/clusters")[2])
        rv = lst["metadata"]["resourceVersion"]
        out = ok("get", "--raw", "/apis/management.loft.sh/v1/clusters?watch=1&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion=" + rv)
        evs = [json.loads(l) for l in out.splitlines()]
        check(evs and all(e["type"] == "BOOKMARK" for e in evs), "only bookmarks on an idle watch: %r" % evs)
        eq(evs[0]["object"], {"apiVersion": "management.loft.sh/v1", "kind": "Cluster", "metadata": {"resourceVersion": rv}})
        out = ok("get", "--raw", "/apis/management.loft.sh/v1/clusters?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
                 "&resourceVersionMatch=NotOlderThan&resourceVersion=&timeoutSeconds=1")
        evs = [json.loads(l) for l in out.splitlines()]
        eq(evs[0]["type"], "ADDED")
        end = [e for e in evs if e["type"] == "BOOKMARK" and e["object"]["metadata"].get("annotations")]
        eq(end[0]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"})
    finally:
        SERVER.control("POST", "/settings", {"bookmarkInterval": 60})


@test
def too_large_resource_version():
    cur = int(json.loads(SERVER.https("GET", "/api/v1/namespaces")[2])["metadata"]["resourceVersion"])
    t0 = time.time()
    st, _, body = SERVER.https("GET", "/api/v1/namespaces?resourceVersion=%d&resourceVersionMatch=NotOlderThan" % (cur + 100))
    s = json.loads(body)
    eq((st, s["reason"], s["details"]["causes"][0]["reason"]), (504, "Timeout", "ResourceVersionTooLarge"))
    check(time.time() - t0 >= 2.5, "waited for the resource version first")


@test
def delete_crd_removes_clusters():
    w = Watch("get", "clusters", "-w", "--output-watch-events")
    try:
        w.wait_for(lambda l: "eu-west-cluster" in l)
        ok("delete", "-f", CRD_FILE, timeout=60)
        w.wait_for(lambda l: l.startswith("DELETED") and "eu-west-cluster" in l)
    finally:
        w.stop()
    # kubectl still has clusters in its discovery cache, so it lists and gets a 404
    err = fails("get", "clusters")
    eq(err, 'Error from server (NotFound): Unable to list "management.loft.sh/v1, Resource=clusters": the server '
            'could not find the requested resource (get clusters.management.loft.sh)')
    err = fails("get", "clusters", "--cache-dir", os.path.join(WORK, "fresh-cache"))
    eq(err, 'error: the server doesn\'t have a resource type "clusters"')
    eq(ok("apply", "-f", CRD_FILE).strip(), "customresourcedefinition.apiextensions.k8s.io/clusters.management.loft.sh created")
    rc, out, err = kubectl("get", "clusters")
    eq((rc, err.strip()), (0, "No resources found"))


@test
def other_kubectl_minor_versions():
    bins = sorted(glob.glob(os.path.join(os.path.dirname(os.path.realpath(KUBECTL)), "kubectl.1.*")))
    if not bins:
        raise Skip("no versioned kubectl binaries (kubectl.1.NN) next to %s" % os.path.realpath(KUBECTL))
    f = write("multi.yaml", CLUSTER % {"name": "multi", "display": "Multi"})
    ok("apply", "-f", f)
    for b in bins:
        v = b.rsplit("kubectl.", 1)[1]
        hdr, rows = table(ok("get", "clusters", binary=b))
        eq(hdr, ["NAME", "DISPLAY NAME", "DERP ENDPOINT", "AGE"], "kubectl %s columns" % v)
        out = ok("annotate", "--overwrite", "cluster", "multi", "loft.sh/derp-endpoint=v%s.example.com" % v, binary=b)
        # kubectl 1.27 printed "annotate" instead of "annotated"
        check(re.match(r"^cluster\.management\.loft\.sh/multi annotated?$", out.strip()), "kubectl %s annotate: %r" % (v, out))
        f2 = write("multi-%s.yaml" % v, CLUSTER % {"name": "multi-" + v.replace(".", "-"), "display": "v" + v})
        out = ok("apply", "-f", f2, binary=b)
        eq(out.strip(), "cluster.management.loft.sh/multi-%s created" % v.replace(".", "-"), "kubectl %s apply" % v)
        ok("delete", "-f", f2, binary=b)
        err = fails("get", "cluster", "nope", binary=b)
        eq(err, 'Error from server (NotFound): clusters.management.loft.sh "nope" not found', "kubectl %s" % v)
    ok("delete", "cluster", "multi")


@test
def default_crd_preload():
    s = Server(os.path.join(WORK, "second"))
    try:
        hdr, rows = table(ok("get", "crd", server=s))
        eq(rows[0][0], "clusters.management.loft.sh")
        rc, out, err = kubectl("get", "clusters", server=s)
        eq((rc, err.strip()), (0, "No resources found"))
    finally:
        s.stop()


# ----------------------------------------------------------------------------- runner

def main():
    global SERVER, WORK
    if not KUBECTL:
        print("SKIP all: kubectl not found on PATH (set KUBECTL)")
        print("0 passed, 0 failed")
        return 0
    WORK = tempfile.mkdtemp(prefix="e2e-kubectl-")
    passed = failed = 0
    skipped = []
    t_start = time.time()
    SERVER = Server(os.path.join(WORK, "main"), extra=["--crd", "none"])
    try:
        if ONLY:
            # running a subset: give it the CRD and the Cluster the full sequence would have made
            kubectl("apply", "-f", CRD_FILE)
            kubectl("wait", "--for=condition=Established", "crd/clusters.management.loft.sh")
            kubectl("create", "-f", "-", input=CLUSTER % {"name": "eu-west-cluster", "display": "EU West"})
        for fn in TESTS:
            if ONLY and ONLY not in fn.__name__:
                continue
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("PASS %s (%.1fs)" % (fn.__name__, time.time() - t0))
            except Skip as e:
                skipped.append((fn.__name__, str(e)))
                print("SKIP %s: %s" % (fn.__name__, e))
            except Fail as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
            except Exception:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, traceback.format_exc()))
            sys.stdout.flush()
            try:
                SERVER.control("DELETE", "/faults")
            except Exception:
                pass
    finally:
        SERVER.stop()
    if failed:
        print("server log: %s" % os.path.join(WORK, "main", "server.log"))
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    for name, why in skipped:
        print("skipped %s: %s" % (name, why))
    print("time %.0fs" % (time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
