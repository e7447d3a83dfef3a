#!/usr/bin/env python3
"""bench-controller-k8s: derp-controller's Kubernetes mode with many Clusters.

Starts tests/apiserver/run, creates N annotated Clusters through the API, then
starts `derp-controller --kubeconfig` (relay probes off) and measures:

  start:   exec to /readyz 200, and to the first complete GET /derpmap;
  list:    the controller's "listed N Clusters" log line to its "map generation 1"
           line: the time from the LIST having arrived to the map being published;
  memory:  VmHWM and VmRSS of the controller once the map is served;
  change:  a merge PATCH of one Cluster's annotation (timed from sending it:
           the test API server sends the watch event before its own answer) to a
           parked long-poll (?wait=, If-None-Match) being answered
           with the new map, median over --rounds.

Baseline in the same run: the same LIST done by this harness (GET of the
collection through the same API server), so the share of the API server and
of the controller can be told apart. The fan-out to 1000 waiters is the same
map_server code as directory mode: bench-controller measures it.

Usage: python3 bench/bench_controller_k8s.py [--clusters N] [--rounds R] [--bin DIR]
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
import k8stest  # noqa: E402

PATH = "/apis/management.loft.sh/v1/clusters"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tls_context(pki):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, "client.crt"), os.path.join(pki, "client.key"))
    return ctx


def api_request(api, ctx, method, path, body=None, ctype="application/json", conn=None):
    c = conn or http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=120)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": ctype})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    if r.status >= 300:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:200]))
    return data


def create_clusters(api, ctx, n, threads=8):
    def work(lo, hi):
        c = http.client.HTTPSConnection("127.0.0.1", api.port, context=ctx, timeout=120)
        for i in range(lo, hi):
            api_request(api, ctx, "POST", PATH, {
                "apiVersion": "management.loft.sh/v1", "kind": "Cluster",
                "metadata": {"name": "c%05d" % i,
                             "annotations": {"loft.sh/derp-endpoint": "c%05d.example.com" % i}}},
                conn=c)
        c.close()
    step = (n + threads - 1) // threads
    ts = [threading.Thread(target=work, args=(k * step, min(n, (k + 1) * step)))
          for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def get(port, path, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, dict(r.getheaders()), body


def log_time(text, pattern):
    m = re.search(r"^(\S+) \w+ [\w-]+: " + pattern, text, re.M)
    if not m:
        return None
    t = m.group(1)
    h, mi, s = t[11:-1].split(":")
    return int(h) * 3600 + int(mi) * 60 + float(s)


def proc_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    o = ap.parse_args()

    api = k8stest.ApiServer()
    ctrl = None
    try:
        api.kubectl("create", "namespace", "vcluster-platform")
        pki = os.path.join(api.dir, "pki")
        ctx = tls_context(pki)
        t0 = time.time()
        create_clusters(api, ctx, o.clusters)
        print("created %d Clusters in %.1f s" % (o.clusters, time.time() - t0))

        base = []
        for _ in range(3):
            t = time.monotonic()
            body = api_request(api, ctx, "GET", PATH + "?limit=500")
            items = json.loads(body)
            cont = items["metadata"].get("continue")
            while cont:
                items = json.loads(api_request(api, ctx, "GET", PATH + "?limit=500&continue=" + cont))
                cont = items["metadata"].get("continue")
            base.append((time.monotonic() - t) * 1000)

        port = free_port()
        log = tempfile.NamedTemporaryFile(prefix="controller-", suffix=".log", delete=False)
        env = dict(os.environ, POD_NAME="bench", POD_NAMESPACE="vcluster-platform")
        t_exec = time.monotonic()
        ctrl = subprocess.Popen([os.path.join(o.bin, "derp-controller"), "--kubeconfig",
                                 api.kubeconfig, "--central-endpoint", "central.example.com",
                                 "--listen", "127.0.0.1:%d" % port, "--probe-interval", "0"],
                                stdout=log, stderr=log, env=env)
        while True:
            try:
                if get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.002)
        t_ready = (time.monotonic() - t_exec) * 1000
        while True:
            st, hd, body = get(port, "/derpmap")
            if st == 200 and len(json.loads(body)["Regions"]) == o.clusters + 1:
                break
            time.sleep(0.01)
        t_full = (time.monotonic() - t_exec) * 1000
        hwm, rss = proc_kib(ctrl.pid, "VmHWM"), proc_kib(ctrl.pid, "VmRSS")
        with open(log.name) as f:
            text = f.read()
        listed = log_time(text, r"listed \d+ Clusters")
        gen1 = log_time(text, r"map generation 1:")
        list_to_map = (gen1 - listed) * 1000 if listed is not None and gen1 is not None else None

        changes = []
        etag = hd["ETag"]
        for k in range(o.rounds):
            out = {}

            def poll():
                out["r"] = get(port, "/derpmap?wait=60", {"If-None-Match": etag,
                                                         "Accept-Encoding": "gzip"})
                out["t"] = time.monotonic()
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(0.3)
            t_patch = time.monotonic()
            api_request(api, ctx, "PATCH", PATH + "/c00000",
                        {"metadata": {"annotations": {
                            "loft.sh/derp-endpoint": "moved-%d.example.com" % k}}},
                        ctype="application/merge-patch+json")
            th.join(60)
            st, hd2, _ = out["r"]
            assert st == 200 and hd2["ETag"] != etag, (st, hd2)
            etag = hd2["ETag"]
            changes.append((out["t"] - t_patch) * 1000)

        print("\nderp-controller --kubeconfig, %d Clusters (2 cores; medians where repeated)"
              % o.clusters)
        print("| measure | value |")
        print("|---|---:|")
        print("| baseline: the same paginated LIST by this harness | %.0f ms |"
              % statistics.median(base))
        print("| exec to /readyz 200 | %.0f ms |" % t_ready)
        print("| exec to the first complete /derpmap | %.0f ms |" % t_full)
        if list_to_map is not None:
            print("| LIST arrived (log) to map generation 1 (log) | %.0f ms |" % list_to_map)
        print("| peak RSS (VmHWM) / RSS once served | %.1f MiB / %.1f MiB |"
              % (hwm / 1024, rss / 1024))
        print("| PATCH sent to long-poll answered (median of %d; min %.1f, max %.1f) | "
              "%.1f ms |" % (o.rounds, min(changes), max(changes), statistics.median(changes)))
    finally:
        if ctrl is not None and ctrl.poll() is None:
            ctrl.send_signal(signal.SIGTERM)
            ctrl.wait(20)
        api.stop()


if __name__ == "__main__":
    main()
