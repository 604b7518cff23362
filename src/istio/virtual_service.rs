//! `networking.istio.io` VirtualService: hosts, gateways and ordered HTTP/TCP/TLS rules.

use super::PortSelector;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// VirtualService `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    /// Hosts this VirtualService claims (short names resolve in the VirtualService's namespace).
    #[serde(default, deserialize_with = "super::exact")]
    pub hosts: Vec<String>,
    /// Gateways the rules apply to; empty means `mesh` (every sidecar).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Ordered HTTP rules; the first that matches a request wins.
    #[serde(default, deserialize_with = "super::exact")]
    pub http: Vec<HttpRoute>,
    /// TCP rules, used for ports Istio treats as TCP.
    #[serde(default, deserialize_with = "super::exact")]
    pub tcp: Vec<TcpRoute>,
    /// TLS (SNI) rules, used for TLS/HTTPS ports.
    #[serde(default, deserialize_with = "super::exact")]
    pub tls: Vec<TcpRoute>,
    /// Namespaces this VirtualService is visible to (`*`, `.`, or names).
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Set on the VirtualServices istiod derives from Kubernetes Ingresses: their prefixes match
    /// whole path segments.
    #[serde(skip)]
    pub ingress: bool,
    /// Set on the internal VirtualServices istiod builds from Gateway API routes: the route
    /// kind. They follow the Gateway API's semantics (no short names, path-separated prefixes,
    /// consumer routes first).
    #[serde(skip)]
    pub gateway_route: Option<super::gateway_api::RouteKind>,
}

impl VirtualService {
    /// The kind users wrote: `VirtualService`, or the Gateway API route it was built from.
    pub fn source_kind(&self) -> &'static str {
        self.gateway_route.map_or("VirtualService", |k| k.as_str())
    }
}

/// One `http[]` rule. Its rarely set blocks are boxed: a big mesh holds tens of thousands of
/// rules, and an absent block then costs a pointer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Optional rule name, copied into the Envoy route name.
    #[serde(default)]
    pub name: Option<String>,
    /// Match conditions, OR-ed; none means "every request".
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatch>,
    /// Weighted destinations.
    #[serde(default, deserialize_with = "super::exact")]
    pub route: Vec<RouteDestination>,
    /// A redirect instead of a route.
    #[serde(default)]
    pub redirect: Option<Box<Value>>,
    /// A direct response instead of a route.
    #[serde(default)]
    pub direct_response: Option<Box<Value>>,
    /// Delegation to another VirtualService (root VirtualServices only).
    #[serde(default)]
    pub delegate: Option<Delegate>,
    /// URI / authority rewrite.
    #[serde(default)]
    pub rewrite: Option<Box<Value>>,
    /// Request timeout, e.g. `"2s"`; unset means no timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Retry policy (`attempts`, `perTryTimeout`, `retryOn`).
    #[serde(default)]
    pub retries: Option<Box<Value>>,
    /// Fault injection.
    #[serde(default)]
    pub fault: Option<Box<Value>>,
    /// Mirror destination (single form).
    #[serde(default)]
    pub mirror: Option<Destination>,
    /// Mirror destinations (list form, Istio 1.20+).
    #[serde(default)]
    pub mirrors: Vec<MirrorPolicy>,
}

/// One `mirrors[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MirrorPolicy {
    /// Where mirrored traffic goes.
    #[serde(default)]
    pub destination: Destination,
}

/// `http[].delegate`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Delegate {
    /// Delegate VirtualService name.
    pub name: String,
    /// Its namespace; defaults to the root VirtualService's.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// One `match[]` entry of an HTTP rule.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Optional match name.
    #[serde(default)]
    pub name: Option<String>,
    /// URI match.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// Header matches, keyed by header name.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Headers that must not match.
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Query parameter matches.
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// HTTP method match.
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// Authority match.
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Scheme match.
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    /// Only for traffic to this port.
    #[serde(default)]
    pub port: Option<u32>,
    /// Only from workloads with these labels.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// Only from this namespace.
    #[serde(default)]
    pub source_namespace: Option<String>,
    /// Only on these gateways (`mesh` for sidecars).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// Case-insensitive URI matching.
    #[serde(default)]
    pub ignore_uri_case: bool,
}

impl HttpMatch {
    /// True when the match puts no condition on requests at all (a catch-all).
    pub fn is_catch_all(&self) -> bool {
        let uri_all = match &self.uri {
            None => true,
            Some(m) => m.prefix.as_deref() == Some("/") || m.regex.as_deref() == Some(".*"),
        };
        uri_all
            && self.headers.is_empty()
            && self.without_headers.is_empty()
            && self.query_params.is_empty()
            && self.method.is_none()
            && self.authority.is_none()
            && self.scheme.is_none()
    }
}

/// Istio's `StringMatch`: exactly one of exact, prefix or regex.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct StringMatch {
    /// Exact value.
    #[serde(default)]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// RE2 regex (full match).
    #[serde(default)]
    pub regex: Option<String>,
}

/// `route[]` entry: a destination and its weight.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteDestination {
    /// Where the traffic goes (empty when the entry omits it, which istiod rejects at runtime).
    #[serde(default)]
    pub destination: Destination,
    /// Relative weight; unset is 0 (Istio treats a lone destination as 100).
    #[serde(default)]
    pub weight: Option<i32>,
}

/// `destination`: a host, optional subset and port.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Destination {
    /// Service host (short names resolve in the VirtualService's namespace).
    #[serde(default)]
    pub host: String,
    /// DestinationRule subset name.
    #[serde(default)]
    pub subset: Option<String>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// A `tcp[]` or `tls[]` rule.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TcpRoute {
    /// Match conditions (ports, SNI hosts, source labels).
    #[serde(default, rename = "match")]
    pub matches: Vec<Value>,
    /// Weighted destinations.
    #[serde(default, deserialize_with = "super::exact")]
    pub route: Vec<RouteDestination>,
}

/// How a destination is used by its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationRole {
    /// An HTTP route destination (takes a share of requests).
    HttpRoute,
    /// An HTTP mirror (copies requests; failures are silent).
    Mirror,
    /// A TCP or TLS route destination (takes a share of connections).
    Stream,
}

/// One destination of a VirtualService, with where it sits in the spec.
#[derive(Debug, Clone)]
pub struct DestinationUse<'a> {
    /// The destination.
    pub destination: &'a Destination,
    /// Field path, e.g. `spec.http[0].route[1].destination`.
    pub path: String,
    /// How the rule uses it.
    pub role: DestinationRole,
    /// Index of the rule in its list.
    pub rule: usize,
    /// Weight, for route destinations.
    pub weight: Option<i32>,
}

impl VirtualService {
    /// Every destination: HTTP routes and mirrors, then TCP and TLS routes.
    pub fn destinations(&self) -> Vec<DestinationUse<'_>> {
        let mut out = Vec::new();
        for (i, rule) in self.http.iter().enumerate() {
            for (j, rd) in rule.route.iter().enumerate() {
                let path = format!("spec.http[{i}].route[{j}].destination");
                out.push(DestinationUse { destination: &rd.destination, path, role: DestinationRole::HttpRoute, rule: i, weight: rd.weight });
            }
            if let Some(m) = &rule.mirror {
                out.push(DestinationUse { destination: m, path: format!("spec.http[{i}].mirror"), role: DestinationRole::Mirror, rule: i, weight: None });
            }
            for (k, m) in rule.mirrors.iter().enumerate() {
                let path = format!("spec.http[{i}].mirrors[{k}].destination");
                out.push(DestinationUse { destination: &m.destination, path, role: DestinationRole::Mirror, rule: i, weight: None });
            }
        }
        for (list, field) in [(&self.tcp, "tcp"), (&self.tls, "tls")] {
            for (i, rule) in list.iter().enumerate() {
                for (j, rd) in rule.route.iter().enumerate() {
                    let path = format!("spec.{field}[{i}].route[{j}].destination");
                    out.push(DestinationUse { destination: &rd.destination, path, role: DestinationRole::Stream, rule: i, weight: rd.weight });
                }
            }
        }
        out
    }
}
