"""System tests: derp-controller in directory mode, on loopback."""

import gzip
import http.client
import re
import socket
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402

# tailcfg.DERPMap / DERPRegion / DERPNode field names: Tailscale's decoder
# (DisallowUnknownFields) accepts nothing else.
MAP_KEYS = {"HomeParams", "Regions", "omitDefaultRegions"}
REGION_KEYS = {"RegionID", "RegionCode", "RegionName", "Latitude", "Longitude", "Avoid",
               "NoMeasureNoHome", "Nodes"}
NODE_KEYS = {"Name", "RegionID", "HostName", "CertName", "IPv4", "IPv6", "STUNPort", "STUNOnly",
             "DERPPort", "InsecureForTests", "STUNTestIP", "CanPort80"}


def cluster_yaml(name, endpoint=None, insecure=None, display=None):
    lines = ["apiVersion: management.loft.sh/v1", "kind: Cluster", "metadata:",
             "  name: %s" % name]
    ann = {}
    if endpoint is not None:
        ann["loft.sh/derp-endpoint"] = endpoint
    if insecure is not None:
        ann["loft.sh/derp-endpoint-insecure"] = insecure
    if ann:
        lines.append("  annotations:")
        lines += ['    %s: "%s"' % kv for kv in ann.items()]
    if display:
        lines += ["spec:", "  displayName: %s" % display]
    return "\n".join(lines) + "\n"


class ControllerProcess:
    """A derp-controller on 127.0.0.1 with its stderr in a file; args after --listen."""

    def __init__(self, args, env=None, ready_timeout=10):
        self.port = d.free_port()
        self.log_path = os.path.join(tempfile.mkdtemp(), "controller.log")
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [os.path.join(d.BIN, "derp-controller"), "--listen", "127.0.0.1:%d" % self.port] +
            list(args), stdout=self.log, stderr=self.log, env=e)
        try:
            self.wait(lambda: self.get("/readyz")[0] == 200, "ready", ready_timeout)
        except BaseException:
            if self.proc.poll() is None:  # never ready: do not leave it running
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            raise

    def wait(self, cond, what, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("derp-controller exited: " + self.logs()[-3000:])
            try:
                if cond():
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise AssertionError("never %s:\n%s" % (what, self.logs()[-3000:]))

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def get(self, path, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, dict(r.getheaders()), body

    def derpmap(self):
        status, headers, body = self.get("/derpmap")
        assert status == 200, status
        m = json.loads(body)
        check_types(m)
        return m, headers["ETag"], body

    def wait_map(self, cond, timeout=5):
        box = {}

        def matches():
            box["m"] = self.derpmap()[0]
            return cond(box["m"])
        self.wait(matches, "a map that matches", timeout)
        return box["m"]

    def metrics(self):
        out = {}
        for line in self.get("/metrics")[2].decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self, sig=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.log.close()
        text = self.logs()
        if "AddressSanitizer" in text or "runtime error:" in text or "LeakSanitizer" in text:
            raise AssertionError("sanitizer report:\n" + text[-4000:])
        assert self.proc.returncode == 0, (self.proc.returncode, text[-2000:])


class Controller(ControllerProcess):
    """Directory mode: --clusters-dir DIR --state-dir DIR."""

    def __init__(self, clusters_dir=None, state_dir=None, central="platform.example.com",
                 env=None, extra=()):
        self.dir = clusters_dir or tempfile.mkdtemp(prefix="clusters-")
        self.state = state_dir or tempfile.mkdtemp(prefix="state-")
        super().__init__(["--clusters-dir", self.dir, "--central-endpoint", central,
                          "--state-dir", self.state] + list(extra), env=env)

    def write(self, name, text):
        tmp = os.path.join(self.dir, "." + name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(self.dir, name))  # an editor's atomic save


def check_types(m):
    assert set(m) <= MAP_KEYS, m.keys()
    assert m["omitDefaultRegions"] is True
    for rid, r in m["Regions"].items():
        assert set(r) <= REGION_KEYS and str(r["RegionID"]) == rid, r
        for k in ("RegionID", "RegionCode", "RegionName", "Nodes"):
            assert k in r, (k, r)
        for n in r["Nodes"]:
            assert set(n) <= NODE_KEYS, n
            assert n["Name"] == "%sa" % rid and n["RegionID"] == r["RegionID"]
            assert n["HostName"] and "[" not in n["HostName"]


def test_map_matches_the_design_example():
    c = Controller()
    try:
        m, etag, _ = c.derpmap()
        assert m == {"Regions": {"900": {"RegionID": 900, "RegionCode": "central",
                                         "RegionName": "Central",
                                         "Nodes": [{"Name": "900a", "RegionID": 900,
                                                    "HostName": "platform.example.com"}]}},
                     "omitDefaultRegions": True}, m
        assert etag.startswith('"') and etag.endswith('"')
        c.write("eu.yaml", cluster_yaml("eu-west-cluster", "dev.internal.example.com", "true"))
        m = c.wait_map(lambda m: "901" in m["Regions"])
        assert m["Regions"]["901"] == {
            "RegionID": 901, "RegionCode": "eu-west-cluster", "RegionName": "eu-west-cluster",
            "Nodes": [{"Name": "901a", "RegionID": 901, "HostName": "dev.internal.example.com",
                       "STUNPort": -1, "InsecureForTests": True}]}, m
        assert list(m["Regions"]) == ["900", "901"]
    finally:
        c.stop()


def test_endpoint_forms_and_display_name():
    c = Controller(central="10.0.0.1:8443")
    try:
        c.write("a.yaml", cluster_yaml("v4", "192.0.2.7:8443") + "---\n" +
                cluster_yaml("v6", "[2001:db8::5]:443", display="Six") + "---\n" +
                cluster_yaml("bare6", "2001:db8::6") + "---\n" +
                cluster_yaml("named", "Relay.Example.com:444", insecure="false"))
        m = c.wait_map(lambda m: len(m["Regions"]) == 5)
        nodes = {r["RegionCode"]: r["Nodes"][0] for r in m["Regions"].values()}
        assert nodes["central"] == {"Name": "900a", "RegionID": 900, "HostName": "10.0.0.1",
                                    "IPv4": "10.0.0.1", "DERPPort": 8443}
        assert nodes["v4"]["IPv4"] == "192.0.2.7" and nodes["v4"]["DERPPort"] == 8443
        assert "IPv6" not in nodes["v4"]
        assert nodes["v6"]["HostName"] == "2001:db8::5" and nodes["v6"]["IPv6"] == "2001:db8::5"
        assert "DERPPort" not in nodes["v6"] and "IPv4" not in nodes["v6"]
        assert nodes["bare6"]["IPv6"] == "2001:db8::6"
        assert nodes["named"]["HostName"] == "relay.example.com" and nodes["named"]["DERPPort"] == 444
        assert "InsecureForTests" not in nodes["named"]
        regions = {r["RegionCode"]: r for r in m["Regions"].values()}
        assert regions["v6"]["RegionName"] == "Six"
    finally:
        c.stop()


def test_bad_input_never_breaks_the_map():
    c = Controller()
    try:
        c.write("good.yaml", cluster_yaml("good", "good.example.com"))
        bad = [("spaces", "a b.example.com"), ("scheme", "https://x.example.com"),
               ("path", "x.example.com/derp"), ("port0", "x.example.com:0"),
               ("bigport", "x.example.com:70000"), ("empty", ""), ("label", "-x.example.com"),
               ("long", "a" * 250 + ".com")]
        text = "---\n".join(cluster_yaml(n, e) for n, e in bad)
        text += "---\n" + cluster_yaml("insecure-yes", "ok.example.com", insecure="yes")
        text += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nope\n"
        c.write("bad.yaml", text)
        c.write("broken.yaml", "this: [is not: yaml\n")
        time.sleep(0.5)
        m = c.wait_map(lambda m: len(m["Regions"]) == 2)
        assert {r["RegionCode"] for r in m["Regions"].values()} == {"central", "good"}
        logs = c.logs()
        for name, _ in bad + [("insecure-yes", None)]:
            assert ("cluster %s " % name) in logs, (name, logs)
        assert "broken.yaml" in logs and "bad.yaml" in logs
        warn = [ln for ln in logs.splitlines() if " warn " in ln]
        assert all("derp" in ln for ln in warn)
        # (relay probes of these made-up hosts warn too, on their own schedule)
        map_warns = lambda: [ln for ln in c.logs().splitlines()  # noqa: E731
                             if " warn " in ln and "derp-probe" not in ln]
        count = len(map_warns())
        c.write("good.yaml", cluster_yaml("good", "good2.example.com"))  # a rescan
        c.wait_map(lambda m: any(r["Nodes"][0]["HostName"] == "good2.example.com"
                                 for r in m["Regions"].values()))
        assert len(map_warns()) == count  # no flood
        c.write("bad.yaml", cluster_yaml("spaces", "fixed.example.com"))
        c.wait_map(lambda m: len(m["Regions"]) == 3)
        assert "cluster spaces is valid again" in c.logs()
    finally:
        c.stop()


def test_duplicate_cluster_first_file_wins():
    c = Controller()
    try:
        c.write("a.yaml", cluster_yaml("same", "first.example.com"))
        c.write("b.yaml", cluster_yaml("same", "second.example.com"))
        time.sleep(0.3)
        m = c.wait_map(lambda m: "901" in m["Regions"])
        assert m["Regions"]["901"]["Nodes"][0]["HostName"] == "first.example.com"
        assert len(m["Regions"]) == 2
        assert "file b.yaml: cluster same is already defined in a.yaml" in c.logs(), c.logs()
    finally:
        c.stop()


def test_long_poll_answers_on_change_and_times_out():
    c = Controller()
    try:
        _, etag, _ = c.derpmap()
        status, headers, _ = c.get("/derpmap", {"If-None-Match": etag})
        assert status == 304
        status, _, _ = c.get("/derpmap?wait=1", {"If-None-Match": etag})
        assert status == 304
        results = []

        def waiter():
            results.append(c.get("/derpmap?wait=30", {"If-None-Match": etag}, timeout=40))
        threads = [threading.Thread(target=waiter) for _ in range(20)]
        for t in threads:
            t.start()
        deadline = time.time() + 5
        while c.get("/metrics")[2].decode().find("derp_map_long_poll_waiters 20") < 0:
            assert time.time() < deadline, c.get("/metrics")[2]
            time.sleep(0.05)
        t0 = time.time()
        c.write("x.yaml", cluster_yaml("x", "x.example.com"))
        for t in threads:
            t.join(40)
        assert time.time() - t0 < 10
        assert len(results) == 20 and all(r[0] == 200 for r in results)
        assert all(json.loads(r[2])["Regions"]["901"]["RegionCode"] == "x" for r in results)
        assert all(r[1]["ETag"] != etag for r in results)
    finally:
        c.stop()


def test_region_ids_are_stable():
    c = Controller()
    state, cdir = c.state, c.dir
    try:
        c.write("a.yaml", cluster_yaml("alpha", "a.example.com"))
        c.wait_map(lambda m: "901" in m["Regions"])
        c.write("b.yaml", cluster_yaml("beta", "b.example.com"))
        c.wait_map(lambda m: "902" in m["Regions"])
        os.unlink(os.path.join(cdir, "a.yaml"))
        m = c.wait_map(lambda m: "901" not in m["Regions"])
        assert m["Regions"]["902"]["RegionCode"] == "beta"
        c.write("c.yaml", cluster_yaml("gamma", "c.example.com"))
        m = c.wait_map(lambda m: len(m["Regions"]) == 3)
        assert m["Regions"]["903"]["RegionCode"] == "gamma"  # 901 stays alpha's
    finally:
        c.stop()
    c = Controller(clusters_dir=cdir, state_dir=state)
    try:
        c.write("a.yaml", cluster_yaml("alpha", "a.example.com"))
        m = c.wait_map(lambda m: len(m["Regions"]) == 4)
        codes = {rid: r["RegionCode"] for rid, r in m["Regions"].items()}
        assert codes == {"900": "central", "901": "alpha", "902": "beta", "903": "gamma"}, codes
    finally:
        c.stop()


def test_gzip_for_clients_that_ask():
    c = Controller()
    try:
        for i in range(40):
            c.write("c%d.yaml" % i, cluster_yaml("cluster-%02d" % i, "relay-%02d.example.com" % i))
        c.wait_map(lambda m: len(m["Regions"]) == 41)
        _, etag, plain = c.derpmap()
        status, headers, body = c.get("/derpmap", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("Content-Encoding") == "gzip", headers
        assert headers["ETag"] == etag and "Accept-Encoding" in headers.get("Vary", "")
        assert gzip.decompress(body) == plain and len(body) < len(plain) / 3, (len(body), len(plain))
        status, headers, body = c.get("/derpmap")
        assert "Content-Encoding" not in headers and body == plain
        # A parked gzip long-poll is woken with the new map, compressed.
        out = {}

        def poll():
            out["r"] = c.get("/derpmap?wait=20", {"If-None-Match": etag, "Accept-Encoding": "gzip"},
                             timeout=30)
        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.3)
        c.write("c0.yaml", cluster_yaml("cluster-00", "moved.example.com"))
        t.join(30)
        status, headers, body = out["r"]
        assert status == 200 and headers.get("Content-Encoding") == "gzip"
        assert b"moved.example.com" in gzip.decompress(body)
    finally:
        c.stop()


def region_up(c, name, rid):
    return c.metrics().get('derp_region_up{region="%s",region_id="%d"}' % (name, rid))


class SilentServer:
    """Accepts TCP connections and never answers: a hung relay."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for x in self.conns:
            x.close()


def wait_until(cond, what, c, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("never %s:\n%s" % (what, c.logs()[-3000:]))


def test_relays_probed_end_to_end_up_down_and_healthy_again():
    relay = d.Relay()
    silent = SilentServer()
    closed_port = d.free_port()
    c = later = None
    try:
        c = Controller(extra=["--probe-interval", "300ms", "--probe-timeout", "1s",
                              "--probe-plain-http"])
        c.write("a.yaml", cluster_yaml("alive", "127.0.0.1:%d" % relay.port) + "---\n" +
                cluster_yaml("hung", "127.0.0.1:%d" % silent.port) + "---\n" +
                cluster_yaml("gone", "127.0.0.1:%d" % closed_port))
        regs = {r["RegionCode"]: r["RegionID"] for r in
                c.wait_map(lambda m: len(m["Regions"]) == 4)["Regions"].values()}
        wait_until(lambda: region_up(c, "alive", regs["alive"]) == 1, "alive up", c)
        wait_until(lambda: region_up(c, "hung", regs["hung"]) == 0, "hung down", c)
        wait_until(lambda: region_up(c, "gone", regs["gone"]) == 0, "gone down", c)
        m = c.metrics()
        assert m['derp_probe_failures_total{stage="timeout"}'] >= 1, m
        assert m['derp_probe_failures_total{stage="tcp"}'] >= 1, m
        assert m["derp_probe_rtt_seconds_count"] >= 1 and m["derp_probes_total"] >= 3
        assert m['derp_region_probe_rtt_seconds{region="alive",region_id="%d"}' % regs["alive"]] > 0
        logs = c.logs()
        assert "relay of cluster hung" in logs and "is unreachable: timeout" in logs, logs[-2000:]
        assert "relay of cluster gone" in logs and "unreachable: tcp" in logs, logs[-2000:]
        # The map does not depend on probes: a down relay stays in it.
        assert len(c.derpmap()[0]["Regions"]) == 4
        later = d.Relay(port=closed_port)
        wait_until(lambda: region_up(c, "gone", regs["gone"]) == 1, "gone healthy again", c)
        assert "relay of cluster gone" in c.logs() and "healthy again" in c.logs()
    finally:
        for x in (c, relay, later):
            if x is not None:
                x.stop()
        silent.close()


PIN_RE = re.compile(r"sha256-raw:[0-9a-f]{64}")


def test_insecure_endpoint_published_with_the_relays_pin():
    relay = d.Relay("--self-signed", "localhost")
    port = relay.port
    c = c2 = None
    try:
        c = Controller(extra=["--probe-interval", "300ms", "--probe-timeout", "2s"])
        c2 = Controller(extra=["--probe-interval", "300ms", "--probe-timeout", "2s",
                               "--no-cert-pins"], clusters_dir=c.dir)
        pin = PIN_RE.search(relay.logs()).group(0)
        c.write("s.yaml", cluster_yaml("selfsigned", "127.0.0.1:%d" % port, insecure="true"))
        m = c.wait_map(lambda m: any(n.get("CertName") for r in m["Regions"].values()
                                     for n in r["Nodes"]))
        node = [r for r in m["Regions"].values() if r["RegionCode"] == "selfsigned"][0]["Nodes"][0]
        assert node["CertName"] == pin and "InsecureForTests" not in node, node
        assert "publishing it as CertName" in c.logs()
        # --no-cert-pins keeps InsecureForTests.
        m2 = c2.wait_map(lambda m: len(m["Regions"]) == 2)
        time.sleep(1)
        node2 = c2.derpmap()[0]["Regions"][str(node["RegionID"])]["Nodes"][0]
        assert node2.get("InsecureForTests") is True and "CertName" not in node2, node2
        # The relay comes back with another certificate: the map follows.
        relay.stop()
        relay = d.Relay("--self-signed", "localhost", port=port)
        pin2 = PIN_RE.search(relay.logs()).group(0)
        assert pin2 != pin
        c.wait_map(lambda m: m["Regions"][str(node["RegionID"])]["Nodes"][0].get("CertName") == pin2,
                   timeout=15)
        assert "changed its certificate" in c.logs()
    finally:
        for x in (c, c2, relay):
            if x is not None:
                x.stop()


def test_health_ready_metrics_and_http_errors():
    c = Controller()
    try:
        assert c.get("/healthz")[0] == 200
        assert c.get("/readyz")[0] == 200
        metrics = c.get("/metrics")[2].decode()
        for name in ("derp_map_regions", "derp_map_generation", "derp_map_invalid_clusters",
                     "derp_map_long_poll_waiters"):
            assert name in metrics, metrics
        assert c.get("/nope")[0] == 404
        r = c.get("/derpmap", timeout=5)
        assert r[1]["Content-Type"] == "application/json"
        s = d.socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
        s.close()
        # Keep-alive and pipelining: two requests, two answers, one connection.
        s = d.socket.create_connection(("127.0.0.1", c.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            data += s.recv(4096)
        s.close()
    finally:
        c.stop()


def test_relay_supervised_restarted_and_drained():
    relay_port = d.free_port()
    c = Controller(central="127.0.0.1:%d" % relay_port,
                   extra=["--relay", "--", "--listen", "127.0.0.1:%d" % relay_port,
                          "--stun-listen", "off", "--drain-ms", "300"])
    try:
        deadline = time.time() + 10
        while True:
            try:
                a = d.Client(relay_port)
                break
            except OSError:
                assert time.time() < deadline, c.logs()
                time.sleep(0.1)
        b = d.Client(relay_port)
        a.send(b.pub, b"through the supervised relay")
        assert b.recv({d.F_RECV})[1][32:] == b"through the supervised relay"
        pid = int([ln for ln in c.logs().splitlines() if "started" in ln][-1].split("pid ")[1]
                  .rstrip(")"))
        os.kill(pid, 9)
        deadline = time.time() + 10
        while "restarts_total 1" not in c.get("/metrics")[2].decode():
            assert time.time() < deadline, c.logs()
            time.sleep(0.1)
        deadline = time.time() + 10
        while True:
            try:
                a = d.Client(relay_port)
                break
            except OSError:
                assert time.time() < deadline, c.logs()
                time.sleep(0.1)
        assert "derp_relay_up 1" in c.get("/metrics")[2].decode()
        c.proc.terminate()
        t, p = a.recv({d.F_RESTARTING})  # the relay drains before the controller exits
        assert c.proc.wait(10) == 0
        logs = c.logs()
        assert "forwarding SIGTERM" in logs and "exited with status 0" in logs, logs
    finally:
        c.stop()


def test_relay_flags_pass_through_without_separator():
    relay_port = d.free_port()
    key = os.path.join(tempfile.mkdtemp(), "relay.key")
    c = Controller(central="127.0.0.1:%d" % relay_port,
                   extra=["--relay", "--relay-listen", "127.0.0.1:%d" % relay_port,
                          "--stun-listen", "off", "--key-file", key, "--drain-ms=200"])
    try:
        deadline = time.time() + 10
        while not os.path.exists(key):
            assert time.time() < deadline, c.logs()
            time.sleep(0.05)
        while True:
            try:
                a = d.Client(relay_port)
                break
            except OSError:
                assert time.time() < deadline, c.logs()
                time.sleep(0.1)
        a.close()
        assert "draining" not in c.logs()
    finally:
        c.stop()
    bad = subprocess.run([os.path.join(d.BIN, "derp-controller"), "--clusters-dir", c.dir,
                          "--central-endpoint", "x.example.com", "--stun-listen", "off"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "--stun-listen" in bad.stderr, bad.stderr


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
