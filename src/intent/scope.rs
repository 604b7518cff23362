//! What a caller's proxy can see, the way istiod's SidecarScope decides it: which Sidecar
//! applies, which services and VirtualServices it imports, and which DestinationRule is in
//! effect for a host.

use super::target::{Caller, Target, export_to_annotation};
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, hosts_overlap, resolve_short_name, specificity};
use crate::istio::{DestinationRule, Sidecar, VirtualService, labels_match};
use crate::snapshot::{ObjectRef, Objects, Resource};

/// The Sidecar object governing `caller`, by istiod's order: selector match in the caller's
/// namespace, then the namespace default, then the root namespace default.
pub fn sidecar_for<'a>(objects: &'a Objects, caller: &Caller) -> Option<&'a Resource<Sidecar>> {
    let in_ns = objects.sidecars.iter().filter(|s| s.meta.namespace == caller.namespace);
    let with_selector =
        in_ns.clone().find(|s| s.spec.workload_selector.as_ref().is_some_and(|w| !w.labels.is_empty() && labels_match(&w.labels, &caller.labels)));
    let no_selector =
        |ns: &str| objects.sidecars.iter().find(|s| s.meta.namespace == ns && s.spec.workload_selector.as_ref().is_none_or(|w| w.labels.is_empty()));
    with_selector.or_else(|| no_selector(&caller.namespace)).or_else(|| no_selector(&objects.mesh.root_namespace))
}

/// The `hosts` of the Sidecar egress listener serving `port` (a port-specific entry wins over
/// the catch-all); `*/*` without a Sidecar.
pub fn egress_hosts(sidecar: Option<&Resource<Sidecar>>, port: u32) -> Vec<String> {
    let Some(sc) = sidecar.filter(|s| !s.spec.egress.is_empty()) else { return vec!["*/*".into()] };
    let specific = sc.spec.egress.iter().find(|e| e.port.is_some_and(|p| p.number == port));
    let catch_all = sc.spec.egress.iter().find(|e| e.port.is_none_or(|p| p.number == 0));
    specific.or(catch_all).map(|e| e.hosts.clone()).unwrap_or_default()
}

/// True when an egress `namespace/host` entry imports `host` from `namespace`.
pub fn egress_imports(entries: &[String], caller_ns: &str, namespace: &str, host: &str) -> bool {
    entries.iter().any(|entry| {
        let (ns, pattern) = entry.split_once('/').unwrap_or(("*", entry.as_str()));
        let ns_ok = match ns {
            "*" => true,
            "." => namespace == caller_ns,
            "~" => false,
            other => other == namespace,
        };
        ns_ok && hosts_overlap(pattern, host)
    })
}

/// True when an `exportTo` list (empty means `defaults`, then everyone) lets `caller_ns` see an
/// object living in `owner_ns`.
pub fn exported_to(export_to: &[String], defaults: &[String], owner_ns: &str, caller_ns: &str) -> bool {
    let list = if export_to.is_empty() { defaults } else { export_to };
    list.is_empty()
        || list.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => owner_ns == caller_ns,
            "~" => false,
            ns => ns == caller_ns,
        })
}

/// Why a caller cannot see the target service, if it cannot.
pub fn service_hidden(objects: &Objects, caller: &Caller, target: &Target, port: u32) -> Option<(String, Option<ObjectRef>)> {
    if !exported_to(&target.export_to, &objects.mesh.default_service_export_to, &target.namespace, &caller.namespace) {
        return Some((
            format!("the Service's networking.istio.io/exportTo ({}) does not include namespace {}", target.export_to.join(","), caller.namespace),
            Some(target.reference()),
        ));
    }
    let sidecar = sidecar_for(objects, caller);
    let hosts = egress_hosts(sidecar, port);
    if !egress_imports(&hosts, &caller.namespace, &target.namespace, &target.fqdn) {
        let sc = sidecar.map(|s| s.reference("Sidecar"));
        return Some((format!("the Sidecar's egress hosts ({}) do not import {}/{}", hosts.join(", "), target.namespace, target.fqdn), sc));
    }
    None
}

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

/// VirtualServices bound to `mesh` that the caller imports, in istiod's precedence order:
/// private to its namespace, then exported to it, then public; oldest first within each.
pub fn mesh_virtual_services<'a>(objects: &'a Objects, caller: &Caller, port: u32) -> Vec<&'a Resource<VirtualService>> {
    let sidecar = sidecar_for(objects, caller);
    let egress = egress_hosts(sidecar, port);
    let defaults = &objects.mesh.default_virtual_service_export_to;
    let visible: Vec<&Resource<VirtualService>> = objects
        .virtual_services
        .iter()
        .filter(|vs| vs_gateways(vs).iter().any(|g| g == "mesh"))
        .filter(|vs| exported_to(&vs.spec.export_to, defaults, &vs.meta.namespace, &caller.namespace))
        .filter(|vs| vs_hosts(vs).iter().any(|h| egress_imports(&egress, &caller.namespace, &vs.meta.namespace, h)))
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

/// The VirtualService host that claims `fqdn`, if any: exact names first, then the most
/// specific wildcard.
pub fn claiming_host(vs: &Resource<VirtualService>, fqdn: &str) -> Option<String> {
    vs_hosts(vs).into_iter().filter(|h| host_matches(h, fqdn)).max_by_key(|h| specificity(h))
}

/// The DestinationRule(s) in effect for `host` as seen from `caller`, merged as istiod merges
/// rules for the same host in one namespace.
#[derive(Debug, Clone)]
pub struct EffectiveRule<'a> {
    /// The rules, first one providing the traffic policy.
    pub rules: Vec<&'a Resource<DestinationRule>>,
}

impl<'a> EffectiveRule<'a> {
    /// The first rule (whose traffic policy and metadata win).
    pub fn primary(&self) -> &'a Resource<DestinationRule> {
        self.rules[0]
    }

    /// The rule declaring `subset`, first declaration winning.
    pub fn subset_owner(&self, subset: &str) -> Option<&'a Resource<DestinationRule>> {
        self.rules.iter().copied().find(|r| r.spec.subset(subset).is_some())
    }

    /// Every declared subset name, in order, without duplicates.
    pub fn subset_names(&self) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rules {
            for s in &r.spec.subsets {
                if !out.contains(&s.name.as_str()) {
                    out.push(&s.name);
                }
            }
        }
        out
    }

    /// References to the rules.
    pub fn references(&self) -> Vec<ObjectRef> {
        self.rules.iter().map(|r| r.reference("DestinationRule")).collect()
    }
}

/// A DestinationRule's host, resolved in its namespace.
pub fn dr_host(dr: &Resource<DestinationRule>) -> String {
    resolve_short_name(&dr.spec.host, &dr.meta.namespace, DEFAULT_DOMAIN)
}

/// istiod's lookup: the caller's namespace, then the service's namespace, then the root
/// namespace; the first namespace with a matching rule decides, most specific host first.
pub fn destination_rule_for<'a>(objects: &'a Objects, caller: &Caller, host: &str, service_ns: &str) -> Option<EffectiveRule<'a>> {
    let root = objects.mesh.root_namespace.as_str();
    let defaults = &objects.mesh.default_destination_rule_export_to;
    let mut steps: Vec<&str> = vec![caller.namespace.as_str()];
    if service_ns != caller.namespace {
        steps.push(service_ns);
    }
    if root != caller.namespace && root != service_ns {
        steps.push(root);
    }
    for ns in steps {
        let candidates: Vec<&Resource<DestinationRule>> = objects
            .destination_rules
            .iter()
            .filter(|dr| dr.meta.namespace == ns)
            .filter(|dr| exported_to(&dr.spec.export_to, defaults, &dr.meta.namespace, &caller.namespace))
            .filter(|dr| match &dr.spec.workload_selector {
                Some(sel) if !sel.labels.is_empty() => ns == caller.namespace && labels_match(&sel.labels, &caller.labels),
                _ => true,
            })
            .filter(|dr| host_matches(&dr_host(dr), host))
            .collect();
        let Some(best) = candidates.iter().map(|dr| specificity(&dr_host(dr))).max() else { continue };
        let rules: Vec<_> = candidates.into_iter().filter(|dr| specificity(&dr_host(dr)) == best).collect();
        return Some(EffectiveRule { rules });
    }
    None
}

/// Every DestinationRule for `host` anywhere, effective for the caller or not (to explain why
/// a rule the user edited is not the one in effect).
pub fn all_rules_for<'a>(objects: &'a Objects, host: &str) -> Vec<&'a Resource<DestinationRule>> {
    objects.destination_rules.iter().filter(|dr| host_matches(&dr_host(dr), host)).collect()
}

/// True when some Service or ServiceEntry defines `host`.
pub fn host_is_known(objects: &Objects, host: &str) -> bool {
    objects.services.iter().any(|s| format!("{}.{}.svc.{DEFAULT_DOMAIN}", s.meta.name, s.meta.namespace) == host)
        || objects.service_entries.iter().any(|se| se.spec.hosts.iter().any(|h| host_matches(h, host)))
}

/// Namespaces whose Service exportTo lets `caller_ns` see the service `namespace/name`.
pub fn service_exported(objects: &Objects, namespace: &str, name: &str, caller_ns: &str) -> bool {
    objects
        .service(namespace, name)
        .is_none_or(|s| exported_to(&export_to_annotation(&s.meta.annotations), &objects.mesh.default_service_export_to, namespace, caller_ns))
}

/// The namespaces an `exportTo` list (empty means `defaults`, then everyone) exports to;
/// `None` means every namespace.
pub fn export_namespaces(export_to: &[String], defaults: &[String], owner_ns: &str) -> Option<Vec<String>> {
    let list = if export_to.is_empty() { defaults } else { export_to };
    if list.is_empty() || list.iter().any(|e| e == "*") {
        return None;
    }
    let mut out: Vec<String> = list.iter().filter(|e| *e != "~").map(|e| if e == "." { owner_ns.to_string() } else { e.clone() }).collect();
    out.sort();
    out.dedup();
    Some(out)
}

/// The namespaces whose callers use a VirtualService: its exportTo list, or its own namespace
/// when it is exported everywhere (a representative caller, as `istioctl analyze` takes).
pub fn usage_namespaces(objects: &Objects, vs: &Resource<VirtualService>) -> Vec<String> {
    export_namespaces(&vs.spec.export_to, &objects.mesh.default_virtual_service_export_to, &vs.meta.namespace)
        .unwrap_or_else(|| vec![vs.meta.namespace.clone()])
}

/// A registry entry that defines a host: a Service or a ServiceEntry.
#[derive(Debug, Clone)]
pub struct HostDefinition {
    /// The defining object.
    pub reference: ObjectRef,
    /// Its port numbers.
    pub ports: Vec<u32>,
}

/// The Service or ServiceEntry that defines `host` for callers in `from_ns`, honouring exportTo.
pub fn visible_host(objects: &Objects, host: &str, from_ns: &str) -> Option<HostDefinition> {
    let service = objects.services.iter().find(|s| {
        format!("{}.{}.svc.{DEFAULT_DOMAIN}", s.meta.name, s.meta.namespace) == host && service_exported(objects, &s.meta.namespace, &s.meta.name, from_ns)
    });
    if let Some(s) = service {
        let ports = s.spec.spec.iter().flat_map(|sp| sp.ports.iter().flatten()).map(|p| p.port as u32).collect();
        return Some(HostDefinition { reference: s.reference("Service"), ports });
    }
    objects
        .service_entries
        .iter()
        .filter(|se| exported_to(&se.spec.export_to, &objects.mesh.default_service_export_to, &se.meta.namespace, from_ns))
        .find(|se| se.spec.hosts.iter().any(|h| host_matches(h, host)))
        .map(|se| HostDefinition { reference: se.reference("ServiceEntry"), ports: se.spec.ports.iter().map(|p| p.number).collect() })
}
