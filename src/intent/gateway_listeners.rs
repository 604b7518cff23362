//! The listeners and route configurations istiod pushes to a gateway from the Gateway servers
//! that select it: one listener per (target) port, plaintext HTTP servers merged into `http.P`,
//! TLS-terminating servers as SNI chains with their own `https.P.NAME.GW.NS` table, and
//! passthrough servers as SNI chains to the VirtualService's TLS route.

use super::gateway::listener_port;
use super::listeners::{Derived, envoy_route, http_chain, tcp_chain};
use super::routes::{Binding, routes_for};
use super::target::Caller;
use crate::envoy::listener::{ChainMatch, FilterChain, ListenerDetail, ListenerFilter, RouteConfiguration, TlsTermination};
use crate::envoy::types::VirtualHost;
use crate::istio::names::host_matches;
use crate::istio::{Server, labels_match};
use crate::model::Model;
use crate::model::virtual_services::vs_hosts;
use crate::snapshot::Objects;
use std::collections::{BTreeMap, BTreeSet};

/// The more specific of two overlapping host patterns (the name a virtual host gets).
fn intersection(a: &str, b: &str) -> Option<String> {
    if host_matches(a, b) {
        Some(b.to_string())
    } else if host_matches(b, a) {
        Some(a.to_string())
    } else {
        None
    }
}

fn server_hosts(server: &Server) -> Vec<String> {
    server.hosts.iter().map(|h| h.split_once('/').map(|(_, h)| h).unwrap_or(h).to_string()).collect()
}

/// Adds the gateway's listeners and route configurations to `d`.
pub fn derive(model: &Model<'_>, caller: &Caller, d: &mut Derived) {
    let objects = model.objects;
    let mut listeners: BTreeMap<u32, ListenerDetail> = BTreeMap::new();
    let mut tables: BTreeMap<String, Vec<VirtualHost>> = BTreeMap::new();
    let mut tls_hosts: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let pod_ip = objects.pod(&caller.namespace, &caller.name).and_then(|p| p.spec.status.as_ref()?.pod_ip.clone());
    for gw in model.gateways().filter(|g| !g.spec.gateway_api) {
        let service_ports = gateway_service_ports(objects, gw.meta.annotations.get(GATEWAY_SERVICE), caller, pod_ip.as_deref());
        let selected = match &service_ports {
            Some(ports) => ports.is_some(),
            None => !gw.spec.selector.is_empty() && labels_match(&gw.spec.selector, &caller.labels),
        };
        if !selected {
            continue;
        }
        let gw_name = format!("{}/{}", gw.meta.namespace, gw.meta.name);
        let bound = model.gateway_virtual_services(&gw_name);
        for server in &gw.spec.servers {
            let Some(sp) = &server.port else { continue };
            // Through a gateway service, a server listens on the target port of the service
            // port it names, and a port the service lacks gets no listener.
            let lport = match &service_ports {
                Some(Some(ports)) => match ports.iter().find(|(p, _)| *p == sp.number) {
                    Some((_, target)) => *target,
                    None => continue,
                },
                _ => instance_ports(objects, caller, pod_ip.as_deref())
                    .into_iter()
                    .find(|(p, _)| *p == sp.number)
                    .map(|(_, target)| target)
                    .unwrap_or_else(|| listener_port(model, caller, sp.number)),
            };
            // Envoy rejects two chains with one SNI match: istiod skips a server with `tls` that
            // repeats a host an earlier one on the same port already has.
            if server.tls.is_some() {
                let known = tls_hosts.entry(lport).or_default();
                if server.hosts.iter().any(|h| known.contains(h)) {
                    continue;
                }
                known.extend(server.hosts.iter().cloned());
            }
            let protocol = sp.protocol.to_ascii_uppercase();
            let mode = server.tls.as_ref().and_then(|t| t.mode.as_deref()).unwrap_or("SIMPLE").to_string();
            let terminates = matches!(protocol.as_str(), "HTTPS") && !matches!(mode.as_str(), "PASSTHROUGH" | "AUTO_PASSTHROUGH")
                || protocol == "TLS" && matches!(mode.as_str(), "SIMPLE" | "MUTUAL" | "ISTIO_MUTUAL" | "OPTIONAL_MUTUAL") && server.tls.is_some();
            let listener = listeners.entry(lport).or_insert_with(|| ListenerDetail {
                address: "0.0.0.0".into(),
                port: lport,
                bind_to_port: true,
                use_original_dst: false,
                listener_filters: Vec::new(),
                filter_chains: Vec::new(),
                default_filter_chain: None,
                chain_matcher: None,
                internal: false,
            });
            let rds = if matches!(protocol.as_str(), "HTTP" | "HTTP2" | "GRPC") {
                let rds = format!("http.{lport}");
                if !listener.filter_chains.iter().any(|c| c.matcher == ChainMatch::default()) {
                    listener.filter_chains.push(http_chain("", ChainMatch::default(), &rds));
                }
                rds
            } else if terminates {
                let rds = format!("https.{}.{}.{}.{}", sp.number, sp.name, gw.meta.name, gw.meta.namespace);
                add_tls_inspector(listener);
                let m = ChainMatch { server_names: server_hosts(server).into_iter().filter(|h| h != "*").collect(), ..ChainMatch::default() };
                let mut chain = http_chain("", m, &rds);
                chain.tls = Some(TlsTermination { require_client_certificate: mode.contains("MUTUAL"), istio_mtls: mode == "ISTIO_MUTUAL" });
                listener.filter_chains.push(chain);
                rds
            } else {
                // TCP servers: the first bound VirtualService's tcp route, on every connection.
                if protocol == "TCP" {
                    let dest = bound.iter().find_map(|vs| Some((vs, vs.spec.tcp.first()?.route.first()?)));
                    if let Some((vs, dest)) = dest
                        && !listener.filter_chains.iter().any(|c| c.matcher == ChainMatch::default())
                    {
                        let cluster = super::routes::destination_cluster(model, &dest.destination, &vs.meta.namespace, sp.number);
                        listener.filter_chains.push(tcp_chain("", ChainMatch::default(), &cluster));
                    }
                    continue;
                }
                // Passthrough: the VirtualService's tls routes by SNI.
                add_tls_inspector(listener);
                for vs in &bound {
                    for tls in &vs.spec.tls {
                        let sni: Vec<String> = tls
                            .matches
                            .iter()
                            .flat_map(|m| m.get("sniHosts").and_then(|s| s.as_array()).cloned().unwrap_or_default())
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect();
                        if let Some(dest) = tls.route.first() {
                            let cluster = super::routes::destination_cluster(model, &dest.destination, &vs.meta.namespace, sp.number);
                            let m = ChainMatch { server_names: sni, ..ChainMatch::default() };
                            if !listener.filter_chains.iter().any(|c: &FilterChain| c.matcher == m) {
                                listener.filter_chains.push(tcp_chain("", m, &cluster));
                            }
                        }
                    }
                }
                continue;
            };
            let redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
            let table = tables.entry(rds).or_default();
            let mut served = false;
            for vs in &bound {
                for vs_host in vs_hosts(vs) {
                    for server_host in server_hosts(server) {
                        let Some(host) = intersection(&vs_host, &server_host) else { continue };
                        served = true;
                        let name = format!("{host}:{}", sp.number);
                        let routes = routes_for(model, vs, caller, sp.number, Binding::Gateway(&gw_name)).iter().map(envoy_route).collect::<Vec<_>>();
                        match table.iter_mut().find(|vh| vh.name == name) {
                            Some(vh) => vh.routes.extend(routes),
                            None => table.push(VirtualHost {
                                name,
                                domains: vec![host.clone(), format!("{host}:*")],
                                routes,
                                require_tls: redirect.then(|| "ALL".into()),
                            }),
                        }
                    }
                }
            }
            if !served || redirect {
                for host in server_hosts(server) {
                    let name = format!("{host}:{}", sp.number);
                    if redirect && !table.iter().any(|vh| vh.name == name) {
                        table.push(VirtualHost { name, domains: vec![host.clone(), format!("{host}:*")], routes: Vec::new(), require_tls: Some("ALL".into()) });
                    }
                }
            }
            if !served && !redirect && !table.iter().any(|vh| vh.name.starts_with("blackhole:")) {
                table.push(VirtualHost { name: format!("blackhole:{}", sp.number), domains: vec!["*".into()], routes: Vec::new(), require_tls: None });
            }
        }
    }
    for (port, l) in listeners {
        d.config.listeners.push((format!("0.0.0.0_{port}"), l));
    }
    for (name, mut virtual_hosts) in tables {
        // A real host makes the catch-all blackhole unnecessary.
        if virtual_hosts.iter().any(|vh| !vh.name.starts_with("blackhole:")) {
            virtual_hosts.retain(|vh| !vh.name.starts_with("blackhole:"));
        }
        d.config.route_configs.push(RouteConfiguration { name, virtual_hosts });
    }
    d.gaps.push(
        "gateway listeners are derived from Istio Gateway servers; Gateway API gateways, merged server conflicts and credential checks are not modelled here"
            .into(),
    );
}

/// istiod's annotation naming the services a Gateway is bound through.
const GATEWAY_SERVICE: &str = "internal.istio.io/gateway-service";

/// For a Gateway bound through services: `Some(Some(ports))` when one of them has the caller
/// as an endpoint, with (port, target port); `Some(None)` when none has; `None` without the
/// annotation (the selector decides).
fn gateway_service_ports(objects: &Objects, annotation: Option<&str>, caller: &Caller, pod_ip: Option<&str>) -> Option<Option<Vec<(u32, u32)>>> {
    let hosts: Vec<&str> = annotation?.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
    let mut ports = Vec::new();
    let mut found = false;
    for se in objects.service_entries.iter().filter(|se| se.meta.namespace == caller.namespace && se.spec.hosts.iter().any(|h| hosts.contains(&h.as_str()))) {
        if se.spec.endpoints.iter().any(|e| Some(e.address.as_str()) == pod_ip) {
            found = true;
            ports.extend(se.spec.ports.iter().map(|p| (p.number, p.target_port.unwrap_or(p.number))));
        }
    }
    for svc in &objects.services {
        let fqdn = format!("{}.{}.svc.{}", svc.meta.name, svc.meta.namespace, crate::istio::names::DEFAULT_DOMAIN);
        let spec = svc.spec.spec.clone().unwrap_or_default();
        if hosts.contains(&fqdn.as_str()) && spec.selector.as_ref().is_some_and(|s| !s.is_empty() && labels_match(s, &caller.labels)) {
            found = true;
            ports.extend(spec.ports.iter().flatten().map(|p| {
                let target = match &p.target_port {
                    Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n as u32,
                    _ => p.port as u32,
                };
                (p.port as u32, target)
            }));
        }
    }
    Some(found.then_some(ports))
}

/// Label by which a service of the gateway opts out of port translation.
const DISABLE_PORT_TRANSLATION: &str = "experimental.istio.io/disable-gateway-port-translation";

/// (port, target port) of the ServiceEntries in the gateway's namespace that have its pod as an
/// endpoint: istiod binds a server's port to that target port.
fn instance_ports(objects: &Objects, caller: &Caller, pod_ip: Option<&str>) -> Vec<(u32, u32)> {
    objects
        .service_entries
        .iter()
        .filter(|se| se.meta.namespace == caller.namespace && se.meta.labels.get(DISABLE_PORT_TRANSLATION).is_none_or(|v| v != "true"))
        .filter(|se| se.spec.endpoints.iter().any(|e| Some(e.address.as_str()) == pod_ip))
        .flat_map(|se| se.spec.ports.iter().map(|p| (p.number, p.target_port.unwrap_or(p.number))))
        .collect()
}

fn add_tls_inspector(l: &mut ListenerDetail) {
    if !l.listener_filters.iter().any(|f| f.name.ends_with("tls_inspector")) {
        l.listener_filters.push(ListenerFilter { name: "envoy.filters.listener.tls_inspector".into(), disabled: None });
    }
}
