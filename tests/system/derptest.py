"""Helpers for the system tests: run the real binaries on loopback and talk
DERP to them from Python. Crypto comes from the system libsodium through
ctypes (the same library the relay uses; nothing hand-written)."""

import base64
import ctypes
import ctypes.util
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("DC_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert _sodium.sodium_init() >= 0

KEY_LEN = 32
NONCE_LEN = 24
MAGIC = b"DERP\xf0\x9f\x94\x91"

F_SERVER_KEY, F_CLIENT_INFO, F_SERVER_INFO = 1, 2, 3
F_SEND, F_RECV, F_KEEPALIVE, F_NOTE_PREFERRED = 4, 5, 6, 7
F_PEER_GONE, F_PEER_PRESENT, F_FORWARD = 8, 9, 0x0A
F_WATCH_CONNS, F_CLOSE_PEER, F_PING, F_PONG, F_HEALTH, F_RESTARTING = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15


def keypair():
    pk = ctypes.create_string_buffer(32)
    sk = ctypes.create_string_buffer(32)
    _sodium.crypto_box_keypair(pk, sk)
    return pk.raw, sk.raw


def box_seal(msg, peer_pub, my_priv):
    nonce = os.urandom(NONCE_LEN)
    out = ctypes.create_string_buffer(len(msg) + 16)
    rc = _sodium.crypto_box_easy(out, msg, ctypes.c_ulonglong(len(msg)), nonce, peer_pub, my_priv)
    assert rc == 0
    return nonce + out.raw


def box_open(box, peer_pub, my_priv):
    nonce, c = box[:NONCE_LEN], box[NONCE_LEN:]
    out = ctypes.create_string_buffer(max(len(c) - 16, 1))
    rc = _sodium.crypto_box_open_easy(out, c, ctypes.c_ulonglong(len(c)), nonce, peer_pub, my_priv)
    if rc != 0:
        return None
    return out.raw[: len(c) - 16]


def frame(t, payload=b""):
    return struct.pack(">BI", t, len(payload)) + payload


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Relay:
    """A derp-relay process on 127.0.0.1 with its stderr captured to a file."""

    def __init__(self, *extra, env=None, stun=False, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="derp-relay-test-")
        self.log_path = os.path.join(self.dir, "relay.log")
        self.stun_port = free_port() if stun else None
        args = [os.path.join(BIN, "derp-relay"), "--listen", "127.0.0.1:%d" % self.port,
                "--stun-listen", "127.0.0.1:%d" % self.stun_port if stun else "off"]
        if "--drain-ms" not in extra:
            args += ["--drain-ms", "100"]
        args += list(extra)
        e = dict(os.environ)
        e.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=e)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("derp-relay exited: " + self.logs())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("derp-relay did not start: " + self.logs())

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def url(self):
        return "http://127.0.0.1:%d/derp" % self.port

    def http(self, raw, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        s.close()
        return data

    def get(self, path, method="GET", headers=""):
        return self.http(("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, headers)).encode())

    def metrics(self):
        body = self.get("/metrics").split(b"\r\n\r\n", 1)[1].decode()
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=15, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        text = self.logs()
        # Sanitizer builds: a report anywhere in the relay's life fails the test.
        if "AddressSanitizer" in text or "runtime error:" in text or "LeakSanitizer" in text:
            raise AssertionError("sanitizer report from derp-relay:\n" + text[-4000:])
        if sig == 15 and self.proc.returncode != 0:
            raise AssertionError("derp-relay exited %d after SIGTERM:\n%s"
                                 % (self.proc.returncode, text[-2000:]))
        return self.proc.returncode


class Client:
    """A DERP client over plain TCP, written from the protocol facts."""

    def __init__(self, port, key=None, fast_start=False, info=None, login=True, timeout=5,
                 websocket=False):
        self.pub, self.priv = key or keypair()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        hdr = "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n"
        if websocket:
            self.ws_key = base64.b64encode(os.urandom(16)).decode()
            hdr = ("GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: derp\r\nSec-WebSocket-Key: %s\r\n" % self.ws_key)
        if fast_start:
            hdr += "Derp-Fast-Start: 1\r\n"
        self.sock.sendall((hdr + "\r\n").encode())
        if not fast_start:
            head = self._read_until(b"\r\n\r\n")
            self.http_head = head.decode()
            assert head.startswith(b"HTTP/1.1 101 "), head
        if websocket:
            raw = self.sock
            self.sock = WsStream(raw)
            self.sock.raw, self.buf = self.buf, b""
        t, p = self.read_frame()
        assert t == F_SERVER_KEY and p[:8] == MAGIC, (t, p)
        self.server_pub = p[8:40]
        if login:
            self.login(info)

    def login(self, info=None):
        info = info if info is not None else {"version": 2, "CanAckPings": True}
        msg = json.dumps(info).encode()
        self.sock.sendall(frame(F_CLIENT_INFO, self.pub + box_seal(msg, self.server_pub, self.priv)))
        t, p = self.read_frame()
        assert t == F_SERVER_INFO, t
        self.server_info = json.loads(box_open(p, self.server_pub, self.priv))

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk

    def read_frame(self):
        self._need(5)
        t, n = struct.unpack(">BI", self.buf[:5])
        self._need(5 + n)
        p = self.buf[5:5 + n]
        self.buf = self.buf[5 + n:]
        return t, p

    def recv(self, want=None, timeout=5):
        """Next frame of a type in want (others skipped)."""
        self.sock.settimeout(timeout)
        while True:
            t, p = self.read_frame()
            if want is None or t in want:
                return t, p

    def send(self, dst, data):
        self.sock.sendall(frame(F_SEND, dst + data))

    def send_raw(self, raw):
        self.sock.sendall(raw)

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


class WsStream:
    """A socket-like object that speaks WebSocket (RFC 6455) underneath: send()
    wraps bytes into masked binary messages, recv() unwraps the server's."""

    def __init__(self, sock, max_msg=32768):
        self.sock = sock
        self.raw = b""
        self.max_msg = max_msg
        self.msg_sizes = []  # payload size of every data frame received
        self.pongs = []

    def settimeout(self, t):
        self.sock.settimeout(t)

    def sendall(self, data, opcode=2, mask=True):
        for i in range(0, max(len(data), 1), self.max_msg):
            self.sock.sendall(ws_frame(data[i:i + self.max_msg], opcode, mask))

    def _need(self, n):
        while len(self.raw) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return False
            self.raw += chunk
        return True

    def recv(self, n):
        while True:
            if not self._need(2):
                return b""
            b0, b1 = self.raw[0], self.raw[1]
            assert b1 & 0x80 == 0, "server frames must not be masked"
            ln, off = b1 & 0x7F, 2
            if ln == 126:
                self._need(4)
                ln, off = struct.unpack(">H", self.raw[2:4])[0], 4
            elif ln == 127:
                self._need(10)
                ln, off = struct.unpack(">Q", self.raw[2:10])[0], 10
            if not self._need(off + ln):
                return b""
            payload, self.raw = self.raw[off:off + ln], self.raw[off + ln:]
            op = b0 & 0x0F
            if op == 0xA:
                self.pongs.append(payload)
                continue
            if op == 0x8:
                return b""
            self.msg_sizes.append(ln)
            return payload

    def close(self):
        self.sock.close()


def ws_frame(payload, opcode=2, mask=True, fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def disco_packet(extra=b"hello"):
    return b"TS\xf0\x9f\x92\xac" + os.urandom(32) + os.urandom(24) + extra


class Skip(Exception):
    """Raised by a test that cannot run here; its message says why."""


class Suite:
    """Minimal runner: every test_* function, a summary line ctest can read."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def run(self, module):
        names = [n for n in dir(module) if n.startswith("test_")]
        only = sys.argv[1:] or None
        for n in sorted(names, key=lambda n: getattr(module, n).__code__.co_firstlineno):
            if only and n not in only:
                continue
            t0 = time.time()
            try:
                getattr(module, n)()
                self.passed += 1
                print("PASS %s (%.2fs)" % (n, time.time() - t0), flush=True)
            except Skip as e:
                self.skipped += 1
                print("SKIP %s: %s" % (n, e), flush=True)
            except Exception as e:  # report and go on: one failure must not hide others
                self.failed += 1
                import traceback
                traceback.print_exc()
                print("FAIL %s: %r" % (n, e), flush=True)
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped))
        sys.exit(1 if self.failed else 0)
