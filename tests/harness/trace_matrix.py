#!/usr/bin/env python3
"""Send a matrix of real requests through a REAL Envoy holding Istio-shaped config.

Backends are small HTTP and TCP servers on loopback.  One listener on 127.0.0.1 carries an
HTTP connection manager whose RDS route configuration uses what istiod emits (domains with
and without port, header / query / method matches, path_separated_prefix, case-insensitive
prefixes, regexes, weighted clusters, a require_tls virtual host, a route to a cluster Envoy
does not hold, a cluster with no endpoints) and a default chain with a tcp_proxy, as a
sidecar's outbound listener has.  Every request is recorded by Envoy's access log (a JSON log
to observe where it went, and Istio's default text format for the log parser).

Usage: trace_matrix.py OUT_DIR
Writes OUT_DIR/config_dump.json, OUT_DIR/matrix.json (request + what Envoy did) and
OUT_DIR/istio_access.log, then prints DONE.
"""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envoy  # noqa: E402

ISTIO_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)
OBSERVED = {"cluster": "%UPSTREAM_CLUSTER%", "status": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%",
            "route": "%ROUTE_NAME%", "id": "%REQ(X-MATRIX-ID)%", "sni": "%REQUESTED_SERVER_NAME%"}
HOST = "reviews.default.svc.cluster.local"


def cluster(subset: str, host: str = HOST) -> str:
    return f"outbound|80|{subset}|{host}"


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def start_http() -> int:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def access_logs(log_dir: Path) -> list:
    return [
        {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(log_dir / "observed.log"), "log_format": {"json_format": OBSERVED}}},
        {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(log_dir / "istio_access.log"), "log_format": {"text_format_source": {"inline_string": ISTIO_FORMAT}}}},
    ]


def route(name: str, match: dict, **action) -> dict:
    r = {"name": name, "match": match}
    r.update(action)
    return r


def to(c: str) -> dict:
    return {"route": {"cluster": c, "timeout": "0s"}}


def xds(out: Path, port: int, backends: dict, log_dir: Path) -> None:
    routes = [
        route("jason", {"prefix": "/api", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]}, **to(cluster("v2"))),
        route("admin-post", {"path_separated_prefix": "/admin", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
              direct_response={"status": 403}),
        route("exact", {"path": "/exact"}, **to(cluster("v3"))),
        route("regex", {"safe_regex": {"regex": "/r/[0-9]+"}}, **to(cluster("v2"))),
        route("ci", {"prefix": "/CI/", "case_sensitive": False}, **to(cluster("v3"))),
        route("nc", {"prefix": "/missing"}, **to(cluster("v9"))),
        route("uh", {"prefix": "/empty"}, **to(cluster("empty"))),
        route("q", {"prefix": "/", "query_parameters": [{"name": "v", "string_match": {"exact": "3"}}]}, **to(cluster("v3"))),
        route("no-debug", {"prefix": "/nodebug", "headers": [{"name": "x-debug", "present_match": True, "invert_match": True}]},
              **to(cluster("v2"))),
        route("split", {"prefix": "/split"}, route={"weighted_clusters": {"clusters": [
            {"name": cluster("v3"), "weight": 100}, {"name": cluster("v1"), "weight": 0}]}}),
        route("default", {"prefix": "/"}, **to(cluster("v1"))),
    ]
    vhosts = [
        {"name": f"{HOST}:80", "domains": [HOST, f"{HOST}:80", "reviews", "reviews:80", f"reviews:{port}", f"127.0.0.1:{port}"], "routes": routes},
        {"name": "wild-suffix", "domains": ["*.example.com"], "routes": [route("suffix", {"prefix": "/"}, **to(cluster("v2")))]},
        {"name": "wild-prefix", "domains": ["api.*"], "routes": [route("prefix", {"prefix": "/"}, **to(cluster("v3")))]},
        {"name": "secure", "domains": ["secure.example.org"], "require_tls": "ALL", "routes": [route("secure", {"prefix": "/"}, **to(cluster("v1")))]},
        {"name": "narrow", "domains": ["narrow.example.org"], "routes": [route("only-x", {"path": "/x"}, **to(cluster("v1")))]},
        {"name": "allow_any", "domains": ["*"], "routes": [route("allow_any", {"prefix": "/"}, **to(cluster("", "catchall")))]},
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": f"outbound_127.0.0.1_{port}",
        "rds": {"config_source": {"path_config_source": {"path": "routes.json"}, "resource_api_version": "V3"},
                "route_config_name": str(port)},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "access_log": access_logs(log_dir),
    }
    tcp = {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
           "stat_prefix": "tcp", "cluster": cluster("", "tcp.example.com"), "access_log": access_logs(log_dir)}
    listener = {
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": f"127.0.0.1_{port}",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "listener_filters": [
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
            {"name": "envoy.filters.listener.http_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}],
        "filter_chains": [{"name": f"127.0.0.1_{port}", "filter_chain_match": {
            "transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        "default_filter_chain": {"name": "PassthroughFilterChain", "filters": [
            {"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp}]},
    }
    names = {cluster(s): backends["http"] for s in ("v1", "v2", "v3")}
    names[cluster("", "catchall")] = backends["http"]
    names[cluster("", "tcp.example.com")] = backends["http"]
    names[cluster("empty")] = None
    clusters, assignments = [], []
    for name, backend in names.items():
        clusters.append({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": "EDS",
                         "connect_timeout": "1s", "eds_cluster_config": {"service_name": name, "eds_config": {
                             "path_config_source": {"path": "endpoints.json"}, "resource_api_version": "V3"}}})
        endpoints = [] if backend is None else [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": backend}}}}]}]
        assignments.append({"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                            "cluster_name": name, "endpoints": endpoints})
    resources = {
        "listeners.json": ("envoy.config.listener.v3.Listener", [listener]),
        "routes.json": ("envoy.config.route.v3.RouteConfiguration", [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": str(port), "virtual_hosts": vhosts}]),
        "clusters.json": ("envoy.config.cluster.v3.Cluster", clusters),
        "endpoints.json": ("envoy.config.endpoint.v3.ClusterLoadAssignment", assignments),
    }
    out.mkdir(parents=True, exist_ok=True)
    for file, (type_name, items) in resources.items():
        (out / file).write_text(json.dumps(envoy.discovery_response("1", type_name, items), indent=1))


def matrix() -> list[dict]:
    """The requests: (method, host, path, headers, kind)."""
    cases = [
        ("GET", "reviews", "/", {}),
        ("GET", HOST, "/api/v1", {"end-user": "jason"}),
        ("GET", "reviews:80", "/api/v1", {"end-user": "mary"}),
        ("GET", "reviews", "/api", {"End-User": "jason"}),
        ("POST", "reviews", "/admin/users", {}),
        ("POST", "reviews", "/administrator", {}),
        ("GET", "reviews", "/admin", {}),
        ("GET", "reviews", "/exact", {}),
        ("GET", "reviews", "/exact?x=1", {}),
        ("GET", "reviews", "/exact/more", {}),
        ("GET", "reviews", "/r/42", {}),
        ("GET", "reviews", "/r/42x", {}),
        ("GET", "reviews", "/ci/Thing", {}),
        ("GET", "reviews", "/missing", {}),
        ("GET", "reviews", "/empty", {}),
        ("GET", "reviews", "/?v=3", {}),
        ("GET", "reviews", "/?v=4&v=3", {}),
        ("GET", "reviews", "/nodebug", {}),
        ("GET", "reviews", "/nodebug", {"x-debug": "1"}),
        ("GET", "reviews", "/split", {}),
        ("GET", "a.example.com", "/", {}),
        ("GET", "api.other.org", "/", {}),
        ("GET", "b.api.example.com", "/", {}),
        ("GET", "unknown.host", "/", {}),
        ("GET", "secure.example.org", "/", {}),
        ("GET", "narrow.example.org", "/y", {}),
        ("GET", "narrow.example.org", "/x", {}),
    ]
    return [{"id": str(i), "kind": "http", "method": m, "host": h, "path": p, "headers": hd} for i, (m, h, p, hd) in enumerate(cases)]


def send_http(port: int, req: dict) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = dict(req["headers"], Host=req["host"])
    headers["x-matrix-id"] = req["id"]
    conn.request(req["method"], req["path"], headers=headers)
    conn.getresponse().read()
    conn.close()


def send_tls(port: int, req: dict) -> None:
    """A TLS ClientHello with SNI: Envoy forwards the bytes by the default chain's tcp_proxy."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=req["sni"]):
                pass
        except (ssl.SSLError, OSError):
            pass  # the backend speaks HTTP, not TLS: only where Envoy sent it matters


def send_tcp(port: int, req: dict) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00\x01 not http\r\n")
        s.settimeout(2)
        try:
            s.recv(100)
        except OSError:
            pass


def main(out: Path) -> int:
    backends = {"http": start_http()}
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="mesh-why-trace-"))
    xds(work / "xds", port, backends, work)
    requests = matrix()
    requests.append({"id": "tls", "kind": "tls", "sni": "secure.example.org"})
    requests.append({"id": "tcp", "kind": "tcp"})
    with envoy.serve(work / "xds") as proxy:
        for req in requests:
            {"http": send_http, "tls": send_tls, "tcp": send_tcp}[req["kind"]](port, req)
        # Envoy flushes access logs on a timer; wait (bounded) until every request is logged.
        deadline = time.monotonic() + 30
        lines: list[dict] = []
        while time.monotonic() < deadline:
            text = (work / "observed.log").read_text() if (work / "observed.log").exists() else ""
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(lines) >= len(requests):
                break
            time.sleep(0.2)
        dump = proxy.get("/config_dump?include_eds")
    if len(lines) < len(requests):
        print(f"only {len(lines)} of {len(requests)} requests were logged", file=sys.stderr)
        return 1
    http_lines = {line["id"]: line for line in lines if line.get("id") not in (None, "-")}
    tcp_lines = [line for line in lines if line.get("id") in (None, "-")]
    for req in requests:
        if req["kind"] == "http":
            req["observed"] = http_lines[req["id"]]
        else:
            want_sni = req.get("sni", "-")
            req["observed"] = next(line for line in tcp_lines if (line.get("sni") or "-") == want_sni)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config_dump.json").write_bytes(dump)
    (out / "matrix.json").write_text(json.dumps({"port": port, "requests": requests}, indent=1))
    (out / "istio_access.log").write_text((work / "istio_access.log").read_text())
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
