//! The snapshot: the one value both live and offline modes produce, and everything after
//! gathering consumes. It holds the cluster's objects, each proxy's raw admin output, and the
//! gaps: what could not be collected, and why.

mod credential;
mod manifest;
mod objects;
mod service;
mod workloads;

pub use crate::istio::PackedLabels;
pub use credential::{CertificateState, Credential};
pub use manifest::{FORMAT_VERSION, MANIFEST_FILE, Manifest, mesh_target};
pub use objects::{Document, Keep, LAST_APPLIED, MeshConfig, Meta, ObjectRef, Objects, Origin, Resource, SERVICE_NAME_LABEL, Skipped};
pub use service::{Service, ServiceSpec};
pub use workloads::{Container, Deployment, DeploymentSpec, Pod, PodSpec, PodStatus, PodTemplateSpec};

use serde::{Deserialize, Serialize};

/// A file's bytes and where they came from (for error messages and evidence).
#[derive(Debug, Clone)]
pub struct Blob {
    /// Path inside the snapshot, or the URL it was fetched from.
    pub origin: String,
    /// Raw contents.
    pub bytes: Vec<u8>,
}

/// Which encoding a stats capture uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsFormat {
    /// `GET /stats`: `name: value` lines.
    Text,
    /// `GET /stats?format=json`.
    Json,
    /// `GET /stats/prometheus`.
    Prometheus,
}

/// The admin output captured from one Envoy, unparsed until the question is known.
#[derive(Debug, Clone, Default)]
pub struct ProxyCapture {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// `GET /config_dump`.
    pub config_dump: Option<Blob>,
    /// `GET /clusters?format=json`.
    pub clusters: Option<Blob>,
    /// Stats in any of the three encodings (prometheus kept apart for `istio_requests_total`).
    pub stats: Vec<(StatsFormat, Blob)>,
    /// `GET /server_info`.
    pub server_info: Option<Blob>,
}

/// Something that could not be collected or read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// What is missing (a kind, a proxy endpoint, a file).
    pub source: String,
    /// Why, in plain words.
    pub reason: String,
}

/// How a gap's reason starts when the cluster does not serve a kind at all (its CRDs are not
/// installed): there are none of it, which is complete knowledge, not missing data.
pub const NOT_SERVED: &str = "not served by this cluster";

/// The gap source for one admin request to a proxy: `pod NS/POD admin GET WHAT`, where `WHAT`
/// is the path without its query (`/clusters`, `/config_dump (dynamic_route_configs)`).
pub fn admin_source(namespace: &str, pod: &str, what: &str) -> String {
    format!("pod {namespace}/{pod} admin GET {what}")
}

/// What part of proxy `namespace/pod` a gap source names: the `WHAT` of an [`admin_source`],
/// or the file of `proxies/NS/POD/FILE`.
pub fn admin_gap<'a>(source: &'a str, namespace: &str, pod: &str) -> Option<&'a str> {
    source.strip_prefix(&format!("pod {namespace}/{pod} admin GET ")).or_else(|| source.strip_prefix(&format!("proxies/{namespace}/{pod}/")))
}

/// Everything mesh-why knows about the cluster for one question.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `mesh-why.json`, when present.
    pub manifest: Option<Manifest>,
    /// Kubernetes and Istio objects.
    pub objects: Objects,
    /// Proxies whose admin output was captured.
    pub proxies: Vec<ProxyCapture>,
    /// What could not be collected.
    pub gaps: Vec<Gap>,
}
