//! `networking.istio.io` Sidecar: narrows what a proxy imports and how it reaches unknown hosts.

use super::{PortSelector, WorkloadSelector};
use serde::Deserialize;

/// Sidecar `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Pods it applies to; none means every pod of its namespace.
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
    /// Egress listeners with the `namespace/host` patterns they import.
    #[serde(default)]
    pub egress: Vec<EgressListener>,
    /// Inbound ports the workload serves (replace the ports found from its services).
    #[serde(default)]
    pub ingress: Vec<IngressListener>,
    /// `{mode: ALLOW_ANY | REGISTRY_ONLY}`.
    #[serde(default)]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// One `egress[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EgressListener {
    /// Limits the entry to one port.
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// `namespace/dnsName` patterns.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `outboundTrafficPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OutboundTrafficPolicy {
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// One `ingress[]` listener.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IngressListener {
    /// Port number, protocol and name.
    #[serde(default)]
    pub port: Option<super::gateway::ServerPort>,
}
