//! A focused reading of a snapshot for a one-service question: Pods, Deployments and
//! EndpointSlices are decoded only in the namespaces the question names (and, in a directory,
//! those of its captured proxies), and the reading stands only when none of the others could
//! matter to the analysis.
//!
//! Pods are most of a big cluster's export (an injected pod's spec runs to kilobytes), and a
//! question about one service looks at the pods of its own namespace and of its callers'; its
//! EndpointSlices, as a live reading's, are the asked service's. The others are still scanned,
//! and their identity and labels kept ([`Skipped`]); [`Focus::stands`] then checks every way the
//! analysis reaches them across namespaces (selectors, gateways, captured proxies, callers found
//! through routing, a `--from` pod looked up elsewhere, the endpoints of headless or
//! selectorless Services), and when one could reach a skipped object, the snapshot is read whole
//! instead.

use super::live::proxies::caller_namespaces;
use crate::intent::target::Target;
use crate::istio::ambient::{GATEWAY_NAME_LABEL, is_ztunnel};
use crate::istio::{Labels, labels_match};
use crate::question::{From, Question};
use crate::snapshot::{PackedLabels, SERVICE_NAME_LABEL, Skipped, Snapshot};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Labels that mark a gateway's or waypoint's pods, which the analysis looks up in any namespace.
const GATEWAY_LABELS: [&str; 4] = ["istio", GATEWAY_NAME_LABEL, "gateway.istio.io/managed", "istio.io/gateway-name"];

/// The namespaces whose Pods, Deployments and EndpointSlices a reading decodes.
#[derive(Debug, Clone)]
pub struct Focus {
    namespaces: BTreeSet<String>,
}

impl Focus {
    /// The namespaces `question` names: the service's and its callers' (`--from`, `-n`).
    pub fn of(question: &Question) -> Focus {
        Focus { namespaces: BTreeSet::from([question.namespace.clone(), question.from_namespace.clone()]) }
    }

    /// Decodes the Pods, Deployments and EndpointSlices of `namespace` too.
    pub fn keep(&mut self, namespace: &str) {
        self.namespaces.insert(namespace.to_string());
    }

    /// Whether the Pods, Deployments and EndpointSlices of `namespace` are decoded.
    pub fn keeps(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// Whether `snapshot`, read with this focus, holds everything `question` can use; if not,
    /// it must be read whole.
    pub fn stands(&self, snapshot: &Snapshot, question: &Question) -> bool {
        let objects = &snapshot.objects;
        let skipped = &objects.skipped;
        if skipped.is_empty() {
            return true;
        }
        let pods: Vec<&Skipped> = skipped.iter().filter(|s| s.kind == "Pod").collect();
        let slices: Vec<&Skipped> = skipped.iter().filter(|s| s.kind == "EndpointSlice").collect();
        // That no pod or slice was read at all is information to the analysis; so is an object
        // read twice.
        let mut seen = HashSet::new();
        let none_read = (objects.pods.is_empty() && !pods.is_empty()) || (objects.endpoint_slices.is_empty() && !slices.is_empty());
        if none_read || !skipped.iter().all(|s| seen.insert((s.kind, &s.namespace, &s.name))) {
            return false;
        }
        // Beyond the asked service's, the listeners read the slices of headless Services (their
        // listeners are per endpoint) and of Services without a selector (their slices may list
        // a caller's pod, whatever its namespace). A slice of no Service is read by nothing.
        let read_beyond = |s: &Skipped| {
            let Some(service) = s.labels.label(SERVICE_NAME_LABEL).and_then(|name| objects.service(&s.namespace, name)) else { return false };
            service.spec.spec.as_ref().is_none_or(|spec| spec.cluster_vip().is_none() || spec.selector.as_ref().is_none_or(PackedLabels::is_empty))
        };
        if slices.iter().any(|s| read_beyond(s)) {
            return false;
        }
        let from_pod = match &question.from {
            Some(From::Pod(name)) => Some(name),
            _ => None,
        };
        let captured = |p: &Skipped| snapshot.proxies.iter().any(|c| c.namespace == p.namespace && c.pod == p.name);
        if pods.iter().any(|p| Some(&p.name) == from_pod || captured(p)) {
            return false;
        }
        let mut selectors: Vec<&BTreeMap<String, String>> = objects.gateways.iter().map(|g| &g.spec.selector).collect();
        let workloads = objects.sidecars.iter().filter_map(|s| s.spec.workload_selector.as_ref());
        let workloads = workloads.chain(objects.service_entries.iter().filter_map(|s| s.spec.workload_selector.as_ref()));
        let workloads = workloads.chain(objects.destination_rules.iter().filter_map(|d| d.spec.workload_selector.as_ref()));
        let workloads = workloads.chain(objects.peer_authentications.iter().filter_map(|p| p.spec.selector.as_ref()));
        let workloads = workloads.chain(objects.request_authentications.iter().filter_map(|r| r.spec.selector.as_ref()));
        selectors.extend(workloads.map(|w| &w.labels));
        selectors.retain(|s| !s.is_empty());
        // Gateways, waypoints and ztunnels serve other namespaces' pods.
        let serving = |p: &Skipped| GATEWAY_LABELS.iter().any(|l| p.labels.label(l).is_some()) || is_ztunnel(&p.labels);
        let picked = |p: &Skipped| serving(p) || selectors.iter().any(|s| labels_match(*s, &p.labels));
        if pods.iter().any(|p| picked(p)) {
            return false;
        }
        // Callers are looked for where VirtualServices and Sidecars refer to the service.
        let Ok(target) = Target::resolve(objects, &question.service, &question.namespace, question.port) else { return false };
        let callers = caller_namespaces(snapshot, &target, &Question { from: None, ..question.clone() });
        !skipped.iter().any(|s| callers.contains(&s.namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::diagnose::analyze;
    use crate::gather::files::{read_snapshot, read_snapshot_for};
    use crate::render::{Format, render};
    use clap::Parser;
    use serde_json::{Value, json};

    fn pod(namespace: &str, name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
               "spec": {"containers": [{"name": "app", "image": "app"}]}})
    }

    /// A snapshot of Service shop/reviews, one pod in each of three namespaces, and `extra`.
    fn snapshot(extra: Vec<Value>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("objects")).unwrap();
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "shop"},
                             "spec": {"selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}});
        let mut items = vec![service, pod("shop", "reviews-1", "reviews"), pod("front", "web-1", "web"), pod("batch", "job-1", "job")];
        items.extend(extra);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(dir.path().join("objects").join("all.json"), list.to_string()).unwrap();
        dir
    }

    /// Service `namespace/name` with `spec`, and an EndpointSlice of it listing 10.0.0.1.
    fn service_with_slice(namespace: &str, name: &str, spec: Value) -> [Value; 2] {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec});
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                           "metadata": {"name": format!("{name}-1"), "namespace": namespace, "labels": {"kubernetes.io/service-name": name}},
                           "endpoints": [{"addresses": ["10.0.0.1"]}]});
        [service, slice]
    }

    fn slices(snapshot: &Snapshot) -> Vec<&str> {
        snapshot.objects.endpoint_slices.iter().map(|s| s.meta.name.as_str()).collect()
    }

    fn question() -> Question {
        Question { service: "reviews".into(), namespace: "shop".into(), port: None, from: Some(From::Pod("web-1".into())), from_namespace: "front".into() }
    }

    fn pods(snapshot: &Snapshot) -> Vec<&str> {
        snapshot.objects.pods.iter().map(|p| p.meta.name.as_str()).collect()
    }

    /// On every scenario, with the question its expected report answers, a focused reading
    /// reports what a whole one does.
    #[test]
    fn every_scenario_reports_the_same_read_focused_or_whole() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios");
        let mut compared = 0;
        for dir in std::fs::read_dir(root).unwrap().flatten().map(|e| e.path()) {
            let Ok(text) = std::fs::read_to_string(dir.join("expected.json")) else { continue };
            let expected: Value = serde_json::from_str(&text).unwrap();
            let mut args = vec!["kubectl-mesh_why", expected["service"].as_str().unwrap()];
            args.extend(expected["args"].as_array().into_iter().flatten().filter_map(Value::as_str));
            let question = Cli::try_parse_from(args).unwrap().question("default").unwrap();
            let report = |read: crate::error::Result<Snapshot>| {
                read.and_then(|snapshot| analyze(&snapshot, &question)).map(|r| render(&r, Format::Json, false)).map_err(|e| e.to_string())
            };
            assert_eq!(report(read_snapshot_for(&dir, &question)), report(read_snapshot(&dir)), "{}", dir.display());
            compared += 1;
        }
        assert!(compared > 100, "{compared} scenarios compared");
    }

    #[test]
    fn pods_of_other_namespaces_are_only_scanned() {
        let dir = snapshot(Vec::new());
        let read = read_snapshot_for(dir.path(), &question()).unwrap();
        assert_eq!(pods(&read), ["reviews-1", "web-1"]);
        assert_eq!(read.objects.skipped.iter().map(|s| (s.namespace.as_str(), s.name.as_str())).collect::<Vec<_>>(), [("batch", "job-1")]);
    }

    #[test]
    fn the_slices_of_other_namespaces_services_are_only_scanned() {
        let mut extra = service_with_slice("shop", "reviews-canary", json!({"clusterIP": "10.96.0.2", "selector": {"app": "canary"}})).to_vec();
        extra.extend(service_with_slice("batch", "jobs", json!({"clusterIP": "10.96.0.3", "selector": {"app": "job"}})));
        let read = read_snapshot_for(snapshot(extra).path(), &question()).unwrap();
        assert_eq!(slices(&read), ["reviews-canary-1"]);
        assert!(read.objects.skipped.iter().any(|s| (s.kind, s.name.as_str()) == ("EndpointSlice", "jobs-1")));
    }

    #[test]
    fn the_slices_of_a_headless_or_selectorless_service_elsewhere_have_the_snapshot_read_whole() {
        let headless = json!({"clusterIP": "None", "selector": {"app": "job"}});
        let selectorless = json!({"clusterIP": "10.96.0.3"});
        for spec in [headless, selectorless] {
            let mut extra = service_with_slice("shop", "reviews-canary", json!({"clusterIP": "10.96.0.2", "selector": {"app": "canary"}})).to_vec();
            extra.extend(service_with_slice("batch", "jobs", spec.clone()));
            let read = read_snapshot_for(snapshot(extra).path(), &question()).unwrap();
            assert_eq!(slices(&read), ["reviews-canary-1", "jobs-1"], "{spec}");
            assert!(read.objects.skipped.is_empty());
        }
    }

    #[test]
    fn the_pods_of_captured_proxies_are_decoded_without_reading_the_snapshot_whole() {
        let dir = snapshot(vec![pod("other", "x-1", "x")]);
        std::fs::create_dir_all(dir.path().join("proxies/batch/job-1")).unwrap();
        std::fs::write(dir.path().join("proxies/batch/job-1/server_info.json"), "{}").unwrap();
        let read = read_snapshot_for(dir.path(), &question()).unwrap();
        assert_eq!(pods(&read), ["reviews-1", "web-1", "job-1"]);
        assert_eq!(read.objects.skipped.iter().map(|s| (s.namespace.as_str(), s.name.as_str())).collect::<Vec<_>>(), [("other", "x-1")]);
    }

    #[test]
    fn a_selector_that_reaches_a_skipped_pod_has_the_snapshot_read_whole() {
        let gateway = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "shop"},
                             "spec": {"selector": {"app": "job"}}});
        let read = read_snapshot_for(snapshot(vec![gateway]).path(), &question()).unwrap();
        assert_eq!(pods(&read), ["reviews-1", "web-1", "job-1"]);
        assert!(read.objects.skipped.is_empty());
    }

    #[test]
    fn callers_found_through_routing_have_the_snapshot_read_whole() {
        let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "to-reviews", "namespace": "batch"},
                        "spec": {"hosts": ["reviews.shop.svc.cluster.local"], "http": [{"route": [{"destination": {"host": "reviews.shop.svc.cluster.local"}}]}]}});
        let read = read_snapshot_for(snapshot(vec![vs]).path(), &question()).unwrap();
        assert_eq!(pods(&read).len(), 3);
    }

    #[test]
    fn a_pod_named_by_from_but_skipped_has_the_snapshot_read_whole() {
        let asked = Question { from: Some(From::Pod("job-1".into())), ..question() };
        let read = read_snapshot_for(snapshot(Vec::new()).path(), &asked).unwrap();
        assert_eq!(pods(&read).len(), 3);
    }
}
