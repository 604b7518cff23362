//! `networking.istio.io` ServiceEntry: hosts added to the mesh's service registry.

use serde::Deserialize;

/// ServiceEntry `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntry {
    /// Hosts the entry defines.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Virtual IPs.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Ports with their protocols.
    #[serde(default)]
    pub ports: Vec<ServiceEntryPort>,
    /// Namespaces this entry is visible to.
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// One `ports[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEntryPort {
    /// Port number.
    #[serde(default)]
    pub number: u32,
    /// Protocol, parsed like a Service port name.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Port name.
    #[serde(default)]
    pub name: Option<String>,
}
