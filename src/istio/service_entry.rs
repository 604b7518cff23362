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
    /// Workload endpoints (address and port map) of the entry.
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
    /// Pods (and WorkloadEntries) that are the entry's endpoints.
    #[serde(default)]
    pub workload_selector: Option<super::WorkloadSelector>,
    /// Addresses istiod allocated (from `status.addresses`, not the spec).
    #[serde(skip)]
    pub allocated_addresses: Vec<String>,
}

/// One `endpoints[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEntry {
    /// IP or host name.
    #[serde(default)]
    pub address: String,
    /// Port name → target port.
    #[serde(default)]
    pub ports: std::collections::BTreeMap<String, u32>,
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
    /// Port on the endpoints, when it differs from `number`.
    #[serde(default)]
    pub target_port: Option<u32>,
}
