//! Where routes send traffic: does the destination host exist for the caller, on that port,
//! with that subset, with pods behind it, and is the DestinationRule the user edited the one
//! in effect.

use super::routing::bound_to_mesh;
use super::{Scope, destination_host, named, rule_at};
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::endpoints;
use crate::intent::target::{Caller, Target};
use crate::istio::names::{ClusterName, DEFAULT_DOMAIN};
use crate::istio::{DestinationRole, DestinationRule, DestinationUse, VirtualService};
use crate::model::destination_rules::dr_host;
use crate::model::registry::service_namespace;
use crate::model::sidecar_scope::exported_to;
use crate::model::virtual_services::{usage_namespaces, vs_hosts};
use crate::model::{EffectiveRule, HostDefinition, Model};
use crate::snapshot::{ObjectRef, Resource};
use std::collections::BTreeSet;

/// The definition of `host` seen from any namespace that uses the VirtualService.
fn definition(model: &Model<'_>, vs: &Resource<VirtualService>, host: &str) -> Option<HostDefinition> {
    usage_namespaces(model, vs).iter().find_map(|ns| model.registry.visible_host(host, ns))
}

/// Destinations that name a host no Service or ServiceEntry defines for the VirtualService's
/// callers (IST0101), and DestinationRules for hosts that exist nowhere (IST0174).
pub fn host_not_found(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let namespaces = usage_namespaces(model, vs);
        for d in vs.spec.destinations() {
            let host = destination_host(vs, d.destination);
            if !host.is_empty() && definition(model, vs, &host).is_some() {
                continue;
            }
            out.push(missing_host(model, vs, &d, &host, &namespaces));
        }
    }
    if let Scope::Mesh(_) = scope {
        for dr in model.objects.destination_rules.iter().filter(|dr| scope.namespace(&dr.meta.namespace)) {
            let host = dr_host(dr);
            if host.contains('*') || model.registry.is_known(&host) {
                continue;
            }
            let me = named("DestinationRule", &dr.meta.namespace, &dr.meta.name);
            out.push(
                Finding::new("host-not-found", Severity::Warning, dr.reference("DestinationRule"), format!("{me} is for host {host}, which no Service or ServiceEntry defines, so it shapes no traffic"))
                    .code("IST0174")
                    .detail("A DestinationRule only applies to traffic for a host in the service registry. Short names resolve in the rule's own namespace; a dotted name is taken literally.")
                    .evidence([format!("{me} spec.host: {}", dr.spec.host)])
                    .fix(format!("set spec.host of {me} to an existing service (e.g. `name.namespace.svc.cluster.local`), or delete the rule")),
            );
        }
    }
}

fn missing_host(model: &Model<'_>, vs: &Resource<VirtualService>, d: &DestinationUse<'_>, host: &str, namespaces: &[String]) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    let mirror = d.role == DestinationRole::Mirror;
    let mut fix = format!(
        "fix the host at {} (a Service name such as `reviews` or `reviews.<namespace>.svc.cluster.local`), or create the Service or a ServiceEntry for it",
        d.path
    );
    let (summary, why) = if host.is_empty() {
        (
            format!("{me} has a destination without a host at {}", d.path),
            "istiod cannot build a cluster for it, so that share of traffic has nowhere to go.".to_string(),
        )
    } else {
        let hidden = !model.registry.definitions(host).is_empty();
        let why = if hidden {
            fix = format!(
                "export {host} to namespace(s) {} (Service annotation networking.istio.io/exportTo, or ServiceEntry spec.exportTo), or narrow spec.exportTo of {me}",
                namespaces.join(", ")
            );
            format!("A Service or ServiceEntry defines {host}, but its exportTo hides it from namespace(s) {}.", namespaces.join(", "))
        } else if d.destination.host.contains('.') || d.destination.host.contains('*') {
            format!("No Service or ServiceEntry defines {host}; a name with a dot is taken literally.")
        } else {
            format!("No Service or ServiceEntry defines {host} (the short name resolves in the VirtualService's namespace).")
        };
        let what = if mirror { "mirrors requests" } else { "routes" };
        (format!("{me} {what} to host {host}, which no Service or ServiceEntry visible in namespace {} defines", namespaces.join(", ")), why)
    };
    let consequence = if mirror { "The mirror is silently dropped." } else { "Requests routed there fail with 503 (NC, no cluster)." };
    Finding::new("host-not-found", if mirror { Severity::Warning } else { Severity::Error }, vs.reference("VirtualService"), summary)
        .code("IST0101")
        .detail(format!("{why} {consequence}"))
        .evidence([format!("{me} {}.host: {:?}", d.path, d.destination.host)])
        .fix(fix)
}

/// The ports of the services a mesh VirtualService claims: the ports its routes are built for.
fn claimed_ports(model: &Model<'_>, vs: &Resource<VirtualService>) -> BTreeSet<u32> {
    vs_hosts(vs)
        .iter()
        .filter_map(|h| model.registry.visible_host(h, &vs.meta.namespace))
        .filter(|d| d.reference.kind == "Service")
        .flat_map(|d| d.ports)
        .collect()
}

/// A destination port the host does not expose, or no port where it is ambiguous or wrong.
pub fn destination_port_missing(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        let claimed = if bound_to_mesh(vs) { claimed_ports(model, vs) } else { BTreeSet::new() };
        for d in vs.spec.destinations() {
            let host = destination_host(vs, d.destination);
            let Some(def) = (!host.is_empty()).then(|| definition(model, vs, &host)).flatten() else { continue };
            let ports: Vec<String> = def.ports.iter().map(u32::to_string).collect();
            let evidence = vec![
                format!(
                    "{me} {}: host {}, port {}",
                    d.path,
                    d.destination.host,
                    d.destination.port.map(|p| p.number.to_string()).unwrap_or_else(|| "(none)".into())
                ),
                format!("{} ports: [{}]", def.reference, ports.join(", ")),
            ];
            let http = d.role == DestinationRole::HttpRoute;
            // Sidecar HTTP routes without a port use the port of the request being routed.
            let unserved: Vec<String> = claimed
                .iter()
                .filter(|p| http && !def.ports.contains(p))
                .map(|p| ClusterName { port: *p, subset: String::new(), host: host.clone() }.to_string())
                .collect();
            let finding = match d.destination.port.map(|p| p.number).filter(|n| *n > 0) {
                Some(p) if !def.ports.contains(&p) => Finding::new("destination-port-missing", Severity::Error, vs.reference("VirtualService"), format!("{me} sends traffic to {host} port {p}, which {} does not expose", def.reference))
                    .code("IST0101")
                    .detail(format!("istiod builds the cluster outbound|{p}||{host}, which has no endpoints or does not exist, so those requests fail with 503 (NC)."))
                    .fix(format!("set {}.port.number to one of [{}]", d.path, ports.join(", "))),
                None if def.ports.len() > 1 => Finding::new(
                    "destination-port-missing",
                    if unserved.is_empty() { Severity::Warning } else { Severity::Error },
                    vs.reference("VirtualService"),
                    format!("{me} sends traffic to {host} without a port, but {} has several ports ({})", def.reference, ports.join(", ")),
                )
                .code("IST0112")
                .detail(if unserved.is_empty() {
                    "Sidecars use the port of the request, which the destination also has, but gateways and TCP routes cannot tell which port is meant.".to_string()
                } else {
                    format!("Sidecars use the port of the request being routed; the destination lacks it, so requests go to missing cluster(s) {} and fail with 503 (NC).", unserved.join(", "))
                })
                .fix(format!("add `port: {{number: N}}` to {} with N one of [{}]", d.path, ports.join(", "))),
                None if !unserved.is_empty() && !def.ports.is_empty() => Finding::new(
                    "destination-port-missing",
                    Severity::Error,
                    vs.reference("VirtualService"),
                    format!("{me} sends traffic to {host} without a port, so sidecars use the request's port, which {} does not expose", def.reference),
                )
                .detail(format!("For sidecar HTTP routes istiod takes the port of the service being routed, not the destination's only port; requests go to missing cluster(s) {} and fail with 503 (NC).", unserved.join(", ")))
                .fix(format!("add `port: {{number: {}}}` to {}", ports.join(", "), d.path)),
                _ => continue,
            };
            out.push(finding.evidence(evidence));
        }
    }
}

/// Why `subset` of `host` has no cluster for `caller`, and the fix.
fn why_undeclared(model: &Model<'_>, caller: &Caller, host: &str, subset: &str) -> (String, String) {
    let service_ns = service_namespace(host);
    let effective = model.destination_rule(caller, host, &service_ns);
    let elsewhere: Vec<ObjectRef> =
        model.all_destination_rules(host).into_iter().filter(|dr| dr.spec.subset(subset).is_some()).map(|dr| dr.reference("DestinationRule")).collect();
    let reason = match (&effective, elsewhere.first()) {
        (None, None) => format!("no DestinationRule for {host} is visible to namespace {}", caller.namespace),
        (Some(e), None) => format!(
            "{} (in effect) declares subsets [{}], not `{subset}`",
            named("DestinationRule", &e.primary().meta.namespace, &e.primary().meta.name),
            e.subset_names().join(", ")
        ),
        (None, Some(other)) => {
            format!("{other} declares it, but is not visible to namespace {} (exportTo, or a namespace istiod does not consult)", caller.namespace)
        }
        (Some(e), Some(other)) => format!(
            "{other} declares it, but {} is the one in effect for namespace {} (it shadows the other)",
            named("DestinationRule", &e.primary().meta.namespace, &e.primary().meta.name),
            caller.namespace
        ),
    };
    let fix = match &effective {
        Some(e) => format!(
            "declare the subset in DestinationRule {}/{} (or fix the subset name in the VirtualService):\n  subsets:\n  - name: {subset}\n    labels:\n      version: {subset}",
            e.primary().meta.namespace,
            e.primary().meta.name
        ),
        None => format!(
            "create a DestinationRule for {host} declaring it:\n  apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata:\n    name: {}\n    namespace: {}\n  spec:\n    host: {host}\n    subsets:\n    - name: {subset}\n      labels:\n        version: {subset}",
            host.split('.').next().unwrap_or(host),
            if service_ns.is_empty() { caller.namespace.as_str() } else { service_ns.as_str() }
        ),
    };
    (reason, fix)
}

/// A subset routed to `host` that only a DestinationRule hidden behind the one in effect for
/// `caller` declares: one finding about the shadowing rule (the cause), whatever the number of
/// subsets it costs.
fn dr_shadowed(model: &Model<'_>, caller: &Caller, vs: &Resource<VirtualService>, host: &str, subset: &str) -> Option<Finding> {
    let service_ns = service_namespace(host);
    let in_effect = model.destination_rule(caller, host, &service_ns)?;
    if in_effect.subset_owner(subset).is_some() {
        return None;
    }
    let hidden = model.shadowed_destination_rules(caller, host, &service_ns).into_iter().find(|dr| dr.spec.subset(subset).is_some())?;
    let shadowing = in_effect.primary();
    let (me, other) =
        (named("DestinationRule", &shadowing.meta.namespace, &shadowing.meta.name), named("DestinationRule", &hidden.meta.namespace, &hidden.meta.name));
    let caller_ns = &caller.namespace;
    let root = &model.objects.mesh.root_namespace;
    let why = if shadowing.meta.namespace == hidden.meta.namespace {
        format!(
            "within one namespace istiod takes the most specific host, and {me} (host {}) is more specific than {other} (host {})",
            dr_host(shadowing),
            dr_host(hidden)
        )
    } else {
        format!(
            "istiod takes the DestinationRules of the first namespace that has one matching {host}: the caller's ({caller_ns}), then the service's ({}), then the root namespace ({root}); {me} (host {}) is found before {other}",
            if service_ns.is_empty() { "none" } else { service_ns.as_str() },
            dr_host(shadowing)
        )
    };
    let wildcard = dr_host(shadowing).contains('*');
    let fix = if wildcard && shadowing.meta.namespace != *root {
        format!(
            "narrow spec.host of {me} so it no longer matches {host}, or move it to the root namespace ({root}), which istiod consults last; then {other} applies again"
        )
    } else {
        format!(
            "delete {me} (or give it a workloadSelector that keeps it to the workloads that need it) so that {other} applies to callers in namespace {caller_ns}"
        )
    };
    let vs_me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    Some(
        Finding::new(
            "dr-shadowed",
            Severity::Error,
            shadowing.reference("DestinationRule"),
            format!("{me} shadows {other} for callers in namespace {caller_ns}, so requests routed to subsets only {other} declares fail with 503 (NC)"),
        )
        .detail(format!(
            "{why}. Rules are not merged across namespaces: the subsets of {other} get no cluster for these callers while the routes still name them, so Envoy answers 503 with response flag NC."
        ))
        .evidence([format!("{vs_me} routes to subset `{subset}` of {host}: declared by {other}, not by {me} (in effect)")])
        .fix(fix),
    )
}

/// The one finding for an undeclared subset, whichever check sees it first.
fn undeclared_subset(vs: &Resource<VirtualService>, host: &str, subset: &str, mirror: bool, reason: &str) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    let (severity, summary, effect) = if mirror {
        (
            Severity::Warning,
            format!("requests mirrored to subset `{subset}` of {host} by {me} are never sent: the subset is not declared"),
            "the mirror is silently dropped",
        )
    } else {
        (
            Severity::Error,
            format!("requests routed to subset `{subset}` of {host} by {me} fail with 503 (NC): the subset is not declared"),
            "Envoy answers 503 with response flag NC (no cluster)",
        )
    };
    Finding::new("subset-not-declared", severity, vs.reference("VirtualService"), summary)
        .code("IST0101")
        .detail(format!("{reason}. istiod still writes the route to cluster outbound|<port>|{subset}|{host} but creates no such cluster, so {effect}."))
}

/// Every VirtualService's subsets, checked against the DestinationRule in effect for callers in
/// the namespaces that use it (delegates and gateway-bound ones included).
pub fn subset_not_declared_anywhere(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let namespaces = usage_namespaces(model, vs);
        let caller = Caller::hypothetical(&namespaces[0]);
        for d in vs.spec.destinations() {
            let Some(subset) = d.destination.subset.as_deref().filter(|s| !s.is_empty()) else { continue };
            let host = destination_host(vs, d.destination);
            // A host that exists nowhere and has no rule is a typo: host-not-found says so.
            if definition(model, vs, &host).is_none() && model.all_destination_rules(&host).is_empty() {
                continue;
            }
            let declared = model.destination_rule(&caller, &host, &service_namespace(&host)).is_some_and(|e| e.subset_owner(subset).is_some());
            if declared {
                continue;
            }
            let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
            if let Some(f) = dr_shadowed(model, &caller, vs, &host, subset) {
                out.push(f);
                continue;
            }
            let (reason, fix) = why_undeclared(model, &caller, &host, subset);
            out.push(
                undeclared_subset(vs, &host, subset, d.role == DestinationRole::Mirror, &reason)
                    .evidence([format!("{me} {}.subset: {subset}", d.path)])
                    .fix(fix),
            );
        }
    }
}

/// The caller's routes name subsets its effective DestinationRule does not declare.
pub fn subset_not_declared(model: &Model<'_>, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let (Some(vh), Some(vs)) = (&pv.virtual_host, pi.winner) else { continue };
        for route in &vh.routes {
            // A delegate's own destinations are reported on the delegate by the object check.
            if route.rule_index.and_then(|i| vs.spec.http.get(i)).is_some_and(|r| r.delegate.is_some()) {
                continue;
            }
            let total: u64 = route.action.clusters().map(|c| u64::from(c.weight)).sum();
            for wc in route.action.clusters() {
                let Some(cv) = ctx.intent.view.clusters.get(&wc.name) else { continue };
                let Some(name) = ClusterName::parse(&wc.name) else { continue };
                if cv.present || name.subset.is_empty() || !model.registry.has_port(&name.host, name.port) {
                    continue;
                }
                let proxy_evidence = ctx.actual.and_then(|a| a.view.as_ref()).map(|actual| {
                    let state = if actual.clusters.get(&wc.name).is_some_and(|c| c.present) { "present (unexpected)" } else { "absent" };
                    format!("{}: cluster {} {state}", ctx.caller.display(), wc.name)
                });
                if let Some(f) = dr_shadowed(model, ctx.caller, vs, &name.host, &name.subset) {
                    out.push(f.evidence(proxy_evidence));
                    continue;
                }
                let (reason, fix) = why_undeclared(model, ctx.caller, &name.host, &name.subset);
                let share = if total > 0 && route.action.clusters().count() > 1 {
                    format!(" That is {}% of the requests this route takes.", u64::from(wc.weight) * 100 / total)
                } else {
                    String::new()
                };
                let rule = route.rule_index;
                let mut evidence = vec![format!("{} destination subset {}", rule_at(vs, rule), name.subset)];
                evidence.extend(proxy_evidence);
                let mut f = undeclared_subset(vs, &name.host, &name.subset, false, &reason).evidence(evidence).fix(fix);
                f.detail.push_str(&share);
                out.push(f);
            }
        }
    }
}

/// DestinationRule subsets whose labels select no pod (IST0173), or only pods that are not
/// ready.
pub fn subset_no_endpoints(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for dr in &model.objects.destination_rules {
        let host = dr_host(dr);
        let service =
            host.strip_suffix(DEFAULT_DOMAIN).and_then(|h| h.strip_suffix(".svc.")).and_then(|h| h.split_once('.')).filter(|(_, ns)| !ns.contains('.'));
        let Some(svc) = service.and_then(|(name, ns)| model.objects.service(ns, name)) else { continue };
        let target = Target::from_service(svc);
        let in_scope = match scope {
            Scope::Service(t) => t.fqdn == host,
            Scope::Mesh(_) => scope.namespace(&dr.meta.namespace),
        };
        if !in_scope {
            continue;
        }
        for subset in &dr.spec.subsets {
            let Some(pods) = endpoints::subset_pods(model, &target, &subset.labels) else { continue };
            if !pods.ready.is_empty() {
                continue;
            }
            out.push(empty_subset(model, dr, &target, &subset.name, &subset.labels, &pods));
        }
    }
}

fn empty_subset(
    model: &Model<'_>,
    dr: &Resource<DestinationRule>,
    target: &Target,
    subset: &str,
    labels: &crate::istio::PackedLabels,
    pods: &endpoints::SubsetPods,
) -> Finding {
    let routed =
        model.objects.virtual_services.iter().any(|vs| {
            vs.spec.destinations().iter().any(|d| d.destination.subset.as_deref() == Some(subset) && destination_host(vs, d.destination) == target.fqdn)
        });
    let label_text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let consequence = if routed { ", so requests routed to it fail with 503 (UH)" } else { "" };
    let me = named("DestinationRule", &dr.meta.namespace, &dr.meta.name);
    let (summary, detail) = if pods.selected.is_empty() {
        (
            format!("subset `{subset}` of {} selects no pod{consequence}", target.name),
            format!(
                "The subset's labels [{}] match none of the pods of Service {}/{} (node topology labels included). Pods: {}.",
                label_text.join(", "),
                target.namespace,
                target.name,
                if pods.others.is_empty() { "none".to_string() } else { pods.others.join("; ") }
            ),
        )
    } else {
        (
            format!("subset `{subset}` of {} selects only pods that are not ready{consequence}", target.name),
            format!(
                "The subset's labels [{}] select {}, and none of them is ready, so Envoy holds no healthy endpoint for it.",
                label_text.join(", "),
                pods.selected.join(", ")
            ),
        )
    };
    let mut f = Finding::new("subset-no-endpoints", if routed { Severity::Error } else { Severity::Warning }, dr.reference("DestinationRule"), summary)
        .detail(detail)
        .evidence([format!("{me} spec.subsets[name={subset}].labels: {{{}}}", label_text.join(", "))])
        .fix(format!(
            "make the subset's labels match the pods' labels (kubectl get pods -n {} -l {} --show-labels), or deploy pods with those labels",
            target.namespace,
            label_text.join(",")
        ));
    if pods.selected.is_empty() {
        f = f.code("IST0173");
    }
    f
}

/// Subsets the caller's routes to the target name.
fn routed_subsets(target: &Target, ctx: &CallerContext<'_>) -> BTreeSet<String> {
    ctx.intent
        .view
        .ports
        .iter()
        .flat_map(|p| p.virtual_host.iter())
        .flat_map(|vh| &vh.routes)
        .flat_map(|r| r.action.clusters())
        .filter_map(|c| ClusterName::parse(&c.name))
        .filter(|c| c.host == target.fqdn && !c.subset.is_empty())
        .map(|c| c.subset)
        .collect()
}

/// Why `dr` is not the rule in effect for the caller.
fn why_not_in_effect(model: &Model<'_>, caller_ns: &str, service_ns: &str, dr: &Resource<DestinationRule>, effective: Option<&EffectiveRule<'_>>) -> String {
    let root = &model.objects.mesh.root_namespace;
    let ns = &dr.meta.namespace;
    if ns != caller_ns && ns != service_ns && ns != root {
        return format!(
            "istiod looks for DestinationRules only in the caller's namespace ({caller_ns}), the service's ({service_ns}) and the root namespace ({root}); {ns} is none of them"
        );
    }
    match effective.map(|e| e.primary()) {
        Some(e) if e.meta.namespace != *ns => format!(
            "{} in namespace {} is found first (caller's namespace, then the service's, then the root namespace) and wins",
            named("DestinationRule", &e.meta.namespace, &e.meta.name),
            e.meta.namespace
        ),
        Some(e) => format!("{} has a more specific host ({} over {})", named("DestinationRule", &e.meta.namespace, &e.meta.name), dr_host(e), dr_host(dr)),
        None => "no rule is in effect".into(),
    }
}

/// Several DestinationRules could apply to the target and the one in effect is not the one
/// that carries the policy or subsets (unless a missing routed subset already explains it).
pub fn dr_conflict(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let caller = ctx.caller;
    let effective = model.destination_rule(caller, &target.fqdn, &target.namespace);
    let routed = routed_subsets(target, ctx);
    let in_effect = |dr: &Resource<DestinationRule>| effective.as_ref().is_some_and(|e| e.rules.iter().any(|r| std::ptr::eq(*r, dr)));
    let declared = |s: &str| effective.as_ref().is_some_and(|e| e.subset_owner(s).is_some());
    let candidates = model.all_destination_rules(&target.fqdn).into_iter().filter(|dr| {
        exported_to(&dr.spec.export_to, &model.objects.mesh.default_destination_rule_export_to, &dr.meta.namespace, &caller.namespace)
            && dr.spec.workload_selector.as_ref().is_none_or(|s| s.labels.is_empty())
            // A wildcard rule in the root namespace is a mesh-wide default, meant to give way.
            && !(dr.meta.namespace == model.objects.mesh.root_namespace && dr_host(dr).contains('*'))
    });
    for dr in candidates.filter(|dr| !in_effect(dr)) {
        let explains_missing_subset = dr.spec.subsets.iter().any(|s| routed.contains(&s.name) && !declared(&s.name));
        let loses_something = dr.spec.traffic_policy.is_some() || dr.spec.subsets.iter().any(|s| !declared(&s.name));
        if explains_missing_subset || !loses_something {
            continue;
        }
        let why = why_not_in_effect(model, &caller.namespace, &target.namespace, dr, effective.as_ref());
        out.push(ignored_rule(dr, target, &caller.namespace, &why));
    }
    if let Some(e) = effective.as_ref().filter(|e| e.rules.len() > 1) {
        for dr in e.rules.iter().skip(1).filter(|dr| dr.spec.traffic_policy.is_some()) {
            let first = e.rules.iter().find(|r| r.spec.traffic_policy.is_some()).copied().unwrap_or(e.primary());
            if std::ptr::eq(first, *dr) {
                continue;
            }
            let why = format!(
                "it is merged with {} for the same host, and only the first rule's trafficPolicy is used",
                named("DestinationRule", &first.meta.namespace, &first.meta.name)
            );
            out.push(ignored_rule(dr, target, &caller.namespace, &why));
        }
    }
}

fn ignored_rule(dr: &Resource<DestinationRule>, target: &Target, caller_ns: &str, why: &str) -> Finding {
    let me = named("DestinationRule", &dr.meta.namespace, &dr.meta.name);
    let subsets: Vec<&str> = dr.spec.subsets.iter().map(|s| s.name.as_str()).collect();
    Finding::new(
        "dr-conflict",
        Severity::Warning,
        dr.reference("DestinationRule"),
        format!("{me} does not apply to traffic for {} from namespace {caller_ns}: {why}", target.name),
    )
    .detail(format!(
        "Its {}{} are not used for those callers; the rule in effect decides load balancing, connection pool, outlier detection, TLS and subsets.",
        if dr.spec.traffic_policy.is_some() { "trafficPolicy and " } else { "" },
        if subsets.is_empty() { "settings".to_string() } else { format!("subsets [{}]", subsets.join(", ")) }
    ))
    .evidence([format!("{me} spec.host: {}, exportTo: [{}]", dr.spec.host, dr.spec.export_to.join(", "))])
    .fix(format!("keep one DestinationRule per host: move these settings into the rule in effect, or delete the other rule; check with `istioctl x describe service {}.{}`", target.name, target.namespace))
}

/// A DestinationRule originating TLS (SIMPLE or MUTUAL) without a CA to verify the server
/// (IST0128 for the rule, IST0129 for a port): the connection is encrypted but the server is
/// not authenticated, so a man in the middle goes unnoticed.
pub fn tls_origination_unverified(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for dr in &model.objects.destination_rules {
        let in_scope = match scope {
            Scope::Service(t) => dr_host(dr) == t.fqdn,
            Scope::Mesh(_) => scope.namespace(&dr.meta.namespace),
        };
        let Some(policy) = dr.spec.traffic_policy.as_ref().filter(|_| in_scope) else { continue };
        let selected = dr.spec.workload_selector.is_some();
        let me = named("DestinationRule", &dr.meta.namespace, &dr.meta.name);
        let levels = std::iter::once((None, &policy.blocks))
            .chain(policy.port_level_settings.iter().map(|p| (Some(p.port.as_ref().map_or(0, |p| p.number)), &p.blocks)));
        for (port, blocks) in levels {
            let Some(tls) = blocks.tls.as_ref().filter(|t| t.unverified_origination(selected)) else { continue };
            let mode = tls.mode.as_deref().unwrap_or_default();
            let (code, at, field) = match port {
                None => ("IST0128", format!("host {}", dr.spec.host), "spec.trafficPolicy.tls".to_string()),
                Some(p) => ("IST0129", format!("host {} port {p}", dr.spec.host), format!("spec.trafficPolicy.portLevelSettings[port {p}].tls")),
            };
            out.push(
                Finding::new("tls-origination-unverified", Severity::Warning, dr.reference("DestinationRule"), format!("{me} originates {mode} TLS to {at} without verifying the server's certificate"))
                    .code(code)
                    .detail("With mode SIMPLE or MUTUAL and no caCertificates, the sidecar encrypts the connection but accepts any server certificate: a redirected or intercepted connection is not detected.")
                    .evidence([format!("{me} {field}: mode {mode}, caCertificates unset")])
                    .fix(format!("set {field}.caCertificates to the CA bundle that signed the server (or caCertCredentialName, or credentialName with a workloadSelector for a gateway), and sni to the server's name")),
            );
        }
    }
}
