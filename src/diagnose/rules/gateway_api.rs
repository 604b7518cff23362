//! Gateway API routes: did istiod accept them (status conditions, in plain words), do their
//! backends resolve, is the status current, and can a rule carry traffic at all.

use super::{Scope, named};
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::target::Target;
use crate::istio::VirtualService;
use crate::istio::gateway_api::{BackendRef, Condition, ISTIO_CONTROLLER, ParentRef, ParentStatus, Route};
use crate::model::Model;
use crate::snapshot::{Objects, Resource};

/// True when the route concerns the scope: for one service, a mesh parent, a backend or a
/// hostname is that service.
pub(super) fn in_scope(route: &Resource<Route>, scope: Scope<'_>) -> bool {
    match scope {
        Scope::Service(t) => {
            let ns = &route.meta.namespace;
            route.spec.spec.parent_refs.iter().any(|p| p.kind() == "Service" && p.name == t.name && p.namespace(ns) == t.namespace)
                || backends(route).any(|(_, _, b)| b.kind() == "Service" && b.name == t.name && b.namespace.as_deref().unwrap_or(ns) == t.namespace)
                || route.spec.spec.hostnames.iter().any(|h| h == &t.fqdn)
        }
        Scope::Mesh(_) => scope.namespace(&route.meta.namespace),
    }
}

/// Every backendRef with its rule and position.
pub(super) fn backends(route: &Resource<Route>) -> impl Iterator<Item = (usize, usize, &BackendRef)> {
    route.spec.spec.rules.iter().enumerate().flat_map(|(r, rule)| rule.backend_refs.iter().enumerate().map(move |(b, backend)| (r, b, backend)))
}

/// istiod's status entries, each with the spec parentRef it answers.
pub(super) fn istio_parents(route: &Resource<Route>) -> impl Iterator<Item = &ParentStatus> {
    route.spec.status.parents.iter().filter(|p| p.controller_name == ISTIO_CONTROLLER)
}

/// The condition `kind` of a status entry when it is `False`.
pub(super) fn negative<'a>(parent: &'a ParentStatus, kind: &str) -> Option<&'a Condition> {
    parent.conditions.iter().find(|c| c.kind == kind && c.status == "False")
}

/// `HTTPRoute ns/name`.
pub(super) fn me(route: &Resource<Route>) -> String {
    named(route.spec.kind.as_str(), &route.meta.namespace, &route.meta.name)
}

/// Plain words and a fix for each reason istiod gives for `Accepted=False`
/// (`pilot/pkg/config/kube/gateway/conditions.go`).
fn not_accepted_words(reason: &str, parent: &ParentRef, route_ns: &str) -> (&'static str, String) {
    let who = parent.display(route_ns);
    match reason {
        "NotAllowedByListeners" => (
            "the Gateway's listeners do not allow routes from this namespace or of this kind (listeners[].allowedRoutes)",
            format!(
                "on {who}, set listeners[].allowedRoutes.namespaces.from to All or Selector matching namespace {route_ns} (default is Same), and allowedRoutes.kinds to include this kind"
            ),
        ),
        "NoMatchingListenerHostname" => (
            "none of the route's hostnames is served by the Gateway's listeners (listeners[].hostname)",
            format!("make spec.hostnames intersect the listener hostname of {who}, or widen that listener's hostname"),
        ),
        "NoMatchingParent" => (
            "the parent does not exist, or its sectionName or port names no listener (or, for a Service parent, no port of the Service)",
            format!(
                "check that {who} exists (`kubectl get` it) and that parentRefs[].sectionName / port match a listener name / port (a Service port for mesh routes)"
            ),
        ),
        "ParentRefConflict" => ("another parentRef of the route names the same parent", "keep one parentRef per parent and listener".to_string()),
        _ => ("istiod did not accept the route for this parent", format!("read the condition's message and fix parentRefs to {who}")),
    }
}

/// A route whose parent did not accept it (IST0171): its rules are installed nowhere for that
/// parent.
pub fn route_not_accepted(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    for route in objects.routes.iter().filter(|r| in_scope(r, scope)) {
        for parent in istio_parents(route) {
            let Some(cond) = negative(parent, "Accepted") else { continue };
            let (why, fix) = not_accepted_words(&cond.reason, &parent.parent_ref, &route.meta.namespace);
            let who = parent.parent_ref.display(&route.meta.namespace);
            out.push(
                Finding::new("route-not-accepted", Severity::Error, route.reference(route.spec.kind.as_str()), format!("{} is not accepted by {who}: {why}", me(route)))
                    .code("IST0171")
                    .detail(format!("istiod compiles a route into Envoy routes only for the parents that accept it; for {who} this route is installed on no proxy, so requests fall through to other routes or the default."))
                    .evidence([format!("{} status.parents[{who}] Accepted=False reason {}: {}", me(route), cond.reason, cond.message)])
                    .fix(fix),
            );
        }
    }
}

/// Why a backendRef cannot carry traffic, read from the objects (istiod's `buildDestination`):
/// cross-namespace without a ReferenceGrant, a missing Service, a port the Service lacks.
fn backend_problem(objects: &Objects, route: &Resource<Route>, b: &BackendRef) -> Option<(String, String)> {
    let ns = &route.meta.namespace;
    let to_ns = b.namespace.as_deref().unwrap_or(ns);
    if b.kind() != "Service" || !b.group().is_empty() {
        return None;
    }
    let kind = route.spec.kind.as_str();
    if to_ns != ns && !objects.reference_grants.iter().any(|g| g.meta.namespace == to_ns && g.spec.permits(kind, ns, "", "Service", &b.name)) {
        return Some((
            format!("Service {to_ns}/{} is in another namespace and no ReferenceGrant in {to_ns} allows {kind}s from {ns} to refer to it", b.name),
            format!(
                "create in {to_ns}:\n  apiVersion: gateway.networking.k8s.io/v1beta1\n  kind: ReferenceGrant\n  metadata:\n    name: allow-{ns}-{}\n    namespace: {to_ns}\n  spec:\n    from:\n    - group: gateway.networking.k8s.io\n      kind: {kind}\n      namespace: {ns}\n    to:\n    - group: \"\"\n      kind: Service\n      name: {}",
                kind.to_lowercase(),
                b.name
            ),
        ));
    }
    // Without any Service of that namespace the snapshot did not capture it: say nothing.
    if !objects.services.iter().any(|s| s.meta.namespace == to_ns) {
        return None;
    }
    let Some(svc) = objects.service(to_ns, &b.name) else {
        return Some((
            format!("Service {to_ns}/{} does not exist", b.name),
            format!("create Service {to_ns}/{} or name an existing one in backendRefs", b.name),
        ));
    };
    let ports: Vec<i32> = svc.spec.spec.iter().flat_map(|s| s.ports.iter().flatten()).map(|p| p.port).collect();
    match b.port {
        Some(p) if !ports.contains(&(p as i32)) => Some((
            format!("Service {to_ns}/{} has no port {p} (it has {ports:?})", b.name),
            format!("set backendRefs[].port to one of the Service's ports {ports:?}"),
        )),
        None => Some((format!("no port is given for Service {to_ns}/{}", b.name), "set backendRefs[].port: a Service backend needs one".into())),
        _ => None,
    }
}

/// A backendRef that does not resolve (IST0171 when istiod reported `ResolvedRefs=False`):
/// istiod keeps it with an empty destination, so its share of traffic fails with 500.
pub fn route_backend_unresolved(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    for route in objects.routes.iter().filter(|r| in_scope(r, scope)) {
        let status: Vec<&Condition> = istio_parents(route).filter_map(|p| negative(p, "ResolvedRefs")).collect();
        let mut found = false;
        for (r, i, b) in backends(route) {
            let Some((why, fix)) = backend_problem(objects, route, b) else { continue };
            found = true;
            let mut evidence = vec![format!("{} spec.rules[{r}].backendRefs[{i}]: {} {}", me(route), b.kind(), b.name)];
            evidence.extend(status.iter().map(|c| format!("status ResolvedRefs=False reason {}: {}", c.reason, c.message)));
            out.push(
                Finding::new("route-backend-unresolved", Severity::Error, route.reference(route.spec.kind.as_str()), format!("{} sends traffic to a backend that does not resolve: {why}", me(route)))
                    .code("IST0171")
                    .detail("istiod keeps an unresolvable backendRef as a destination that leads nowhere, so the share of requests given to it fails (the Gateway API asks for a 500) while the other backends keep working.")
                    .evidence(evidence)
                    .fix(fix),
            );
        }
        if found {
            continue;
        }
        // istiod said so, but the objects captured do not show why (e.g. a ServiceEntry).
        for c in status {
            out.push(
                Finding::new(
                    "route-backend-unresolved",
                    Severity::Error,
                    route.reference(route.spec.kind.as_str()),
                    format!("{} has backends istiod could not resolve ({})", me(route), c.reason),
                )
                .code("IST0171")
                .detail("istiod keeps an unresolvable backendRef as a destination that leads nowhere, so the share of requests given to it fails.")
                .evidence([format!("{} status ResolvedRefs=False reason {}: {}", me(route), c.reason, c.message)])
                .fix("follow the condition's message: create the backend, fix its kind or port, or add a ReferenceGrant in the backend's namespace"),
            );
        }
    }
}

/// A route whose status is older than its spec: istiod (of this revision) has not processed the
/// latest edit, so what is in force may be the previous version.
pub fn route_status_stale(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    for route in objects.routes.iter().filter(|r| in_scope(r, scope)) {
        let Some(generation) = route.spec.generation else { continue };
        let observed = istio_parents(route).flat_map(|p| &p.conditions).filter_map(|c| c.observed_generation).max();
        let Some(observed) = observed.filter(|o| *o < generation) else { continue };
        out.push(
            Finding::new("route-status-stale", Severity::Warning, route.reference(route.spec.kind.as_str()), format!("{} is at generation {generation} but istiod last reported on generation {observed}", me(route)))
                .detail("istiod writes observedGeneration when it processes a route. An older value means it has not processed the latest edit yet, it is failing, or a different istiod revision owns the route; proxies may still run the previous version.")
                .evidence([format!("{} metadata.generation {generation}, status.parents[].conditions[].observedGeneration {observed}", me(route))])
                .fix("check istiod is running and its logs (`kubectl logs -n istio-system deploy/istiod`); check the route's istio.io/rev label matches the running revision"),
        );
    }
}

/// An HTTP or gRPC rule whose backends all weigh 0 (or that has none) and no redirect:
/// istiod answers every request it matches with a 500.
pub fn route_zero_weight(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    use crate::istio::gateway_api::RouteKind;
    for route in objects.routes.iter().filter(|r| in_scope(r, scope) && matches!(r.spec.kind, RouteKind::Http | RouteKind::Grpc)) {
        for (r, rule) in route.spec.spec.rules.iter().enumerate() {
            if rule.redirects() || rule.backend_refs.iter().any(|b| b.weight() > 0) {
                continue;
            }
            let weights: Vec<String> = rule.backend_refs.iter().map(|b| format!("{} {}", b.name, b.weight())).collect();
            let what = if weights.is_empty() { "no backendRefs".to_string() } else { format!("weights {}", weights.join(", ")) };
            out.push(
                Finding::new("route-zero-weight", Severity::Error, route.reference(route.spec.kind.as_str()), format!("{} rule {r} has {what}, so every request it matches gets a 500", me(route)))
                    .detail("istiod turns a rule whose backend weights add up to 0 (an omitted weight counts as 1) and that does not redirect into a direct 500 response, as the Gateway API specifies.")
                    .evidence([format!("{} spec.rules[{r}].backendRefs: {what}", me(route))])
                    .fix(format!("give at least one backend of spec.rules[{r}] a weight above 0, or remove the rule")),
        );
        }
    }
}

/// A mesh (GAMMA) route whose parentRef port is not a port of the Service: it applies to no
/// request, since istiod adds that port to every match.
pub fn route_parent_port_mismatch(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    for route in objects.routes.iter().filter(|r| in_scope(r, scope)) {
        for (i, parent) in route.spec.spec.parent_refs.iter().enumerate().filter(|(_, p)| p.kind() == "Service") {
            let (Some(port), Some(svc)) = (parent.port, objects.service(parent.namespace(&route.meta.namespace), &parent.name)) else { continue };
            let ports: Vec<i32> = svc.spec.spec.iter().flat_map(|s| s.ports.iter().flatten()).map(|p| p.port).collect();
            if ports.contains(&(port as i32)) {
                continue;
            }
            let who = parent.display(&route.meta.namespace);
            out.push(
                Finding::new("route-parent-port-mismatch", Severity::Error, route.reference(route.spec.kind.as_str()), format!("{} attaches to {who}, but the Service has no port {port}, so it applies to no request", me(route)))
                    .detail("For a Service parent with a port, istiod adds that port to every match of the route; requests reach the Service on its own ports only, so none matches and they take the Service's default route.")
                    .evidence([format!("{} spec.parentRefs[{i}].port {port}; Service ports {ports:?}", me(route))])
                    .fix(format!("set spec.parentRefs[{i}].port to the Service port the clients use ({ports:?}), or drop it to cover every port")),
            );
        }
    }
}

/// A VirtualService and a Gateway API route both claim the service's host for this caller:
/// istiod uses only the first in its precedence order, so the other's rules are ignored here.
pub fn vs_httproute_conflict(target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    for pi in &ctx.intent.ports {
        let Some(winner) = pi.winner else { continue };
        let losers: Vec<&Resource<VirtualService>> =
            pi.candidates.iter().copied().filter(|c| c.spec.gateway_route.is_some() != winner.spec.gateway_route.is_some()).collect();
        if losers.is_empty() {
            continue;
        }
        let name = |vs: &Resource<VirtualService>| named(vs.spec.source_kind(), &vs.meta.namespace, &vs.meta.name);
        let ignored: Vec<String> = losers.iter().map(|l| name(l)).collect();
        let why = if winner.spec.gateway_route.is_some() && winner.meta.namespace == ctx.caller.namespace {
            format!("istiod (1.24+) puts Gateway API routes of the caller's own namespace ({}) first", ctx.caller.namespace)
        } else if winner.spec.gateway_route.is_some() {
            "the route is visible more narrowly than the VirtualService (exportTo), and narrower visibility comes first".to_string()
        } else {
            "istiod lists VirtualServices before the routes its Gateway API controller translates, unless a route is in the caller's own namespace".to_string()
        };
        let mut evidence = vec![format!(
            "{} port {}: claimed by {} in this order; {} wins",
            target.fqdn,
            pi.port,
            pi.candidates.iter().map(|c| name(c)).collect::<Vec<_>>().join(", "),
            name(winner)
        )];
        evidence.extend(ctx.actual.and_then(|a| a.view.as_ref()).and_then(|v| v.ports.iter().find(|p| p.port == pi.port)).and_then(|p| {
            let sources: std::collections::BTreeSet<String> = p
                .virtual_host
                .as_ref()?
                .routes
                .iter()
                .filter_map(|r| r.source.as_ref())
                // istiod names its internal VirtualServices `NAMESPACE~[PORT~]HOST`.
                .map(|s| if s.name.contains('~') { format!("{s} (istiod's translation of the Gateway API routes)") } else { s.to_string() })
                .collect();
            (!sources.is_empty()).then(|| {
                format!("{}: Envoy's routes for port {} come from {}", ctx.caller.display(), pi.port, sources.into_iter().collect::<Vec<_>>().join(", "))
            })
        }));
        out.push(
            Finding::new(
                "vs-httproute-conflict",
                Severity::Warning,
                winner.reference(winner.spec.source_kind()),
                format!("{} and {} both route {}; for callers in namespace {}, {} wins and the rules of {} are ignored", name(winner), ignored.join(", "), target.fqdn, ctx.caller.namespace, name(winner), ignored.join(", ")),
            )
            .detail(format!(
                "istiod turns mesh HTTPRoutes and GRPCRoutes into internal VirtualServices and, for each calling proxy, gives a host the first one that claims it: those private to the caller's namespace, then those exported to it, then public ones; {why}. Callers in other namespaces may get the other one, so the same request can route differently depending on who sends it."
            ))
            .evidence(evidence)
            .fix(format!("keep one kind of rule per host: move the rules of {} into {} (or the reverse) and delete the one you do not keep", ignored.join(", "), name(winner))),
        );
    }
}
