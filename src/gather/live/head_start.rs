//! The reading of a caller named by `--from POD`, begun while the cluster's objects are still
//! being listed.
//!
//! Half of a live question's time goes to listing the configuration and half to the caller's
//! Envoy, and the Envoy's route configurations, listeners and request counters need only the
//! Service's ports. Two GETs (the Service and the pod) are enough to start on them. The rest of
//! the reading waits for the intent, and the head start is used only when the full analysis
//! chooses the same proxy, read the same way, for the same Service.

use super::admin::Reader;
use super::kube::Cluster;
use super::proxies::Choice;
use super::{Deadline, pods, services, start_reading};
use crate::intent::target::{Caller, CallerKind, SidecarState, Target};
use crate::question::{From, Question};
use crate::snapshot::{Document, Gap, Objects};
use ::kube::Api;

/// A proxy reading begun before the proxies were chosen.
pub struct HeadStart {
    choice: Choice,
    target: Target,
    reading: Result<Reader, Gap>,
}

impl HeadStart {
    /// Begins reading the pod `question` names with `--from`, when the Service and the pod can
    /// be read on their own and the pod runs an Envoy; `None` otherwise (the proxy is then read
    /// after the lists, as any other).
    pub async fn begin(cluster: &Cluster, question: &Question, deadline: &Deadline) -> Option<HeadStart> {
        let Some(From::Pod(name)) = &question.from else { return None };
        let ns = &question.from_namespace;
        let (service_kind, pod_kind) = (services(), pods());
        let (service, pod) = tokio::join!(
            cluster.get_object(&service_kind, &question.namespace, &question.service, deadline),
            cluster.get_object(&pod_kind, ns, name, deadline)
        );
        let mut objects = Objects::default();
        for object in [service.ok()?, pod.ok()?] {
            objects.add(Document::Value(object), "a head start's GET").ok()?;
        }
        let target = Target::resolve(&objects, &question.service, &question.namespace, question.port).ok()?;
        let caller = Caller::from_pod(objects.pod(ns, name)?);
        if caller.kind == CallerKind::Sidecar && caller.sidecar != SidecarState::Injected {
            return None;
        }
        let choice = Choice::named(&caller);
        let api = Api::namespaced(cluster.client.clone(), ns);
        let reading = start_reading(&api, &choice, &target, cluster.request_timeout, deadline).await;
        Some(HeadStart { choice, target, reading })
    }

    /// The reading begun, if it is the one `choice` asks for `target`.
    pub fn take_for(this: &mut Option<HeadStart>, choice: &Choice, target: &Target) -> Option<Result<Reader, Gap>> {
        let fits = |h: &HeadStart| h.choice.namespace == choice.namespace && h.choice.pod == choice.pod && h.choice.role == choice.role && h.target == *target;
        this.take_if(|h| fits(h)).map(|h| h.reading)
    }
}

#[cfg(test)]
mod tests {
    use super::super::admin::Role;
    use super::*;
    use crate::intent::target::TargetPort;
    use crate::istio::names::Protocol;

    fn target(port: u32) -> Target {
        let port = TargetPort { port, name: Some("http".into()), app_protocol: None, protocol: Protocol::Http, target_port: None };
        Target {
            name: "reviews".into(),
            namespace: "shop".into(),
            fqdn: "reviews.shop.svc.cluster.local".into(),
            ports: vec![port],
            selector: Default::default(),
            cluster_ip: Some("10.0.0.1".into()),
            export_to: Vec::new(),
        }
    }

    fn choice(pod: &str, role: Role) -> Choice {
        Choice { namespace: "front".into(), pod: pod.into(), role, why: "named by --from".into() }
    }

    fn begun() -> Option<HeadStart> {
        let reading = Err(Gap { source: "pod front/web-1".into(), reason: "not read: refused".into() });
        Some(HeadStart { choice: choice("web-1", Role::Caller), target: target(9080), reading })
    }

    #[test]
    fn a_head_start_serves_only_the_same_proxy_role_and_target() {
        let mut head = begun();
        assert!(HeadStart::take_for(&mut head, &choice("web-2", Role::Caller), &target(9080)).is_none());
        assert!(HeadStart::take_for(&mut head, &choice("web-1", Role::Gateway), &target(9080)).is_none());
        // The Service's ports changed between its GET and its list: the routes read are not the asked ones.
        assert!(HeadStart::take_for(&mut head, &choice("web-1", Role::Caller), &target(9081)).is_none());
        let taken = HeadStart::take_for(&mut head, &choice("web-1", Role::Caller), &target(9080));
        assert_eq!(taken.and_then(|r| r.err()).map(|g| g.reason), Some("not read: refused".into()));
        assert!(head.is_none(), "a head start is used once");
    }
}
