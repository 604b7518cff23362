//! ServiceEntry checks: entries whose TCP traffic sidecars cannot tell apart, and entries that
//! declare one host and port with different protocols.

use super::{Scope, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::istio::ServiceEntry;
use crate::model::Model;
use crate::snapshot::Resource;
use std::collections::{BTreeMap, BTreeSet};

/// A ServiceEntry with TCP (or unspecified-protocol) ports and no address, while proxies do
/// not allocate one (IST0134): its TCP listener has no VIP to match on, so its traffic cannot
/// be told from other traffic to the same port.
pub fn service_entry_address_required(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    if model.objects.mesh.allocates_addresses() {
        return;
    }
    for se in model.objects.service_entries.iter().filter(|se| scope.namespace(&se.meta.namespace)) {
        if !se.spec.addresses.is_empty() || !se.spec.allocated_addresses.is_empty() {
            continue;
        }
        let me = named("ServiceEntry", &se.meta.namespace, &se.meta.name);
        let mesh = if model.objects.mesh_config_found {
            "meshConfig defaultConfig.proxyMetadata does not enable DNS capture with address auto-allocation"
        } else {
            "no meshConfig was read (ConfigMap istio in the Istio namespace), so DNS auto-allocation counts as off"
        };
        for port in se.spec.ports.iter().filter(|p| p.protocol.as_deref().is_none_or(|p| p.is_empty() || p.eq_ignore_ascii_case("TCP"))) {
            let protocol = port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("unset");
            out.push(
                Finding::new(
                    "service-entry-address-required",
                    Severity::Warning,
                    se.reference("ServiceEntry"),
                    format!("{me} port {} (protocol {protocol}) has no address, so sidecars cannot tell its TCP traffic from other traffic to port {}", port.number, port.number),
                )
                .code("IST0134")
                .detail("A TCP port is matched by destination address only. Without spec.addresses (or an address istiod allocates when proxies capture DNS), the entry's listener matches every address on the port and takes, or loses, traffic meant for other destinations on it.")
                .evidence([format!("{me} spec.addresses: [], ports: {} {protocol}; {mesh}", port.number)])
                .fix(format!(
                    "add spec.addresses (the destination's IP or CIDR) to {me}, set the port's protocol if it is not TCP (HTTP, HTTPS, TLS), or enable ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE in meshConfig defaultConfig.proxyMetadata"
                )),
            );
        }
    }
}

/// ServiceEntries visible in one namespace that declare the same host and port with different
/// protocols (IST0177): istiod keeps one of them, so the others' protocol is ignored.
pub fn service_entry_protocol_conflict(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    // (visibility scope, host, port) → (protocol, entry); `*` is every namespace.
    type Key<'a> = (String, &'a str, u32);
    let mut claims: BTreeMap<Key<'_>, Vec<(String, &Resource<ServiceEntry>)>> = BTreeMap::new();
    for se in &model.objects.service_entries {
        for visible in export_scopes(&se.spec.export_to, &se.meta.namespace) {
            for host in &se.spec.hosts {
                for port in &se.spec.ports {
                    let protocol = port.protocol.clone().unwrap_or_default().to_ascii_uppercase();
                    claims.entry((visible.clone(), host.as_str(), port.number)).or_default().push((protocol, se));
                }
            }
        }
    }
    let mut reported = BTreeSet::new();
    for ((visible, host, port), entries) in &claims {
        let public = if visible == "*" { None } else { claims.get(&("*".to_string(), *host, *port)) };
        let all: Vec<&(String, &Resource<ServiceEntry>)> = entries.iter().chain(public.into_iter().flatten()).collect();
        let protocols: BTreeSet<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = all.iter().map(|(_, se)| named("ServiceEntry", &se.meta.namespace, &se.meta.name)).collect();
        let list = names.iter().cloned().collect::<Vec<_>>().join(", ");
        let shown: Vec<&str> = protocols.iter().map(|p| if p.is_empty() { "unset" } else { p }).collect();
        let label = |p: &str| if p.is_empty() { "unset".to_string() } else { p.to_string() };
        for (mine, se) in &all {
            let me = named("ServiceEntry", &se.meta.namespace, &se.meta.name);
            if !scope.namespace(&se.meta.namespace) || !reported.insert(me.clone()) {
                continue;
            }
            let others: Vec<String> = all
                .iter()
                .filter(|(p, _)| p != mine)
                .map(|(p, o)| format!("{} ({})", named("ServiceEntry", &o.meta.namespace, &o.meta.name), label(p)))
                .collect();
            out.push(
                Finding::new(
                    "service-entry-protocol-conflict",
                    Severity::Warning,
                    se.reference("ServiceEntry"),
                    format!("{me} declares {host}:{port} as {}, but {} declare(s) it with another protocol", label(mine), others.join(", ")),
                )
                .code("IST0177")
                .detail("Sidecars get one service per host and port; istiod keeps one declaration and the other protocols are ignored, so traffic is handled as HTTP where TLS was meant, or the reverse.")
                .evidence(all.iter().map(|(p, se)| format!("{} declares {host}:{port} as {} (protocols seen: {})", named("ServiceEntry", &se.meta.namespace, &se.meta.name), label(p), shown.join(", "))))
                .fix(format!("declare {host}:{port} with one protocol in every ServiceEntry that names it, or narrow spec.exportTo so that {list} are not visible together")),
            );
        }
    }
}

/// The namespaces a ServiceEntry is visible in, as analyze groups them: `*` for all.
fn export_scopes(export_to: &[String], namespace: &str) -> BTreeSet<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return BTreeSet::from(["*".to_string()]);
    }
    export_to.iter().map(|e| if e == "." { namespace.to_string() } else { e.clone() }).collect()
}
