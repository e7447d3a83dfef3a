"""System tests: derp-controller in Kubernetes mode against tests/apiserver, driven by real kubectl."""

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import derptest as d  # noqa: E402
import k8stest as k  # noqa: E402
from test_controller import ControllerProcess  # noqa: E402

NS = "vcluster-platform"
API = None


class KubeController(ControllerProcess):
    """derp-controller --kubeconfig against the test API server."""

    def __init__(self, name="replica-a", central="platform.example.com", extra=()):
        super().__init__(["--kubeconfig", API.kubeconfig, "--central-endpoint", central] +
                         list(extra),
                         env={"POD_NAME": name, "POD_NAMESPACE": NS, "LOFT_LOG_DERP": "true"},
                         ready_timeout=20)

    def regions(self):
        return {r["RegionCode"]: r for r in self.derpmap()[0]["Regions"].values()}

    def wait_regions(self, cond, what, timeout=10):
        self.wait(lambda: cond(self.regions()), what, timeout)
        return self.regions()


def apply_cluster(name, endpoint=None, insecure=None, display=None):
    API.kubectl("apply", "-f", "-", stdin=k.cluster_manifest(name, endpoint, insecure, display))


def fresh_api():
    """A new API server per test: tests must not see each other's Clusters."""
    global API
    if k.KUBECTL is None:
        raise d.Skip("kubectl is not installed")
    if API is not None:
        API.stop()
    API = k.ApiServer()
    API.kubectl("create", "namespace", NS)


def configmap_ids():
    cm = API.get_json("configmap", "-n", NS, "derp-controller-region-ids")
    return {n: int(v) for n, v in cm.get("data", {}).items()}


def test_map_follows_kubectl_annotate_overwrite_remove_delete():
    fresh_api()
    apply_cluster("eu-west-cluster", "eu-west-cluster.example.com")
    apply_cluster("us-east", "198.51.100.7:8443", display="US East")
    apply_cluster("no-relay")
    c = KubeController()
    try:
        regs = c.regions()
        assert set(regs) == {"central", "eu-west-cluster", "us-east"}, regs
        assert list(c.derpmap()[0]["Regions"])[0] == "900"
        eu, us = regs["eu-west-cluster"], regs["us-east"]
        assert eu["Nodes"][0]["HostName"] == "eu-west-cluster.example.com"
        assert us["RegionName"] == "US East" and us["Nodes"][0]["IPv4"] == "198.51.100.7"
        assert us["Nodes"][0]["DERPPort"] == 8443
        assert sorted([eu["RegionID"], us["RegionID"]]) == [901, 902]

        # A long-poll parked on the current map is answered by the annotate.
        _, etag, _ = c.derpmap()
        conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=30)
        conn.request("GET", "/derpmap?wait=25", headers={"If-None-Match": etag})
        time.sleep(0.3)
        t0 = time.time()
        API.kubectl("annotate", "cluster", "no-relay", "loft.sh/derp-endpoint=relay.example.org")
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and time.time() - t0 < 5, (r.status, time.time() - t0)
        assert any(x["RegionCode"] == "no-relay" for x in body["Regions"].values())
        conn.close()
        nid = c.regions()["no-relay"]["RegionID"]
        assert nid == 903, nid

        API.kubectl("annotate", "--overwrite", "cluster", "no-relay",
                    "loft.sh/derp-endpoint=relay2.example.org:444")
        regs = c.wait_regions(lambda r: r["no-relay"]["Nodes"][0]["HostName"] == "relay2.example.org",
                              "overwrite")
        assert regs["no-relay"]["RegionID"] == nid and regs["no-relay"]["Nodes"][0]["DERPPort"] == 444

        API.kubectl("annotate", "cluster", "no-relay", "loft.sh/derp-endpoint-insecure=true")
        c.wait_regions(lambda r: r["no-relay"]["Nodes"][0].get("InsecureForTests") is True, "insecure")

        API.kubectl("annotate", "cluster", "no-relay", "loft.sh/derp-endpoint-")
        c.wait_regions(lambda r: "no-relay" not in r, "annotation removal")

        API.kubectl("delete", "cluster", "eu-west-cluster")
        c.wait_regions(lambda r: set(r) == {"central", "us-east"}, "delete")
        # IDs handed out are in the ConfigMap, never reused.
        ids = configmap_ids()
        assert ids == {"eu-west-cluster": 901, "us-east": 902, "no-relay": 903}, ids
        logs = c.logs()
        assert "derp" in logs and "region removed: cluster eu-west-cluster" in logs, logs[-2000:]
    finally:
        c.stop()


def events_for(name):
    evs = API.get_json("events", "-n", "default")["items"]
    return [e for e in evs if e.get("involvedObject", {}).get("name") == name]


def test_invalid_annotation_warning_event_once_then_normal():
    fresh_api()
    apply_cluster("good", "good.example.com")
    c = KubeController()
    try:
        API.kubectl("annotate", "cluster", "good", "--overwrite", "loft.sh/derp-endpoint=https://bad/x")
        c.wait_regions(lambda r: "good" not in r, "the bad cluster left out")
        c.wait(lambda: any(e["reason"] == "InvalidDERPEndpoint" for e in events_for("good")),
               "a Warning Event")
        warn = [e for e in events_for("good") if e["reason"] == "InvalidDERPEndpoint"]
        assert len(warn) == 1 and warn[0]["type"] == "Warning", warn
        assert warn[0]["involvedObject"]["kind"] == "Cluster", warn[0]
        assert "derp" in c.logs() and "cluster good" in c.logs()
        # Other changes do not repeat the warning.
        apply_cluster("other", "other.example.com")
        c.wait_regions(lambda r: "other" in r, "other cluster")
        time.sleep(0.5)
        assert len([e for e in events_for("good") if e["reason"] == "InvalidDERPEndpoint"]) == 1
        out = API.kubectl("get", "events", "-n", "default")
        assert "InvalidDERPEndpoint" in out and "cluster/good" in out, out

        API.kubectl("annotate", "cluster", "good", "--overwrite", "loft.sh/derp-endpoint=good.example.com")
        c.wait_regions(lambda r: "good" in r, "fixed cluster back")
        c.wait(lambda: any(e["reason"] == "DERPEndpointValid" and e["type"] == "Normal"
                           for e in events_for("good")), "a Normal Event")
    finally:
        c.stop()


def test_region_ids_survive_a_controller_restart():
    fresh_api()
    for n in ("alpha", "bravo", "charlie"):
        apply_cluster(n, n + ".example.com")
    c = KubeController()
    try:
        first = {n: r["RegionID"] for n, r in c.regions().items()}
    finally:
        c.stop()
    API.kubectl("delete", "cluster", "alpha")
    apply_cluster("delta", "delta.example.com")
    c = KubeController()
    try:
        regs = c.wait_regions(lambda r: "delta" in r, "delta")
        assert regs["bravo"]["RegionID"] == first["bravo"] and regs["charlie"]["RegionID"] == first["charlie"]
        assert regs["delta"]["RegionID"] not in first.values(), regs  # alpha's ID is not reused
        assert configmap_ids()["alpha"] == first["alpha"]
    finally:
        c.stop()


def test_api_outage_keeps_the_last_map_then_resumes():
    fresh_api()
    apply_cluster("eu", "eu.example.com")
    c = KubeController()
    try:
        _, etag, body = c.derpmap()
        API.fault(action="status", code=503, count=-1)
        API.control("POST", "/close-watches", {"mode": "cut"})
        time.sleep(2)
        status, headers, body2 = c.get("/derpmap")
        assert status == 200 and body2 == body and headers["ETag"] == etag
        assert c.get("/healthz")[0] == 200 and c.get("/readyz")[0] == 200
        API.clear_faults()
        # The watch resumes (backoff up to a few seconds) and sees new changes.
        API.kubectl("annotate", "cluster", "eu", "--overwrite", "loft.sh/derp-endpoint=eu2.example.com")
        c.wait_regions(lambda r: r["eu"]["Nodes"][0]["HostName"] == "eu2.example.com", "resume", 40)
        assert c.metrics()["derp_k8s_watch_restarts_total"] >= 1
    finally:
        c.stop()


def lease_holder():
    return API.get_json("lease", "-n", NS, "derp-controller")["spec"].get("holderIdentity", "")


def test_two_replicas_one_leader_same_map_clean_handover():
    fresh_api()
    apply_cluster("eu", "eu.example.com")
    a = KubeController("replica-a")
    b = KubeController("replica-b")
    try:
        leaders = [x for x in (a, b) if x.metrics()["derp_controller_leader"] == 1]
        assert len(leaders) == 1, [x.metrics()["derp_controller_leader"] for x in (a, b)]
        leader, other = leaders[0], (b if leaders[0] is a else a)
        assert lease_holder() == ("replica-a" if leader is a else "replica-b")
        apply_cluster("us", "us.example.com")
        for x in (a, b):
            x.wait_regions(lambda r: "us" in r, "us on both replicas")
        a.wait(lambda: a.derpmap()[2] == b.derpmap()[2], "identical maps")
        # SIGTERM: the leader gives the Lease up; the other takes over without waiting 15 s.
        t0 = time.time()
        leader.stop()
        other.wait(lambda: other.metrics()["derp_controller_leader"] == 1, "the other leading", 10)
        assert time.time() - t0 < 8, time.time() - t0
        apply_cluster("ap", "ap.example.com")
        regs = other.wait_regions(lambda r: "ap" in r, "new cluster under the new leader")
        assert regs["ap"]["RegionID"] == 903, regs
        assert lease_holder() == ("replica-b" if leader is a else "replica-a")
    finally:
        for x in (a, b):
            if not x.log.closed:
                x.stop()


def endpointslice(name, addresses, port=3340, ready=None):
    eps = []
    for a in addresses:
        e = {"addresses": [a]}
        if ready is not None:
            e["conditions"] = {"ready": ready.get(a, True)}
        eps.append(e)
    return json.dumps({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": name, "namespace": NS,
                                    "labels": {"kubernetes.io/service-name": "derp"}},
                       "addressType": "IPv4", "endpoints": eps,
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                 {"name": "derp", "port": port, "protocol": "TCP"}]})


def test_mesh_peers_follow_the_services_endpointslices():
    fresh_api()
    peers = os.path.join(tempfile.mkdtemp(), "mesh-peers")
    API.kubectl("apply", "-f", "-", stdin=endpointslice("derp-a", ["10.0.0.5", "10.0.0.6"]))
    other = json.loads(endpointslice("other-a", ["10.9.9.9"]))
    other["metadata"]["labels"]["kubernetes.io/service-name"] = "not-derp"
    API.kubectl("apply", "-f", "-", stdin=json.dumps(other))
    c = KubeController(extra=["--mesh-service", "derp", "--mesh-peers-file", peers])

    def content():
        try:
            with open(peers) as f:
                return f.read()
        except FileNotFoundError:
            return None
    try:
        c.wait(lambda: content() == "http://10.0.0.5:3340/derp\nhttp://10.0.0.6:3340/derp\n",
               "the first peers")
        # Scale up (a second slice), mark one not ready, then scale down.
        API.kubectl("apply", "-f", "-", stdin=endpointslice("derp-b", ["10.0.0.7"]))
        c.wait(lambda: "10.0.0.7" in (content() or ""), "scale up")
        API.kubectl("apply", "-f", "-", stdin=endpointslice("derp-a", ["10.0.0.5", "10.0.0.6"],
                                                            ready={"10.0.0.6": False}))
        c.wait(lambda: content() == "http://10.0.0.5:3340/derp\nhttp://10.0.0.7:3340/derp\n",
               "not ready left out")
        API.kubectl("delete", "endpointslice", "-n", NS, "derp-b")
        c.wait(lambda: content() == "http://10.0.0.5:3340/derp\n", "scale down")
        assert c.metrics()["derp_mesh_peers"] == 1
        assert "mesh peers from EndpointSlices" in c.logs()
    finally:
        c.stop()


def connect(port, deadline):
    while True:
        try:
            return d.Client(port)
        except OSError:
            assert time.time() < deadline, "relay on %d never answered" % port
            time.sleep(0.1)


def delivered(a, b, payload, deadline):
    """Sends until b receives payload from a (the mesh may still be forming)."""
    while time.time() < deadline:
        a.send(b.pub, payload)
        try:
            t, p = b.recv({d.F_RECV}, timeout=0.5)
            if p[32:] == payload:
                return True
        except OSError:
            pass
    return False


def test_supervised_relays_mesh_from_endpointslices_and_scale_down():
    fresh_api()
    work = tempfile.mkdtemp()
    key = os.path.join(work, "mesh-key")
    with open(key, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    pa, pb = d.free_port(), d.free_port()
    for name, port in (("derp-a", pa), ("derp-b", pb)):
        API.kubectl("apply", "-f", "-", stdin=endpointslice(name, ["127.0.0.1"], port=port))
    reps = []
    try:
        for name, port in (("replica-a", pa), ("replica-b", pb)):
            reps.append(KubeController(name, extra=[
                "--relay", "--relay-listen", "127.0.0.1:%d" % port, "--stun-listen", "off",
                "--drain-ms", "100", "--mesh-key-file", key, "--mesh-service", "derp",
                "--mesh-peers-file", os.path.join(work, name + ".peers"),
                "--probe-interval", "0"]))
        deadline = time.time() + 20
        ca, cb = connect(pa, deadline), connect(pb, deadline)
        # Each relay skips itself and meshes with the other: packets cross.
        assert delivered(ca, cb, b"a to b across the mesh", deadline), reps[0].logs()[-2000:]
        assert delivered(cb, ca, b"b to a across the mesh", deadline), reps[1].logs()[-2000:]
        # Scale down: B's slice goes; A's relay drops its link to B, with no restart.
        API.kubectl("delete", "endpointslice", "-n", NS, "derp-b")
        reps[0].wait(lambda: reps[0].metrics()["derp_mesh_peers"] == 1, "A's peers file shrinks")
        def links_up():
            c = http.client.HTTPConnection("127.0.0.1", pa, timeout=5)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
            c.close()
            return "\nderp_mesh_peers_up 0\n" in text
        reps[0].wait(links_up, "A's relay drops its mesh link to B")
        assert "derp_relay_restarts_total 0" in reps[0].get("/metrics")[2].decode()
        ca.close()
        cb.close()
    finally:
        for r in reps:
            r.stop()


def test_relay_probe_events_on_the_cluster():
    fresh_api()
    port = d.free_port()
    apply_cluster("flaky", "127.0.0.1:%d" % port)
    c = KubeController(extra=["--probe-interval", "300ms", "--probe-timeout", "1s",
                              "--probe-plain-http"])
    relay = None
    try:
        c.wait(lambda: any(e["reason"] == "DERPRelayUnreachable" and e["type"] == "Warning"
                           for e in events_for("flaky")), "a DERPRelayUnreachable Event")
        relay = d.Relay(port=port)
        c.wait(lambda: any(e["reason"] == "DERPRelayHealthy" and e["type"] == "Normal"
                           for e in events_for("flaky")), "a DERPRelayHealthy Event")
        assert c.metrics()['derp_region_up{region="flaky",region_id="901"}'] == 1
        down = [e for e in events_for("flaky") if e["reason"] == "DERPRelayUnreachable"]
        assert len(down) == 1, down  # one Event, counted, not one per probe
    finally:
        c.stop()
        if relay is not None:
            relay.stop()


if __name__ == "__main__":
    try:
        d.Suite().run(sys.modules[__name__])
    finally:
        if API is not None:
            API.stop()
