//! VirtualService selection per host, as istiod's PushContext indexes it: hosts resolved in
//! the VirtualService's namespace, gateway binding, exportTo, Sidecar import and precedence,
//! and delegate merging.

use super::Model;
use super::sidecar_scope::{export_namespaces, exported_to};
use crate::intent::target::Caller;
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, resolve_short_name, specificity};
use crate::istio::{HttpMatch, HttpRoute, VirtualService};
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
    vs_hosts(vs).into_iter().filter(|h| host_matches(h, fqdn)).max_by_key(|h| specificity(h))
}

/// VirtualServices bound to `mesh` that the caller imports, in istiod's precedence order:
/// private to its namespace, then exported to it, then public; oldest first within each.
pub fn mesh_for_caller<'a>(model: &Model<'a>, caller: &Caller, port: u32) -> Vec<&'a Resource<VirtualService>> {
    let scope = model.sidecar_scope(caller);
    let defaults = &model.objects.mesh.default_virtual_service_export_to;
    let visible: Vec<&Resource<VirtualService>> = model
        .objects
        .virtual_services
        .iter()
        .filter(|vs| vs_gateways(vs).iter().any(|g| g == "mesh"))
        .filter(|vs| exported_to(&vs.spec.export_to, defaults, &vs.meta.namespace, &caller.namespace))
        .filter(|vs| vs_hosts(vs).iter().any(|h| scope.imports(port, &vs.meta.namespace, h)))
        .collect();
    let bucket = |vs: &Resource<VirtualService>| {
        let list = if vs.spec.export_to.is_empty() { defaults } else { &vs.spec.export_to };
        if list.is_empty() || list.iter().any(|e| e == "*") {
            2
        } else if vs.meta.namespace == caller.namespace {
            0
        } else {
            1
        }
    };
    let mut ordered = visible;
    // `objects` is already oldest-first, and the sort is stable.
    ordered.sort_by_key(|vs| bucket(vs));
    ordered
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
