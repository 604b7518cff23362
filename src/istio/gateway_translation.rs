//! istiod's Gateway API controller, for mesh traffic (GAMMA): each HTTPRoute or GRPCRoute whose
//! parent is a Service becomes an internal VirtualService for that Service's host, which the
//! PushContext then indexes next to the users' VirtualServices.
//!
//! What istiod does, and so what this does (`pilot/pkg/config/kube/gateway`, see
//! docs/derivation.md): one rule per match, named `NAMESPACE.NAME.INDEX` unless the rule has a
//! name; a parent port becomes a port match on every rule; zero total weight becomes a direct
//! 500; the routes of one namespace for one host (and parent port) merge into one
//! VirtualService, oldest route first, then sorted by how specific their matches are.

use super::gateway_api::{BackendRef, MethodMatch, ParentRef, Route, RouteKind, RouteMatch, RouteRule};
use super::names::DEFAULT_DOMAIN;
use super::{Destination, HttpMatch, HttpRoute, MirrorPolicy, PortSelector, RouteDestination, StringMatch, VirtualService};
use crate::snapshot::{Objects, Resource};
use serde_json::json;
use std::collections::BTreeMap;

/// The internal VirtualServices istiod builds from the mesh routes in `objects` (already sorted
/// oldest first). Each carries the metadata of its oldest route, so findings name that route.
pub fn mesh_virtual_services(objects: &Objects) -> Vec<Resource<VirtualService>> {
    // (route namespace, parent port, host) → the routes' rules, oldest route first.
    let mut merged: BTreeMap<(String, Option<u32>, String), Resource<VirtualService>> = BTreeMap::new();
    for route in objects.routes.iter().filter(|r| matches!(r.spec.kind, RouteKind::Http | RouteKind::Grpc)) {
        let ns = &route.meta.namespace;
        for parent in route.spec.spec.parent_refs.iter().filter(|p| p.is_mesh() && accepted(route, p)) {
            let Some(host) = parent_host(objects, parent, ns) else { continue };
            let mut rules = rules_of(objects, route);
            if let Some(port) = parent.port {
                for rule in &mut rules {
                    if rule.matches.is_empty() {
                        rule.matches.push(HttpMatch::default());
                    }
                    rule.matches.iter_mut().for_each(|m| m.port = Some(port));
                }
            }
            let entry = merged.entry((ns.clone(), parent.port, host.clone())).or_insert_with(|| {
                let spec =
                    VirtualService { hosts: vec![host], gateways: vec!["mesh".into()], gateway_route: Some(route.spec.kind), ..VirtualService::default() };
                Resource::new(route.meta.clone(), spec)
            });
            entry.spec.http.extend(rules);
        }
    }
    let mut out: Vec<Resource<VirtualService>> = merged.into_values().collect();
    for vs in &mut out {
        sort_http_routes(&mut vs.spec.http);
    }
    // Oldest first, as the snapshot orders objects.
    out.sort_by(|a, b| (&a.meta.creation_timestamp, &a.meta.name, &a.meta.namespace).cmp(&(&b.meta.creation_timestamp, &b.meta.name, &b.meta.namespace)));
    out
}

/// False when istiod reported that this parent did not accept the route: it builds nothing for it.
fn accepted(route: &Resource<Route>, parent: &ParentRef) -> bool {
    !route.spec.status.parents.iter().any(|p| {
        p.controller_name == super::gateway_api::ISTIO_CONTROLLER
            && p.parent_ref.name == parent.name
            && p.parent_ref.kind() == parent.kind()
            && p.parent_ref.port == parent.port
            && p.conditions.iter().any(|c| c.kind == "Accepted" && c.status == "False")
    })
}

/// The host a mesh parent stands for: a Service's FQDN, or a ServiceEntry's first host.
fn parent_host(objects: &Objects, parent: &ParentRef, route_ns: &str) -> Option<String> {
    let ns = parent.namespace(route_ns);
    match parent.kind() {
        "Service" => Some(format!("{}.{ns}.svc.{DEFAULT_DOMAIN}", parent.name)),
        _ => objects.service_entries.iter().find(|se| se.meta.namespace == ns && se.meta.name == parent.name)?.spec.hosts.first().cloned(),
    }
}

/// A route's rules as VirtualService rules, one per match.
fn rules_of(objects: &Objects, route: &Resource<Route>) -> Vec<HttpRoute> {
    let mut out = Vec::new();
    for (index, rule) in route.spec.spec.rules.iter().enumerate() {
        let base = convert_rule(objects, route, rule, index);
        if rule.matches.is_empty() {
            out.push(HttpRoute { matches: vec![HttpMatch { uri: http_uri(None), ..HttpMatch::default() }], ..base });
            continue;
        }
        for m in &rule.matches {
            out.push(HttpRoute { matches: vec![convert_match(route.spec.kind, m)], ..base.clone() });
        }
    }
    out
}

/// Everything of a rule but its match: name, destinations (or a 500), filters, timeouts, retries.
fn convert_rule(objects: &Objects, route: &Resource<Route>, rule: &RouteRule, index: usize) -> HttpRoute {
    let ns = &route.meta.namespace;
    let name = rule.name.clone().unwrap_or_else(|| format!("{ns}.{}.{index}", route.meta.name));
    let mut out = HttpRoute { name: Some(name), ..HttpRoute::default() };
    for filter in &rule.filters {
        match filter.kind.as_str() {
            "RequestRedirect" => out.redirect = Some(Box::new(json!({}))),
            "URLRewrite" => out.rewrite = filter.url_rewrite.as_ref().and_then(rewrite).map(Box::new),
            "RequestMirror" => {
                let backend = filter.request_mirror.as_ref().map(|m| &m.backend_ref);
                out.mirrors.extend(backend.map(|b| MirrorPolicy { destination: destination(objects, b, ns) }));
            }
            _ => {}
        }
    }
    let weighted: Vec<&BackendRef> = rule.backend_refs.iter().filter(|b| b.weight() > 0).collect();
    if weighted.is_empty() && out.redirect.is_none() {
        out.direct_response = Some(Box::new(json!({"status": 500})));
    } else {
        // A lone backend is a plain cluster; several keep their relative weights.
        let lone = weighted.len() == 1;
        out.route = weighted
            .iter()
            .map(|b| RouteDestination {
                destination: destination(objects, b, ns),
                weight: Some(if lone { 0 } else { i32::try_from(b.weight()).unwrap_or(i32::MAX) }),
            })
            .collect();
    }
    if let Some(retry) = &rule.retry {
        out.retries = Some(Box::new(json!({"attempts": retry.attempts.unwrap_or(2)})));
    }
    let timeouts = rule.timeouts.as_ref();
    if let Some(request) = timeouts.and_then(|t| t.request.as_deref()).and_then(duration).filter(|d| d != "0s") {
        out.timeout = Some(request);
    }
    if let Some(backend) = timeouts.and_then(|t| t.backend_request.as_deref()).and_then(duration).filter(|d| d != "0s") {
        match &mut out.retries {
            Some(r) => r["perTryTimeout"] = json!(backend),
            None => out.timeout = Some(backend),
        }
    }
    out
}

/// `urlRewrite` as a VirtualService `rewrite`. A full-path replacement, and a prefix replaced by
/// `/`, become regex rewrites in Envoy, so they carry no `uri`.
fn rewrite(r: &super::gateway_api::UrlRewrite) -> Option<serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Some(path) = &r.path {
        match (path.kind.as_str(), &path.replace_prefix_match, &path.replace_full_path) {
            ("ReplacePrefixMatch", Some(p), _) => {
                let uri = p.trim_end_matches('/');
                if uri.is_empty() {
                    out.insert("uriRegexRewrite".into(), json!({"rewrite": "/\\2"}));
                } else {
                    out.insert("uri".into(), json!(uri));
                }
            }
            ("ReplaceFullPath", _, Some(p)) => {
                out.insert("uriRegexRewrite".into(), json!({"match": "/.*", "rewrite": p}));
            }
            _ => {}
        }
    }
    if let Some(h) = &r.hostname {
        out.insert("authority".into(), json!(h));
    }
    (!out.is_empty()).then_some(serde_json::Value::Object(out))
}

/// A backendRef's destination: a Service's FQDN, an Istio `Hostname`, or a ServiceEntry's host;
/// with its port.
fn destination(objects: &Objects, b: &BackendRef, route_ns: &str) -> Destination {
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    let host = match b.kind() {
        "Hostname" => b.name.clone(),
        "ServiceEntry" => objects
            .service_entries
            .iter()
            .find(|se| se.meta.namespace == ns && se.meta.name == b.name)
            .and_then(|se| se.spec.hosts.first().cloned())
            .unwrap_or_default(),
        _ => format!("{}.{ns}.svc.{DEFAULT_DOMAIN}", b.name),
    };
    Destination { host, subset: None, port: b.port.map(|number| PortSelector { number }) }
}

/// One route match as a VirtualService match.
fn convert_match(kind: RouteKind, m: &RouteMatch) -> HttpMatch {
    let typed = |kind: Option<&str>, value: &str| match kind {
        Some("RegularExpression") => StringMatch { regex: Some(value.to_string()), ..StringMatch::default() },
        _ => StringMatch { exact: Some(value.to_string()), ..StringMatch::default() },
    };
    let pairs = |list: &[super::gateway_api::TypedValue]| -> BTreeMap<String, StringMatch> {
        list.iter().map(|v| (v.name.clone(), typed(v.kind.as_deref(), v.value.as_deref().unwrap_or_default()))).collect()
    };
    let (uri, method) = match (&m.method, kind) {
        (Some(MethodMatch::Grpc(g)), _) => (grpc_uri(g), None),
        (Some(MethodMatch::Http(verb)), RouteKind::Http) => (http_uri(m.path.as_ref()), Some(typed(None, verb))),
        (_, RouteKind::Grpc) => (None, None),
        _ => (http_uri(m.path.as_ref()), None),
    };
    HttpMatch { uri, headers: pairs(&m.headers), query_params: pairs(&m.query_params), method, ..HttpMatch::default() }
}

/// An HTTPRoute path match: `PathPrefix /` when absent; a prefix loses its trailing `/`.
fn http_uri(path: Option<&super::gateway_api::TypedValue>) -> Option<StringMatch> {
    let value = path.and_then(|p| p.value.clone()).unwrap_or_else(|| "/".into());
    Some(match path.and_then(|p| p.kind.as_deref()) {
        Some("Exact") => StringMatch { exact: Some(value), ..StringMatch::default() },
        Some("RegularExpression") => StringMatch { regex: Some(value), ..StringMatch::default() },
        _ => {
            let trimmed = if value == "/" { value } else { value.trim_end_matches('/').to_string() };
            StringMatch { prefix: Some(trimmed), ..StringMatch::default() }
        }
    })
}

/// A GRPCRoute method match as the request path `/SERVICE/METHOD` it stands for.
fn grpc_uri(g: &super::gateway_api::GrpcMethod) -> Option<StringMatch> {
    let regex = g.kind.as_deref() == Some("RegularExpression");
    let m = |s: String| Some(StringMatch { regex: Some(s), ..StringMatch::default() });
    match (g.service.as_deref(), g.method.as_deref()) {
        (None, None) => None,
        (None, Some(method)) => m(format!("/[^/]+/{method}")),
        (Some(service), None) if regex => m(format!("/{service}/.+")),
        (Some(service), None) => Some(StringMatch { prefix: Some(format!("/{service}/")), ..StringMatch::default() }),
        (Some(service), Some(method)) if regex => m(format!("/{service}/{method}")),
        (Some(service), Some(method)) => Some(StringMatch { exact: Some(format!("/{service}/{method}")), ..StringMatch::default() }),
    }
}

/// The Gateway API's precedence among one host's rules: exact paths, then prefixes, then
/// regexes, longer first; then a method, more headers, more query parameters. Rules without a
/// match go last; ties keep their order (oldest route, then rule order).
fn sort_http_routes(rules: &mut [HttpRoute]) {
    let rank = |m: &HttpMatch| match &m.uri {
        Some(StringMatch { exact: Some(e), .. }) => (3, e.len()),
        Some(StringMatch { prefix: Some(p), .. }) => (2, p.len()),
        Some(StringMatch { regex: Some(r), .. }) => (1, r.len()),
        _ => (-1, 0),
    };
    let key = |r: &HttpRoute| {
        r.matches.first().map(|m| {
            let (rank, len) = rank(m);
            std::cmp::Reverse((rank, len, m.method.is_some(), m.headers.len(), m.query_params.len()))
        })
    };
    // `None` (no match) sorts last.
    rules.sort_by(|a, b| match (key(a), key(b)) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    });
}

/// A Gateway API duration (`1h2m3s`, `500ms`) as protobuf JSON writes it (`3723s`, `0.500s`).
pub fn duration(text: &str) -> Option<String> {
    let mut millis: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = [("ms", 2), ("h", 1), ("m", 1), ("s", 1)].into_iter().find(|(u, _)| rest.starts_with(u))?;
        millis += n * match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            _ => 3_600_000,
        };
        rest = &rest[len..];
    }
    let (s, ms) = (millis / 1000, millis % 1000);
    Some(if ms == 0 { format!("{s}s") } else { format!("{s}.{ms:03}s") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(docs: &[&str]) -> Objects {
        let mut objects = Objects::default();
        for (i, d) in docs.iter().enumerate() {
            objects.add_document(serde_saphyr::from_str(d).unwrap(), &format!("test[{i}]")).unwrap();
        }
        assert_eq!(objects.sort(), Vec::new());
        objects
    }

    #[test]
    fn durations_read_as_protobuf_writes_them() {
        assert_eq!(duration("10s").as_deref(), Some("10s"));
        assert_eq!(duration("1m30s").as_deref(), Some("90s"));
        assert_eq!(duration("500ms").as_deref(), Some("0.500s"));
        assert_eq!(duration("1h").as_deref(), Some("3600s"));
        assert_eq!(duration("ten"), None);
    }

    #[test]
    fn a_mesh_route_becomes_one_rule_per_match_with_istiod_names_and_port() {
        let o = objects(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/}}, {headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{name: reviews-v2, port: 9080, weight: 0}, {name: reviews-v1, port: 9080}]
  - backendRefs: [{name: reviews-v1, port: 9080, weight: 90}, {name: reviews-v2, port: 9080, weight: 10}]
"#]);
        let vs = mesh_virtual_services(&o);
        assert_eq!(vs.len(), 1);
        let v = &vs[0].spec;
        assert_eq!(v.hosts, ["reviews.default.svc.cluster.local"]);
        assert_eq!(v.gateway_route, Some(RouteKind::Http));
        let names: Vec<_> = v.http.iter().map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(names, ["default.reviews.0", "default.reviews.0", "default.reviews.1"]);
        // Prefix /api (trailing slash dropped) ranks above the header match's default prefix `/`.
        assert_eq!(v.http[0].matches[0].uri.as_ref().unwrap().prefix.as_deref(), Some("/api"));
        assert!(v.http.iter().all(|r| r.matches[0].port == Some(9080)));
        // A lone non-zero backend is a plain destination.
        assert_eq!(v.http[0].route.len(), 1);
        assert_eq!(v.http[2].route.iter().map(|d| d.weight.unwrap()).collect::<Vec<_>>(), [90, 10]);
    }

    #[test]
    fn zero_weight_is_a_500_and_grpc_methods_are_paths() {
        let o = objects(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: cart}]
  rules:
  - name: get
    matches: [{method: {service: shop.Cart, method: Get}}]
    backendRefs: [{name: cart, port: 50051, weight: 0}]
"#]);
        let v = &mesh_virtual_services(&o)[0].spec;
        assert_eq!(v.http[0].name.as_deref(), Some("get"));
        assert_eq!(v.http[0].matches[0].uri.as_ref().unwrap().exact.as_deref(), Some("/shop.Cart/Get"));
        assert_eq!(v.http[0].direct_response.as_deref(), Some(&json!({"status": 500})));
    }
}
