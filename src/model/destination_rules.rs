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

/// istiod's lookup: the caller's namespace, then the service's namespace, then the root
/// namespace; the first namespace with a matching rule decides, most specific host first.
pub fn effective<'a>(model: &Model<'a>, caller: &Caller, host: &str, service_ns: &str) -> Option<EffectiveRule<'a>> {
    let root = model.objects.mesh.root_namespace.as_str();
    let defaults = &model.objects.mesh.default_destination_rule_export_to;
    let mut steps: Vec<&str> = vec![caller.namespace.as_str()];
    if service_ns != caller.namespace {
        steps.push(service_ns);
    }
    if root != caller.namespace && root != service_ns {
        steps.push(root);
    }
    for ns in steps {
        let candidates: Vec<&(&Resource<DestinationRule>, String)> = model
            .destination_rules_in(ns)
            .iter()
            .filter(|(_, dr_host)| host_matches(dr_host, host))
            .filter(|(dr, _)| exported_to(&dr.spec.export_to, defaults, &dr.meta.namespace, &caller.namespace))
            .filter(|(dr, _)| match &dr.spec.workload_selector {
                Some(sel) if !sel.labels.is_empty() => ns == caller.namespace && labels_match(&sel.labels, &caller.labels),
                _ => true,
            })
            .collect();
        let Some(best) = candidates.iter().map(|(_, h)| specificity(h)).max() else { continue };
        let rules: Vec<_> = candidates.into_iter().filter(|(_, h)| specificity(h) == best).map(|(dr, _)| *dr).collect();
        return Some(EffectiveRule { rules });
    }
    None
}

/// Every DestinationRule for `host` anywhere, effective for the caller or not (to explain why
/// a rule the user edited is not the one in effect).
pub fn all_for<'a>(objects: &'a Objects, host: &str) -> Vec<&'a Resource<DestinationRule>> {
    objects.destination_rules.iter().filter(|dr| host_matches(&dr_host(dr), host)).collect()
}
