//! `security.istio.io` RequestAuthentication: which workloads validate JWTs, and so have the
//! claims routes can match on. Only what selects the workloads is read, not the JWT rules.

use super::WorkloadSelector;
use serde::Deserialize;
use serde_json::Value;

/// RequestAuthentication `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestAuthentication {
    /// Pods it applies to; none means the whole namespace (or mesh, in the root namespace).
    #[serde(default)]
    pub selector: Option<WorkloadSelector>,
    /// `targetRef` (a Gateway API Gateway or Service), instead of a selector.
    #[serde(default)]
    pub target_ref: Option<Value>,
    /// `targetRefs`, instead of a selector.
    #[serde(default)]
    pub target_refs: Vec<Value>,
}

impl RequestAuthentication {
    /// True when the policy names its workloads by reference rather than by labels.
    pub fn has_target_refs(&self) -> bool {
        self.target_ref.is_some() || !self.target_refs.is_empty()
    }
}
