#!/usr/bin/env python3
"""The Helm chart in manifests/, rendered like `helm template` and applied
with the real kubectl to the Kubernetes API test server.

helm cannot be installed on these machines, so tests/helm/render (Go
text/template + sprig + gojsonschema from Debian's golang-*-dev packages,
built offline by tests/helm/build.sh) renders the chart as helm's engine
does. Without go or those packages the test is skipped (exit 77).

  python3 tests/helm/test_chart.py [-v] [-k NAME]

Environment: DC_HELM_BUILD_DIR (where the renderer is built; default a
directory under /tmp), KUBECTL (kubectl to use)."""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "manifests")
RUN = os.path.join(ROOT, "tests", "apiserver", "run")
NS = "vcluster-platform"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import k8stest  # noqa: E402

VERBOSE = "-v" in sys.argv
ONLY = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else None
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
SKIP_RC = 77

try:
    import yaml
except ImportError:  # pragma: no cover
    print("SKIP: python3-yaml is not installed")
    sys.exit(SKIP_RC)


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


# ----------------------------------------------------------------------------- renderer

RENDER = None


def build_renderer():
    out = os.environ.get("DC_HELM_BUILD_DIR") or os.path.join(tempfile.gettempdir(), "derp-helm-render-%d" % os.getuid())
    if not shutil.which("go"):
        return None, "go is not installed (apt-get install golang-go)"
    p = subprocess.run(["bash", os.path.join(HERE, "build.sh"), out], capture_output=True, text=True)
    if p.returncode == 3:
        return None, p.stderr.strip()
    if p.returncode != 0:
        raise RuntimeError("building tests/helm/render failed:\n" + p.stdout + p.stderr)
    return os.path.join(out, "render"), None


def render_raw(*args, release="derp-controller", ns=NS):
    cmd = [RENDER, release, CHART, "-n", ns] + list(args)
    if VERBOSE:
        print("  $ " + " ".join(cmd))
    return subprocess.run(cmd, capture_output=True, text=True)


def render(*args, **kw):
    p = render_raw(*args, **kw)
    if p.returncode != 0:
        raise Fail("render %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(ds):
    out = {}
    for d in ds:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(ds, kind, name=None):
    found = [d for d in ds if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    eq(len(found), 1, "exactly one %s %s" % (kind, name or ""))
    return found[0]


def container(ds):
    return one(ds, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


def mesh_key_of(ds):
    s = one(ds, "Secret")
    return base64.b64decode(s["data"]["mesh-key"]).decode()


# ----------------------------------------------------------------------------- checks of the rendering

def test_default_values_render_every_kind():
    out = render()
    check("# Source: derp-controller/templates/" in out, "helm-style Source headers")
    ds = docs(out)
    kinds = sorted(d["kind"] for d in ds)
    eq(kinds, sorted(["PodDisruptionBudget", "ServiceAccount", "Secret", "ClusterRole", "ClusterRoleBinding",
                      "Role", "RoleBinding", "Service", "Service", "Deployment"]), "kinds with default values")
    # helm's install order: ServiceAccount, Secret, RBAC, Services before the Deployment
    order = [d["kind"] for d in ds]
    check(order.index("ServiceAccount") < order.index("Deployment"), "install order")
    check(order.index("ClusterRole") < order.index("Role") < order.index("Service") < order.index("Deployment"),
          "install order: %s" % order)
    for d in ds:
        md = d["metadata"]
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            eq(md.get("namespace"), NS, "%s namespace" % d["kind"])
        eq(md["labels"]["app.kubernetes.io/name"], "derp-controller", "name label")
        eq(md["labels"]["app.kubernetes.io/instance"], "derp-controller", "instance label")
        eq(md["labels"]["app.kubernetes.io/managed-by"], "Helm", "managed-by label")
    check("NOTES" not in out and "port-forward" not in out, "NOTES.txt is not rendered as a manifest")


def test_deployment_command_env_ports_probes():
    ds = docs(render())
    dep = one(ds, "Deployment")
    eq(dep["spec"]["replicas"], 1, "replicas")
    c = container(ds)
    eq(c["image"], "derp-controller:0.1.0", "image defaults to the appVersion")
    eq(c["imagePullPolicy"], "IfNotPresent", "pullPolicy")
    eq(c["command"], ["derp-controller"], "command")
    eq(c["args"], ["--relay", "--central-endpoint", "derp-controller.vcluster-platform.svc.cluster.local:80",
                   "--listen", ":8080", "--relay-listen", ":3340", "--stun-listen", ":3478",
                   "--key-file", "/var/lib/derp/derp-relay.key", "--mesh-key-file", "/etc/derp-mesh/mesh-key",
                   "--mesh-service", "derp-controller", "--mesh-port-name", "derp",
                   "--mesh-peers-file", "/var/lib/derp/mesh-peers"],
       "args (no --kubeconfig: in-cluster config)")
    env = env_of(c)
    eq(env["POD_NAMESPACE"]["valueFrom"], {"fieldRef": {"fieldPath": "metadata.namespace"}}, "POD_NAMESPACE")
    eq(env["POD_NAME"]["valueFrom"], {"fieldRef": {"fieldPath": "metadata.name"}}, "POD_NAME")
    eq(env["LOFT_LOG_DERP"]["value"], "false", "LOFT_LOG_DERP")
    eq(env["LOFT_LOG_DERP_MESH"]["value"], "false", "LOFT_LOG_DERP_MESH")
    eq([(p["name"], p["containerPort"], p["protocol"]) for p in c["ports"]],
       [("http-map", 8080, "TCP"), ("derp", 3340, "TCP"), ("stun", 3478, "UDP")], "container ports")
    eq(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": 8080}, "liveness probe")
    eq(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": 8080}, "readiness probe")
    eq(c["resources"], {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}}, "resources")
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    eq(mounts["state"]["mountPath"], "/var/lib/derp", "state mount")
    eq(mounts["mesh-key"]["mountPath"], "/etc/derp-mesh", "mesh key mount")
    eq(mounts["mesh-key"].get("readOnly"), True, "mesh key read-only")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    check("emptyDir" in vols["state"], "state is an emptyDir")
    eq(vols["mesh-key"]["secret"]["secretName"], "derp-controller-mesh", "mesh Secret volume")
    spec = dep["spec"]["template"]["spec"]
    eq(spec["serviceAccountName"], "derp-controller", "service account")
    eq(spec["automountServiceAccountToken"], True, "token mounted (the controller needs the API)")


def test_security_settings():
    ds = docs(render())
    spec = one(ds, "Deployment")["spec"]["template"]["spec"]
    eq(spec["securityContext"], {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                                 "seccompProfile": {"type": "RuntimeDefault"}}, "pod securityContext")
    eq(spec["containers"][0]["securityContext"],
       {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
       "container securityContext")
    eq(one(ds, "ServiceAccount").get("automountServiceAccountToken"), True, "ServiceAccount automount")


def test_labels_and_selector():
    ds = docs(render())
    dep = one(ds, "Deployment")
    sel = dep["spec"]["selector"]["matchLabels"]
    eq(sel, {"app.kubernetes.io/name": "derp-controller", "app.kubernetes.io/instance": "derp-controller"},
       "selector: name + instance (unique per release)")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    eq(labels.get("app"), "loft", "pod label app=loft (kubectl logs -l app=loft)")
    for k, v in sel.items():
        eq(labels.get(k), v, "pod label %s" % k)
    for svc in by_kind(ds)["Service"]:
        eq(svc["spec"]["selector"], sel, "Service %s selector" % svc["metadata"]["name"])
    eq(one(ds, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], sel, "PDB selector")


def test_mesh_secret_and_checksum():
    ds = docs(render())
    key = mesh_key_of(ds)
    check(re.fullmatch(r"[0-9a-f]{64}", key), "generated mesh key is 64 lowercase hex: %r" % key)
    ann = one(ds, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    eq(ann["checksum/mesh-key"], hashlib.sha256(key.encode()).hexdigest(), "checksum of the mesh key")
    key2 = mesh_key_of(docs(render()))
    check(key2 != key, "helm template (lookup finds nothing) makes a fresh key each time")
    given = "ab" * 32
    ds = docs(render("--set", "mesh.key=" + given))
    eq(mesh_key_of(ds), given, "mesh.key is used")
    eq(one(ds, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/mesh-key"],
       hashlib.sha256(given.encode()).hexdigest(), "checksum follows mesh.key")


def test_mesh_key_kept_on_upgrade():
    old = "0123456789abcdef" * 4
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "live.yaml")
        with open(p, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": "derp-controller-mesh", "namespace": NS},
                            "data": {"mesh-key": base64.b64encode(old.encode()).decode()}}, f)
        ds = docs(render("--is-upgrade", "--lookup", p))
        eq(mesh_key_of(ds), old, "the existing Secret's key is kept (lookup)")
        # another namespace: not found, a fresh key
        ds = docs(render("--lookup", p, ns="other"))
        check(mesh_key_of(ds) != old, "lookup is per namespace")


def test_existing_secret():
    ds = docs(render("--set", "mesh.existingSecret=my-mesh"))
    check("Secret" not in by_kind(ds), "no Secret rendered with mesh.existingSecret")
    dep = one(ds, "Deployment")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    eq(vols["mesh-key"]["secret"]["secretName"], "my-mesh", "existing Secret mounted")
    check(dep["spec"]["template"]["metadata"]["annotations"].get("checksum/mesh-key"), "checksum annotation present")


def test_rbac_least_privilege():
    ds = docs(render())
    cr = one(ds, "ClusterRole")
    eq(cr["rules"], [
        {"apiGroups": ["management.loft.sh"], "resources": ["clusters"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ], "ClusterRole rules")
    role = one(ds, "Role")
    eq(role["rules"], [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["derp-controller"],
         "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["derp-controller-region-ids"],
         "verbs": ["update", "patch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    ], "Role rules")
    for d in ds:
        for r in d.get("rules") or []:
            check("*" not in r.get("verbs", []) and "*" not in r.get("resources", []) and
                  "*" not in r.get("apiGroups", []), "no wildcards: %r" % r)
            check(not set(r["verbs"]) & {"delete", "deletecollection", "escalate", "bind", "impersonate"},
                  "no destructive verbs: %r" % r)
    sa = {"kind": "ServiceAccount", "name": "derp-controller", "namespace": NS}
    crb = one(ds, "ClusterRoleBinding")
    eq(crb["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": cr["metadata"]["name"]}, "ClusterRoleBinding roleRef")
    eq(crb["subjects"], [sa], "ClusterRoleBinding subjects")
    rb = one(ds, "RoleBinding")
    eq(rb["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
       "RoleBinding roleRef")
    eq(rb["subjects"], [sa], "RoleBinding subjects")
    # custom names: passed as flags and used in resourceNames
    ds = docs(render("--set", "controller.leaseName=derp-b,controller.regionIdsConfigMap=derp-b-ids"))
    args = container(ds)["args"]
    check(args[args.index("--lease-name") + 1] == "derp-b", "--lease-name passed: %r" % args)
    check(args[args.index("--region-ids-configmap") + 1] == "derp-b-ids", "--region-ids-configmap passed")
    rules = one(ds, "Role")["rules"]
    eq(rules[1]["resourceNames"], ["derp-b"], "lease resourceNames")
    eq(rules[3]["resourceNames"], ["derp-b-ids"], "configmap resourceNames")
    check("ClusterRole" not in by_kind(docs(render("--set", "rbac.create=false"))), "rbac.create=false")


def test_mesh_discovery():
    args = container(docs(render("--set", "mesh.discovery=true,replicas=2")))["args"]
    eq(args[-6:], ["--mesh-service", "derp-controller", "--mesh-port-name", "derp",
                   "--mesh-peers-file", "/var/lib/derp/mesh-peers"], "mesh discovery flags")
    check("--mesh-service" in container(docs(render()))["args"], "on by default")
    check("--mesh-service" not in container(docs(render("--set", "mesh.discovery=false")))["args"],
          "mesh.discovery=false turns it off")


def test_services():
    ds = docs(render())
    svc = one(ds, "Service", "derp-controller")
    eq(svc["spec"]["type"], "ClusterIP", "Service type")
    eq([(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in svc["spec"]["ports"]],
       [("http", 8080, "http-map", "TCP"), ("derp", 80, "derp", "TCP")], "map + DERP ports")
    stun = one(ds, "Service", "derp-controller-stun")
    eq([(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in stun["spec"]["ports"]],
       [("stun", 3478, "stun", "UDP")], "STUN port")
    ds = docs(render("--set", "stun.service.type=LoadBalancer,service.type=NodePort"))
    eq(one(ds, "Service", "derp-controller-stun")["spec"]["type"], "LoadBalancer", "STUN Service type")
    eq(one(ds, "Service", "derp-controller")["spec"]["type"], "NodePort", "Service type")
    ds = docs(render("--set", "stun.enabled=false"))
    check(len(by_kind(ds)["Service"]) == 1, "no STUN Service when disabled")
    c = container(ds)
    eq(c["args"][c["args"].index("--stun-listen") + 1], "off", "--stun-listen off")
    check("stun" not in [p["name"] for p in c["ports"]], "no stun port")


def test_ingress_as_documented():
    ds = docs(render("--set", "ingress.enabled=true,ingress.host=eu-west-cluster.example.com"))
    ing = one(ds, "Ingress")
    eq(ing["apiVersion"], "networking.k8s.io/v1", "Ingress apiVersion")
    eq(ing["metadata"]["annotations"], {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "43200",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "43200",
        "cert-manager.io/cluster-issuer": "lets-encrypt-http-issuer"}, "Ingress annotations")
    spec = ing["spec"]
    eq(spec["ingressClassName"], "nginx", "ingressClassName")
    eq(spec["tls"], [{"hosts": ["eu-west-cluster.example.com"], "secretName": "derp-controller-tls"}], "tls")
    eq(spec["rules"], [{"host": "eu-west-cluster.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "derp-controller", "port": {"name": "derp"}}}}]}}], "rules")
    c = container(ds)
    eq(c["args"][c["args"].index("--central-endpoint") + 1], "eu-west-cluster.example.com",
       "central endpoint falls back to the Ingress host")
    ds = docs(render("--set", "ingress.enabled=true,ingress.host=h.example.com,ingress.exposeMap=true,"
                     "ingress.clusterIssuer=,ingress.className=traefik,ingress.tls.secretName=own-tls,"
                     "centralEndpoint=platform.example.com:8443"))
    ing = one(ds, "Ingress")
    check("cert-manager.io/cluster-issuer" not in ing["metadata"]["annotations"], "no issuer when empty")
    eq(ing["spec"]["ingressClassName"], "traefik", "className")
    eq(ing["spec"]["tls"][0]["secretName"], "own-tls", "tls secretName")
    eq([p["path"] for p in ing["spec"]["rules"][0]["http"]["paths"]], ["/derpmap", "/"], "exposeMap path")
    c = container(ds)
    eq(c["args"][c["args"].index("--central-endpoint") + 1], "platform.example.com:8443", "explicit centralEndpoint")
    p = render_raw("--set", "ingress.enabled=true")
    check(p.returncode != 0 and "ingress.host is required" in p.stderr, "ingress without host: %r" % p.stderr)


def test_replicas_and_pdb():
    ds = docs(render())
    eq(one(ds, "PodDisruptionBudget")["spec"].get("maxUnavailable"), 1, "1 replica: maxUnavailable 1")
    ds = docs(render("--set", "replicas=3"))
    eq(one(ds, "Deployment")["spec"]["replicas"], 3, "replicas")
    pdb = one(ds, "PodDisruptionBudget")
    eq(pdb["apiVersion"], "policy/v1", "PDB apiVersion")
    eq(pdb["spec"].get("minAvailable"), 1, "3 replicas: minAvailable 1")
    check("maxUnavailable" not in pdb["spec"], "not both")
    check("PodDisruptionBudget" not in by_kind(docs(render("--set", "podDisruptionBudget.enabled=false"))),
          "PDB can be turned off")


def test_logging_values():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("logging:\n  derp: true\n")
        path = f.name
    try:
        env = env_of(container(docs(render("-f", path))))
        eq(env["LOFT_LOG_DERP"]["value"], "true", "-f logging.derp=true")
        eq(env["LOFT_LOG_DERP_MESH"]["value"], "false", "derpMesh keeps its default")
    finally:
        os.unlink(path)
    env = env_of(container(docs(render("--set", "logging.derp=true,logging.derpMesh=true"))))
    eq((env["LOFT_LOG_DERP"]["value"], env["LOFT_LOG_DERP_MESH"]["value"]), ("true", "true"), "--set logging")


def test_extra_values():
    ds = docs(render("--set", "extraArgs={--max-conns,10000}", "--set", "image.tag=dev,image.repository=reg/derp",
                     "--set", "podAnnotations.a=b,nodeSelector.zone=eu,priorityClassName=high,podLabels.team=net",
                     "--set", "imagePullSecrets[0].name=pull"))
    c = container(ds)
    eq(c["args"][-2:], ["--max-conns", "10000"], "extraArgs appended")
    eq(c["image"], "reg/derp:dev", "image")
    spec = one(ds, "Deployment")["spec"]["template"]
    eq(spec["metadata"]["annotations"]["a"], "b", "podAnnotations")
    eq(spec["metadata"]["labels"]["team"], "net", "podLabels")
    eq(spec["spec"]["nodeSelector"], {"zone": "eu"}, "nodeSelector")
    eq(spec["spec"]["priorityClassName"], "high", "priorityClassName")
    eq(spec["spec"]["imagePullSecrets"], [{"name": "pull"}], "imagePullSecrets")
    ds = docs(render(release="derp"))
    eq(one(ds, "Deployment")["metadata"]["name"], "derp-derp-controller", "fullname from release + chart")
    ds = docs(render("--set", "fullnameOverride=relay"))
    eq(one(ds, "Deployment")["metadata"]["name"], "relay", "fullnameOverride")
    eq(one(ds, "Secret")["metadata"]["name"], "relay-mesh", "Secret follows fullname")


def test_schema_validation():
    for args, what in ((["--set", "replicas=many"], "replicas"),
                       (["--set", "nope=1"], "nope"),
                       (["--set", "mesh.key=ABC"], "mesh.key"),
                       (["--set", "logging.derp=yes"], "logging.derp"),
                       (["--set", "service.type=Weird"], "service.type"),
                       (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy")):
        p = render_raw(*args)
        check(p.returncode != 0, "%s accepted: %r" % (args, p.stdout[:200]))
        check("values don't meet the specifications of the schema" in p.stderr and what.split(".")[-1] in p.stderr,
              "schema error for %s: %r" % (what, p.stderr))
    render("--set", "global.foo=bar")  # helm's global key stays allowed


def test_include_crds():
    out = render("--include-crds")
    ds = docs(out)
    eq(ds[0]["kind"], "CustomResourceDefinition", "CRD first")
    eq(ds[0]["metadata"]["name"], "clusters.management.loft.sh", "the Cluster CRD")
    check("CustomResourceDefinition" not in by_kind(docs(render())), "CRDs only with --include-crds")


def test_notes_and_helmignore():
    p = render_raw("--notes", "--set", "ingress.enabled=true,ingress.host=derp.example.com")
    check(p.returncode == 0, p.stderr)
    for s in ("kubectl annotate cluster", "loft.sh/derp-endpoint=", "port-forward -n vcluster-platform svc/derp-controller",
              "/derpmap", "curl -I https://derp.example.com/healthz", "kubectl logs -n vcluster-platform -l app=loft | grep -i derp"):
        check(s in p.stdout, "NOTES mention %r:\n%s" % (s, p.stdout))
    with open(os.path.join(CHART, ".helmignore")) as f:
        lines = [l.strip() for l in f]
    for s in ("examples/", "README.md", "tests/"):
        check(s in lines, ".helmignore excludes %s" % s)
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    eq((meta["apiVersion"], meta["name"], meta["version"], meta["appVersion"], meta["type"]),
       ("v2", "derp-controller", "0.1.0", "0.1.0", "application"), "Chart.yaml")


def test_values_all_typed():
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    defs = schema.get("definitions", {})

    def resolve(s):
        while "$ref" in s:
            s = defs[s["$ref"].split("/")[-1]]
        return s

    def walk(v, s, path):
        s = resolve(s)
        check("type" in s, "%s has a type in values.schema.json" % path)
        if isinstance(v, dict) and "properties" in s:
            for k, x in v.items():
                check(k in s["properties"], "%s.%s is in values.schema.json" % (path, k))
                walk(x, s["properties"][k], "%s.%s" % (path, k))
    walk(values, schema, "values")
    eq(schema.get("$schema"), "http://json-schema.org/draft-07/schema#", "draft-07")
    eq(schema.get("additionalProperties"), False, "no unknown top-level values")


# ----------------------------------------------------------------------------- kubectl apply

class Server(k8stest.ApiServer):
    """The API test server (tests/system/k8stest.py) with this file's kubectl conventions."""

    def kubectl(self, *args, stdin=None, ok=True):
        if VERBOSE:
            print("  $ kubectl " + " ".join(args))
        p = self.run_kubectl(*args, stdin=stdin)
        if VERBOSE:
            print(p.stdout + p.stderr)
        if ok and p.returncode != 0:
            raise Fail("kubectl %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p


def test_kubectl_apply_to_api_server():
    if not KUBECTL:
        raise Skip("kubectl not found")
    srv = Server()
    try:
        srv.kubectl("create", "namespace", NS)
        p = srv.kubectl("apply", "-f", "-", stdin=render("--include-crds"))
        for s in ("customresourcedefinition.apiextensions.k8s.io/clusters.management.loft.sh",
                  "deployment.apps/derp-controller created", "serviceaccount/derp-controller created",
                  "secret/derp-controller-mesh created", "service/derp-controller created",
                  "service/derp-controller-stun created", "role.rbac.authorization.k8s.io/derp-controller created",
                  "rolebinding.rbac.authorization.k8s.io/derp-controller created",
                  "clusterrole.rbac.authorization.k8s.io/vcluster-platform-derp-controller created",
                  "clusterrolebinding.rbac.authorization.k8s.io/vcluster-platform-derp-controller created",
                  "poddisruptionbudget.policy/derp-controller created"):
            check(s in p.stdout, "apply output has %r:\n%s" % (s, p.stdout))
        # an upgrade: Ingress on, 3 replicas, DERP logs on (kubectl's strategic merge patches)
        p = srv.kubectl("apply", "-f", "-", stdin=render(
            "--set", "ingress.enabled=true,ingress.host=eu-west-cluster.example.com,replicas=3,logging.derp=true"))
        check("deployment.apps/derp-controller configured" in p.stdout, p.stdout)
        check("ingress.networking.k8s.io/derp-controller created" in p.stdout, p.stdout)
        p = srv.kubectl("get", "deploy,svc,sa,role,rolebinding,pdb,ing,secret", "-n", NS)
        for s in ("deployment.apps/derp-controller", "0/3", "service/derp-controller ", "3478/UDP",
                  "8080/TCP,80/TCP", "serviceaccount/derp-controller", "role.rbac.authorization.k8s.io/derp-controller",
                  "Role/derp-controller", "poddisruptionbudget.policy/derp-controller",
                  "ingress.networking.k8s.io/derp-controller", "eu-west-cluster.example.com", "80, 443",
                  "secret/derp-controller-mesh"):
            check(s in p.stdout, "kubectl get shows %r:\n%s" % (s, p.stdout))
        p = srv.kubectl("get", "clusterrole,clusterrolebinding", "vcluster-platform-derp-controller")
        check("ClusterRole/vcluster-platform-derp-controller" in p.stdout, p.stdout)
        # kubectl logs -l app=loft selects by this label: the Deployment and its pods carry it
        p = srv.kubectl("get", "deploy", "-n", NS, "-l", "app=loft", "-o", "name")
        eq(p.stdout.strip(), "deployment.apps/derp-controller", "selected by app=loft")
        dep = json.loads(srv.kubectl("get", "deploy", "derp-controller", "-n", NS, "-o", "json").stdout)
        eq(dep["spec"]["replicas"], 3, "replicas after upgrade")
        env = env_of(dep["spec"]["template"]["spec"]["containers"][0])
        eq(env["LOFT_LOG_DERP"]["value"], "true", "LOFT_LOG_DERP after upgrade")
        eq(dep["metadata"]["generation"], 2, "generation bumped by the spec change")
        pdb = json.loads(srv.kubectl("get", "pdb", "derp-controller", "-n", NS, "-o", "json").stdout)
        eq(pdb["spec"], {"minAvailable": 1, "selector": {"matchLabels": {
            "app.kubernetes.io/name": "derp-controller", "app.kubernetes.io/instance": "derp-controller"}}},
           "PDB switched from maxUnavailable to minAvailable")
        # the existing-secret variant applies too, and delete removes everything
        p = srv.kubectl("apply", "-f", "-", stdin=render("--set", "mesh.existingSecret=derp-controller-mesh"))
        check("deployment.apps/derp-controller configured" in p.stdout, p.stdout)
        p = srv.kubectl("delete", "-f", "-", stdin=render("--set", "ingress.enabled=true,ingress.host=x.example.com"))
        check('deployment.apps "derp-controller" deleted' in p.stdout, p.stdout)
        p = srv.kubectl("get", "deploy,svc,sa,role,rolebinding,pdb,ing", "-n", NS, "-l",
                        "app.kubernetes.io/instance=derp-controller")
        eq(p.stdout.strip(), "", "nothing left: " + p.stdout)
        check("No resources found" in p.stderr, p.stderr)
    finally:
        srv.stop()


# ----------------------------------------------------------------------------- main

def main():
    global RENDER
    RENDER, why = build_renderer()
    if RENDER is None:
        print("SKIP: the chart check needs Go and Debian's Go packages: %s" % why)
        return SKIP_RC
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    failed = skipped = 0
    for name, fn in tests:
        if ONLY and ONLY not in name:
            continue
        t0 = time.time()
        try:
            fn()
            print("PASS %s (%.1fs)" % (name, time.time() - t0))
        except Skip as e:
            skipped += 1
            print("SKIP %s: %s" % (name, e))
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL %s: %s" % (name, e))
            if not isinstance(e, Fail) or VERBOSE:
                traceback.print_exc()
    print("%d failed, %d skipped" % (failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
