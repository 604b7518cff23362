//! The mesh's workloads, indexed once: the pods a selector picks, and the calling workloads of
//! each namespace grouped by what istiod pushes them.
//!
//! Every service of `--all` asks both questions; answering them by scanning the pods made the
//! mesh-wide check grow with services × pods.

use crate::intent::target::Caller;
use crate::istio::labels_match;
use crate::snapshot::{Objects, Pod, Resource};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Callers the objects cannot tell apart (same namespace, kind, proxy state and selected
/// labels): istiod pushes them the same configuration, so one is analysed for all.
#[derive(Debug)]
pub struct CallerClass<'a> {
    /// The caller built from the first member.
    pub caller: Caller,
    /// One pod per workload (its owner, else its `app` label, else its name), in pod order,
    /// with its `namespace/name`.
    pub members: Vec<(&'a Resource<Pod>, String)>,
}

/// Pods by label and callers by class, per namespace.
#[derive(Debug, Default)]
pub struct Workloads<'a> {
    /// Pods by (namespace, label key, label value), in pod order.
    by_label: HashMap<(&'a str, &'a str, &'a str), Vec<&'a Resource<Pod>>>,
    /// Caller classes per namespace, in the order of their first member.
    classes: HashMap<&'a str, Vec<CallerClass<'a>>>,
}

impl<'a> Workloads<'a> {
    /// Indexes the pods of `objects`; `key` says which callers istiod pushes alike.
    pub fn build(objects: &'a Objects, key: impl Fn(&Caller) -> String + Sync) -> Workloads<'a> {
        // Two independent passes over every pod, side by side.
        let index = || {
            let mut by_label: HashMap<(&str, &str, &str), Vec<_>> = HashMap::new();
            for pod in &objects.pods {
                for (k, v) in pod.meta.labels.iter() {
                    by_label.entry((pod.meta.namespace.as_str(), k, v)).or_default().push(pod);
                }
            }
            by_label
        };
        let (by_label, classes) = crate::parallel::join(index, || {
            let mut classes: HashMap<&str, Vec<CallerClass>> = HashMap::new();
            let mut class_of: HashMap<String, usize> = HashMap::new();
            let mut seen_workloads: HashSet<(&str, &str)> = HashSet::new();
            for pod in &objects.pods {
                let workload = pod.meta.owners.first().map(String::as_str).or_else(|| pod.meta.labels.get("app")).unwrap_or(&pod.meta.name);
                if !seen_workloads.insert((pod.meta.namespace.as_str(), workload)) {
                    continue;
                }
                let caller = Caller::from_pod(pod);
                let list = classes.entry(pod.meta.namespace.as_str()).or_default();
                let member = (pod, caller.display());
                match class_of.entry(key(&caller)) {
                    std::collections::hash_map::Entry::Occupied(i) => list[*i.get()].members.push(member),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(list.len());
                        list.push(CallerClass { caller, members: vec![member] });
                    }
                }
            }
            classes
        });
        Workloads { by_label, classes }
    }

    /// The pods of `namespace` whose labels include every pair of `selector`, in pod order;
    /// none for an empty selector (a Service without one selects no pod).
    pub fn selected(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<&'a Resource<Pod>> {
        // The shortest list of one pair, checked against the others.
        let shortest = selector
            .iter()
            .map(|(k, v)| self.by_label.get(&(namespace, k.as_str(), v.as_str())).map(Vec::as_slice).unwrap_or_default())
            .min_by_key(|l| l.len());
        shortest.unwrap_or_default().iter().filter(|p| labels_match(selector, &p.meta.labels)).copied().collect()
    }

    /// The caller classes of `namespace`.
    pub fn classes(&self, namespace: &str) -> &[CallerClass<'a>] {
        self.classes.get(namespace).map(Vec::as_slice).unwrap_or_default()
    }
}
