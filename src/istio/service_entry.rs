//! `networking.istio.io` ServiceEntry: hosts added to the mesh's service registry.

use serde::Deserialize;
use serde_json::Value;

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
    /// `MESH_EXTERNAL` or `MESH_INTERNAL`.
    #[serde(default)]
    pub location: Option<String>,
    /// `NONE`, `STATIC`, `DNS`, `DNS_ROUND_ROBIN`.
    #[serde(default)]
    pub resolution: Option<String>,
    /// Static endpoints.
    #[serde(default)]
    pub endpoints: Vec<Value>,
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
