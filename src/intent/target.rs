//! The question's two ends: the asked service (target) and the proxies that call it.

use crate::error::{Error, Result};
use crate::istio::ambient::{GATEWAY_NAME_LABEL, WAYPOINT_CLASS};
use crate::istio::labels_match;
use crate::istio::names::{DEFAULT_DOMAIN, Protocol};
use crate::snapshot::{ObjectRef, Objects, PackedLabels, Pod, Resource, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The asked service.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
    /// `name.namespace.svc.<domain>`.
    pub fqdn: String,
    /// Ports considered (all, or the one asked with `--port`).
    pub ports: Vec<TargetPort>,
    /// Pod selector (empty for selector-less services).
    pub selector: BTreeMap<String, String>,
    /// ClusterIP, if any (`None` for headless).
    pub cluster_ip: Option<String>,
    /// Value of the `networking.istio.io/exportTo` annotation, split.
    pub export_to: Vec<String>,
}

/// One service port.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetPort {
    /// Service port number.
    pub port: u32,
    /// Port name.
    pub name: Option<String>,
    /// `appProtocol`.
    pub app_protocol: Option<String>,
    /// Protocol as Istio sees it.
    pub protocol: Protocol,
    /// `targetPort`: a number or a container port name.
    pub target_port: Option<IntOrString>,
}

impl Target {
    /// Finds `name` in `namespace`, keeping only `port` when given.
    pub fn resolve(objects: &Objects, name: &str, namespace: &str, port: Option<u32>) -> Result<Target> {
        let Some(svc) = objects.service(namespace, name) else {
            let others: Vec<String> = objects
                .services
                .iter()
                .filter(|s| s.meta.name == name || s.meta.namespace == namespace)
                .take(8)
                .map(|s| format!("{}.{}", s.meta.name, s.meta.namespace))
                .collect();
            let help = if others.is_empty() {
                "check the name and namespace (`SERVICE.NAMESPACE` or `-n NAMESPACE`)".to_string()
            } else {
                format!("services with that name or in that namespace: {}", others.join(", "))
            };
            return Err(Error::new(format!("service {name} not found in namespace {namespace}")).help(help));
        };
        let mut target = Target::from_service(svc);
        if let Some(p) = port {
            let all: Vec<String> = target.ports.iter().map(|tp| tp.port.to_string()).collect();
            target.ports.retain(|tp| tp.port == p);
            if target.ports.is_empty() {
                return Err(Error::new(format!("service {name}.{namespace} has no port {p}")).help(format!("its ports are: {}", all.join(", "))));
            }
        }
        Ok(target)
    }

    /// Builds a target from a Service object.
    pub fn from_service(svc: &Resource<Service>) -> Target {
        let no_spec = ServiceSpec::default();
        let spec = svc.spec.spec.as_ref().unwrap_or(&no_spec);
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| TargetPort {
                port: p.port as u32,
                protocol: Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref(), p.protocol.as_deref(), p.port as u32),
                name: p.name.clone(),
                app_protocol: p.app_protocol.clone(),
                target_port: p.target_port.clone(),
            })
            .collect();
        Target {
            name: svc.meta.name.clone(),
            namespace: svc.meta.namespace.clone(),
            fqdn: format!("{}.{}.svc.{DEFAULT_DOMAIN}", svc.meta.name, svc.meta.namespace),
            ports,
            selector: spec.selector.as_ref().map(PackedLabels::to_map).unwrap_or_default(),
            cluster_ip: spec.cluster_vip().map(str::to_string),
            export_to: export_to_annotation(&svc.meta.annotations),
        }
    }

    /// A reference to the Service object.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef::new("Service", &self.namespace, &self.name)
    }

    /// True when `pod` backs this service.
    pub fn selects(&self, pod: &Resource<Pod>) -> bool {
        pod.meta.namespace == self.namespace && !self.selector.is_empty() && labels_match(&self.selector, &pod.meta.labels)
    }
}

/// Splits the `networking.istio.io/exportTo` annotation.
pub fn export_to_annotation(annotations: &PackedLabels) -> Vec<String> {
    annotations.get("networking.istio.io/exportTo").map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

/// Whether a calling pod runs an Istio proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidecarState {
    /// An `istio-proxy` container (or native sidecar init container) is present.
    Injected,
    /// No proxy, with the reason.
    Missing(String),
    /// No pod object was captured, only its Envoy.
    FromProxyOnly,
}

/// What kind of proxy the caller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// Application sidecar.
    Sidecar,
    /// Istio ingress/egress gateway.
    Gateway,
    /// Ambient waypoint: routes the traffic of the Services bound to it.
    Waypoint,
}

/// A calling workload.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Namespace.
    pub namespace: String,
    /// Pod name (or a description for a hypothetical caller).
    pub name: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// Sidecar presence.
    pub sidecar: SidecarState,
    /// Sidecar or gateway.
    pub kind: CallerKind,
    /// Istio version of its proxy, when known.
    pub istio_version: Option<(u32, u32)>,
    /// True for the stand-in caller used when the snapshot names none.
    pub hypothetical: bool,
    /// True for a pod examined only because it might call the service, while the proxies that
    /// were captured are the known callers: what is wrong with it is less likely the cause.
    pub possible: bool,
}

impl Caller {
    /// A caller built from a Pod object.
    pub fn from_pod(pod: &Resource<Pod>) -> Caller {
        let containers = pod.spec.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
        let sidecar = if has_proxy(pod) {
            SidecarState::Injected
        } else {
            SidecarState::Missing(sidecar_exemption(pod).unwrap_or("The pod has no istio-proxy container (it was not injected)").into())
        };
        let runs = |kind: &str| containers.iter().any(|c| c.name == "istio-proxy" && c.args.iter().flatten().any(|a| a == kind));
        let gateway = runs("router") || matches!(pod.meta.labels.get("istio"), Some("ingressgateway" | "egressgateway"));
        let waypoint = runs("waypoint") || pod.meta.labels.get("gateway.networking.k8s.io/gateway-class-name").is_some_and(|c| c == WAYPOINT_CLASS);
        let kind = match (waypoint, gateway) {
            (true, _) => CallerKind::Waypoint,
            (_, true) => CallerKind::Gateway,
            _ => CallerKind::Sidecar,
        };
        Caller {
            namespace: pod.meta.namespace.clone(),
            name: pod.meta.name.clone(),
            labels: pod.meta.labels.to_map(),
            sidecar: if kind == CallerKind::Sidecar { sidecar } else { SidecarState::Injected },
            kind,
            istio_version: None,
            hypothetical: false,
            possible: false,
        }
    }

    /// A stand-in sidecar in `namespace`, used when no calling pod is known.
    pub fn hypothetical(namespace: &str) -> Caller {
        Caller {
            namespace: namespace.to_string(),
            name: format!("(any sidecar in namespace {namespace})"),
            labels: BTreeMap::new(),
            sidecar: SidecarState::Injected,
            kind: CallerKind::Sidecar,
            istio_version: None,
            hypothetical: true,
            possible: false,
        }
    }

    /// A stand-in for waypoint `namespace/name` when none of its pods is known.
    pub fn waypoint_of(namespace: &str, name: &str) -> Caller {
        Caller {
            namespace: namespace.to_string(),
            name: format!("(waypoint {namespace}/{name})"),
            labels: BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), name.to_string())]),
            sidecar: SidecarState::Injected,
            kind: CallerKind::Waypoint,
            istio_version: None,
            hypothetical: true,
            possible: false,
        }
    }

    /// `namespace/name`.
    pub fn display(&self) -> String {
        if self.hypothetical { self.name.clone() } else { format!("{}/{}", self.namespace, self.name) }
    }

    /// A reference to the Pod.
    pub fn reference(&self) -> ObjectRef {
        ObjectRef::new("Pod", &self.namespace, &self.name)
    }

    /// The waypoint Gateway a waypoint proxy is deployed for: its namespace and name.
    pub fn waypoint(&self) -> Option<(&str, &str)> {
        let name = self.labels.get(GATEWAY_NAME_LABEL).or_else(|| self.labels.get("istio.io/gateway-name"))?;
        (self.kind == CallerKind::Waypoint).then_some((self.namespace.as_str(), name.as_str()))
    }

    /// True when the proxy runs Istio `major.minor` or later (unknown counts as current).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.istio_version.is_none_or(|v| v >= (major, minor))
    }
}

/// True when the pod runs an `istio-proxy` container, or one as a native sidecar (an init
/// container with `restartPolicy: Always`).
pub fn has_proxy(pod: &Resource<Pod>) -> bool {
    let Some(spec) = pod.spec.spec.as_ref() else { return false };
    spec.containers.iter().any(|c| c.name == "istio-proxy")
        || spec.init_containers.iter().flatten().any(|c| c.name == "istio-proxy" && c.restart_policy.as_deref() == Some("Always"))
}

/// Why a pod is deliberately left without a sidecar, if it is: hostNetwork, an opt-out (the
/// label wins over the annotation, as in the injector), or ambient mode.
pub fn sidecar_exemption(pod: &Resource<Pod>) -> Option<&'static str> {
    const INJECT: &str = "sidecar.istio.io/inject";
    if pod.spec.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return Some("The pod uses hostNetwork, so it is never injected");
    }
    let inject = pod.meta.labels.get(INJECT).or_else(|| pod.meta.annotations.get(INJECT));
    if inject.is_some_and(|v| v.eq_ignore_ascii_case("false")) {
        return Some("The pod opts out with sidecar.istio.io/inject: \"false\"");
    }
    if pod.meta.labels.get("istio.io/dataplane-mode") == Some("ambient") {
        return Some("The pod is in ambient mode (no sidecar)");
    }
    None
}

/// Parses `1.22.3`, `1.4-alpha.x`, `release-1.2-...` into (major, minor).
pub fn parse_istio_version(v: &str) -> Option<(u32, u32)> {
    let start = v.find(|c: char| c.is_ascii_digit())?;
    let mut parts = v[start..].split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}
