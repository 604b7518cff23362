//! Which pod addresses a cluster should hold: ready endpoints of the service port whose pod
//! labels carry the subset's labels.

use super::target::{Target, TargetPort};
use crate::istio::labels_match;
use crate::snapshot::Objects;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};

/// A backend of the service: pod, address and readiness.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Pod name, when known.
    pub pod: Option<String>,
    /// Pod labels (empty when the pod object is missing).
    pub labels: BTreeMap<String, String>,
    /// `ip:targetPort`.
    pub address: String,
    /// Ready for traffic.
    pub ready: bool,
}

/// The service's backends for one port, from EndpointSlices when captured, else from pods.
/// `None` when the snapshot holds neither.
pub fn backends(objects: &Objects, target: &Target, port: &TargetPort) -> Option<Vec<Backend>> {
    let slices: Vec<_> = objects
        .endpoint_slices
        .iter()
        .filter(|s| s.meta.namespace == target.namespace && s.meta.labels.get("kubernetes.io/service-name") == Some(&target.name))
        .collect();
    if !slices.is_empty() {
        let mut out = Vec::new();
        for slice in slices {
            let ports = slice.spec.ports.as_deref().unwrap_or_default();
            let named = ports.iter().find(|p| p.name == port.name);
            let slice_port = named.or(if ports.len() == 1 { ports.first() } else { None }).and_then(|p| p.port);
            let Some(slice_port) = slice_port else { continue };
            for ep in &slice.spec.endpoints {
                let pod = ep.target_ref.as_ref().filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| r.name.clone());
                let labels = pod.as_deref().and_then(|p| objects.pod(&target.namespace, p)).map(|p| p.meta.labels.clone()).unwrap_or_default();
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
                    && !ep.conditions.as_ref().and_then(|c| c.terminating).unwrap_or(false);
                for ip in &ep.addresses {
                    out.push(Backend { pod: pod.clone(), labels: labels.clone(), address: format!("{ip}:{slice_port}"), ready });
                }
            }
        }
        return Some(out);
    }
    let pods: Vec<_> = objects.pods.iter().filter(|p| target.selects(p)).collect();
    if pods.is_empty() && objects.pods.is_empty() {
        return None;
    }
    Some(
        pods.into_iter()
            .filter_map(|p| {
                let status = p.spec.status.as_ref()?;
                let ip = status.pod_ip.clone()?;
                let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
                let target_port = match &port.target_port {
                    None => port.port as i32,
                    Some(IntOrString::Int(n)) => *n,
                    Some(IntOrString::String(name)) => p
                        .spec
                        .spec
                        .iter()
                        .flat_map(|s| s.containers.iter())
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|cp| cp.name.as_deref() == Some(name))
                        .map(|cp| cp.container_port)?,
                };
                Some(Backend { pod: Some(p.meta.name.clone()), labels: p.meta.labels.clone(), address: format!("{ip}:{target_port}"), ready })
            })
            .collect(),
    )
}

/// Ready addresses among `backends` whose labels carry `subset_labels`.
pub fn select(backends: &[Backend], subset_labels: &BTreeMap<String, String>) -> BTreeSet<String> {
    backends.iter().filter(|b| b.ready && labels_match(subset_labels, &b.labels)).map(|b| b.address.clone()).collect()
}
