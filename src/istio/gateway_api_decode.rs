//! Gateway API objects decoded with the `gateway-api` crate's types (the API's own schema,
//! experimental channel, a superset of the standard one), then reduced to the one route form
//! the model translates for every kind.

use super::gateway::{Gateway, Server, ServerPort};
use super::gateway_api::{
    BackendRef, Condition, Filter, GrantFrom, GrantTo, GrpcMethod, MethodMatch, ParentRef, ParentStatus, PathModifier, ReferenceGrant, RequestMirror, Retry,
    RouteKind, RouteMatch, RouteRule, RouteSpec, RouteStatus, Timeouts, TypedValue, UrlRewrite,
};
use gateway_api::apis::experimental::{gateways, grpcroutes as grpc, httproutes as http, referencegrants, tcproutes as tcp, tlsroutes as tls};
use serde::Serialize;

/// A route's `spec` and `status` as the crate decodes them, for one route kind.
pub enum Decoded {
    /// `HTTPRoute`.
    Http(http::HttpRouteSpec, Option<http::HttpRouteStatus>),
    /// `GRPCRoute`.
    Grpc(grpc::GrpcRouteSpec, Option<grpc::GrpcRouteStatus>),
    /// `TCPRoute`.
    Tcp(tcp::TcpRouteSpec, Option<tcp::TcpRouteStatus>),
    /// `TLSRoute`.
    Tls(tls::TlsRouteSpec, Option<tls::TlsRouteStatus>),
}

/// The API's own word for an enum value (`PathPrefix`, `RegularExpression`, `GET`...).
fn word<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn port(p: Option<i32>) -> Option<u32> {
    p.and_then(|p| u32::try_from(p).ok())
}

/// `From` for the parentRef types each kind generates with the same fields.
macro_rules! parent_refs {
    ($($t:ty),*) => {$(
        impl From<$t> for ParentRef {
            fn from(p: $t) -> ParentRef {
                ParentRef { group: p.group, kind: p.kind, namespace: p.namespace, name: p.name, section_name: p.section_name, port: port(p.port) }
            }
        }
    )*};
}
parent_refs!(
    http::HttpRouteParentRefs,
    http::HttpRouteStatusParentsParentRef,
    grpc::GrpcRouteParentRefs,
    grpc::GrpcRouteStatusParentsParentRef,
    tcp::TcpRouteParentRefs,
    tcp::TcpRouteStatusParentsParentRef,
    tls::TlsRouteParentRefs,
    tls::TlsRouteStatusParentsParentRef
);

/// `From` for the backendRef types (with a weight, or a mirror's without one).
macro_rules! backend_refs {
    ($weight:ident: $($t:ty),*) => {$(
        impl From<$t> for BackendRef {
            fn from(b: $t) -> BackendRef {
                BackendRef { group: b.group, kind: b.kind, name: b.name, namespace: b.namespace, port: port(b.port), weight: backend_refs!(@$weight b) }
            }
        }
    )*};
    (@weighted $b:ident) => { $b.weight.and_then(|w| u32::try_from(w).ok()) };
    (@unweighted $b:ident) => { None };
}
backend_refs!(weighted: http::HttpRouteRulesBackendRefs, grpc::GrpcRouteRulesBackendRefs, tcp::TcpRouteRulesBackendRefs, tls::TlsRouteRulesBackendRefs);
backend_refs!(unweighted: http::HttpRouteRulesFiltersRequestMirrorBackendRef, grpc::GrpcRouteRulesFiltersRequestMirrorBackendRef);

/// `From` for each kind's status.
macro_rules! statuses {
    ($($t:ty),*) => {$(
        impl From<$t> for RouteStatus {
            fn from(s: $t) -> RouteStatus {
                let parents = s
                    .parents
                    .into_iter()
                    .map(|p| ParentStatus { parent_ref: p.parent_ref.into(), controller_name: p.controller_name, conditions: p.conditions.into_iter().map(condition).collect() })
                    .collect();
                RouteStatus { parents }
            }
        }
    )*};
}
statuses!(http::HttpRouteStatus, grpc::GrpcRouteStatus, tcp::TcpRouteStatus, tls::TlsRouteStatus);

fn condition(c: k8s_openapi_gateway::apimachinery::pkg::apis::meta::v1::Condition) -> Condition {
    Condition { kind: c.type_, status: c.status, reason: c.reason, message: c.message, observed_generation: c.observed_generation }
}

fn list<T, U: From<T>>(items: Option<Vec<T>>) -> Vec<U> {
    items.unwrap_or_default().into_iter().map(U::from).collect()
}

impl Decoded {
    /// The route kind, spec and status in the model's form.
    pub fn reduce(self) -> (RouteKind, RouteSpec, RouteStatus) {
        match self {
            Decoded::Http(spec, status) => {
                let rules = spec.rules.unwrap_or_default().into_iter().map(http_rule).collect();
                let spec = RouteSpec { parent_refs: list(spec.parent_refs), hostnames: spec.hostnames.unwrap_or_default(), rules };
                (RouteKind::Http, spec, status.map(Into::into).unwrap_or_default())
            }
            Decoded::Grpc(spec, status) => {
                let rules = spec.rules.unwrap_or_default().into_iter().map(grpc_rule).collect();
                let spec = RouteSpec { parent_refs: list(spec.parent_refs), hostnames: spec.hostnames.unwrap_or_default(), rules };
                (RouteKind::Grpc, spec, status.map(Into::into).unwrap_or_default())
            }
            Decoded::Tcp(spec, status) => {
                let rules =
                    spec.rules.into_iter().map(|r| RouteRule { name: r.name, backend_refs: list(Some(r.backend_refs)), ..RouteRule::default() }).collect();
                let spec = RouteSpec { parent_refs: list(spec.parent_refs), hostnames: Vec::new(), rules };
                (RouteKind::Tcp, spec, status.map(Into::into).unwrap_or_default())
            }
            Decoded::Tls(spec, status) => {
                let rules =
                    spec.rules.into_iter().map(|r| RouteRule { name: r.name, backend_refs: list(Some(r.backend_refs)), ..RouteRule::default() }).collect();
                let spec = RouteSpec { parent_refs: list(spec.parent_refs), hostnames: spec.hostnames, rules };
                (RouteKind::Tls, spec, status.map(Into::into).unwrap_or_default())
            }
        }
    }
}

fn typed_value<T: Serialize>(kind: &Option<T>, name: String, value: Option<String>) -> TypedValue {
    TypedValue { kind: kind.as_ref().map(word), name, value }
}

fn http_rule(r: http::HttpRouteRules) -> RouteRule {
    let matches = r
        .matches
        .unwrap_or_default()
        .into_iter()
        .map(|m| RouteMatch {
            path: m.path.map(|p| typed_value(&p.r#type, String::new(), p.value)),
            headers: m.headers.unwrap_or_default().into_iter().map(|h| typed_value(&h.r#type, h.name, Some(h.value))).collect(),
            query_params: m.query_params.unwrap_or_default().into_iter().map(|q| typed_value(&q.r#type, q.name, Some(q.value))).collect(),
            method: m.method.map(|v| MethodMatch::Http(word(&v))),
        })
        .collect();
    RouteRule {
        name: r.name,
        filters: list(r.filters),
        matches,
        backend_refs: list(r.backend_refs),
        timeouts: r.timeouts.map(|t| Timeouts { request: t.request, backend_request: t.backend_request }),
        retry: r.retry.map(|t| Retry {
            attempts: t.attempts.and_then(|a| u32::try_from(a).ok()),
            codes: t.codes.unwrap_or_default().into_iter().filter_map(|c| u32::try_from(c).ok()).collect(),
        }),
    }
}

fn grpc_rule(r: grpc::GrpcRouteRules) -> RouteRule {
    let matches = r
        .matches
        .unwrap_or_default()
        .into_iter()
        .map(|m| RouteMatch {
            headers: m.headers.unwrap_or_default().into_iter().map(|h| typed_value(&h.r#type, h.name, Some(h.value))).collect(),
            method: m.method.map(|g| MethodMatch::Grpc(GrpcMethod { kind: g.r#type.as_ref().map(word), service: g.service, method: g.method })),
            ..RouteMatch::default()
        })
        .collect();
    RouteRule { name: r.name, filters: list(r.filters), matches, backend_refs: list(r.backend_refs), ..RouteRule::default() }
}

impl From<http::HttpRouteRulesFilters> for Filter {
    fn from(f: http::HttpRouteRulesFilters) -> Filter {
        let path = |p: http::HttpRouteRulesFiltersUrlRewritePath| PathModifier {
            kind: word(&p.r#type),
            replace_full_path: p.replace_full_path,
            replace_prefix_match: p.replace_prefix_match,
        };
        Filter {
            kind: word(&f.r#type),
            url_rewrite: f.url_rewrite.map(|u| UrlRewrite { hostname: u.hostname, path: u.path.map(path) }),
            request_mirror: f.request_mirror.map(|m| RequestMirror { backend_ref: m.backend_ref.into() }),
        }
    }
}

impl From<grpc::GrpcRouteRulesFilters> for Filter {
    fn from(f: grpc::GrpcRouteRulesFilters) -> Filter {
        Filter { kind: word(&f.r#type), url_rewrite: None, request_mirror: f.request_mirror.map(|m| RequestMirror { backend_ref: m.backend_ref.into() }) }
    }
}

impl From<referencegrants::ReferenceGrantSpec> for ReferenceGrant {
    fn from(spec: referencegrants::ReferenceGrantSpec) -> ReferenceGrant {
        ReferenceGrant {
            from: spec.from.into_iter().map(|f| GrantFrom { group: f.group, kind: f.kind, namespace: f.namespace }).collect(),
            to: spec.to.into_iter().map(|t| GrantTo { group: t.group, kind: t.kind, name: t.name }).collect(),
        }
    }
}

impl From<gateways::GatewaySpec> for Gateway {
    /// A Gateway API Gateway as istiod's Gateway of servers: one per listener, on its hostname
    /// (every host when none); its proxy is deployed for it, so it has no selector.
    fn from(spec: gateways::GatewaySpec) -> Gateway {
        let servers = spec
            .listeners
            .into_iter()
            .map(|l| Server {
                port: Some(ServerPort { number: u32::try_from(l.port).unwrap_or(0), protocol: l.protocol, name: l.name }),
                hosts: vec![l.hostname.unwrap_or_else(|| "*".into())],
                tls: None,
                bind: None,
            })
            .collect();
        Gateway { selector: Default::default(), servers, gateway_api: true, class: Some(spec.gateway_class_name) }
    }
}

#[cfg(test)]
mod tests {
    use crate::istio::gateway_api::{MethodMatch, RouteKind};
    use crate::snapshot::Objects;
    use serde_json::json;

    #[test]
    fn every_route_kind_is_read_with_the_gateway_api_types_into_one_form() {
        let mut objects = Objects::default();
        let meta = |name: &str| json!({"name": name, "namespace": "default"});
        let grpc = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": meta("g"), "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "echo", "port": 7070}],
            "rules": [{"matches": [{"method": {"service": "echo.Echo", "method": "Get"}}], "backendRefs": [{"name": "echo-v2", "port": 7070, "weight": 0}]}]}});
        // v1alpha2 TLSRoutes may leave out the hostnames v1 requires.
        let tls = json!({"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TLSRoute", "metadata": meta("t"), "spec": {
            "parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "db", "port": 443}]}]}});
        let http = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "HTTPRoute", "metadata": meta("h"), "spec": {
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET"}], "retry": {"attempts": 3}}]},
            "status": {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "istio.io/gateway-controller", "conditions": [
                {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners", "message": "", "lastTransitionTime": "2026-11-02T09:00:00Z"}]}]}});
        for doc in [grpc, tls, http] {
            objects.add_document(doc, "test").unwrap();
        }
        let route = |name: &str| &objects.routes.iter().find(|r| r.meta.name == name).unwrap().spec;
        let g = route("g");
        assert_eq!((g.kind, g.spec.parent_refs[0].port, g.spec.rules[0].backend_refs[0].weight()), (RouteKind::Grpc, Some(7070), 0));
        assert!(matches!(&g.spec.rules[0].matches[0].method, Some(MethodMatch::Grpc(m)) if m.service.as_deref() == Some("echo.Echo")));
        let t = route("t");
        assert_eq!((t.kind, t.spec.hostnames.len(), t.spec.rules[0].backend_refs[0].kind()), (RouteKind::Tls, 0, "Service"));
        let h = route("h");
        let m = &h.spec.rules[0].matches[0];
        assert_eq!(m.path.as_ref().and_then(|p| p.kind.as_deref()), Some("PathPrefix"));
        assert!(matches!(&m.method, Some(MethodMatch::Http(v)) if v == "GET"));
        assert_eq!(h.spec.rules[0].retry.as_ref().and_then(|r| r.attempts), Some(3));
        assert_eq!(h.status.parents[0].conditions[0].reason, "NotAllowedByListeners");
    }

    #[test]
    fn a_value_the_schema_does_not_allow_is_an_error_naming_the_field() {
        let mut objects = Objects::default();
        let bad = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "h"}, "spec": {
            "rules": [{"matches": [{"path": {"type": "Glob", "value": "/api*"}}]}]}});
        let e = objects.add_document(bad, "routes.yaml").unwrap_err();
        assert!(e.to_string().contains("spec.rules[0].matches[0].path.type"), "{e}");
    }
}
