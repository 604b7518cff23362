//! Diff: compares a caller's intended configuration with what its Envoy holds, semantically
//! (routes by position, matches, weighted clusters, cluster presence and load balancer,
//! endpoint sets), and as a unified text diff of both route tables rendered canonically.

use crate::view::{ProxyView, RouteView, render_routes};
use serde::Serialize;
use similar::TextDiff;

/// One semantic difference between intent and the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The proxy has no virtual host for the service on this port, but should.
    VirtualHostMissing {
        /// Port.
        port: u32,
    },
    /// The proxy routes the service on this port, but should not (e.g. it should not see it).
    VirtualHostUnexpected {
        /// Port.
        port: u32,
    },
    /// A route differs (or is missing / extra, when one side is `None`).
    Route {
        /// Port.
        port: u32,
        /// Position in the virtual host.
        index: usize,
        /// Expected route, rendered.
        expected: Option<String>,
        /// Route in the proxy, rendered.
        actual: Option<String>,
    },
    /// TCP destinations differ.
    TcpRoute {
        /// Port.
        port: u32,
        /// Expected clusters.
        expected: Vec<String>,
        /// Clusters in the proxy.
        actual: Vec<String>,
    },
    /// A cluster that should exist is missing from the proxy.
    ClusterMissing {
        /// Cluster name.
        cluster: String,
    },
    /// The proxy has a cluster that should no longer exist.
    ClusterUnexpected {
        /// Cluster name.
        cluster: String,
    },
    /// The DestinationRule sets a load balancer the proxy's cluster does not use.
    LbPolicy {
        /// Cluster name.
        cluster: String,
        /// Envoy `lb_policy` the DestinationRule implies.
        expected: String,
        /// Envoy `lb_policy` the cluster has.
        actual: String,
    },
    /// Endpoints of a cluster differ from the ready pods it should select.
    Endpoints {
        /// Cluster name.
        cluster: String,
        /// Ready pod addresses the proxy lacks.
        missing: Vec<String>,
        /// Addresses the proxy holds that no ready pod of the subset has.
        unexpected: Vec<String>,
    },
}

impl Difference {
    /// True for differences in endpoints (as opposed to routes and clusters).
    pub fn is_endpoints(&self) -> bool {
        matches!(self, Difference::Endpoints { .. })
    }
}

/// All differences for one caller, plus the text diff.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProxyDiff {
    /// Semantic differences.
    pub differences: Vec<Difference>,
    /// Unified diff of the canonical route tables (empty when equal).
    pub text: String,
}

/// Compares `intent` with `actual`.
pub fn compare(intent: &ProxyView, actual: &ProxyView) -> ProxyDiff {
    let mut differences = Vec::new();
    for want in &intent.ports {
        let port = want.port;
        let Some(have) = actual.ports.iter().find(|p| p.key == want.key) else {
            if want.virtual_host.is_some() {
                differences.push(Difference::VirtualHostMissing { port });
            }
            continue;
        };
        match (&want.virtual_host, &have.virtual_host) {
            (Some(_), None) if have.tcp_destinations.is_empty() => differences.push(Difference::VirtualHostMissing { port }),
            (None, Some(_)) if !want.protocol.is_tcp_class() => differences.push(Difference::VirtualHostUnexpected { port }),
            (Some(w), Some(h)) => {
                for index in 0..w.routes.len().max(h.routes.len()) {
                    let (e, a) = (w.routes.get(index), h.routes.get(index));
                    if !matches!((e, a), (Some(e), Some(a)) if same_route(e, a)) {
                        differences.push(Difference::Route { port, index, expected: e.map(describe), actual: a.map(describe) });
                    }
                }
            }
            _ => {}
        }
        if want.protocol.is_tcp_class() && !have.tcp_destinations.is_empty() {
            let names = |v: &[crate::view::WeightedCluster]| v.iter().map(|c| format!("{} {}", c.name, c.weight)).collect::<Vec<_>>();
            let (e, a) = (names(&want.tcp_destinations), names(&have.tcp_destinations));
            if e != a {
                differences.push(Difference::TcpRoute { port, expected: e, actual: a });
            }
        }
    }
    for have in actual.ports.iter().filter(|h| h.virtual_host.is_some() && !intent.ports.iter().any(|w| w.key == h.key)) {
        differences.push(Difference::VirtualHostUnexpected { port: have.port });
    }
    for (name, want) in &intent.clusters {
        let Some(have) = actual.clusters.get(name) else { continue };
        match (want.present, have.present) {
            (true, false) => differences.push(Difference::ClusterMissing { cluster: name.clone() }),
            (false, true) => differences.push(Difference::ClusterUnexpected { cluster: name.clone() }),
            (true, true) => {
                if let (Some(w), Some(h)) = (&want.lb_policy, &have.lb_policy)
                    && w != h
                {
                    differences.push(Difference::LbPolicy { cluster: name.clone(), expected: w.clone(), actual: h.clone() });
                }
                if let (Some(w), Some(h)) = (&want.endpoints, &have.endpoints) {
                    let missing: Vec<String> = w.keys().filter(|a| !h.contains_key(*a)).cloned().collect();
                    let unexpected: Vec<String> = h.keys().filter(|a| !w.contains_key(*a)).cloned().collect();
                    if !missing.is_empty() || !unexpected.is_empty() {
                        differences.push(Difference::Endpoints { cluster: name.clone(), missing, unexpected });
                    }
                }
            }
            (false, false) => {}
        }
    }
    for (name, have) in &actual.clusters {
        if have.present && !intent.clusters.contains_key(name) {
            differences.push(Difference::ClusterUnexpected { cluster: name.clone() });
        }
    }
    let (left, right) = (render_routes(intent), render_routes(actual));
    let text = if left == right {
        String::new()
    } else {
        TextDiff::from_lines(&left, &right).unified_diff().context_radius(3).header("intent (from objects)", "proxy (Envoy)").to_string()
    };
    ProxyDiff { differences, text }
}

fn same_route(e: &RouteView, a: &RouteView) -> bool {
    let timeout = |t: &Option<String>| t.clone().filter(|t| t != "0s");
    let (ef, af) = (&e.features, &a.features);
    e.matcher == a.matcher && e.action == a.action && timeout(&e.timeout) == timeout(&a.timeout) && ef == af
}

fn describe(r: &RouteView) -> String {
    format!("{} {}{}", r.matcher, r.action, r.features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::names::Protocol;
    use crate::view::{Action, ClusterView, MatchView, PortView, VirtualHostView, WeightedCluster};

    fn view(weights: &[(&str, u32)], clusters: &[&str]) -> ProxyView {
        let route = RouteView {
            name: String::new(),
            matcher: MatchView::default(),
            action: Action::Forward { clusters: weights.iter().map(|(n, w)| WeightedCluster { name: n.to_string(), weight: *w }).collect() },
            timeout: Some("0s".into()),
            features: Default::default(),
            source: None,
            rule_index: None,
        };
        ProxyView {
            ports: vec![PortView {
                key: "port 9080".into(),
                port: 9080,
                protocol: Protocol::Http,
                route_config: Some("9080".into()),
                virtual_host: Some(VirtualHostView { name: "r:9080".into(), domains: vec![], routes: vec![route] }),
                tcp_destinations: vec![],
            }],
            clusters: clusters.iter().map(|c| (c.to_string(), ClusterView { name: c.to_string(), present: true, ..Default::default() })).collect(),
        }
    }

    #[test]
    fn equal_views_have_no_differences() {
        let v = view(&[("a", 90), ("b", 10)], &["a", "b"]);
        let d = compare(&v, &v.clone());
        assert!(d.differences.is_empty());
        assert!(d.text.is_empty());
    }

    #[test]
    fn old_weights_and_missing_clusters_are_reported() {
        let d = compare(&view(&[("a", 90), ("b", 10)], &["a", "b"]), &view(&[("a", 50), ("b", 50)], &["a"]));
        assert!(matches!(&d.differences[0], Difference::Route { index: 0, .. }));
        assert!(d.text.contains("-  #0 prefix / → a 90, b 10"), "{}", d.text);
        assert!(d.text.contains("+  #0 prefix / → a 50, b 50"));
    }
}
