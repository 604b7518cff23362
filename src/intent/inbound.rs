//! The `virtualInbound` listener istiod pushes to a sidecar: per inbound port, chains for Istio
//! mTLS, plaintext and TLS passthrough as the PeerAuthentication mode allows, then the
//! catch-all chains to `InboundPassthroughCluster`.

use super::listeners::{plaintext_http, selects, tcp_chain};
use super::target::Caller;
use crate::envoy::listener::{ChainMatch, FilterChain, ListenerDetail, ListenerFilter, NetworkFilter, RouteConfiguration, TlsTermination};
use crate::envoy::types::{Route, RouteAction, RouteMatch, VirtualHost};
use crate::istio::names::Protocol;
use crate::snapshot::Objects;

/// How a port accepts connections, from PeerAuthentication.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mtls {
    Strict,
    Permissive,
    Disable,
}

/// The ports the pod serves: (target port, protocol), from Services selecting it, ServiceEntries
/// with its IP or labels, and EndpointSlices listing its IP.
fn inbound_ports(objects: &Objects, caller: &Caller, pod_ip: Option<&str>) -> Vec<(u32, Protocol)> {
    let mut out: Vec<(u32, Protocol)> = Vec::new();
    let mut add = |port: u32, protocol: Protocol| {
        if protocol != Protocol::Udp && !out.iter().any(|(p, _)| *p == port) {
            out.push((port, protocol));
        }
    };
    for svc in &objects.services {
        let spec = svc.spec.spec.clone().unwrap_or_default();
        let selected = spec.selector.as_ref().is_some_and(|s| selects(s, &caller.labels)) && svc.meta.namespace == caller.namespace;
        let sliced: Vec<Option<String>> = objects
            .endpoint_slices
            .iter()
            .filter(|es| es.meta.namespace == svc.meta.namespace && es.meta.labels.get("kubernetes.io/service-name") == Some(&svc.meta.name))
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
    let workload = pas.iter().find(|pa| pa.meta.namespace == caller.namespace && pa.spec.selector.as_ref().is_some_and(|s| selects(&s.labels, &caller.labels)));
    let namespace = pas.iter().find(|pa| pa.meta.namespace == caller.namespace && pa.spec.selector.as_ref().is_none_or(|s| s.labels.is_empty()));
    let mesh = pas.iter().find(|pa| pa.meta.namespace == objects.mesh.root_namespace && pa.spec.selector.as_ref().is_none_or(|s| s.labels.is_empty()));
    let port_level = workload.and_then(|pa| parse(pa.spec.port_level_mtls.get(&port.to_string())?.mode.as_deref()));
    port_level
        .or_else(|| [workload, namespace, mesh].into_iter().flatten().find_map(|pa| parse(pa.spec.mtls.as_ref()?.mode.as_deref())))
        .unwrap_or(Mtls::Permissive)
}

const MTLS_HTTP_ALPN: [&str; 3] = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
const MTLS_TCP_ALPN: [&str; 2] = ["istio-peer-exchange", "istio"];

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

/// Chains for one port (`port: None` for the catch-all), by protocol and mode.
fn chains(port: Option<u32>, protocol: Protocol, mode: Mtls) -> Vec<FilterChain> {
    let (name, http_name, cluster, rport) = match port {
        Some(p) => (format!("0.0.0.0_{p}"), format!("0.0.0.0_{p}"), format!("inbound|{p}||"), p),
        None => ("virtualInbound".to_string(), "virtualInbound-catchall-http".to_string(), "InboundPassthroughCluster".to_string(), 0),
    };
    let base =
        ChainMatch { destination_port: port, prefix_ranges: if port.is_none() { vec![("0.0.0.0".into(), 0)] } else { Vec::new() }, ..ChainMatch::default() };
    let with = |transport: Option<&str>, alpn: &[&str]| ChainMatch {
        transport_protocol: transport.map(str::to_string),
        application_protocols: alpn.iter().map(|a| a.to_string()).collect(),
        ..base.clone()
    };
    let http = protocol.is_http() || protocol == Protocol::Auto;
    let tcp = !protocol.is_http();
    let mut out = Vec::new();
    if mode != Mtls::Disable {
        if http {
            let mut c = inbound_http(&http_name, with(Some("tls"), &MTLS_HTTP_ALPN), rport, &cluster);
            c.tls = istio_mtls();
            out.push(c);
        }
        if tcp {
            let mut c = tcp_chain(&name, with(Some("tls"), &MTLS_TCP_ALPN), &cluster);
            c.tls = istio_mtls();
            out.push(c);
        }
    }
    if mode == Mtls::Disable {
        if http && tcp {
            out.push(inbound_http(&http_name, with(None, &["http/1.1", "h2c"]), rport, &cluster));
            out.push(tcp_chain(&name, base.clone(), &cluster));
        } else if http {
            out.push(inbound_http(&http_name, base.clone(), rport, &cluster));
        } else {
            out.push(tcp_chain(&name, base.clone(), &cluster));
        }
    }
    if mode == Mtls::Permissive {
        if http {
            let m = if tcp { ChainMatch { ..plaintext_http() } } else { with(Some("raw_buffer"), &[]) };
            out.push(inbound_http(
                &http_name,
                ChainMatch { destination_port: base.destination_port, prefix_ranges: base.prefix_ranges.clone(), ..m },
                rport,
                &cluster,
            ));
        }
        if tcp {
            out.push(tcp_chain(&name, with(Some("raw_buffer"), &[]), &cluster));
            // TLS that is not Istio's passes through to the application.
            out.push(tcp_chain(&name, with(Some("tls"), &[]), &cluster));
        }
    }
    out
}

/// `virtualInbound` for the caller's pod.
pub fn virtual_inbound(objects: &Objects, caller: &Caller) -> ListenerDetail {
    let pod_ip = objects.pod(&caller.namespace, &caller.name).and_then(|p| p.spec.status.as_ref()?.pod_ip.clone());
    let mut filter_chains =
        vec![tcp_chain("virtualInbound-blackhole", ChainMatch { destination_port: Some(15006), ..ChainMatch::default() }, "BlackHoleCluster")];
    for (port, protocol) in inbound_ports(objects, caller, pod_ip.as_deref()) {
        filter_chains.extend(chains(Some(port), protocol, mode(objects, caller, port)));
    }
    filter_chains.extend(chains(None, Protocol::Auto, mode(objects, caller, 0)));
    ListenerDetail {
        address: "0.0.0.0".into(),
        port: 15006,
        bind_to_port: true,
        use_original_dst: true,
        listener_filters: ["envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector"]
            .into_iter()
            .map(|name| ListenerFilter { name: name.into(), disabled: None })
            .collect(),
        filter_chains,
        default_filter_chain: None,
    }
}
