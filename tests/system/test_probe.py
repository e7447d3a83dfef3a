"""System tests: derp-probe --map and --read-pin against real derp-relay
processes on loopback (and a few fake servers that misbehave)."""

import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402

PIN_RE = re.compile(r"(sha256-raw:[0-9a-f]{64})")


def probe(*args, stdin=None, timeout=60):
    """Runs derp-probe; any sanitizer report fails the test."""
    p = subprocess.run([os.path.join(d.BIN, "derp-probe")] + list(args), capture_output=True,
                       timeout=timeout, text=True, input=stdin)
    for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert word not in p.stderr, p.stderr[-4000:]
    return p


def probe_json(*args, **kw):
    p = probe(*(list(args) + ["-o", "json"]), **kw)
    return p, json.loads(p.stdout)


def logged_pin(relay):
    m = PIN_RE.search(relay.logs())
    assert m, relay.logs()
    return m.group(1)


def node(region_id, name, host, **fields):
    n = {"Name": name, "RegionID": region_id, "HostName": host}
    n.update(fields)
    return n


def write_map(nodes):
    """A tailcfg.DERPMap with one region per node; returns the file's path."""
    regions = {}
    for n in nodes:
        rid = n["RegionID"]
        regions[str(rid)] = {"RegionID": rid, "RegionCode": "r%d" % rid,
                             "RegionName": "Region %d" % rid, "Nodes": [n]}
    path = os.path.join(d.tempfile.mkdtemp(prefix="derp-map-"), "map.json")
    with open(path, "w") as f:
        json.dump({"Regions": regions, "omitDefaultRegions": True}, f)
    return path


def tls_relay():
    return d.Relay("--self-signed", "localhost")


def tls_node(region_id, relay, **fields):
    n = node(region_id, "%da" % region_id, "localhost", IPv4="127.0.0.1", DERPPort=relay.port,
             STUNPort=-1)
    n.update(fields)
    return n


class SilentServer:
    """Accepts TCP connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


class SniServer:
    """A TLS server that records the SNI of each client and closes."""

    def __init__(self, chain, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(chain, key)
        self.names = []
        self.ctx.sni_callback = lambda _sock, name, _ctx: self.names.append(name)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(c, server_side=True) as t:
                    t.settimeout(5)
                    t.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                c.close()

    def close(self):
        self.sock.close()


def test_map_with_plain_and_pinned_relays_passes():
    plain = d.Relay(stun=True)
    secure = tls_relay()
    try:
        pin = logged_pin(secure)
        path = write_map([
            node(900, "900a", "127.0.0.1", DERPPort=plain.port, STUNPort=plain.stun_port),
            tls_node(901, secure, CertName=pin),
        ])
        p, out = probe_json("--map", path, "--plain-http", "900a")
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert out["ok"] is True and out["passed"] == 2 and out["failed"] == 0, out
        a, b = out["nodes"]
        assert (a["region_id"], a["node"], a["tls"]) == (900, "900a", "off"), a
        assert a["derp"] == "ok" and a["rtt_ms"] >= 0 and a["stage"] is None, a
        assert a["stun"] == "ok" and a["stun_mapped"].startswith("127.0.0.1:"), a
        assert a["url"] == "http://127.0.0.1:%d/derp" % plain.port, a
        assert (b["region_id"], b["tls"], b["ok"]) == (901, "pin", True), b
        assert b["cert_pin"] == pin and b["stun"] == "skipped", b
        assert b["url"] == "https://localhost:%d/derp" % secure.port and b["dial"] == "127.0.0.1"
        t = probe("--map", path, "--plain-http", "900a")
        assert t.returncode == 0, t.stderr
        lines = t.stdout.splitlines()
        assert lines[0].split() == ["REGION", "CODE", "NODE", "HOST", "TLS", "DERP", "RTT", "STUN",
                                    "RESULT"], t.stdout
        assert len(lines) == 3 and all(line.split()[-1] == "ok" for line in lines[1:]), t.stdout
    finally:
        plain.stop()
        secure.stop()


def test_silent_relay_fails_at_timeout():
    s = SilentServer()
    try:
        path = write_map([
            node(901, "901a", "127.0.0.1", DERPPort=s.port, STUNPort=-1),
            node(902, "902a", "127.0.0.1", DERPPort=s.port, STUNPort=-1, InsecureForTests=True),
        ])
        p, out = probe_json("--map", path, "--plain-http", "901a", "--timeout", "1s", timeout=30)
        assert p.returncode == 1, (p.stdout, p.stderr)
        plain, tls = out["nodes"]
        assert plain["stage"] == "timeout" and plain["error"].startswith("timeout:"), plain
        assert tls["stage"] == "timeout" and "tls" in tls["error"], tls
        assert out["ok"] is False and out["failed"] == 2, out
    finally:
        s.close()


def test_wrong_pin_fails_at_tls():
    r = tls_relay()
    try:
        path = write_map([tls_node(901, r, CertName="sha256-raw:" + "0" * 64)])
        p, out = probe_json("--map", path)
        assert p.returncode == 1, p.stderr
        n = out["nodes"][0]
        assert n["stage"] == "tls" and "pin mismatch" in n["error"], n
        assert n["tls"] == "pin" and n["derp"] == "failed", n
        t = probe("--map", path)
        assert t.returncode == 1 and "tls:" in t.stdout, t.stdout
    finally:
        r.stop()


def test_insecure_for_tests_and_verification():
    r = tls_relay()
    try:
        path = write_map([tls_node(901, r, InsecureForTests=True), tls_node(902, r)])
        p, out = probe_json("--map", path)
        insecure, verified = out["nodes"]
        assert insecure["ok"] and insecure["tls"] == "insecure", insecure
        assert insecure["cert_pin"] == logged_pin(r), insecure
        # Without InsecureForTests or a pin, a self-signed certificate is refused.
        assert verified["stage"] == "tls" and verified["tls"] == "ca", verified
        assert p.returncode == 1
        only = probe("--map", path, "--region", "901")
        assert only.returncode == 0 and "902a" not in only.stdout, only.stdout
        only = probe("--map", path, "--region", "r902")
        assert only.returncode == 1 and "901a" not in only.stdout, only.stdout
    finally:
        r.stop()


def make_ca_and_leaf(directory, host):
    """A CA and a leaf for host (DNS SAN only) signed by it, with the openssl
    CLI; returns (chain, key, ca) paths."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=probe test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=" + host)
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % host)
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    with open(os.path.join(directory, "chain.pem"), "w") as f:
        f.write(open(os.path.join(directory, "leaf.pem")).read())
        f.write(open(os.path.join(directory, "ca.pem")).read())
    return [os.path.join(directory, n) for n in ("chain.pem", "leaf.key", "ca.pem")]


def test_cert_name_is_verified_while_host_name_is_dialled():
    # The relay's certificate names neither 127.0.0.1 nor localhost: only CertName.
    chain, key, ca = make_ca_and_leaf(d.tempfile.mkdtemp(), "derp-a.probe.test")
    r = d.Relay("--tls-cert", chain, "--tls-key", key)
    try:
        path = write_map([
            node(901, "901a", "127.0.0.1", DERPPort=r.port, STUNPort=-1,
                 CertName="derp-a.probe.test"),
            tls_node(902, r, CertName="derp-a.probe.test"),
            tls_node(903, r, CertName="derp-b.probe.test"),
            tls_node(904, r),
        ])
        p, out = probe_json("--map", path, "--ca-file", ca)
        assert p.returncode == 1, (p.stdout, p.stderr)
        by_ip, by_name, wrong, none = out["nodes"]
        for n in (by_ip, by_name):
            assert n["ok"] and n["tls"] == "ca" and n["derp"] == "ok", n
        assert by_ip["url"] == "https://127.0.0.1:%d/derp" % r.port, by_ip
        assert by_name["url"] == "https://localhost:%d/derp" % r.port, by_name
        assert wrong["stage"] == "tls" and wrong["derp"] == "failed", wrong
        assert "derp-b.probe.test" in wrong["error"], wrong
        assert "hostname mismatch" in wrong["error"], wrong
        # Without CertName, HostName is what must match, and it does not.
        assert none["stage"] == "tls" and "hostname mismatch" in none["error"], none
        assert out["passed"] == 2 and out["failed"] == 2, out
        # Not trusting the CA fails even the right name.
        p, out = probe_json("--map", path, "--region", "901")
        assert p.returncode == 1 and out["nodes"][0]["stage"] == "tls", out
    finally:
        r.stop()
    # SNI is HostName, not CertName (derphttp's tlsClient): a TLS server that
    # records it, then hangs up, so the probe gets past TLS and fails later.
    sni = SniServer(chain, key)
    try:
        path = write_map([node(901, "901a", "localhost", IPv4="127.0.0.1", DERPPort=sni.port,
                               STUNPort=-1, CertName="derp-a.probe.test")])
        p, out = probe_json("--map", path, "--ca-file", ca, "--timeout", "2s")
        n = out["nodes"][0]
        assert p.returncode == 1 and n["stage"] not in ("tls", "tcp"), n
        assert sni.names == ["localhost"], sni.names
    finally:
        sni.close()


class _MapHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        if self.path != "/derpmap":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_map_from_url_and_stdin():
    r = d.Relay()
    path = write_map([node(900, "900a", "127.0.0.1", DERPPort=r.port, STUNPort=-1)])
    with open(path, "rb") as f:
        _MapHandler.body = f.read()
    srv = http.server.HTTPServer(("127.0.0.1", 0), _MapHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/derpmap" % srv.server_address[1]
        p, out = probe_json("--map", url, "--plain-http", "all")
        assert p.returncode == 0 and out["map"] == url and out["passed"] == 1, (p.stdout, p.stderr)
        missing = probe("--map", url + "/nope", "--plain-http", "all")
        assert missing.returncode == 1 and "404" in missing.stderr, missing.stderr
        s = probe("--map", "-", "--plain-http", "all", stdin=_MapHandler.body.decode())
        assert s.returncode == 0, s.stderr
    finally:
        srv.shutdown()
        r.stop()


def test_bad_maps_exit_1_with_a_reason():
    big = {"Regions": {"1": {"Nodes": [{"HostName": "h"}] * 16385}}}
    cases = [
        ("not json", "not JSON"),
        ("[]", "want a JSON object"),
        ('{"Regions": []}', "Regions: want an object"),
        ('{"Regions": {"x": {}}}', "not a region ID"),
        ('{"Regions": {"1": {"Nodes": [{"DERPPort": "443"}]}}}', "DERPPort: want an integer"),
        ('{"Regions": {"1": {"Nodes": [{"STUNPort": 99999}]}}}', "STUNPort: want an integer"),
        ('{"Regions": {"1": {"Nodes": [{"InsecureForTests": 1}]}}}', "want true or false"),
        ('{"Regions": {"1": {"Nodes": [{"HostName": "%s"}]}}}' % ("a" * 300), "longer than"),
        (json.dumps(big), "more than 16384 nodes"),
        ("{}", "no nodes to probe"),
        ("[" * 100000, "not JSON"),
    ]
    for text, why in cases:
        p = probe("--map", "-", stdin=text)
        assert p.returncode == 1, (text[:80], p.returncode, p.stderr)
        assert "derp-map:" in p.stderr and why in p.stderr, (text[:80], p.stderr)
        p, out = probe_json("--map", "-", stdin=text)
        assert p.returncode == 1 and out["ok"] is False and why in out["error"], out
    missing = probe("--map", "/nonexistent/map.json")
    assert missing.returncode == 1 and "cannot open" in missing.stderr, missing.stderr
    # Usage errors are 2.
    assert probe("--map", "x.json", "-o", "yaml").returncode == 2
    assert probe("--map", "x.json", "http://127.0.0.1/derp").returncode == 2
    assert probe("--map", "x.json", "--pin", "sha256-raw:" + "0" * 64).returncode == 2
    assert probe("--map", "x.json", "--timeout", "soon").returncode == 2
    assert probe("--plain-http", "all", "http://127.0.0.1/derp").returncode == 2
    assert probe().returncode == 2
    h = probe("--help")
    assert h.returncode == 0 and "--map" in h.stdout and "--read-pin" in h.stdout, h.stdout


def test_node_that_cannot_be_dialled_fails_alone():
    r = d.Relay()
    try:
        path = write_map([
            node(900, "900a", "127.0.0.1", DERPPort=r.port, STUNPort=-1),
            node(901, "901a", "x.example", IPv4="none", IPv6="none", STUNPort=-1),
            node(902, "902a", "bad/host", STUNPort=-1),
        ])
        p, out = probe_json("--map", path, "--plain-http", "900a")
        assert p.returncode == 1
        ok, none, bad = out["nodes"]
        assert ok["ok"], ok
        assert none["stage"] == "url" and "nothing to dial" in none["error"], none
        assert bad["stage"] == "url" and "HostName" in bad["error"], bad
    finally:
        r.stop()


def test_stun_failure_is_reported():
    r = d.Relay()
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))  # bound, never answers
        path = write_map([node(900, "900a", "127.0.0.1", DERPPort=r.port,
                               STUNPort=udp.getsockname()[1])])
        p, out = probe_json("--map", path, "--plain-http", "all", "--timeout", "1s")
        n = out["nodes"][0]
        assert p.returncode == 1 and n["derp"] == "ok" and n["stun"] == "failed", n
        assert n["stage"] == "stun" and n["error"].startswith("stun:"), n
        p, out = probe_json("--map", path, "--plain-http", "all", "--no-stun")
        assert p.returncode == 0 and out["nodes"][0]["stun"] == "skipped", out
        udp.close()
    finally:
        r.stop()


def test_read_pin_matches_the_relay_log():
    r = tls_relay()
    try:
        pin = logged_pin(r)
        for url in ("https://localhost:%d" % r.port, "localhost:%d" % r.port,
                    "https://127.0.0.1:%d/derp" % r.port):
            p = probe("--read-pin", url)
            assert p.returncode == 0 and p.stdout.strip() == pin, (url, p.stdout, p.stderr)
        plain = probe("--read-pin", "http://127.0.0.1:%d" % r.port)
        assert plain.returncode == 1 and "url:" in plain.stderr, plain.stderr
    finally:
        r.stop()
    gone = probe("--read-pin", "localhost:%d" % r.port)
    assert gone.returncode == 1 and "tcp:" in gone.stderr, gone.stderr


def test_new_certificate_new_pin():
    r = tls_relay()
    port = r.port
    try:
        first = logged_pin(r)
        assert probe("--read-pin", "localhost:%d" % port).stdout.strip() == first
        path = write_map([tls_node(901, r, CertName=first)])
        assert probe("--map", path).returncode == 0
    finally:
        r.stop()
    r = d.Relay("--self-signed", "localhost", port=port)
    try:
        second = logged_pin(r)
        assert second != first
        assert probe("--read-pin", "localhost:%d" % port).stdout.strip() == second
        # The map still pins the old certificate: the probe says so.
        p, out = probe_json("--map", path)
        assert p.returncode == 1 and out["nodes"][0]["stage"] == "tls", out
        assert out["nodes"][0]["error"].count("sha256-raw:") == 2, out
    finally:
        r.stop()


def test_many_nodes_probed_concurrently():
    r = d.Relay()
    try:
        nodes = [node(900 + i, "%da" % (900 + i), "127.0.0.1", DERPPort=r.port, STUNPort=-1)
                 for i in range(40)]
        path = write_map(nodes)
        p, out = probe_json("--map", path, "--plain-http", "all", "--concurrency", "8")
        assert p.returncode == 0 and out["passed"] == 40, (p.stdout[-2000:], p.stderr)
        assert [n["region_id"] for n in out["nodes"]] == list(range(900, 940))
    finally:
        r.stop()


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
