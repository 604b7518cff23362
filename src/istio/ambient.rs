//! Ambient mode as istiod reads it from labels: which namespaces and pods are captured by
//! ztunnel, and which waypoint (if any) a Service's traffic goes through.

use crate::snapshot::{Meta, Objects};

/// `istio.io/dataplane-mode`: `ambient` puts a namespace's or pod's traffic through ztunnel.
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// `istio.io/use-waypoint`: the waypoint (Gateway name) a Service, pod or namespace uses.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// `istio.io/use-waypoint-namespace`: the waypoint's namespace when it is not the object's.
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// `istio.io/waypoint-for` on the waypoint Gateway: `service` (default), `workload`, `all`, `none`.
pub const WAYPOINT_FOR: &str = "istio.io/waypoint-for";

/// The GatewayClass of Istio's waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
/// `istio.io/ingress-use-waypoint`: on a Service (or, from 1.25, its namespace), ingress
/// gateways send to its waypoint instead of straight to its pods.
pub const INGRESS_USE_WAYPOINT: &str = "istio.io/ingress-use-waypoint";
/// The label a Gateway API Gateway's deployed pods carry with the Gateway's name.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The `app` label of Istio's ztunnel DaemonSet pods (the node proxies of ambient mode).
pub const ZTUNNEL_APP: &str = "ztunnel";

/// True for a ztunnel pod, by its labels.
pub fn is_ztunnel(labels: &impl super::Labels) -> bool {
    labels.label("app") == Some(ZTUNNEL_APP)
}

/// True when the namespace is labelled for ambient mode and not for sidecar injection (which
/// takes precedence: its pods get sidecars).
pub fn namespace_is_ambient(objects: &Objects, namespace: &str) -> bool {
    objects.namespace(namespace).is_some_and(|ns| {
        let labels = &ns.meta.labels;
        labels.get(DATAPLANE_MODE).is_some_and(|m| m == "ambient")
            && labels.get("istio-injection").is_none_or(|v| v != "enabled")
            && labels.get("istio.io/rev").is_none_or(str::is_empty)
    })
}

/// `ambient.istio.io/redirection`: set to `enabled` on a pod once ztunnel captures it.
pub const REDIRECTION: &str = "ambient.istio.io/redirection";

/// How a Service's traffic is bound to a waypoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaypointBinding {
    /// Bound to waypoint `namespace/name`, by the label on `via` (`Service` or `Namespace`).
    Bound {
        /// Waypoint namespace.
        namespace: String,
        /// Waypoint (Gateway) name.
        name: String,
        /// Which object carries the label.
        via: &'static str,
    },
    /// `istio.io/use-waypoint: none` on the Service: opted out.
    OptedOut,
    /// No label on the Service nor its namespace.
    Unbound,
}

/// The waypoint a Service uses: its own `istio.io/use-waypoint` label, else its namespace's
/// (`none` on the Service opts out), with `istio.io/use-waypoint-namespace` overriding the
/// namespace — as istiod's `fetchWaypointForTarget` does.
pub fn service_waypoint(objects: &Objects, service: &Meta) -> WaypointBinding {
    // A waypoint's own Service never has a waypoint.
    if service.labels.get("gateway.istio.io/managed").is_some_and(|m| m == "istio.io-mesh-controller") {
        return WaypointBinding::Unbound;
    }
    fn from(meta: &Meta, default_ns: &str, via: &'static str) -> Option<WaypointBinding> {
        let name = meta.labels.get(USE_WAYPOINT)?;
        if name == "none" {
            return Some(WaypointBinding::OptedOut);
        }
        let namespace = meta.labels.get(USE_WAYPOINT_NAMESPACE).map(str::to_string).unwrap_or_else(|| default_ns.to_string());
        Some(WaypointBinding::Bound { namespace, name: name.to_string(), via })
    }
    if let Some(b) = from(service, &service.namespace, "Service") {
        return b;
    }
    objects.namespace(&service.namespace).and_then(|ns| from(&ns.meta, &service.namespace, "Namespace")).unwrap_or(WaypointBinding::Unbound)
}

/// True when ztunnel captures the pod: its own `istio.io/dataplane-mode` label, else its
/// namespace's (`none` on the pod opts out), and no sidecar of its own.
pub fn workload_is_ambient(objects: &Objects, pod: &Meta, has_sidecar: bool) -> bool {
    if has_sidecar {
        return false;
    }
    match pod.labels.get(DATAPLANE_MODE) {
        Some("ambient") => true,
        Some(_) => false,
        None => namespace_is_ambient(objects, &pod.namespace),
    }
}
