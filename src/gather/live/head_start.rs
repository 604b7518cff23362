//! The reading of the callers `--from` names, begun while the cluster's objects are still
//! being listed.
//!
//! Half of a live question's time goes to listing the configuration and half to the callers'
//! Envoys, and an Envoy's route configurations, listeners, request counters and the clusters its
//! routes name need only the Service's ports. The Service and the named pods (a GET, or a list
//! by the labels or Deployment named) are enough to start on them. The rest of each reading
//! waits for the intent, and a head start is used only when the full analysis chooses the same
//! proxy, read the same way, for the same Service.

use super::admin::Reader;
use super::kube::{Ask, Cluster, Listed, read_list};
use super::proxies::Choice;
use super::{CONCURRENT_PROXIES, Capture, Deadline, LiveOptions, deployments, pods, services, start_reading};
use crate::intent::target::{SidecarState, Target};
use crate::question::{self, From, Question};
use crate::snapshot::Gap;
use ::kube::Api;
use ::kube::core::params::ListParams;
use std::collections::BTreeMap;

/// A proxy reading begun before the proxies were chosen.
pub struct HeadStart {
    choice: Choice,
    target: Target,
    reading: Result<Reader, Gap>,
}

impl HeadStart {
    /// Begins reading the callers `question` names with `--from` (as many as `options` lets the
    /// analysis read), when the Service and those pods can be read on their own; none otherwise
    /// (they are then read after the lists, as any other proxy).
    pub async fn begin(cluster: &Cluster, question: &Question, options: &LiveOptions, deadline: &Deadline) -> Vec<HeadStart> {
        let Some(from) = &question.from else { return Vec::new() };
        let kind = services();
        let (service, named) =
            tokio::join!(cluster.get_object(&kind, &question.namespace, &question.service, deadline), named_pods(cluster, from, question, deadline));
        let (Ok(service), Some(mut lists)) = (service, named) else { return Vec::new() };
        lists.push(Listed::one(kind, &service));
        let mut early = Capture::new(cluster);
        early.take(lists);
        if early.settle().is_err() {
            return Vec::new();
        }
        let Ok(target) = Target::resolve(&early.snapshot.objects, &question.service, &question.namespace, question.port) else { return Vec::new() };
        let Ok(callers) = question::named(&early.snapshot, from, &question.from_namespace) else { return Vec::new() };
        // As the choice picks them: the named callers with a proxy, in order, up to the limit.
        let choices = callers.iter().filter(|e| !matches!(e.caller.sidecar, SidecarState::Missing(_))).map(|e| Choice::named(&e.caller));
        let begun = choices.take(options.max_proxies.min(CONCURRENT_PROXIES)).map(|choice| {
            let target = target.clone();
            async move {
                let api = Api::namespaced(cluster.client.clone(), &choice.namespace);
                let reading = start_reading(&api, &choice, &target, cluster.request_timeout, deadline).await;
                HeadStart { choice, target, reading }
            }
        });
        futures::future::join_all(begun).await
    }

    /// The reading begun for `choice` of `target`, if there is one.
    pub fn take_for(begun: &mut Vec<HeadStart>, choice: &Choice, target: &Target) -> Option<Result<Reader, Gap>> {
        let fits = |h: &HeadStart| h.choice.namespace == choice.namespace && h.choice.pod == choice.pod && h.choice.role == choice.role && h.target == *target;
        let index = begun.iter().position(fits)?;
        Some(begun.swap_remove(index).reading)
    }
}

/// The pods `from` names in the question's caller namespace, with the Deployment it names: what
/// [`question::named`] looks at. `None` when they cannot be read that narrowly.
async fn named_pods(cluster: &Cluster, from: &From, question: &Question, deadline: &Deadline) -> Option<Vec<Listed>> {
    let ns = &question.from_namespace;
    let by_labels = |labels: &BTreeMap<String, String>| {
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        read_list(cluster, Ask::within(pods(), ns, ListParams::default().labels(&selector.join(","))), deadline)
    };
    match from {
        From::Pod(name) => Some(vec![Listed::one(pods(), &cluster.get_object(&pods(), ns, name, deadline).await.ok()?)]),
        From::Labels(labels) => Some(vec![by_labels(labels).await]),
        From::Deployment(name) => {
            let kind = deployments();
            let deployment = cluster.get_object(&kind, ns, name, deadline).await.ok()?;
            // Without match labels the callers are found by their owners, among all the pods.
            let labels: BTreeMap<String, String> = serde_json::from_value(deployment.pointer("/spec/selector/matchLabels")?.clone()).ok()?;
            if labels.is_empty() {
                return None;
            }
            Some(vec![Listed::one(kind, &deployment), by_labels(&labels).await])
        }
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

    fn begun() -> Vec<HeadStart> {
        let reading = Err(Gap { source: "pod front/web-1".into(), reason: "not read: refused".into() });
        vec![HeadStart { choice: choice("web-1", Role::Caller), target: target(9080), reading }]
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
        assert!(head.is_empty(), "a head start is used once");
    }
}
