#!/usr/bin/env python3
"""Make a scenario's proxy captures with a REAL Envoy.

Each testdata scenario that needs data-plane evidence has a ``push.json``: what istiod
pushed to one calling sidecar (routes per service port, subset clusters, endpoints with
health), written compactly.  This tool expands it into Istio-shaped xDS (the same resource
shapes istiod emits: ``outbound|P|subset|host`` clusters, route config named by port,
``allow_any`` catch-all, default retry policy), loads it into Envoy through
``path_config_source`` and saves Envoy's own admin output under
``proxies/NAMESPACE/POD/``.  The fixtures therefore have Envoy's exact shape.

Usage: tools/istiod-push.py SCENARIO_DIR [SCENARIO_DIR ...]
       tools/istiod-push.py --xds PUSH_JSON OUT_DIR

``--xds`` writes only the xDS files and the node (``node.json``) of one push into OUT_DIR, for
``tests/harness/envoy.py serve OUT_DIR --node-json OUT_DIR/node.json``: the live tests serve
proxies described in the same compact form as the scenarios' captures.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "harness"))
import envoy  # noqa: E402  (the harness module, not the wheel)

DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
    "host_selection_retry_max_attempts": "5",
}


def cluster_name(port: int, subset: str, host: str) -> str:
    return f"outbound|{port}|{subset}|{host}"


def vip_cluster_name(port: int, subset: str, host: str) -> str:
    """A waypoint's cluster for a service it serves (HTTP filter chain)."""
    return f"inbound-vip|{port}|http{'/' + subset if subset else ''}|{host}"


def route(svc: dict, spec: dict, cluster_name=cluster_name) -> dict:
    """One Envoy route from a compact ``{"match":…, "to": [[subset, weight(, host)], …]}`` (another
    service's cluster when a host is given, as Gateway API backends are), with optional ``port``
    (a destination port other than the service port's), ``retries``, ``mirror`` (subsets),
    ``fault_abort`` (status) and raw ``action`` fields."""
    port, host = spec.get("port", svc["port"]), svc["host"]
    targets = [cluster_name(port, t[0], t[2] if len(t) > 2 else host) for t in spec["to"]]
    action = {"timeout": spec.get("timeout", "0s"), "retry_policy": DEFAULT_RETRY,
              "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}}
    if len(targets) == 1:
        action["cluster"] = targets[0]
    else:
        action["weighted_clusters"] = {"clusters": [
            {"name": name, "weight": t[1]} for name, t in zip(targets, spec["to"]) if t[1] > 0]}
    if "retries" in spec:
        action["retry_policy"] = dict(DEFAULT_RETRY, num_retries=spec["retries"])
    action.update(spec.get("action", {}))
    if "mirror" in spec:
        action["request_mirror_policies"] = [{"cluster": cluster_name(port, subset, host),
                                              "runtime_fraction": {"default_value": {"numerator": 100}}}
                                             for subset in spec["mirror"]]
    out = {"match": spec.get("match", {"prefix": "/"}), "route": action}
    if "fault_abort" in spec:
        out["typed_per_filter_config"] = {"envoy.filters.http.fault": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "abort": {"http_status": spec["fault_abort"], "percentage": {"numerator": 100000, "denominator": "MILLION"}}}}
    if spec.get("name"):
        out["name"] = spec["name"]
    if svc.get("vs"):
        ns, name = svc["vs"].split("/")
        out["metadata"] = {"filter_metadata": {"istio": {
            "config": f"/apis/networking.istio.io/v1/namespaces/{ns}/virtual-service/{name}"}}}
    return out


def virtual_host(svc: dict) -> dict:
    host, port = svc["host"], svc["port"]
    name, ns = host.split(".")[:2]
    domains = svc.get("domains") or [host, name, f"{name}.{ns}.svc", f"{name}.{ns}", svc["vip"]]
    routes = svc.get("routes") or [{"name": "default", "to": [["", 100]]}]
    return {"name": f"{host}:{port}", "domains": domains,
            "routes": [route(svc, r) for r in routes], "include_request_attempt_count": True}


def clusters_and_endpoints(svc: dict) -> tuple[list, list]:
    clusters, assignments = [], []
    for subset, endpoints in svc["subsets"].items():
        name = cluster_name(svc["port"], subset, svc["host"])
        istio_meta = {"services": [{"host": svc["host"], "name": svc["host"].split(".")[0],
                                    "namespace": svc["host"].split(".")[1]}],
                      "default_original_port": svc["port"]}
        if subset:
            istio_meta["subset"] = subset
        if svc.get("dr"):
            ns, dr = svc["dr"].split("/")
            istio_meta["config"] = f"/apis/networking.istio.io/v1/namespaces/{ns}/destination-rule/{dr}"
        cluster = {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": "EDS",
            "eds_cluster_config": {"eds_config": {"path_config_source": {"path": "endpoints.json"},
                                                  "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
                                   "service_name": name},
            "connect_timeout": "10s", "lb_policy": svc.get("lb_policy", "LEAST_REQUEST"),
            "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
                                                 "max_requests": 4294967295, "max_retries": 4294967295}]},
            "common_lb_config": {}, "alt_stat_name": name + ";",
            "metadata": {"filter_metadata": {"istio": istio_meta}},
        }
        # What a DestinationRule's trafficPolicy adds (outlier_detection, circuit_breakers), verbatim.
        cluster.update(svc.get("cluster_policy", {}))
        clusters.append(cluster)
        assignments.append({
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": name,
            "endpoints": [{"locality": {}, "lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": ip, "port_value": port}}},
                 "health_status": health, "load_balancing_weight": 1} for ip, port, health in endpoints]}]})
    return clusters, assignments


def gateway_route_config(gateway: dict) -> dict:
    """A gateway's route config `http.PORT`: one vhost per served host, no catch-all vhost."""
    vhosts = []
    for vh in gateway["vhosts"]:
        routes = []
        for spec in vh["routes"]:
            svc = {"host": spec["host"], "port": spec["port"], "vs": vh.get("vs")}
            routes.append(route(svc, spec))
        vhosts.append({"name": vh["name"], "domains": vh["domains"], "routes": routes})
    return {"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": f"http.{gateway['port']}", "virtual_hosts": vhosts, "validate_clusters": False,
            "ignore_port_in_host_matching": True}


def listener(svc: dict) -> dict:
    port = svc["port"]
    if svc.get("protocol", "http") == "tcp":
        # ``tcp_to`` ([[subset, weight], ...]) is a VirtualService tcp rule's split; without it
        # the proxy forwards to the first subset's cluster.
        proxy = {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"}
        if "tcp_to" in svc:
            proxy["stat_prefix"] = svc.get("vs", "tcp").replace("/", ".")
            proxy["weighted_clusters"] = {"clusters": [{"name": cluster_name(port, subset, svc["host"]), "weight": weight}
                                                       for subset, weight in svc["tcp_to"] if weight > 0]}
        else:
            first = next(iter(svc["subsets"]))
            proxy["stat_prefix"] = proxy["cluster"] = cluster_name(port, first, svc["host"])
        filters = [{"name": "envoy.filters.network.tcp_proxy", "typed_config": proxy}]
        name = f"{svc['vip']}_{port}"
    else:
        filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": f"outbound_0.0.0.0_{port}",
            "rds": {"config_source": {"path_config_source": {"path": "routes.json"}, "resource_api_version": "V3"},
                    "route_config_name": svc.get("route_config", str(port))},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]
        name = f"0.0.0.0_{port}"
    return {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": name,
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
            "bind_to_port": False, "filter_chains": [{"filters": filters}]}


def waypoint_xds(push: dict) -> dict[str, list]:
    """A waypoint's push: per served service port, an `inbound-vip` HTTP filter chain on the
    internal listener `main_internal` (chosen by destination VIP and port) with its route
    config inline, and `inbound-vip` clusters whose endpoints are Envoy-internal addresses."""
    files = {"listeners.json": [], "clusters.json": [], "endpoints.json": [], "routes.json": []}
    chains, by_vip = [], {}
    for svc in push["services"]:
        host, port = svc["host"], svc["port"]
        for subset, endpoints in svc["subsets"].items():
            name = vip_cluster_name(port, subset, host)
            files["clusters.json"].append({
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": "EDS",
                "eds_cluster_config": {"eds_config": {"path_config_source": {"path": "endpoints.json"},
                                                      "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
                                       "service_name": name},
                "connect_timeout": "10s", "lb_policy": svc.get("lb_policy", "LEAST_REQUEST"), "common_lb_config": {},
                "transport_socket": {"name": "internal_upstream", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
                    "transport_socket": {"name": "raw_buffer", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}},
                "metadata": {"filter_metadata": {"istio": {"services": [
                    {"host": host, "name": host.split(".")[0], "namespace": host.split(".")[1]}]}}},
            })
            files["endpoints.json"].append({
                "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": name,
                "endpoints": [{"locality": {}, "lb_endpoints": [
                    {"endpoint": {"address": {"envoy_internal_address": {"server_listener_name": "connect_originate",
                                                                         "endpoint_id": f"{ip}:{target}"}}},
                     "health_status": health, "load_balancing_weight": 1} for ip, target, health in endpoints]}]})
        chain = vip_cluster_name(port, "", host)
        routes = [route(svc, r, vip_cluster_name) for r in svc["routes"]] if svc.get("routes") else [
            {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": chain, "timeout": "0s"}}]
        route_config = {"name": chain, "virtual_hosts": [{"name": f"inbound|http|{port}", "domains": ["*"], "routes": routes}],
                        "validate_clusters": False}
        chains.append({"name": chain, "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": chain, "route_config": route_config,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]})
        by_vip.setdefault(svc["vip"], {})[str(port)] = {"action": {"name": chain, "typed_config": {
            "@type": "type.googleapis.com/google.protobuf.StringValue", "value": chain}}}
    ip_input = {"name": "ip", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput"}}
    port_input = {"name": "port", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput"}}
    files["listeners.json"].append({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "main_internal",
        "internal_listener": {}, "filter_chains": chains,
        "filter_chain_matcher": {"matcher_tree": {"input": ip_input, "exact_match_map": {"map": {
            vip: {"matcher": {"matcher_tree": {"input": port_input, "exact_match_map": {"map": ports}}}}
            for vip, ports in by_vip.items()}}}}})
    return files


def xds_for(push: dict) -> dict[str, list]:
    """Every xDS resource of a push, by file name."""
    if push["node"].get("proxy_type") == "waypoint":
        return waypoint_xds(push)
    files = {"listeners.json": [], "clusters.json": [], "endpoints.json": [], "routes.json": []}
    http_by_port: dict[int, list] = {}
    for svc in push["services"]:
        clusters, assignments = clusters_and_endpoints(svc)
        files["clusters.json"] += clusters
        files["endpoints.json"] += assignments
        if "gateway" in push:
            continue  # gateways have no per-service outbound listeners or route configs
        if not any(l["name"].endswith(f"_{svc['port']}") for l in files["listeners.json"]):
            files["listeners.json"].append(listener(svc))
        if svc.get("protocol", "http") == "http":
            http_by_port.setdefault(svc["port"], []).append(virtual_host(svc))
    for port, vhosts in http_by_port.items():
        vhosts.sort(key=lambda v: v["name"])
        vhosts.append({"name": "allow_any", "domains": ["*"], "routes": [{"name": "allow_any", "match": {"prefix": "/"},
                       "route": {"cluster": "PassthroughCluster", "timeout": "0s"}}]})
        files["routes.json"].append({"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                                     "name": str(port), "virtual_hosts": vhosts, "validate_clusters": False,
                                     "ignore_port_in_host_matching": True})
    if "gateway" in push:
        files["routes.json"].append(gateway_route_config(push["gateway"]))
        files["listeners.json"].append(listener({"port": push["gateway"]["port"], "protocol": "http",
                                                  "route_config": f"http.{push['gateway']['port']}"}))
    files["clusters.json"].append({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                   "name": "PassthroughCluster", "type": "ORIGINAL_DST", "connect_timeout": "10s",
                                   "lb_policy": "CLUSTER_PROVIDED"})
    return files


TEMP_DIR = re.compile(rb"/tmp/mesh-why-envoy-[A-Za-z0-9_]+")


def scrub(path: Path) -> None:
    """Replace the run's temporary directory with the directory Istio keeps these files in,
    so committed fixtures name no path of the machine that made them."""
    path.write_bytes(TEMP_DIR.sub(b"/etc/istio/proxy", path.read_bytes()))


def write_xds(push_file: Path, xds_dir: Path) -> envoy.SidecarNode:
    """Writes a push as xDS files and ``node.json`` into xds_dir; returns the node."""
    push = json.loads(push_file.read_text())
    types = {"listeners.json": "envoy.config.listener.v3.Listener", "clusters.json": "envoy.config.cluster.v3.Cluster",
             "endpoints.json": "envoy.config.endpoint.v3.ClusterLoadAssignment",
             "routes.json": "envoy.config.route.v3.RouteConfiguration"}
    for file_name, resources in xds_for(push).items():
        (xds_dir / file_name).write_text(json.dumps(envoy.discovery_response("1", types[file_name], resources)))
    (xds_dir / "node.json").write_text(json.dumps(push["node"]))
    return envoy.SidecarNode(**push["node"])


def make(scenario: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mesh-why-push-") as tmp:
        xds_dir = Path(tmp)
        node = write_xds(scenario / "push.json", xds_dir)
        out = scenario / "proxies" / node.namespace / node.pod_name
        for path in envoy.capture(xds_dir, out, node):
            scrub(path)
        print(f"{scenario.name}: captured {out.relative_to(scenario)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--xds"]:
        if len(sys.argv) != 4:
            sys.exit("usage: tools/istiod-push.py --xds PUSH_JSON OUT_DIR")
        write_xds(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        for arg in sys.argv[1:]:
            make(Path(arg))
