//! Istio's configuration kinds, as serde structs holding the fields mesh-why reasons about.
//!
//! Unknown fields are accepted and ignored, so objects from newer Istio versions still load.
//! Names follow Istio's API (`VirtualService`, `subset`, `exportTo`), in Rust case.

pub mod ambient;
mod destination_rule;
mod gateway;
pub mod gateway_api;
pub mod gateway_api_decode;
pub mod gateway_translation;
pub mod ingress;
mod labels;
pub mod names;
mod peer_authentication;
mod request_authentication;
mod service_entry;
mod sidecar;
mod virtual_service;

pub use destination_rule::{DestinationRule, Subset, TlsSettings, TrafficPolicy};
pub use gateway::{Gateway, Server, ServerPort, ServerTls, credential_references};
pub use labels::PackedLabels;
pub use peer_authentication::PeerAuthentication;
pub use request_authentication::RequestAuthentication;
pub use service_entry::ServiceEntry;
pub use sidecar::{EgressListener, Sidecar};
pub use virtual_service::{
    Delegate, Destination, DestinationRole, DestinationUse, HttpMatch, HttpRoute, MirrorPolicy, RouteDestination, StringMatch, TcpRoute, VirtualService,
};

use serde::Deserialize;
use std::collections::BTreeMap;

/// `workloadSelector` / `selector`: pods whose labels include all of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Istio's `labels` (Sidecar, DestinationRule) or `matchLabels` (PeerAuthentication).
    #[serde(default, alias = "matchLabels")]
    pub labels: BTreeMap<String, String>,
}

/// `portSelector` / `port` on Istio objects: `{number: 9080}`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct PortSelector {
    /// The port number; 0 when unset.
    #[serde(default)]
    pub number: u32,
}

/// A list read to its length, for the lists of specs a big mesh holds by the thousand: serde
/// grows a vector by doubling, and a one-route VirtualService kept room for three more routes.
fn exact<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    let mut list = Vec::<T>::deserialize(deserializer)?;
    list.shrink_to_fit();
    Ok(list)
}

/// A workload's labels, however they are held.
pub trait Labels {
    /// The value of the label `key`.
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// True when every `selector` label is present with the same value in `labels`.
pub fn labels_match<K: AsRef<str>, V: AsRef<str>>(selector: impl IntoIterator<Item = (K, V)>, labels: &impl Labels) -> bool {
    selector.into_iter().all(|(k, v)| labels.label(k.as_ref()) == Some(v.as_ref()))
}
