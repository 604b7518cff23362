//! Which pod addresses a cluster should hold: ready endpoints of the service port whose pod
//! labels carry the subset's labels.

use super::target::{Target, TargetPort};
use crate::istio::{PackedLabels, labels_match};
use crate::model::Model;
use crate::snapshot::{Pod, Resource};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

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
    /// Not ready, and its EndpointSlice says explicitly that it is not terminating: the one
    /// kind of unready endpoint istiod can send (marked unhealthy); it drops the others.
    pub unhealthy_sendable: bool,
}

/// The service's backends for one port, from EndpointSlices when captured, else from pods.
/// `None` when the snapshot holds neither.
pub fn backends(model: &Model<'_>, target: &Target, port: &TargetPort) -> Option<Vec<Backend>> {
    let slices = model.endpoint_slices_of(&target.namespace, &target.name);
    if !slices.is_empty() {
        let mut out = Vec::new();
        for slice in slices {
            let ports = slice.spec.ports.as_deref().unwrap_or_default();
            let named = ports.iter().find(|p| p.name == port.name);
            let slice_port = named.or(if ports.len() == 1 { ports.first() } else { None }).and_then(|p| p.port);
            let Some(slice_port) = slice_port else { continue };
            for ep in &slice.spec.endpoints {
                let pod = ep.target_ref.as_ref().filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| r.name.clone());
                let labels = pod.as_deref().and_then(|p| model.objects.pod(&target.namespace, p)).map(|p| workload_labels(model, p)).unwrap_or_default();
                let ready =
                    ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) && !ep.conditions.as_ref().and_then(|c| c.terminating).unwrap_or(false);
                let unhealthy_sendable = !ready && ep.conditions.as_ref().and_then(|c| c.terminating) == Some(false);
                for ip in &ep.addresses {
                    out.push(Backend { pod: pod.clone(), labels: labels.clone(), address: format!("{ip}:{slice_port}"), ready, unhealthy_sendable });
                }
            }
        }
        return Some(out);
    }
    let pods = model.backends(target);
    if pods.is_empty() && model.objects.pods.is_empty() {
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
                Some(Backend {
                    pod: Some(p.meta.name.clone()),
                    labels: workload_labels(model, p),
                    address: format!("{ip}:{target_port}"),
                    ready,
                    unhealthy_sendable: false,
                })
            })
            .collect(),
    )
}

/// The endpoints istiod sends for a cluster, each with its health: the ready ones, plus (when
/// `send_unhealthy`) the unready ones it may send, marked unhealthy.
pub fn sent(backends: &[Backend], subset_labels: &PackedLabels, send_unhealthy: bool) -> BTreeMap<String, bool> {
    backends
        .iter()
        .filter(|b| (b.ready || (send_unhealthy && b.unhealthy_sendable)) && labels_match(subset_labels, &b.labels))
        .map(|b| (b.address.clone(), b.ready))
        .collect()
}

/// Node labels istiod copies onto a pod's endpoints, so that subsets can select on them.
const TOPOLOGY_LABELS: &[&str] = &["topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone", "kubernetes.io/hostname"];

/// A pod's labels as its endpoints carry them: its own, plus its node's non-empty topology labels.
pub fn workload_labels(model: &Model<'_>, pod: &Resource<Pod>) -> BTreeMap<String, String> {
    let mut labels = pod.meta.labels.to_map();
    let node_name = pod.spec.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if let Some(node) = node_name.and_then(|n| model.objects.nodes.iter().find(|node| node.meta.name == n)) {
        for key in TOPOLOGY_LABELS {
            if let Some(v) = node.meta.labels.get(key).filter(|v| !v.is_empty()) {
                labels.entry(key.to_string()).or_insert_with(|| v.to_string());
            }
        }
    }
    labels
}

/// The pods of a service that a subset's labels select, and which of them are ready.
#[derive(Debug, Clone, Default)]
pub struct SubsetPods {
    /// Names of the selected pods.
    pub selected: Vec<String>,
    /// Names of those that are ready (readiness unknown counts as ready).
    pub ready: Vec<String>,
    /// Every pod of the service with the labels the subset keys on, for explanations.
    pub others: Vec<String>,
}

/// Selects the target's pods by the subset's labels, by labels alone as istiod does (readiness
/// is reported apart). `None` when the service has no selector or the snapshot holds no pods.
pub fn subset_pods(model: &Model<'_>, target: &Target, subset_labels: &PackedLabels) -> Option<SubsetPods> {
    if target.selector.is_empty() || model.objects.pods.is_empty() {
        return None;
    }
    let mut out = SubsetPods::default();
    for pod in model.backends(target) {
        let labels = workload_labels(model, pod);
        if labels_match(subset_labels, &labels) {
            out.selected.push(pod.meta.name.clone());
            if pod_ready(model, target, pod) {
                out.ready.push(pod.meta.name.clone());
            }
        } else {
            let shown: Vec<String> = subset_labels.keys().map(|k| format!("{k}={}", labels.get(k).map(String::as_str).unwrap_or("<unset>"))).collect();
            out.others.push(format!("{} {}", pod.meta.name, shown.join(",")));
        }
    }
    Some(out)
}

/// Readiness from the service's EndpointSlices when they list the pod, else the pod's Ready
/// condition, else unknown (counted as ready).
fn pod_ready(model: &Model<'_>, target: &Target, pod: &Resource<Pod>) -> bool {
    let from_slice = model
        .endpoint_slices_of(&target.namespace, &target.name)
        .iter()
        .flat_map(|s| s.spec.endpoints.iter())
        .find(|ep| ep.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some(pod.meta.name.as_str()))
        .map(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true));
    let from_pod = || {
        let conditions = pod.spec.status.as_ref()?.conditions.as_ref()?;
        Some(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    from_slice.or_else(from_pod).unwrap_or(true)
}
