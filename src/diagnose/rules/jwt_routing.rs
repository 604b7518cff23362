//! Routing on JWT claims: a gateway route that matches `@request.auth.claims.*` needs a
//! RequestAuthentication on the gateway pods, or the claims never exist and the rule never matches.

use super::gateways::{bound_gateways, find_gateway};
use super::{Scope, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::istio::labels_match;
use crate::istio::{HttpMatch, VirtualService};
use crate::model::Model;
use crate::snapshot::Resource;

/// The header name prefix istiod reads as a JWT claim (case-insensitive).
const CLAIM_PREFIX: &str = "@request.auth.claims";

/// True when a match header names a claim: the prefix then `.claim` or `[claim]`.
fn is_claim(header: &str) -> bool {
    let Some(rest) = header.get(..CLAIM_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(CLAIM_PREFIX)).map(|_| &header[CLAIM_PREFIX.len()..]) else {
        return false;
    };
    (rest.starts_with('.') && rest.len() > 1) || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// The first claim header a VirtualService's HTTP matches use, with where.
fn claim_match(vs: &Resource<VirtualService>) -> Option<(String, &str)> {
    vs.spec.http.iter().enumerate().find_map(|(i, rule)| {
        rule.matches.iter().enumerate().find_map(|(j, m): (usize, &HttpMatch)| {
            let header = m.headers.keys().chain(m.without_headers.keys()).find(|h| is_claim(h))?;
            Some((format!("spec.http[{i}].match[{j}]"), header.as_str()))
        })
    })
}

/// A gateway-bound VirtualService routing on JWT claims while no RequestAuthentication applies
/// to the gateway pods (IST0149): the claims are never extracted, so the rule never matches.
pub fn jwt_claim_route_unauthenticated(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let root = model.objects.mesh.root_namespace.as_str();
    for vs in scope.virtual_services(model) {
        let Some((path, claim)) = claim_match(vs) else { continue };
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        for (_, full) in bound_gateways(vs) {
            let Some(gw) = find_gateway(model, &full) else { continue };
            let unauthenticated: Vec<String> = model
                .objects
                .pods
                .iter()
                .filter(|p| labels_match(&gw.spec.selector, &p.meta.labels))
                .filter(|p| {
                    !model.objects.request_authentications.iter().any(|ra| {
                        (ra.meta.namespace == root || ra.meta.namespace == p.meta.namespace)
                            && (ra.spec.has_target_refs() || ra.spec.selector.as_ref().is_none_or(|s| labels_match(&s.labels, &p.meta.labels)))
                    })
                })
                .map(|p| format!("{}/{}", p.meta.namespace, p.meta.name))
                .collect();
            if unauthenticated.is_empty() {
                continue;
            }
            out.push(
                Finding::new(
                    "jwt-claim-route-unauthenticated",
                    Severity::Error,
                    vs.reference("VirtualService"),
                    format!("{me} routes on JWT claim {claim} at Gateway {full}, but no RequestAuthentication applies to its pods, so the claim is never set and the rule never matches"),
                )
                .code("IST0149")
                .detail("istiod turns `@request.auth.claims.*` header matches into matches on the JWT metadata the jwt_authn filter writes; that filter runs only on workloads a RequestAuthentication selects (in their namespace or the root namespace). Without one the claim is absent: a positive match never fires and a withoutHeaders match always does.")
                .evidence([format!("{me} {path}.headers: {claim}"), format!("no RequestAuthentication in {root} or the pods' namespace selects {}", unauthenticated.join(", "))])
                .fix(format!("add a RequestAuthentication (with the issuer's jwtRules) whose selector matches the gateway pods of {full}, in their namespace or {root}")),
            );
        }
    }
}
