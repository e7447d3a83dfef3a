"""Helpers for system tests against tests/apiserver: the server and real kubectl."""

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUN = os.path.join(ROOT, "tests", "apiserver", "run")
KUBECTL = shutil.which("kubectl")


class ApiServer:
    """tests/apiserver/run on 127.0.0.1 with a control port for faults."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="k8s-test-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.errlog = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, RUN, "--port", "0", "--kubeconfig-out", self.kubeconfig,
             "--control-port", "0", "--pki-dir", os.path.join(self.dir, "pki")],
            stdout=subprocess.PIPE, stderr=self.errlog, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        info = {}
        deadline = time.time() + 30
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("test apiserver did not start; see " + self.errlog.name)
            line = line.strip()
            if line == "ready":
                break
            k, _, v = line.partition(" ")
            info[k] = v
        self.port = int(info["port"])
        self.control_port = int(info["control-port"])

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
        e = {k: v for k, v in os.environ.items() if not k.startswith("KUBECTL_")}
        e.update(HOME=self.home, KUBECONFIG=self.kubeconfig,
                 KUBECACHEDIR=os.path.join(self.home, ".kube", "cache"))
        return e

    def run_kubectl(self, *args, stdin=None):
        """Real kubectl against this server: the CompletedProcess."""
        return subprocess.run([KUBECTL] + list(args), input=stdin, capture_output=True, text=True,
                              env=self.env(), timeout=60)

    def kubectl(self, *args, stdin=None, check=True):
        p = self.run_kubectl(*args, stdin=stdin)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def get_json(self, *args):
        return json.loads(self.kubectl("get", "-o", "json", *args))

    def control(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=10)
        c.request(method, "/__test" + path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = r.read()
        c.close()
        assert r.status < 300, (method, path, r.status, out[:300])
        return json.loads(out) if out else None

    def fault(self, **spec):
        return self.control("POST", "/faults", spec)

    def clear_faults(self):
        self.control("DELETE", "/faults")


def cluster_manifest(name, endpoint=None, insecure=None, display=None):
    meta = {"name": name}
    ann = {}
    if endpoint is not None:
        ann["loft.sh/derp-endpoint"] = endpoint
    if insecure is not None:
        ann["loft.sh/derp-endpoint-insecure"] = insecure
    if ann:
        meta["annotations"] = ann
    obj = {"apiVersion": "management.loft.sh/v1", "kind": "Cluster", "metadata": meta}
    if display:
        obj["spec"] = {"displayName": display}
    return json.dumps(obj)
