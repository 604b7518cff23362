//! `networking.istio.io` Gateway: which gateway pods listen on which ports for which hosts.

use serde::Deserialize;
use serde_json::Value;
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
    pub tls: Option<Value>,
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
