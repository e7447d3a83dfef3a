"""Interop: Tailscale's own DERP client (derphttp, v1.36.2) against derp-relay.

The Tailscale build lives outside the repository (see docs/INTEROP.md); when
it is not on this machine these tests skip and say so."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402

DERPCLIENT = os.environ.get("DC_TAILSCALE_DERPCLIENT", "/opt/ts-build/bin/derpclient")


def need_client():
    if not os.access(DERPCLIENT, os.X_OK):
        raise d.Skip("no Tailscale derpclient at %s (build it as docs/INTEROP.md says)" % DERPCLIENT)


def run(*args, timeout=60):
    return subprocess.run([DERPCLIENT] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def test_tailscale_client_round_trip():
    need_client()
    r = d.Relay()
    try:
        p = run("roundtrip", r.url())
        assert p.returncode == 0 and p.stdout.startswith("ok rtt="), (p.stdout, p.stderr)
    finally:
        r.stop()


def test_tailscale_mesh_watcher_sees_peers():
    need_client()
    keyfile = os.path.join(d.tempfile.mkdtemp(), "mesh.key")
    mesh = os.urandom(32).hex()
    with open(keyfile, "w") as f:
        f.write(mesh + "\n")
    r = d.Relay("--mesh-key-file", keyfile)
    try:
        a = d.Client(r.port)
        p = run("watch", r.url(), "--mesh-key", mesh, "--seconds", "2")
        assert p.returncode == 0, p.stderr
        assert ("PeerPresent nodekey:" + a.pub.hex()) in p.stdout, p.stdout
        bad = run("watch", r.url(), "--mesh-key", "00" * 32, "--seconds", "2")
        assert bad.returncode != 0, bad.stdout
    finally:
        r.stop()


def test_tailscale_client_bulk_transfer():
    need_client()
    r = d.Relay()
    try:
        p = run("bench", r.url(), "--pairs", "2", "--size", "1200", "--seconds", "1")
        assert p.returncode == 0, p.stderr
        got = dict(kv.split("=") for kv in p.stdout.split())
        assert int(got["packets"]) > 0, p.stdout
    finally:
        r.stop()


if __name__ == "__main__":
    d.Suite().run(sys.modules[__name__])
