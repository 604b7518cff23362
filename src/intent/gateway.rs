//! Gateway intent: the virtual hosts an Istio gateway pod should hold for the asked service.
//!
//! A gateway serves the hosts of its Gateway servers; every VirtualService bound to the Gateway
//! adds routes to the matching hosts. Unlike sidecars, gateways merge the routes of all those
//! VirtualServices in precedence order and move catch-all routes to the end.

use super::PortIntent;
use super::routes::{Binding, routes_for};
use super::target::{Caller, Target};
use crate::istio::names::{ClusterName, Protocol, hosts_overlap};
use crate::istio::{Server, VirtualService, labels_match};
use crate::model::Model;
use crate::model::virtual_services::vs_hosts;
use crate::snapshot::Resource;
use crate::view::{PortView, RouteView, VirtualHostView};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A served host, its merged routes, and the VirtualServices they came from.
type HostRoutes<'a> = (String, Vec<RouteView>, Vec<&'a Resource<VirtualService>>);

/// One entry per gateway virtual host whose routes reach the target.
pub fn derive<'a>(model: &Model<'a>, caller: &Caller, target: &Target) -> Vec<(PortView, PortIntent<'a>)> {
    let mut out = Vec::new();
    for gw in model.gateways().filter(|g| !g.spec.selector.is_empty() && labels_match(&g.spec.selector, &caller.labels)) {
        let gw_name = format!("{}/{}", gw.meta.namespace, gw.meta.name);
        let bound = model.gateway_virtual_services(&gw_name);
        for server in gw.spec.servers.iter().filter(|s| serves_http(s)) {
            let port = server.port.as_ref().map(|p| p.number).unwrap_or(0);
            let mut hosts: Vec<HostRoutes<'a>> = Vec::new();
            for vs in &bound {
                for host in vs_hosts(vs).into_iter().filter(|h| server_serves(server, h)) {
                    let routes = routes_for(model, vs, caller, port, Binding::Gateway(&gw_name));
                    match hosts.iter_mut().find(|(h, _, _)| *h == host) {
                        Some((_, existing, sources)) => {
                            existing.extend(routes);
                            sources.push(vs);
                        }
                        None => hosts.push((host, routes, vec![*vs])),
                    }
                }
            }
            for (host, mut routes, sources) in hosts {
                // Stable: specific routes of later VirtualServices stay ahead of earlier catch-alls.
                routes.sort_by_key(|r| r.matcher.is_catch_all());
                let reaches_target =
                    routes.iter().flat_map(|r| r.action.clusters()).any(|c| ClusterName::parse(&c.name).is_some_and(|n| n.host == target.fqdn));
                if !reaches_target {
                    continue;
                }
                let name = format!("{host}:{port}");
                let view = PortView {
                    key: format!("vhost {name}"),
                    port,
                    protocol: Protocol::Http,
                    route_config: Some(format!("http.{}", listener_port(model, caller, port))),
                    virtual_host: Some(VirtualHostView { name, domains: vec![host], routes }),
                    tcp_destinations: Vec::new(),
                };
                let intent = PortIntent { port, protocol: Protocol::Http, hidden: None, winner: sources.first().copied(), candidates: sources };
                out.push((view, intent));
            }
        }
    }
    out
}

/// The port the gateway pod listens on for server port `port`: istiod binds gateway listeners
/// to the targetPort of the gateway's Service port, when a Service fronting the pod has one.
pub(super) fn listener_port(model: &Model<'_>, caller: &Caller, port: u32) -> u32 {
    model
        .objects
        .services
        .iter()
        .filter(|s| s.meta.namespace == caller.namespace)
        .filter_map(|s| s.spec.spec.as_ref())
        .filter(|spec| spec.selector.as_ref().is_some_and(|sel| !sel.is_empty() && labels_match(sel, &caller.labels)))
        .flat_map(|spec| spec.ports.iter().flatten())
        .find(|p| p.port as u32 == port)
        .and_then(|p| match &p.target_port {
            Some(IntOrString::Int(n)) => Some(*n as u32),
            _ => None,
        })
        .unwrap_or(port)
}

/// Servers whose traffic goes through HTTP routes (TLS passthrough and TCP do not).
fn serves_http(server: &Server) -> bool {
    let Some(port) = &server.port else { return false };
    let passthrough = server.tls.as_ref().and_then(|t| t.mode.as_deref()) == Some("PASSTHROUGH");
    matches!(port.protocol.to_ascii_uppercase().as_str(), "HTTP" | "HTTP2" | "GRPC" | "HTTPS") && !passthrough
}

/// Whether a server's `hosts` (`namespace/host` or `host`) cover a VirtualService host.
fn server_serves(server: &Server, host: &str) -> bool {
    server.hosts.iter().any(|h| hosts_overlap(h.split_once('/').map(|(_, h)| h).unwrap_or(h), host))
}
