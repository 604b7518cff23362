//! VirtualService selection per host, as istiod's PushContext indexes it: hosts resolved in
//! the VirtualService's namespace, gateway binding, exportTo, Sidecar import and precedence,
//! and delegate merging.

use super::Model;
use super::sidecar_scope::{export_namespaces, exported_to};
use crate::intent::target::Caller;
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, resolve_short_name, specificity};
use crate::istio::{HttpMatch, HttpRoute, TcpRoute, VirtualService};
use crate::snapshot::Resource;

/// A VirtualService's hosts, resolved in its namespace.
pub fn vs_hosts(vs: &Resource<VirtualService>) -> Vec<String> {
    vs.spec.hosts.iter().map(|h| resolve_short_name(h, &vs.meta.namespace, DEFAULT_DOMAIN)).collect()
}

/// Gateway names of a VirtualService, normalized to `namespace/name` (or `mesh`).
pub fn vs_gateways(vs: &Resource<VirtualService>) -> Vec<String> {
    if vs.spec.gateways.is_empty() {
        return vec!["mesh".into()];
    }
    vs.spec.gateways.iter().map(|g| normalize_gateway(g, &vs.meta.namespace)).collect()
}

/// `name` → `ns/name`, `name.ns.svc...` → `ns/name`, `./name` → `ns/name`; `mesh` stays.
pub fn normalize_gateway(gateway: &str, vs_ns: &str) -> String {
    if gateway == "mesh" {
        return gateway.to_string();
    }
    if let Some((ns, name)) = gateway.split_once('/') {
        let ns = if ns == "." { vs_ns } else { ns };
        return format!("{ns}/{name}");
    }
    match gateway.split_once('.') {
        Some((name, rest)) => format!("{}/{name}", rest.split('.').next().unwrap_or(vs_ns)),
        None => format!("{vs_ns}/{gateway}"),
    }
}

/// The VirtualService host that claims `fqdn`, if any: exact names first, then the most
/// specific wildcard.
pub fn claiming_host(vs: &Resource<VirtualService>, fqdn: &str) -> Option<String> {
    best_claim(&vs_hosts(vs), fqdn).cloned()
}

/// Of resolved `hosts`, the one that claims `fqdn`: exact first, then the most specific wildcard.
pub fn best_claim<'h>(hosts: &'h [String], fqdn: &str) -> Option<&'h String> {
    hosts.iter().filter(|h| host_matches(h, fqdn)).max_by_key(|h| specificity(h))
}

/// VirtualServices bound to `mesh` that the caller imports, in istiod's precedence order:
/// private to its namespace, then exported to it, then public; within each, (Istio 1.24+) the
/// Gateway API routes of the caller's own namespace first ("consumer override"), then the
/// users' VirtualServices oldest first, then the other Gateway API routes (istiod lists its
/// Gateway API controller's output after the Istio kinds).
///
/// A Gateway API route applies only to callers in its own namespace or in the namespace of
/// the Service it is for.
pub fn mesh_for_caller<'a>(model: &Model<'a>, caller: &Caller, port: u32) -> Vec<&'a Resource<VirtualService>> {
    mesh_for_caller_claiming(model, caller, port, None)
}

/// [`mesh_for_caller`], keeping only those with a host that claims `fqdn` when given.
pub fn mesh_for_caller_claiming<'a>(model: &Model<'a>, caller: &Caller, port: u32, fqdn: Option<&str>) -> Vec<&'a Resource<VirtualService>> {
    let scope = model.sidecar_scope(caller);
    let defaults = &model.objects.mesh.default_virtual_service_export_to;
    let applies = |vs: &Resource<VirtualService>| {
        vs.spec.gateway_route.is_none()
            || vs.meta.namespace == caller.namespace
            || vs.spec.hosts.iter().any(|h| super::registry::service_namespace(h) == vs.meta.namespace)
    };
    let bound: Box<dyn Iterator<Item = &(&'a Resource<VirtualService>, Vec<String>)>> = match fqdn {
        Some(f) => Box::new(model.mesh_bound_claiming(f)),
        None => Box::new(model.mesh_bound().iter()),
    };
    let visible: Vec<&Resource<VirtualService>> = bound
        .filter(|(_, hosts)| fqdn.is_none_or(|f| hosts.iter().any(|h| host_matches(h, f))))
        .filter(|(vs, _)| exported_to(&vs.spec.export_to, defaults, &vs.meta.namespace, &caller.namespace))
        .filter(|(vs, hosts)| hosts.iter().any(|h| scope.imports(port, &vs.meta.namespace, h)))
        .map(|(vs, _)| *vs)
        .filter(|vs| applies(vs))
        .collect();
    let consumer_first = caller.at_least(1, 24);
    let rank = |vs: &Resource<VirtualService>| {
        let list = if vs.spec.export_to.is_empty() { defaults } else { &vs.spec.export_to };
        let bucket = if list.is_empty() || list.iter().any(|e| e == "*") {
            2
        } else if vs.meta.namespace == caller.namespace {
            0
        } else {
            1
        };
        let consumer = consumer_first && vs.spec.gateway_route.is_some() && vs.meta.namespace == caller.namespace;
        (bucket, !consumer)
    };
    let mut ordered = visible;
    // Users' VirtualServices come before the routes' and each list is oldest-first; the sort is stable.
    ordered.sort_by_key(|vs| rank(vs));
    ordered
}

/// Whether an L4 match (`tcp[].match[]`) applies to a sidecar on `port`: its port (0 or
/// absent is any), source labels, source namespace and gateways (`mesh`). `None` when it
/// narrows by destination subnet, which the model does not cover.
pub fn l4_match_applies(m: &serde_json::Value, caller: &Caller, port: u32) -> Option<bool> {
    if m.get("destinationSubnets").and_then(|s| s.as_array()).is_some_and(|s| !s.is_empty()) {
        return None;
    }
    let port_ok = m.get("port").and_then(|p| p.as_u64()).is_none_or(|p| p == 0 || p == u64::from(port));
    let labels: std::collections::BTreeMap<String, String> = m.get("sourceLabels").and_then(|l| serde_json::from_value(l.clone()).ok()).unwrap_or_default();
    let gateways: Vec<String> = m.get("gateways").and_then(|g| serde_json::from_value(g.clone()).ok()).unwrap_or_default();
    let ns_ok = m.get("sourceNamespace").and_then(|n| n.as_str()).is_none_or(|n| n == caller.namespace);
    Some(port_ok && crate::istio::labels_match(&labels, &caller.labels) && ns_ok && (gateways.is_empty() || gateways.iter().any(|g| g == "mesh")))
}

/// The first `tcp[]` rule of `vs` that applies to the caller on `port`, as istiod picks it for
/// a TCP listener (a rule without match applies everywhere). `Err` names what the model does
/// not cover.
pub fn tcp_rule<'v>(vs: &'v Resource<VirtualService>, caller: &Caller, port: u32) -> Result<Option<&'v TcpRoute>, String> {
    for rule in &vs.spec.tcp {
        if rule.matches.is_empty() {
            return Ok(Some(rule));
        }
        for m in &rule.matches {
            match l4_match_applies(m, caller, port) {
                None => return Err(format!("tcp match on destinationSubnets in VirtualService {}/{}", vs.meta.namespace, vs.meta.name)),
                Some(true) => return Ok(Some(rule)),
                Some(false) => {}
            }
        }
    }
    Ok(None)
}

/// True when some HTTP rule of `vs` applies on `port` (a rule without match, or a match
/// without port or with this port).
pub fn has_http_rule_for_port(vs: &Resource<VirtualService>, port: u32) -> bool {
    vs.spec.http.iter().any(|r| r.matches.is_empty() || r.matches.iter().any(|m| m.port.is_none_or(|p| p == port)))
}

/// The namespaces whose callers use a VirtualService: its exportTo list, or its own namespace
/// when it is exported everywhere (a representative caller, as `istioctl analyze` takes).
pub fn usage_namespaces(model: &Model<'_>, vs: &Resource<VirtualService>) -> Vec<String> {
    export_namespaces(&vs.spec.export_to, &model.objects.mesh.default_virtual_service_export_to, &vs.meta.namespace)
        .unwrap_or_else(|| vec![vs.meta.namespace.clone()])
}

/// The delegate VirtualService a root rule names, if it exists and is a delegate (no hosts).
pub fn delegate_of<'a>(model: &Model<'a>, vs: &Resource<VirtualService>, rule: &HttpRoute) -> Option<&'a Resource<VirtualService>> {
    let delegate = rule.delegate.as_ref()?;
    let ns = delegate.namespace.as_deref().unwrap_or(&vs.meta.namespace);
    model.virtual_services_in(ns).iter().copied().find(|d| d.meta.name == delegate.name && d.spec.hosts.is_empty())
}

/// The HTTP rules of `vs` with delegates expanded in place (one level, as istiod does). Each
/// delegate's short destination hosts are resolved in the delegate's own namespace first.
pub fn expanded_rules(model: &Model<'_>, vs: &Resource<VirtualService>) -> Vec<(usize, HttpRoute)> {
    let mut out = Vec::new();
    for (i, rule) in vs.spec.http.iter().enumerate() {
        if rule.delegate.is_none() {
            out.push((i, rule.clone()));
            continue;
        }
        let Some(child) = delegate_of(model, vs, rule) else { continue };
        for child_rule in &child.spec.http {
            let mut merged = child_rule.clone();
            merged.matches = merge_matches(&rule.matches, &child_rule.matches);
            if !rule.matches.is_empty() && !child_rule.matches.is_empty() && merged.matches.is_empty() {
                continue;
            }
            for d in &mut merged.route {
                d.destination.host = resolve_short_name(&d.destination.host, &child.meta.namespace, DEFAULT_DOMAIN);
            }
            merged.timeout = merged.timeout.or_else(|| rule.timeout.clone());
            merged.retries = merged.retries.or_else(|| rule.retries.clone());
            out.push((i, merged));
        }
    }
    out
}

/// Combines root and delegate matches: each delegate match must narrow some root match.
fn merge_matches(root: &[HttpMatch], child: &[HttpMatch]) -> Vec<HttpMatch> {
    if root.is_empty() {
        return child.to_vec();
    }
    if child.is_empty() {
        return root.to_vec();
    }
    let mut out = Vec::new();
    for c in child {
        for r in root {
            let uri_ok = match (&r.uri, &c.uri) {
                (None, _) => true,
                (Some(ru), Some(cu)) => match (&ru.prefix, &cu.prefix, &cu.exact) {
                    (Some(rp), Some(cp), _) => cp.starts_with(rp.as_str()),
                    (Some(rp), None, Some(ce)) => ce.starts_with(rp.as_str()),
                    _ => ru == cu,
                },
                (Some(_), None) => true,
            };
            if uri_ok {
                let mut m = c.clone();
                if m.uri.is_none() {
                    m.uri = r.uri.clone();
                }
                for (k, v) in &r.headers {
                    m.headers.entry(k.clone()).or_insert_with(|| v.clone());
                }
                out.push(m);
                break;
            }
        }
    }
    out
}
