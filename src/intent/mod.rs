//! Intent: the routes, clusters and endpoints istiod should push to one caller for the asked
//! service, derived from the objects through the model (pure: no I/O).

pub mod endpoints;
pub mod gateway;
pub mod gateway_listeners;
pub mod inbound;
pub mod listeners;
pub mod routes;
pub mod target;
pub mod waypoint;

use crate::istio::VirtualService;
use crate::istio::names::{ClusterName, Protocol};
use crate::model::Model;
use crate::model::registry::service_namespace;
use crate::model::virtual_services::tcp_rule;
use crate::snapshot::{ObjectRef, Resource};
use crate::view::{ClusterView, PortView, ProxyView, VirtualHostView, WeightedCluster};
use std::collections::BTreeMap;
use target::{Caller, CallerKind, Target};

/// Why the caller sees (or does not see) the service on one port.
#[derive(Debug, Clone)]
pub struct PortIntent<'a> {
    /// Service port.
    pub port: u32,
    /// Protocol.
    pub protocol: Protocol,
    /// Set when the service is invisible to the caller: reason and the object responsible.
    pub hidden: Option<(String, Option<ObjectRef>)>,
    /// Mesh VirtualServices that claim the host, in precedence order.
    pub candidates: Vec<&'a Resource<VirtualService>>,
    /// The one whose routes are used.
    pub winner: Option<&'a Resource<VirtualService>>,
}

/// What one caller's proxy should hold for the target.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    /// The expected configuration.
    pub view: ProxyView,
    /// Per-port reasoning.
    pub ports: Vec<PortIntent<'a>>,
    /// What the model does not cover for this caller, so was left out of the comparison.
    pub not_compared: Vec<String>,
}

/// Derives the caller's expected configuration for the target.
pub fn derive<'a>(model: &Model<'a>, caller: &Caller, target: &Target) -> Intent<'a> {
    let mut view = ProxyView::default();
    let mut ports = Vec::new();
    if caller.kind == CallerKind::Gateway {
        for (port_view, port_intent) in gateway::derive(model, caller, target) {
            view.ports.push(port_view);
            ports.push(port_intent);
        }
        view.clusters = clusters(model, caller, target, &view);
        return Intent { view, ports, not_compared: Vec::new() };
    }
    if caller.kind == CallerKind::Waypoint {
        let (view, ports, not_compared) = waypoint::derive(model, caller, target);
        return Intent { view, ports, not_compared };
    }
    let scope = model.sidecar_scope(caller);
    let mut not_compared = Vec::new();
    for tp in &target.ports {
        let hidden = scope.service_hidden(model, target, tp.port);
        let candidates = model.virtual_services(caller, &target.fqdn, tp.port);
        let mut port_view =
            PortView { key: port_key(tp.port), port: tp.port, protocol: tp.protocol, route_config: None, virtual_host: None, tcp_destinations: Vec::new() };
        let mut winner = None;
        if hidden.is_none() && tp.protocol != Protocol::Udp {
            if tp.protocol.is_tcp_class() {
                match tcp_destinations(model, caller, &candidates, &target.fqdn, tp.port) {
                    Ok((vs, destinations)) => {
                        winner = vs;
                        port_view.tcp_destinations = destinations;
                    }
                    Err(what) => {
                        not_compared.push(format!("port {}: {what}", tp.port));
                        continue;
                    }
                }
            } else {
                let routes_and_vs = candidates
                    .iter()
                    .map(|vs| (vs, routes::routes_for(model, vs, caller, tp.port, routes::Binding::Mesh)))
                    .find(|(_, routes)| !routes.is_empty());
                let routes = match routes_and_vs {
                    Some((vs, routes)) => {
                        winner = Some(*vs);
                        routes
                    }
                    None => vec![routes::default_route(model, caller, &target.fqdn, tp.port)],
                };
                let sniffed = tp.protocol == Protocol::Auto;
                port_view.route_config = Some(if sniffed { format!("{}:{}", target.fqdn, tp.port) } else { tp.port.to_string() });
                port_view.virtual_host = Some(VirtualHostView {
                    name: format!("{}:{}", target.fqdn, tp.port),
                    domains: if sniffed { vec!["*".into()] } else { domains(caller, target) },
                    routes,
                });
            }
        }
        ports.push(PortIntent { port: tp.port, protocol: tp.protocol, hidden, candidates, winner });
        view.ports.push(port_view);
    }
    view.clusters = clusters(model, caller, target, &view);
    Intent { view, ports, not_compared }
}

/// The clusters a sidecar's tcp_proxy forwards to on a TCP port: the first applicable `tcp[]`
/// rule of the first VirtualService having one (one destination is a plain cluster, several a
/// weighted split without the zero weights), else the service's default cluster. `Err` names
/// a rule the model does not cover.
fn tcp_destinations<'a>(
    model: &Model<'a>,
    caller: &Caller,
    candidates: &[&'a Resource<VirtualService>],
    fqdn: &str,
    port: u32,
) -> Result<(Option<&'a Resource<VirtualService>>, Vec<WeightedCluster>), String> {
    for vs in candidates {
        let Some(rule) = tcp_rule(vs, caller, port)? else { continue };
        let to = |d: &crate::istio::RouteDestination| routes::destination_cluster(model, &d.destination, &vs.meta.namespace, port);
        let destinations = match rule.route.as_slice() {
            [one] => vec![WeightedCluster { name: to(one), weight: 100 }],
            many => many.iter().filter(|d| d.weight.unwrap_or(0) > 0).map(|d| WeightedCluster { name: to(d), weight: d.weight.unwrap_or(0) as u32 }).collect(),
        };
        return Ok((Some(*vs), destinations));
    }
    Ok((None, vec![WeightedCluster { name: cluster(port, "", fqdn), weight: 100 }]))
}

/// The key pairing a sidecar's entries for one service port.
pub fn port_key(port: u32) -> String {
    format!("port {port}")
}

fn cluster(port: u32, subset: &str, host: &str) -> String {
    ClusterName { port, subset: subset.into(), host: host.into() }.to_string()
}

/// Vhost domains for a sidecar: FQDN, (1.27+) FQDN with a trailing dot, short forms, ClusterIP.
fn domains(caller: &Caller, target: &Target) -> Vec<String> {
    let mut d = vec![target.fqdn.clone()];
    if caller.at_least(1, 27) {
        d.push(format!("{}.", target.fqdn));
    }
    let (name, ns) = (&target.name, &target.namespace);
    if caller.namespace == *ns {
        d.extend([name.clone(), format!("{name}.{ns}.svc"), format!("{name}.{ns}")]);
    } else {
        d.extend([format!("{name}.{ns}"), format!("{name}.{ns}.svc")]);
    }
    d.extend(target.cluster_ip.clone());
    d
}

/// The clusters the caller should hold: every subset of the target's effective DestinationRule
/// and every cluster a route names, with presence, rule and expected endpoints.
fn clusters(model: &Model<'_>, caller: &Caller, target: &Target, view: &ProxyView) -> BTreeMap<String, ClusterView> {
    let mut names: Vec<String> = Vec::new();
    let target_rule = model.destination_rule(caller, &target.fqdn, &target.namespace);
    let scope = model.sidecar_scope(caller);
    for tp in &target.ports {
        // istiod builds clusters only for the services the SidecarScope imports.
        let hidden = caller.kind == CallerKind::Sidecar && scope.service_hidden(model, target, tp.port).is_some();
        if tp.protocol == Protocol::Udp || hidden {
            continue;
        }
        names.push(cluster(tp.port, "", &target.fqdn));
        for subset in target_rule.iter().flat_map(|r| r.subset_names()) {
            names.push(cluster(tp.port, subset, &target.fqdn));
        }
    }
    for port in &view.ports {
        let from_routes = port.virtual_host.iter().flat_map(|vh| vh.routes.iter()).flat_map(|r| r.action.clusters());
        names.extend(from_routes.chain(port.tcp_destinations.iter()).map(|c| c.name.clone()));
    }
    let mut out = BTreeMap::new();
    for name in names {
        if !out.contains_key(&name)
            && let Some(view) = cluster_view(model, caller, target, name.clone())
        {
            out.insert(name, view);
        }
    }
    out
}

/// Adds to `view` what the model expects of clusters Envoy holds that the intent did not list:
/// istiod pushes a cluster for every service the caller imports, whether or not a route names
/// it, so a cluster is not evidence of staleness by being there.
pub fn expect_clusters<'n>(model: &Model<'_>, caller: &Caller, target: &Target, view: &mut ProxyView, names: impl IntoIterator<Item = &'n String>) {
    // A waypoint's clusters for the target are all in its intent already.
    if caller.kind == CallerKind::Waypoint {
        return;
    }
    for name in names {
        if !view.clusters.contains_key(name)
            && let Some(cluster) = cluster_view(model, caller, target, name.clone())
        {
            view.clusters.insert(name.clone(), cluster);
        }
    }
}

/// What istiod pushes for cluster `name` to `caller`: whether it exists (a known port of a
/// service the caller imports, a declared subset), its rule, load balancer and endpoints.
fn cluster_view(model: &Model<'_>, caller: &Caller, target: &Target, name: String) -> Option<ClusterView> {
    let parsed = ClusterName::parse(&name)?;
    let service_ns = service_namespace(&parsed.host);
    let rule = model.destination_rule(caller, &parsed.host, &service_ns);
    let port_known = model.registry.has_port(&parsed.host, parsed.port);
    let scope = model.sidecar_scope(caller);
    let imported = caller.kind != CallerKind::Sidecar
        || if parsed.host == target.fqdn {
            scope.service_hidden(model, target, parsed.port).is_none()
        } else {
            model.registry.visible(&parsed.host, &caller.namespace).is_some() && scope.imports(parsed.port, &service_ns, &parsed.host)
        };
    let subset_declared = parsed.subset.is_empty() || rule.as_ref().is_some_and(|r| r.subset_owner(&parsed.subset).is_some());
    let dr = match &rule {
        Some(r) if !parsed.subset.is_empty() => r.subset_owner(&parsed.subset).or(Some(r.primary())),
        Some(r) => Some(r.primary()),
        None => None,
    };
    let lb_policy = dr.and_then(|d| {
        let policy = d.spec.effective_policy(parsed.port, Some(&parsed.subset).filter(|s| !s.is_empty()).map(String::as_str));
        lb_policy(policy.load_balancer.as_ref()?)
    });
    let endpoints = if parsed.host == target.fqdn {
        target.ports.iter().find(|p| p.port == parsed.port).and_then(|tp| {
            let labels = dr.and_then(|d| d.spec.subset(&parsed.subset)).map(|s| s.labels.clone()).unwrap_or_default();
            // From 1.31 istiod sends unready endpoints marked unhealthy, unless the
            // cluster's outlier detection sets a minimum health percentage.
            let min_health = dr.and_then(|d| {
                let policy = d.spec.effective_policy(parsed.port, Some(&parsed.subset).filter(|s| !s.is_empty()).map(String::as_str));
                policy.outlier_detection?.get("minHealthPercent")?.as_f64()
            });
            let send_unhealthy = caller.at_least(1, 31) && min_health.is_none_or(|p| p <= 0.0);
            endpoints::backends(model, target, tp).map(|b| endpoints::sent(&b, &labels, send_unhealthy))
        })
    } else {
        None
    };
    Some(ClusterView {
        name,
        present: port_known && subset_declared && imported,
        lb_policy,
        destination_rule: dr.map(|d| d.reference("DestinationRule")),
        endpoints,
    })
}

/// Envoy's lb_policy for a DestinationRule `loadBalancer` block.
fn lb_policy(lb: &serde_json::Value) -> Option<String> {
    if lb.get("consistentHash").is_some() {
        let maglev = lb.pointer("/consistentHash/maglev").is_some();
        return Some(if maglev { "MAGLEV" } else { "RING_HASH" }.into());
    }
    let policy = match lb.get("simple")?.as_str()? {
        "ROUND_ROBIN" => "ROUND_ROBIN",
        "RANDOM" => "RANDOM",
        "PASSTHROUGH" => "CLUSTER_PROVIDED",
        "LEAST_CONN" | "LEAST_REQUEST" => "LEAST_REQUEST",
        // UNSPECIFIED leaves it to istiod's default, which changed across versions.
        _ => return None,
    };
    Some(policy.into())
}
