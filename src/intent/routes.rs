//! VirtualService rules → Envoy routes, the way istiod translates them for one caller and port.

use super::target::Caller;
use crate::istio::names::{ClusterName, DEFAULT_DOMAIN, resolve_short_name};
use crate::istio::{Destination, HttpMatch, HttpRoute, StringMatch, VirtualService};
use crate::model::Model;
use crate::model::virtual_services::expanded_rules;
use crate::snapshot::Resource;
use crate::view::{Action, HeaderCondition, MatchView, PathMatch, RouteFeatures, RouteView, WeightedCluster};

/// Where routes are being built: the sidecars (`mesh`) or one gateway (`namespace/name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding<'b> {
    /// Sidecar outbound routes.
    Mesh,
    /// Routes on the gateway `namespace/name`.
    Gateway(&'b str),
    /// A waypoint's routes for the services bound to it: mesh rules, without the matches that
    /// name source labels (dropped by istiod from 1.25).
    Waypoint,
}

/// Whether istiod emits this match for this caller and port (static filters).
pub fn match_applies(m: &HttpMatch, caller: &Caller, port: u32, binding: Binding<'_>) -> bool {
    if m.port.is_some_and(|p| p != port) {
        return false;
    }
    if binding == Binding::Waypoint && !m.source_labels.is_empty() && caller.at_least(1, 25) {
        return false;
    }
    if !m.gateways.is_empty() {
        let wanted = match binding {
            Binding::Mesh | Binding::Waypoint => "mesh",
            Binding::Gateway(g) => g,
        };
        return m.gateways.iter().any(|g| g == wanted);
    }
    crate::istio::labels_match(&m.source_labels, &caller.labels) && m.source_namespace.as_ref().is_none_or(|ns| *ns == caller.namespace)
}

/// The routes istiod emits for `vs` on `port` for `caller`, stopping after a catch-all.
pub fn routes_for(model: &Model<'_>, vs: &Resource<VirtualService>, caller: &Caller, port: u32, binding: Binding<'_>) -> Vec<RouteView> {
    let source = Some(vs.reference(vs.spec.source_kind()));
    let mut routes = Vec::new();
    for (index, rule) in expanded_rules(model, vs) {
        let action = action_for(model, &rule, &vs.meta.namespace, port, caller);
        let timeout = Some(rule.timeout.clone().unwrap_or_else(|| "0s".into()));
        let features = features_for(model, &rule, caller, &vs.meta.namespace, port);
        let base_name = rule.name.clone().unwrap_or_default();
        if rule.matches.is_empty() {
            routes.push(RouteView {
                name: base_name,
                matcher: MatchView::default(),
                action,
                timeout,
                features,
                source: source.clone(),
                rule_index: Some(index),
            });
            return routes;
        }
        for m in rule.matches.iter().filter(|m| match_applies(m, caller, port, binding)) {
            let mut matcher = translate_match(m);
            // Ingress and Gateway API prefixes match whole path segments (`/api` takes `/api/x`,
            // not `/apix`).
            if let (true, PathMatch::Prefix(p)) = (vs.spec.ingress || vs.spec.gateway_route.is_some(), &matcher.path)
                && p != "/"
            {
                matcher.path = PathMatch::SeparatedPrefix(p.trim_end_matches('/').to_string());
            }
            let catch_all = matcher.is_catch_all();
            let name = match (&rule.name, &m.name) {
                (Some(r), Some(n)) => format!("{r}.{n}"),
                _ => base_name.clone(),
            };
            routes.push(RouteView {
                name,
                matcher,
                action: action.clone(),
                timeout: timeout.clone(),
                features: features.clone(),
                source: source.clone(),
                rule_index: Some(index),
            });
            if catch_all {
                return routes;
            }
        }
    }
    routes
}

/// The default route istiod gives a service without an applicable VirtualService.
pub fn default_route(model: &Model<'_>, caller: &Caller, fqdn: &str, port: u32) -> RouteView {
    RouteView {
        name: "default".into(),
        matcher: MatchView::default(),
        action: Action::Forward { clusters: vec![WeightedCluster { name: cluster_name(port, "", fqdn), weight: 100 }] },
        timeout: Some("0s".into()),
        features: RouteFeatures { retries: retry_attempts(model, caller, None), ..RouteFeatures::default() },
        source: None,
        rule_index: None,
    }
}

fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    ClusterName { port, subset: subset.into(), host: host.into() }.to_string()
}

/// What istiod adds to a rule's route besides clusters: `rewrite`, `fault` (abort status, fixed
/// delay), mirrors (`mirror` and `mirrors`), and retry attempts.
fn features_for(model: &Model<'_>, rule: &HttpRoute, caller: &Caller, vs_ns: &str, port: u32) -> RouteFeatures {
    let text = |v: &Option<Box<serde_json::Value>>, path: &str| v.as_ref().and_then(|v| v.pointer(path)).and_then(|x| x.as_str()).map(str::to_string);
    let mut rewrite = Vec::new();
    rewrite.extend(text(&rule.rewrite, "/uri").map(|u| format!("uri {u}")));
    rewrite.extend(text(&rule.rewrite, "/authority").map(|a| format!("authority {a}")));
    let mut fault = Vec::new();
    let abort = rule.fault.as_ref().and_then(|f| f.pointer("/abort/httpStatus")).and_then(|s| s.as_u64());
    fault.extend(abort.map(|s| format!("abort {s}")));
    fault.extend(text(&rule.fault, "/delay/fixedDelay").map(|d| format!("delay {d}")));
    let mirrors = rule.mirror.iter().chain(rule.mirrors.iter().map(|m| &m.destination));
    let mirror = mirrors.map(|d| destination_cluster(model, d, vs_ns, port)).collect();
    RouteFeatures { rewrite, fault, mirror, retries: retry_attempts(model, caller, rule.retries.as_deref()) }
}

/// Retries istiod gives a route without a policy of its own (and no mesh default).
const DEFAULT_RETRY_ATTEMPTS: u64 = 2;

/// The retry attempts of a route: its rule's policy, else meshConfig's `defaultHttpRetryPolicy`,
/// else istiod's default (since Istio 1.1; 1.0 and older set none). A policy without attempts
/// (or with 0) means no retry policy at all.
fn retry_attempts(model: &Model<'_>, caller: &Caller, rule: Option<&serde_json::Value>) -> Option<u64> {
    match rule.or(model.objects.mesh.default_http_retry_policy.as_ref()) {
        None => caller.at_least(1, 1).then_some(DEFAULT_RETRY_ATTEMPTS),
        Some(policy) => policy.get("attempts").and_then(serde_json::Value::as_u64).filter(|&n| n > 0),
    }
}

/// The Envoy cluster a destination resolves to on listener port `port`: the destination's own
/// port, else the service's only port, else the listener's port.
pub fn destination_cluster(model: &Model<'_>, dest: &Destination, vs_ns: &str, port: u32) -> String {
    let host = resolve_short_name(&dest.host, vs_ns, DEFAULT_DOMAIN);
    let default_port = model.registry.single_port(&host).unwrap_or(port);
    let port = dest.port.map(|p| p.number).filter(|n| *n > 0).unwrap_or(default_port);
    cluster_name(port, dest.subset.as_deref().unwrap_or(""), &host)
}

fn action_for(model: &Model<'_>, rule: &HttpRoute, vs_ns: &str, port: u32, caller: &Caller) -> Action {
    if rule.redirect.is_some() {
        return Action::Redirect;
    }
    if let Some(dr) = &rule.direct_response {
        return Action::DirectResponse { status: dr.get("status").and_then(|s| s.as_u64()).unwrap_or(0) as u32 };
    }
    let weighted: Vec<WeightedCluster> = rule
        .route
        .iter()
        .map(|d| WeightedCluster { name: destination_cluster(model, &d.destination, vs_ns, port), weight: d.weight.unwrap_or(0).max(0) as u32 })
        .collect();
    let clusters = match weighted.as_slice() {
        [one] => vec![WeightedCluster { name: one.name.clone(), weight: 100 }],
        many => {
            let nonzero: Vec<WeightedCluster> = many.iter().filter(|w| w.weight > 0).cloned().collect();
            // Istio 1.18 collapsed a list with a single non-zero weight into a plain cluster.
            if nonzero.len() == 1 && !caller.at_least(1, 19) { vec![WeightedCluster { name: nonzero[0].name.clone(), weight: 100 }] } else { nonzero }
        }
    };
    Action::Forward { clusters }
}

/// Translates a VirtualService match into the canonical route match.
pub fn translate_match(m: &HttpMatch) -> MatchView {
    let path = match &m.uri {
        None => PathMatch::Prefix("/".into()),
        Some(StringMatch { exact: Some(e), .. }) => PathMatch::Exact(e.clone()),
        Some(StringMatch { prefix: Some(p), .. }) => PathMatch::Prefix(p.clone()),
        Some(StringMatch { regex: Some(r), .. }) => PathMatch::Regex(r.clone()),
        Some(_) => PathMatch::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderCondition> = Vec::new();
    let mut push = |name: &str, sm: &StringMatch, invert: bool| headers.push(header_condition(name, sm, invert));
    for (k, v) in &m.headers {
        push(k, v, false);
    }
    for (k, v) in &m.without_headers {
        push(k, v, true);
    }
    if let Some(v) = &m.method {
        push(":method", v, false);
    }
    if let Some(v) = &m.authority {
        push(":authority", v, false);
    }
    if let Some(v) = &m.scheme {
        push(":scheme", v, false);
    }
    headers.sort();
    let mut query: Vec<String> = m.query_params.iter().map(|(k, v)| format!("{k} {}", describe(v))).collect();
    query.sort();
    MatchView { path, ignore_case: m.ignore_uri_case, headers, query }
}

fn header_condition(name: &str, sm: &StringMatch, invert: bool) -> HeaderCondition {
    let (kind, value) = match sm {
        StringMatch { exact: Some(e), .. } => ("exact", e.clone()),
        StringMatch { prefix: Some(p), .. } => ("prefix", p.clone()),
        StringMatch { regex: Some(r), .. } if r != "*" => ("regex", r.clone()),
        _ => ("present", String::new()),
    };
    HeaderCondition { name: name.to_ascii_lowercase(), kind: kind.into(), value, invert }
}

fn describe(sm: &StringMatch) -> String {
    let c = header_condition("", sm, false);
    format!("{} {}", c.kind, c.value).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retries_come_from_the_rule_then_the_mesh_default_then_istiod() {
        let mut objects = crate::snapshot::Objects::default();
        let caller = Caller::hypothetical("default");
        let model = Model::build(&objects);
        assert_eq!(retry_attempts(&model, &caller, None), Some(DEFAULT_RETRY_ATTEMPTS));
        let before_defaults = Caller { istio_version: Some((1, 0)), ..caller.clone() };
        assert_eq!(retry_attempts(&model, &before_defaults, None), None);
        objects.mesh.default_http_retry_policy = Some(json!({"attempts": 5}));
        let model = Model::build(&objects);
        assert_eq!(retry_attempts(&model, &caller, None), Some(5));
        assert_eq!(retry_attempts(&model, &caller, Some(&json!({"attempts": 3}))), Some(3));
        // Zero or absent attempts turn retries off, whatever the defaults.
        assert_eq!(retry_attempts(&model, &caller, Some(&json!({"attempts": 0}))), None);
        assert_eq!(retry_attempts(&model, &caller, Some(&json!({"perTryTimeout": "2s"}))), None);
    }
}
