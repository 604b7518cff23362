//! The way a request from one caller reaches the asked service in the data plane: through its
//! sidecar, a gateway, or in ambient mode the node's ztunnel and the service's waypoint.

use crate::intent::target::{Caller, CallerKind, SidecarState, Target};
use crate::model::Model;

/// The hops a request from `caller` to `target` takes, in order, each saying where routing
/// happens or why it does not.
pub fn hops(model: &Model<'_>, caller: &Caller, target: &Target) -> Vec<String> {
    let service = model.objects.service(&target.namespace, &target.name);
    let waypoint = service.map(|s| model.service_waypoint(&s.meta)).filter(|w| w.carries_service_traffic()).and_then(|w| w.name());
    let pods = format!("pods of {}.{}", target.name, target.namespace);
    let through_waypoint = |w: &str| [format!("waypoint {w} (routes and L7 policy)"), "ztunnel of the pod's node".to_string(), pods.clone()];
    let bypass = |w: &str, why: &str| format!("bypasses waypoint {w}: {why}");
    let mut out = Vec::new();
    match caller.kind {
        CallerKind::Waypoint => {
            let gateway = caller.waypoint().map_or_else(|| caller.display(), |(ns, name)| format!("{ns}/{name}"));
            out.push(format!("waypoint {gateway} (pod {}; routes and L7 policy)", caller.name));
            out.extend(["ztunnel of the pod's node".to_string(), pods]);
        }
        CallerKind::Gateway => {
            out.push(format!("gateway {} (routes)", caller.display()));
            match &waypoint {
                Some(w) if service.is_some_and(|s| model.ingress_uses_waypoint(&s.meta)) => out.extend(through_waypoint(w)),
                Some(w) => out.extend([bypass(w, "the Service has no istio.io/ingress-use-waypoint=true"), pods]),
                None => out.push(pods),
            }
        }
        CallerKind::Sidecar if caller.sidecar == SidecarState::Injected || caller.sidecar == SidecarState::FromProxyOnly => {
            out.push(format!("sidecar of {} (routes)", caller.display()));
            if let Some(w) = &waypoint {
                out.push(bypass(w, "sidecars send straight to the pods"));
            }
            out.push(pods);
        }
        CallerKind::Sidecar => {
            if !model.caller_is_ambient(caller) {
                out.push(format!("{} has no proxy: it connects to the Service address and kube-proxy picks a pod (no Istio routing)", caller.display()));
                out.push(pods);
            } else if let Some(w) = &waypoint {
                out.push(format!("ztunnel of {}'s node", caller.display()));
                out.extend(through_waypoint(w));
            } else {
                out.push(format!("ztunnel of {}'s node (L4 only: no waypoint, so no HTTP routing)", caller.display()));
                out.push(pods);
            }
        }
    }
    out
}
