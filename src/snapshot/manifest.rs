//! `mesh-why.json`: what a capture collected, when, for which target, and what failed.

use super::Gap;
use serde::{Deserialize, Serialize};

/// File name of the manifest at the snapshot root.
pub const MANIFEST_FILE: &str = "mesh-why.json";

/// The snapshot layout version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Contents of `mesh-why.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Snapshot layout version.
    pub format_version: u32,
    /// mesh-why version that wrote it.
    #[serde(default)]
    pub tool_version: String,
    /// RFC 3339 capture time.
    #[serde(default)]
    pub captured_at: String,
    /// The question asked: `SERVICE.NAMESPACE` (and port, if given), or an `--all` scope
    /// ([`mesh_target`]).
    #[serde(default)]
    pub target: String,
    /// Kube context the capture used.
    #[serde(default)]
    pub context: Option<String>,
    /// What was collected: object kinds and proxy endpoints.
    #[serde(default)]
    pub collected: Vec<String>,
    /// Each source that failed, and why.
    #[serde(default)]
    pub gaps: Vec<Gap>,
}

/// The `target` of an `--all` capture: `*.NAMESPACE`, or `*` for every namespace.
pub fn mesh_target(namespace: Option<&str>) -> String {
    namespace.map(|ns| format!("*.{ns}")).unwrap_or_else(|| "*".into())
}

impl Manifest {
    /// Whether an `--all` capture made this snapshot for a scope that includes `namespace`
    /// (`None`: every namespace).
    pub fn covers(&self, namespace: Option<&str>) -> bool {
        self.target == "*" || namespace.is_some_and(|ns| self.target == mesh_target(Some(ns)))
    }
}
