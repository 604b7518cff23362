//! Which proxies to read for the question, and which namespaces to list pods in to find them.
//!
//! Callers: `--from`, else one ready sidecar pod per workload in the service's namespace and in
//! the namespaces whose VirtualServices or Sidecars refer to the service. Ingress gateways: one
//! pod per Gateway selector when a Gateway-bound VirtualService routes to the service.
//! Destinations: one ready pod per subset (or per `version` label without subsets). The total is
//! capped; everything left out is named in the gaps.

use super::admin::Role;
use crate::error::Result;
use crate::intent::target::{Caller, CallerKind, SidecarState, Target, has_proxy};
use crate::istio::VirtualService;
use crate::istio::ambient::{GATEWAY_NAME_LABEL, WaypointBinding, is_ztunnel, service_waypoint, workload_is_ambient};
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, resolve_short_name};
use crate::istio::{PackedLabels, labels_match};
use crate::model::destination_rules::all_for;
use crate::model::virtual_services::{vs_gateways, vs_hosts};
use crate::question::{self, Question};
use crate::snapshot::{Gap, Objects, Pod, Resource, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

/// A proxy to read and why it was picked.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Caller, gateway or destination.
    pub role: Role,
    /// Why this pod (the workload, subset or gateway it stands for).
    pub why: String,
}

impl Choice {
    /// The reading of `caller`, a pod `--from` names, as the kind of proxy it runs.
    pub fn named(caller: &Caller) -> Choice {
        let role = match caller.kind {
            CallerKind::Gateway => Role::Gateway,
            CallerKind::Waypoint => Role::Waypoint,
            CallerKind::Sidecar => Role::Caller,
        };
        Choice { namespace: caller.namespace.clone(), pod: caller.name.clone(), role, why: "named by --from".into() }
    }
}

/// The proxies picked, and what was left out and why.
#[derive(Debug, Default)]
pub struct Choices {
    /// Pods to read, callers first.
    pub chosen: Vec<Choice>,
    /// Workloads or pods not read.
    pub gaps: Vec<Gap>,
}

/// True when any of the VirtualService's routes sends traffic to `fqdn`.
fn routes_to(vs: &Resource<VirtualService>, fqdn: &str) -> bool {
    let spec = &vs.spec;
    spec.http
        .iter()
        .flat_map(|h| h.route.iter().map(|r| &r.destination).chain(h.mirror.iter()).chain(h.mirrors.iter().map(|m| &m.destination)))
        .chain(spec.tcp.iter().chain(&spec.tls).flat_map(|t| t.route.iter().map(|r| &r.destination)))
        .any(|d| resolve_short_name(&d.host, &vs.meta.namespace, DEFAULT_DOMAIN) == fqdn)
}

/// Namespaces whose pods may call the service: the service's own, the `--from` namespace, and
/// those whose VirtualServices or Sidecars refer to the service.
pub fn caller_namespaces(snapshot: &Snapshot, target: &Target, question: &Question) -> BTreeSet<String> {
    let objects = &snapshot.objects;
    let mut out = BTreeSet::from([target.namespace.clone()]);
    if question.from.is_some() {
        out.insert(question.from_namespace.clone());
        return out;
    }
    for vs in &objects.virtual_services {
        if routes_to(vs, &target.fqdn) || vs_hosts(vs).iter().any(|h| host_matches(h, &target.fqdn)) {
            out.insert(vs.meta.namespace.clone());
        }
    }
    for sidecar in &objects.sidecars {
        let own = &sidecar.meta.namespace;
        let refers = sidecar.spec.egress.iter().flat_map(|e| &e.hosts).any(|entry| {
            let (ns, host) = entry.split_once('/').unwrap_or(("*", entry));
            let ns_ok = ns == "*" || ns == target.namespace || (ns == "." && *own == target.namespace);
            // `*/*` imports everything; only entries that single out the service count.
            ns_ok && host_matches(host, &target.fqdn) && !(ns == "*" && host == "*")
        });
        if refers {
            out.insert(own.clone());
        }
    }
    out
}

/// Label selectors of the Gateways that Gateway-bound VirtualServices use to route to the service.
pub fn gateway_selectors(snapshot: &Snapshot, target: &Target) -> Vec<(String, BTreeMap<String, String>)> {
    let objects = &snapshot.objects;
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    for vs in objects.virtual_services.iter().filter(|vs| routes_to(vs, &target.fqdn)) {
        for gateway in vs_gateways(vs).into_iter().filter(|g| g != "mesh") {
            let found = objects.gateways.iter().find(|g| format!("{}/{}", g.meta.namespace, g.meta.name) == gateway);
            if let Some(g) = found.filter(|g| !g.spec.selector.is_empty() && !out.iter().any(|(_, sel)| *sel == g.spec.selector)) {
                out.push((gateway, g.spec.selector.clone()));
            }
        }
    }
    out
}

/// Ready (Ready condition true) and not being deleted.
fn ready(pod: &Resource<Pod>) -> bool {
    pod.spec.metadata.deletion_timestamp.is_none()
        && pod.spec.status.iter().flat_map(|s| s.conditions.iter().flatten()).any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The workload a pod belongs to: its Deployment (owner ReplicaSet minus the template hash), or
/// its other owner, or its `app` label, or itself.
fn workload(pod: &Resource<Pod>) -> String {
    let owner = pod.meta.owners.iter().find(|o| !o.starts_with("manager:"));
    match (owner, pod.meta.labels.get("pod-template-hash")) {
        (Some(o), Some(hash)) if o.starts_with("ReplicaSet/") => {
            let rs = &o["ReplicaSet/".len()..];
            format!("Deployment/{}", rs.strip_suffix(&format!("-{hash}")).unwrap_or(rs))
        }
        (Some(o), _) => o.clone(),
        (None, _) => pod.meta.labels.get("app").map(|a| format!("app={a}")).unwrap_or_else(|| format!("Pod/{}", pod.meta.name)),
    }
}

fn has_sidecar(caller: &Caller) -> bool {
    caller.sidecar == SidecarState::Injected
}

/// The waypoint `(namespace, name)` the target's Service is bound to, when its Gateway was read.
fn waypoint_of(objects: &Objects, target: &Target) -> Option<(String, String)> {
    let service = objects.service(&target.namespace, &target.name)?;
    let WaypointBinding::Bound { namespace, name, .. } = service_waypoint(objects, &service.meta) else { return None };
    objects.gateways.iter().any(|g| g.spec.is_waypoint() && g.meta.namespace == namespace && g.meta.name == name).then_some((namespace, name))
}

/// Picks the proxies to read (at most `options.max_proxies`).
pub fn choose(snapshot: &Snapshot, target: &Target, question: &Question, options: &super::LiveOptions) -> Result<Choices> {
    let max = options.max_proxies;
    let objects = &snapshot.objects;
    let mut choices = Choices::default();
    let is_backend = |p: &Resource<Pod>| target.selects(p);
    let mut wanted: Vec<Choice> = Vec::new();

    if let Some(from) = &question.from {
        for examined in question::named(snapshot, from, &question.from_namespace)? {
            let caller = examined.caller;
            match &caller.sidecar {
                SidecarState::Missing(reason) => choices.gaps.push(Gap {
                    source: format!("pod {}/{}", caller.namespace, caller.name),
                    reason: format!("not read: {reason}, so there is no Envoy to port-forward to"),
                }),
                _ => wanted.push(Choice::named(&caller)),
            }
        }
    } else {
        let namespaces = caller_namespaces(snapshot, target, question);
        let mut workloads: BTreeMap<(String, String), Vec<&Resource<Pod>>> = BTreeMap::new();
        for pod in objects.pods.iter().filter(|p| namespaces.contains(&p.meta.namespace) && !is_backend(p)) {
            if Caller::from_pod(pod).kind != CallerKind::Sidecar {
                continue;
            }
            workloads.entry((pod.meta.namespace.clone(), workload(pod))).or_default().push(pod);
        }
        for ((ns, name), mut pods) in workloads {
            pods.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
            let pick = pods.iter().find(|p| ready(p) && has_sidecar(&Caller::from_pod(p)));
            match pick {
                Some(p) => wanted.push(Choice { namespace: ns, pod: p.meta.name.clone(), role: Role::Caller, why: format!("one ready pod of {name}") }),
                None => {
                    let reason = match Caller::from_pod(pods[0]).sidecar {
                        SidecarState::Missing(r) => r,
                        _ => "no pod is ready".into(),
                    };
                    choices.gaps.push(Gap { source: format!("workload {ns}/{name}"), reason: format!("not read as a caller: {reason}") });
                }
            }
        }
        for (gateway, selector) in gateway_selectors(snapshot, target) {
            let mut pods: Vec<&Resource<Pod>> = objects.pods.iter().filter(|p| labels_match(&selector, &p.meta.labels) && ready(p)).collect();
            pods.sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
            match pods.first() {
                Some(p) => wanted.push(Choice {
                    namespace: p.meta.namespace.clone(),
                    pod: p.meta.name.clone(),
                    role: Role::Gateway,
                    why: format!("one ready pod of gateway {gateway}"),
                }),
                None => choices.gaps.push(Gap { source: format!("gateway {gateway}"), reason: "not read: no ready pod matches its selector".into() }),
            }
        }
        // An ambient caller's connections go through its node's ztunnel, which holds the
        // service's waypoint binding: one ztunnel per node of the ambient callers.
        let ambient_nodes: BTreeSet<&str> = objects
            .pods
            .iter()
            .filter(|p| namespaces.contains(&p.meta.namespace) && !is_backend(p) && workload_is_ambient(objects, &p.meta, has_proxy(p)))
            .filter_map(|p| p.spec.spec.as_ref()?.node_name.as_deref())
            .collect();
        for node in ambient_nodes {
            let on_node = |p: &&Resource<Pod>| is_ztunnel(&p.meta.labels) && p.spec.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
            match objects.pods.iter().filter(on_node).find(|p| ready(p)) {
                Some(p) => wanted.push(Choice {
                    namespace: p.meta.namespace.clone(),
                    pod: p.meta.name.clone(),
                    role: Role::Ztunnel,
                    why: format!("the ztunnel of node {node}, where ambient callers run"),
                }),
                None => choices.gaps.push(Gap {
                    source: format!("ztunnel of node {node}"),
                    reason: "not read: no ready ztunnel pod (label app=ztunnel) of that node was listed".into(),
                }),
            }
        }
        // In ambient mode the service's waypoint, not the callers, holds the routes.
        if let Some((namespace, name)) = waypoint_of(objects, target) {
            let mut pods: Vec<&Resource<Pod>> =
                objects.pods.iter().filter(|p| p.meta.namespace == namespace && p.meta.labels.get(GATEWAY_NAME_LABEL) == Some(&name) && ready(p)).collect();
            pods.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
            match pods.first() {
                Some(p) => wanted.push(Choice {
                    namespace: namespace.clone(),
                    pod: p.meta.name.clone(),
                    role: Role::Waypoint,
                    why: format!("one ready pod of waypoint {namespace}/{name}"),
                }),
                None => choices.gaps.push(Gap { source: format!("waypoint {namespace}/{name}"), reason: "not read: no ready pod of it was listed".into() }),
            }
        }
    }

    let mut backends: Vec<&Resource<Pod>> =
        objects.pods.iter().filter(|p| options.destinations && is_backend(p) && ready(p) && has_sidecar(&Caller::from_pod(p))).collect();
    backends.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    let mut subsets: Vec<(&str, &PackedLabels)> = Vec::new();
    for rule in all_for(objects, &target.fqdn) {
        for s in &rule.spec.subsets {
            if !subsets.iter().any(|(name, _)| *name == s.name) {
                subsets.push((&s.name, &s.labels));
            }
        }
    }
    let mut picks: Vec<(String, &Resource<Pod>)> = Vec::new();
    if subsets.is_empty() {
        let mut seen = BTreeSet::new();
        for p in &backends {
            let version = p.meta.labels.get("version");
            if seen.insert(version) {
                picks.push((version.map(|v| format!("version {v}")).unwrap_or_else(|| "the service".into()), p));
            }
        }
    } else {
        for (name, labels) in subsets {
            picks.extend(backends.iter().find(|p| labels_match(labels, &p.meta.labels)).map(|p| (format!("subset {name}"), *p)));
        }
    }
    for (what, p) in picks {
        wanted.push(Choice { namespace: p.meta.namespace.clone(), pod: p.meta.name.clone(), role: Role::Destination, why: format!("one ready pod of {what}") });
    }

    for choice in wanted {
        if choices.chosen.iter().any(|c| c.namespace == choice.namespace && c.pod == choice.pod) {
            continue;
        }
        if choices.chosen.len() < max {
            choices.chosen.push(choice);
        } else {
            choices.gaps.push(Gap {
                source: format!("pod {}/{}", choice.namespace, choice.pod),
                reason: format!("not read ({} {}): --max-proxies {max} reached; raise it or pick callers with --from", choice.role.word(), choice.why),
            });
        }
    }
    Ok(choices)
}
