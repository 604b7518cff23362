//! `security.istio.io` PeerAuthentication: which mTLS mode a workload's inbound side accepts.

use super::WorkloadSelector;
use serde::Deserialize;
use std::collections::BTreeMap;

/// PeerAuthentication `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthentication {
    /// Pods it applies to; none means the whole namespace (or mesh, in the root namespace).
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// `{mode: STRICT | PERMISSIVE | DISABLE | UNSET}`.
    #[serde(default)]
    pub mtls: Option<MutualTls>,
    /// Per container port overrides.
    #[serde(default)]
    pub port_level_mtls: BTreeMap<String, MutualTls>,
}

/// An mTLS mode block.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MutualTls {
    /// The mode name.
    #[serde(default)]
    pub mode: Option<String>,
}
