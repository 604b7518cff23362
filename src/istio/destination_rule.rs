//! `networking.istio.io` DestinationRule: subsets and traffic policy for one host.

use super::{PackedLabels, PortSelector, WorkloadSelector};
use serde::Deserialize;
use serde_json::Value;

/// DestinationRule `spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// The host the rule applies to (short names resolve in the rule's namespace).
    #[serde(default)]
    pub host: String,
    /// Host-wide traffic policy.
    #[serde(default)]
    pub traffic_policy: Option<Box<TrafficPolicy>>,
    /// Named subsets: label sets that pick a version of the service.
    #[serde(default, deserialize_with = "super::exact")]
    pub subsets: Vec<Subset>,
    /// Namespaces this rule is visible to.
    #[serde(default)]
    pub export_to: Vec<String>,
    /// Limits the rule to proxies with these labels (in the rule's namespace).
    #[serde(default)]
    pub workload_selector: Option<WorkloadSelector>,
}

/// One `subsets[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Subset name, the third field of the Envoy cluster name.
    #[serde(default)]
    pub name: String,
    /// Pod labels the subset selects (added to the service selector).
    #[serde(default)]
    pub labels: PackedLabels,
    /// Subset-level policy, overriding the host-wide one field by field. Boxed, as the policies
    /// are: usually absent, and a big mesh holds tens of thousands of subsets.
    #[serde(default)]
    pub traffic_policy: Option<Box<TrafficPolicy>>,
}

/// `trafficPolicy`: the policy blocks, and per-port overrides of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Host-wide blocks.
    #[serde(flatten)]
    pub blocks: EffectivePolicy,
    /// Per-port overrides, each replacing the blocks wholesale.
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `portLevelSettings[]` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PortTrafficPolicy {
    /// The port it applies to.
    #[serde(default)]
    pub port: Option<PortSelector>,
    /// The blocks for that port.
    #[serde(flatten)]
    pub blocks: EffectivePolicy,
}

/// `tls` block of a traffic policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// `DISABLE`, `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
    #[serde(default)]
    pub mode: Option<String>,
    /// CA bundle file the client verifies the server with.
    #[serde(default)]
    pub ca_certificates: Option<String>,
    /// Secret holding the client's certificate (and CA) for a gateway's origination.
    #[serde(default)]
    pub credential_name: Option<String>,
    /// Secret holding only the CA bundle (1.28+).
    #[serde(default)]
    pub ca_cert_credential_name: Option<String>,
}

impl TlsSettings {
    /// Whether this originates TLS (`SIMPLE` or `MUTUAL`) without saying how to verify the
    /// server: no CA bundle, and no credential a selected workload's gateway would read it from.
    pub fn unverified_origination(&self, selected: bool) -> bool {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
        matches!(self.mode.as_deref(), Some("SIMPLE" | "MUTUAL"))
            && !set(&self.ca_certificates)
            && !set(&self.ca_cert_credential_name)
            && (!set(&self.credential_name) || !selected)
    }
}

/// The four policy blocks; unused parts stay raw JSON. After port-level settings and subset
/// overrides are applied, this is the policy in force for one cluster.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePolicy {
    /// `loadBalancer` (`simple`, `consistentHash`, locality settings).
    #[serde(default)]
    pub load_balancer: Option<Value>,
    /// `connectionPool` (circuit-breaker limits).
    #[serde(default)]
    pub connection_pool: Option<Value>,
    /// `outlierDetection`.
    #[serde(default)]
    pub outlier_detection: Option<Value>,
    /// Client-side TLS settings.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

impl TrafficPolicy {
    /// The four blocks for `port`: a matching port-level entry replaces them wholesale.
    pub fn for_port(&self, port: u32) -> EffectivePolicy {
        let port_level = self.port_level_settings.iter().find(|p| p.port.map(|s| s.number) == Some(port));
        port_level.map(|p| &p.blocks).unwrap_or(&self.blocks).clone()
    }
}

impl DestinationRule {
    /// The policy for `port` and, when named, `subset`: subset blocks override host-wide ones.
    pub fn effective_policy(&self, port: u32, subset: Option<&str>) -> EffectivePolicy {
        let mut policy = self.traffic_policy.as_ref().map(|p| p.for_port(port)).unwrap_or_default();
        let subset_policy = subset.and_then(|name| self.subsets.iter().find(|s| s.name == name)).and_then(|s| s.traffic_policy.as_ref());
        if let Some(sp) = subset_policy {
            let has_port_level = sp.port_level_settings.iter().any(|p| p.port.map(|s| s.number) == Some(port));
            let sub = sp.for_port(port);
            if has_port_level {
                policy = sub;
            } else {
                policy.load_balancer = sub.load_balancer.or(policy.load_balancer);
                policy.connection_pool = sub.connection_pool.or(policy.connection_pool);
                policy.outlier_detection = sub.outlier_detection.or(policy.outlier_detection);
                policy.tls = sub.tls.or(policy.tls);
            }
        }
        policy
    }

    /// The subset with this name, if declared.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}
