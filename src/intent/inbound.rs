//! The `virtualInbound` listener istiod pushes to a sidecar: per inbound port, chains for Istio
//! mTLS, plaintext and TLS passthrough as the PeerAuthentication mode allows, then the
//! catch-all chains to `InboundPassthroughCluster`.

use super::listeners::{selects, tcp_chain};
use super::target::Caller;
use crate::envoy::listener::{ChainMatch, FilterChain, ListenerDetail, ListenerFilter, NetworkFilter, Predicate, RouteConfiguration, TlsTermination};
use crate::envoy::types::{Route, RouteAction, RouteMatch, VirtualHost};
use crate::istio::PeerAuthentication;
use crate::istio::names::Protocol;
use crate::model::Model;
use crate::snapshot::{Objects, Resource};

/// How a port accepts connections, from PeerAuthentication.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mtls {
    Strict,
    Permissive,
    Disable,
}

/// The ports the pod serves: (target port, protocol), from Services selecting it, ServiceEntries
/// with its IP or labels, and EndpointSlices listing its IP.
fn inbound_ports(model: &Model<'_>, caller: &Caller, pod_ip: Option<&str>) -> Vec<(u32, Protocol)> {
    let objects = model.objects;
    let mut out: Vec<(u32, Protocol)> = Vec::new();
    let mut add = |port: u32, protocol: Protocol| {
        if protocol != Protocol::Udp && !out.iter().any(|(p, _)| *p == port) {
            out.push((port, protocol));
        }
    };
    for svc in &objects.services {
        let Some(spec) = svc.spec.spec.as_ref() else { continue };
        let selected = spec.selector.as_ref().is_some_and(|s| selects(s, &caller.labels)) && svc.meta.namespace == caller.namespace;
        let sliced: Vec<Option<String>> = model
            .endpoint_slices_of(&svc.meta.namespace, &svc.meta.name)
            .iter()
            .filter(|es| pod_ip.is_some_and(|ip| es.spec.endpoints.iter().any(|e| e.addresses.iter().any(|a| a == ip))))
            .flat_map(|es| es.spec.ports.iter().flatten().map(|p| p.name.clone()).collect::<Vec<_>>())
            .collect();
        for p in spec.ports.iter().flatten() {
            let protocol = Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref(), p.protocol.as_deref(), p.port as u32);
            let target = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u32,
                _ => p.port as u32,
            };
            if selected || sliced.contains(&p.name) {
                add(target, protocol);
            }
        }
    }
    for se in &objects.service_entries {
        let by_labels = se.meta.namespace == caller.namespace && se.spec.workload_selector.as_ref().is_some_and(|w| selects(&w.labels, &caller.labels));
        for ep in se.spec.endpoints.iter().filter(|e| pod_ip == Some(e.address.as_str())).map(Some).chain(by_labels.then_some(None)) {
            for p in &se.spec.ports {
                let target = ep.and_then(|e| e.ports.get(p.name.as_deref().unwrap_or_default())).copied().unwrap_or(p.number);
                add(target, Protocol::from_name(p.protocol.as_deref().unwrap_or_default()));
            }
        }
    }
    out
}

/// The PeerAuthentication selecting the caller's pod.
fn workload_peer_authentication<'o>(objects: &'o Objects, caller: &Caller) -> Option<&'o Resource<PeerAuthentication>> {
    objects
        .peer_authentications
        .iter()
        .find(|pa| pa.meta.namespace == caller.namespace && pa.spec.selector.as_ref().is_some_and(|s| selects(&s.labels, &caller.labels)))
}

/// The mode for `port`: the workload's PeerAuthentication (port level first), then the
/// namespace's, then the mesh's; PERMISSIVE when none says. UNSET inherits.
fn mode(objects: &Objects, caller: &Caller, port: u32) -> Mtls {
    let parse = |m: Option<&str>| match m {
        Some("STRICT") => Some(Mtls::Strict),
        Some("PERMISSIVE") => Some(Mtls::Permissive),
        Some("DISABLE") => Some(Mtls::Disable),
        _ => None,
    };
    let pas = &objects.peer_authentications;
    let workload = workload_peer_authentication(objects, caller);
    let namespace = pas.iter().find(|pa| pa.meta.namespace == caller.namespace && pa.spec.selector.as_ref().is_none_or(|s| s.labels.is_empty()));
    let mesh = pas.iter().find(|pa| pa.meta.namespace == objects.mesh.root_namespace && pa.spec.selector.as_ref().is_none_or(|s| s.labels.is_empty()));
    let port_level = workload.and_then(|pa| parse(pa.spec.port_level_mtls.get(&port.to_string())?.mode.as_deref()));
    port_level
        .or_else(|| [workload, namespace, mesh].into_iter().flatten().find_map(|pa| parse(pa.spec.mtls.as_ref()?.mode.as_deref())))
        .unwrap_or(Mtls::Permissive)
}

const MTLS_HTTP_ALPN: &[&str] = &["istio-http/1.0", "istio-http/1.1", "istio-h2"];
const MTLS_TCP_ALPN: &[&str] = &["istio-peer-exchange", "istio"];
const ALL_MTLS_ALPN: &[&str] = &["istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"];
const PLAINTEXT_HTTP_ALPN: &[&str] = &["http/1.1", "h2c"];

/// One filter-chain option of istiod's tables: transport, ALPN, HTTP or TCP, Istio mTLS.
type ChainOption = (&'static str, &'static [&'static str], bool, bool);

/// istiod's inbound filter-chain options by port protocol and mode
/// (`getFilterChainMatchOptions`): (transport, ALPN, is HTTP, terminates Istio mTLS).
fn options(protocol: Protocol, mode: Mtls) -> &'static [ChainOption] {
    let http = protocol.is_http();
    let auto = protocol == Protocol::Auto;
    match (http, auto, mode) {
        (true, _, Mtls::Strict) => &[("tls", &[], true, true)],
        (true, _, Mtls::Permissive) => &[("tls", ALL_MTLS_ALPN, true, true), ("raw_buffer", &[], true, false)],
        (true, _, Mtls::Disable) => &[("raw_buffer", &[], true, false)],
        (_, true, Mtls::Strict) => &[("tls", MTLS_HTTP_ALPN, true, true), ("tls", &[], false, true)],
        (_, true, Mtls::Permissive) => &[
            ("tls", MTLS_HTTP_ALPN, true, true),
            ("raw_buffer", PLAINTEXT_HTTP_ALPN, true, false),
            ("tls", MTLS_TCP_ALPN, false, true),
            ("raw_buffer", &[], false, false),
            ("tls", &[], false, false),
        ],
        (_, true, Mtls::Disable) => &[("raw_buffer", PLAINTEXT_HTTP_ALPN, true, false), ("raw_buffer", &[], false, false)],
        (_, _, Mtls::Strict) => &[("tls", &[], false, true)],
        (_, _, Mtls::Permissive) => &[("tls", ALL_MTLS_ALPN, false, true), ("tls", &[], false, false), ("raw_buffer", &[], false, false)],
        (_, _, Mtls::Disable) => &[("raw_buffer", &[], false, false)],
    }
}

fn istio_mtls() -> Option<TlsTermination> {
    Some(TlsTermination { require_client_certificate: true, istio_mtls: true })
}

/// An HTTP connection manager with the inline inbound route table to `cluster`.
fn inbound_http(name: &str, matcher: ChainMatch, port: u32, cluster: &str) -> FilterChain {
    let route = Route {
        name: Some("default".into()),
        matcher: RouteMatch { prefix: Some("/".into()), ..RouteMatch::default() },
        route: Some(RouteAction { cluster: Some(cluster.into()), ..RouteAction::default() }),
        ..Route::default()
    };
    let vh = VirtualHost { name: format!("inbound|http|{port}"), domains: vec!["*".into()], routes: vec![route], require_tls: None };
    let rc = RouteConfiguration { name: format!("inbound|{port}||"), virtual_hosts: vec![vh] };
    FilterChain { name: name.into(), matcher, tls: None, network: NetworkFilter::Http { rds: None, inline: Some(Box::new(rc)) } }
}

/// Chains for one port (`None`: the catch-all for ports no service declares), to `cluster`.
fn chains(port: Option<u32>, protocol: Protocol, mode: Mtls, cluster: &str) -> Vec<FilterChain> {
    let (name, http_name, rport) = match port {
        Some(p) => (format!("0.0.0.0_{p}"), format!("0.0.0.0_{p}"), p),
        None => ("virtualInbound".to_string(), "virtualInbound-catchall-http".to_string(), 0),
    };
    options(protocol, mode)
        .iter()
        .map(|&(transport, alpn, http, mtls)| {
            let matcher = ChainMatch {
                destination_port: port,
                prefix_ranges: if port.is_none() { vec![("0.0.0.0".into(), 0)] } else { Vec::new() },
                transport_protocol: Some(transport.into()),
                application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
                ..ChainMatch::default()
            };
            let mut chain = if http { inbound_http(&http_name, matcher, rport, cluster) } else { tcp_chain(&name, matcher, cluster) };
            if mtls {
                chain.tls = istio_mtls();
            }
            chain
        })
        .collect()
}

/// `virtualInbound` for the caller's pod.
pub fn virtual_inbound(model: &Model<'_>, caller: &Caller) -> ListenerDetail {
    let objects = model.objects;
    let pod_ip = objects.pod(&caller.namespace, &caller.name).and_then(|p| p.spec.status.as_ref()?.pod_ip.clone());
    let mut filter_chains =
        vec![tcp_chain("virtualInbound-blackhole", ChainMatch { destination_port: Some(15006), ..ChainMatch::default() }, "BlackHoleCluster")];
    let ingress: Vec<(u32, Protocol)> = model
        .sidecar_scope(caller)
        .sidecar
        .into_iter()
        .flat_map(|sc| sc.spec.ingress.iter().filter_map(|i| i.port.as_ref()).map(|p| (p.number, Protocol::from_name(&p.protocol))))
        .collect();
    let mut ports = if ingress.is_empty() { inbound_ports(model, caller, pod_ip.as_deref()) } else { ingress };
    // Ports with a port-level mode of their own get chains even when no service declares them;
    // they pass through to the application.
    let port_level: Vec<u32> =
        workload_peer_authentication(objects, caller).map(|pa| pa.spec.port_level_mtls.keys().filter_map(|k| k.parse().ok()).collect()).unwrap_or_default();
    let mut tls_ports = Vec::new();
    let mut plain_ports = Vec::new();
    for &port in &port_level {
        if !ports.iter().any(|(p, _)| *p == port) {
            let m = mode(objects, caller, port);
            (if m == Mtls::Disable { &mut plain_ports } else { &mut tls_ports }).push(port);
            filter_chains.extend(chains(Some(port), Protocol::Auto, m, "InboundPassthroughCluster"));
        }
    }
    ports.sort();
    for (port, protocol) in ports {
        let m = mode(objects, caller, port);
        (if m == Mtls::Disable { &mut plain_ports } else { &mut tls_ports }).push(port);
        filter_chains.extend(chains(Some(port), protocol, m, &format!("inbound|{port}||")));
    }
    let default_mode = mode(objects, caller, 0);
    filter_chains.extend(chains(None, Protocol::Auto, default_mode, "InboundPassthroughCluster"));
    // The TLS inspector runs only where a chain needs to see TLS: off on plaintext-only ports.
    let ranges = |ports: &[u32]| Predicate::Or(ports.iter().map(|p| Predicate::Ports(*p, p + 1)).collect());
    let tls_disabled = if default_mode == Mtls::Disable {
        Some(Predicate::Not(Box::new(ranges(&tls_ports))))
    } else {
        (!plain_ports.is_empty()).then(|| ranges(&plain_ports))
    };
    ListenerDetail {
        address: "0.0.0.0".into(),
        port: 15006,
        bind_to_port: true,
        use_original_dst: true,
        listener_filters: vec![
            ListenerFilter { name: "envoy.filters.listener.tls_inspector".into(), disabled: tls_disabled },
            ListenerFilter { name: "envoy.filters.listener.http_inspector".into(), disabled: None },
        ],
        filter_chains,
        default_filter_chain: None,
        chain_matcher: None,
        internal: false,
    }
}
