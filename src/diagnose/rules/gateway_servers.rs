//! Istio Gateway servers against their surroundings: one certificate served by two Gateways on
//! the same pods, and servers on a port no Service of the gateway pods exposes.

use super::gateways::{running_gateways, selector_gateways};
use super::{Scope, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::istio::labels_match;
use crate::istio::{Gateway, ServerTls};
use crate::model::Model;
use crate::snapshot::Resource;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};

/// A selector as Kubernetes prints it: `k=v,k2=v2`, keys sorted.
fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The Istio Gateways (not Gateway API ones) other than `gw`.
fn other_gateways<'a>(model: &Model<'a>, gw: &'a Resource<Gateway>) -> impl Iterator<Item = &'a Resource<Gateway>> {
    model.objects.gateways.iter().filter(move |o| !o.spec.gateway_api && !std::ptr::eq(*o, gw))
}

/// True when two servers' TLS uses one certificate: the same credentialName, or the same
/// mounted certificate and key files.
fn same_certificate(a: &ServerTls, b: &ServerTls) -> bool {
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    match (set(&a.credential_name), set(&b.credential_name)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            set(&a.server_certificate).is_some_and(|c| set(&b.server_certificate) == Some(c))
                && set(&a.private_key).is_some_and(|k| set(&b.private_key) == Some(k))
        }
        _ => false,
    }
}

/// Gateways whose selector is within another's and that serve one certificate (IST0138):
/// browsers reuse an HTTP/2 connection for every host of the certificate, and the gateway
/// answers 404 for the hosts of the other Gateway's server on it.
pub fn gateway_duplicate_certificate(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for gw in selector_gateways(model, scope) {
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        // analyze's rule: every label of this Gateway's selector is in the other's.
        let within = |o: &&Resource<Gateway>| gw.spec.selector.iter().all(|(k, v)| o.spec.selector.get(k) == Some(v));
        for other in other_gateways(model, gw).filter(within) {
            let them = named("Gateway", &other.meta.namespace, &other.meta.name);
            for (i, mine) in gw.spec.servers.iter().enumerate().filter_map(|(i, s)| Some((i, s.tls.as_ref()?))) {
                for _ in other.spec.servers.iter().filter_map(|s| s.tls.as_ref()).filter(|t| same_certificate(mine, t)) {
                    let cert = mine.credential_name.clone().or_else(|| mine.server_certificate.clone()).unwrap_or_default();
                    out.push(
                        Finding::new("gateway-duplicate-certificate", Severity::Warning, gw.reference("Gateway"), format!("{me} and {them} serve the same certificate {cert} on the same gateway pods"))
                            .code("IST0138")
                            .detail("Clients reuse an HTTP/2 connection for every host the certificate covers; a request for a host of the other Gateway's server then arrives on this server's filter chain, which has no route for it, and gets 404.")
                            .evidence([format!("{me} spec.servers[{i}].tls: {cert}"), format!("{them} serves a server with the same certificate; its selector includes {}", selector_text(&gw.spec.selector))])
                            .fix(format!("put the hosts that share {cert} in one server of one Gateway, or give each Gateway its own certificate")),
                    );
                }
            }
        }
    }
}

/// The ports a gateway pod is reachable on through the Services selecting it: each TCP port's
/// numeric targetPort (its port when it has none), and the Service ports themselves.
fn exposed_ports(model: &Model<'_>, gw: &Resource<Gateway>) -> BTreeSet<u32> {
    let mut ports = BTreeSet::new();
    for pod in model.objects.pods.iter().filter(|p| labels_match(&gw.spec.selector, &p.meta.labels)) {
        let specs = model.objects.services.iter().filter(|s| s.meta.namespace == pod.meta.namespace).filter_map(|s| s.spec.spec.as_ref());
        for spec in specs.filter(|s| s.selector.as_ref().is_some_and(|sel| !sel.is_empty() && labels_match(sel, &pod.meta.labels))) {
            for p in spec.ports.iter().flatten().filter(|p| p.protocol.as_deref().is_none_or(|proto| proto == "TCP")) {
                ports.insert(p.port as u32);
                match &p.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => ports.insert(*n as u32),
                    _ => false,
                };
            }
        }
    }
    ports
}

/// A Gateway server on a port no Service of the gateway pods exposes (IST0162): no client
/// outside the pod can reach that listener. Gateway pods no Service selects are left alone:
/// they may be reached on the host network, or their Services were not gathered.
pub fn gateway_port_not_exposed(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for (gw, _) in running_gateways(model, scope) {
        let exposed = exposed_ports(model, gw);
        if exposed.is_empty() {
            continue;
        }
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        for (i, port) in gw.spec.servers.iter().enumerate().filter_map(|(i, s)| Some((i, s.port.as_ref()?))) {
            if exposed.contains(&port.number) {
                continue;
            }
            let shown: Vec<String> = exposed.iter().map(u32::to_string).collect();
            out.push(
                Finding::new(
                    "gateway-port-not-exposed",
                    Severity::Warning,
                    gw.reference("Gateway"),
                    format!("{me} serves port {} but no Service of its gateway pods exposes that port, so clients cannot reach it", port.number),
                )
                .code("IST0162")
                .detail("The gateway listens on the server's port inside its pods; traffic reaches it only through a Service port (or targetPort) that points there. Without one, the server and its routes are unreachable.")
                .evidence([format!("{me} spec.servers[{i}].port.number: {}", port.number), format!("Services selecting pods {} expose TCP ports [{}]", selector_text(&gw.spec.selector), shown.join(", "))])
                .fix(format!("add port {} to the gateway's Service (or use a port the Service already exposes in {me})", port.number)),
            );
        }
    }
}
