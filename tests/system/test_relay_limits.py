"""System tests for a relay fit for the open internet (issue 8): client
admission (--verify-client-url, --allowed-keys-file), per-client byte rates,
accept-rate and connection caps, certificate reloads and the meta certificate.

Only Python's standard library; the relay is the real binary from DC_BIN.
Timing is never asserted tightly: rate checks bound delivered bytes by what
the token bucket can have allowed in the time the test itself measured."""

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402

DERPCLIENT = os.environ.get("DC_TAILSCALE_DERPCLIENT", "/opt/ts-build/bin/derpclient")
MIN_BURST = 5 + 32 + 65536  # DERP_RATE_MIN_BURST: one largest SendPacket frame


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def short_string(pub):
    """Tailscale's key.NodePublic.ShortString: "[" + base64(key)[:5] + "]"."""
    import base64
    return "[" + base64.b64encode(pub).decode()[:5] + "]"


def nodekey(pub):
    return "nodekey:" + pub.hex()


def try_login(port, key=None, info=None, timeout=10):
    """Logs in; returns the Client when ServerInfo came, None when the server
    closed the connection instead."""
    c = d.Client(port, key=key, login=False, timeout=timeout)
    info = info if info is not None else {"version": 2}
    msg = json.dumps(info).encode()
    c.sock.sendall(d.frame(d.F_CLIENT_INFO, c.pub + d.box_seal(msg, c.server_pub, c.priv)))
    try:
        t, p = c.recv(timeout=timeout)
    except (EOFError, ConnectionResetError):
        c.close()
        return None
    assert t == d.F_SERVER_INFO, t
    c.server_info = json.loads(d.box_open(p, c.server_pub, c.priv))
    return c


def metrics_from(port, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    out = {}
    for line in data.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class VerifyServer:
    """A tiny admission controller on 127.0.0.1: records every request and
    answers with policy(request) -> (status, body bytes, delay seconds)."""

    def __init__(self, policy):
        self.requests = []
        self.policy = policy
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = json.loads(body)
                req["_content_type"] = self.headers.get("Content-Type")
                outer.requests.append(req)
                status, answer, delay = outer.policy(req)
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/verify" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def allow_keys(keys, delay=0):
    def policy(req):
        ok = req["NodePublic"] in {nodekey(k) for k in keys}
        return 200, json.dumps({"Allow": ok}).encode(), delay
    return policy


# ---- admission: --verify-client-url ----

def test_verify_url_allow_deny_cache_and_mesh_exempt():
    good, bad = d.keypair(), d.keypair()
    v = VerifyServer(allow_keys([good[0]]))
    mesh_file = os.path.join(d.tempfile.mkdtemp(), "mesh.key")
    mesh = os.urandom(32).hex()
    with open(mesh_file, "w") as f:
        f.write(mesh + "\n")
    r = d.Relay("--verify-client-url", v.url, "--mesh-key-file", mesh_file)
    try:
        a = try_login(r.port, key=good)
        assert a is not None and a.server_info == {"version": 2}, "allowed client not admitted"
        req = v.requests[0]
        assert req == {"NodePublic": nodekey(good[0]), "Source": "127.0.0.1",
                       "_content_type": "application/json"}, req
        assert try_login(r.port, key=bad) is None, "denied client got in"
        logs = r.logs()
        assert re.search(r"derp.*key=%s %s refused: admission controller said Allow false"
                         % (bad[0][:4].hex(), re.escape(short_string(bad[0]))), logs), logs
        # Cached for 30 s: the same keys again ask nothing new.
        n = len(v.requests)
        a2 = try_login(r.port, key=good)
        assert a2 is not None and try_login(r.port, key=bad) is None
        assert len(v.requests) == n, v.requests
        # A mesh peer is never asked about (the controller would say no).
        m = try_login(r.port, info={"version": 2, "meshKey": mesh})
        assert m is not None and len(v.requests) == n, v.requests
        met = r.metrics()
        assert met['derp_clients_refused_total{reason="denied"}'] == 2, met
        assert met["derp_admission_cache_hits_total"] == 2, met
        assert met['derp_admission_requests_total{result="allowed"}'] == 1, met
        assert met['derp_admission_requests_total{result="denied"}'] == 1, met
        for c in (a, a2, m):
            c.close()
    finally:
        r.stop()
        v.close()


def test_verify_url_pending_does_not_block_the_relay():
    x, z, slow = d.keypair(), d.keypair(), d.keypair()
    gate = {"delay": 0}

    def policy(req):
        return 200, b'{"Allow": true}', gate["delay"]
    v = VerifyServer(policy)
    r = d.Relay("--verify-client-url", v.url)
    try:
        cx, cz = try_login(r.port, key=x), try_login(r.port, key=z)
        gate["delay"] = 1.5
        # A client whose verdict takes 1.5 s; it pipelines a packet right
        # after ClientInfo, which must wait and then be delivered.
        cs = d.Client(r.port, key=slow, login=False, timeout=15)
        msg = json.dumps({"version": 2}).encode()
        cs.send_raw(d.frame(d.F_CLIENT_INFO, cs.pub + d.box_seal(msg, cs.server_pub, cs.priv))
                    + d.frame(d.F_SEND, x[0] + b"pipelined"))
        wait_for(lambda: r.metrics()["derp_clients_admission_pending"] == 1, what="pending")
        # Meanwhile the loop relays for everybody else.
        for i in range(20):
            cx.send(z[0], b"ping %d" % i)
            assert cz.recv({d.F_RECV})[1][32:] == b"ping %d" % i
        t, p = cs.recv({d.F_SERVER_INFO}, timeout=15)
        assert cx.recv({d.F_RECV}, timeout=10)[1] == slow[0] + b"pipelined"
        assert r.metrics()["derp_clients_admission_pending"] == 0
    finally:
        r.stop()
        v.close()


def test_verify_url_fail_open_fail_closed_and_errors():
    down = "http://127.0.0.1:%d/verify" % d.free_port()  # nothing listens there
    r = d.Relay("--verify-client-url", down)
    try:
        c = try_login(r.port)
        assert c is not None, "fail-open is derper's default"
        met = r.metrics()
        assert met["derp_clients_admitted_fail_open_total"] == 1, met
        assert "fail-open" in r.logs()
    finally:
        r.stop()
    r = d.Relay("--verify-client-url", down, "--verify-client-url-fail-open=false")
    try:
        assert try_login(r.port) is None
        assert r.metrics()['derp_clients_refused_total{reason="unreachable"}'] == 1
    finally:
        r.stop()
    # An answer that is not 200, or not {"Allow":...}, refuses even when
    # failing open (derper: only an unreachable controller fails open).
    answers = iter([(500, b"oops", 0), (200, b"not json", 0), (200, b'{"allow": true}', 0)])
    v = VerifyServer(lambda req: next(answers))
    r = d.Relay("--verify-client-url", v.url)
    try:
        assert try_login(r.port) is None
        assert try_login(r.port) is None
        assert try_login(r.port) is not None, "Go matches JSON names case-insensitively"
        assert r.metrics()['derp_clients_refused_total{reason="error"}'] == 2
    finally:
        r.stop()
        v.close()


# ---- admission: --allowed-keys-file ----

def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def test_allowed_keys_file_allow_deny_reload():
    a, b = d.keypair(), d.keypair()
    tmp = d.tempfile.mkdtemp()
    path = os.path.join(tmp, "allowed")
    write_atomic(path, "# the fleet\n\n%s  # node a\nnodekey:xyz\n" % nodekey(a[0]))
    r = d.Relay("--allowed-keys-file", path)
    try:
        assert "line 4" in r.logs() and "1 keys, 1 bad lines" in r.logs(), r.logs()
        ca = try_login(r.port, key=a)
        assert ca is not None
        assert try_login(r.port, key=b) is None
        assert short_string(b[0]) in r.logs()
        # Atomic replacement: now only b. a's live connection is closed.
        write_atomic(path, nodekey(b[0]) + "\n")
        assert ca.closed_by_server(timeout=10), "removed key kept its connection"
        cb = wait_for(lambda: try_login(r.port, key=b), what="b admitted after reload")
        assert try_login(r.port, key=a) is None
        # A file that fails to load keeps the previous list.
        os.unlink(path)
        wait_for(lambda: "keeping the previous 1 keys" in r.logs(), what="failed reload logged")
        assert try_login(r.port, key=b) is not None
        met = r.metrics()
        assert met["derp_clients_revoked_total"] == 1, met
        assert met['derp_clients_refused_total{reason="not_listed"}'] >= 2, met
        assert met['derp_allowed_keys_reloads_total{result="error"}'] >= 1, met
        cb.close()
    finally:
        r.stop()


def test_allowed_keys_kubernetes_symlink_swap():
    """A ConfigMap volume: keys -> ..data/keys, ..data -> ..<timestamp>/; an
    update swaps ..data by rename, which only a directory watch sees."""
    a, b = d.keypair(), d.keypair()
    vol = d.tempfile.mkdtemp()

    def publish(name, text):
        os.mkdir(os.path.join(vol, name))
        with open(os.path.join(vol, name, "keys"), "w") as f:
            f.write(text)
        os.symlink(name, os.path.join(vol, "..data_tmp"))
        os.rename(os.path.join(vol, "..data_tmp"), os.path.join(vol, "..data"))
    publish("..v1", nodekey(a[0]) + "\n")
    os.symlink("..data/keys", os.path.join(vol, "keys"))
    r = d.Relay("--allowed-keys-file", os.path.join(vol, "keys"))
    try:
        assert try_login(r.port, key=b) is None
        publish("..v2", nodekey(a[0]) + "\n" + nodekey(b[0]) + "\n")
        c = wait_for(lambda: try_login(r.port, key=b), what="b admitted after the swap")
        c.close()
    finally:
        r.stop()


# ---- rate limits ----

def drain(client, counter, stop):
    client.sock.settimeout(0.2)
    while not stop.is_set():
        try:
            t, p = client.read_frame()
        except socket.timeout:
            continue
        except (EOFError, OSError):
            return
        if t == d.F_RECV:
            counter[0] += len(p) - 32


def test_per_client_rate_slows_one_client_only():
    rate = 100000
    r = d.Relay("--per-client-rate", str(rate), "--per-client-burst", "1000")
    try:
        assert "raised to %d" % MIN_BURST in r.logs(), r.logs()
        s1, r1, s2, r2 = (d.Client(r.port) for _ in range(4))
        want = {"version": 2, "TokenBucketBytesPerSecond": rate, "TokenBucketBytesBurst": MIN_BURST}
        assert s1.server_info == want, s1.server_info
        got1, got2, stop = [0], [0], threading.Event()
        for cl, cnt in ((r1, got1), (r2, got2)):
            threading.Thread(target=drain, args=(cl, cnt, stop), daemon=True).start()
        # s1 offers 40x its rate; the relay stops reading it, so its sendall
        # blocks on TCP flow control (nothing is dropped).
        pkt = os.urandom(1000)
        blob = d.frame(d.F_SEND, r1.pub + pkt) * 4000
        t0 = time.time()
        threading.Thread(target=lambda: _sendall_quiet(s1, blob), daemon=True).start()
        # s2, on the same relay, sends within its own bucket: all of it arrives.
        for _ in range(50):
            s2.send(r2.pub, pkt)
        wait_for(lambda: got2[0] == 50 * len(pkt), timeout=20, what="s2's packets")
        time.sleep(1.0)
        elapsed = time.time() - t0
        delivered = got1[0]
        frame_len = 32 + len(pkt)
        # The bucket cannot have allowed more than burst + rate * elapsed.
        allowed = MIN_BURST + rate * elapsed + frame_len
        assert delivered <= allowed, (delivered, allowed, elapsed)
        assert delivered >= 20 * len(pkt), delivered  # slowed, not stopped
        met = r.metrics()
        assert met["derp_rate_limit_waits_total"] > 0, met
        assert met['derp_packets_dropped_total{reason="queue_head"}'] == 0, met
        stop.set()
        for c in (s1, r1, s2, r2):
            c.close()
    finally:
        r.stop()


def _sendall_quiet(c, blob):
    try:
        c.sock.settimeout(60)
        c.sock.sendall(blob)
    except OSError:
        pass


def test_mesh_peers_are_not_rate_limited():
    mesh_file = os.path.join(d.tempfile.mkdtemp(), "mesh.key")
    mesh = os.urandom(32).hex()
    with open(mesh_file, "w") as f:
        f.write(mesh)
    r = d.Relay("--per-client-rate", "10000", "--mesh-key-file", mesh_file)
    try:
        m = try_login(r.port, info={"version": 2, "meshKey": mesh})
        assert m.server_info == {"version": 2}, m.server_info  # no bucket for mesh peers
        dst = d.Client(r.port)
        pkt = os.urandom(1000)
        m.send_raw(d.frame(d.F_SEND, dst.pub + pkt) * 300)  # 30x a second of the rate
        got = 0
        while got < 300:
            t, p = dst.recv({d.F_RECV}, timeout=10)
            got += 1
        assert r.metrics()["derp_rate_limit_waits_total"] == 0
    finally:
        r.stop()


# ---- connection limits ----

def refused_quickly(sock):
    """True when the relay closed sock without answering an HTTP request."""
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        return sock.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def healthz_from(port, source):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(100).startswith(b"HTTP/1.1 200 ")
    except (ConnectionResetError, BrokenPipeError):
        return False
    finally:
        s.close()


def test_max_connections_per_ip_and_total():
    r = d.Relay("--max-connections-per-ip", "3")
    try:
        held = [d.Client(r.port) for _ in range(3)]  # three logged-in clients from 127.0.0.1
        flood = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(5)]
        assert all(refused_quickly(s) for s in flood)
        # Another source address still gets in.
        assert healthz_from(r.port, "127.0.0.2")
        met = metrics_from(r.port, "127.0.0.2")
        assert met['derp_connections_refused_total{reason="max_connections_per_ip"}'] == 5, met
        held[0].close()  # its slot comes back
        wait_for(lambda: healthz_from(r.port, "127.0.0.1"), what="slot released")
        for c in held[1:] + flood:
            c.close()
    finally:
        r.stop()
    r = d.Relay("--max-connections", "2")
    try:
        held = [d.Client(r.port) for _ in range(2)]
        s = socket.create_connection(("127.0.0.1", r.port), timeout=5, source_address=("127.0.0.2", 0))
        assert refused_quickly(s)
        held[0].close()
        wait_for(lambda: healthz_from(r.port, "127.0.0.1"), what="room again")
        held[1].close()
        met = r.metrics()
        assert met['derp_connections_refused_total{reason="max_connections"}'] >= 1, met
    finally:
        r.stop()


def test_accept_connection_rate_limit():
    rate, burst = 2, 4
    r = d.Relay("--accept-connection-limit", str(rate), "--accept-connection-burst", str(burst))
    try:
        time.sleep(1)  # the relay's own readiness probe took a token; let it refill
        t0 = time.time()
        ok = sum(healthz_from(r.port, "127.0.0.1") for _ in range(20))
        elapsed = time.time() - t0
        # Tokens: a full bucket plus what refilled while the test ran.
        assert ok <= burst + rate * elapsed + 1, (ok, elapsed)
        assert ok >= 1, ok
        met = wait_for(lambda: _metrics_or_none(r.port), what="metrics through the limit")
        assert met['derp_connections_refused_total{reason="accept_rate"}'] >= 20 - ok - 1, met
    finally:
        r.stop()


def _metrics_or_none(port):
    try:
        return metrics_from(port)
    except (OSError, IndexError):
        return None


# ---- TLS: reload and the meta certificate ----

def make_ca(directory):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                    "-days", "2", "-subj", "/CN=limits test CA"],
                   check=True, capture_output=True, cwd=directory)
    return os.path.join(directory, "ca.pem")


def make_leaf(directory, name, host="localhost", extra_names=()):
    """A leaf for host signed by the CA in directory; returns (chain, key)."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=directory)
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + host)
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n"
                % ",".join("DNS:" + n for n in (host,) + tuple(extra_names)))
    run("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")


def served_fingerprint(port, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = max_version
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def test_tls_certificate_reload_without_restart():
    tmp = d.tempfile.mkdtemp()
    make_ca(tmp)
    live = os.path.join(tmp, "live")
    os.mkdir(live)
    cert, key = os.path.join(live, "tls.crt"), os.path.join(live, "tls.key")
    c1, k1 = make_leaf(tmp, "one")
    c2, k2 = make_leaf(tmp, "two")
    c3, k3 = make_leaf(tmp, "three")
    shutil.copy(c1, cert)
    shutil.copy(k1, key)
    fp = {n: hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(p).read())).hexdigest()
          for n, p in (("one", c1), ("two", c2), ("three", c3))}
    r = d.Relay("--tls-cert", cert, "--tls-key", key)
    try:
        assert served_fingerprint(r.port) == fp["one"]
        # TLS 1.2 is the floor; 1.2 itself works.
        served_fingerprint(r.port, ssl.TLSVersion.TLSv1_2)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                served_fingerprint(r.port, ssl.TLSVersion.TLSv1_1)
            raise AssertionError("a TLS 1.1 handshake succeeded")
        except ssl.SSLError as e:
            # The relay's alert (our client offers 1.1 at SECLEVEL=0), not ours.
            assert "PROTOCOL_VERSION" in str(e) or "protocol version" in str(e), e
        # A connection made before the reload stays up on the old certificate.
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.pem"))
        old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", r.port), timeout=5),
                              server_hostname="localhost")
        # Renewal as cert-manager does it: new files renamed into place.
        for src, dst in ((k2, key), (c2, cert)):
            shutil.copy(src, dst + ".new")
            os.rename(dst + ".new", dst)
        wait_for(lambda: served_fingerprint(r.port) == fp["two"], what="new certificate served")
        old.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert old.recv(100).startswith(b"HTTP/1.1 200 ")
        old.close()
        # A key that does not match: logged, the old pair kept.
        shutil.copy(k3, key)
        wait_for(lambda: "keeping the old certificate" in r.logs(), what="bad pair logged")
        assert served_fingerprint(r.port) == fp["two"]
        # SIGHUP reloads too (now the matching certificate is there).
        shutil.copy(c3, cert)
        r.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served_fingerprint(r.port) == fp["three"], what="reload on SIGHUP")
        wait_for(lambda: "(SIGHUP)" in r.logs(), what="SIGHUP reload logged")
    finally:
        r.stop()


def peer_chain(port):
    """Every certificate the relay sends (openssl s_client -showcerts), as
    (subject, serial) from the openssl CLI, in order."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
                        "-showcerts", "-servername", "localhost"],
                       input=b"", capture_output=True, timeout=20)
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", p.stdout,
                      re.S)
    out = []
    for pem in pems:
        x = subprocess.run(["openssl", "x509", "-noout", "-subject", "-serial",
                            "-nameopt", "RFC2253"], input=pem, capture_output=True, check=True)
        text = x.stdout.decode()
        subj = re.search(r"subject=(.*)", text).group(1).strip()
        serial = int(re.search(r"serial=([0-9A-Fa-f]+)", text).group(1), 16)
        out.append((subj, serial))
    return out


def test_meta_certificate_and_tailscale_fast_start():
    tmp = d.tempfile.mkdtemp()
    ca = make_ca(tmp)
    port = d.free_port()
    # Tailscale v1.36.2's derphttp checks the URL's host *with* its port
    # (tlsServerName returns url.Host); Go matches such a name exactly
    # against the DNS names, so the certificate carries that one too.
    cert, key = make_leaf(tmp, "leaf", extra_names=("localhost:%d" % port,))
    chain = os.path.join(tmp, "chain.pem")
    with open(chain, "w") as f:
        f.write(open(cert).read() + open(ca).read())
    r = d.Relay("--tls-cert", chain, "--tls-key", key, "--verbose", port=port)
    try:
        pub = re.search(r"key=([0-9a-f]{64})", r.logs()).group(1)
        certs = peer_chain(r.port)
        assert len(certs) == 3, certs  # leaf, CA, meta
        assert certs[0][0] == "CN=localhost", certs
        assert certs[-1] == ("CN=derpkey" + pub, 2), certs  # serial = protocol version
        if not os.access(DERPCLIENT, os.X_OK):
            raise d.Skip("meta certificate checked; no Tailscale derpclient at %s for the "
                         "fast-start login" % DERPCLIENT)
        env = dict(os.environ, SSL_CERT_FILE=ca)
        p = subprocess.run([DERPCLIENT, "roundtrip", "https://localhost:%d/derp" % r.port],
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 0 and p.stdout.startswith("ok rtt="), (p.stdout, p.stderr)
        # Tailscale's client found the key in the meta certificate, so it
        # skipped the 101 (Derp-Fast-Start: 1).
        logins = re.findall(r"logged in version=\d+ .*fast_start=(yes|no)", r.logs())
        assert logins == ["yes", "yes"], logins
    finally:
        r.stop()


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
