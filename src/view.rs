//! The normalized shape of a proxy's configuration for one service, produced both by `intent`
//! (what istiod should push) and by `actual` (what Envoy holds), so `diff` can compare them.

use crate::istio::names::Protocol;
use crate::snapshot::ObjectRef;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One caller's view of the asked service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyView {
    /// One entry per service port.
    pub ports: Vec<PortView>,
    /// Clusters for the service's subsets and for every destination its routes name.
    pub clusters: BTreeMap<String, ClusterView>,
}

/// How one service port is served (on a gateway: one virtual host routing to the service).
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    /// Pairs this entry with its counterpart: `port 9080` on sidecars, `vhost NAME` on gateways.
    pub key: String,
    /// Service port.
    pub port: u32,
    /// Protocol Istio uses for it.
    pub protocol: Protocol,
    /// HTTP route configuration name (`9080`, or `host:9080` for sniffed ports).
    pub route_config: Option<String>,
    /// The virtual host serving the service; `None` when the proxy has none (passthrough).
    pub virtual_host: Option<VirtualHostView>,
    /// For TCP-class ports: the clusters the TCP proxy forwards to, with weights.
    pub tcp_destinations: Vec<WeightedCluster>,
}

/// A virtual host and its ordered routes.
#[derive(Debug, Clone, Serialize)]
pub struct VirtualHostView {
    /// Vhost name (`host:port`).
    pub name: String,
    /// Domains it answers.
    pub domains: Vec<String>,
    /// Ordered routes: the first match wins.
    pub routes: Vec<RouteView>,
}

/// One route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteView {
    /// Route name.
    pub name: String,
    /// What requests it takes.
    pub matcher: MatchView,
    /// What it does with them.
    pub action: Action,
    /// Route timeout (`0s` = none).
    pub timeout: Option<String>,
    /// Rewrites, faults, mirrors and retries.
    pub features: RouteFeatures,
    /// The VirtualService it came from.
    pub source: Option<ObjectRef>,
    /// `spec.http[i]` of that VirtualService (intent only).
    #[serde(skip)]
    pub rule_index: Option<usize>,
}

/// What a route does besides choosing clusters, in canonical words both sides can produce.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteFeatures {
    /// `uri PREFIX` and `authority HOST` rewrites.
    pub rewrite: Vec<String>,
    /// `abort STATUS` and `delay DURATION` faults.
    pub fault: Vec<String>,
    /// Clusters requests are mirrored to.
    pub mirror: Vec<String>,
    /// Retry attempts (`num_retries`); `None` when the route has no retry policy.
    pub retries: Option<u64>,
}

impl fmt::Display for RouteFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rewrite {
            write!(f, " rewrite {r}")?;
        }
        for x in &self.fault {
            write!(f, " fault {x}")?;
        }
        for m in &self.mirror {
            write!(f, " mirror {m}")?;
        }
        if let Some(n) = self.retries {
            write!(f, " retries {n}")?;
        }
        Ok(())
    }
}

/// A route match in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MatchView {
    /// Path condition.
    pub path: PathMatch,
    /// Case-insensitive path matching.
    pub ignore_case: bool,
    /// Header conditions, sorted by name.
    pub headers: Vec<HeaderCondition>,
    /// Query parameter conditions, sorted.
    pub query: Vec<String>,
}

/// The path part of a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PathMatch {
    /// `prefix`.
    Prefix(String),
    /// `path` (exact).
    Exact(String),
    /// `safe_regex`.
    Regex(String),
    /// `path_separated_prefix`.
    SeparatedPrefix(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix("/".into())
    }
}

/// One header condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct HeaderCondition {
    /// Header name.
    pub name: String,
    /// `exact`, `prefix`, `regex`, `present`...
    pub kind: String,
    /// Value (empty for presence).
    pub value: String,
    /// Negated.
    pub invert: bool,
}

impl MatchView {
    /// True when this match takes every request.
    pub fn is_catch_all(&self) -> bool {
        let all_paths = match &self.path {
            PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => p == "/",
            PathMatch::Regex(r) => r == ".*",
            PathMatch::Exact(_) => false,
        };
        all_paths && self.headers.is_empty() && self.query.is_empty()
    }
}

impl fmt::Display for MatchView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            PathMatch::Prefix(p) => write!(f, "prefix {p}")?,
            PathMatch::Exact(p) => write!(f, "path {p}")?,
            PathMatch::Regex(r) => write!(f, "regex {r}")?,
            PathMatch::SeparatedPrefix(p) => write!(f, "path-separated prefix {p}")?,
        }
        if self.ignore_case {
            f.write_str(" (ignore case)")?;
        }
        for h in &self.headers {
            let not = if h.invert { "not " } else { "" };
            write!(f, ", header {} {not}{} {}", h.name, h.kind, h.value)?;
        }
        for q in &self.query {
            write!(f, ", query {q}")?;
        }
        Ok(())
    }
}

/// What a route does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Forward to clusters with weights (one entry = all traffic).
    Forward {
        /// Destinations.
        clusters: Vec<WeightedCluster>,
    },
    /// Redirect.
    Redirect,
    /// Fixed response with this status.
    DirectResponse {
        /// HTTP status.
        status: u32,
    },
}

impl Action {
    /// The clusters this action can send traffic to.
    pub fn clusters(&self) -> impl Iterator<Item = &WeightedCluster> {
        match self {
            Action::Forward { clusters } => clusters.iter(),
            _ => [].iter(),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Forward { clusters } if clusters.len() == 1 => write!(f, "→ {}", clusters[0].name),
            Action::Forward { clusters } => {
                let parts: Vec<String> = clusters.iter().map(|c| format!("{} {}", c.name, c.weight)).collect();
                write!(f, "→ {}", parts.join(", "))
            }
            Action::Redirect => f.write_str("redirect"),
            Action::DirectResponse { status } => write!(f, "direct response {status}"),
        }
    }
}

/// A cluster and its share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightedCluster {
    /// Cluster name.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
}

/// A cluster and the endpoints it holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterView {
    /// Cluster name.
    pub name: String,
    /// Whether the proxy has (or should have) this cluster.
    pub present: bool,
    /// Load balancer, when the DestinationRule decides it.
    pub lb_policy: Option<String>,
    /// The DestinationRule that shapes it.
    pub destination_rule: Option<ObjectRef>,
    /// Endpoints (`ip:port`) and whether each is healthy; `None` when unknown.
    pub endpoints: Option<BTreeMap<String, bool>>,
}

impl ClusterView {
    /// Addresses of healthy endpoints.
    pub fn healthy(&self) -> BTreeSet<&str> {
        self.endpoints.iter().flatten().filter(|(_, ok)| **ok).map(|(a, _)| a.as_str()).collect()
    }
}

/// Renders a route table canonically, one line per route, for text diffs.
pub fn render_routes(view: &ProxyView) -> String {
    let mut out = String::new();
    for port in &view.ports {
        match &port.virtual_host {
            None if port.protocol.is_tcp_class() => {
                let dests: Vec<String> = port.tcp_destinations.iter().map(|c| format!("{} {}", c.name, c.weight)).collect();
                out.push_str(&format!("port {} ({}) tcp → {}\n", port.port, port.protocol, dests.join(", ")));
            }
            None => out.push_str(&format!("port {} ({}): no virtual host\n", port.port, port.protocol)),
            Some(vh) => {
                out.push_str(&format!("port {} route config {} vhost {}\n", port.port, port.route_config.as_deref().unwrap_or("-"), vh.name));
                for (i, r) in vh.routes.iter().enumerate() {
                    let timeout = r.timeout.as_deref().map(|t| format!(" timeout {t}")).unwrap_or_default();
                    out.push_str(&format!("  #{i} {} {}{timeout}{}\n", r.matcher, r.action, r.features));
                }
            }
        }
    }
    for c in view.clusters.values() {
        let state = if c.present { "present" } else { "absent" };
        out.push_str(&format!("cluster {} {state}\n", c.name));
    }
    out
}
