//! Services as the analysis reads them.
//!
//! Kubernetes' own type holds room for every field of a Service inline (800 bytes before its
//! ports), a selector in a map of its own, and half a dozen lists and strings no rule reads
//! (`clusterIPs`, `ipFamilies`, `sessionAffinity`). A big mesh holds one per service, so this
//! type has only the fields the analysis reads, named as Kubernetes names them; the rest of each
//! object is skipped unparsed, and its metadata lives on in [`super::Resource::meta`]. A field
//! added to a rule that reads Services must be added here.

use crate::istio::PackedLabels;
use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A Service: the fields of `core/v1` Service the analysis reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Service {
    /// What the Service selects and serves.
    #[serde(default)]
    pub spec: Option<ServiceSpec>,
}

/// A Service as read: its metadata goes to [`super::Meta`].
#[derive(Deserialize)]
pub(super) struct ServiceObject {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the Service selects and serves.
    #[serde(default)]
    pub spec: Option<ServiceSpec>,
}

/// `spec` of a Service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `clusterIP`: `None` (the string) for a headless Service.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    /// `externalName`, for `type: ExternalName`.
    #[serde(default)]
    pub external_name: Option<String>,
    /// `ports`, kept at their number.
    #[serde(default, deserialize_with = "exact_ports")]
    pub ports: Option<Vec<ServicePort>>,
    /// `selector`: the pods it serves; none for a Service whose endpoints are managed by hand.
    #[serde(default)]
    pub selector: Option<PackedLabels>,
    /// `type`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
}

impl ServiceSpec {
    /// The address the Service's listeners bind: its ClusterIP, when it has one. A Service
    /// without one (headless) gets listeners per endpoint, from its EndpointSlices.
    pub fn cluster_vip(&self) -> Option<&str> {
        self.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None")
    }
}

/// Most Services have a port or two; read by doubling, each kept room for four.
fn exact_ports<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<ServicePort>>, D::Error> {
    let mut ports = Option::<Vec<ServicePort>>::deserialize(deserializer)?;
    ports.iter_mut().for_each(Vec::shrink_to_fit);
    Ok(ports)
}
