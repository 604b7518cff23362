//! Pods and Deployments as the analysis reads them.
//!
//! An injected pod's export runs to kilobytes of what mesh-why never looks at (volumes,
//! environment, probes, container statuses, tolerations). On a mesh of tens of thousands of pods,
//! decoding all of it was most of the reading time, and Kubernetes' own types hold room for every
//! field inline (a `Container` is 2 KB, a `Pod` 2 KB before its containers), so the memory held
//! and the pages cleared for it grew with fields no rule reads. These types have only the fields
//! the analysis reads, named as Kubernetes names them; the rest of each object is skipped
//! unparsed. A field added to a rule that reads Pods or Deployments must be added here.

use k8s_openapi::api::core::v1::{ContainerPort, PodCondition, PodIP};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;

/// A Pod: the fields of `core/v1` Pod the analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Pod {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What runs and where.
    #[serde(default)]
    pub spec: Option<PodSpec>,
    /// Address, phase and readiness.
    #[serde(default)]
    pub status: Option<PodStatus>,
}

/// `spec` of a Pod or of a Deployment's template: its containers, where it runs, and whether it
/// shares the node's network (such pods get no sidecar).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// `containers`.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// `initContainers` (a native sidecar is one, with `restartPolicy: Always`).
    #[serde(default)]
    pub init_containers: Option<Vec<Container>>,
    /// `nodeName`.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `hostNetwork`.
    #[serde(default)]
    pub host_network: Option<bool>,
}

/// A container: its name, image and arguments tell an injected proxy and its kind; its ports
/// resolve named target ports; `restartPolicy: Always` marks a native sidecar.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `image`.
    #[serde(default)]
    pub image: Option<String>,
    /// `args`.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// `ports`.
    #[serde(default)]
    pub ports: Option<Vec<ContainerPort>>,
    /// `restartPolicy`.
    #[serde(default)]
    pub restart_policy: Option<String>,
}

/// `status` of a Pod: its address and readiness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `podIP`.
    #[serde(default, rename = "podIP")]
    pub pod_ip: Option<String>,
    /// `podIPs`.
    #[serde(default, rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
    /// `conditions` (`Ready` among them).
    #[serde(default)]
    pub conditions: Option<Vec<PodCondition>>,
    /// `phase`.
    #[serde(default)]
    pub phase: Option<String>,
}

/// A Deployment: its selector and its pods' template.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deployment {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Selector and template.
    #[serde(default)]
    pub spec: Option<DeploymentSpec>,
}

/// `spec` of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DeploymentSpec {
    /// `selector`.
    #[serde(default)]
    pub selector: LabelSelector,
    /// `template`.
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// `spec.template` of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodTemplateSpec {
    /// The pods' metadata (their labels and annotations).
    #[serde(default)]
    pub metadata: Option<ObjectMeta>,
    /// The pods' spec.
    #[serde(default)]
    pub spec: Option<PodSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_what_the_rules_read() {
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
        let pod: Pod = serde_json::from_value(pod).unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert_eq!(spec.containers[0].ports.as_ref().unwrap()[0].container_port, 9080);
        assert_eq!(spec.containers[1].args.as_deref(), Some(&["proxy".to_string(), "sidecar".to_string()][..]));
        assert_eq!(spec.init_containers.as_ref().unwrap()[0].restart_policy.as_deref(), Some("Always"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
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
        let deploy: Deployment = serde_json::from_value(deploy).unwrap();
        let spec = deploy.spec.unwrap();
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "reviews");
        let template = spec.template;
        assert_eq!(template.metadata.unwrap().annotations.unwrap()["sidecar.istio.io/inject"], "false");
        assert_eq!(template.spec.unwrap().containers[0].image.as_deref(), Some("proxyv2"));
    }

    #[test]
    fn a_pod_is_held_in_a_fraction_of_the_kubernetes_types_room() {
        // Kubernetes' own Pod is 2,176 bytes and its Container 2,120, all inline.
        assert!(std::mem::size_of::<Pod>() <= 640, "{}", std::mem::size_of::<Pod>());
        assert!(std::mem::size_of::<Container>() <= 128, "{}", std::mem::size_of::<Container>());
    }
}
