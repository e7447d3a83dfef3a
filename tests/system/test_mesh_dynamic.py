"""System tests: --mesh-peers-file, a mesh peer set that changes at run time.

Every relay follows its own peers file, replaced atomically (write, then
rename) as derp-controller does from the relay Service's EndpointSlices."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # importing test_mesh must leave no __pycache__ behind
sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402
from test_mesh import delivers, mesh_key_file, wait_for  # noqa: E402


def url(port, host="127.0.0.1"):
    return "http://%s:%d/derp" % (host, port)


def write_peers(path, lines):
    """Replaces path atomically, as the controller does."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.rename(tmp, path)


def peers_path():
    return os.path.join(d.tempfile.mkdtemp(prefix="derp-peers-"), "peers")


def metric(relay, name):
    return relay.metrics().get(name, 0)


def up(relay):
    return metric(relay, "derp_mesh_peers_up")


def dials(relay):
    return metric(relay, "derp_mesh_dials_total")


def drain(client, timeout):
    """Every frame that arrives within timeout (until a quiet 0.5 s), as (type, payload)."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            out.append(client.recv(None, timeout=0.5))
        except (OSError, EOFError):
            break
    return out


def test_peers_file_grows_to_a_full_mesh_then_drops_a_relay():
    key = mesh_key_file()
    ports = [d.free_port() for _ in range(3)]
    files = [peers_path() for _ in range(3)]
    for i in range(3):  # a ring: each relay lists only the next one
        write_peers(files[i], [url(ports[(i + 1) % 3])])
    relays = [d.Relay("--mesh-key-file", key, "--mesh-peers-file", files[i], port=ports[i])
              for i in range(3)]
    try:
        for r in relays:
            wait_for(lambda r=r: up(r) == 1, what="ring up")
        before = [dials(r) for r in relays]

        # The full set, each relay's own URL included (skipped as its own).
        full = [url(p) for p in ports]
        for f in files:
            write_peers(f, ["# every relay of the region"] + full)
        for r in relays:
            wait_for(lambda r=r: up(r) == 2, what="full mesh")
        for i, r in enumerate(relays):
            # The link already there was kept: exactly one new dial.
            assert dials(r) == before[i] + 1, (i, dials(r), before[i])
            assert "1 added, 0 removed, 1 unchanged" in r.logs(), r.logs()
            assert "skipping %s: it is this relay" % url(ports[i]) in r.logs()
        clients = [d.Client(r.port) for r in relays]
        for i, a in enumerate(clients):
            for j, b in enumerate(clients):
                if i != j:
                    assert delivers(a, b, b"%d->%d" % (i, j)), (i, j)

        # Drop relay 2 from every file while clients 0 and 1 keep talking.
        a, b, c = clients
        n, lost_window = 600, (200, 260)
        for seq in range(n):
            a.send(b.pub, b"a%05d" % seq)
            b.send(a.pub, b"b%05d" % seq)
            if seq == lost_window[0]:
                write_peers(files[0], full[:2])
                write_peers(files[1], full[:2])
                write_peers(files[2], [])
            if seq == lost_window[1]:
                wait_for(lambda: up(relays[0]) == 1 and up(relays[1]) == 1
                         and up(relays[2]) == 0, what="relay 2 dropped")
            if seq % 20 == 0:
                time.sleep(0.01)
        got_b = [p for t, p in drain(b, 10) if t == d.F_RECV]
        got_a_frames = drain(a, 10)
        got_a = [p for t, p in got_a_frames if t == d.F_RECV]
        want_b = [a.pub + b"a%05d" % s for s in range(n)]
        want_a = [b.pub + b"b%05d" % s for s in range(n)]
        assert [p for p in got_b if p in set(want_b)] == want_b, (len(got_b), n)
        assert [p for p in got_a if p in set(want_a)] == want_a, (len(got_a), n)
        assert dials(relays[0]) == before[0] + 1 and dials(relays[1]) == before[1] + 1

        # Relay 0 forgot relay 2's clients: c, who sent to a, is gone for a.
        gone = [p for t, p in got_a_frames if t == d.F_PEER_GONE]
        assert c.pub + b"\x00" in gone, gone
        for i in (0, 1):
            logs = relays[i].logs()
            assert "peer %s removed from the mesh list: link closed" % full[2] in logs, logs
            assert "connection to peer" in logs and "mesh peer removed from the list" in logs
        assert "0 added, 2 removed" in relays[2].logs()
        assert not delivers(a, c, b"not any more", timeout=2)
        assert delivers(a, b, b"still fine")
    finally:
        for r in relays:
            r.stop()


def test_own_pod_address_is_recognised_by_key():
    """In Kubernetes the relay finds its own pod address in the list: it
    dials it once, sees its own ServerKey, and never dials it again, also
    across rewrites of the file."""
    key = mesh_key_file()
    other = d.Relay("--mesh-key-file", key)
    path = peers_path()
    port = d.free_port()
    own = url(port, "127.0.0.2")  # not a loopback name it skips by URL
    write_peers(path, [own])
    r = d.Relay("--mesh-key-file", key, "--mesh-peers-file", path, "--listen",
                "0.0.0.0:%d" % port, port=port)
    try:
        wait_for(lambda: "peer %s is this relay itself: skipping it" % own in r.logs(),
                 what="self recognised")
        time.sleep(1.5)  # a redial would come within 0.75 s
        assert dials(r) == 1 and up(r) == 0, r.logs()
        write_peers(path, ["  " + own + "   # this very pod", other.url()])
        wait_for(lambda: up(r) == 1, what="the other relay")
        time.sleep(1)
        assert dials(r) == 2, r.logs()
        assert r.logs().count("is this relay itself") == 1, r.logs()
        assert "1 added, 0 removed, 0 unchanged" in r.logs()
        a, b = d.Client(r.port), d.Client(other.port)
        assert delivers(a, b, b"to the other relay")
    finally:
        r.stop()
        other.stop()


def test_missing_file_then_created_with_a_bad_line():
    key = mesh_key_file()
    other = d.Relay("--mesh-key-file", key)
    path = peers_path()
    r = d.Relay("--mesh-key-file", key, "--mesh-peers-file", path,
                env={"LOFT_LOG_DERP_MESH": "true"})
    try:
        wait_for(lambda: "does not exist: no peers from it until it appears" in r.logs(),
                 what="missing file logged")
        assert up(r) == 0 and dials(r) == 0
        write_peers(path, ["# peers", "", "ftp://relay.example.com/derp",
                           url(other.port) + " " + url(other.port), "\t" + other.url()])
        wait_for(lambda: up(r) == 1, what="peer from the new file")
        logs = r.logs()
        bad = [ln for ln in logs.splitlines() if "line 3:" in ln]
        assert bad and "scheme must be http or https" in bad[0] and "derp" in bad[0], logs
        assert "line 4:" in logs and "one URL per line" in logs, logs
        assert "line 5:" not in logs
        a, b = d.Client(r.port), d.Client(other.port)
        assert delivers(a, b, b"from the file")
        # Other files of the directory changing do not re-read the same text.
        n_bad = r.logs().count("line 3:")
        with open(path + ".unrelated", "w") as f:
            f.write("x\n")
        time.sleep(0.5)
        assert r.logs().count("line 3:") == n_bad
        # Back to no peers: the file goes away.
        os.unlink(path)
        wait_for(lambda: up(r) == 0, what="no peers again")
        assert "removed from the mesh list: link closed" in r.logs()
        write_peers(path, [other.url()])
        wait_for(lambda: up(r) == 1, what="the peer again")
        assert delivers(a, b, b"and again")
    finally:
        r.stop()
        other.stop()


def test_removed_while_dialling_stops_for_good():
    """Peers that never came up (refused, or a name still resolving) stop
    being dialled once removed; their slots serve the next list."""
    key = mesh_key_file()
    path = peers_path()
    write_peers(path, [url(d.free_port()), "http://relay-gone.invalid:8080/derp"])
    r = d.Relay("--mesh-key-file", key, "--mesh-peers-file", path)
    other = d.Relay("--mesh-key-file", key)
    try:
        wait_for(lambda: dials(r) >= 2, what="dialling")
        write_peers(path, [])
        wait_for(lambda: r.logs().count("dialling stopped") == 2, what="both removed")
        time.sleep(0.3)
        n = dials(r)
        time.sleep(1.5)  # a redial would come within 0.75 s
        assert dials(r) == n, r.logs()
        write_peers(path, [other.url()])
        wait_for(lambda: up(r) == 1, what="the next peer")
    finally:
        r.stop()
        other.stop()


def test_peers_file_combines_with_mesh_with():
    key = mesh_key_file()
    x = d.Relay("--mesh-key-file", key)
    y = d.Relay("--mesh-key-file", key)
    path = peers_path()
    write_peers(path, [y.url(), x.url()])  # x also comes from --mesh-with
    r = d.Relay("--mesh-key-file", key, "--mesh-with", x.url(), "--mesh-peers-file", path)
    try:
        wait_for(lambda: up(r) == 2, what="both peers")
        write_peers(path, [])  # x stays: --mesh-with peers are fixed
        wait_for(lambda: up(r) == 1, what="y dropped")
        time.sleep(0.5)
        assert up(r) == 1 and dials(r) == 2, r.logs()
        a, b = d.Client(r.port), d.Client(x.port)
        assert delivers(a, b, b"to the fixed peer")
    finally:
        for p in (r, x, y):
            p.stop()


def test_peers_file_needs_mesh_key():
    try:
        d.Relay("--mesh-peers-file", peers_path())
    except RuntimeError as e:
        assert "--mesh-peers-file needs --mesh-key-file" in str(e), e
        assert "derp" in str(e)
    else:
        raise AssertionError("derp-relay started without --mesh-key-file")


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    d.Suite().run(sys.modules[__name__])
