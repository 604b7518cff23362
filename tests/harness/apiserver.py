#!/usr/bin/env python3
"""A small read-only Kubernetes API server for mesh-why's end-to-end tests.

It speaks the real wire protocols so that real clients (kube-rs in
mesh-why, and the real kubectl for fidelity checks) work against it
unchanged:

* REST: /version, discovery (/api, /apis, group versions), get and list of
  core, discovery.k8s.io and Istio kinds, label and field selectors,
  meta.k8s.io Table output, and Kubernetes Status objects for errors.
* pods/portforward: WebSocket ``v4.channel.k8s.io`` (what kube-rs speaks),
  SPDY/3.1 after ``Upgrade: SPDY/3.1`` and SPDY/3.1 tunnelled through
  WebSocket ``SPDY/3.1+portforward.k8s.io`` (what kubectl speaks).  A pod's
  port 15000 is forwarded to a real Envoy admin address given on the
  command line; any other pod port behaves like a closed port.

Objects come from JSON files; nothing is ever written.  Every request is
appended to a JSON-lines log so tests can assert that the client under test
only read.  Fault flags simulate RBAC denial, a cluster without Istio, and
broken or hanging port-forward streams; --portforward-together and --lists-together
show how many port-forwards and lists a client has in flight at once, and
--latency gives every answer a remote cluster's round trip.  Everything listens
on 127.0.0.1.

    apiserver.py --objects DIR [--portforward NS/POD=127.0.0.1:PORT ...]
                 [--request-log FILE] [--forbid PLURAL ...] [--no-istio-crds]
                 [--portforward-cut-after BYTES] [--portforward-hang] [--portforward-together N]
                 [--fail PLURAL=CODE ...] [--bad-json PLURAL ...] [--hang PLURAL ...]
                 [--endless-list PLURAL ...] [--max-page N] [--unauthorized MESSAGE]
                 [--lists-together N] [--latency SECONDS]

The first line on stdout is ``LISTENING 127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import ipaddress
import json
import signal
import sys
import time
import urllib.parse
from pathlib import Path

import portforward
import streamproto as wire

HOST = "127.0.0.1"
HEAD_TIMEOUT_S = 120.0       # idle keep-alive connections are dropped after this
USER = "system:serviceaccount:default:mesh-why"
SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.5",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-05-15T09:08:54Z", "goVersion": "go1.23.8", "compiler": "gc",
    "platform": "linux/amd64",
}
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"
V4_CHANNEL_PROTOCOL = "v4.channel.k8s.io"
LOGGED_HEADERS = ("user-agent", "accept", "content-type", "connection", "upgrade",
                  "sec-websocket-protocol", "x-stream-protocol-version")


# --- The resources this server knows ----------------------------------------

@dataclasses.dataclass(frozen=True)
class Resource:
    """One REST resource as discovery advertises it."""

    group: str
    versions: tuple        # preferred version first
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple = ()
    subresources: tuple = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def is_istio(self) -> bool:
        return self.group.endswith("istio.io")

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def qualified_name(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


ISTIO_NETWORKING = ("v1", "v1beta1", "v1alpha3")
RESOURCES = (
    Resource("", ("v1",), "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    Resource("", ("v1",), "pods", "Pod", short_names=("po",),
             subresources=(("portforward", "PodPortForwardOptions", ("create", "get")),)),
    Resource("", ("v1",), "services", "Service", short_names=("svc",)),
    Resource("", ("v1",), "configmaps", "ConfigMap", short_names=("cm",)),
    Resource("", ("v1",), "secrets", "Secret"),
    Resource("apps", ("v1",), "deployments", "Deployment", short_names=("deploy",)),
    Resource("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice"),
    Resource("networking.istio.io", ISTIO_NETWORKING, "virtualservices", "VirtualService",
             short_names=("vs",)),
    Resource("networking.istio.io", ISTIO_NETWORKING, "destinationrules", "DestinationRule",
             short_names=("dr",)),
    Resource("networking.istio.io", ISTIO_NETWORKING, "gateways", "Gateway", short_names=("gw",)),
    Resource("networking.istio.io", ISTIO_NETWORKING, "serviceentries", "ServiceEntry",
             short_names=("se",)),
    Resource("networking.istio.io", ISTIO_NETWORKING, "sidecars", "Sidecar"),
    Resource("security.istio.io", ("v1",), "peerauthentications", "PeerAuthentication",
             short_names=("pa",)),
    Resource("security.istio.io", ("v1",), "authorizationpolicies", "AuthorizationPolicy",
             short_names=("ap",)),
    Resource("gateway.networking.k8s.io", ("v1", "v1beta1"), "gateways", "Gateway"),
    Resource("gateway.networking.k8s.io", ("v1", "v1beta1"), "httproutes", "HTTPRoute"),
    Resource("gateway.networking.k8s.io", ("v1",), "grpcroutes", "GRPCRoute"),
    Resource("gateway.networking.k8s.io", ("v1beta1",), "referencegrants", "ReferenceGrant"),
    Resource("networking.k8s.io", ("v1",), "ingresses", "Ingress", short_names=("ing",)),
    Resource("networking.k8s.io", ("v1",), "ingressclasses", "IngressClass", namespaced=False),
)


@dataclasses.dataclass(frozen=True)
class Faults:
    """Failure modes switched on from the command line."""

    forbid: frozenset = frozenset()    # plurals, or "pods/portforward"
    no_istio_crds: bool = False
    fail: tuple = ()                   # (plural, HTTP status) pairs: lists answer that status
    bad_json: frozenset = frozenset()  # plurals whose lists answer 200 with a cut-off JSON body
    hang: frozenset = frozenset()      # plurals whose lists never answer
    endless: frozenset = frozenset()   # plurals whose lists stream items without end
    max_page: int | None = None        # most items per list page, whatever `limit` asks
    unauthorized: str | None = None    # every REST request answers 401 with this message
    latency: float = 0.0               # seconds before each REST answer (--latency)
    lists_together: "portforward.Together | None" = None  # see --lists-together
    lists_after_portforward: "asyncio.Event | None" = None  # see --lists-after-portforward

    def list_fault(self, request: "Request") -> str | None:
        """The fault for a list request of a faulted resource: 'hang', 'endless' or None."""
        last = request.path.rstrip("/").rpartition("/")[2]
        if last in self.hang:
            return "hang"
        if last in self.endless:
            return "endless"
        return None
    sessions: portforward.SessionFaults = portforward.SessionFaults()


class Registry:
    """The resources visible in discovery, honouring --no-istio-crds."""

    def __init__(self, faults: Faults):
        self.resources = [r for r in RESOURCES if not (faults.no_istio_crds and r.is_istio)]

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        for resource in self.resources:
            if (resource.group, resource.plural) == (group, plural) and \
                    version in resource.versions:
                return resource
        return None

    def for_object(self, api_version: str, kind: str) -> Resource | None:
        group = api_version.rpartition("/")[0]
        return next((r for r in RESOURCES if (r.group, r.kind) == (group, kind)), None)

    def groups(self) -> dict[str, tuple]:
        """Named API groups and their versions, in registration order."""
        found: dict[str, tuple] = {}
        for resource in self.resources:
            if resource.group:
                found.setdefault(resource.group, resource.versions)
        return found

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and version in r.versions]


# --- Objects and selectors --------------------------------------------------

class ObjectStore:
    """Fixture objects, grouped by resource; read-only after loading."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.objects: dict[Resource, list[dict]] = {}

    def load_dir(self, directory: Path) -> None:
        for path in sorted(directory.glob("*.json")):
            document = json.loads(path.read_text())
            items = document["items"] if document.get("kind", "").endswith("List") else [document]
            for item in items:
                self.add(item, path)

    def add(self, item: dict, origin: Path) -> None:
        resource = self.registry.for_object(item.get("apiVersion", ""), item.get("kind", ""))
        if resource is None:
            raise ValueError(f"{origin}: unsupported object "
                             f"{item.get('apiVersion')} {item.get('kind')}")
        self.objects.setdefault(resource, []).append(item)

    def select(self, resource: Resource, namespace: str | None,
               labels: "Selector", fields: "Selector") -> list[dict]:
        """Matching objects ordered like etcd keys: by namespace, then name."""
        chosen = [obj for obj in self.objects.get(resource, [])
                  if namespace is None or obj["metadata"].get("namespace") == namespace]
        chosen = [obj for obj in chosen if labels.matches(obj["metadata"].get("labels") or {})
                  and fields.matches(FieldView(obj))]
        return sorted(chosen, key=lambda o: (o["metadata"].get("namespace", ""),
                                             o["metadata"]["name"]))

    def get(self, resource: Resource, namespace: str | None, name: str) -> dict | None:
        for obj in self.objects.get(resource, []):
            meta = obj["metadata"]
            if meta["name"] == name and (namespace is None or meta.get("namespace") == namespace):
                return obj
        return None


class FieldView:
    """Dotted-path access into an object, as field selectors address it."""

    def __init__(self, obj: dict):
        self.obj = obj

    def get(self, path: str, default: str = "") -> str:
        value = self.obj
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return str(value)

    def __contains__(self, path: str) -> bool:
        return self.get(path, "\0") != "\0"


class Selector:
    """A parsed label or field selector: a conjunction of requirements.

    Supports =, ==, !=, "in (...)", "notin (...)", "key" and "!key" for labels
    and =, ==, != for fields, which is what clients send.
    """

    def __init__(self, requirements: list[tuple[str, str, tuple]]):
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str | None, fields: bool = False) -> "Selector":
        requirements = []
        for term in split_terms(text or ""):
            requirements.append(parse_term(term, fields))
        return cls(requirements)

    def matches(self, values) -> bool:
        return all(requirement_holds(values, *requirement) for requirement in self.requirements)


def split_terms(text: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def parse_term(term: str, fields: bool) -> tuple[str, str, tuple]:
    words = term.split(None, 1)
    if not fields and len(words) == 2 and words[1].split("(")[0].strip() in ("in", "notin"):
        operator, _, rest = words[1].partition("(")
        if not rest.endswith(")"):
            raise SelectorError(term)
        values = tuple(v.strip() for v in rest[:-1].split(",") if v.strip())
        return words[0], operator.strip(), values
    for operator in ("==", "!=", "="):
        key, found, value = term.partition(operator)
        if found:
            return key.strip(), "!=" if operator == "!=" else "=", (value.strip(),)
    if fields:
        raise SelectorError(term)
    if term.startswith("!"):
        return term[1:].strip(), "!exists", ()
    return term, "exists", ()


def requirement_holds(values, key: str, operator: str, operands: tuple) -> bool:
    present = key in values
    value = values.get(key, "") if present else None
    if operator == "exists":
        return present
    if operator == "!exists":
        return not present
    if operator == "=":
        return value == operands[0]
    if operator == "!=":
        return value != operands[0]
    if operator == "in":
        return present and value in operands
    return not present or value not in operands  # notin


class SelectorError(ValueError):
    pass


# --- Tables (what kubectl get prints without -o) ------------------------------

def human_age(timestamp: str | None, now: float) -> str:
    """Age the way Kubernetes prints it (apimachinery's HumanDuration)."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    seconds = max(0, int(now - created))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if years < 8 and days % 365 else f"{years}y"


def dig(obj: dict, path: str):
    """The value at a dotted path, or None."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def jsonpath_cell(path: str):
    """A CRD printer column: arrays and objects render as compact JSON."""
    def cell(obj: dict, _now: float):
        value = dig(obj, path)
        if isinstance(value, (list, dict)):
            return json.dumps(value, separators=(",", ":"))
        return value
    return cell


def pod_ready(pod: dict, _now: float) -> str:
    statuses = dig(pod, "status.containerStatuses") or []
    ready = sum(1 for status in statuses if status.get("ready"))
    return f"{ready}/{len(pod['spec'].get('containers', []))}"


def pod_status(pod: dict, _now: float) -> str:
    for status in dig(pod, "status.containerStatuses") or []:
        waiting = dig(status, "state.waiting.reason")
        if waiting:
            return waiting
    return dig(pod, "status.phase") or "Unknown"


def pod_restarts(pod: dict, _now: float) -> int:
    return sum(s.get("restartCount", 0) for s in dig(pod, "status.containerStatuses") or [])


def service_ports(service: dict, _now: float) -> str:
    ports = dig(service, "spec.ports") or []
    return ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def service_selector(service: dict, _now: float) -> str:
    selector = dig(service, "spec.selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def slice_endpoints(endpoint_slice: dict, _now: float) -> str:
    addresses = [a for e in endpoint_slice.get("endpoints") or [] for a in e.get("addresses", [])]
    shown = ",".join(addresses[:3])
    return f"{shown} + {len(addresses) - 3} more..." if len(addresses) > 3 else shown or "<unset>"


def slice_ports(endpoint_slice: dict, _now: float) -> str:
    ports = [str(p.get("port")) for p in endpoint_slice.get("ports") or []]
    return ",".join(ports) or "<unset>"


def age_cell(obj: dict, now: float) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"), now)


def name_cell(obj: dict, _now: float) -> str:
    return obj["metadata"]["name"]


def constant(value):
    return lambda _obj, _now: value


# Per resource: (column name, type, priority, cell function).  Built-in kinds
# follow kube-apiserver's printers; Istio kinds follow the CRDs'
# additionalPrinterColumns.
NAME = ("Name", "string", 0, name_cell)
AGE = ("Age", "string", 0, age_cell)
TABLE_COLUMNS = {
    "namespaces": [NAME, ("Status", "string", 0, lambda o, n: dig(o, "status.phase") or "Active"),
                   AGE],
    "pods": [NAME, ("Ready", "string", 0, pod_ready), ("Status", "string", 0, pod_status),
             ("Restarts", "integer", 0, pod_restarts), AGE,
             ("IP", "string", 1, jsonpath_cell("status.podIP")),
             ("Node", "string", 1, jsonpath_cell("spec.nodeName")),
             ("Nominated Node", "string", 1, constant("<none>")),
             ("Readiness Gates", "string", 1, constant("<none>"))],
    "services": [NAME, ("Type", "string", 0, jsonpath_cell("spec.type")),
                 ("Cluster-IP", "string", 0, jsonpath_cell("spec.clusterIP")),
                 ("External-IP", "string", 0, constant("<none>")),
                 ("Port(s)", "string", 0, service_ports), AGE,
                 ("Selector", "string", 1, service_selector)],
    "endpointslices": [NAME, ("AddressType", "string", 0, jsonpath_cell("addressType")),
                       ("Ports", "string", 0, slice_ports),
                       ("Endpoints", "string", 0, slice_endpoints), AGE],
    "virtualservices": [NAME, ("Gateways", "string", 0, jsonpath_cell("spec.gateways")),
                        ("Hosts", "string", 0, jsonpath_cell("spec.hosts")), AGE],
    "destinationrules": [NAME, ("Host", "string", 0, jsonpath_cell("spec.host")), AGE],
    "serviceentries": [NAME, ("Hosts", "string", 0, jsonpath_cell("spec.hosts")),
                       ("Location", "string", 0, jsonpath_cell("spec.location")),
                       ("Resolution", "string", 0, jsonpath_cell("spec.resolution")), AGE],
    "peerauthentications": [NAME, ("Mode", "string", 0, jsonpath_cell("spec.mtls.mode")), AGE],
    "authorizationpolicies": [NAME, ("Action", "string", 0, jsonpath_cell("spec.action")), AGE],
}


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))


def build_table(resource: Resource, objects: list[dict], include_object: str) -> dict:
    """A meta.k8s.io/v1 Table; rows carry metadata so kubectl can add NAMESPACE."""
    columns = TABLE_COLUMNS.get(resource.plural, [NAME, AGE])
    now = time.time()
    rows = []
    for obj in objects:
        row = {"cells": [cell(obj, now) for *_, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": "name" if name == "Name" else "",
             "description": "", "priority": priority}
            for name, kind, priority, _ in columns],
        "rows": rows,
    }


# --- HTTP plumbing ------------------------------------------------------------

REASONS = {101: "Switching Protocols", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           410: "Gone", 500: "Internal Server Error", 503: "Service Unavailable"}
STATUS_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                  405: "MethodNotAllowed", 410: "Expired", 503: "ServiceUnavailable"}


@dataclasses.dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.target).query,
                                     keep_blank_values=True)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    def upgrade(self) -> str:
        """The requested upgrade protocol, lowercased; '' if none."""
        if "upgrade" not in self.header("connection").lower():
            return ""
        return self.header("upgrade").strip().lower()


@dataclasses.dataclass
class Response:
    status: int
    body: dict
    headers: tuple = ()
    raw: bytes | None = None   # sent instead of the JSON of `body` (a broken answer)


class HttpError(Exception):
    """Raised by handlers; rendered as a Kubernetes Status object."""

    def __init__(self, code: int, message: str, details: dict | None = None,
                 headers: tuple = ()):
        super().__init__(message)
        self.code = code
        self.details = details
        self.headers = headers

    def response(self) -> Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": str(self), "reason": STATUS_REASONS.get(self.code, "InternalError"),
                "code": self.code}
        if self.details:
            body["details"] = self.details
        return Response(self.code, body, self.headers)


def not_found(resource: Resource, name: str) -> HttpError:
    return HttpError(404, f'{resource.qualified_name()} "{name}" not found',
                     {"name": name, "group": resource.group, "kind": resource.plural})


def no_such_path() -> HttpError:
    return HttpError(404, "the server could not find the requested resource",
                     {"causes": [{"reason": "UnexpectedServerResponse",
                                  "message": "404 page not found"}]})


def forbidden(resource: Resource, verb: str, namespace: str | None, name: str | None,
              subresource: str | None = None) -> HttpError:
    """RBAC denial worded exactly like kube-apiserver's authorizer message."""
    plural = f"{resource.plural}/{subresource}" if subresource else resource.plural
    subject = resource.qualified_name() + (f' "{name}"' if name else "")
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (f'{subject} is forbidden: User "{USER}" cannot {verb} resource "{plural}" '
               f'in API group "{resource.group}" {scope}')
    details = {"group": resource.group, "kind": resource.plural}
    if name:
        details["name"] = name
    return HttpError(403, message, details)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head; None at a clean end of the connection."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError,
            asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3:
        return None  # not HTTP/1.x: drop the connection
    method, target, _version = request_line
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers)


async def discard_body(reader: asyncio.StreamReader, request: Request) -> bool:
    """Skip a request body; False when it cannot be framed (connection must close)."""
    length = request.header("content-length") or "0"
    if "chunked" in request.header("transfer-encoding").lower() or not length.isdigit():
        return False
    length = int(length)
    if length:
        await reader.readexactly(length)
    return True


def response_bytes(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_response_bytes(response: Response, keep_alive: bool) -> bytes:
    body = response.raw if response.raw is not None else json.dumps(response.body).encode()
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-cache, private"),
               ("Content-Length", str(len(body))),
               ("Connection", "keep-alive" if keep_alive else "close"), *response.headers]
    return response_bytes(response.status, headers, body)


class RequestLog:
    """Appends one JSON line per request so tests can audit what a client sent."""

    def __init__(self, path: Path | None):
        self.file = open(path, "a", encoding="utf-8") if path else None

    def record(self, request: Request, status: int) -> None:
        if self.file is None:
            return
        entry = {"time": time.time(), "method": request.method, "path": request.target,
                 "status": status,
                 "headers": {h: request.headers[h] for h in LOGGED_HEADERS if h in request.headers}}
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()


# --- REST handlers ------------------------------------------------------------

class Api:
    """Routes requests to discovery and resource handlers."""

    def __init__(self, store: ObjectStore, registry: Registry, faults: Faults):
        self.store = store
        self.registry = registry
        self.faults = faults

    def handle(self, request: Request) -> Response:
        parts = [urllib.parse.unquote(p) for p in request.path.strip("/").split("/") if p]
        if request.method != "GET":
            raise HttpError(405, "the server does not allow this method on the requested resource")
        if parts == ["version"]:
            return Response(200, SERVER_VERSION)
        if parts[:1] == ["api"]:
            return self.core(parts[1:], request)
        if parts[:1] == ["apis"]:
            return self.named(parts[1:], request)
        raise no_such_path()

    def core(self, parts: list[str], request: Request) -> Response:
        if not parts:
            return Response(200, {"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [
                                      {"clientCIDR": "0.0.0.0/0",
                                       "serverAddress": request.header("host")}]})
        if parts[0] != "v1":
            raise no_such_path()
        return self.group_version("", "v1", parts[1:], request)

    def named(self, parts: list[str], request: Request) -> Response:
        groups = self.registry.groups()
        if not parts:
            return Response(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                  "groups": [api_group(g, v) for g, v in groups.items()]})
        group = parts[0]
        if group not in groups:
            raise no_such_path()
        if len(parts) == 1:
            return Response(200, {"kind": "APIGroup", "apiVersion": "v1",
                                  **api_group(group, groups[group])})
        if parts[1] not in groups[group]:
            raise no_such_path()
        return self.group_version(group, parts[1], parts[2:], request)

    def group_version(self, group: str, version: str, parts: list[str],
                      request: Request) -> Response:
        if not parts:
            return Response(200, self.resource_list(group, version))
        namespace = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        resource = self.registry.lookup(group, version, parts[0])
        if resource is None or len(parts) > 3 or (namespace and not resource.namespaced):
            raise no_such_path()
        if len(parts) == 1:
            return self.list(resource, version, namespace, request)
        if len(parts) == 2:
            return self.get(resource, version, namespace, parts[1], request)
        raise no_such_path()

    def resource_list(self, group: str, version: str) -> dict:
        entries = []
        for r in self.registry.in_group_version(group, version):
            entries.append({"name": r.plural, "singularName": r.singular,
                            "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "list"],
                            **({"shortNames": list(r.short_names)} if r.short_names else {})})
            for sub, kind, verbs in r.subresources:
                entries.append({"name": f"{r.plural}/{sub}", "singularName": "",
                                "namespaced": r.namespaced, "kind": kind, "verbs": list(verbs)})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": entries}

    def list(self, resource: Resource, version: str, namespace: str | None,
             request: Request) -> Response:
        if resource.plural in self.faults.forbid:
            raise forbidden(resource, "list", namespace, None)
        for plural, code in self.faults.fail:
            if plural == resource.plural:
                raise HttpError(code, f"Internal error occurred: test fault for {plural}")
        if request.param("watch") in ("true", "1"):
            raise HttpError(405, "watch is not supported by this test server (discovery "
                                 "advertises only get and list)")
        try:
            labels = Selector.parse(request.param("labelSelector"))
            fields = Selector.parse(request.param("fieldSelector"), fields=True)
        except SelectorError as error:
            raise HttpError(400, f"unable to parse requirement: {error}") from error
        items = [with_type(o, resource, version)
                 for o in self.store.select(resource, namespace, labels, fields)]
        if wants_table(request.header("accept")):
            return Response(200, build_table(resource, items, request.param("includeObject") or ""))
        metadata, items = self.page(items, request)
        body = {"kind": f"{resource.kind}List", "apiVersion": resource.api_version(version),
                "metadata": metadata, "items": items}
        if resource.plural in self.faults.bad_json:
            text = json.dumps(body).encode()
            return Response(200, body, raw=text[:max(1, len(text) // 2)])
        return Response(200, body)

    def page(self, items: list[dict], request: Request) -> tuple[dict, list[dict]]:
        """`limit`/`continue` as kube-apiserver pages a list: the token is opaque to clients
        (here, the offset), and a page is never larger than `limit` (nor --max-page)."""
        token = request.param("continue") or "0"
        if not token.isdigit():
            raise HttpError(400, f"continue key is not valid: {token}")
        start = int(token)
        limits = [int(x) for x in (request.param("limit"), self.faults.max_page)
                  if x is not None and int(x) > 0]
        end = min([start + n for n in limits] + [len(items)])
        metadata = {"resourceVersion": "1"}
        if end < len(items):
            metadata["continue"] = str(end)
            metadata["remainingItemCount"] = len(items) - end
        return metadata, items[start:end]

    def get(self, resource: Resource, version: str, namespace: str | None, name: str,
            request: Request) -> Response:
        if resource.plural in self.faults.forbid:
            raise forbidden(resource, "get", namespace, name)
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            raise not_found(resource, name)
        obj = with_type(obj, resource, version)
        if wants_table(request.header("accept")):
            return Response(200, build_table(resource, [obj], request.param("includeObject") or ""))
        return Response(200, obj)


def api_group(group: str, versions: tuple) -> dict:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def with_type(obj: dict, resource: Resource, version: str) -> dict:
    """A copy stamped with the apiVersion asked for (CRDs convert by relabelling)."""
    return {**obj, "apiVersion": resource.api_version(version), "kind": resource.kind}


# --- Port-forward -------------------------------------------------------------

def requested_ports(request: Request) -> list[int]:
    """The ports query parameter: repeated and/or comma-separated, like the kubelet reads it."""
    ports = []
    for value in request.query.get("ports", []):
        for piece in value.split(","):
            if not piece.strip().isdigit() or not 0 < int(piece) < 65536:
                raise HttpError(400, f'unable to parse "{value}" as a port')
            ports.append(int(piece))
    return ports


class Server:
    """The HTTP/1.1 front end: keep-alive REST plus port-forward upgrades."""

    def __init__(self, store: ObjectStore, registry: Registry, faults: Faults,
                 forwards: dict[str, tuple[str, int]], log: RequestLog):
        self.store = store
        self.registry = registry
        self.faults = faults
        self.forwards = forwards
        self.log = log
        self.api = Api(store, registry, faults)
        self.connections: set[asyncio.Task] = set()

    async def shutdown(self) -> None:
        """Cancel open connections (port-forwards can be long-lived) and reap them."""
        for task in self.connections:
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            while (request := await read_request(reader)) is not None:
                if self.portforward_target(request):
                    await self.portforward(request, reader, writer)
                    return
                keep_alive = await discard_body(reader, request) and \
                    request.header("connection").lower() != "close"
                fault = self.faults.list_fault(request)
                if fault == "hang":
                    self.log.record(request, 0)
                    await asyncio.sleep(HEAD_TIMEOUT_S)
                    return
                if fault == "endless":
                    self.log.record(request, 200)
                    await self.endless_list(writer)
                    return
                if self.faults.latency:
                    await asyncio.sleep(self.faults.latency)
                if self.faults.lists_together is not None and "limit" in request.query:
                    await self.faults.lists_together.wait()
                if self.faults.lists_after_portforward is not None and "limit" in request.query \
                        and "/namespaces/" not in request.path:
                    await self.faults.lists_after_portforward.wait()
                response = self.respond(request)
                self.log.record(request, response.status)
                writer.write(json_response_bytes(response, keep_alive))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.connections.discard(task)

    async def endless_list(self, writer: asyncio.StreamWriter) -> None:
        """A 200 list whose items never end (a misbehaving server or proxy), chunked."""
        writer.write(response_bytes(200, [("Content-Type", "application/json"),
                                          ("Transfer-Encoding", "chunked")]))
        item = json.dumps({"metadata": {"name": "x" * 200, "namespace": "default"}}).encode()
        chunk = b'{"kind":"List","apiVersion":"v1","metadata":{},"items":[' + item
        while True:
            chunk += (b"," + item) * 300
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            chunk = b""

    def respond(self, request: Request) -> Response:
        if self.faults.unauthorized is not None:
            return HttpError(401, self.faults.unauthorized).response()
        try:
            return self.api.handle(request)
        except HttpError as error:
            return error.response()

    @staticmethod
    def portforward_target(request: Request) -> tuple[str, str] | None:
        parts = request.path.strip("/").split("/")
        if len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and \
                parts[4] == "pods" and parts[6] == "portforward":
            return parts[3], parts[5]
        return None

    async def portforward(self, request: Request, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        """Authorize, then upgrade to whichever port-forward protocol the client asked for."""
        namespace, name = self.portforward_target(request)
        pods = self.registry.lookup("", "v1", "pods")
        try:
            if request.method not in ("GET", "POST"):
                raise HttpError(405, "the server does not allow this method on the "
                                     "requested resource")
            if "pods/portforward" in self.faults.forbid:  # RBAC checks verb create here
                raise forbidden(pods, "create", namespace, name, subresource="portforward")
            pod = self.store.get(pods, namespace, name)
            if pod is None:
                raise not_found(pods, name)
            target = portforward.PodPorts(pod, self.forwards.get(f"{namespace}/{name}"),
                                          self.faults.sessions.together)
            handler = self.choose_protocol(request, target)
        except HttpError as error:
            response = error.response()
            self.log.record(request, response.status)
            writer.write(json_response_bytes(response, keep_alive=False))
            await writer.drain()
            return
        self.log.record(request, 101)
        if self.faults.lists_after_portforward is not None:
            self.faults.lists_after_portforward.set()
        await handler(reader, writer)

    def choose_protocol(self, request: Request, pod: portforward.PodPorts):
        """Pick the framing from the upgrade headers; returns the session coroutine.

        Like kube-apiserver (for the tunnel) and the kubelet (for the rest):
        a WebSocket offering SPDY/3.1+portforward.k8s.io gets tunnelled SPDY,
        any other WebSocket gets v4.channel.k8s.io (or no subprotocol if it
        offered none), and Upgrade: SPDY/3.1 gets plain SPDY.
        """
        upgrade = request.upgrade()
        if upgrade == "websocket":
            return self.websocket_session(request, pod)
        if upgrade.startswith("spdy/3.1"):
            return self.spdy_upgrade(request, pod)
        raise HttpError(400, "Upgrade request required")

    def websocket_session(self, request: Request, pod: portforward.PodPorts):
        faults = self.faults.sessions
        offered = [p.strip() for p in request.header("sec-websocket-protocol").split(",")
                   if p.strip()]
        tunnel = TUNNEL_PREFIX + PORTFORWARD_PROTOCOL
        if tunnel in offered:
            return self.websocket_upgrade(request, tunnel, lambda ws: portforward.SpdyPortForward(
                wire.WebSocketTransport(ws), pod, faults))
        if offered and V4_CHANNEL_PROTOCOL not in offered:
            raise HttpError(400, f"unable to upgrade websocket connection: requested protocol(s) "
                                 f"are not supported: {offered}; supports {[V4_CHANNEL_PROTOCOL]}")
        ports = requested_ports(request)
        if not ports:
            raise HttpError(400, 'query parameter "port" is required')
        protocol = V4_CHANNEL_PROTOCOL if offered else ""
        return self.websocket_upgrade(request, protocol, lambda ws: portforward.ChannelPortForward(
            ws, pod, ports, faults))

    def websocket_upgrade(self, request: Request, protocol: str, session_factory):
        key = request.header("sec-websocket-key")
        if not key:
            raise HttpError(400, "websocket: not a websocket handshake: "
                                 "'Sec-WebSocket-Key' header is missing")
        headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Accept", wire.websocket_accept(key))]
        if protocol:
            headers.append(("Sec-WebSocket-Protocol", protocol))

        async def serve(reader, writer):
            writer.write(response_bytes(101, headers))
            await writer.drain()
            await session_factory(wire.WebSocket(reader, writer)).run()
        return serve

    def spdy_upgrade(self, request: Request, pod: portforward.PodPorts):
        offered = [p.strip() for p in request.header("x-stream-protocol-version").split(",")]
        if PORTFORWARD_PROTOCOL not in offered:
            raise HttpError(403, f"unable to upgrade: unable to negotiate protocol: client "
                                 f"supports {offered}, server accepts {[PORTFORWARD_PROTOCOL]}",
                            headers=(("X-Accepted-Stream-Protocol-Versions",
                                      PORTFORWARD_PROTOCOL),))

        async def serve(reader, writer):
            writer.write(response_bytes(101, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                              ("X-Stream-Protocol-Version", PORTFORWARD_PROTOCOL)]))
            await writer.drain()
            await portforward.SpdyPortForward(wire.RawTransport(reader, writer), pod,
                                              self.faults.sessions).run()
        return serve


# --- Command line -------------------------------------------------------------

def loopback_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not ipaddress.ip_address(host).is_loopback:
        raise argparse.ArgumentTypeError(f"{text}: port-forward targets must be loopback")
    return host, int(port)


def portforward_mapping(text: str) -> tuple[str, tuple[str, int]]:
    pod, sep, address = text.partition("=")
    if not sep or pod.count("/") != 1:
        raise argparse.ArgumentTypeError(f"{text}: expected NAMESPACE/POD=127.0.0.1:PORT")
    return pod, loopback_address(address)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=Path, required=True,
                        help="directory of *.json objects (single objects or kind: List)")
    parser.add_argument("--portforward", type=portforward_mapping, action="append", default=[],
                        metavar="NS/POD=127.0.0.1:PORT",
                        help="forward this pod's port 15000 to a local Envoy admin address")
    parser.add_argument("--request-log", type=Path, help="append one JSON line per request")
    parser.add_argument("--port", type=int, default=0, help="listen port (default: any free)")
    parser.add_argument("--forbid", action="append", default=[], metavar="PLURAL",
                        help="answer 403 for this resource (or pods/portforward)")
    parser.add_argument("--no-istio-crds", action="store_true",
                        help="serve no Istio API groups, as on a cluster without Istio")
    parser.add_argument("--portforward-cut-after", type=int, metavar="BYTES",
                        help="drop a port-forward connection after BYTES from the pod")
    parser.add_argument("--portforward-hang", action="store_true",
                        help="accept port-forward streams but never serve them")
    parser.add_argument("--portforward-together", type=int, metavar="N",
                        help="hold dials to forwarded admin ports until N have been asked for")
    parser.add_argument("--fail", type=status_fault, action="append", default=[],
                        metavar="PLURAL=CODE", help="lists of this resource answer HTTP CODE")
    parser.add_argument("--bad-json", action="append", default=[], metavar="PLURAL",
                        help="lists of this resource answer 200 with half of their JSON")
    parser.add_argument("--hang", action="append", default=[], metavar="PLURAL",
                        help="lists of this resource never answer")
    parser.add_argument("--endless-list", action="append", default=[], metavar="PLURAL",
                        help="lists of this resource stream items without end")
    parser.add_argument("--max-page", type=int, metavar="N",
                        help="at most N items per list page (with a continue token)")
    parser.add_argument("--unauthorized", metavar="MESSAGE",
                        help="answer every REST request 401 with this Status message")
    parser.add_argument("--lists-together", type=int, metavar="N",
                        help="hold answers to lists (requests with `limit`) until N have been asked "
                             "for, then answer all: a client listing one at a time gets no answer")
    parser.add_argument("--lists-after-portforward", action="store_true",
                        help="hold answers to cluster-wide lists until a port-forward is opened: a "
                             "client that reads no proxy before they are answered gets no answer")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="answer each REST request, and pass on each port-forward chunk to a "
                             "pod, this long after it arrives: a remote API server's round trip")
    return parser.parse_args(argv)


def status_fault(text: str) -> tuple[str, int]:
    plural, sep, code = text.partition("=")
    if not sep or not code.isdigit():
        raise argparse.ArgumentTypeError(f"{text}: expected PLURAL=CODE")
    return plural, int(code)


async def serve(args: argparse.Namespace) -> None:
    faults = Faults(forbid=frozenset(args.forbid), no_istio_crds=args.no_istio_crds,
                    fail=tuple(args.fail), bad_json=frozenset(args.bad_json),
                    hang=frozenset(args.hang), endless=frozenset(args.endless_list),
                    max_page=args.max_page, unauthorized=args.unauthorized, latency=args.latency,
                    lists_together=None if args.lists_together is None else portforward.Together(args.lists_together),
                    lists_after_portforward=asyncio.Event() if args.lists_after_portforward else None,
                    sessions=portforward.SessionFaults(cut_after=args.portforward_cut_after,
                                                       hang=args.portforward_hang,
                                                       latency=args.latency,
                                                       together=None if args.portforward_together is None
                                                       else portforward.Together(args.portforward_together)))
    registry = Registry(faults)
    store = ObjectStore(registry)
    store.load_dir(args.objects)
    server = Server(store, registry, faults, dict(args.portforward), RequestLog(args.request_log))
    listener = await asyncio.start_server(server.connection, HOST, args.port)
    host, port = listener.sockets[0].getsockname()[:2]
    print(f"LISTENING {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with listener:
        await stop.wait()
    await server.shutdown()


def main(argv: list[str]) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
