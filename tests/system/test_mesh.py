"""System tests: several derp-relay processes meshed on loopback."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402


def mesh_key_file(hexkey=None):
    path = os.path.join(d.tempfile.mkdtemp(), "mesh.key")
    with open(path, "w") as f:
        f.write((hexkey or os.urandom(32).hex()) + "\n")
    return path


def start_mesh(n, keyfile, ports=None, env=None):
    ports = ports or [d.free_port() for _ in range(n)]
    urls = ",".join("http://127.0.0.1:%d/derp" % p for p in ports)  # includes each relay itself
    return [d.Relay("--mesh-key-file", keyfile, "--mesh-with", urls, port=p, env=env)
            for p in ports], ports


def wait_for(cond, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def delivers(sender, receiver, payload, timeout=15):
    """Sends until the packet arrives (mesh announcements take a moment)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sender.send(receiver.pub, payload)
        try:
            while True:
                t, p = receiver.recv({d.F_RECV}, timeout=0.3)
                if p == sender.pub + payload:
                    return True
        except (OSError, EOFError):
            pass
    return False


def test_three_relays_every_pair_delivers():
    relays, _ = start_mesh(3, mesh_key_file())
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 2, what="mesh up")
            assert "is this relay" in r.logs() or "skipping" in r.logs(), r.logs()
        clients = [d.Client(r.port) for r in relays]
        for i, a in enumerate(clients):
            for j, b in enumerate(clients):
                if i != j:
                    assert delivers(a, b, b"%d->%d" % (i, j)), (i, j)
        assert relays[0].metrics()["derp_packets_forwarded_out_total"] >= 2
        logs = relays[0].logs()
        assert "derp-mesh" in logs and "up key=" in logs, logs
    finally:
        for r in relays:
            r.stop()


def test_relay_restart_mesh_reforms():
    keyfile = mesh_key_file()
    relays, ports = start_mesh(3, keyfile)
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 2, what="mesh up")
        a = d.Client(relays[0].port)
        b = d.Client(relays[1].port)
        assert delivers(a, b, b"before")
        relays[1].stop(sig=9)
        wait_for(lambda: relays[0].metrics().get("derp_mesh_peers_up") == 1, what="peer down")
        urls = ",".join("http://127.0.0.1:%d/derp" % p for p in ports)
        relays[1] = d.Relay("--mesh-key-file", keyfile, "--mesh-with", urls, port=ports[1])
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 2, what="mesh re-formed")
        b = d.Client(relays[1].port, key=(b.pub, b.priv))
        assert delivers(a, b, b"after")
        assert delivers(b, a, b"and back")
    finally:
        for r in relays:
            if r.alive():
                r.stop()


def test_wrong_mesh_key_gets_no_powers():
    good = mesh_key_file()
    r1, _ = start_mesh(1, good)
    r1 = r1[0]
    try:
        bad = d.Relay("--mesh-key-file", mesh_key_file(),
                      "--mesh-with", "http://127.0.0.1:%d/derp" % r1.port)
        try:
            wait_for(lambda: "WatchConns without the mesh key" in r1.logs(), what="refusal")
            a = d.Client(r1.port)
            b = d.Client(bad.port)
            assert not delivers(b, a, b"must not pass", timeout=2)
            assert bad.metrics().get("derp_packets_forwarded_out_total", 0) == 0
        finally:
            bad.stop()
    finally:
        r1.stop()


def test_websocket_and_plain_clients_across_the_mesh():
    relays, _ = start_mesh(2, mesh_key_file())
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 1, what="mesh up")
        w = d.Client(relays[0].port, websocket=True)
        p = d.Client(relays[1].port)
        assert delivers(w, p, b"ws to plain")
        assert delivers(p, w, os.urandom(40000))
    finally:
        for r in relays:
            r.stop()


def test_flood_across_the_mesh_keeps_flowing():
    """A full mesh link pauses its senders (backpressure) and resumes them."""
    relays, _ = start_mesh(2, mesh_key_file())
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 1, what="mesh up")
        a = d.Client(relays[0].port)
        b = d.Client(relays[1].port)
        assert delivers(a, b, b"warm-up")
        blob = b"".join(d.frame(d.F_SEND, b.pub + os.urandom(1200)) for _ in range(500))
        got = 0
        b.sock.settimeout(0.001)
        for _ in range(20):  # 10000 packets, as fast as the sockets take them
            a.send_raw(blob)
            try:
                while True:
                    b.recv({d.F_RECV}, timeout=0.001)
                    got += 1
            except (OSError, EOFError):
                pass
        assert delivers(a, b, b"marker after the flood", timeout=20)
        assert got > 0
        assert relays[0].alive() and relays[1].alive()
    finally:
        for r in relays:
            r.stop()


def test_mesh_logs_with_loft_log_derp_mesh():
    relays, _ = start_mesh(2, mesh_key_file(), env={"LOFT_LOG_DERP_MESH": "true"})
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 1, what="mesh up")
        a = d.Client(relays[0].port)
        b = d.Client(relays[1].port)
        assert delivers(a, b, b"x")
        b.close()
        wait_for(lambda: "left" in relays[0].logs(), what="leave logged")
    finally:
        for r in relays:
            r.stop()
    logs = relays[0].logs()
    debug = [ln for ln in logs.splitlines() if " debug " in ln]
    assert debug and all("derp-mesh" in ln for ln in debug), debug
    assert "joined" in logs and "left" in logs


def no_frame(client, types, timeout=1.0):
    """True when no frame of those types arrives within timeout."""
    try:
        client.recv(types, timeout=timeout)
        return False
    except (OSError, EOFError):
        return True


def test_peer_gone_for_a_sender_known_through_the_mesh():
    """As derper (notePeerGoneFromRegionLocked): a local client that received
    packets from a client of a mesh peer hears PeerGone(disconnected) when that
    client leaves the region; a local client that received nothing does not."""
    relays, _ = start_mesh(2, mesh_key_file(), env={"LOFT_LOG_DERP_MESH": "true"})
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 1, what="mesh up")
        receiver = d.Client(relays[0].port)
        bystander = d.Client(relays[0].port)
        far = d.Client(relays[1].port)
        assert delivers(far, receiver, b"from the other relay")
        far.close()
        t, p = receiver.recv({d.F_PEER_GONE}, timeout=10)
        assert p == far.pub + b"\x00", p.hex()
        assert no_frame(bystander, {d.F_PEER_GONE})
        gone = 'derp_peer_gone_frames_total{reason="disconnected"}'
        assert relays[0].metrics()[gone] >= 1

        # A sender that moves from this relay to the peer keeps its receivers:
        # no PeerGone while it is still in the region, one when it leaves.
        mover_key = d.keypair()
        near = d.Client(relays[0].port, key=mover_key)
        assert delivers(near, receiver, b"from next door")
        away = d.Client(relays[1].port, key=mover_key)
        short = mover_key[0][:4].hex()
        wait_for(lambda: "client key=%s joined" % short in relays[0].logs(), what="forwarder")
        near.close()
        assert no_frame(receiver, {d.F_PEER_GONE}, timeout=1.5)
        away.close()
        t, p = receiver.recv({d.F_PEER_GONE}, timeout=10)
        assert p == mover_key[0] + b"\x00", p.hex()
        assert "left the region: PeerGone to 1 receivers" in relays[0].logs()
    finally:
        for r in relays:
            r.stop()


def test_key_on_two_peers_keeps_forwarding_through_the_other():
    """As derper's multiForwarder: a client key connected to two mesh peers at
    once is forwarded through the first that announced it; when it leaves that
    one, packets go on through the other and nobody hears PeerGone."""
    relays, _ = start_mesh(3, mesh_key_file(), env={"LOFT_LOG_DERP_MESH": "true"})
    try:
        for r in relays:
            wait_for(lambda r=r: r.metrics().get("derp_mesh_peers_up") == 2, what="mesh up")
        receiver = d.Client(relays[0].port)
        key = d.keypair()
        first = d.Client(relays[1].port, key=key)
        short = key[0][:4].hex()
        wait_for(lambda: "client key=%s joined" % short in relays[0].logs(), what="forwarder")
        second = d.Client(relays[2].port, key=key)
        wait_for(lambda: "client key=%s is also there" % short in relays[0].logs(),
                 what="second announcement")
        assert delivers(receiver, first, b"to the first home")
        assert delivers(first, receiver, b"from the key")
        # It leaves the later home: the first keeps forwarding, nobody hears PeerGone.
        second.close()
        wait_for(lambda: "client key=%s left; still at" % short in relays[0].logs(),
                 what="left the second")
        assert no_frame(receiver, {d.F_PEER_GONE}, timeout=1.5)
        assert delivers(receiver, first, b"still through the first peer")
        # Back on the second, then gone from the first: packets go on through the second.
        second = d.Client(relays[2].port, key=key)
        wait_for(lambda: relays[0].logs().count("client key=%s is also there" % short) >= 2,
                 what="second announcement again")
        first.close()
        wait_for(lambda: relays[0].logs().count("client key=%s left; still at" % short) >= 2,
                 what="left the first")
        assert no_frame(receiver, {d.F_PEER_GONE}, timeout=1.5)
        assert delivers(receiver, second, b"now through the other peer")
        second.close()
        t, p = receiver.recv({d.F_PEER_GONE}, timeout=10)
        assert p == key[0] + b"\x00", p.hex()
    finally:
        for r in relays:
            r.stop()


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
