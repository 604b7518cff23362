//! Ambient mode: L7 rules that no waypoint applies (none bound, or one that does not take
//! service traffic), rules a waypoint ignores (VirtualServices outside its namespaces,
//! `sourceLabels` matches), and callers that go around the waypoint (ingress gateways without
//! `istio.io/ingress-use-waypoint`, sidecars).

use super::gateway_api::{backends, in_scope, istio_parents, me, negative};
use super::gateways::bound_gateways;
use super::routing::bound_to_mesh;
use super::{Scope, destination_host, named};
use crate::actual::ztunnel::ZtunnelView;
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::target::{CallerKind, SidecarState, Target};
use crate::istio::DestinationRole;
use crate::istio::VirtualService;
use crate::istio::ambient::{WAYPOINT_FOR, WaypointBinding, namespace_is_ambient};
use crate::istio::names::DEFAULT_DOMAIN;
use crate::model::Model;
use crate::model::virtual_services::vs_hosts;
use crate::model::waypoints::ServiceWaypoint;
use crate::snapshot::{Meta, ObjectRef, ProxyCapture, Resource, Service};
use std::collections::{BTreeMap, BTreeSet};

/// Why no waypoint applies the Service's L7 rules, as a finding id, the reason and the fix;
/// `None` when its waypoint takes service traffic (or whether it does cannot be told).
fn unapplied(model: &Model<'_>, svc: &Resource<Service>, waypoint: &ServiceWaypoint<'_>) -> Option<(&'static str, String, String)> {
    let (ns, name) = (&svc.meta.namespace, &svc.meta.name);
    match &waypoint.binding {
        WaypointBinding::Unbound => match model.waypoints().find(|g| &g.meta.namespace == ns) {
            Some(w) => Some((
                "waypoint-not-bound",
                format!("waypoint {ns}/{} exists, but neither the Service nor namespace {ns} has the istio.io/use-waypoint label", w.meta.name),
                format!("bind the Service to it: `kubectl label service -n {ns} {name} istio.io/use-waypoint={}` (or label the namespace)", w.meta.name),
            )),
            None => Some((
                "l7-rule-without-waypoint",
                "neither the Service nor its namespace has the istio.io/use-waypoint label".into(),
                format!(
                    "deploy a waypoint (`istioctl waypoint apply -n {ns}`) and bind the Service to it: `kubectl label service -n {ns} {name} istio.io/use-waypoint=waypoint`"
                ),
            )),
        },
        WaypointBinding::OptedOut => Some((
            "l7-rule-without-waypoint",
            "the Service opts out with istio.io/use-waypoint=none".into(),
            format!("remove the opt-out (`kubectl label service -n {ns} {name} istio.io/use-waypoint-`) so the namespace's waypoint serves it"),
        )),
        WaypointBinding::Bound { namespace, name: w, via } => match waypoint.gateway {
            // Without Gateways in the snapshot a missing one could just be unread.
            None if model.objects.gateways.is_empty() => None,
            None => Some((
                "l7-rule-without-waypoint",
                format!("the {via}'s istio.io/use-waypoint names waypoint {namespace}/{w}, which does not exist"),
                format!("deploy it (`istioctl waypoint apply -n {namespace} --name {w}`) or fix the label"),
            )),
            Some(_) if !waypoint.carries_service_traffic() => Some((
                "waypoint-for-excludes-service",
                format!("its waypoint {namespace}/{w} has istio.io/waypoint-for={}, so it takes no traffic addressed to Services", waypoint.waypoint_for()),
                format!("let the waypoint take service traffic: `kubectl label gateway -n {namespace} {w} {WAYPOINT_FOR}=service --overwrite` (or `all`)"),
            )),
            Some(_) => None,
        },
    }
}

/// The detail each id of [`unapplied`] shares.
const L7_IN_WAYPOINT_ONLY: &str = "In ambient mode HTTP routing happens only in the waypoint of the destination; without one that takes the Service's traffic, the caller's ztunnel forwards connections straight to the Service's pods at L4 and no HTTPRoute or VirtualService rule applies.";

/// An L7 rule (an HTTPRoute with a Service parent, or a mesh VirtualService in the Service's
/// namespace) for a Service in an ambient namespace that no waypoint applies: none is bound,
/// the bound one does not exist, or it does not take service traffic.
pub fn l7_rules_without_waypoint(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    let mut report = |svc: &Resource<Service>, subject: ObjectRef, rule: String, status: Vec<String>, vs: bool| {
        if !namespace_is_ambient(objects, &svc.meta.namespace) {
            return;
        }
        let waypoint = model.service_waypoint(&svc.meta);
        let Some((id, why, fix)) = unapplied(model, svc, &waypoint) else { return };
        // A VirtualService also serves sidecar callers: only a waypoint that exists but does
        // not take the traffic is a cause there, not an ambient namespace without one.
        if vs && id == "l7-rule-without-waypoint" {
            return;
        }
        let host = format!("{}.{}.svc.{DEFAULT_DOMAIN}", svc.meta.name, svc.meta.namespace);
        let mut evidence =
            vec![format!("Namespace {} istio.io/dataplane-mode=ambient; Service {}/{}: {why}", svc.meta.namespace, svc.meta.namespace, svc.meta.name)];
        evidence.extend(status);
        out.push(
            Finding::new(id, Severity::Error, subject, format!("{rule} is ignored: {host} is in ambient mode and {why}"))
                .detail(L7_IN_WAYPOINT_ONLY)
                .evidence(evidence)
                .fix(fix),
        );
    };
    for route in objects.routes.iter().filter(|r| in_scope(r, scope)) {
        for parent in route.spec.spec.parent_refs.iter().filter(|p| p.kind() == "Service") {
            let Some(svc) = objects.service(parent.namespace(&route.meta.namespace), &parent.name) else { continue };
            let status = istio_parents(route)
                .filter_map(|p| negative(p, "ResolvedWaypoints"))
                .map(|c| format!("status ResolvedWaypoints=False: {}", c.message))
                .collect();
            report(svc, route.reference(route.spec.kind.as_str()), me(route), status, false);
        }
    }
    for vs in scope.virtual_services(model).into_iter().filter(|vs| bound_to_mesh(vs) && !vs.spec.http.is_empty()) {
        for (svc, _) in vs_hosts(vs).into_iter().filter_map(|h| model.host_waypoint(&h)).filter(|(s, _)| s.meta.namespace == vs.meta.namespace) {
            report(svc, vs.reference("VirtualService"), named("VirtualService", &vs.meta.namespace, &vs.meta.name), Vec::new(), true);
        }
    }
}

/// Each Service a mesh VirtualService claims that is served by a waypoint taking service
/// traffic, with that waypoint's namespace.
fn waypoint_served<'a>(model: &Model<'a>, vs: &'a Resource<VirtualService>) -> impl Iterator<Item = (&'a Resource<Service>, String)> + 'a {
    let served: Vec<_> = vs_hosts(vs)
        .into_iter()
        .filter_map(|h| model.host_waypoint(&h))
        .filter_map(|(s, w)| Some((s, w.gateway.filter(|_| w.carries_service_traffic())?.meta.namespace.clone())))
        .collect();
    served.into_iter()
}

/// A mesh VirtualService for a waypoint-served Service in a namespace that is neither the
/// Service's nor the waypoint's: the waypoint never reads it (it did for sidecars).
pub fn vs_ignored_by_waypoint(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    for vs in scope.virtual_services(model).into_iter().filter(|vs| bound_to_mesh(vs)) {
        for (svc, waypoint_ns) in waypoint_served(model, vs) {
            let (ns, name) = (&svc.meta.namespace, &svc.meta.name);
            if vs.meta.namespace == *ns || vs.meta.namespace == waypoint_ns {
                continue;
            }
            let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
            // Ambient callers in the VirtualService's namespace lose its rules; sidecar callers keep them.
            let severity = if namespace_is_ambient(objects, &vs.meta.namespace) { Severity::Error } else { Severity::Warning };
            out.push(
                Finding::new("vs-ignored-by-waypoint", severity, vs.reference("VirtualService"), format!("{me} is ignored for {name}.{ns}: its waypoint reads VirtualServices only from namespace {ns} and its own namespace {waypoint_ns}"))
                    .detail("A waypoint applies the VirtualServices of the destination Service's namespace and of the waypoint's own namespace (istiod's getVirtualServiceForWaypoint). A VirtualService kept in the callers' namespace, as was common with sidecars, still applies to sidecar callers but not to traffic through the waypoint.")
                    .evidence([format!("{me} in namespace {}; Service {ns}/{name} is served by a waypoint in namespace {waypoint_ns}", vs.meta.namespace)])
                    .fix(format!("move {me} to namespace {ns} (the Service's), keeping its hosts fully qualified")),
            );
        }
    }
}

/// A `sourceLabels` match in a VirtualService a waypoint applies: istiod drops the match
/// (ambient has no source workload labels at the waypoint), so the rule never takes it.
pub fn waypoint_source_labels_dropped(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model).into_iter().filter(|vs| bound_to_mesh(vs)) {
        let dropped: Vec<String> = vs
            .spec
            .http
            .iter()
            .enumerate()
            .flat_map(|(i, rule)| {
                rule.matches.iter().enumerate().filter(|(_, m)| !m.source_labels.is_empty()).map(move |(j, _)| format!("spec.http[{i}].match[{j}]"))
            })
            .collect();
        if dropped.is_empty() {
            continue;
        }
        for (svc, waypoint_ns) in waypoint_served(model, vs) {
            if vs.meta.namespace != svc.meta.namespace && vs.meta.namespace != waypoint_ns {
                continue;
            }
            let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
            out.push(
                Finding::new(
                    "waypoint-source-labels-dropped",
                    Severity::Warning,
                    vs.reference("VirtualService"),
                    format!("{me}: {} with sourceLabels never match{} in the waypoint of {}.{}", dropped.join(", "), if dropped.len() == 1 { "es" } else { "" }, svc.meta.name, svc.meta.namespace),
                )
                .detail("A waypoint does not know which workload sent a request by labels, so istiod drops every match that has sourceLabels from the waypoint's routes (since 1.25; before, they were matched against the waypoint's own labels and never applied). Requests fall through to the next rule.")
                .evidence(dropped.iter().map(|m| format!("{me} {m} has sourceLabels")))
                .fix("match on something the request carries (a header the caller sets), or authorize by identity with an AuthorizationPolicy targeting the waypoint"),
            );
        }
    }
}

/// Ingress gateways route to a waypoint-served Service whose L7 rules live in the waypoint,
/// without `istio.io/ingress-use-waypoint`: ingress traffic goes straight to the pods.
pub fn ingress_bypasses_waypoint(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    // The hosts ingress routes send to, each with the routes: one pass over the gateway-bound
    // VirtualServices and the Gateway-attached routes.
    let mut ingress: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for vs in model.objects.ingress_virtual_services.iter().chain(&model.objects.virtual_services).filter(|vs| !bound_gateways(vs).is_empty()) {
        for d in vs.spec.destinations().into_iter().filter(|d| d.role == DestinationRole::HttpRoute) {
            ingress.entry(destination_host(vs, d.destination)).or_default().insert(named(vs.spec.source_kind(), &vs.meta.namespace, &vs.meta.name));
        }
    }
    for route in model.objects.routes.iter().filter(|r| r.spec.spec.parent_refs.iter().any(|p| p.kind() == "Gateway")) {
        for (_, _, b) in backends(route).filter(|(_, _, b)| b.kind() == "Service") {
            let ns = b.namespace.as_deref().unwrap_or(&route.meta.namespace);
            ingress.entry(format!("{}.{ns}.svc.{DEFAULT_DOMAIN}", b.name)).or_default().insert(me(route));
        }
    }
    for (host, routes) in ingress {
        let Some((svc, waypoint)) = model.host_waypoint(&host) else { continue };
        let in_scope = match scope {
            Scope::Service(t) => t.fqdn == host,
            Scope::Mesh(_) => scope.namespace(&svc.meta.namespace),
        };
        let (true, true, Some(w)) = (in_scope, waypoint.carries_service_traffic(), waypoint.name()) else { continue };
        if model.ingress_uses_waypoint(&svc.meta) {
            continue;
        }
        let layer7 = l7_in_waypoint(model, &svc.meta, &host);
        if layer7.is_empty() {
            continue;
        }
        let (ns, name) = (&svc.meta.namespace, &svc.meta.name);
        out.push(
            Finding::new(
                "ingress-bypasses-waypoint",
                Severity::Warning,
                ObjectRef::new("Service", ns, name),
                format!("ingress traffic to {name}.{ns} skips its waypoint {w}, so the routes of {} do not apply to it", layer7.join(", ")),
            )
            .detail("Ingress gateways send to a Service's pods directly, not through its waypoint, unless the Service (or, from Istio 1.25, its namespace) has istio.io/ingress-use-waypoint=true. Routing and policy the waypoint applies then hold for mesh callers only.")
            .evidence(routes.iter().map(|r| format!("{r} routes ingress traffic to {name}.{ns}")).chain([format!("Service {ns}/{name}: istio.io/use-waypoint resolves to {w}; no istio.io/ingress-use-waypoint=true on it or its namespace")]))
            .fix(format!("`kubectl label service -n {ns} {name} istio.io/ingress-use-waypoint=true`, so ingress traffic goes through the waypoint")),
        );
    }
}

/// The L7 rules the Service's waypoint applies: mesh VirtualServices in its namespaces and
/// HTTPRoutes with the Service as parent.
fn l7_in_waypoint(model: &Model<'_>, svc: &Meta, fqdn: &str) -> Vec<String> {
    let waypoint_ns = model.service_waypoint(svc).gateway.map(|g| g.meta.namespace.clone());
    let mut out: Vec<String> = model
        .objects
        .virtual_services
        .iter()
        .filter(|vs| bound_to_mesh(vs) && !vs.spec.http.is_empty())
        .filter(|vs| vs.meta.namespace == svc.namespace || Some(&vs.meta.namespace) == waypoint_ns.as_ref())
        .filter(|vs| vs_hosts(vs).iter().any(|h| h == fqdn))
        .map(|vs| named("VirtualService", &vs.meta.namespace, &vs.meta.name))
        .collect();
    for route in &model.objects.routes {
        if route.spec.spec.parent_refs.iter().any(|p| p.kind() == "Service" && p.name == svc.name && p.namespace(&route.meta.namespace) == svc.namespace) {
            out.push(me(route));
        }
    }
    out
}

/// A sidecar caller of a waypoint-served Service: sidecars send straight to the pods, so the
/// waypoint's routes and policies do not apply to its requests.
pub fn sidecar_bypasses_waypoint(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    if ctx.caller.kind != CallerKind::Sidecar || ctx.caller.hypothetical || matches!(ctx.caller.sidecar, SidecarState::Missing(_)) {
        return;
    }
    let Some(svc) = model.objects.service(&target.namespace, &target.name) else { return };
    let waypoint = model.service_waypoint(&svc.meta);
    let (true, Some(w)) = (waypoint.carries_service_traffic(), waypoint.name()) else { return };
    let me = ctx.caller.display();
    out.push(
        Finding::new("sidecar-bypasses-waypoint", Severity::Info, ctx.caller.reference(), format!("requests from {me} skip waypoint {w}: its sidecar routes them straight to the pods of {}.{}", target.name, target.namespace))
            .detail("Sidecars never send to waypoints: a sidecar caller applies the VirtualServices it sees itself, and policies attached to the waypoint (AuthorizationPolicies with targetRefs, waypoint-only routes) do not apply to its requests.")
            .evidence([format!("{me} runs a sidecar; Service {}/{} uses waypoint {w}", target.namespace, target.name)])
            .fix(format!("move the caller to ambient mode (remove sidecar injection from namespace {} and label it istio.io/dataplane-mode=ambient), or enforce the policy in the sidecars too", ctx.caller.namespace)),
    );
}

/// A node's ztunnel disagrees with the objects on the service's waypoint: it sends straight to
/// the pods while istiod binds a waypoint, still sends to a waypoint the objects no longer bind,
/// or sends to another address than the waypoint's Service.
pub fn ztunnel_waypoint_stale(model: &Model<'_>, target: &Target, ztunnel: &ProxyCapture, view: &ZtunnelView, out: &mut Vec<Finding>) {
    let (Some(entry), Some(svc)) = (&view.service, model.objects.service(&target.namespace, &target.name)) else { return };
    // Without the Gateways a missing waypoint could just be unread.
    if model.objects.gateways.is_empty() {
        return;
    }
    let waypoint = model.service_waypoint(&svc.meta);
    let expected = waypoint.gateway.filter(|_| waypoint.carries_service_traffic());
    let me = format!("ztunnel {}/{}", ztunnel.namespace, ztunnel.pod);
    let (ns, name) = (&target.namespace, &target.name);
    let problem = match (expected, &entry.waypoint) {
        (Some(g), None) => format!("{me} sends {name}.{ns} straight to its pods, but the objects bind it to waypoint {}/{}", g.meta.namespace, g.meta.name),
        (None, Some(w)) => format!("{me} still sends {name}.{ns} to a waypoint ({w}), but the objects bind it to none that takes service traffic"),
        (Some(g), Some(w)) => {
            let address = model.objects.service(&g.meta.namespace, &g.meta.name).and_then(|s| s.spec.spec.as_ref()?.cluster_ip.clone());
            match address {
                Some(ip) if w.parse::<std::net::IpAddr>().is_ok() && *w != ip => {
                    format!("{me} sends {name}.{ns} to {w}, not to waypoint {}/{} at {ip}", g.meta.namespace, g.meta.name)
                }
                _ => return,
            }
        }
        (None, None) => return,
    };
    let objects_say = match waypoint.name() {
        Some(w) => format!("Service {ns}/{name}: istio.io/use-waypoint resolves to {w} (istio.io/waypoint-for={})", waypoint.waypoint_for()),
        None => format!("Service {ns}/{name}: no waypoint binding"),
    };
    out.push(
        Finding::new("ztunnel-waypoint-stale", Severity::Error, ObjectRef::new("Pod", &ztunnel.namespace, &ztunnel.pod), problem)
            .detail("ztunnel learns each service's waypoint from istiod (WDS). When its copy differs from what the objects imply, connections from ambient callers on its node skip the waypoint (and its routes) or go to one that no longer applies: istiod has not pushed, or the push was rejected.")
            .evidence([format!("{me} service {}: waypoint {}", entry.hostname, entry.waypoint.as_deref().unwrap_or("(none)")), objects_say])
            .fix(format!("compare with `istioctl ztunnel-config service --node <node>` and istiod's logs; restarting the ztunnel pod ({}) forces a fresh push", ztunnel.pod)),
    );
}
