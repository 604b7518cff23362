//! What istiod pushes to an ambient waypoint for a Service bound to it: per port, an inline
//! route configuration `inbound-vip|PORT|http|HOST` whose one virtual host routes by the
//! VirtualServices the waypoint reads, and `inbound-vip` clusters for the port and each
//! DestinationRule subset.

use super::listeners::envoy_route;
use super::routes::{self, Binding};
use super::target::{Caller, Target};
use super::{PortIntent, port_key};
use crate::envoy::listener::{ChainMatcher, FilterChain, ListenerDetail, NetworkFilter, OnMatch, RouteConfiguration};
use crate::envoy::types::VirtualHost;
use crate::istio::VirtualService;
use crate::istio::names::{ClusterName, InboundVipCluster, Protocol};
use crate::model::Model;
use crate::model::registry::service_namespace;
use crate::snapshot::Resource;
use crate::view::{Action, ClusterView, PortView, ProxyView, RouteView, VirtualHostView, WeightedCluster};
use std::collections::BTreeMap;

/// The waypoint's view of the target, its per-port reasoning, and what was not compared.
pub fn derive<'a>(model: &Model<'a>, caller: &Caller, target: &Target) -> (ProxyView, Vec<PortIntent<'a>>, Vec<String>) {
    let mut view = ProxyView::default();
    let (mut ports, mut not_compared) = (Vec::new(), Vec::new());
    let Some((ns, name)) = caller.waypoint() else {
        not_compared.push(format!("waypoint {}: its pod names no Gateway (label gateway.networking.k8s.io/gateway-name)", caller.display()));
        return (view, ports, not_compared);
    };
    if !model.waypoint_serves(ns, name, &target.fqdn) {
        // The waypoint holds nothing for a service it does not serve: whatever it has is stale.
        return (view, ports, not_compared);
    }
    for tp in target.ports.iter().filter(|tp| tp.protocol != Protocol::Udp) {
        let candidates = virtual_services(model, caller, target, tp.port);
        let mut port_view =
            PortView { key: port_key(tp.port), port: tp.port, protocol: tp.protocol, route_config: None, virtual_host: None, tcp_destinations: Vec::new() };
        let mut winner = None;
        if carries_http(tp.protocol) {
            let mut routes = Vec::new();
            for vs in candidates.iter().filter(|vs| !vs.spec.http.is_empty()) {
                let mut found = routes::routes_for(model, vs, caller, tp.port, Binding::Waypoint);
                if found.is_empty() {
                    continue;
                }
                winner.get_or_insert(*vs);
                for route in &mut found {
                    to_inbound(model, ns, name, route);
                }
                routes.extend(found);
                // Before 1.30 the waypoint took the first VirtualService with HTTP rules only.
                if !caller.at_least(1, 30) {
                    break;
                }
            }
            if routes.is_empty() {
                routes.push(default_route(tp.port, &target.fqdn));
            }
            let rc = vip_cluster(tp.port, "http", "", &target.fqdn);
            port_view.route_config = Some(rc);
            port_view.virtual_host = Some(VirtualHostView { name: format!("inbound|http|{}", tp.port), domains: vec!["*".into()], routes });
        } else {
            not_compared.push(format!("port {} ({}): the waypoint's TCP filter chains are not compared", tp.port, tp.protocol));
        }
        ports.push(PortIntent { port: tp.port, protocol: tp.protocol, hidden: None, candidates, winner });
        view.ports.push(port_view);
    }
    view.clusters = clusters(model, caller, target, &view);
    not_compared.push("waypoint endpoints (HBONE addresses of the pods) are not compared".into());
    (view, ports, not_compared)
}

/// The mesh VirtualServices the waypoint reads for the target on `port`: those it can see
/// that claim the host, in its namespace or (from 1.24) the Service's.
fn virtual_services<'a>(model: &Model<'a>, caller: &Caller, target: &Target, port: u32) -> Vec<&'a Resource<VirtualService>> {
    let allowed = |vs: &&Resource<VirtualService>| vs.meta.namespace == caller.namespace || (caller.at_least(1, 24) && vs.meta.namespace == target.namespace);
    model.virtual_services(caller, &target.fqdn, port).into_iter().filter(allowed).collect()
}

/// HTTP ports, and ports whose protocol is sniffed, get an HTTP filter chain on the waypoint.
fn carries_http(protocol: Protocol) -> bool {
    protocol.is_http() || protocol == Protocol::Auto
}

fn vip_cluster(port: u32, protocol: &'static str, subset: &str, host: &str) -> String {
    InboundVipCluster { port, protocol, subset: subset.into(), host: host.into() }.to_string()
}

/// The route a waypoint gives a bound service without VirtualService routes.
fn default_route(port: u32, fqdn: &str) -> RouteView {
    RouteView {
        name: "default".into(),
        matcher: Default::default(),
        action: Action::Forward { clusters: vec![WeightedCluster { name: vip_cluster(port, "http", "", fqdn), weight: 100 }] },
        timeout: Some("0s".into()),
        features: Default::default(),
        source: None,
        rule_index: None,
    }
}

/// Rewrites the outbound clusters a route names to the waypoint's own `inbound-vip` clusters
/// for the services it serves; other destinations stay outbound.
fn to_inbound(model: &Model<'_>, ns: &str, name: &str, route: &mut RouteView) {
    let map = |cluster: &mut String| {
        let Some(c) = ClusterName::parse(cluster) else { return };
        if model.waypoint_serves(ns, name, &c.host) {
            let protocol = match model.registry.port_protocol(&c.host, c.port) {
                Some(p) if !carries_http(p) => "tcp",
                _ => "http",
            };
            *cluster = vip_cluster(c.port, protocol, &c.subset, &c.host);
        }
    };
    if let Action::Forward { clusters } = &mut route.action {
        clusters.iter_mut().for_each(|c| map(&mut c.name));
    }
    route.features.mirror.iter_mut().for_each(map);
}

/// The waypoint's clusters for the target: per port the `http` (and, for TCP and sniffed
/// ports, `tcp`) cluster and one per DestinationRule subset, plus what the routes name.
fn clusters(model: &Model<'_>, caller: &Caller, target: &Target, view: &ProxyView) -> BTreeMap<String, ClusterView> {
    let rule = model.destination_rule(caller, &target.fqdn, &target.namespace);
    let subsets: Vec<&str> = std::iter::once("").chain(rule.iter().flat_map(|r| r.subset_names())).collect();
    let mut out = BTreeMap::new();
    let mut add = |name: String, present: bool| {
        out.entry(name.clone()).or_insert(ClusterView { name, present, ..Default::default() });
    };
    for tp in target.ports.iter().filter(|tp| tp.protocol != Protocol::Udp) {
        for subset in &subsets {
            if !carries_http(tp.protocol) || tp.protocol == Protocol::Auto {
                add(vip_cluster(tp.port, "tcp", subset, &target.fqdn), true);
            }
            if carries_http(tp.protocol) {
                add(vip_cluster(tp.port, "http", subset, &target.fqdn), true);
            }
        }
    }
    for port in &view.ports {
        for c in port.virtual_host.iter().flat_map(|vh| vh.routes.iter()).flat_map(|r| r.action.clusters()) {
            // A route to an undeclared subset or an unknown port names a cluster istiod does not build.
            let known = match (InboundVipCluster::parse(&c.name), ClusterName::parse(&c.name)) {
                (Some(v), _) => model.registry.has_port(&v.host, v.port) && (v.subset.is_empty() || subsets.contains(&v.subset.as_str())),
                (None, Some(o)) => model.registry.has_port(&o.host, o.port) && model.registry.visible(&o.host, &service_namespace(&o.host)).is_some(),
                _ => false,
            };
            add(c.name.clone(), known);
        }
    }
    out
}

/// The waypoint's internal listener `main_internal` as istiod builds it, for walking a request:
/// one HTTP filter chain per port of each Service the waypoint serves, with its route
/// configuration inline, picked by destination VIP, then port.
pub fn main_internal(model: &Model<'_>, caller: &Caller) -> Option<(String, ListenerDetail)> {
    let (ns, name) = caller.waypoint()?;
    let mut chains = Vec::new();
    let mut by_vip: BTreeMap<String, Vec<(String, OnMatch)>> = BTreeMap::new();
    for svc in &model.objects.services {
        let target = Target::from_service(svc);
        if !model.waypoint_serves(ns, name, &target.fqdn) {
            continue;
        }
        for port in derive(model, caller, &target).0.ports {
            let (Some(vh), Some(rc)) = (port.virtual_host, port.route_config) else { continue };
            let routes = vh.routes.iter().map(envoy_route).collect();
            let virtual_hosts = vec![VirtualHost { name: vh.name, domains: vh.domains, routes, require_tls: None }];
            let inline = Some(Box::new(RouteConfiguration { name: rc.clone(), virtual_hosts }));
            chains.push(FilterChain { name: rc.clone(), network: NetworkFilter::Http { rds: None, inline }, ..FilterChain::default() });
            if let Some(vip) = &target.cluster_ip {
                by_vip.entry(vip.clone()).or_default().push((port.port.to_string(), OnMatch::Chain(rc)));
            }
        }
    }
    let port_matcher = |exact| OnMatch::Matcher(Box::new(ChainMatcher { input: "DestinationPortInput".into(), exact, ..ChainMatcher::default() }));
    let exact = by_vip.into_iter().map(|(vip, ports)| (vip, port_matcher(ports))).collect();
    let matcher = ChainMatcher { input: "DestinationIPInput".into(), exact, ..ChainMatcher::default() };
    let listener = ListenerDetail { filter_chains: chains, chain_matcher: Some(matcher), internal: true, ..ListenerDetail::default() };
    Some(("main_internal".into(), listener))
}
