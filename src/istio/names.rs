//! Istio's naming rules: short-name resolution, wildcard hosts, cluster names, port protocols.

use std::fmt;

/// The default Kubernetes cluster domain.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// Resolves a VirtualService or DestinationRule host the way istiod does: a name without a dot
/// becomes `<name>.<namespace>.svc.<domain>`; anything with a dot, `*` or an IP is literal.
pub fn resolve_short_name(host: &str, namespace: &str, domain: &str) -> String {
    if host.contains('.') || host.contains('*') || host.contains(':') || host.is_empty() {
        host.to_ascii_lowercase()
    } else {
        format!("{}.{namespace}.svc.{domain}", host.to_ascii_lowercase())
    }
}

/// Matches a host pattern (`*`, `*.suffix` or exact) against a concrete host name.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// True when either host pattern could match a name the other matches (istiod's bidirectional
/// wildcard test for VirtualService hosts against Sidecar imports).
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

/// How specific a host pattern is: exact names beat longer wildcards beat shorter ones.
pub fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// An outbound Envoy cluster name: `outbound|<port>|<subset>|<fqdn>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName {
    /// Service port.
    pub port: u32,
    /// Subset, empty for the default cluster.
    pub subset: String,
    /// Service host name.
    pub host: String,
}

impl ClusterName {
    /// Parses `outbound|P|subset|host`; anything else is not an Istio outbound cluster.
    pub fn parse(name: &str) -> Option<ClusterName> {
        let (port, subset, host) = cluster_fields(name, "outbound")?;
        Some(ClusterName { port, subset: subset.to_string(), host: host.to_string() })
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "outbound|{}|{}|{}", self.port, self.subset, self.host)
    }
}

/// A waypoint's cluster for a service it serves: `inbound-vip|<port>|<http|tcp>[/<subset>]|<fqdn>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundVipCluster {
    /// Service port.
    pub port: u32,
    /// `http` or `tcp`: which of the port's filter chains sends to it.
    pub protocol: &'static str,
    /// Subset, empty for the default cluster.
    pub subset: String,
    /// Service host name.
    pub host: String,
}

impl InboundVipCluster {
    /// Parses `inbound-vip|P|http/subset|host`; anything else is not a waypoint's service cluster.
    pub fn parse(name: &str) -> Option<InboundVipCluster> {
        let (port, protocol, subset, host) = inbound_vip_fields(name)?;
        Some(InboundVipCluster { port, protocol, subset: subset.to_string(), host: host.to_string() })
    }
}

impl fmt::Display for InboundVipCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slash = if self.subset.is_empty() { "" } else { "/" };
        write!(f, "inbound-vip|{}|{}{slash}{}|{}", self.port, self.protocol, self.subset, self.host)
    }
}

/// Port, subset field and host of a cluster name `DIRECTION|PORT|SUBSET|HOST`.
fn cluster_fields<'n>(name: &'n str, direction: &str) -> Option<(u32, &'n str, &'n str)> {
    let mut parts = name.split('|');
    let (dir, port, subset, host) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (dir == direction && parts.next().is_none()).then_some(())?;
    Some((port.parse().ok()?, subset, host))
}

/// An inbound-vip cluster name's port, protocol, subset and host.
fn inbound_vip_fields(name: &str) -> Option<(u32, &'static str, &str, &str)> {
    let (port, kind, host) = cluster_fields(name, "inbound-vip")?;
    let (protocol, subset) = kind.split_once('/').unwrap_or((kind, ""));
    let protocol = match protocol {
        "http" => "http",
        "tcp" => "tcp",
        _ => return None,
    };
    Some((port, protocol, subset, host))
}

/// The service host an Istio service cluster is for: a sidecar's or gateway's outbound
/// cluster, or a waypoint's inbound-vip one. (Borrowed: a big mesh's stats ask it of every
/// counter's cluster.)
pub fn cluster_host(name: &str) -> Option<&str> {
    cluster_fields(name, "outbound").map(|(_, _, host)| host).or_else(|| inbound_vip_fields(name).map(|(_, _, _, host)| host))
}

/// What Istio does with a port, from its name, `appProtocol` or ServiceEntry protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2 (also gRPC).
    Http2,
    /// gRPC.
    Grpc,
    /// TLS-encrypted HTTP, routed by SNI only.
    Https,
    /// TLS passthrough.
    Tls,
    /// Plain TCP (also Mongo, Redis, MySQL).
    Tcp,
    /// UDP, ignored by sidecars.
    Udp,
    /// Unknown name: Istio sniffs the protocol per connection.
    Auto,
}

impl Protocol {
    /// Parses a port name or protocol string with istiod's prefix rules.
    pub fn from_name(name: &str) -> Protocol {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("grpc-web") {
            return Protocol::Grpc;
        }
        let prefix = lower.split('-').next().unwrap_or_default();
        match prefix {
            "http" | "http_proxy" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" | "mongo" | "redis" | "mysql" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => Protocol::Auto,
        }
    }

    /// The protocol of a Kubernetes Service port: `appProtocol` wins over the name; sniffing on
    /// the well-known server-first ports is forced to TCP.
    pub fn of_service_port(name: Option<&str>, app_protocol: Option<&str>, protocol: Option<&str>, port: u32) -> Protocol {
        if protocol == Some("UDP") {
            return Protocol::Udp;
        }
        let parsed = match app_protocol {
            Some("kubernetes.io/h2c") => Protocol::Http2,
            Some("kubernetes.io/ws") => Protocol::Http,
            Some("kubernetes.io/wss") => Protocol::Https,
            Some(other) => Protocol::from_name(other),
            None => Protocol::from_name(name.unwrap_or_default()),
        };
        if parsed == Protocol::Auto && matches!(port, 25 | 53 | 3306 | 27017) {
            return Protocol::Tcp;
        }
        parsed
    }

    /// True for protocols whose traffic goes through HTTP route tables.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }

    /// True for protocols Istio forwards as opaque TCP (no HTTP routing).
    pub fn is_tcp_class(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls | Protocol::Tcp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Protocol::Http => "HTTP",
            Protocol::Http2 => "HTTP2",
            Protocol::Grpc => "GRPC",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Auto => "auto-detect",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_object_namespace() {
        assert_eq!(resolve_short_name("reviews", "prod", DEFAULT_DOMAIN), "reviews.prod.svc.cluster.local");
        assert_eq!(resolve_short_name("reviews.prod", "default", DEFAULT_DOMAIN), "reviews.prod");
        assert_eq!(resolve_short_name("*", "default", DEFAULT_DOMAIN), "*");
    }

    #[test]
    fn cluster_names_round_trip_and_reject_other_shapes() {
        let c = ClusterName::parse("outbound|9080|v1|reviews.default.svc.cluster.local").unwrap();
        assert_eq!((c.port, c.subset.as_str()), (9080, "v1"));
        assert_eq!(c.to_string(), "outbound|9080|v1|reviews.default.svc.cluster.local");
        assert!(ClusterName::parse("inbound|9080||").is_none());
        assert!(ClusterName::parse("outbound|x|v1|h").is_none());
        assert!(ClusterName::parse("PassthroughCluster").is_none());
    }

    #[test]
    fn waypoint_clusters_carry_protocol_and_subset() {
        let c = InboundVipCluster::parse("inbound-vip|9080|http/v1|reviews.default.svc.cluster.local").unwrap();
        assert_eq!((c.port, c.protocol, c.subset.as_str()), (9080, "http", "v1"));
        assert_eq!(c.to_string(), "inbound-vip|9080|http/v1|reviews.default.svc.cluster.local");
        assert_eq!(InboundVipCluster::parse("inbound-vip|8000|tcp|h").unwrap().to_string(), "inbound-vip|8000|tcp|h");
        assert!(InboundVipCluster::parse("inbound-vip|8000|grpc|h").is_none());
        assert_eq!(cluster_host("inbound-vip|8000|http|h.default.svc.cluster.local"), Some("h.default.svc.cluster.local"));
        assert_eq!(cluster_host("outbound|1||h"), Some("h"));
        assert!(cluster_host("inbound|9080||").is_none());
    }

    #[test]
    fn protocols_follow_name_prefix_and_app_protocol() {
        assert_eq!(Protocol::of_service_port(Some("http-web"), None, None, 80), Protocol::Http);
        assert_eq!(Protocol::of_service_port(Some("web"), None, None, 80), Protocol::Auto);
        assert_eq!(Protocol::of_service_port(Some("http"), Some("tcp"), None, 80), Protocol::Tcp);
        assert_eq!(Protocol::of_service_port(None, None, None, 3306), Protocol::Tcp);
        assert_eq!(Protocol::of_service_port(Some("grpc-web-x"), None, None, 1), Protocol::Grpc);
        assert_eq!(Protocol::of_service_port(None, Some("kubernetes.io/h2c"), None, 1), Protocol::Http2);
    }

    #[test]
    fn wildcards_match_suffixes() {
        assert!(host_matches("*.default.svc.cluster.local", "reviews.default.svc.cluster.local"));
        assert!(!host_matches("*.prod.svc.cluster.local", "reviews.default.svc.cluster.local"));
        assert!(hosts_overlap("reviews.default.svc.cluster.local", "*"));
    }
}
