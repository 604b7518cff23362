//! `networking.istio.io` Gateway: which gateway pods listen on which ports for which hosts.
//! Gateway API (`gateway.networking.k8s.io`) Gateways are read into the same shape, since a
//! VirtualService may bind to them too.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Gateway `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Gateway {
    /// Labels of the gateway pods this Gateway configures.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Listening servers.
    #[serde(default)]
    pub servers: Vec<Server>,
    /// True for a Gateway API Gateway: its proxy is deployed for it, so it has no selector.
    #[serde(skip)]
    pub gateway_api: bool,
    /// A Gateway API Gateway's `gatewayClassName` (`istio`, `istio-waypoint`...).
    #[serde(skip)]
    pub class: Option<String>,
}

impl Gateway {
    /// True for an ambient waypoint (class `istio-waypoint`), which serves mesh traffic to the
    /// Services bound to it rather than ingress traffic.
    pub fn is_waypoint(&self) -> bool {
        self.class.as_deref() == Some(crate::istio::ambient::WAYPOINT_CLASS)
    }
}

/// One `servers[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Server {
    /// Port, protocol and name.
    #[serde(default)]
    pub port: Option<ServerPort>,
    /// Hosts served, optionally `namespace/host`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// TLS settings of the server.
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// The address the server's listener binds to, when not every address.
    #[serde(default)]
    pub bind: Option<String>,
}

/// A server's `tls`: only where its certificate comes from matters here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    /// `SIMPLE`, `MUTUAL`, `ISTIO_MUTUAL`, `PASSTHROUGH`, `AUTO_PASSTHROUGH`, `OPTIONAL_MUTUAL`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Secret holding the server certificate, in the gateway pods' namespace.
    #[serde(default)]
    pub credential_name: Option<String>,
    /// Path of the certificate file mounted in the gateway pod (when not credentialName).
    #[serde(default)]
    pub server_certificate: Option<String>,
    /// Path of the key file mounted in the gateway pod (a path, never key material).
    #[serde(default)]
    pub private_key: Option<String>,
    /// Plaintext requests get a 301 to https.
    #[serde(default)]
    pub https_redirect: bool,
}

/// A server's port.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerPort {
    /// Port number on the gateway pod.
    #[serde(default)]
    pub number: u32,
    /// `HTTP`, `HTTPS`, `GRPC`, `TCP`, `TLS`...
    #[serde(default)]
    pub protocol: String,
    /// Port name.
    #[serde(default)]
    pub name: String,
}

/// The Secrets (namespace, name) istiod reads gateway certificates from: each TLS server's
/// `credentialName` of an Istio Gateway, in the namespaces of the pods the Gateway selects
/// (not the Gateway's own).
pub fn credential_references(objects: &crate::snapshot::Objects) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    for gw in objects.gateways.iter().filter(|g| !g.spec.gateway_api && !g.spec.selector.is_empty()) {
        let names: Vec<&str> =
            gw.spec.servers.iter().filter_map(|s| s.tls.as_ref()?.credential_name.as_deref()).filter(|n| !n.is_empty() && !n.contains('/')).collect();
        if names.is_empty() {
            continue;
        }
        let namespaces: std::collections::BTreeSet<&str> =
            objects.pods.iter().filter(|p| super::labels_match(&gw.spec.selector, &p.meta.labels)).map(|p| p.meta.namespace.as_str()).collect();
        for ns in namespaces {
            out.extend(names.iter().map(|n| (ns.to_string(), n.to_string())));
        }
    }
    out
}
