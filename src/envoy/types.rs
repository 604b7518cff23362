//! Envoy xDS resources (v2 and v3 JSON), reduced to the fields mesh-why compares.
//! Field names are Envoy's snake_case, with camelCase aliases for old and istiod-made dumps.

use super::de::flex_u64;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `envoy.config.route.v3.VirtualHost`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VirtualHost {
    /// Vhost name (`host:port` in Istio).
    #[serde(default)]
    pub name: String,
    /// Host/authority values this vhost answers.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Ordered routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// `ALL` or `EXTERNAL_ONLY` when plaintext gets a 301 to https (Gateway `httpsRedirect`).
    #[serde(default, alias = "requireTls")]
    pub require_tls: Option<String>,
}

/// `envoy.config.route.v3.Route`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    /// Route name (the VirtualService rule name, or `default`).
    pub name: Option<String>,
    /// Request match.
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    /// Forwarding action.
    pub route: Option<RouteAction>,
    /// Redirect action.
    pub redirect: Option<Value>,
    /// Direct response action.
    #[serde(alias = "directResponse")]
    pub direct_response: Option<DirectResponse>,
    /// Metadata; Istio stores the source VirtualService in `istio.config`.
    pub metadata: Option<Metadata>,
    /// Per-filter config (fault injection, CORS).
    #[serde(alias = "typedPerFilterConfig", alias = "per_filter_config")]
    pub typed_per_filter_config: Option<BTreeMap<String, Value>>,
}

/// `envoy.config.route.v3.RouteMatch`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteMatch {
    /// Path prefix.
    pub prefix: Option<String>,
    /// Exact path.
    pub path: Option<String>,
    /// Segment-aware prefix (gateways).
    #[serde(alias = "pathSeparatedPrefix")]
    pub path_separated_prefix: Option<String>,
    /// RE2 path regex.
    #[serde(alias = "safeRegex")]
    pub safe_regex: Option<RegexMatcher>,
    /// Legacy (v2) path regex.
    pub regex: Option<String>,
    /// Case sensitivity; omitted means true.
    #[serde(alias = "caseSensitive")]
    pub case_sensitive: Option<bool>,
    /// Header matchers.
    pub headers: Vec<HeaderMatcher>,
    /// Query parameter matchers (order not significant).
    #[serde(alias = "queryParameters")]
    pub query_parameters: Vec<Value>,
}

/// `{regex: "..."}` (the `google_re2` engine field is ignored).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RegexMatcher {
    /// The pattern.
    #[serde(default)]
    pub regex: String,
}

/// `envoy.config.route.v3.HeaderMatcher`, old and new spellings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct HeaderMatcher {
    /// Header name.
    pub name: String,
    /// v3 string matcher.
    #[serde(alias = "stringMatch")]
    pub string_match: Option<StringMatcher>,
    /// v2 exact.
    #[serde(alias = "exactMatch")]
    pub exact_match: Option<String>,
    /// v2 prefix.
    #[serde(alias = "prefixMatch")]
    pub prefix_match: Option<String>,
    /// v2 regex.
    #[serde(alias = "safeRegexMatch")]
    pub safe_regex_match: Option<RegexMatcher>,
    /// v2 legacy regex.
    #[serde(alias = "regexMatch")]
    pub regex_match: Option<String>,
    /// Negation.
    #[serde(alias = "invertMatch")]
    pub invert_match: Option<bool>,
    /// Presence (`true`) or absence (`false`) of the header.
    #[serde(alias = "presentMatch")]
    pub present_match: Option<bool>,
}

/// `envoy.type.matcher.v3.StringMatcher`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct StringMatcher {
    /// Exact.
    pub exact: Option<String>,
    /// Prefix.
    pub prefix: Option<String>,
    /// Suffix.
    pub suffix: Option<String>,
    /// Contains.
    pub contains: Option<String>,
    /// RE2 regex.
    #[serde(alias = "safeRegex")]
    pub safe_regex: Option<RegexMatcher>,
    /// Case-insensitive (not for regexes).
    #[serde(alias = "ignoreCase")]
    pub ignore_case: bool,
}

/// `envoy.config.route.v3.RouteAction`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteAction {
    /// Single upstream cluster.
    pub cluster: Option<String>,
    /// Weighted upstream clusters.
    #[serde(alias = "weightedClusters")]
    pub weighted_clusters: Option<WeightedClusters>,
    /// Route timeout (`"0s"` disables it).
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(alias = "retryPolicy")]
    pub retry_policy: Option<RetryPolicy>,
    /// Mirror policies (v3 list).
    #[serde(alias = "requestMirrorPolicies")]
    pub request_mirror_policies: Vec<MirrorPolicy>,
    /// Mirror policy (v2 single).
    #[serde(alias = "requestMirrorPolicy")]
    pub request_mirror_policy: Option<MirrorPolicy>,
    /// Prefix rewrite.
    #[serde(alias = "prefixRewrite")]
    pub prefix_rewrite: Option<String>,
    /// Authority rewrite.
    #[serde(alias = "hostRewriteLiteral", alias = "host_rewrite")]
    pub host_rewrite_literal: Option<String>,
}

/// `weighted_clusters`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WeightedClusters {
    /// The clusters and their weights.
    #[serde(default)]
    pub clusters: Vec<WeightedCluster>,
}

/// One weighted cluster.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WeightedCluster {
    /// Cluster name.
    #[serde(default)]
    pub name: String,
    /// Relative weight.
    #[serde(default, deserialize_with = "flex_u64")]
    pub weight: Option<u64>,
}

impl WeightedCluster {
    /// The weight as the uint32 Envoy holds; a larger value (a hand-edited file) saturates.
    pub fn weight_u32(&self) -> u32 {
        self.weight.map_or(0, |w| u32::try_from(w).unwrap_or(u32::MAX))
    }
}

/// `retry_policy`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RetryPolicy {
    /// Attempts after the first.
    #[serde(default, alias = "numRetries", deserialize_with = "flex_u64")]
    pub num_retries: Option<u64>,
}

/// A mirror policy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MirrorPolicy {
    /// Mirror cluster.
    #[serde(default)]
    pub cluster: String,
}

/// `direct_response`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DirectResponse {
    /// HTTP status.
    #[serde(default)]
    pub status: u32,
}

/// `metadata.filter_metadata`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    /// Per-filter metadata; Istio's lives under `istio`.
    #[serde(default, alias = "filterMetadata")]
    pub filter_metadata: BTreeMap<String, Value>,
}

impl Metadata {
    /// `filter_metadata.istio.<key>` as a string.
    pub fn istio(&self, key: &str) -> Option<&str> {
        self.filter_metadata.get("istio")?.get(key)?.as_str()
    }
}

/// `envoy.config.cluster.v3.Cluster`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Load-balancing policy; omitted means `ROUND_ROBIN`.
    #[serde(alias = "lbPolicy")]
    pub lb_policy: Option<String>,
    /// Metadata: Istio's `istio.config` names the DestinationRule, `istio.subset` the subset.
    pub metadata: Option<Metadata>,
}

/// `envoy.config.endpoint.v3.ClusterLoadAssignment`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClusterLoadAssignment {
    /// Cluster (or EDS service) name.
    #[serde(alias = "clusterName")]
    pub cluster_name: String,
    /// Endpoints grouped by locality.
    pub endpoints: Vec<LocalityEndpoints>,
}

/// `LocalityLbEndpoints`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LocalityEndpoints {
    /// Endpoints in this locality.
    #[serde(alias = "lbEndpoints")]
    pub lb_endpoints: Vec<LbEndpoint>,
}

/// `LbEndpoint`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LbEndpoint {
    /// The endpoint address.
    pub endpoint: Option<EndpointAddress>,
    /// Health as sent by the control plane.
    #[serde(alias = "healthStatus")]
    pub health_status: Option<String>,
}

/// `Endpoint`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EndpointAddress {
    /// Address.
    #[serde(default)]
    pub address: Option<Address>,
}

/// `Address` with a socket address.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Address {
    /// IP and port.
    #[serde(default, alias = "socketAddress")]
    pub socket_address: Option<SocketAddress>,
}

/// `SocketAddress`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SocketAddress {
    /// IP or host name.
    #[serde(default)]
    pub address: String,
    /// Port.
    #[serde(default, alias = "portValue", deserialize_with = "flex_u64")]
    pub port_value: Option<u64>,
}

impl SocketAddress {
    /// `ip:port`.
    pub fn to_addr(&self) -> String {
        format!("{}:{}", self.address, self.port_value.unwrap_or(0))
    }
}
