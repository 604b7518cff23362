//! Gateway API routes (`gateway.networking.k8s.io` HTTPRoute, GRPCRoute, TCPRoute, TLSRoute) and
//! ReferenceGrant: the fields istiod translates, plus the status it writes back.
//!
//! One struct serves every route kind: they share `parentRefs`, `hostnames` and rules of
//! `backendRefs`; HTTP-only fields are simply absent on the others. Objects are decoded with the
//! `gateway-api` crate's types ([`super::gateway_api_decode`]) and reduced to this form, which
//! keeps only what istiod's translation and the checks read, with the Gateway API's field names.

/// The Gateway API route kinds istiod translates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    /// `HTTPRoute`.
    #[default]
    Http,
    /// `GRPCRoute`.
    Grpc,
    /// `TCPRoute`.
    Tcp,
    /// `TLSRoute`.
    Tls,
}

impl RouteKind {
    /// The kind as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Tls => "TLSRoute",
        }
    }

    /// The kind named `kind`, if it is a route kind.
    pub fn from_kind(kind: &str) -> Option<RouteKind> {
        Some(match kind {
            "HTTPRoute" => RouteKind::Http,
            "GRPCRoute" => RouteKind::Grpc,
            "TCPRoute" => RouteKind::Tcp,
            "TLSRoute" => RouteKind::Tls,
            _ => return None,
        })
    }
}

/// A route's `spec` and `status`, with its kind and `metadata.generation`.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Which route kind this is.
    pub kind: RouteKind,
    /// `metadata.generation`: compared with the status' `observedGeneration`.
    pub generation: Option<i64>,
    /// `spec`.
    pub spec: RouteSpec,
    /// `status` as written by the controllers.
    pub status: RouteStatus,
}

/// `spec` of any route kind.
#[derive(Debug, Clone, Default)]
pub struct RouteSpec {
    /// Gateways (ingress) or Services (GAMMA, mesh traffic) the route attaches to.
    pub parent_refs: Vec<ParentRef>,
    /// Hosts matched (HTTPRoute, GRPCRoute, TLSRoute).
    pub hostnames: Vec<String>,
    /// Rules, in order.
    pub rules: Vec<RouteRule>,
}

/// One `parentRefs[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentRef {
    /// API group; `gateway.networking.k8s.io` when absent, `""` for core (Service).
    pub group: Option<String>,
    /// `Gateway` when absent; `Service` or `ServiceEntry` for mesh routes.
    pub kind: Option<String>,
    /// Namespace; the route's own when absent.
    pub namespace: Option<String>,
    /// Name of the parent.
    pub name: String,
    /// Listener name on a Gateway.
    pub section_name: Option<String>,
    /// Port: a listener port on a Gateway, a Service port for mesh routes.
    pub port: Option<u32>,
}

impl ParentRef {
    /// The parent's kind, with the Gateway API default.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Gateway")
    }

    /// The parent's namespace, defaulting to the route's.
    pub fn namespace<'a>(&'a self, route_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(route_namespace)
    }

    /// True for a mesh (GAMMA) parent: a Service or ServiceEntry rather than a Gateway.
    pub fn is_mesh(&self) -> bool {
        matches!(self.kind(), "Service" | "ServiceEntry")
    }

    /// `Kind ns/name[:port][/section]`, as findings name the parent.
    pub fn display(&self, route_namespace: &str) -> String {
        let mut s = format!("{} {}/{}", self.kind(), self.namespace(route_namespace), self.name);
        if let Some(p) = self.port {
            s.push_str(&format!(" port {p}"));
        }
        if let Some(section) = &self.section_name {
            s.push_str(&format!(" listener {section}"));
        }
        s
    }
}

/// One `rules[]` entry (HTTPRoute and GRPCRoute; TCPRoute and TLSRoute use only `backendRefs`).
#[derive(Debug, Clone, Default)]
pub struct RouteRule {
    /// Rule name (becomes the Envoy route name when set).
    pub name: Option<String>,
    /// Filters, applied to every request the rule takes.
    pub filters: Vec<Filter>,
    /// Matches, OR-ed (none: every request).
    pub matches: Vec<RouteMatch>,
    /// Backends and their weights.
    pub backend_refs: Vec<BackendRef>,
    /// `timeouts` (HTTPRoute).
    pub timeouts: Option<Timeouts>,
    /// `retry` (HTTPRoute, experimental channel).
    pub retry: Option<Retry>,
}

/// One `matches[]` entry of an HTTPRoute or GRPCRoute.
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    /// Path match (HTTPRoute).
    pub path: Option<TypedValue>,
    /// Header matches.
    pub headers: Vec<TypedValue>,
    /// Query parameter matches (HTTPRoute).
    pub query_params: Vec<TypedValue>,
    /// HTTP method (HTTPRoute) or gRPC service and method (GRPCRoute).
    pub method: Option<MethodMatch>,
}

/// `matches[].method`: a string on HTTPRoute, an object on GRPCRoute.
#[derive(Debug, Clone)]
pub enum MethodMatch {
    /// HTTPRoute: `GET`, `POST`...
    Http(String),
    /// GRPCRoute: `{type, service, method}`.
    Grpc(GrpcMethod),
}

/// GRPCRoute `matches[].method`.
#[derive(Debug, Clone, Default)]
pub struct GrpcMethod {
    /// `Exact` (default) or `RegularExpression`.
    pub kind: Option<String>,
    /// gRPC service, e.g. `foo.Bar`.
    pub service: Option<String>,
    /// gRPC method, e.g. `Get`.
    pub method: Option<String>,
}

/// `{type, name, value}` of a path, header or query parameter match.
#[derive(Debug, Clone, Default)]
pub struct TypedValue {
    /// `Exact`, `PathPrefix`, `RegularExpression`.
    pub kind: Option<String>,
    /// Header or parameter name.
    pub name: String,
    /// Value; absent on a path match means `/`.
    pub value: Option<String>,
}

/// `rules[].timeouts`.
#[derive(Debug, Clone, Default)]
pub struct Timeouts {
    /// Whole request, e.g. `10s`.
    pub request: Option<String>,
    /// Each try to a backend.
    pub backend_request: Option<String>,
}

/// `rules[].retry`.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    /// Attempts; 2 when absent.
    pub attempts: Option<u32>,
    /// HTTP status codes that are retried.
    pub codes: Vec<u32>,
}

impl RouteRule {
    /// True when the rule answers by itself (redirect), so it needs no backend.
    pub fn redirects(&self) -> bool {
        self.filters.iter().any(|f| f.kind == "RequestRedirect")
    }
}

/// A rule's filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `RequestHeaderModifier`, `ResponseHeaderModifier`, `RequestRedirect`, `URLRewrite`,
    /// `RequestMirror`, `CORS`, `ExtensionRef`.
    pub kind: String,
    /// `URLRewrite`.
    pub url_rewrite: Option<UrlRewrite>,
    /// `RequestMirror`.
    pub request_mirror: Option<RequestMirror>,
}

/// The `urlRewrite` filter.
#[derive(Debug, Clone, Default)]
pub struct UrlRewrite {
    /// New Host header.
    pub hostname: Option<String>,
    /// New path.
    pub path: Option<PathModifier>,
}

/// `urlRewrite.path`.
#[derive(Debug, Clone, Default)]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    pub kind: String,
    /// The whole new path.
    pub replace_full_path: Option<String>,
    /// What the matched prefix becomes.
    pub replace_prefix_match: Option<String>,
}

/// The `requestMirror` filter.
#[derive(Debug, Clone, Default)]
pub struct RequestMirror {
    /// Where copies go.
    pub backend_ref: BackendRef,
}

/// One `backendRefs[]` entry.
#[derive(Debug, Clone, Default)]
pub struct BackendRef {
    /// API group; `""` (core) when absent.
    pub group: Option<String>,
    /// `Service` when absent.
    pub kind: Option<String>,
    /// Name of the backend.
    pub name: String,
    /// Namespace; the route's own when absent.
    pub namespace: Option<String>,
    /// Port of the backend; required for a Service.
    pub port: Option<u32>,
    /// Share of traffic; 1 when absent.
    pub weight: Option<u32>,
}

impl BackendRef {
    /// The backend's kind, with the Gateway API default.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Service")
    }

    /// The backend's group, with the Gateway API default (core).
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or("")
    }

    /// The backend's weight, with the Gateway API default of 1.
    pub fn weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}

/// A route's `status`.
#[derive(Debug, Clone, Default)]
pub struct RouteStatus {
    /// One entry per parent and controller.
    pub parents: Vec<ParentStatus>,
}

/// `status.parents[]`.
#[derive(Debug, Clone, Default)]
pub struct ParentStatus {
    /// The parent this entry is about.
    pub parent_ref: ParentRef,
    /// Who wrote it; istiod writes `istio.io/gateway-controller`.
    pub controller_name: String,
    /// Conditions: `Accepted`, `ResolvedRefs`, `ResolvedWaypoints`...
    pub conditions: Vec<Condition>,
}

/// A status condition (metav1.Condition).
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// `Accepted`, `ResolvedRefs`, `Programmed`, `ResolvedWaypoints`...
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The `metadata.generation` the controller had processed when it wrote this.
    pub observed_generation: Option<i64>,
}

/// The controller name istiod writes into route status (`PILOT_GATEWAY_API_CONTROLLER_NAME`).
pub const ISTIO_CONTROLLER: &str = "istio.io/gateway-controller";

/// ReferenceGrant `spec`: which kinds in which namespaces may refer to objects here.
#[derive(Debug, Clone, Default)]
pub struct ReferenceGrant {
    /// Who may refer.
    pub from: Vec<GrantFrom>,
    /// What may be referred to.
    pub to: Vec<GrantTo>,
}

/// `spec.from[]`.
#[derive(Debug, Clone, Default)]
pub struct GrantFrom {
    /// Group of the referring kind.
    pub group: String,
    /// Referring kind (`HTTPRoute`...).
    pub kind: String,
    /// Namespace of the referring objects.
    pub namespace: String,
}

/// `spec.to[]`.
#[derive(Debug, Clone, Default)]
pub struct GrantTo {
    /// Group of the referred kind (`""` for Service).
    pub group: String,
    /// Referred kind.
    pub kind: String,
    /// Only this object, when set.
    pub name: Option<String>,
}

impl ReferenceGrant {
    /// True when this grant (in the backend's namespace) lets a `from_kind` in `from_namespace`
    /// refer to backend `group`/`kind`/`name`. Every `to` entry counts (Istio before 1.30 only
    /// honored the last one).
    pub fn permits(&self, from_kind: &str, from_namespace: &str, group: &str, kind: &str, name: &str) -> bool {
        self.from.iter().any(|f| f.group == "gateway.networking.k8s.io" && f.kind == from_kind && f.namespace == from_namespace)
            && self.to.iter().any(|t| t.group == group && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name))
    }
}
