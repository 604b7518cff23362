//! The checks: each looks at the objects, one caller's intent, its proxy, or their diff, and
//! reports a cause once. A cause owns its consequences: a subset missing from the
//! DestinationRule also leaves the proxy without that cluster, which is not reported again as
//! proxy drift because the intent lacks the cluster too.
//!
//! Checks that need only the objects run once per [`Scope`] (one service, or the mesh), and
//! name as subject the object `istioctl analyze` would name; checks that need a caller run per
//! examined caller. The same cause seen from two callers or two services yields identical
//! summaries, so [`super::merge_and_rank`] folds them into one finding.

mod ambient;
mod data_plane;
mod destinations;
mod gateway_api;
mod gateway_servers;
mod gateways;
mod jwt_routing;
mod matches;
mod routing;
mod service_entries;
mod significance;
mod workloads;

pub use gateways::unchecked;

use super::CallerContext;
use super::finding::Finding;
use crate::actual::ztunnel::ZtunnelView;
use crate::intent::Intent;
use crate::intent::target::{CallerKind, SidecarState, Target};
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, resolve_short_name};
use crate::istio::{Destination, VirtualService};
use crate::model::Model;
use crate::model::virtual_services::claiming_host;
use crate::snapshot::{ProxyCapture, Resource};

/// What a run asks about, and so which objects the object checks look at.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One service: only objects that claim it, route to it or hold its pods.
    Service(&'a Target),
    /// Every service: all objects, or those of one namespace.
    Mesh(Option<&'a str>),
}

impl Scope<'_> {
    /// True when an object in `namespace` that is not tied to a host is in scope.
    pub fn namespace(&self, namespace: &str) -> bool {
        match self {
            Scope::Service(t) => t.namespace == namespace,
            Scope::Mesh(only) => only.is_none_or(|ns| ns == namespace),
        }
    }

    /// True when the VirtualService concerns the scope: for one service, it claims the
    /// service's host (an ingress `*` only counts for sidecars) or routes to it.
    pub fn virtual_service(&self, vs: &Resource<VirtualService>) -> bool {
        match self {
            Scope::Service(t) => claiming_host(vs, &t.fqdn).is_some_and(|h| h != "*" || routing::bound_to_mesh(vs)) || routes_to(vs, &t.fqdn),
            Scope::Mesh(_) => self.namespace(&vs.meta.namespace),
        }
    }

    /// The VirtualServices of `model` that concern the scope ([`Scope::virtual_service`]), in
    /// istiod's order: for one service, looked up by host rather than scanned.
    pub fn virtual_services<'m>(&self, model: &Model<'m>) -> Vec<&'m Resource<VirtualService>> {
        match self {
            Scope::Service(t) => model.virtual_services_mentioning(&t.fqdn).filter(|vs| self.virtual_service(vs)).collect(),
            Scope::Mesh(_) => model.objects.virtual_services.iter().filter(|vs| self.virtual_service(vs)).collect(),
        }
    }

    /// True when a host (or host pattern) concerns the scope.
    pub fn host(&self, host: &str) -> bool {
        match self {
            Scope::Service(t) => host_matches(host, &t.fqdn),
            Scope::Mesh(_) => true,
        }
    }
}

/// A destination's host, resolved in the VirtualService's namespace.
pub fn destination_host(vs: &Resource<VirtualService>, destination: &Destination) -> String {
    resolve_short_name(&destination.host, &vs.meta.namespace, DEFAULT_DOMAIN)
}

/// True when some destination of `vs` resolves to `fqdn`.
pub fn routes_to(vs: &Resource<VirtualService>, fqdn: &str) -> bool {
    vs.spec.destinations().iter().any(|d| destination_host(vs, d.destination) == fqdn)
}

/// Object checks about how rules reach one service's callers, run for each service asked
/// about (in mesh-wide mode too).
pub fn service_findings(model: &Model<'_>, target: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    routing::vs_gateway_only(model, target, &mut out);
    routing::vs_host_mismatch(model, target, &mut out);
    out
}

/// Checks that need only the objects, over the objects in `scope`.
pub fn object_findings(model: &Model<'_>, scope: Scope<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    routing::vs_conflict(model, scope, &mut out);
    routing::weights_managed_externally(model, scope, &mut out);
    routing::port_not_http_naming(model, scope, &mut out);
    matches::unreachable_rule(model, scope, &mut out);
    destinations::host_not_found(model, scope, &mut out);
    destinations::destination_port_missing(model, scope, &mut out);
    destinations::subset_not_declared_anywhere(model, scope, &mut out);
    destinations::subset_no_endpoints(model, scope, &mut out);
    destinations::tls_origination_unverified(model, scope, &mut out);
    gateways::gateway_not_found(model, scope, &mut out);
    gateways::gateway_credential_missing(model, scope, &mut out);
    gateways::gateway_credential_invalid(model, scope, &mut out);
    gateways::gateway_host_not_served(model, scope, &mut out);
    gateways::gateway_host_unrouted(model, scope, &mut out);
    gateways::gateway_conflict(model, scope, &mut out);
    gateways::gateway_ignores_mesh_rules(model, scope, &mut out);
    gateways::gateway_internal_reference(model, scope, &mut out);
    jwt_routing::jwt_claim_route_unauthenticated(model, scope, &mut out);
    gateway_servers::gateway_duplicate_certificate(model, scope, &mut out);
    gateway_servers::gateway_port_not_exposed(model, scope, &mut out);
    workloads::namespace_not_injected(model, scope, &mut out);
    workloads::namespace_injection_conflict(model, scope, &mut out);
    workloads::pods_without_sidecar(model, scope, &mut out);
    workloads::sidecar_selects_no_pod(model, scope, &mut out);
    workloads::sidecar_conflicts(model, scope, &mut out);
    workloads::deployment_service_conflicts(model, scope, &mut out);
    service_entries::service_entry_address_required(model, scope, &mut out);
    service_entries::service_entry_protocol_conflict(model, scope, &mut out);
    gateway_api::route_not_accepted(model, scope, &mut out);
    gateway_api::route_backend_unresolved(model, scope, &mut out);
    gateway_api::route_status_stale(model, scope, &mut out);
    gateway_api::route_zero_weight(model, scope, &mut out);
    gateway_api::route_parent_port_mismatch(model, scope, &mut out);
    ambient::l7_rules_without_waypoint(model, scope, &mut out);
    ambient::vs_ignored_by_waypoint(model, scope, &mut out);
    ambient::waypoint_source_labels_dropped(model, scope, &mut out);
    ambient::ingress_bypasses_waypoint(model, scope, &mut out);
    out
}

/// Checks for one caller.
pub(crate) fn caller_findings(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    if ctx.caller.kind == CallerKind::Waypoint {
        // A waypoint's routes are checked against its Envoy; the sidecar rules read a
        // sidecar's view of the service.
        data_plane::check(model, target, ctx, &mut out);
    } else if let SidecarState::Missing(reason) = &ctx.caller.sidecar {
        // An ambient caller has no sidecar by design: ztunnel and the waypoint carry its traffic.
        if !model.caller_is_ambient(ctx.caller) {
            workloads::caller_without_sidecar(model, target, ctx.caller, reason, &mut out);
        }
    } else {
        ambient::sidecar_bypasses_waypoint(model, target, ctx, &mut out);
        routing::port_not_http(target, ctx.intent, &mut out);
        routing::destination_port_pinned(model, target, ctx, &mut out);
        routing::vs_not_visible(model, target, ctx, &mut out);
        gateway_api::vs_httproute_conflict(target, ctx, &mut out);
        routing::no_route_match(ctx, &mut out);
        routing::consistent_hash_with_weights(model, target, ctx, &mut out);
        destinations::subset_not_declared(model, ctx, &mut out);
        destinations::dr_conflict(model, target, ctx, &mut out);
        workloads::mtls_conflict(model, target, ctx, &mut out);
        data_plane::check(model, target, ctx, &mut out);
    }
    for f in &mut out {
        if !f.callers.contains(&ctx.caller.display()) {
            f.callers.push(ctx.caller.display());
        }
    }
    out
}

/// Checks of what one node's ztunnel holds for the service.
pub(crate) fn ztunnel_findings(model: &Model<'_>, target: &Target, ztunnel: &ProxyCapture, view: &ZtunnelView, out: &mut Vec<Finding>) {
    ambient::ztunnel_waypoint_stale(model, target, ztunnel, view, out);
}

/// One line per port saying where traffic should go, for the verdict.
pub fn describe_expected(intent: &Intent<'_>) -> Vec<String> {
    intent
        .view
        .ports
        .iter()
        .filter_map(|p| {
            let vh = p.virtual_host.as_ref()?;
            let last = vh.routes.last()?;
            Some(format!("port {}: {} route(s); default {}", p.port, vh.routes.len(), last.action))
        })
        .collect()
}

/// True when VirtualServices or DestinationRule subsets exist for the host, so "rules are
/// ignored" findings are errors rather than warnings.
fn has_routing_rules(model: &Model<'_>, target: &Target) -> bool {
    !model.virtual_services_claiming(&target.fqdn).is_empty() || model.all_destination_rules(&target.fqdn).iter().any(|dr| !dr.spec.subsets.is_empty())
}

/// A rule of the VirtualService that decides a port, as users wrote it: `VirtualService ns/name
/// spec.http[i]`, or `HTTPRoute ns/name rule NAME` for the internal one built from a route.
fn rule_at(vs: &Resource<VirtualService>, index: Option<usize>) -> String {
    let me = named(vs.spec.source_kind(), &vs.meta.namespace, &vs.meta.name);
    match (vs.spec.gateway_route, index) {
        (Some(_), Some(i)) => format!("{me} rule {}", vs.spec.http.get(i).and_then(|r| r.name.as_deref()).unwrap_or("?")),
        (Some(_), None) => format!("{me} spec.rules"),
        (None, i) => format!("{me} spec.http[{}]", i.unwrap_or(0)),
    }
}

/// `VirtualService ns/name`, the way evidence and summaries name objects.
fn named(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind} {namespace}/{name}")
}
