//! The listeners, filter chains and route configurations istiod pushes to one proxy, in
//! Envoy's shape, so a request can be walked through them like through a config dump.
//!
//! Sidecar outbound: one listener per service port (`0.0.0.0_P` for HTTP, `VIP_P` for TCP,
//! TLS and sniffed ports with a VIP), route configuration `P` with a virtual host per service
//! and VirtualService host plus the `allow_any`/`block_all` catch-all, and `virtualOutbound`
//! for everything else. Sidecar inbound: `virtualInbound` with chains per service target port
//! shaped by the PeerAuthentication mode. Gateways: one listener per server port,
//! `http.P` route configurations and per-server TLS chains.

use super::routes::{Binding, default_route, routes_for};
use super::target::{Caller, CallerKind};
use crate::envoy::listener::{ChainMatch, FilterChain, ListenerDetail, ListenerFilter, NetworkFilter, RouteConfiguration};
use crate::envoy::types::{
    DirectResponse, HeaderMatcher, RegexMatcher, Route, RouteAction, RouteMatch, StringMatcher, VirtualHost, WeightedCluster, WeightedClusters,
};
use crate::istio::VirtualService;
use crate::istio::labels_match;
use crate::istio::names::{DEFAULT_DOMAIN, Protocol, host_matches, specificity};
use crate::model::Model;
use crate::model::virtual_services::vs_hosts;
use crate::snapshot::Resource;
use crate::snapshot::ServiceSpec;
use crate::trace::ProxyConfig;
use crate::view::{self, MatchView, PathMatch, RouteView};
use std::collections::BTreeMap;

/// What istiod would push, and what of it is not modelled.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    /// Listeners and route configurations.
    pub config: ProxyConfig,
    /// What the derivation does not cover for this proxy.
    pub gaps: Vec<String>,
}

/// A service as the caller's registry holds it.
#[derive(Debug, Clone)]
struct Service {
    host: String,
    namespace: String,
    vip: Option<String>,
    /// (port, protocol, target port).
    ports: Vec<(u32, Protocol, u32)>,
    /// ExternalName Services that alias this one (their FQDNs).
    aliases: Vec<String>,
    /// Endpoint IPs of a headless Service (each gets its own TCP listeners).
    endpoints: Vec<String>,
}

/// The outbound traffic policy's catch-all cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outbound {
    AllowAny,
    RegistryOnly,
    DynamicDns,
}

/// Derives the Envoy-shaped configuration istiod pushes to `caller`.
pub fn derive(model: &Model<'_>, caller: &Caller) -> Derived {
    let mode = match model.sidecar_scope(caller).outbound_mode.as_str() {
        "REGISTRY_ONLY" => Outbound::RegistryOnly,
        "ALLOW_ANY_DYNAMIC_DNS" => Outbound::DynamicDns,
        _ => Outbound::AllowAny,
    };
    let services = registry(model);
    let mut d = Derived::default();
    if caller.kind == CallerKind::Gateway {
        super::gateway_listeners::derive(model, caller, &mut d);
        return d;
    }
    if caller.kind == CallerKind::Waypoint {
        d.config.listeners.extend(super::waypoint::main_internal(model, caller));
        d.gaps.push("a waypoint's listeners are modelled for the HTTP filter chains of the Services bound to it (main_internal); its TCP chains and HBONE listeners are not".into());
        return d;
    }
    sidecar_outbound(model, caller, &services, mode, &mut d.config);
    d.config.listeners.push(("virtualOutbound".into(), virtual_outbound(mode)));
    d.config.listeners.push(("virtualInbound".into(), super::inbound::virtual_inbound(model, caller)));
    d.gaps.push("istiod's listener synthesis is modelled for Services, ServiceEntries, Sidecar egress and PeerAuthentication; EnvoyFilters, Sidecar ingress/egress ports and ambient are not".into());
    d
}

/// Kubernetes Services and ServiceEntry hosts with their ports.
fn registry(model: &Model<'_>) -> Vec<Service> {
    let objects = model.objects;
    let mut out = Vec::new();
    let no_spec = ServiceSpec::default();
    for svc in &objects.services {
        let spec = svc.spec.spec.as_ref().unwrap_or(&no_spec);
        let vip = spec.cluster_vip().map(str::to_string);
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let protocol = Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref(), p.protocol.as_deref(), p.port as u32);
                let target = match &p.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u32,
                    _ => p.port as u32,
                };
                (p.port as u32, protocol, target)
            })
            .collect();
        let endpoints = if vip.is_none() {
            let slices = model.endpoint_slices_of(&svc.meta.namespace, &svc.meta.name);
            slices.iter().flat_map(|es| es.spec.endpoints.iter().flat_map(|e| e.addresses.clone())).collect()
        } else {
            Vec::new()
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        out.push(Service {
            host: format!("{}.{}.svc.{DEFAULT_DOMAIN}", svc.meta.name, svc.meta.namespace),
            namespace: svc.meta.namespace.clone(),
            vip,
            ports,
            aliases: Vec::new(),
            endpoints,
        });
    }
    // An ExternalName Service naming a mesh service is an alias of it: its names reach the
    // concrete service's virtual host.
    for svc in &objects.services {
        let spec = svc.spec.spec.as_ref().unwrap_or(&no_spec);
        if let (Some("ExternalName"), Some(target)) = (spec.type_.as_deref(), spec.external_name.as_deref())
            && let Some(concrete) = out.iter_mut().find(|s| s.host == target)
        {
            concrete.aliases.push(format!("{}.{}.svc.{DEFAULT_DOMAIN}", svc.meta.name, svc.meta.namespace));
        }
    }
    for se in &objects.service_entries {
        let ports: Vec<(u32, Protocol, u32)> =
            se.spec.ports.iter().map(|p| (p.number, Protocol::from_name(p.protocol.as_deref().unwrap_or_default()), p.number)).collect();
        let vip = se.spec.addresses.first().cloned();
        for host in &se.spec.hosts {
            out.push(Service {
                host: host.clone(),
                namespace: se.meta.namespace.clone(),
                vip: vip.clone(),
                ports: ports.clone(),
                aliases: Vec::new(),
                endpoints: Vec::new(),
            });
        }
    }
    out.sort_by(|a, b| a.host.cmp(&b.host).then(a.namespace.cmp(&b.namespace)));
    out
}

/// Whether the caller imports `svc` on `port`: the registry's exportTo, then the SidecarScope.
fn visible(model: &Model<'_>, caller: &Caller, svc: &Service, port: u32) -> bool {
    let exported = model.registry.definitions(&svc.host).iter().filter(|d| d.namespace == svc.namespace).any(|d| model.registry.exported(d, &caller.namespace));
    exported && model.sidecar_scope(caller).imports(port, &svc.namespace, &svc.host)
}

fn cluster(port: u32, host: &str) -> String {
    format!("outbound|{port}||{host}")
}

/// The listener filters istiod puts on outbound listeners.
fn inspectors() -> Vec<ListenerFilter> {
    ["envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector"]
        .into_iter()
        .map(|name| ListenerFilter { name: name.into(), disabled: None })
        .collect()
}

/// A chain that ends in a tcp_proxy to `cluster`.
pub(super) fn tcp_chain(name: &str, matcher: ChainMatch, cluster: &str) -> FilterChain {
    FilterChain { name: name.into(), matcher, tls: None, network: NetworkFilter::Tcp { cluster: Some(cluster.into()), weighted: Vec::new() } }
}

/// A chain that ends in an HTTP connection manager using RDS `rds`.
pub(super) fn http_chain(name: &str, matcher: ChainMatch, rds: &str) -> FilterChain {
    FilterChain { name: name.into(), matcher, tls: None, network: NetworkFilter::Http { rds: Some(rds.into()), inline: None } }
}

/// The match of plaintext HTTP as the HTTP inspector reports it.
pub(super) fn plaintext_http() -> ChainMatch {
    ChainMatch { transport_protocol: Some("raw_buffer".into()), application_protocols: vec!["http/1.1".into(), "h2c".into()], ..ChainMatch::default() }
}

fn passthrough_cluster(mode: Outbound) -> &'static str {
    if mode == Outbound::RegistryOnly { "BlackHoleCluster" } else { "PassthroughCluster" }
}

fn sidecar_outbound(model: &Model<'_>, caller: &Caller, services: &[Service], mode: Outbound, config: &mut ProxyConfig) {
    let mut listeners: BTreeMap<(String, u32), ListenerDetail> = BTreeMap::new();
    let mut http_ports: BTreeMap<u32, Vec<&Service>> = BTreeMap::new();
    let default_chain = |mode| Some(tcp_chain("PassthroughFilterChain", ChainMatch::default(), passthrough_cluster(mode)));
    for svc in services {
        for &(port, protocol, _) in &svc.ports {
            if protocol == Protocol::Udp || !visible(model, caller, svc, port) {
                continue;
            }
            // Headless services get one listener per endpoint for ports that are not plain HTTP.
            let binds: Vec<Option<String>> = if svc.vip.is_none() && !svc.endpoints.is_empty() && !protocol.is_http() {
                svc.endpoints.iter().cloned().map(Some).collect()
            } else {
                vec![svc.vip.clone().filter(|v| !v.contains('/') || protocol == Protocol::Tcp)]
            };
            for vip in binds {
                let address = vip.clone().filter(|v| !v.contains('/')).unwrap_or_else(|| "0.0.0.0".into());
                let name = format!("{address}_{port}");
                let by_ip = ChainMatch { prefix_ranges: vip.iter().map(|v| cidr(v)).collect(), ..ChainMatch::default() };
                let (address, chains) = match protocol {
                    p if p.is_http() => {
                        http_ports.entry(port).or_default().push(svc);
                        ("0.0.0.0".to_string(), vec![http_chain(&format!("0.0.0.0_{port}"), plaintext_http(), &port.to_string())])
                    }
                    Protocol::Auto => {
                        // A sniffed port bound to a VIP has a route configuration of its own.
                        let rds = if address == "0.0.0.0" {
                            http_ports.entry(port).or_default().push(svc);
                            port.to_string()
                        } else {
                            config.route_configs.push(route_config(model, caller, port, &[svc], mode, &format!("{}:{port}", svc.host)));
                            format!("{}:{port}", svc.host)
                        };
                        (address, vec![tcp_chain(&name, by_ip, &cluster(port, &svc.host)), http_chain(&name, plaintext_http(), &rds)])
                    }
                    Protocol::Tls | Protocol::Https if vip.is_none() => {
                        let m = ChainMatch { server_names: vec![svc.host.clone()], transport_protocol: Some("tls".into()), ..ChainMatch::default() };
                        (address, vec![tcp_chain(&name, m, &cluster(port, &svc.host))])
                    }
                    _ => (address, vec![tcp_chain(&name, by_ip, &cluster(port, &svc.host))]),
                };
                let l = listeners.entry((address.clone(), port)).or_insert_with(|| ListenerDetail {
                    address,
                    port,
                    bind_to_port: false,
                    use_original_dst: false,
                    listener_filters: inspectors(),
                    filter_chains: Vec::new(),
                    default_filter_chain: default_chain(mode),
                    chain_matcher: None,
                    internal: false,
                });
                for chain in chains {
                    // istiod keeps the first service's chain when two claim the same match.
                    if !l.filter_chains.iter().any(|c| c.matcher == chain.matcher) {
                        l.filter_chains.push(chain);
                    }
                }
            }
        }
    }
    for ((address, port), l) in listeners {
        config.listeners.push((format!("{address}_{port}"), l));
    }
    for (port, svcs) in http_ports {
        config.route_configs.push(route_config(model, caller, port, &svcs, mode, &port.to_string()));
    }
}

/// An address or CIDR as (network address, prefix length); host bits are cleared, so two
/// spellings of one range compare equal.
fn cidr(address: &str) -> (String, u32) {
    let (a, len) = address.split_once('/').map(|(a, l)| (a, l.parse().ok())).unwrap_or((address, None));
    match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (std::net::Ipv4Addr::from(u32::from(ip) & mask).to_string(), len)
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            (std::net::Ipv6Addr::from(u128::from(ip) & mask).to_string(), len)
        }
        Err(_) => (a.to_string(), len.unwrap_or(32)),
    }
}

/// Route configuration `port`: a virtual host per service and VirtualService host, then the catch-all.
fn route_config(model: &Model<'_>, caller: &Caller, port: u32, svcs: &[&Service], mode: Outbound, name: &str) -> RouteConfiguration {
    let mut vhosts: Vec<VirtualHost> = Vec::new();
    let vses = model.mesh_virtual_services(caller, port);
    // Each service takes the VirtualService whose host names it most specifically (an exact
    // host over a wildcard, a longer wildcard over a shorter), the first in precedence order on
    // a tie; one that has no route for this port (its rules match other ports) leaves the
    // service to the next, or to the default route.
    for svc in svcs {
        let mut claims: Vec<((bool, usize), &&Resource<VirtualService>)> = Vec::new();
        for vs in &vses {
            if let Some(rank) = vs_hosts(vs).iter().filter(|h| host_matches(h, &svc.host)).map(|h| specificity(h)).max() {
                claims.push((rank, vs));
            }
        }
        claims.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
        let routes = claims
            .iter()
            .map(|(_, vs)| routes_for(model, vs, caller, port, Binding::Mesh))
            .find(|routes| !routes.is_empty())
            .unwrap_or_else(|| vec![default_route(model, caller, &svc.host, port)]);
        let routes = routes.iter().map(envoy_route).collect();
        vhosts.push(VirtualHost { name: format!("{}:{port}", svc.host), domains: service_domains(svc, port, caller), routes, require_tls: None });
    }
    // VirtualService hosts that name no service get a virtual host of their own.
    let mut claimed: Vec<String> = Vec::new();
    for vs in &vses {
        for host in vs_hosts(vs) {
            if claimed.contains(&host) || svcs.iter().any(|s| host_matches(&host, &s.host)) {
                continue;
            }
            claimed.push(host.clone());
            let routes = routes_for(model, vs, caller, port, Binding::Mesh).iter().map(envoy_route).collect();
            vhosts.push(VirtualHost { name: format!("{host}:{port}"), domains: vec![host.clone(), format!("{host}:{port}")], routes, require_tls: None });
        }
    }
    // A domain listed twice would make Envoy reject the table; istiod keeps the first.
    let mut seen = std::collections::BTreeSet::new();
    for vh in &mut vhosts {
        vh.domains.retain(|d| seen.insert(d.clone()));
    }
    vhosts.retain(|vh| !vh.domains.is_empty());
    vhosts.push(catch_all(mode));
    RouteConfiguration { name: name.to_string(), virtual_hosts: vhosts }
}

/// The `allow_any` / `block_all` virtual host.
fn catch_all(mode: Outbound) -> VirtualHost {
    let (name, route) = match mode {
        Outbound::RegistryOnly => {
            ("block_all", Route { name: Some("block_all".into()), direct_response: Some(DirectResponse { status: 502 }), ..Route::default() })
        }
        Outbound::AllowAny | Outbound::DynamicDns => {
            let cluster = if mode == Outbound::DynamicDns { "AllowAnyDynamicDNSCluster" } else { "PassthroughCluster" };
            (
                "allow_any",
                Route {
                    name: Some("allow_any".into()),
                    route: Some(RouteAction { cluster: Some(cluster.into()), ..RouteAction::default() }),
                    ..Route::default()
                },
            )
        }
    };
    let route = Route { matcher: RouteMatch { prefix: Some("/".into()), ..RouteMatch::default() }, ..route };
    VirtualHost { name: name.into(), domains: vec!["*".into()], routes: vec![route], require_tls: None }
}

/// The domains istiod lists for a service on a port: the FQDN (from 1.27 also with a trailing
/// dot), the short forms a caller in the same namespace can use, and the VIP, each with and
/// without the port.
fn service_domains(svc: &Service, port: u32, caller: &Caller) -> Vec<String> {
    let caller_ns = caller.namespace.as_str();
    let mut names = vec![svc.host.clone()];
    if caller.at_least(1, 27) {
        names.push(format!("{}.", svc.host));
    }
    if let Some(base) = svc.host.strip_suffix(&format!(".svc.{DEFAULT_DOMAIN}")) {
        names.push(format!("{base}.svc"));
        names.push(base.to_string());
        if svc.namespace == caller_ns {
            names.push(base.split('.').next().unwrap_or_default().to_string());
        }
    }
    for alias in &svc.aliases {
        names.push(alias.clone());
        if let Some(base) = alias.strip_suffix(&format!(".svc.{DEFAULT_DOMAIN}")) {
            names.push(format!("{base}.svc"));
            names.push(base.to_string());
        }
    }
    names.extend(svc.vip.iter().filter(|v| !v.contains('/')).cloned());
    names.iter().flat_map(|n| [n.clone(), format!("{n}:{port}")]).collect()
}

/// `virtualOutbound`: original-destination hand-off, and the catch-all for unknown destinations.
fn virtual_outbound(mode: Outbound) -> ListenerDetail {
    let mut chains = vec![tcp_chain("virtualOutbound-blackhole", ChainMatch { destination_port: Some(15001), ..ChainMatch::default() }, "BlackHoleCluster")];
    if mode == Outbound::DynamicDns {
        chains.push(FilterChain {
            name: "virtualOutbound-catchall-http".into(),
            matcher: plaintext_http(),
            tls: None,
            network: NetworkFilter::Http {
                rds: None,
                inline: Some(Box::new(RouteConfiguration { name: "allow_any".into(), virtual_hosts: vec![catch_all(mode)] })),
            },
        });
    }
    if mode == Outbound::DynamicDns {
        // Plaintext TCP must not stop at the HTTP chain's transport match.
        let raw = ChainMatch { transport_protocol: Some("raw_buffer".into()), ..ChainMatch::default() };
        chains.push(tcp_chain("virtualOutbound-catchall-tcp", raw, passthrough_cluster(mode)));
    }
    chains.push(tcp_chain("virtualOutbound-catchall-tcp", ChainMatch::default(), passthrough_cluster(mode)));
    ListenerDetail {
        address: "0.0.0.0".into(),
        port: 15001,
        bind_to_port: true,
        use_original_dst: true,
        listener_filters: if mode == Outbound::DynamicDns { inspectors() } else { Vec::new() },
        filter_chains: chains,
        default_filter_chain: None,
        chain_matcher: None,
        internal: false,
    }
}

/// A derived route match in Envoy's shape (what the trace walks and `trace::covers` compares).
pub fn envoy_match(m: &MatchView) -> RouteMatch {
    let mut matcher = RouteMatch { case_sensitive: m.ignore_case.then_some(false), ..RouteMatch::default() };
    match &m.path {
        PathMatch::Prefix(p) => matcher.prefix = Some(p.clone()),
        PathMatch::Exact(p) => matcher.path = Some(p.clone()),
        PathMatch::Regex(p) => matcher.safe_regex = Some(RegexMatcher { regex: p.clone() }),
        PathMatch::SeparatedPrefix(p) => matcher.path_separated_prefix = Some(p.clone()),
    }
    matcher.headers = m
        .headers
        .iter()
        .map(|h| {
            let sm = |f: fn(&mut StringMatcher, String)| {
                let mut s = StringMatcher::default();
                f(&mut s, h.value.clone());
                Some(s)
            };
            let string_match = match h.kind.as_str() {
                "exact" => sm(|s, v| s.exact = Some(v)),
                "prefix" => sm(|s, v| s.prefix = Some(v)),
                "regex" => sm(|s, v| s.safe_regex = Some(RegexMatcher { regex: v })),
                _ => None,
            };
            let present_match = string_match.is_none().then_some(true);
            HeaderMatcher { name: h.name.clone(), string_match, present_match, invert_match: h.invert.then_some(true), ..HeaderMatcher::default() }
        })
        .collect();
    matcher.query_parameters = m
        .query
        .iter()
        .map(|q| {
            let mut parts = q.splitn(3, ' ');
            let (name, kind, value) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            match kind {
                "exact" | "prefix" => serde_json::json!({"name": name, "string_match": {kind: value}}),
                "regex" => serde_json::json!({"name": name, "string_match": {"safe_regex": {"regex": value}}}),
                _ => serde_json::json!({"name": name, "present_match": true}),
            }
        })
        .collect();
    matcher
}

/// A derived route in Envoy's shape.
pub(super) fn envoy_route(r: &RouteView) -> Route {
    let mut route = Route { name: Some(r.name.clone()), matcher: envoy_match(&r.matcher), ..Route::default() };
    match &r.action {
        view::Action::Forward { clusters } if clusters.len() == 1 => {
            route.route = Some(RouteAction { cluster: Some(clusters[0].name.clone()), timeout: r.timeout.clone(), ..RouteAction::default() })
        }
        view::Action::Forward { clusters } => {
            let clusters = clusters.iter().map(|c| WeightedCluster { name: c.name.clone(), weight: Some(c.weight as u64) }).collect();
            route.route = Some(RouteAction { weighted_clusters: Some(WeightedClusters { clusters }), timeout: r.timeout.clone(), ..RouteAction::default() })
        }
        view::Action::Redirect => route.redirect = Some(serde_json::json!({})),
        view::Action::DirectResponse { status } => route.direct_response = Some(DirectResponse { status: *status }),
    }
    route
}

/// True when the labels select the pod: an empty selector selects none.
pub(super) fn selects<K: AsRef<str>, V: AsRef<str>>(selector: impl IntoIterator<Item = (K, V)> + Copy, labels: &BTreeMap<String, String>) -> bool {
    selector.into_iter().next().is_some() && labels_match(selector, labels)
}
