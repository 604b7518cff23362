//! One caller's SidecarScope, the way istiod decides it: which Sidecar applies, which hosts
//! its egress listeners import per port, its outbound traffic policy, and exportTo.

use super::Model;
use crate::intent::target::{Caller, Target};
use crate::istio::names::{host_matches, hosts_overlap};
use crate::istio::{Sidecar, labels_match};
use crate::snapshot::{ObjectRef, Objects, Resource};

/// What one caller's proxy imports.
#[derive(Debug, Clone)]
pub struct SidecarScope<'a> {
    /// The Sidecar object in effect, if any.
    pub sidecar: Option<&'a Resource<Sidecar>>,
    /// The caller's namespace.
    pub namespace: String,
    /// `ALLOW_ANY` or `REGISTRY_ONLY`: the Sidecar's, else meshConfig's, else `ALLOW_ANY`.
    pub outbound_mode: String,
    /// Whether `~namespace/host` egress entries exclude hosts (Istio 1.31 and later).
    pub exclusions: bool,
}

impl<'a> SidecarScope<'a> {
    /// The scope of `caller`.
    pub fn for_caller(model: &Model<'a>, caller: &Caller) -> SidecarScope<'a> {
        let sidecar = sidecar_for(model.objects, caller);
        let from_sidecar = sidecar.and_then(|s| s.spec.outbound_traffic_policy.as_ref()?.mode.clone());
        let from_mesh = || model.objects.mesh.outbound_traffic_policy.as_ref().and_then(|p| p.mode.clone());
        SidecarScope {
            sidecar,
            namespace: caller.namespace.clone(),
            outbound_mode: from_sidecar.or_else(from_mesh).unwrap_or_else(|| "ALLOW_ANY".into()),
            exclusions: caller.at_least(1, 31),
        }
    }

    /// The egress `hosts` serving `port` (`*/*` without a Sidecar or egress).
    pub fn egress_hosts(&self, port: u32) -> Vec<String> {
        egress_hosts(self.sidecar, port)
    }

    /// True when the egress listener on `port` imports `host` defined in `namespace`.
    pub fn imports(&self, port: u32, namespace: &str, host: &str) -> bool {
        egress_imports(&self.egress_hosts(port), &self.namespace, namespace, host, self.exclusions)
    }

    /// The Sidecar in effect, as evidence.
    pub fn reference(&self) -> Option<ObjectRef> {
        self.sidecar.map(|s| s.reference("Sidecar"))
    }

    /// Why the caller cannot see the target service on `port`, if it cannot: the Service's
    /// exportTo, then the Sidecar's egress hosts.
    pub fn service_hidden(&self, model: &Model<'_>, target: &Target, port: u32) -> Option<(String, Option<ObjectRef>)> {
        if !exported_to(&target.export_to, &model.objects.mesh.default_service_export_to, &target.namespace, &self.namespace) {
            return Some((
                format!("the Service's networking.istio.io/exportTo ({}) does not include namespace {}", target.export_to.join(","), self.namespace),
                Some(target.reference()),
            ));
        }
        if !self.imports(port, &target.namespace, &target.fqdn) {
            let hosts = self.egress_hosts(port);
            return Some((format!("the Sidecar's egress hosts ({}) do not import {}/{}", hosts.join(", "), target.namespace, target.fqdn), self.reference()));
        }
        None
    }
}

/// The Sidecar object governing `caller`, by istiod's order: selector match in the caller's
/// namespace, then the namespace default, then the root namespace default.
fn sidecar_for<'a>(objects: &'a Objects, caller: &Caller) -> Option<&'a Resource<Sidecar>> {
    let in_ns = objects.sidecars.iter().filter(|s| s.meta.namespace == caller.namespace);
    let with_selector =
        in_ns.clone().find(|s| s.spec.workload_selector.as_ref().is_some_and(|w| !w.labels.is_empty() && labels_match(&w.labels, &caller.labels)));
    let no_selector =
        |ns: &str| objects.sidecars.iter().find(|s| s.meta.namespace == ns && s.spec.workload_selector.as_ref().is_none_or(|w| w.labels.is_empty()));
    with_selector.or_else(|| no_selector(&caller.namespace)).or_else(|| no_selector(&objects.mesh.root_namespace))
}

/// The `hosts` of the Sidecar egress listener serving `port` (a port-specific entry wins over
/// the catch-all); `*/*` without a Sidecar.
fn egress_hosts(sidecar: Option<&Resource<Sidecar>>, port: u32) -> Vec<String> {
    let Some(sc) = sidecar.filter(|s| !s.spec.egress.is_empty()) else { return vec!["*/*".into()] };
    let specific = sc.spec.egress.iter().find(|e| e.port.is_some_and(|p| p.number == port));
    let catch_all = sc.spec.egress.iter().find(|e| e.port.is_none_or(|p| p.number == 0));
    specific.or(catch_all).map(|e| e.hosts.clone()).unwrap_or_default()
}

/// True when an egress `namespace/host` entry imports `host` from `namespace` and, with
/// `exclusions` (1.31+), no `~namespace/host` entry excludes it. Before 1.31 a `~` entry
/// imports nothing.
fn egress_imports(entries: &[String], caller_ns: &str, namespace: &str, host: &str, exclusions: bool) -> bool {
    let ns_ok = |ns: &str| match ns {
        "*" => true,
        "." => namespace == caller_ns,
        other => other == namespace,
    };
    let mut imported = false;
    for entry in entries {
        let (ns, pattern) = entry.split_once('/').unwrap_or(("*", entry.as_str()));
        match ns.strip_prefix('~') {
            Some(excluded) if exclusions => {
                if ns_ok(if excluded.is_empty() { "*" } else { excluded }) && host_matches(pattern, host) {
                    return false;
                }
            }
            Some(_) => {}
            None => imported |= ns_ok(ns) && hosts_overlap(pattern, host),
        }
    }
    imported
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
