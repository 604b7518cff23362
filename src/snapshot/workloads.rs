//! Pods and Deployments as the analysis reads them.
//!
//! An injected pod's export runs to kilobytes of what mesh-why never looks at (volumes,
//! environment, probes, container statuses, tolerations). On a mesh of tens of thousands of pods,
//! decoding all of it was most of the reading time and of the memory held, so only the fields
//! below are decoded, into the Kubernetes types every rule reads; the rest of each object is
//! skipped unparsed. A field added to a rule that reads Pods or Deployments must be added here.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodCondition, PodIP, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;

/// The fields of a Pod the analysis reads.
#[derive(Deserialize)]
pub(super) struct PodFields {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpecFields>,
    #[serde(default)]
    status: Option<PodStatusFields>,
}

/// `spec` of a Pod or of a Deployment's template: its containers, where it runs, and whether it
/// shares the node's network (such pods get no sidecar).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpecFields {
    #[serde(default)]
    containers: Option<Vec<ContainerFields>>,
    #[serde(default)]
    init_containers: Option<Vec<ContainerFields>>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    host_network: Option<bool>,
}

/// A container: its name, image and arguments tell an injected proxy and its kind; its ports
/// resolve named target ports; `restartPolicy: Always` marks a native sidecar.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerFields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    ports: Option<Vec<ContainerPort>>,
    #[serde(default)]
    restart_policy: Option<String>,
}

/// `status` of a Pod: its address and readiness.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatusFields {
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
    #[serde(default)]
    conditions: Option<Vec<PodCondition>>,
    #[serde(default)]
    phase: Option<String>,
}

/// The fields of a Deployment the analysis reads: its selector and its pods' template.
#[derive(Deserialize)]
pub(super) struct DeploymentFields {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<DeploymentSpecFields>,
}

#[derive(Deserialize)]
struct DeploymentSpecFields {
    #[serde(default)]
    selector: LabelSelector,
    #[serde(default)]
    template: Option<TemplateFields>,
}

#[derive(Deserialize)]
struct TemplateFields {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<PodSpecFields>,
}

impl From<ContainerFields> for Container {
    fn from(c: ContainerFields) -> Container {
        Container { name: c.name, image: c.image, args: c.args, ports: c.ports, restart_policy: c.restart_policy, ..Container::default() }
    }
}

impl From<PodSpecFields> for PodSpec {
    fn from(s: PodSpecFields) -> PodSpec {
        let containers = s.containers.unwrap_or_default().into_iter().map(Container::from).collect();
        let init_containers = s.init_containers.map(|c| c.into_iter().map(Container::from).collect());
        PodSpec { containers, init_containers, node_name: s.node_name, host_network: s.host_network, ..PodSpec::default() }
    }
}

impl From<PodFields> for Pod {
    fn from(p: PodFields) -> Pod {
        let status = p.status.map(|s| PodStatus { pod_ip: s.pod_ip, pod_ips: s.pod_ips, conditions: s.conditions, phase: s.phase, ..PodStatus::default() });
        Pod { metadata: p.metadata, spec: p.spec.map(PodSpec::from), status }
    }
}

impl From<DeploymentFields> for Deployment {
    fn from(d: DeploymentFields) -> Deployment {
        let spec = d.spec.map(|s| DeploymentSpec {
            selector: s.selector,
            template: s.template.map(|t| PodTemplateSpec { metadata: t.metadata, spec: t.spec.map(PodSpec::from) }).unwrap_or_default(),
            ..DeploymentSpec::default()
        });
        Deployment { metadata: d.metadata, spec, status: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_what_the_rules_read_and_drops_the_rest() {
        let pod = json!({
            "metadata": {"name": "reviews-1", "namespace": "shop", "labels": {"app": "reviews"}, "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "hostNetwork": false, "volumes": [{"name": "certs", "secret": {"secretName": "x"}}],
                     "containers": [{"name": "app", "image": "app:1", "ports": [{"name": "http", "containerPort": 9080}],
                                     "env": [{"name": "TOKEN", "value": "s3cret"}]},
                                    {"name": "istio-proxy", "args": ["proxy", "sidecar"], "readinessProbe": {"httpGet": {"port": 15021}}}],
                     "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]},
            "status": {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "app", "ready": true}]}
        });
        let pod: Pod = serde_json::from_value::<PodFields>(pod).unwrap().into();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.containers[0].ports.as_ref().unwrap()[0].container_port, 9080);
        assert_eq!(spec.containers[0].env, None);
        assert_eq!(spec.containers[1].args.as_deref(), Some(&["proxy".to_string(), "sidecar".to_string()][..]));
        assert_eq!(spec.containers[1].readiness_probe, None);
        assert_eq!(spec.init_containers.as_ref().unwrap()[0].restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.volumes, None);
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
        assert_eq!(status.container_statuses, None);
        assert!(pod.metadata.deletion_timestamp.is_some());
    }

    #[test]
    fn a_deployment_keeps_its_selector_and_template() {
        let deploy = json!({
            "metadata": {"name": "reviews-v1", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "reviews"}},
                     "template": {"metadata": {"labels": {"app": "reviews"}, "annotations": {"sidecar.istio.io/inject": "false"}},
                                  "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]}}}
        });
        let deploy: Deployment = serde_json::from_value::<DeploymentFields>(deploy).unwrap().into();
        let spec = deploy.spec.unwrap();
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "reviews");
        assert_eq!(spec.replicas, None);
        let template = spec.template;
        assert_eq!(template.metadata.unwrap().annotations.unwrap()["sidecar.istio.io/inject"], "false");
        assert_eq!(template.spec.unwrap().containers[0].image.as_deref(), Some("proxyv2"));
    }
}
