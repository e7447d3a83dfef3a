#!/usr/bin/env python3
"""The container image, for real: podman builds the Dockerfile from the local
Debian base images (.ci/base-images makes them), then

  1. the image's metadata: user 65532:65532, entrypoint, ports, volume, labels;
  2. its derp-relay on the host's network answers /healthz and carries a
     packet for the host's own derp-probe (build/bin), running as 65532;
  3. its default command (derp-controller --relay) in a network of its own,
     with the example Clusters mounted, serves their DERP map and relays a
     packet for the image's own derp-probe, keeping its state in the volume.

Containers are removed whatever happens. Skips (exit 77, which ctest reads
as skipped) when podman or runc is missing, when rootless podman cannot run,
or when the base images are missing and debootstrap is not there to make
them. Standard library only. Environment: DC_BIN (the host's programs, for
derp-probe), DC_IMAGE_CONTEXT (build context, default the repository),
DC_IMAGE_TAG (default localhost/derp-controller:test)."""

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("DC_BIN", os.path.join(REPO, "build", "bin"))
CONTEXT = os.environ.get("DC_IMAGE_CONTEXT", REPO)
TAG = os.environ.get("DC_IMAGE_TAG", "localhost/derp-controller:test")
SKIP = 77

# On these machines podman needs runc (crun refuses the hybrid cgroup layout)
# and ulimits no higher than the hard limits.
PODMAN = ["podman", "--runtime", "runc"]


def ulimits():
    def cap(v, most):
        return most if v == resource.RLIM_INFINITY or v > most else v

    nofile = cap(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
    nproc = cap(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
    return ["--ulimit", "nofile=%d:%d" % (nofile, nofile), "--ulimit", "nproc=%d:%d" % (nproc, nproc)]


def podman(*args, timeout=120, check=True, capture=True):
    p = subprocess.run(PODMAN + list(args), timeout=timeout, text=True,
                       stdout=subprocess.PIPE if capture else None,
                       stderr=subprocess.STDOUT if capture else None)
    if check and p.returncode != 0:
        raise AssertionError("podman %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stdout))
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path, timeout=2):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def skip_reason():
    if shutil.which("podman") is None:
        return "podman not installed (bash .ci/base-images installs it)"
    if shutil.which("runc") is None:
        return "runc not installed (bash .ci/base-images installs it)"
    p = subprocess.run(PODMAN + ["info", "--format", "{{.Host.OCIRuntime.Name}}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    if p.returncode != 0:
        who = "rootless " if os.getuid() != 0 else ""
        last = (p.stdout.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        return "%spodman cannot run here: %s" % (who, last)
    if not os.path.exists(os.path.join(BIN, "derp-probe")):
        return "no derp-probe in %s (build first)" % BIN
    missing = [i for i in ("debian:bookworm", "debian:bookworm-slim")
               if subprocess.run(PODMAN + ["image", "exists", i]).returncode != 0]
    if missing:
        if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
            return "base images %s missing and no debootstrap to make them (bash .ci/base-images)" % missing
        if os.getuid() != 0:
            return "base images %s missing; make them with bash .ci/base-images" % missing
        print("making base images %s with .ci/base-images" % missing, flush=True)
        t0 = time.time()
        subprocess.run(["bash", os.path.join(REPO, ".ci", "base-images")], check=True, timeout=1200)
        print("base images made in %.0fs" % (time.time() - t0), flush=True)
    return None


def build_image():
    old = podman("image", "inspect", "--format", "{{.Id}}", TAG, check=False).stdout.strip()
    rev = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout.strip() or "unknown"
    log = tempfile.NamedTemporaryFile(prefix="derp-image-build-", suffix=".log", delete=False)
    t0 = time.time()
    p = subprocess.run(PODMAN + ["build", "--pull=never", "--network", "host"] + ulimits() +
                       ["--build-arg", "REVISION=" + rev, "-t", TAG, "-f",
                        os.path.join(CONTEXT, "Dockerfile"), CONTEXT],
                       stdout=log, stderr=subprocess.STDOUT, timeout=1500)
    log.close()
    took = time.time() - t0
    if p.returncode != 0:
        with open(log.name, errors="replace") as f:
            tail = f.read()[-6000:]
        raise AssertionError("podman build failed (exit %d, %.0fs); log %s:\n%s"
                             % (p.returncode, took, log.name, tail))
    os.unlink(log.name)
    new = podman("image", "inspect", "--format", "{{.Id}}", TAG).stdout.strip()
    if old and old != new:  # the image this tag named before: no longer needed
        podman("rmi", old, check=False)
    print("image %s built in %.0fs" % (TAG, took), flush=True)


class Container:
    """A detached container, removed (with its anonymous volume) on exit."""

    def __init__(self, *args):
        self.name = "derp-image-test-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        podman("run", "-d", "--name", self.name, *ulimits(), *args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print(self.logs()[-4000:], flush=True)
        podman("rm", "-f", "-v", "-t", "5", self.name, check=False, timeout=60)

    def logs(self):
        return podman("logs", self.name, check=False).stdout

    def running(self):
        p = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return p.stdout.strip() == "true"

    def exec(self, *args, check=True):
        return podman("exec", self.name, *args, check=check)


def wait_for(what, fn, container, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if not container.running():
            raise AssertionError("container exited while waiting for %s:\n%s" % (what, container.logs()))
        try:
            r = fn()
            if r:
                return r
        except (OSError, AssertionError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s (%r):\n%s" % (what, last, container.logs()))


def proc1_uid_gid(c):
    status = c.exec("cat", "/proc/1/status").stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return fields["Uid"].split()[0], fields["Gid"].split()[0], fields["Name"].strip()


# ----------------------------------------------------------------------------- tests

def test_image_metadata():
    info = json.loads(podman("image", "inspect", TAG).stdout)[0]
    cfg = info["Config"]
    assert cfg.get("User") == "65532:65532", cfg.get("User")
    assert cfg.get("Entrypoint") == ["derp-controller"], cfg.get("Entrypoint")
    assert cfg.get("Cmd") and "--relay" in cfg["Cmd"], cfg.get("Cmd")
    assert set(cfg.get("ExposedPorts", {})) == {"8080/tcp", "3340/tcp", "3478/udp"}, cfg.get("ExposedPorts")
    assert "/var/lib/derp" in cfg.get("Volumes", {}), cfg.get("Volumes")
    assert cfg.get("WorkingDir") == "/var/lib/derp", cfg.get("WorkingDir")
    labels = cfg.get("Labels") or {}
    for k in ("org.opencontainers.image.title", "org.opencontainers.image.version",
              "org.opencontainers.image.revision"):
        assert labels.get(k), (k, labels)
    out = podman("run", "--rm", "--network", "none", *ulimits(), "--entrypoint", "id", TAG).stdout
    assert out.strip() == "uid=65532(derp) gid=65532(derp) groups=65532(derp)", out
    out = podman("run", "--rm", "--network", "none", *ulimits(), "--entrypoint", "sh", TAG, "-c",
                 "ls /usr/local/bin; stat -c '%u:%g %a' /var/lib/derp; "
                 "ldd /usr/local/bin/derp-* | grep -c 'not found' || true").stdout.split()
    assert out == ["derp-controller", "derp-probe", "derp-relay", "65532:65532", "750", "0"], out
    size = int(info.get("Size", 0))
    print("image size %.1f MB" % (size / 1e6), flush=True)
    assert 0 < size < 250e6, size


def test_relay_on_host_network():
    port = free_port()
    with Container("--network", "host", "--entrypoint", "derp-relay", TAG,
                   "--listen", "127.0.0.1:%d" % port, "--stun-listen", "off",
                   "--key-file", "/var/lib/derp/derp-relay.key", "--drain-ms", "100") as c:
        head = wait_for("/healthz", lambda: http_get(port, "/healthz"), c)
        assert head.startswith(b"HTTP/1.1 200 "), head[:200]
        p = subprocess.run([os.path.join(BIN, "derp-probe"), "--timeout-ms", "5000",
                            "http://127.0.0.1:%d/derp" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        assert p.returncode == 0, "derp-probe exit %d:\n%s\n%s" % (p.returncode, p.stdout, c.logs())
        print("host derp-probe: %s" % p.stdout.strip().splitlines()[-1:], flush=True)
        uid, gid, name = proc1_uid_gid(c)
        assert (uid, gid, name) == ("65532", "65532", "derp-relay"), (uid, gid, name)
        assert c.exec("id", "-u").stdout.strip() == "65532"
        key = c.exec("stat", "-c", "%u %a", "/var/lib/derp/derp-relay.key").stdout.split()
        assert key == ["65532", "600"], key
        assert "derp" in c.logs().lower()


def test_default_command_with_example_clusters():
    clusters = tempfile.mkdtemp(prefix="derp-image-clusters-")
    try:
        src = os.path.join(REPO, "manifests", "examples", "clusters")
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), clusters)
            os.chmod(os.path.join(clusters, f), 0o644)
        os.chmod(clusters, 0o755)
        # Its own network namespace (loopback only): the default ports clash
        # with nothing on the host, and the image's own tools do the probing.
        with Container("--network", "none", "-v", "%s:/etc/derp/clusters:ro" % clusters, TAG) as c:
            get = ("exec 3<>/dev/tcp/127.0.0.1/%s && printf 'GET %s HTTP/1.1\\r\\nHost: x\\r\\n"
                   "Connection: close\\r\\n\\r\\n' >&3 && cat <&3")

            def fetch(port, path):
                r = c.exec("bash", "-c", get % (port, path), check=False)
                return r.stdout if r.returncode == 0 else None

            health = wait_for("controller /healthz", lambda: fetch(8080, "/healthz"), c)
            assert health.startswith("HTTP/1.1 200 "), health[:200]
            relay = wait_for("relay /healthz", lambda: fetch(3340, "/healthz"), c)
            assert relay.startswith("HTTP/1.1 200 "), relay[:200]
            dm = fetch(8080, "/derpmap")
            body = json.loads(dm.split("\n\n", 1)[1])  # text mode: \r\n read as \n
            codes = sorted(r["RegionCode"] for r in body["Regions"].values())
            assert "central" in codes and "eu-west-cluster" in codes, codes
            p = c.exec("derp-probe", "--timeout-ms", "5000", "http://127.0.0.1:3340/derp", check=False)
            assert p.returncode == 0, "derp-probe in the image: exit %d\n%s" % (p.returncode, p.stdout)
            uid, gid, name = proc1_uid_gid(c)
            assert (uid, gid, name) == ("65532", "65532", "derp-controller"), (uid, gid, name)
            state = c.exec("sh", "-c", "stat -c '%n %u' /var/lib/derp/*").stdout.split("\n")
            names = sorted(line.split()[0] for line in state if line)
            assert names == ["/var/lib/derp/derp-relay.key", "/var/lib/derp/region-ids.json"], state
            assert all(line.endswith(" 65532") for line in state if line), state
            print("default command: %d regions %s" % (len(codes), codes), flush=True)
    finally:
        shutil.rmtree(clusters, ignore_errors=True)


def main():
    t_start = time.time()
    why = skip_reason()
    if why:
        print("SKIP all: %s" % why)
        print("0 passed, 0 failed, 1 skipped")
        return SKIP
    try:
        build_image()
    except Exception as e:
        print("FAIL build: %s" % e, flush=True)
        print("0 passed, 1 failed, 0 skipped")
        return 1
    passed = failed = 0
    for fn in (test_image_metadata, test_relay_on_host_network, test_default_command_with_example_clusters):
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("PASS %s (%.1fs)" % (fn.__name__, time.time() - t0), flush=True)
        except Exception as e:
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s" % (fn.__name__, e), flush=True)
    leftover = podman("ps", "-a", "--filter", "name=derp-image-test-", "--format", "{{.Names}}").stdout.split()
    if leftover:
        failed += 1
        print("FAIL containers left behind: %s" % leftover, flush=True)
    print("time %.0fs" % (time.time() - t_start))
    print("%d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
