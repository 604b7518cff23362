#!/usr/bin/env python3
"""Check that the test API server and Envoy behave like the real thing.

Runs the REAL kubectl and a kube-rs-shaped WebSocket client against
apiserver.py, which port-forwards to a REAL Envoy started by envoy.py with
the sample xDS.  Each check prints PASS or FAIL; the last line is
"N passed, N failed" and the exit status is non-zero if anything failed.

    fidelity_test.py [--kubectl PATH]

Every process it starts is killed before it exits, and every wait is
bounded, so a broken server fails a check instead of hanging the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import zlib
from pathlib import Path

import envoy
import streamproto as wire

HARNESS = Path(__file__).resolve().parent
OBJECTS = HARNESS / "sample-objects"
XDS = HARNESS / "sample-xds"
NAMESPACE = "default"
SIDECAR_POD = "productpage-v1-6b7f9c8d5-x2x4k"
UNMAPPED_POD = "reviews-v1-5c7d8f9b6-k8m2p"
V1_CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"
START_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
STREAM_TIMEOUT_S = 10.0
# What kube-rs 5 offers in Sec-WebSocket-Protocol, in its order of preference.
KUBE_RS_PROTOCOLS = "v5.channel.k8s.io, v4.channel.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


# --- Processes ----------------------------------------------------------------

def read_line(process: subprocess.Popen, timeout: float) -> str:
    """First stdout line of a child, or TimeoutError; never blocks longer."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TimeoutError(f"no output from {process.args[:3]} in {timeout}s")
    return process.stdout.readline().decode().strip()


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child we started (by its own handle), escalating to SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout:
        process.stdout.close()


class ApiServer:
    """apiserver.py in a child process, with its own request log."""

    def __init__(self, workdir: Path, admin: tuple[str, int], *flags: str):
        self.log_path = workdir / f"requests-{time.monotonic_ns()}.jsonl"
        command = [sys.executable, str(HARNESS / "apiserver.py"), "--objects", str(OBJECTS),
                   "--request-log", str(self.log_path),
                   "--portforward", f"{NAMESPACE}/{SIDECAR_POD}={admin[0]}:{admin[1]}", *flags]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                        preexec_fn=envoy.die_with_parent)
        try:
            line = read_line(self.process, START_TIMEOUT_S)
            if not line.startswith("LISTENING "):
                raise RuntimeError(f"unexpected first line from apiserver: {line!r}")
            self.host, port = line.split()[1].rsplit(":", 1)
            self.port = int(port)
        except BaseException:
            stop_process(self.process)
            raise

    def requests(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def stop(self) -> None:
        stop_process(self.process)


class Kubectl:
    """Runs the real kubectl against one ApiServer with a private kubeconfig and cache."""

    def __init__(self, binary: str, workdir: Path, server: ApiServer):
        self.binary = binary
        self.kubeconfig = workdir / f"kubeconfig-{server.port}"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {
                "server": f"http://{server.host}:{server.port}"}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test",
                                                      "namespace": NAMESPACE}}],
        }))
        self.cache = workdir / f"cache-{server.port}"

    def command(self, *args: str) -> list[str]:
        return [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache),
                *args]

    def env(self, websockets: bool = True) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "true" if websockets else "false"
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, env=self.env(), stdin=subprocess.DEVNULL)


class PortForward:
    """A running `kubectl port-forward ... 0:15000`; local_port is what kubectl chose."""

    def __init__(self, kubectl: Kubectl, pod: str, websockets: bool = True):
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            kubectl.command("port-forward", "--address", "127.0.0.1", "-n", NAMESPACE,
                            f"pod/{pod}", "0:15000"),
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL,
            env=kubectl.env(websockets), preexec_fn=envoy.die_with_parent)
        try:
            line = read_line(self.process, START_TIMEOUT_S)
            match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 15000", line)
            if not match:
                raise RuntimeError(f"kubectl port-forward said {line!r}: {self.error_output()}")
            self.local_port = int(match.group(1))
        except BaseException:
            self.stop()
            raise

    def get(self, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.local_port}{path}"
        with urllib.request.urlopen(url, timeout=STREAM_TIMEOUT_S) as response:
            return response.read()

    def error_output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> "PortForward":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


# --- A kube-rs-shaped v4.channel.k8s.io client ---------------------------------

def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: clients must mask (RFC 6455 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x80 | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class ChannelResult:
    """What a v4 port-forward session returned, per channel."""

    def __init__(self):
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.channels: dict[int, list[bytes]] = {}
        self.ended = ""          # "close-frame", "eof" or "timeout"

    def data(self, channel: int) -> bytes:
        """Channel payload after the 2-byte port prefix message."""
        return b"".join(self.channels.get(channel, [])[1:])


async def channel_session(server: ApiServer, pod: str, http_request: bytes,
                          idle_timeout: float = STREAM_TIMEOUT_S) -> ChannelResult:
    """Upgrade like kube-rs 5 does, send one request on channel 0, collect replies."""
    result = ChannelResult()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port), STREAM_TIMEOUT_S)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((
            f"GET /api/v1/namespaces/{NAMESPACE}/pods/{pod}/portforward?&ports=15000 HTTP/1.1\r\n"
            f"Host: {server.host}:{server.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Protocol: {KUBE_RS_PROTOCOLS}\r\n"
            "Authorization: Bearer test-token\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STREAM_TIMEOUT_S)
        lines = head.decode().split("\r\n")
        result.status = int(lines[0].split()[1])
        result.headers = {n.strip().lower(): v.strip() for n, _, v in
                          (line.partition(":") for line in lines[1:] if ":" in line)}
        if result.status != 101:
            result.body = await asyncio.wait_for(
                reader.readexactly(int(result.headers.get("content-length", 0))), STREAM_TIMEOUT_S)
            return result
        if result.headers.get("sec-websocket-accept") != wire.websocket_accept(key):
            raise AssertionError("Sec-WebSocket-Accept does not match the key")
        writer.write(masked_frame(wire.OP_BINARY, b"\x00" + http_request))
        await collect_frames(reader, result, idle_timeout)
        return result
    finally:
        writer.close()


async def collect_frames(reader: asyncio.StreamReader, result: ChannelResult,
                         idle_timeout: float) -> None:
    while True:
        try:
            _, opcode, payload = await asyncio.wait_for(
                wire.read_websocket_frame(reader), idle_timeout)
        except asyncio.TimeoutError:
            result.ended = "timeout"
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            result.ended = "eof"
            return
        if opcode == wire.OP_CLOSE:
            result.ended = "close-frame"
            return
        if opcode == wire.OP_BINARY and payload:
            result.channels.setdefault(payload[0], []).append(payload[1:])


def admin_request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()


def http_body(raw: bytes) -> bytes:
    """Body of a raw HTTP/1.1 response, undoing chunked encoding (Envoy's admin uses it)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    decoded = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        decoded += rest[:size]
        body = rest[size + 2:]
    return decoded


# --- Checks -------------------------------------------------------------------

class Context:
    """Shared state for the checks: one Envoy, the default API server, kubectl."""

    def __init__(self, workdir: Path, kubectl_binary: str, proxy: envoy.RunningEnvoy):
        self.workdir = workdir
        self.kubectl_binary = kubectl_binary
        self.proxy = proxy
        self.server = ApiServer(workdir, proxy.admin_address)
        self.kubectl = Kubectl(kubectl_binary, workdir, self.server)

    def variant(self, *flags: str) -> tuple[ApiServer, Kubectl]:
        """A second API server with fault flags; the caller must stop it."""
        server = ApiServer(self.workdir, self.proxy.admin_address, *flags)
        return server, Kubectl(self.kubectl_binary, self.workdir, server)

    def close(self) -> None:
        self.server.stop()


def check_spdy_dictionary(_ctx: Context) -> None:
    assert zlib.adler32(wire.SPDY3_DICTIONARY) == wire.SPDY3_DICTIONARY_ADLER32
    assert len(wire.SPDY3_DICTIONARY) == 1423


def check_get_json(ctx: Context) -> None:
    result = ctx.kubectl.run("get", "pods,services", "-o", "json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    names = {(item["kind"], item["metadata"]["name"]) for item in items}
    assert ("Pod", SIDECAR_POD) in names and ("Service", "reviews") in names, names
    assert sum(1 for kind, _ in names if kind == "Pod") == 4, names


def check_get_table(ctx: Context) -> None:
    result = ctx.kubectl.run("get", "virtualservices", "-A")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS", "AGE"], header
    assert rows and rows[0].split()[:3] == ["default", "reviews", '["reviews"]'], rows


def check_selectors(ctx: Context) -> None:
    by_label = ctx.kubectl.run("get", "pods", "-l", "app=reviews,version!=v3", "-o", "name")
    assert by_label.stdout.split() == ["pod/reviews-v1-5c7d8f9b6-k8m2p",
                                       "pod/reviews-v2-7f9d6c5b8-q4w7z"], by_label
    by_field = ctx.kubectl.run("get", "pods", "--field-selector", "status.podIP=127.0.10.13",
                               "-o", "name")
    assert by_field.stdout.split() == ["pod/reviews-v3-84c9f7d6b-t9x3n"], by_field


def check_not_found(ctx: Context) -> None:
    result = ctx.kubectl.run("get", "destinationrule", "nope")
    assert result.returncode != 0
    assert 'destinationrules.networking.istio.io "nope" not found' in result.stderr, result.stderr


def check_port_forward_websocket_tunnel(ctx: Context) -> None:
    before = len(ctx.server.requests())
    with PortForward(ctx.kubectl, SIDECAR_POD) as forward:
        server_info = json.loads(forward.get("/server_info"))
        clusters = json.loads(forward.get("/clusters?format=json"))
    assert "/1.40.0/" in server_info["version"], server_info["version"]
    node_id = server_info["node"]["id"]
    assert node_id.startswith(f"sidecar~127.0.10.5~{SIDECAR_POD}.default~"), node_id
    assert V1_CLUSTER in {c["name"] for c in clusters["cluster_statuses"]}
    upgrade = [r for r in ctx.server.requests()[before:] if r["path"].endswith("/portforward")]
    seen = [(r["method"], r["status"], r["headers"].get("sec-websocket-protocol")) for r in upgrade]
    assert seen == [("GET", 101, TUNNEL_PROTOCOL)], upgrade


def check_port_forward_spdy_fallback(ctx: Context) -> None:
    before = len(ctx.server.requests())
    with PortForward(ctx.kubectl, SIDECAR_POD, websockets=False) as forward:
        config_dump = json.loads(forward.get("/config_dump"))
    assert any(c["@type"].endswith("ClustersConfigDump") for c in config_dump["configs"])
    upgrade = [r for r in ctx.server.requests()[before:] if r["path"].endswith("/portforward")]
    assert [(r["method"], r["status"], r["headers"].get("upgrade")) for r in upgrade] \
        == [("POST", 101, "SPDY/3.1")], upgrade


def check_port_forward_refused_kubectl(ctx: Context) -> None:
    with PortForward(ctx.kubectl, UNMAPPED_POD) as forward:
        try:
            forward.get("/server_info")
            raise AssertionError("a closed pod port answered")
        except OSError:
            pass
        deadline = time.monotonic() + STREAM_TIMEOUT_S
        while "connection refused" not in forward.error_output() and time.monotonic() < deadline:
            time.sleep(0.1)
        errors = forward.error_output()
    assert "error forwarding port 15000 to pod" in errors, errors
    assert "failed to connect to localhost:15000 inside namespace" in errors, errors


def check_channel_protocol(ctx: Context) -> None:
    result = asyncio.run(channel_session(ctx.server, SIDECAR_POD, admin_request("/server_info")))
    assert result.status == 101, (result.status, result.body)
    assert result.headers.get("sec-websocket-protocol") == "v4.channel.k8s.io", result.headers
    port_prefix = struct.pack("<H", 15000)
    assert result.channels[0][0] == port_prefix and result.channels[1][0] == port_prefix
    response = result.data(0)
    assert response.startswith(b"HTTP/1.1 200"), response[:100]
    assert json.loads(http_body(response))["state"] == "LIVE"
    assert result.ended == "close-frame", result.ended


def check_channel_refused(ctx: Context) -> None:
    result = asyncio.run(channel_session(ctx.server, UNMAPPED_POD, admin_request("/server_info")))
    message = result.data(1).decode()
    assert message.startswith("error forwarding port 15000 to pod "), message
    assert "connect: connection refused" in message, message
    assert result.data(0) == b"" and result.ended == "close-frame", result.ended


def check_channel_mapped_to_closed_port(ctx: Context) -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server, _ = ctx.variant("--portforward", f"{NAMESPACE}/{UNMAPPED_POD}=127.0.0.1:{closed_port}")
    try:
        result = asyncio.run(channel_session(server, UNMAPPED_POD, admin_request("/")))
    finally:
        server.stop()
    assert "connect: connection refused" in result.data(1).decode(), result.channels


def check_channel_unknown_pod(ctx: Context) -> None:
    result = asyncio.run(channel_session(ctx.server, "no-such-pod", admin_request("/")))
    status = json.loads(result.body)
    assert (result.status, status["kind"], status["reason"]) == (404, "Status", "NotFound"), status
    assert status["message"] == 'pods "no-such-pod" not found', status


def check_forbid(ctx: Context) -> None:
    server, kubectl = ctx.variant("--forbid", "virtualservices", "--forbid", "pods/portforward")
    try:
        result = kubectl.run("get", "virtualservices", "-A")
        denied = asyncio.run(channel_session(server, SIDECAR_POD, admin_request("/")))
    finally:
        server.stop()
    assert ('virtualservices.networking.istio.io is forbidden: User '
            '"system:serviceaccount:default:mesh-why" cannot list resource "virtualservices" '
            'in API group "networking.istio.io" at the cluster scope') in result.stderr, \
        result.stderr
    status = json.loads(denied.body)
    assert denied.status == 403 and status["reason"] == "Forbidden", status
    assert 'cannot create resource "pods/portforward" in API group "" in the namespace' \
        in status["message"], status


def check_no_istio(ctx: Context) -> None:
    server, kubectl = ctx.variant("--no-istio-crds")
    try:
        result = kubectl.run("get", "virtualservices")
        groups = json.loads(urllib.request.urlopen(
            f"http://{server.host}:{server.port}/apis", timeout=STREAM_TIMEOUT_S).read())
    finally:
        server.stop()
    assert 'the server doesn\'t have a resource type "virtualservices"' in result.stderr, \
        result.stderr
    assert [g["name"] for g in groups["groups"]] == ["apps", "discovery.k8s.io", "gateway.networking.k8s.io", "networking.k8s.io"], groups


def check_cut_after(ctx: Context) -> None:
    server, _ = ctx.variant("--portforward-cut-after", "1000")
    try:
        result = asyncio.run(channel_session(server, SIDECAR_POD, admin_request("/config_dump")))
    finally:
        server.stop()
    received = len(result.data(0))
    assert received == 1000 and result.ended == "eof", (received, result.ended)


def check_hang(ctx: Context) -> None:
    server, _ = ctx.variant("--portforward-hang")
    try:
        result = asyncio.run(channel_session(server, SIDECAR_POD, admin_request("/server_info"),
                                             idle_timeout=1.0))
    finally:
        server.stop()
    assert result.status == 101 and result.ended == "timeout", (result.status, result.ended)
    assert result.data(0) == b"" and set(result.channels) == {0, 1}, result.channels


def check_request_log_only_reads(ctx: Context) -> None:
    requests = ctx.server.requests()
    assert requests, "request log is empty"
    writes = [r for r in requests if r["method"] != "GET" and not (
        r["method"] == "POST" and r["path"].split("?")[0].endswith("/portforward"))]
    assert not writes, writes


CHECKS = [check_spdy_dictionary, check_get_json, check_get_table, check_selectors,
          check_not_found, check_port_forward_websocket_tunnel, check_port_forward_spdy_fallback,
          check_port_forward_refused_kubectl, check_channel_protocol, check_channel_refused,
          check_channel_mapped_to_closed_port, check_channel_unknown_pod,
          check_forbid, check_no_istio, check_cut_after, check_hang,
          check_request_log_only_reads]


def run_checks(ctx: Context) -> tuple[int, int]:
    passed = failed = 0
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        started = time.monotonic()
        try:
            check(ctx)
        except Exception as error:  # a failed check must not stop the others
            failed += 1
            detail = str(error) or traceback.format_exc(limit=3)
            print(f"FAIL {name}: {type(error).__name__}: {detail[:2000]}", flush=True)
        else:
            passed += 1
            print(f"PASS {name} ({time.monotonic() - started:.2f}s)", flush=True)
    return passed, failed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubectl", default=os.environ.get("KUBECTL") or shutil.which("kubectl"),
                        help="kubectl binary (default: $KUBECTL, else kubectl on PATH)")
    args = parser.parse_args(argv)
    if not args.kubectl:
        parser.error("no kubectl found: pass --kubectl or set KUBECTL")
    started = time.monotonic()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="mesh-why-fidelity-") as workdir:
        try:
            with envoy.serve(XDS) as proxy:
                ctx = Context(Path(workdir), args.kubectl, proxy)
                try:
                    passed, failed = run_checks(ctx)
                finally:
                    ctx.close()
        except Exception as error:  # setup failed: report it as one failed check
            print(f"FAIL setup: {type(error).__name__}: {error}", flush=True)
            failed += 1
    print(f"fidelity checks took {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
