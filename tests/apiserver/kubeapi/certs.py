"""CA, server and client certificates made with the openssl command line."""

import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def make_pki(d, extra_clients=()):
    """Create ca.{crt,key}, server.{crt,key}, client.{crt,key} (CN=kubernetes-admin,
    O=system:masters) in directory d, plus one client per (name, cn, orgs) in
    extra_clients.  Returns a dict of paths."""
    os.makedirs(d, exist_ok=True)
    # EC P-256 keys: fast to make, accepted by Go's crypto/tls and by OpenSSL.
    _run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], d)
    _run(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
          "-subj", "/CN=kubernetes-test-ca", "-out", "ca.crt",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"], d)
    _write(os.path.join(d, "server.ext"),
           "basicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=serverAuth\n"
           "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,"
           "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n")
    _write(os.path.join(d, "client.ext"),
           "basicConstraints=critical,CA:FALSE\n"
           "keyUsage=critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage=clientAuth\n")
    _issue(d, "server", "/CN=kube-apiserver", "server.ext")
    _issue(d, "client", "/O=system:masters/CN=kubernetes-admin", "client.ext")
    for name, cn, orgs in extra_clients:
        subj = "".join("/O=%s" % o for o in orgs) + "/CN=%s" % cn
        _issue(d, name, subj, "client.ext")
    paths = {n: os.path.join(d, n) for n in os.listdir(d)}
    return paths


def _issue(d, name, subj, ext):
    _run(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key.ec"], d)
    # PKCS#8 is what both Go and Python load without fuss.
    _run(["pkcs8", "-topk8", "-nocrypt", "-in", name + ".key.ec", "-out", name + ".key"], d)
    os.unlink(os.path.join(d, name + ".key.ec"))
    _run(["req", "-new", "-key", name + ".key", "-subj", subj, "-out", name + ".csr"], d)
    _run(["x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", ext, "-out", name + ".crt"], d)
    os.unlink(os.path.join(d, name + ".csr"))
