"""System tests: the real derp-relay and derp-probe binaries on loopback."""

import os
import re
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402


def test_http_endpoints():
    r = d.Relay()
    try:
        assert r.get("/healthz").startswith(b"HTTP/1.1 200 ")
        head = r.get("/healthz", "HEAD")
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), head
        probe = r.get("/derp/probe")
        assert probe.startswith(b"HTTP/1.1 200 ") and b"Access-Control-Allow-Origin: *" in probe
        assert r.get("/derp/latency-check", "HEAD").startswith(b"HTTP/1.1 200 ")
        assert r.get("/derp/probe", "POST").startswith(b"HTTP/1.1 405 ")
        g = r.get("/generate_204", headers="X-Tailscale-Challenge: abc.DEF-1_2:3\r\n")
        assert g.startswith(b"HTTP/1.1 204 "), g
        assert b"X-Tailscale-Response: response abc.DEF-1_2:3\r\n" in g, g
        bad = r.get("/generate_204", headers="X-Tailscale-Challenge: a b<script>\r\n")
        assert bad.startswith(b"HTTP/1.1 204 ") and b"X-Tailscale-Response" not in bad
        assert b"Disallow: /" in r.get("/robots.txt")
        assert r.get("/no/such/page").startswith(b"HTTP/1.1 404 ")
        assert r.get("/derp").startswith(b"HTTP/1.1 426 ")
    finally:
        r.stop()


def test_upgrade_headers_and_server_info():
    r = d.Relay()
    try:
        c = d.Client(r.port)
        h = c.http_head
        assert "Upgrade: DERP\r\n" in h and "Connection: Upgrade\r\n" in h
        assert "Derp-Version: 2\r\n" in h
        m = re.search(r"Derp-Public-Key: ([0-9a-f]{64})\r\n", h)
        assert m and bytes.fromhex(m.group(1)) == c.server_pub
        assert c.server_info == {"version": 2}, c.server_info
        c.close()
    finally:
        r.stop()


def test_fast_start_skips_101():
    r = d.Relay()
    try:
        c = d.Client(r.port, fast_start=True)
        assert not hasattr(c, "http_head")
        assert c.server_info["version"] == 2
        c.close()
    finally:
        r.stop()


def test_relay_packets_and_ping():
    r = d.Relay()
    try:
        a, b = d.Client(r.port), d.Client(r.port)
        for size in (1, 100, 1200, 65536):
            data = os.urandom(size)
            a.send(b.pub, data)
            t, p = b.recv({d.F_RECV})
            assert p[:32] == a.pub and p[32:] == data, size
        a.send_raw(d.frame(d.F_PING, b"12345678"))
        t, p = a.recv({d.F_PONG})
        assert p == b"12345678"
        a.send_raw(d.frame(d.F_PING, b"ABCDEFGH" + b"x" * 992))  # 1000 bytes: allowed
        assert a.recv({d.F_PONG})[1] == b"ABCDEFGH"
        m = r.metrics()
        assert m["derp_packets_sent_total"] >= 4 and m["derp_clients"] == 2, m
        a.close()
        b.close()
    finally:
        r.stop()


def test_unknown_frames_are_skipped():
    r = d.Relay()
    try:
        a, b = d.Client(r.port), d.Client(r.port)
        a.send_raw(d.frame(0x7F, os.urandom(200000)) + d.frame(d.F_KEEPALIVE))
        a.send(b.pub, b"after")
        assert b.recv({d.F_RECV})[1][32:] == b"after"
    finally:
        r.stop()


def test_peer_gone_disconnected_and_not_here():
    r = d.Relay()
    try:
        a, b = d.Client(r.port), d.Client(r.port)
        a.send(b.pub, b"hi")
        b.recv({d.F_RECV})
        a.close()
        t, p = b.recv({d.F_PEER_GONE})
        assert p == a.pub + b"\x00", p
        nobody = d.keypair()[0]
        b.send(nobody, b"not disco")  # no PeerGone for ordinary packets
        b.send(nobody, d.disco_packet())
        t, p = b.recv({d.F_PEER_GONE})
        assert p == nobody + b"\x01", p
        assert r.metrics()['derp_packets_dropped_total{reason="unknown_dest"}'] >= 2
    finally:
        r.stop()


def test_duplicate_keys_last_writer_wins():
    r = d.Relay()
    try:
        key = d.keypair()
        c1 = d.Client(r.port, key=key)
        c2 = d.Client(r.port, key=key)
        for c in (c1, c2):
            t, p = c.recv({d.F_HEALTH})
            assert b"duplicate" in p, p
        s = d.Client(r.port)
        s.send(key[0], b"to-newest")
        assert c2.recv({d.F_RECV})[1][32:] == b"to-newest"
        c1.send_raw(d.frame(d.F_NOTE_PREFERRED, b"\x01"))  # c1 writes: it becomes active
        time.sleep(0.2)
        s.send(key[0], b"to-c1")
        assert c1.recv({d.F_RECV})[1][32:] == b"to-c1"
        c1.close()
        t, p = c2.recv({d.F_HEALTH})
        assert p == b"", p  # back to one connection: warning cleared
        s.send(key[0], b"to-c2-again")
        assert c2.recv({d.F_RECV})[1][32:] == b"to-c2-again"
    finally:
        r.stop()


def test_bad_frames_close_only_that_client():
    r = d.Relay()
    try:
        a, b = d.Client(r.port), d.Client(r.port)
        cases = [
            d.frame(d.F_SEND, b"\x00" * 10),  # shorter than a key
            struct.pack(">BI", d.F_SEND, 32 + 65537),  # over the packet limit, no body needed
            d.frame(d.F_PING, b"1234567"),  # short ping
            d.frame(d.F_PING, b"x" * 1001),  # long ping
            d.frame(d.F_NOTE_PREFERRED, b"\x01\x01"),
            d.frame(d.F_WATCH_CONNS),  # privileged without the mesh key
            d.frame(d.F_CLOSE_PEER, b.pub),
            d.frame(d.F_FORWARD, a.pub + b.pub + b"x"),
        ]
        for raw in cases:
            c = d.Client(r.port)
            c.send_raw(raw)
            assert c.closed_by_server(), raw[:8]
        a.send(b.pub, b"still fine")
        assert b.recv({d.F_RECV})[1][32:] == b"still fine"
        assert r.metrics()["derp_protocol_errors_total"] >= 4
    finally:
        r.stop()


def test_bad_login_is_refused():
    r = d.Relay()
    try:
        # ClientInfo sealed with a key that is not the claimed one.
        c = d.Client(r.port, login=False)
        other = d.keypair()
        box = d.box_seal(b'{"version":2}', c.server_pub, other[1])
        c.send_raw(d.frame(d.F_CLIENT_INFO, c.pub + box))
        assert c.closed_by_server()
        # Not JSON inside a valid box.
        c = d.Client(r.port, login=False)
        c.send_raw(d.frame(d.F_CLIENT_INFO, c.pub + d.box_seal(b"{nope", c.server_pub, c.priv)))
        assert c.closed_by_server()
        # Wrong first frame, and an oversized ClientInfo length.
        c = d.Client(r.port, login=False)
        c.send_raw(d.frame(d.F_SEND, b"x" * 40))
        assert c.closed_by_server()
        c = d.Client(r.port, login=False)
        c.send_raw(struct.pack(">BI", d.F_CLIENT_INFO, (256 << 10) + 1))
        assert c.closed_by_server()
        assert "box does not open" in r.logs()
        a = d.Client(r.port)  # the server still serves
        a.close()
    finally:
        r.stop()


def test_garbage_http_gets_400_and_server_survives():
    r = d.Relay()
    try:
        assert r.http(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        assert r.http(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        huge = b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"
        assert r.http(huge).startswith(b"HTTP/1.1 431 ")
        assert r.get("/healthz").startswith(b"HTTP/1.1 200 ")
        assert "bad HTTP request" in r.logs()
    finally:
        r.stop()


def test_slowloris_and_half_open_are_closed():
    r = d.Relay()
    try:
        slow = socket.create_connection(("127.0.0.1", r.port))
        slow.sendall(b"GET /derp HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
        idle = socket.create_connection(("127.0.0.1", r.port))  # says nothing at all
        half = d.Client(r.port, login=False)  # upgraded, never sends ClientInfo
        t0 = time.time()
        for s in (slow, idle, half.sock):
            s.settimeout(40)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        waited = time.time() - t0
        # Closed by the deadline, not at once (the upper bound is the recv timeout).
        assert waited >= 5, waited
        assert r.metrics()["derp_handshake_errors_total"] >= 3
        assert "handshake not finished in time" in r.logs()
    finally:
        r.stop()


def test_client_that_never_reads_is_closed():
    r = d.Relay()
    try:
        a = d.Client(r.port)
        b = d.Client(r.port)
        b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        data = os.urandom(60000)
        deadline = time.time() + 20
        while not b.closed_by_server(timeout=0) and time.time() < deadline:
            try:
                a.send(b.pub, data)
            except OSError:
                break
            if r.metrics().get("derp_write_timeouts_total", 0) >= 1:
                break
            time.sleep(0.01)
        m = r.metrics()
        assert m["derp_write_timeouts_total"] >= 1, m
        assert m['derp_packets_dropped_total{reason="queue_head"}'] > 0, m
        c = d.Client(r.port)
        a.send(c.pub, b"a still works")
        assert c.recv({d.F_RECV})[1][32:] == b"a still works"
    finally:
        r.stop()


def test_key_file_created_kept_and_format():
    path = os.path.join(d.tempfile.mkdtemp(), "derper.key")
    r = d.Relay("--key-file", path)
    try:
        c = d.Client(r.port)
        first = c.server_pub
    finally:
        r.stop()
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    text = open(path).read()
    assert re.fullmatch(r'\{\n\t"PrivateKey": "privkey:[0-9a-f]{64}"\n\}', text), text
    r = d.Relay("--key-file", path)
    try:
        assert d.Client(r.port).server_pub == first
    finally:
        r.stop()
    assert open(path).read() == text
    with open(path, "w") as f:
        f.write("not json")
    bad = subprocess.run([os.path.join(d.BIN, "derp-relay"), "--listen", "127.0.0.1:0",
                          "--stun-listen", "off", "--key-file", path],
                         capture_output=True, timeout=10)
    assert bad.returncode != 0 and path.encode() in bad.stderr and b"derp" in bad.stderr
    assert open(path).read() == "not json"


def test_sigterm_sends_restarting_then_drains():
    r = d.Relay("--drain-ms", "500")
    a, b = d.Client(r.port), d.Client(r.port)
    r.proc.send_signal(15)
    t, p = a.recv({d.F_RESTARTING})
    reconnect, try_for = struct.unpack(">II", p)
    assert reconnect > 0 and try_for > 0
    assert b.recv({d.F_RESTARTING})[0] == d.F_RESTARTING
    assert a.closed_by_server(timeout=5)
    assert r.proc.wait(10) == 0
    r.log.close()
    assert "draining" in r.logs()


def test_logs_all_say_derp_and_debug_switch():
    r = d.Relay(env={"LOFT_LOG_DERP": "true"})
    try:
        c = d.Client(r.port)
        c.close()
        time.sleep(0.3)
    finally:
        r.stop()
    lines = [ln for ln in r.logs().splitlines() if ln.strip()]
    assert lines and all("derp" in ln.lower() for ln in lines), lines
    assert any(" debug " in ln and "logged in" in ln for ln in lines), lines
    r = d.Relay()
    try:
        d.Client(r.port).close()
        time.sleep(0.3)
    finally:
        r.stop()
    assert " debug " not in r.logs()


def probe(*args, timeout=30):
    return subprocess.run([os.path.join(d.BIN, "derp-probe")] + list(args), capture_output=True,
                          timeout=timeout, text=True)


def test_probe_success_and_failures():
    r = d.Relay()
    try:
        p = probe(r.url())
        assert p.returncode == 0, p.stderr
        assert re.search(r"rtt=[0-9.]+ms", p.stdout), p.stdout
        p = probe("http://127.0.0.1:%d/nope" % r.port)
        assert p.returncode != 0 and "http:" in p.stderr and "404" in p.stderr, p.stderr
    finally:
        r.stop()
    p = probe("http://127.0.0.1:%d/derp" % d.free_port())
    assert p.returncode != 0 and "tcp:" in p.stderr, p.stderr
    p = probe("http://no-such-host.invalid/derp")
    assert p.returncode != 0 and "dns:" in p.stderr, p.stderr
    p = probe("ftp://x/derp")
    assert p.returncode != 0 and "url:" in p.stderr, p.stderr
    # A server that accepts and never answers: a timeout, said as such.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    p = probe("http://127.0.0.1:%d/derp" % s.getsockname()[1], "--timeout-ms", "500")
    s.close()
    assert p.returncode != 0 and "timeout:" in p.stderr, p.stderr


def test_tls_self_signed_pin():
    r = d.Relay("--self-signed", "localhost")
    try:
        m = re.search(r"(sha256-raw:[0-9a-f]{64})", r.logs())
        assert m, r.logs()
        url = "https://localhost:%d/derp" % r.port
        ok = probe(url, "--pin", m.group(1))
        assert ok.returncode == 0, ok.stderr
        bad = probe(url)
        assert bad.returncode != 0 and "tls:" in bad.stderr, bad.stderr
        wrong = probe(url, "--pin", "sha256-raw:" + "0" * 64)
        assert wrong.returncode != 0 and "tls:" in wrong.stderr, wrong.stderr
        assert probe(url, "--insecure").returncode == 0
    finally:
        r.stop()


def make_ca_and_leaf(directory, host="localhost"):
    """A CA and a leaf for host signed by it, with the openssl CLI; returns paths."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
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


def test_tls_certificate_files():
    tmp = d.tempfile.mkdtemp()
    chain, key, ca = make_ca_and_leaf(tmp)
    r = d.Relay("--tls-cert", chain, "--tls-key", key)
    try:
        url = "https://localhost:%d/derp" % r.port
        ok = probe(url, "--ca-file", ca)
        assert ok.returncode == 0, ok.stderr
        untrusted = probe(url)
        assert untrusted.returncode != 0 and "tls:" in untrusted.stderr, untrusted.stderr
        wrong_name = probe("https://127.0.0.1:%d/derp" % r.port, "--ca-file", ca)
        assert wrong_name.returncode != 0 and "tls:" in wrong_name.stderr, wrong_name.stderr
        assert "sha256-raw:" in r.logs()
    finally:
        r.stop()
    # A key that does not match the certificate: a clear error naming the file.
    other = d.tempfile.mkdtemp()
    _, other_key, _ = make_ca_and_leaf(other)
    bad = subprocess.run([os.path.join(d.BIN, "derp-relay"), "--listen", "127.0.0.1:0",
                          "--stun-listen", "off", "--tls-cert", chain, "--tls-key", other_key],
                         capture_output=True, timeout=10, text=True)
    assert bad.returncode != 0 and other_key in bad.stderr and "derp" in bad.stderr, bad.stderr


def test_stun_binding():
    r = d.Relay(stun=True)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.bind(("127.0.0.1", 0))
        txid = os.urandom(12)
        u.sendto(b"garbage", ("127.0.0.1", r.stun_port))
        u.sendto(struct.pack(">HHI", 1, 0, 0x2112A442) + txid, ("127.0.0.1", r.stun_port))
        resp, _ = u.recvfrom(1500)
        assert resp[:2] == b"\x01\x01" and resp[8:20] == txid
        attr, alen, _, fam, xport = struct.unpack(">HHBBH", resp[20:28])
        assert attr == 0x0020 and fam == 1
        assert xport ^ 0x2112 == u.getsockname()[1]
        ip = bytes(a ^ b for a, b in zip(resp[28:32], b"\x21\x12\xa4\x42"))
        assert ip == b"\x7f\x00\x00\x01"
    finally:
        r.stop()


def test_mesh_key_watch_conns():
    keyfile = os.path.join(d.tempfile.mkdtemp(), "mesh.key")
    mesh = os.urandom(32).hex()
    with open(keyfile, "w") as f:
        f.write("  " + mesh + "\n")
    r = d.Relay("--mesh-key-file", keyfile)
    try:
        a = d.Client(r.port)
        w = d.Client(r.port, info={"version": 2, "meshKey": mesh})
        w.send_raw(d.frame(d.F_WATCH_CONNS))
        seen = set()
        while a.pub not in seen:
            t, p = w.recv({d.F_PEER_PRESENT})
            assert len(p) == 32 + 16 + 2 + 1
            seen.add(p[:32])
        b = d.Client(r.port)
        t, p = w.recv({d.F_PEER_PRESENT})
        assert p[:32] == b.pub and p[32:48] == b"\x00" * 10 + b"\xff\xff\x7f\x00\x00\x01"
        assert p[50] == 1  # a regular client
        b.close()
        t, p = w.recv({d.F_PEER_GONE})
        assert p[:32] == b.pub
        # A wrong mesh key makes an ordinary client: its privileged frame closes it.
        x = d.Client(r.port, info={"version": 2, "meshKey": "00" * 32})
        x.send_raw(d.frame(d.F_WATCH_CONNS))
        assert x.closed_by_server()
    finally:
        r.stop()


def test_websocket_transport():
    import base64
    import hashlib
    r = d.Relay()
    try:
        w = d.Client(r.port, websocket=True)
        want = base64.b64encode(hashlib.sha1(
            (w.ws_key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        assert ("Sec-WebSocket-Accept: %s\r\n" % want) in w.http_head, w.http_head
        assert "Sec-WebSocket-Protocol: derp\r\n" in w.http_head
        assert w.server_info == {"version": 2}
        plain = d.Client(r.port)
        big = os.urandom(65536)  # a DERP frame spanning several WebSocket messages
        plain.send(w.pub, big)
        assert w.recv({d.F_RECV})[1] == plain.pub + big
        assert max(w.sock.msg_sizes) <= 32768, w.sock.msg_sizes
        w.send(plain.pub, big)
        assert plain.recv({d.F_RECV})[1] == w.pub + big
        # A DERP frame cut across messages at odd places still parses.
        raw = d.frame(d.F_SEND, plain.pub + b"split")
        for part in (raw[:3], raw[3:20], raw[20:]):
            w.sock.sendall(part)
        assert plain.recv({d.F_RECV})[1] == w.pub + b"split"
        w.sock.sock.sendall(d.ws_frame(b"hi", opcode=9))  # WebSocket ping
        w.send_raw(d.frame(d.F_PING, b"87654321"))
        assert w.recv({d.F_PONG})[1] == b"87654321"
        assert w.sock.pongs == [b"hi"], w.sock.pongs
        # Bad framing closes only that connection.
        for bad in (d.ws_frame(b"x" * 40000), d.ws_frame(b"x", mask=False), d.ws_frame(b"x", 1)):
            c = d.Client(r.port, websocket=True)
            c.sock.sock.sendall(bad)
            c.sock.sock.settimeout(5)
            assert c.sock.sock.recv(100) == b"", bad[:2]
        plain.send(w.pub, b"still")
        assert w.recv({d.F_RECV})[1][32:] == b"still"
        old = r.http(b"GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n"
                     b"Connection: Upgrade\r\n\r\n", timeout=0.5)
        assert old.startswith(b"HTTP/1.1 101 ") and b"Upgrade: DERP" in old  # raw DERP, as derper
    finally:
        r.stop()


def _ws_probe(*args):
    """derp-probe, failing the test on any sanitizer report (sanitizer builds)."""
    p = probe(*args)
    for word in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert word not in p.stderr, p.stderr[-4000:]
    return p


def test_probe_websocket():
    r = d.Relay()
    try:
        p = _ws_probe("--websocket", "--count", "3", r.url())
        assert p.returncode == 0, p.stderr
        assert re.search(r"rtt=[0-9.]+ms", p.stdout), p.stdout
        assert "round_trips=3" in p.stdout, p.stdout
        assert "--websocket" in _ws_probe("--help").stdout
        p = _ws_probe("--websocket", "http://127.0.0.1:%d/nope" % r.port)
        assert p.returncode != 0 and "http:" in p.stderr and "404" in p.stderr, p.stderr
    finally:
        r.stop()
    r = d.Relay("--self-signed", "localhost")
    try:
        m = re.search(r"(sha256-raw:[0-9a-f]{64})", r.logs())
        assert m, r.logs()
        url = "https://localhost:%d/derp" % r.port
        p = _ws_probe("--websocket", "--pin", m.group(1), "--count", "3", url)
        assert p.returncode == 0, p.stderr
        assert re.search(r"rtt=[0-9.]+ms", p.stdout), p.stdout
        bad = _ws_probe("--websocket", url)
        assert bad.returncode != 0 and "tls:" in bad.stderr, bad.stderr
    finally:
        r.stop()


def _ws_read_client_frame(conn, buf):
    """One frame from a WebSocket client: (opcode, fin, masked, payload, rest of buf)."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError("client closed")
            buf += chunk
    need(2)
    b0, b1 = buf[0], buf[1]
    ln, off = b1 & 0x7F, 2
    if ln == 126:
        need(4)
        ln, off = struct.unpack(">H", buf[2:4])[0], 4
    elif ln == 127:
        need(10)
        ln, off = struct.unpack(">Q", buf[2:10])[0], 10
    masked = bool(b1 & 0x80)
    key = b"\x00" * 4
    if masked:
        need(off + 4)
        key, off = buf[off:off + 4], off + 4
    need(off + ln)
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(buf[off:off + ln]))
    return b0 & 0x0F, bool(b0 & 0x80), masked, payload, buf[off + ln:]


def _ws_fake_server(script):
    """A one-connection WebSocket server on loopback: answers the upgrade, then
    runs script(conn, key, request_head) in a thread. Returns (port, thread, result)."""
    import base64
    import hashlib
    import threading
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    result = {}

    def run():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            text = head.decode()
            m = re.search(r"Sec-WebSocket-Key: (\S+)\r\n", text)
            key = m.group(1) if m else ""
            accept = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            script(conn, accept, text, result)
            conn.close()
        except Exception as e:  # surfaced by the test through result
            result["error"] = repr(e)
        finally:
            lsock.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return lsock.getsockname()[1], t, result


def _ws_upgrade_answer(accept, proto="derp"):
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n%s\r\n"
            % (accept, "Sec-WebSocket-Protocol: %s\r\n" % proto if proto else "")).encode()


def test_probe_websocket_framing_against_fake_server():
    server_pub, _ = d.keypair()

    def pings_and_fragments(conn, accept, head, result):
        result["head"] = head
        # ServerKey cut into a fragmented message (binary + continuation) with a
        # WebSocket ping in between, all in the same TCP write as the 101.
        sk = d.frame(d.F_SERVER_KEY, d.MAGIC + server_pub)
        conn.sendall(_ws_upgrade_answer(accept) + d.ws_frame(b"", mask=False, fin=True)
                     + d.ws_frame(sk[:7], mask=False, fin=False)
                     + d.ws_frame(b"ping!", opcode=9, mask=False)
                     + d.ws_frame(sk[7:], opcode=0, mask=False))
        buf, frames, derp = b"", [], b""
        while len(derp) < 5 or len(derp) < 5 + struct.unpack(">I", derp[1:5])[0]:
            op, fin, masked, payload, buf = _ws_read_client_frame(conn, buf)
            frames.append((op, fin, masked, payload))
            if op == 2 or op == 0:
                derp += payload
        result["frames"] = frames
        result["derp"] = derp
        conn.sendall(d.ws_frame(b"\x03\xe8", opcode=8, mask=False))  # close, 1000

    port, t, res = _ws_fake_server(pings_and_fragments)
    p = _ws_probe("--websocket", "http://127.0.0.1:%d/derp" % port, "--timeout-ms", "5000")
    t.join(10)
    assert "error" not in res, res
    head = res["head"]
    assert head.startswith("GET /derp HTTP/1.1\r\n"), head
    for h in ("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
              "Sec-WebSocket-Protocol: derp"):
        assert h + "\r\n" in head, head
    assert re.search(r"Sec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n", head), head
    frames = res["frames"]
    assert all(masked for _, _, masked, _ in frames), frames
    assert frames[0][0] == 0xA and frames[0][3] == b"ping!", frames  # the pong comes first
    assert res["derp"][0] == d.F_CLIENT_INFO, res["derp"][:5]
    assert all(op == 2 and fin for op, fin, _, _ in frames[1:]), frames
    assert p.returncode != 0 and "handshake:" in p.stderr and "closed" in p.stderr, p.stderr

    def wrong_accept(conn, accept, head, result):
        conn.sendall(_ws_upgrade_answer("AAAAAAAAAAAAAAAAAAAAAAAAAAA="))

    def no_subprotocol(conn, accept, head, result):
        conn.sendall(_ws_upgrade_answer(accept, proto=None))

    def text_frame(conn, accept, head, result):
        conn.sendall(_ws_upgrade_answer(accept) + d.ws_frame(b"hello", opcode=1, mask=False))
        time.sleep(1)

    def masked_frame(conn, accept, head, result):
        sk = d.frame(d.F_SERVER_KEY, d.MAGIC + server_pub)
        conn.sendall(_ws_upgrade_answer(accept) + d.ws_frame(sk, mask=True))
        time.sleep(1)

    def plain_derp(conn, accept, head, result):
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"
                     b"Connection: Upgrade\r\n\r\n")

    cases = [(wrong_accept, "handshake:", "Sec-WebSocket-Accept"),
             (no_subprotocol, "handshake:", "derp"),
             (text_frame, "handshake:", "text message"),
             (masked_frame, "handshake:", "masked"),
             (plain_derp, "http:", "Upgrade: websocket")]
    for script, stage, why in cases:
        port, t, res = _ws_fake_server(script)
        p = _ws_probe("--websocket", "http://127.0.0.1:%d/derp" % port, "--timeout-ms", "5000")
        t.join(10)
        assert "error" not in res, (script.__name__, res)
        assert p.returncode != 0, script.__name__
        assert stage in p.stderr and why in p.stderr, (script.__name__, p.stderr)


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
