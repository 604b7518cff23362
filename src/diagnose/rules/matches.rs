//! Rules that can never fire: an earlier rule or match already takes every request a later one
//! would. A rule after a catch-all, or whose every match repeats an earlier one, is unreachable
//! (IST0130); a single match repeated or covered by a broader earlier prefix is ineffective
//! (IST0131). Coverage is judged on the matches' Envoy form with the trace's own matching rules
//! (`trace::covers`), so a check never calls a rule dead that a traced request reaches. Where
//! that finds more than `istioctl analyze` does (a prefix over an exact path, a header prefix
//! over an exact value), the finding carries no analyze code.

use super::{Scope, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::listeners::envoy_match;
use crate::intent::routes::translate_match;
use crate::istio::{HttpMatch, TcpRoute, VirtualService};
use crate::model::Model;
use crate::snapshot::Resource;
use serde_json::Value;

/// Rules and matches of VirtualServices in scope that no request can reach.
pub fn unreachable_rule(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        http_rules(vs, out);
        stream_rules(vs, &vs.spec.tcp, "tcp", out);
        stream_rules(vs, &vs.spec.tls, "tls", out);
    }
}

/// A rule shadowed match by match, in the order the proxy tries them.
struct Shadow {
    /// Index of the shadowed match in its rule.
    index: usize,
    /// `spec.http[k].match[l]` that takes its requests first.
    by: String,
    /// True when the earlier match is identical, not just broader.
    duplicate: bool,
    /// True when `istioctl analyze` judges it too (a repeat, or a prefix under a prefix).
    analyze: bool,
}

fn http_rules(vs: &Resource<VirtualService>, out: &mut Vec<Finding>) {
    let mut seen: Vec<(String, &HttpMatch)> = Vec::new();
    let mut catch_all: Option<String> = None;
    for (i, rule) in vs.spec.http.iter().enumerate() {
        let here = format!("spec.http[{i}]{}", rule.name.as_deref().map(|n| format!(" ({n:?})")).unwrap_or_default());
        if let Some(first) = &catch_all {
            out.push(unreachable(vs, &here, &format!("{first} takes every request before it"), false));
            continue;
        }
        if rule.matches.is_empty() {
            catch_all = Some(format!("spec.http[{i}] (no match)"));
            continue;
        }
        let mut shadows = Vec::new();
        for (j, m) in rule.matches.iter().enumerate() {
            if let Some((by, _)) = seen.iter().find(|(_, earlier)| same_match(earlier, m)) {
                shadows.push(Shadow { index: j, by: by.clone(), duplicate: true, analyze: true });
                continue;
            }
            if let Some((by, earlier)) = seen.iter().find(|(_, earlier)| match_covers(earlier, m)) {
                shadows.push(Shadow { index: j, by: by.clone(), duplicate: false, analyze: both_prefixes(earlier, m) });
            }
            seen.push((format!("spec.http[{i}].match[{j}]"), m));
        }
        let by = || shadows.iter().map(|s| s.by.as_str()).collect::<Vec<_>>().join(", ");
        if shadows.iter().filter(|s| s.duplicate).count() == rule.matches.len() {
            out.push(unreachable(vs, &here, &format!("every match repeats an earlier one ({})", by()), true));
        } else if shadows.len() == rule.matches.len() && shadows.iter().any(|s| !s.analyze) {
            let evidence = shadows.iter().map(|s| format!("{here}.match[{}] {} is taken by {} first", s.index, translate_match(&rule.matches[s.index]), s.by));
            out.push(covered_rule(vs, &here, &by(), evidence.collect()));
        } else {
            for s in &shadows {
                let what = translate_match(&rule.matches[s.index]).to_string();
                let finding = ineffective(vs, &format!("{here}.match[{}]", s.index), &what, &s.by, s.duplicate);
                out.push(if s.analyze { finding } else { beyond_analyze(finding) });
            }
        }
        if rule.matches.iter().any(unconditional) {
            catch_all = Some(format!("spec.http[{i}] (a catch-all match)"));
        }
    }
}

/// True when a match takes every request on every proxy: `/` prefix, no other condition.
fn unconditional(m: &HttpMatch) -> bool {
    m.is_catch_all() && m.port.is_none() && m.source_labels.is_empty() && m.source_namespace.is_none() && m.gateways.is_empty()
}

fn same_match(a: &HttpMatch, b: &HttpMatch) -> bool {
    HttpMatch { name: None, ..a.clone() } == HttpMatch { name: None, ..b.clone() }
}

/// True when every request `b` matches is matched by `a`: on the proxies that get `b`'s route
/// (port, source and gateway conditions decide that, not Envoy), and by Envoy's matching rules.
fn match_covers(a: &HttpMatch, b: &HttpMatch) -> bool {
    a.port.is_none_or(|p| b.port == Some(p))
        && crate::istio::labels_match(&a.source_labels, &b.source_labels)
        && a.source_namespace.as_ref().is_none_or(|ns| b.source_namespace.as_ref() == Some(ns))
        && (a.gateways.is_empty() || a.gateways == b.gateways)
        && crate::trace::covers::covers(&envoy_match(&translate_match(a)), &envoy_match(&translate_match(b)))
}

/// A finding `istioctl analyze` does not make: it carries no analyze code.
fn beyond_analyze(mut finding: Finding) -> Finding {
    finding.istio_code = None;
    finding.also_istio_codes.clear();
    finding
}

/// True when both matches are URI prefix matches: the only coverage `istioctl analyze` judges.
fn both_prefixes(a: &HttpMatch, b: &HttpMatch) -> bool {
    let prefix = |m: &HttpMatch| m.uri.as_ref().is_some_and(|u| u.prefix.is_some());
    prefix(a) && prefix(b)
}

/// TCP and TLS rules: a rule after one without match, or a match repeated exactly.
fn stream_rules(vs: &Resource<VirtualService>, rules: &[TcpRoute], field: &str, out: &mut Vec<Finding>) {
    let mut seen: Vec<(String, &Value)> = Vec::new();
    let mut catch_all: Option<String> = None;
    for (i, rule) in rules.iter().enumerate() {
        let here = format!("spec.{field}[{i}]");
        if let Some(first) = &catch_all {
            out.push(unreachable(vs, &here, &format!("{first} has no match, so it takes every connection before it"), false));
            continue;
        }
        if rule.matches.is_empty() {
            catch_all = Some(here);
            continue;
        }
        let mut shadows = Vec::new();
        for (j, m) in rule.matches.iter().enumerate() {
            match seen.iter().find(|(_, earlier)| *earlier == m) {
                Some((by, _)) => shadows.push(Shadow { index: j, by: by.clone(), duplicate: true, analyze: true }),
                None => seen.push((format!("{here}.match[{j}]"), m)),
            }
        }
        if !shadows.is_empty() && shadows.len() == rule.matches.len() {
            let by: Vec<&str> = shadows.iter().map(|s| s.by.as_str()).collect();
            out.push(unreachable(vs, &here, &format!("every match repeats an earlier one ({})", by.join(", ")), true));
        } else {
            for s in &shadows {
                out.push(ineffective(vs, &format!("{here}.match[{}]", s.index), &rule.matches[s.index].to_string(), &s.by, true));
            }
        }
    }
}

/// A rule no request reaches; when that is because each of its matches `repeats` an earlier
/// one, analyze also reports each match as ineffective (IST0131): the same cause.
fn unreachable(vs: &Resource<VirtualService>, rule: &str, reason: &str, repeats: bool) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    let finding = Finding::new("unreachable-rule", Severity::Warning, vs.reference("VirtualService"), format!("rule {rule} of {me} can never match: {reason}"))
        .code("IST0130");
    if repeats { finding.also_code("IST0131") } else { finding }
        .detail("Rules are tried in order and the first match wins; istiod stops emitting routes after a catch-all, so this rule's destinations, retries and faults never take effect.")
        .evidence([format!("{me} {rule}")])
        .fix(format!("move {rule} before the rule that shadows it, give it a narrower match, or delete it"))
}

/// A rule each of whose matches an earlier, broader match takes first (beyond what analyze judges).
fn covered_rule(vs: &Resource<VirtualService>, rule: &str, by: &str, evidence: Vec<String>) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    Finding::new("unreachable-rule", Severity::Warning, vs.reference("VirtualService"), format!("rule {rule} of {me} can never match: earlier matches ({by}) take every request it would"))
        .detail("Envoy tries a virtual host's routes in order and takes the first whose match holds; every request this rule matches is matched by an earlier, broader match, so its destinations, retries and faults never take effect. `kubectl mesh-why trace --path ...` shows the earlier route winning.")
        .evidence(evidence)
        .fix(format!("move {rule} before the rules holding {by}, or narrow the earlier match"))
}

fn ineffective(vs: &Resource<VirtualService>, at: &str, what: &str, by: &str, duplicate: bool) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    let how = if duplicate { "repeats" } else { "is covered by the broader" };
    Finding::new("unreachable-rule", Severity::Info, vs.reference("VirtualService"), format!("{at} of {me} never applies: it {how} {by}"))
        .code("IST0131")
        .detail(format!("Requests matching {what} are taken by {by} first; other matches of the same rule still work."))
        .evidence([format!("{me} {at}: {what}"), format!("{me} {by}")])
        .fix(format!("remove {at}, or order the more specific match first"))
}
