//! Ambient waypoints as istiod resolves them: which waypoint a Service's traffic goes through,
//! whether that waypoint takes service traffic, and which services a waypoint serves.

use super::Model;
use crate::intent::target::{Caller, SidecarState};
use crate::istio::Gateway;
use crate::istio::ambient::{GATEWAY_NAME_LABEL, INGRESS_USE_WAYPOINT, WAYPOINT_FOR, WaypointBinding, service_waypoint, workload_is_ambient};
use crate::istio::names::DEFAULT_DOMAIN;
use crate::snapshot::{Meta, Pod, Resource, Service};

/// The waypoint a Service is bound to, as far as the objects tell.
#[derive(Debug, Clone)]
pub struct ServiceWaypoint<'a> {
    /// What the labels say.
    pub binding: WaypointBinding,
    /// The waypoint Gateway the binding names, when it was read.
    pub gateway: Option<&'a Resource<Gateway>>,
}

impl ServiceWaypoint<'_> {
    /// The waypoint's `istio.io/waypoint-for` (`service` when unset).
    pub fn waypoint_for(&self) -> &str {
        self.gateway.and_then(|g| g.meta.labels.get(WAYPOINT_FOR)).unwrap_or("service")
    }

    /// True when service traffic goes through the waypoint: it exists and takes traffic
    /// addressed to Services (`service` or `all`).
    pub fn carries_service_traffic(&self) -> bool {
        self.gateway.is_some() && matches!(self.waypoint_for(), "service" | "all")
    }

    /// `namespace/name` of the waypoint the binding names.
    pub fn name(&self) -> Option<String> {
        match &self.binding {
            WaypointBinding::Bound { namespace, name, .. } => Some(format!("{namespace}/{name}")),
            _ => None,
        }
    }
}

impl<'a> Model<'a> {
    /// The waypoint `service` (a Service's metadata) is bound to.
    pub fn service_waypoint(&self, service: &Meta) -> ServiceWaypoint<'a> {
        let binding = service_waypoint(self.objects, service);
        let gateway = match &binding {
            WaypointBinding::Bound { namespace, name, .. } => self.waypoint(namespace, name),
            _ => None,
        };
        ServiceWaypoint { binding, gateway }
    }

    /// The waypoint Gateway `namespace/name`, if it was read.
    pub fn waypoint(&self, namespace: &str, name: &str) -> Option<&'a Resource<Gateway>> {
        self.waypoints().find(|g| g.meta.namespace == namespace && g.meta.name == name)
    }

    /// Every waypoint Gateway.
    pub fn waypoints(&self) -> impl Iterator<Item = &'a Resource<Gateway>> + use<'a> {
        self.objects.gateways.iter().filter(|g| g.spec.is_waypoint())
    }

    /// True when waypoint `namespace/name` serves the Kubernetes Service `fqdn`: the Service is
    /// bound to it and it takes service traffic (istiod's `ServicesForWaypoint`).
    pub fn waypoint_serves(&self, namespace: &str, name: &str, fqdn: &str) -> bool {
        self.host_waypoint(fqdn).is_some_and(|(_, bound)| {
            bound.carries_service_traffic() && matches!(&bound.binding, WaypointBinding::Bound { namespace: n, name: w, .. } if n == namespace && w == name)
        })
    }

    /// The Kubernetes Service host `fqdn` names, with its waypoint binding.
    pub fn host_waypoint(&self, fqdn: &str) -> Option<(&'a Resource<Service>, ServiceWaypoint<'a>)> {
        let (name, ns) = fqdn.strip_suffix(&format!(".svc.{DEFAULT_DOMAIN}"))?.split_once('.')?;
        let service = self.objects.service(ns, name)?;
        Some((service, self.service_waypoint(&service.meta)))
    }

    /// True when ingress gateways send to the Service's waypoint: `istio.io/ingress-use-waypoint`
    /// on the Service or, from Istio 1.25, on its namespace.
    pub fn ingress_uses_waypoint(&self, service: &Meta) -> bool {
        let on = |m: &Meta| m.labels.get(INGRESS_USE_WAYPOINT).is_some_and(|v| v == "true");
        on(service) || self.objects.namespace(&service.namespace).is_some_and(|ns| on(&ns.meta))
    }

    /// True for a caller without a sidecar whose traffic ztunnel captures.
    pub fn caller_is_ambient(&self, caller: &Caller) -> bool {
        matches!(caller.sidecar, SidecarState::Missing(_))
            && self.objects.pod(&caller.namespace, &caller.name).is_some_and(|p| workload_is_ambient(self.objects, &p.meta, false))
    }

    /// The waypoint Gateway and a pod of it, for the Service at `host` (a FQDN) or `address` (a
    /// ClusterIP), when that waypoint takes service traffic.
    pub fn serving_waypoint(&self, host: Option<&str>, address: &str) -> Option<(&'a Resource<Gateway>, Option<&'a Resource<Pod>>)> {
        let by_address = || self.objects.services.iter().find(|s| s.spec.spec.as_ref().and_then(|sp| sp.cluster_ip.as_deref()) == Some(address));
        let service = host.and_then(|h| self.host_waypoint(h)).map(|(s, _)| s).or_else(by_address)?;
        let waypoint = self.service_waypoint(&service.meta);
        let gateway = waypoint.gateway.filter(|_| waypoint.carries_service_traffic())?;
        let pod =
            self.objects.pods.iter().find(|p| p.meta.namespace == gateway.meta.namespace && p.meta.labels.get(GATEWAY_NAME_LABEL) == Some(&gateway.meta.name));
        Some((gateway, pod))
    }
}
