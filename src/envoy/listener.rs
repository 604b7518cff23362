//! `envoy.config.listener.v3.Listener`, reduced to what decides where a connection goes:
//! address, listener filters, filter chain matches, TLS termination and the network filter.

use super::types::VirtualHost;
use serde_json::Value;

/// A listener as a request walker needs it.
#[derive(Debug, Clone, Default)]
pub struct ListenerDetail {
    /// Bound address (`0.0.0.0`, a VIP, a pod IP).
    pub address: String,
    /// Bound port.
    pub port: u32,
    /// `bind_to_port: false`: reached only through `virtualOutbound`/`virtualInbound` hand-off.
    pub bind_to_port: bool,
    /// `use_original_dst`: hands connections to the listener of their original destination.
    pub use_original_dst: bool,
    /// Listener filters (the TLS inspector reads SNI and ALPN, the HTTP inspector tells
    /// plaintext HTTP from other bytes) with the ports they are disabled on.
    pub listener_filters: Vec<ListenerFilter>,
    /// Filter chains in order.
    pub filter_chains: Vec<FilterChain>,
    /// Chain used when none matches.
    pub default_filter_chain: Option<FilterChain>,
    /// `filter_chain_matcher`: when set, it picks the chain by name instead of the
    /// `filter_chain_match` sieve (waypoints choose by destination VIP and port).
    pub chain_matcher: Option<ChainMatcher>,
    /// An Envoy-internal listener (`internal_listener`): reached from another listener, not
    /// from the network (a waypoint's `main_internal`, fed by its HBONE listener).
    pub internal: bool,
}

/// One level of a `filter_chain_matcher` tree: an input and the values that lead on.
#[derive(Debug, Clone, Default)]
pub struct ChainMatcher {
    /// The input's type, e.g. `DestinationIPInput`, `DestinationPortInput`,
    /// `ApplicationProtocolInput`.
    pub input: String,
    /// `exact_match_map`: value → what follows.
    pub exact: Vec<(String, OnMatch)>,
    /// `custom_match` IP ranges: (prefix, length) → what follows.
    pub ranges: Vec<(String, u32, OnMatch)>,
    /// `on_no_match`.
    pub on_no_match: Option<Box<OnMatch>>,
}

/// What a matcher leads to: a filter chain by name, or another level.
#[derive(Debug, Clone)]
pub enum OnMatch {
    /// The action's chain name.
    Chain(String),
    /// A nested matcher.
    Matcher(Box<ChainMatcher>),
}

impl OnMatch {
    fn from_json(v: &Value) -> Option<OnMatch> {
        if let Some(m) = field(v, "matcher") {
            return ChainMatcher::from_json(m).map(|m| OnMatch::Matcher(Box::new(m)));
        }
        field(v, "action").and_then(|a| text(a, "name")).map(OnMatch::Chain)
    }
}

impl ChainMatcher {
    /// Reads `{matcher_tree, on_no_match}`.
    pub fn from_json(v: &Value) -> Option<ChainMatcher> {
        let tree = field(v, "matcher_tree")?;
        let input = field(tree, "input").and_then(|i| filter_config(i)).and_then(|c| c.get("@type")).and_then(Value::as_str).unwrap_or_default();
        let exact = field(tree, "exact_match_map")
            .and_then(|m| field(m, "map"))
            .and_then(Value::as_object)
            .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), OnMatch::from_json(v)?))).collect())
            .unwrap_or_default();
        let ranges = field(tree, "custom_match")
            .and_then(filter_config)
            .map(|c| {
                list(c, "range_matchers")
                    .iter()
                    .flat_map(|r| {
                        let next = field(r, "on_match").and_then(OnMatch::from_json);
                        list(r, "ranges").iter().filter_map(move |range| {
                            Some((text(range, "address_prefix")?, number(field(range, "prefix_len")).unwrap_or(32) as u32, next.clone()?))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(ChainMatcher {
            input: input.rsplit('.').next().unwrap_or_default().to_string(),
            exact,
            ranges,
            on_no_match: field(v, "on_no_match").and_then(OnMatch::from_json).map(Box::new),
        })
    }
}

/// A listener filter and where it is switched off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerFilter {
    /// Filter name (`envoy.filters.listener.tls_inspector`).
    pub name: String,
    /// `filter_disabled`.
    pub disabled: Option<Predicate>,
}

/// `envoy.config.listener.v3.ListenerFilterChainMatchPredicate`.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `destination_port_range` [start, end).
    Ports(u32, u32),
    /// `or_match`.
    Or(Vec<Predicate>),
    /// `and_match`.
    And(Vec<Predicate>),
    /// `not_match`.
    Not(Box<Predicate>),
    /// `any_match`.
    Any,
}

impl Predicate {
    fn from_json(v: &Value) -> Predicate {
        let rules = |k| field(v, k).map(|m| list(m, "rules").iter().map(Predicate::from_json).collect()).unwrap_or_default();
        if let Some(r) = field(v, "destination_port_range") {
            Predicate::Ports(number(field(r, "start")).unwrap_or(0) as u32, number(field(r, "end")).unwrap_or(0) as u32)
        } else if field(v, "or_match").is_some() {
            Predicate::Or(rules("or_match"))
        } else if field(v, "and_match").is_some() {
            Predicate::And(rules("and_match"))
        } else if let Some(n) = field(v, "not_match") {
            Predicate::Not(Box::new(Predicate::from_json(n)))
        } else {
            Predicate::Any
        }
    }

    /// Whether the predicate holds for a connection to `port`.
    pub fn holds(&self, port: u32) -> bool {
        match self {
            Predicate::Ports(start, end) => (*start..*end).contains(&port),
            Predicate::Or(rules) => rules.iter().any(|r| r.holds(port)),
            Predicate::And(rules) => rules.iter().all(|r| r.holds(port)),
            Predicate::Not(rule) => !rule.holds(port),
            Predicate::Any => true,
        }
    }
}

/// One filter chain.
#[derive(Debug, Clone, Default)]
pub struct FilterChain {
    /// Chain name (istiod names most of them).
    pub name: String,
    /// `filter_chain_match`.
    pub matcher: ChainMatch,
    /// TLS termination (`transport_socket` of type tls).
    pub tls: Option<TlsTermination>,
    /// The terminal network filter.
    pub network: NetworkFilter,
}

/// `filter_chain_match`: empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChainMatch {
    /// `destination_port`.
    pub destination_port: Option<u32>,
    /// `prefix_ranges` as (address, prefix length).
    pub prefix_ranges: Vec<(String, u32)>,
    /// `server_names` (SNI; `*.example.com` wildcards allowed).
    pub server_names: Vec<String>,
    /// `transport_protocol` (`tls`, `raw_buffer`).
    pub transport_protocol: Option<String>,
    /// `application_protocols` (ALPN or what the HTTP inspector detected).
    pub application_protocols: Vec<String>,
}

/// A chain's `DownstreamTlsContext`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsTermination {
    /// `require_client_certificate`.
    pub require_client_certificate: bool,
    /// The certificate comes from Istio's workload identity (SDS secret `default`): Istio mTLS.
    pub istio_mtls: bool,
}

/// The network filter that ends a chain.
#[derive(Debug, Clone, Default)]
pub enum NetworkFilter {
    /// HTTP connection manager: RDS name or an inline route configuration.
    Http {
        /// `rds.route_config_name`.
        rds: Option<String>,
        /// Inline `route_config`.
        inline: Option<Box<RouteConfiguration>>,
    },
    /// `tcp_proxy` to one cluster or weighted clusters.
    Tcp {
        /// `cluster`.
        cluster: Option<String>,
        /// `weighted_clusters` (name, weight).
        weighted: Vec<(String, u64)>,
    },
    /// Something else (the last filter's name), or nothing.
    #[default]
    Other,
}

/// A route configuration: name and virtual hosts.
#[derive(Debug, Clone, Default)]
pub struct RouteConfiguration {
    /// Name (`80`, `http.80`, `inbound|8080||`).
    pub name: String,
    /// Virtual hosts in order.
    pub virtual_hosts: Vec<VirtualHost>,
}

/// Field `snake` or its camelCase spelling.
fn field<'v>(v: &'v Value, snake: &str) -> Option<&'v Value> {
    v.get(snake).or_else(|| {
        let mut camel = String::new();
        let mut up = false;
        for c in snake.chars() {
            if c == '_' {
                up = true;
            } else if up {
                camel.extend(c.to_uppercase());
                up = false;
            } else {
                camel.push(c);
            }
        }
        v.get(camel)
    })
}

fn text(v: &Value, snake: &str) -> Option<String> {
    field(v, snake).and_then(Value::as_str).map(str::to_string)
}

fn number(v: Option<&Value>) -> Option<u64> {
    // proto3 JSON writes wrapped integers as numbers, 64-bit ones as strings.
    let v = v?;
    let v = v.get("value").unwrap_or(v);
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

/// A `bool` or a `BoolValue` wrapper (`{"value": true}`).
fn flag(v: &Value, snake: &str) -> Option<bool> {
    let f = field(v, snake)?;
    f.as_bool().or_else(|| f.get("value")?.as_bool())
}

fn list<'v>(v: &'v Value, snake: &str) -> &'v [Value] {
    field(v, snake).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The filter's config: `typed_config`, else the v2 `config`.
fn filter_config(filter: &Value) -> Option<&Value> {
    field(filter, "typed_config").or_else(|| filter.get("config"))
}

impl ListenerDetail {
    /// Reads a listener from its proto3 JSON.
    pub fn from_json(v: &Value) -> ListenerDetail {
        let socket = field(v, "address").and_then(|a| field(a, "socket_address"));
        ListenerDetail {
            address: socket.and_then(|s| text(s, "address")).unwrap_or_default(),
            port: number(socket.and_then(|s| field(s, "port_value"))).unwrap_or(0) as u32,
            bind_to_port: flag(v, "bind_to_port").unwrap_or(true),
            use_original_dst: flag(v, "use_original_dst").unwrap_or(false),
            listener_filters: list(v, "listener_filters")
                .iter()
                .map(|f| ListenerFilter { name: text(f, "name").unwrap_or_default(), disabled: field(f, "filter_disabled").map(Predicate::from_json) })
                .collect(),
            filter_chains: list(v, "filter_chains").iter().map(FilterChain::from_json).collect(),
            default_filter_chain: field(v, "default_filter_chain").map(FilterChain::from_json),
            chain_matcher: field(v, "filter_chain_matcher").and_then(ChainMatcher::from_json),
            internal: field(v, "internal_listener").is_some(),
        }
    }
}

impl ListenerDetail {
    /// True when a listener filter whose name ends in `short` runs for connections to `port`.
    pub fn runs_filter(&self, short: &str, port: u32) -> bool {
        self.listener_filters.iter().any(|f| f.name.ends_with(short) && !f.disabled.as_ref().is_some_and(|d| d.holds(port)))
    }
}

impl FilterChain {
    /// Reads a filter chain from its proto3 JSON.
    pub fn from_json(v: &Value) -> FilterChain {
        let m = field(v, "filter_chain_match").cloned().unwrap_or(Value::Null);
        let matcher = ChainMatch {
            destination_port: number(field(&m, "destination_port")).map(|p| p as u32),
            prefix_ranges: list(&m, "prefix_ranges")
                .iter()
                .filter_map(|r| Some((text(r, "address_prefix")?, number(field(r, "prefix_len")).unwrap_or(0) as u32)))
                .collect(),
            server_names: list(&m, "server_names").iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
            transport_protocol: text(&m, "transport_protocol").filter(|t| !t.is_empty()),
            application_protocols: list(&m, "application_protocols").iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        };
        let tls = field(v, "transport_socket").and_then(|ts| {
            let cfg = filter_config(ts)?;
            let ty = cfg.get("@type").and_then(Value::as_str).unwrap_or_default();
            if !ty.ends_with("DownstreamTlsContext") && !text(ts, "name").unwrap_or_default().contains("tls") {
                return None;
            }
            let common = field(cfg, "common_tls_context").cloned().unwrap_or(Value::Null);
            let sds_names: Vec<String> = list(&common, "tls_certificate_sds_secret_configs").iter().filter_map(|s| text(s, "name")).collect();
            let validation = field(&common, "combined_validation_context")
                .and_then(|c| field(c, "validation_context_sds_secret_config"))
                .and_then(|s| text(s, "name"))
                .unwrap_or_default();
            let require = flag(cfg, "require_client_certificate").unwrap_or(false);
            Some(TlsTermination { require_client_certificate: require, istio_mtls: sds_names.iter().any(|n| n == "default") && validation == "ROOTCA" })
        });
        let network = list(v, "filters").iter().rev().find_map(NetworkFilter::from_json).unwrap_or_default();
        FilterChain { name: text(v, "name").unwrap_or_default(), matcher, tls, network }
    }
}

impl NetworkFilter {
    /// Reads the HTTP connection manager or tcp_proxy of a network filter; `None` for others.
    fn from_json(filter: &Value) -> Option<NetworkFilter> {
        let name = text(filter, "name").unwrap_or_default();
        let cfg = filter_config(filter).cloned().unwrap_or(Value::Null);
        let ty = cfg.get("@type").and_then(Value::as_str).unwrap_or_default();
        if name.ends_with("http_connection_manager") || ty.ends_with("HttpConnectionManager") {
            let rds = field(&cfg, "rds").and_then(|r| text(r, "route_config_name"));
            let inline = field(&cfg, "route_config").map(|rc| Box::new(RouteConfiguration::from_json(rc)));
            return Some(NetworkFilter::Http { rds, inline });
        }
        if name.ends_with("tcp_proxy") || ty.ends_with("TcpProxy") {
            let weighted = field(&cfg, "weighted_clusters")
                .map(|w| list(w, "clusters").iter().filter_map(|c| Some((text(c, "name")?, number(field(c, "weight")).unwrap_or(0)))).collect())
                .unwrap_or_default();
            return Some(NetworkFilter::Tcp { cluster: text(&cfg, "cluster"), weighted });
        }
        None
    }
}

impl RouteConfiguration {
    /// Reads a route configuration (inline or from RDS); virtual hosts that do not decode are dropped.
    pub fn from_json(v: &Value) -> RouteConfiguration {
        RouteConfiguration {
            name: text(v, "name").unwrap_or_default(),
            virtual_hosts: list(v, "virtual_hosts").iter().filter_map(|vh| serde_json::from_value(vh.clone()).ok()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_istio_outbound_listener() {
        let v: Value = serde_json::json!({
            "name": "0.0.0.0_80", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
            "listener_filters": [{"name": "envoy.filters.listener.tls_inspector"},
                {"name": "envoy.filters.listener.http_inspector", "filter_disabled": {"or_match": {"rules": [{"destination_port_range": {"start": 81, "end": 82}}]}}}],
            "filter_chains": [{"name": "0.0.0.0_80", "filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {"rds": {"route_config_name": "80"}}}]}],
            "default_filter_chain": {"name": "PassthroughFilterChain", "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"cluster": "PassthroughCluster"}}]},
            "bindToPort": false
        });
        let l = ListenerDetail::from_json(&v);
        assert_eq!((l.address.as_str(), l.port, l.bind_to_port), ("0.0.0.0", 80, false));
        assert!(l.runs_filter("tls_inspector", 81) && l.runs_filter("http_inspector", 80) && !l.runs_filter("http_inspector", 81));
        assert!(matches!(&l.filter_chains[0].network, NetworkFilter::Http { rds: Some(r), inline: None } if r == "80"));
        assert_eq!(l.filter_chains[0].matcher.application_protocols, ["http/1.1", "h2c"]);
        assert!(matches!(l.default_filter_chain.unwrap().network, NetworkFilter::Tcp { cluster: Some(c), .. } if c == "PassthroughCluster"));
    }
}
