//! Rules that can never fire: an earlier rule or match already takes every request a later one
//! would. A rule after a catch-all, or whose every match repeats an earlier one, is unreachable
//! (IST0130); a single match repeated or covered by a broader earlier prefix is ineffective
//! (IST0131). Prefix coverage is judged between prefix matches only, as `istioctl analyze` does.

use super::{Scope, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::routes::translate_match;
use crate::istio::{HttpMatch, StringMatch, TcpRoute, VirtualService};
use crate::model::Model;
use crate::snapshot::Resource;
use serde_json::Value;
use std::collections::BTreeMap;

/// Rules and matches of VirtualServices in scope that no request can reach.
pub fn unreachable_rule(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in model.objects.virtual_services.iter().filter(|vs| scope.virtual_service(vs)) {
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
                shadows.push(Shadow { index: j, by: by.clone(), duplicate: true });
                continue;
            }
            if let Some((by, _)) = seen.iter().find(|(_, earlier)| prefix_covers(earlier, m)) {
                shadows.push(Shadow { index: j, by: by.clone(), duplicate: false });
            }
            seen.push((format!("spec.http[{i}].match[{j}]"), m));
        }
        if shadows.iter().filter(|s| s.duplicate).count() == rule.matches.len() {
            let by: Vec<&str> = shadows.iter().map(|s| s.by.as_str()).collect();
            out.push(unreachable(vs, &here, &format!("every match repeats an earlier one ({})", by.join(", ")), true));
        } else {
            for s in &shadows {
                let what = translate_match(&rule.matches[s.index]).to_string();
                out.push(ineffective(vs, &format!("{here}.match[{}]", s.index), &what, &s.by, s.duplicate));
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

/// True when every request `b` matches is matched by `a`, judged between prefix matches.
fn prefix_covers(a: &HttpMatch, b: &HttpMatch) -> bool {
    let (Some(pa), Some(pb)) = (a.uri.as_ref().and_then(|u| u.prefix.as_ref()), b.uri.as_ref().and_then(|u| u.prefix.as_ref())) else { return false };
    let optional = |x: &Option<StringMatch>, y: &Option<StringMatch>| x.as_ref().is_none_or(|x| y.as_ref().is_some_and(|y| string_covers(x, y)));
    let map = |x: &BTreeMap<String, StringMatch>, y: &BTreeMap<String, StringMatch>| x.iter().all(|(k, v)| y.get(k).is_some_and(|w| string_covers(v, w)));
    pb.starts_with(pa.as_str())
        && a.ignore_uri_case == b.ignore_uri_case
        && a.port.is_none_or(|p| b.port == Some(p))
        && optional(&a.method, &b.method)
        && optional(&a.authority, &b.authority)
        && optional(&a.scheme, &b.scheme)
        && map(&a.headers, &b.headers)
        && map(&a.query_params, &b.query_params)
        && a.without_headers == b.without_headers
        && crate::istio::labels_match(&a.source_labels, &b.source_labels)
        && a.source_namespace.as_ref().is_none_or(|ns| b.source_namespace.as_ref() == Some(ns))
        && (a.gateways.is_empty() || a.gateways == b.gateways)
}

/// True when every value `b` accepts, `a` accepts too.
fn string_covers(a: &StringMatch, b: &StringMatch) -> bool {
    a == b || a.prefix.as_ref().is_some_and(|p| b.prefix.as_ref().or(b.exact.as_ref()).is_some_and(|v| v.starts_with(p.as_str())))
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
                Some((by, _)) => shadows.push(Shadow { index: j, by: by.clone(), duplicate: true }),
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

fn ineffective(vs: &Resource<VirtualService>, at: &str, what: &str, by: &str, duplicate: bool) -> Finding {
    let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
    let how = if duplicate { "repeats" } else { "is covered by the broader" };
    Finding::new("unreachable-rule", Severity::Info, vs.reference("VirtualService"), format!("{at} of {me} never applies: it {how} {by}"))
        .code("IST0131")
        .detail(format!("Requests matching {what} are taken by {by} first; other matches of the same rule still work."))
        .evidence([format!("{me} {at}: {what}"), format!("{me} {by}")])
        .fix(format!("remove {at}, or order the more specific match first"))
}
