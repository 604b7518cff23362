//! Trace one request through Envoy-shaped configuration: listener → filter chain → network
//! filter → route configuration → virtual host → route → action → cluster → endpoints.
//!
//! The same walker runs over the caller's captured config dump (what Envoy holds) and over the
//! configuration derived from the objects (what istiod should push); where the two walks part
//! is the finding.

pub mod covers;
pub mod log;
pub mod report;
pub mod walk;

use crate::envoy::listener::{ListenerDetail, RouteConfiguration};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the request carries on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2 (h2c in plaintext, h2 inside TLS).
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP bytes.
    Tcp,
    /// TCP inside TLS that the client originates.
    Tls,
}

impl Protocol {
    /// True for the protocols an HTTP connection manager can decode.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// How the connection is secured by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// No TLS.
    Plaintext,
    /// TLS without a client certificate.
    Tls,
    /// Istio mutual TLS (client certificate from the workload identity).
    Mtls,
}

/// One request as the caller sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Destination IP (`1.3.3.7` when unknown: no address-specific listener matches).
    pub address: String,
    /// Destination port.
    pub port: u32,
    /// Host / authority.
    pub host: Option<String>,
    /// Path with query.
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// Request headers (lower-case names), in order.
    pub headers: Vec<(String, String)>,
    /// Protocol.
    pub protocol: Protocol,
    /// TLS mode.
    pub security: Security,
    /// SNI (TLS only; defaults to the host).
    pub sni: Option<String>,
    /// ALPN offered (TLS only; defaults from the protocol).
    pub alpn: Option<String>,
    /// Arrives at the pod through inbound capture (`virtualInbound`).
    pub inbound: bool,
}

impl Request {
    /// A plain `GET /` over HTTP/1.1 to `address:port`.
    pub fn http(address: &str, port: u32) -> Request {
        Request {
            address: address.into(),
            port,
            host: None,
            path: "/".into(),
            method: "GET".into(),
            headers: Vec::new(),
            protocol: Protocol::Http,
            security: Security::Plaintext,
            sni: None,
            alpn: None,
            inbound: false,
        }
    }

    /// Fills what a client would send by default: SNI = host for TLS, ALPN from the protocol
    /// (`istio-*` for Istio mTLS).
    pub fn with_defaults(mut self) -> Request {
        if self.security == Security::Tls && self.sni.is_none() {
            self.sni = self.host.clone();
        }
        if self.alpn.is_none() {
            self.alpn = match (self.security, self.protocol) {
                (Security::Plaintext, _) => None,
                (Security::Tls, Protocol::Http) => Some("http/1.1".into()),
                (Security::Tls, Protocol::Http2 | Protocol::Grpc) => Some("h2".into()),
                (Security::Tls, _) => None,
                (Security::Mtls, Protocol::Http) => Some("istio-http/1.1".into()),
                (Security::Mtls, Protocol::Http2 | Protocol::Grpc) => Some("istio-h2".into()),
                (Security::Mtls, _) => Some("istio".into()),
            };
        }
        self
    }

    /// The value of header `name` (case-insensitive), with `:authority`, `:path` and `:method`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            ":authority" | "host" => self.host.as_deref(),
            ":path" => Some(&self.path),
            ":method" => Some(&self.method),
            ":scheme" => Some(if self.security == Security::Plaintext { "http" } else { "https" }),
            _ => self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(&name)).map(|(_, v)| v.as_str()),
        }
    }
}

/// Where a request stops, in the simulator's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// No listener on the address and port, and no virtualOutbound.
    NoListener,
    /// No filter chain matches and there is no default chain: Envoy closes the connection.
    NoFilterChain,
    /// Several chains match equally: Envoy would reject the listener.
    MultipleFilterChains,
    /// Plaintext to a chain that terminates TLS.
    TlsError,
    /// Istio mTLS expected and plain TLS sent, or the other way round.
    MtlsError,
    /// The HTTP connection manager gets bytes it cannot decode.
    ProtocolError,
    /// No virtual host serves the host (404 NR).
    NoVirtualHost,
    /// The virtual host requires TLS (301 to https).
    TlsRedirect,
    /// No route of the virtual host matches (404 NR).
    NoRoute,
}

impl Stop {
    /// The snake_case code (`no_route`).
    pub fn code(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    /// What the caller sees, in Envoy's terms.
    pub fn meaning(self) -> &'static str {
        match self {
            Stop::NoListener => "no listener: the connection is refused",
            Stop::NoFilterChain => "no filter chain matches: Envoy closes the connection",
            Stop::MultipleFilterChains => "two filter chains match alike: Envoy rejects such a listener",
            Stop::TlsError => "plaintext sent to a chain that terminates TLS: the handshake fails",
            Stop::MtlsError => "the chain wants Istio mTLS and the call is not (or the other way round): the handshake fails",
            Stop::ProtocolError => "the HTTP connection manager cannot decode the bytes: connection reset",
            Stop::NoVirtualHost => "no virtual host serves this host: 404 with response flag NR",
            Stop::TlsRedirect => "the virtual host requires TLS: 301 to https",
            Stop::NoRoute => "no route matches: 404 with response flag NR",
        }
    }
}

/// One decision of the walk: what was chosen, by which object and field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// `listener`, `filter_chain`, `route_config`, `virtual_host`, `route`, `action`, `cluster`, `endpoints`.
    pub stage: &'static str,
    /// What was chosen (a name), empty when nothing.
    pub chosen: String,
    /// The object and field that decided it, in words.
    pub why: String,
}

/// The action of the matched route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Forward to clusters with their share of traffic (percent, one decimal).
    Forward {
        /// The clusters with their share of traffic.
        clusters: Vec<Share>,
        /// Route timeout.
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        /// Retries after the first attempt.
        #[serde(skip_serializing_if = "Option::is_none")]
        retries: Option<u64>,
        /// Fault filter configured on the route.
        fault: bool,
    },
    /// Redirect (3xx).
    Redirect,
    /// Direct response with this status.
    DirectResponse {
        /// HTTP status.
        status: u32,
    },
    /// tcp_proxy to clusters.
    Tcp {
        /// The clusters with their share of traffic.
        clusters: Vec<Share>,
    },
}

/// One cluster of an action and its share of traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// Cluster name.
    pub cluster: String,
    /// Percent of requests, one decimal.
    pub percent: f64,
}

/// How many of a cluster's endpoints are healthy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointHealth {
    /// Cluster name.
    pub cluster: String,
    /// Endpoints Envoy may send to.
    pub healthy: usize,
    /// All endpoints.
    pub total: usize,
}

/// The result of one walk.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Walk {
    /// Listener name.
    pub listener: Option<String>,
    /// Filter chain name ("" when unnamed).
    pub filter_chain: Option<String>,
    /// RDS route configuration name (none for TCP chains and inline tables).
    pub route_config: Option<String>,
    /// Virtual host name.
    pub virtual_host: Option<String>,
    /// Route name.
    pub route: Option<String>,
    /// The single upstream cluster (none for weighted clusters).
    pub cluster: Option<String>,
    /// Where the request stopped; none when it went through.
    pub error: Option<Stop>,
    /// What the route or tcp_proxy does.
    pub action: Option<Action>,
    /// Endpoints of the chosen cluster(s), when known.
    pub endpoints: Vec<EndpointHealth>,
    /// What the request meets in the end, in words (`upstream ...`, `404 NR`, `503 UH`).
    pub outcome: String,
    /// The decisions in order.
    pub steps: Vec<Step>,
}

/// Envoy-shaped configuration of one proxy: what a walk reads.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Listeners by name.
    pub listeners: Vec<(String, ListenerDetail)>,
    /// RDS route configurations.
    pub route_configs: Vec<RouteConfiguration>,
    /// Known cluster names; `None` when not read.
    pub clusters: Option<Vec<String>>,
    /// Endpoints per cluster: (healthy, total); clusters absent here are not known.
    pub endpoints: BTreeMap<String, (usize, usize)>,
}
