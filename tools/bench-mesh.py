#!/usr/bin/env python3
"""Generate a big mesh as a mesh-why snapshot: the objects as ``kubectl get -o json`` writes
them, and the caller's proxy captured from a REAL Envoy that holds what istiod pushes.

Usage: tools/bench-mesh.py --services N OUT_DIR [--callers K] [--objects-only]

The mesh: N Services (port 9080, ``http``) in namespaces of ``PER_NAMESPACE``; each has three
versions (a Deployment, an injected Pod and an EndpointSlice endpoint per version), a
DestinationRule with subsets v1/v2/v3 and a VirtualService splitting 80/10/10. The callers
(``productpage-vK``, namespace ``bench-000``) have no Sidecar resource, so istiod pushes them
every service: 4 clusters per Service (the default and three subsets), one virtual host per
Service in route config ``9080``.

Objects are written one file per kind and namespace (``objects/pods-bench-000.json``, a
``kind: List`` as ``kubectl get pods -n bench-000 -o json`` writes), sized like real exports
(injected pods with the istio-proxy container, its env and volumes).

The push is expanded by ``tools/istiod-push.py`` into Istio-shaped xDS, loaded into Envoy
(``tests/harness/envoy.py``) and captured from its admin API into
``proxies/bench-000/POD/``. The xDS set and node of each caller are kept under
``OUT_DIR/xds/POD/``, for a live run to serve; ``--xds-only`` skips the capture.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "tools"))
import envoy  # noqa: E402
import importlib  # noqa: E402

istiod_push = importlib.import_module("istiod-push")

PER_NAMESPACE = 100
PORT = 9080
VERSIONS = ("v1", "v2", "v3")
WEIGHTS = (80, 10, 10)
CALLER_NS = "bench-000"
CREATED = "2026-01-10T09:00:00Z"
ISTIO = "1.24.2"


def namespace_of(i: int) -> str:
    return f"bench-{i // PER_NAMESPACE:03d}"


def service_name(i: int) -> str:
    return f"svc-{i:05d}"


def vip(i: int) -> str:
    return f"10.{96 + i // 65536}.{i // 256 % 256}.{i % 256}"


def pod_ip(j: int) -> str:
    return f"10.{128 + j // 65536}.{j // 256 % 256}.{j % 256}"


def uid(kind: int, n: int) -> str:
    return f"{kind:08x}-{n >> 16 & 0xffff:04x}-4{n >> 4 & 0xfff:03x}-8{n & 0xf:03x}-{n:012x}"


def suffix(n: int, length: int) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    out = ""
    for _ in range(length):
        out += alphabet[n % len(alphabet)]
        n //= len(alphabet)
    return out


def meta(name: str, ns: str, n: int, kind: int, **extra) -> dict:
    """ObjectMeta; cluster-scoped when ns is empty."""
    namespace = {"namespace": ns} if ns else {}
    return {"name": name, **namespace, "uid": uid(kind, n), "resourceVersion": str(100000 + n),
            "creationTimestamp": CREATED, **extra}


def istio_proxy_container(app: str) -> dict:
    env = [{"name": k, "value": v} for k, v in [
        ("PILOT_CERT_PROVIDER", "istiod"), ("CA_ADDR", "istiod.istio-system.svc:15012"),
        ("PROXY_CONFIG", "{}\n"), ("ISTIO_META_POD_PORTS", f'[{{"name":"http","containerPort":{PORT},"protocol":"TCP"}}]'),
        ("ISTIO_META_APP_CONTAINERS", app), ("GOMEMLIMIT", "1073741824"), ("GOMAXPROCS", "2"),
        ("ISTIO_META_CLUSTER_ID", "Kubernetes"), ("ISTIO_META_NODE_NAME", "worker-1"),
        ("ISTIO_META_INTERCEPTION_MODE", "REDIRECT"), ("ISTIO_META_WORKLOAD_NAME", app),
        ("ISTIO_META_MESH_ID", "cluster.local"), ("TRUST_DOMAIN", "cluster.local")]]
    env += [{"name": k, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": p}}} for k, p in [
        ("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("INSTANCE_IP", "status.podIP"),
        ("SERVICE_ACCOUNT", "spec.serviceAccountName"), ("HOST_IP", "status.hostIP"),
        ("ISTIO_CPU_LIMIT", "limits.cpu")]]
    mounts = [{"name": n, "mountPath": p} for n, p in [
        ("workload-socket", "/var/run/secrets/workload-spiffe-uds"), ("credential-socket", "/var/run/secrets/credential-uds"),
        ("workload-certs", "/var/run/secrets/workload-spiffe-credentials"), ("istiod-ca-cert", "/var/run/secrets/istio"),
        ("istio-data", "/var/lib/istio/data"), ("istio-envoy", "/etc/istio/proxy"), ("istio-token", "/var/run/secrets/tokens"),
        ("istio-podinfo", "/etc/istio/pod")]]
    return {"name": "istio-proxy", "image": f"docker.io/istio/proxyv2:{ISTIO}",
            "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                     "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
            "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
            "env": env, "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
            "volumeMounts": mounts,
            "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                               "initialDelaySeconds": 1, "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4},
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
                                "readOnlyRootFilesystem": True, "runAsGroup": 1337, "runAsNonRoot": True, "runAsUser": 1337},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}


def pod(app: str, version: str, ns: str, j: int, ip: str) -> dict:
    template_hash = suffix(j * 7919, 10)
    name = f"{app}-{version}-{template_hash}-{suffix(j * 104729, 5)}"
    labels = {"app": app, "version": version, "pod-template-hash": template_hash, "security.istio.io/tlsMode": "istio",
              "service.istio.io/canonical-name": app, "service.istio.io/canonical-revision": version}
    annotations = {"istio.io/rev": "default", "kubectl.kubernetes.io/default-container": app,
                   "kubectl.kubernetes.io/default-logs-container": app, "prometheus.io/path": "/stats/prometheus",
                   "prometheus.io/port": "15020", "prometheus.io/scrape": "true",
                   "sidecar.istio.io/status": json.dumps({"initContainers": ["istio-init"], "containers": ["istio-proxy"],
                                                          "volumes": ["workload-socket", "credential-socket", "workload-certs",
                                                                      "istio-envoy", "istio-data", "istio-podinfo", "istio-token",
                                                                      "istiod-ca-cert"], "imagePullSecrets": None, "revision": "default"})}
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-{version}-{template_hash}", "uid": uid(5, j),
             "controller": True, "blockOwnerDeletion": True}
    started = {"running": {"startedAt": CREATED}}
    statuses = [{"name": n, "ready": True, "restartCount": 0, "started": True, "image": img, "imageID": f"{img}@sha256:{uid(9, j)}",
                 "containerID": f"containerd://{uid(10, j)}{uid(11, j)}"[:77], "state": started, "lastState": {}}
                for n, img in [(app, f"registry.example/{app}:{version}"), ("istio-proxy", f"docker.io/istio/proxyv2:{ISTIO}")]]
    volumes = [{"name": "workload-socket", "emptyDir": {}}, {"name": "credential-socket", "emptyDir": {}},
               {"name": "workload-certs", "emptyDir": {}}, {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
               {"name": "istio-data", "emptyDir": {}},
               {"name": "istio-podinfo", "downwardAPI": {"defaultMode": 420, "items": [
                   {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}, "path": "labels"},
                   {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}, "path": "annotations"}]}},
               {"name": "istio-token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {
                   "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
               {"name": "istiod-ca-cert", "configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}},
               {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                   {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                   {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                   {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": meta(name, ns, j, 1, generateName=f"{app}-{version}-{template_hash}-", labels=labels,
                         annotations=annotations, ownerReferences=[owner]),
        "spec": {
            "serviceAccountName": app, "serviceAccount": app, "nodeName": f"worker-{j % 50}",
            "initContainers": [{"name": "istio-init", "image": f"docker.io/istio/proxyv2:{ISTIO}",
                                "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*",
                                         "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
                                "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                                                    "runAsGroup": 0, "runAsNonRoot": False, "runAsUser": 0}}],
            "containers": [{"name": app, "image": f"registry.example/{app}:{version}",
                            "ports": [{"containerPort": PORT, "protocol": "TCP"}],
                            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                            "imagePullPolicy": "IfNotPresent"},
                           istio_proxy_container(app)],
            "volumes": volumes, "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [{"effect": "NoExecute", "key": f"node.kubernetes.io/{t}", "operator": "Exists", "tolerationSeconds": 300}
                            for t in ("not-ready", "unreachable")]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": f"192.168.0.{j % 50 + 10}",
                   "startTime": CREATED, "qosClass": "Burstable",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": CREATED, "lastProbeTime": None}
                                  for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
                   "containerStatuses": statuses},
    }, name


def deployment(app: str, version: str, ns: str, j: int) -> dict:
    labels = {"app": app, "version": version}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(f"{app}-{version}", ns, j, 2, generation=1, labels=labels,
                             annotations={"deployment.kubernetes.io/revision": "1"}),
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "serviceAccountName": app,
                         "containers": [{"name": app, "image": f"registry.example/{app}:{version}",
                                         "ports": [{"containerPort": PORT, "protocol": "TCP"}]}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}}


def service(app: str, ns: str, n: int, cluster_ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": meta(app, ns, n, 3, labels={"app": app, "service": app}),
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "type": "ClusterIP", "selector": {"app": app},
                     "ports": [{"name": "http", "port": PORT, "protocol": "TCP", "targetPort": PORT}],
                     "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}}


def endpoint_slice(app: str, ns: str, n: int, pods: list) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(f"{app}-{suffix(n, 5)}", ns, n, 4, generateName=f"{app}-",
                             labels={"app": app, "service": app, "kubernetes.io/service-name": app,
                                     "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                             ownerReferences=[{"apiVersion": "v1", "kind": "Service", "name": app, "uid": uid(3, n),
                                               "controller": True, "blockOwnerDeletion": True}]),
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": f"worker-{j % 50}", "targetRef": {"kind": "Pod", "name": name, "namespace": ns, "uid": uid(1, j)}}
                          for name, ip, j in pods],
            "ports": [{"name": "http", "port": PORT, "protocol": "TCP"}]}


def istio(kind: str, name: str, ns: str, n: int, spec: dict) -> dict:
    return {"apiVersion": "networking.istio.io/v1", "kind": kind,
            "metadata": meta(name, ns, n, 6 if kind == "VirtualService" else 7, generation=1), "spec": spec}


def virtual_service(app: str, ns: str, n: int) -> dict:
    return istio("VirtualService", app, ns, n, {"hosts": [app], "http": [{"route": [
        {"destination": {"host": app, "subset": v}, "weight": w} for v, w in zip(VERSIONS, WEIGHTS)]}]})


def destination_rule(app: str, ns: str, n: int) -> dict:
    return istio("DestinationRule", app, ns, n, {"host": app, "subsets": [{"name": v, "labels": {"version": v}} for v in VERSIONS]})


def kube_list(items: list) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def generate_objects(n_services: int, callers: int, out: Path) -> tuple[dict, list]:
    """Writes objects/; returns the compact push (without node) and the callers' nodes."""
    objects = out / "objects"
    objects.mkdir(parents=True)
    namespaces = sorted({namespace_of(i) for i in range(n_services)} | {CALLER_NS})
    (objects / "namespaces.json").write_text(json.dumps(kube_list([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(ns, "", k, 8, labels={"istio-injection": "enabled",
                                                                                      "kubernetes.io/metadata.name": ns}),
         "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}} for k, ns in enumerate(namespaces)]), indent=4))
    mesh = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("istio", "istio-system", 0, 12),
            "data": {"mesh": "rootNamespace: istio-system\nenableAutoMtls: true\n"}}
    (objects / "configmaps-istio-system.json").write_text(json.dumps(kube_list([mesh]), indent=4))
    push_services = []
    nodes = []
    by_ns: dict[str, dict[str, list]] = {ns: {k: [] for k in ("pods", "deployments", "services", "endpointslices",
                                                               "virtualservices", "destinationrules")} for ns in namespaces}
    for c in range(callers):
        version = f"v{c + 1}"
        j = 3 * n_services + c
        ip = pod_ip(j)
        p, name = pod("productpage", version, CALLER_NS, j, ip)
        by_ns[CALLER_NS]["pods"].append(p)
        by_ns[CALLER_NS]["deployments"].append(deployment("productpage", version, CALLER_NS, j))
        nodes.append({"pod_name": name, "namespace": CALLER_NS, "pod_ip": ip, "app": "productpage", "version": version,
                      "istio_version": ISTIO})
    for i in range(n_services):
        app, ns = service_name(i), namespace_of(i)
        kinds = by_ns[ns]
        backends = []
        for k, version in enumerate(VERSIONS):
            j = 3 * i + k
            ip = pod_ip(j)
            p, name = pod(app, version, ns, j, ip)
            kinds["pods"].append(p)
            kinds["deployments"].append(deployment(app, version, ns, j))
            backends.append((name, ip, j))
        kinds["services"].append(service(app, ns, i, vip(i)))
        kinds["endpointslices"].append(endpoint_slice(app, ns, i, backends))
        kinds["virtualservices"].append(virtual_service(app, ns, i))
        kinds["destinationrules"].append(destination_rule(app, ns, i))
        host = f"{app}.{ns}.svc.cluster.local"
        subsets = {"": [[ip, PORT, "HEALTHY"] for _, ip, _ in backends]}
        subsets.update({v: [[ip, PORT, "HEALTHY"]] for v, (_, ip, _) in zip(VERSIONS, backends)})
        push_services.append({"host": host, "port": PORT, "vip": vip(i), "vs": f"{ns}/{app}", "dr": f"{ns}/{app}",
                              "routes": [{"to": [[v, w] for v, w in zip(VERSIONS, WEIGHTS)]}], "subsets": subsets})
    for ns, kinds in by_ns.items():
        for kind, items in kinds.items():
            if items:
                (objects / f"{kind}-{ns}.json").write_text(json.dumps(kube_list(items), indent=4))
    return {"services": push_services}, nodes


class RestEds:
    """Serves EDS over Envoy's REST-JSON xDS protocol (POST /v3/discovery:endpoints) on
    loopback. File-based EDS needs one file watch per cluster, and 20,000 exceed the kernel's
    inotify limits; one server answers every cluster's subscription instead."""

    CLUSTER = "xds-rest"

    def __init__(self, endpoints_file: Path):
        assignments = {a["cluster_name"]: a for a in json.loads(endpoints_file.read_text())["resources"]}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                names = request.get("resource_names", [])
                body = json.dumps(envoy.discovery_response("1", "envoy.config.endpoint.v3.ClusterLoadAssignment",
                                                           [assignments[n] for n in names if n in assignments])).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # Envoy opens its connections at once; the default backlog of 5 refuses most.
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def static_cluster(self) -> dict:
        cluster = envoy.static_cluster(self.CLUSTER, self.server.server_address[1])
        # Envoy's one worker is busy for minutes building 20,000 clusters: a connection it
        # opened in the meantime is only seen established much later, and the answers queue
        # behind it (hence the long request timeout above too).
        cluster["connect_timeout"] = "600s"
        # Every cluster's subscription is one request, all sent at once: Envoy's default of
        # 1,024 pending requests fails the rest, which then wait for the refresh (an hour).
        cluster["circuit_breakers"] = {"thresholds": [{"max_connections": 64, "max_pending_requests": 1 << 20, "max_requests": 1 << 20}]}
        return cluster

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @classmethod
    def point_clusters_here(cls, clusters_file: Path) -> None:
        """Rewrites each EDS cluster's eds_config to ask this server."""
        document = json.loads(clusters_file.read_text())
        for cluster in document["resources"]:
            if "eds_cluster_config" in cluster:
                cluster["eds_cluster_config"]["eds_config"] = {
                    "api_config_source": {"api_type": "REST", "transport_api_version": "V3", "cluster_names": [cls.CLUSTER],
                                          "refresh_delay": "3600s", "request_timeout": "900s"},
                    "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
        clusters_file.write_text(json.dumps(document))


@contextlib.contextmanager
def serve(xds: Path, node: dict, timeout: float):
    """A real Envoy holding the push in xds (written by write_push), loaded; stopped after."""
    eds = RestEds(xds / "endpoints.json")
    try:
        proxy = envoy.start(xds, envoy.SidecarNode(**node), static_clusters=(eds.static_cluster(),))
        try:
            expected = envoy.Expectation.from_xds(xds)
            wait_loaded(proxy, len(expected.clusters), timeout)
            envoy.wait_until_loaded(proxy, expected, timeout)
            yield proxy
        finally:
            proxy.stop()
    finally:
        eds.stop()


def write_push(push: dict, xds: Path) -> None:
    """The push as Istio-shaped xDS files (istiod-push.py), EDS served by RestEds."""
    xds.mkdir(parents=True)
    (xds / "push.json").write_text(json.dumps(push))
    istiod_push.write_xds(xds / "push.json", xds)
    RestEds.point_clusters_here(xds / "clusters.json")


def wait_loaded(proxy: envoy.RunningEnvoy, clusters: int, timeout: float) -> None:
    """Waits until Envoy reports every cluster active and none warming (cheap stats polls),
    then checks the whole config_dump once, as the harness does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise RuntimeError(f"envoy exited:\n{proxy.log_tail()}")
        try:
            stats = dict(line.split(": ", 1) for line in proxy.get("/stats?filter=^cluster_manager%5C.(active|warming)_clusters$&usedonly",
                                                                   timeout=60).decode().splitlines() if ": " in line)
        except OSError:
            stats = {}
        if int(stats.get("cluster_manager.active_clusters", 0)) >= clusters and int(stats.get("cluster_manager.warming_clusters", 1)) == 0:
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"envoy did not load {clusters} clusters in {timeout}s:\n{proxy.log_tail()}")


# What is saved from the caller's Envoy: the config dump with endpoints and the clusters'
# health, as a one-question capture holds them; stats only for clusters that were used
# (the full /stats of 20,000 clusters is hundreds of MB no question reads).
CAPTURES = {
    "config_dump.json": "/config_dump?include_eds",
    "clusters.json": "/clusters?format=json",
    "server_info.json": "/server_info",
    "stats.txt": "/stats?usedonly",
}


def capture(xds: Path, node: dict, out: Path, timeout: float) -> None:
    with serve(xds, node, timeout) as proxy:
        out.mkdir(parents=True, exist_ok=True)
        for file_name, admin_path in CAPTURES.items():
            (out / file_name).write_bytes(proxy.get(admin_path, timeout=120))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, required=True)
    parser.add_argument("--callers", type=int, default=1, help="caller pods, each with its xDS (the first is also captured unless --xds-only)")
    parser.add_argument("--xds-only", action="store_true", help="write the xDS only, capturing no Envoy")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for Envoy to load the push")
    parser.add_argument("--objects-only", action="store_true", help="write the objects only (no push, no Envoy): what `--all` reads")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"{args.out} exists; pass a new directory")
    push, nodes = generate_objects(args.services, args.callers, args.out)
    for index, node in enumerate([] if args.objects_only else nodes):
        # Every caller's xDS is written: a live run serves each from an Envoy of its own.
        xds = args.out / "xds" / node["pod_name"]
        write_push(dict(push, node=node), xds)
        if index == 0 and not args.xds_only:
            capture(xds, node, args.out / "proxies" / CALLER_NS / node["pod_name"], args.timeout)
    print(json.dumps({"caller": f"{nodes[0]['pod_name']}.{CALLER_NS}", "service": service_name(args.services // 2),
                      "namespace": namespace_of(args.services // 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
