//! DestinationRule selection as istiod's SidecarScope does it: the caller's namespace, then the
//! service's, then the root namespace; exportTo, workloadSelector, most specific host, and
//! merging of several rules for one host in one namespace.

use super::Model;
use super::sidecar_scope::exported_to;
use crate::intent::target::Caller;
use crate::istio::names::{DEFAULT_DOMAIN, host_matches, resolve_short_name, specificity};
use crate::istio::{DestinationRule, labels_match};
use crate::snapshot::{ObjectRef, Objects, Resource};

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

/// The namespaces istiod consults for a caller's DestinationRules, in order: the caller's,
/// the service's, the root namespace.
fn lookup_namespaces<'n>(model: &'n Model<'_>, caller: &'n Caller, service_ns: &'n str) -> Vec<&'n str> {
    let root = model.objects.mesh.root_namespace.as_str();
    let mut steps: Vec<&str> = vec![caller.namespace.as_str()];
    if service_ns != caller.namespace && !service_ns.is_empty() {
        steps.push(service_ns);
    }
    if root != caller.namespace && root != service_ns {
        steps.push(root);
    }
    steps
}

/// The rules of namespace `ns` that could apply to `caller` for `host`: exported to it, its
/// workload selected (selectors count only in the caller's namespace), host matching.
fn candidates_in<'a>(model: &Model<'a>, caller: &Caller, host: &str, ns: &str) -> Vec<&'a Resource<DestinationRule>> {
    let defaults = &model.objects.mesh.default_destination_rule_export_to;
    model
        .destination_rules_in(ns)
        .iter()
        .filter(|(_, dr_host)| host_matches(dr_host, host))
        .map(|(dr, _)| *dr)
        .filter(|dr| exported_to(&dr.spec.export_to, defaults, &dr.meta.namespace, &caller.namespace))
        .filter(|dr| match &dr.spec.workload_selector {
            Some(sel) if !sel.labels.is_empty() => ns == caller.namespace && labels_match(&sel.labels, &caller.labels),
            _ => true,
        })
        .collect()
}

/// istiod's lookup: the caller's namespace, then the service's namespace, then the root
/// namespace; the first namespace with a matching rule decides, most specific host first.
pub fn effective<'a>(model: &Model<'a>, caller: &Caller, host: &str, service_ns: &str) -> Option<EffectiveRule<'a>> {
    for ns in lookup_namespaces(model, caller, service_ns) {
        let candidates = candidates_in(model, caller, host, ns);
        let Some(best) = candidates.iter().map(|dr| specificity(&dr_host(dr))).max() else { continue };
        let rules: Vec<_> = candidates.into_iter().filter(|dr| specificity(&dr_host(dr)) == best).collect();
        return Some(EffectiveRule { rules });
    }
    None
}

/// The rules istiod consults for `caller` and `host` that would apply but are hidden behind the
/// rule in effect: found in a namespace consulted later, or with a less specific host.
pub fn shadowed<'a>(model: &Model<'a>, caller: &Caller, host: &str, service_ns: &str) -> Vec<&'a Resource<DestinationRule>> {
    let Some(in_effect) = effective(model, caller, host, service_ns) else { return Vec::new() };
    lookup_namespaces(model, caller, service_ns)
        .into_iter()
        .flat_map(|ns| candidates_in(model, caller, host, ns))
        .filter(|dr| !in_effect.rules.iter().any(|r| std::ptr::eq(*r, *dr)))
        .collect()
}

/// Every DestinationRule for `host` anywhere, effective for the caller or not (to explain why
/// a rule the user edited is not the one in effect).
pub fn all_for<'a>(objects: &'a Objects, host: &str) -> Vec<&'a Resource<DestinationRule>> {
    objects.destination_rules.iter().filter(|dr| host_matches(&dr_host(dr), host)).collect()
}
