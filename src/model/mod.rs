//! The model: istiod's view of the mesh for one question, built once (like istiod's
//! PushContext) and read by the intent derivation and by every rule.
//!
//! Public API, in the order istiod computes things:
//! - [`Model::build`] indexes the objects once: the service [`registry`] (Services and
//!   ServiceEntries by hostname, with ports and protocols), VirtualServices by host, and
//!   DestinationRules by namespace.
//! - [`Model::sidecar_scope`] is one caller's SidecarScope: the Sidecar that applies, its egress
//!   imports per port and its outbound traffic policy.
//! - [`Model::virtual_services`] gives the mesh VirtualServices a caller imports for a host and
//!   port, in istiod's precedence order; [`virtual_services::expanded_rules`] merges delegates.
//! - [`Model::destination_rule`] is the DestinationRule in effect for a caller and host
//!   ([`destination_rules::EffectiveRule`]).
//! - [`Model::backends`] and [`Model::caller_classes`] answer from the [`workloads`]
//!   index: the pods a selector picks, and the callers of a namespace pushed alike.
//!
//! Everything here is pure and keyed on the objects; per-caller output (routes, clusters) is
//! the job of [`crate::intent`], which reads this model.

pub mod destination_rules;
pub mod host_index;
pub mod registry;
pub mod sidecar_scope;
pub mod virtual_services;
pub mod waypoints;
pub mod workloads;

pub use destination_rules::EffectiveRule;
pub use host_index::HostIndex;
pub use registry::{HostDefinition, Registry, ServiceInfo};
pub use sidecar_scope::SidecarScope;
pub use workloads::{CallerClass, Workloads};

use crate::intent::target::{Caller, Target};
use crate::istio::names::{DEFAULT_DOMAIN, resolve_short_name};
use crate::istio::{DestinationRule, Gateway, VirtualService};
use crate::snapshot::{Objects, Pod, Resource, SERVICE_NAME_LABEL};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// istiod's view of the mesh, indexed once per question.
#[derive(Debug)]
pub struct Model<'a> {
    /// The objects the model was built from (for rules that list raw objects of one kind).
    pub objects: &'a Objects,
    /// Services and ServiceEntries by hostname.
    pub registry: Registry<'a>,
    /// VirtualServices by namespace, oldest first (istiod's order within a namespace).
    virtual_services_by_ns: BTreeMap<&'a str, Vec<&'a Resource<VirtualService>>>,
    /// DestinationRules by namespace, oldest first, each with its host resolved once.
    destination_rules_by_ns: BTreeMap<&'a str, Vec<(&'a Resource<DestinationRule>, String)>>,
    /// The VirtualServices bound to `mesh`, oldest first, each with its hosts resolved once
    /// (every caller's lookup reads them: resolving per lookup made `--all` quadratic).
    mesh_virtual_services: Vec<(&'a Resource<VirtualService>, Vec<String>)>,
    /// For each host some mesh-bound VirtualService's HTTP routes send to, those VirtualServices
    /// (indices into `mesh_virtual_services`): rules about one service look only at these.
    routing_to: HashMap<String, Vec<usize>>,
    /// Every DestinationRule, oldest first, with its resolved host.
    destination_rules: Vec<(&'a Resource<DestinationRule>, String)>,
    /// Every label key some selector of the mesh reads (Sidecar, DestinationRule,
    /// ServiceEntry and PeerAuthentication workload selectors, Gateway selectors, VirtualService
    /// `sourceLabels`): two pods that agree on these are seen alike by every object.
    selector_keys: BTreeSet<&'a str>,
    /// EndpointSlices by namespace, then service name.
    endpoint_slices: BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a Resource<EndpointSlice>>>>,
    /// Pods by label, and callers by what they are pushed.
    workloads: Workloads<'a>,
    /// The hosts of each of `objects.virtual_services`, resolved once.
    virtual_service_hosts: Vec<Vec<String>>,
    /// `objects.virtual_services` by host.
    virtual_service_claims: HostIndex,
    /// `objects.virtual_services` by host and by the host of each destination.
    virtual_service_mentions: HostIndex,
    /// `mesh_virtual_services` by host.
    mesh_claims: HostIndex,
    /// `destination_rules` by host.
    destination_rule_claims: HostIndex,
}

impl<'a> Model<'a> {
    /// Indexes `objects` (already sorted oldest first by the snapshot).
    pub fn build(objects: &'a Objects) -> Model<'a> {
        let mut virtual_services_by_ns: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for vs in &objects.virtual_services {
            virtual_services_by_ns.entry(vs.meta.namespace.as_str()).or_default().push(vs);
        }
        let destination_rules: Vec<_> = objects.destination_rules.iter().map(|dr| (dr, destination_rules::dr_host(dr))).collect();
        let mut destination_rules_by_ns: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for (dr, host) in &destination_rules {
            destination_rules_by_ns.entry(dr.meta.namespace.as_str()).or_default().push((*dr, host.clone()));
        }
        let mut endpoint_slices: BTreeMap<&str, BTreeMap<&str, Vec<_>>> = BTreeMap::new();
        for slice in &objects.endpoint_slices {
            if let Some(service) = slice.meta.labels.get(SERVICE_NAME_LABEL) {
                endpoint_slices.entry(slice.meta.namespace.as_str()).or_default().entry(service).or_default().push(slice);
            }
        }
        // The users' VirtualServices, then those istiod builds from mesh routes.
        let mesh_virtual_services: Vec<_> = objects
            .virtual_services
            .iter()
            .chain(&objects.route_virtual_services)
            .filter(|vs| virtual_services::vs_gateways(vs).iter().any(|g| g == "mesh"))
            .map(|vs| (vs, virtual_services::vs_hosts(vs)))
            .collect();
        let selector_keys = selector_keys(objects);
        let (workloads, registry) =
            crate::parallel::join(|| Workloads::build(objects, |caller| caller_key(&selector_keys, caller)), || Registry::build(objects));
        let virtual_service_hosts: Vec<Vec<String>> = objects.virtual_services.iter().map(virtual_services::vs_hosts).collect();
        let virtual_service_claims = HostIndex::build(virtual_service_hosts.iter().map(|hosts| hosts.iter().map(String::as_str)));
        let mentions: Vec<Vec<String>> = objects
            .virtual_services
            .iter()
            .zip(&virtual_service_hosts)
            .map(|(vs, hosts)| {
                let destinations = vs.spec.destinations().into_iter().map(|d| resolve_short_name(&d.destination.host, &vs.meta.namespace, DEFAULT_DOMAIN));
                hosts.iter().cloned().chain(destinations).collect()
            })
            .collect();
        let virtual_service_mentions = HostIndex::build(mentions.iter().map(|hosts| hosts.iter().map(String::as_str)));
        let mesh_claims = HostIndex::build(mesh_virtual_services.iter().map(|(_, hosts)| hosts.iter().map(String::as_str)));
        let destination_rule_claims = HostIndex::build(destination_rules.iter().map(|(_, host)| [host.as_str()]));
        let mut routing_to: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (vs, _)) in mesh_virtual_services.iter().enumerate() {
            let hosts: BTreeSet<String> =
                vs.spec.http.iter().flat_map(|h| &h.route).map(|d| resolve_short_name(&d.destination.host, &vs.meta.namespace, DEFAULT_DOMAIN)).collect();
            for host in hosts {
                routing_to.entry(host).or_default().push(i);
            }
        }
        Model {
            objects,
            selector_keys,
            routing_to,
            registry,
            virtual_services_by_ns,
            destination_rules_by_ns,
            mesh_virtual_services,
            destination_rules,
            endpoint_slices,
            workloads,
            virtual_service_hosts,
            virtual_service_claims,
            virtual_service_mentions,
            mesh_claims,
            destination_rule_claims,
        }
    }

    /// The caller's SidecarScope.
    pub fn sidecar_scope(&self, caller: &Caller) -> SidecarScope<'a> {
        SidecarScope::for_caller(self, caller)
    }

    /// The DestinationRule(s) in effect for `host` (a service in `service_ns`, empty for hosts
    /// that are not Kubernetes services) as seen from `caller`.
    pub fn destination_rule(&self, caller: &Caller, host: &str, service_ns: &str) -> Option<EffectiveRule<'a>> {
        destination_rules::effective(self, caller, host, service_ns)
    }

    /// The DestinationRules istiod would consult for `caller` and `host` but that the rule in
    /// effect hides (a rule in an earlier namespace or with a more specific host shadows them).
    pub fn shadowed_destination_rules(&self, caller: &Caller, host: &str, service_ns: &str) -> Vec<&'a Resource<DestinationRule>> {
        destination_rules::shadowed(self, caller, host, service_ns)
    }

    /// Every DestinationRule whose host matches `host`, effective for a caller or not.
    pub fn all_destination_rules(&self, host: &str) -> Vec<&'a Resource<DestinationRule>> {
        let candidates = self.destination_rule_claims.candidates(host).into_iter().map(|i| &self.destination_rules[i]);
        candidates.filter(|(_, h)| crate::istio::names::host_matches(h, host)).map(|(dr, _)| *dr).collect()
    }

    /// What of `caller` the objects can tell apart: two callers with the same key are pushed the
    /// same configuration (namespace, kind, proxy state, and the labels any selector reads).
    pub fn caller_key(&self, caller: &Caller) -> String {
        caller_key(&self.selector_keys, caller)
    }

    /// The VirtualServices (bound to any gateway or `mesh`) with a host that claims `fqdn`, in
    /// istiod's order, each with its claiming host (exact first, then the most specific wildcard).
    pub fn virtual_services_claiming(&self, fqdn: &str) -> Vec<(&'a Resource<VirtualService>, &str)> {
        let objects = self.objects;
        self.virtual_service_claims
            .candidates(fqdn)
            .into_iter()
            .filter_map(|i| Some((&objects.virtual_services[i], virtual_services::best_claim(&self.virtual_service_hosts[i], fqdn)?.as_str())))
            .collect()
    }

    /// The VirtualServices that may concern `fqdn`: those with a host that may claim it or a
    /// destination that resolves to it, in list order. Rules filter these, not every
    /// VirtualService of the mesh, per question.
    pub fn virtual_services_mentioning(&self, fqdn: &str) -> impl Iterator<Item = &'a Resource<VirtualService>> + use<'a> {
        let objects = self.objects;
        self.virtual_service_mentions.candidates(fqdn).into_iter().map(move |i| &objects.virtual_services[i])
    }

    /// The pods of `target`'s namespace its selector picks: its backends.
    pub fn backends(&self, target: &Target) -> Vec<&'a Resource<Pod>> {
        self.workloads.selected(&target.namespace, &target.selector)
    }

    /// The calling workloads of `namespace`, grouped by what istiod pushes them.
    pub fn caller_classes(&self, namespace: &str) -> &[CallerClass<'a>] {
        self.workloads.classes(namespace)
    }

    /// The EndpointSlices of Service `namespace/name`.
    pub fn endpoint_slices_of(&self, namespace: &str, name: &str) -> &[&'a Resource<EndpointSlice>] {
        self.endpoint_slices.get(namespace).and_then(|m| m.get(name)).map(Vec::as_slice).unwrap_or_default()
    }

    /// The mesh-bound VirtualServices the caller imports on `port`, in precedence order.
    pub fn mesh_virtual_services(&self, caller: &Caller, port: u32) -> Vec<&'a Resource<VirtualService>> {
        virtual_services::mesh_for_caller(self, caller, port)
    }

    /// The mesh-bound VirtualServices the caller imports on `port` that claim `fqdn`, in
    /// precedence order.
    pub fn virtual_services(&self, caller: &Caller, fqdn: &str, port: u32) -> Vec<&'a Resource<VirtualService>> {
        virtual_services::mesh_for_caller_claiming(self, caller, port, Some(fqdn))
    }

    /// Gateways in istiod's order: those it derives from Ingresses (no creation time, so first),
    /// then Istio's and Gateway API's, oldest first.
    pub fn gateways(&self) -> impl Iterator<Item = &'a Resource<Gateway>> + use<'a> {
        self.objects.ingress_gateways.iter().chain(&self.objects.gateways)
    }

    /// The VirtualServices bound to gateway `namespace/name`, in istiod's order: those derived
    /// from Ingresses first, then the users', oldest first.
    pub fn gateway_virtual_services(&self, gateway: &str) -> Vec<&'a Resource<VirtualService>> {
        let objects = self.objects;
        objects
            .ingress_virtual_services
            .iter()
            .chain(&objects.virtual_services)
            .filter(|vs| virtual_services::vs_gateways(vs).iter().any(|g| g == gateway))
            .collect()
    }

    /// The VirtualServices bound to `mesh`, with their resolved hosts, oldest first.
    pub fn mesh_bound(&self) -> &[(&'a Resource<VirtualService>, Vec<String>)] {
        &self.mesh_virtual_services
    }

    /// The mesh-bound VirtualServices that may claim `fqdn` (an exact host, or a wildcard the
    /// caller checks), with their resolved hosts, oldest first.
    pub fn mesh_bound_claiming(&self, fqdn: &str) -> impl Iterator<Item = &(&'a Resource<VirtualService>, Vec<String>)> {
        self.mesh_claims.candidates(fqdn).into_iter().map(|i| &self.mesh_virtual_services[i])
    }

    /// The mesh-bound VirtualServices whose HTTP routes send to `fqdn`, with their resolved
    /// hosts, oldest first.
    pub fn mesh_routing_to(&self, fqdn: &str) -> impl Iterator<Item = &(&'a Resource<VirtualService>, Vec<String>)> {
        self.routing_to.get(fqdn).into_iter().flatten().map(|i| &self.mesh_virtual_services[*i])
    }

    /// VirtualServices of one namespace, oldest first.
    pub fn virtual_services_in(&self, namespace: &str) -> &[&'a Resource<VirtualService>] {
        self.virtual_services_by_ns.get(namespace).map(Vec::as_slice).unwrap_or_default()
    }

    /// DestinationRules of one namespace, oldest first, with their resolved hosts.
    pub fn destination_rules_in(&self, namespace: &str) -> &[(&'a Resource<DestinationRule>, String)] {
        self.destination_rules_by_ns.get(namespace).map(Vec::as_slice).unwrap_or_default()
    }
}

/// [`Model::caller_key`] for the label keys `selector_keys`.
fn caller_key(selector_keys: &BTreeSet<&str>, caller: &Caller) -> String {
    let labels: Vec<String> = caller.labels.iter().filter(|(k, _)| selector_keys.contains(k.as_str())).map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}|{:?}|{:?}|{:?}|{}|{}|{}",
        caller.namespace,
        caller.kind,
        caller.sidecar,
        caller.istio_version,
        caller.hypothetical,
        caller.possible,
        labels.join(",")
    )
}

/// The label keys the objects' selectors read.
fn selector_keys(objects: &Objects) -> BTreeSet<&str> {
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    let selectors = objects
        .sidecars
        .iter()
        .filter_map(|s| s.spec.workload_selector.as_ref())
        .chain(objects.destination_rules.iter().filter_map(|d| d.spec.workload_selector.as_ref()))
        .chain(objects.service_entries.iter().filter_map(|s| s.spec.workload_selector.as_ref()))
        .chain(objects.peer_authentications.iter().filter_map(|p| p.spec.selector.as_ref()))
        .map(|w| &w.labels)
        .chain(objects.gateways.iter().chain(&objects.ingress_gateways).map(|g| &g.spec.selector));
    for labels in selectors {
        keys.extend(labels.keys().map(String::as_str));
    }
    for vs in objects.virtual_services.iter().chain(&objects.ingress_virtual_services) {
        for m in vs.spec.http.iter().flat_map(|h| &h.matches) {
            keys.extend(m.source_labels.keys().map(String::as_str));
        }
        for m in vs.spec.tcp.iter().chain(&vs.spec.tls).flat_map(|r| &r.matches) {
            keys.extend(m.get("sourceLabels").and_then(|l| l.as_object()).into_iter().flat_map(|l| l.keys().map(String::as_str)));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::names::Protocol;
    use serde_json::json;

    fn objects(docs: &[serde_json::Value]) -> Objects {
        let mut objects = Objects::default();
        for (i, d) in docs.iter().enumerate() {
            objects.add_document(d.clone(), &format!("test[{i}]")).unwrap();
        }
        let _ = objects.sort();
        objects
    }

    fn service(ns: &str, name: &str, ports: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"ports": ports}})
    }

    fn pod(ns: &str, name: &str, owner: &str, labels: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": "u"}]},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}})
    }

    #[test]
    fn workloads_answer_selectors_and_group_callers_pushed_alike() {
        let sidecar = json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "tier", "namespace": "app"},
            "spec": {"workloadSelector": {"labels": {"tier": "front"}}, "egress": [{"hosts": ["./*"]}]}});
        let o = objects(&[
            pod("app", "web-1", "web-a", json!({"app": "web", "tier": "front"})),
            pod("app", "web-2", "web-a", json!({"app": "web", "tier": "front"})),
            pod("app", "api-1", "api-a", json!({"app": "api", "tier": "back"})),
            pod("app", "db-1", "db-a", json!({"app": "db", "tier": "back"})),
            pod("other", "web-1", "web-a", json!({"app": "web", "tier": "front"})),
            sidecar,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
            service("app", "external", json!([{"port": 80}])),
        ]);
        let model = Model::build(&o);
        let web = Target::resolve(&o, "web", "app", None).unwrap();
        let names: Vec<&str> = model.backends(&web).iter().map(|p| p.meta.name.as_str()).collect();
        assert_eq!(names, ["web-1", "web-2"]);
        assert!(model.backends(&Target::resolve(&o, "external", "app", None).unwrap()).is_empty(), "an empty selector selects nothing");
        // One member per workload; `tier` is read by a Sidecar selector, so front and back differ.
        let classes: Vec<Vec<&str>> = model.caller_classes("app").iter().map(|c| c.members.iter().map(|(_, n)| n.as_str()).collect()).collect();
        assert_eq!(classes, [vec!["app/web-1"], vec!["app/api-1", "app/db-1"]]);
        assert_eq!(model.caller_classes("other").len(), 1);
    }

    #[test]
    fn registry_reads_protocols_from_names_app_protocol_and_sniffing() {
        let o = objects(&[service(
            "default",
            "reviews",
            json!([{"name": "http-web", "port": 9080}, {"name": "tcp-db", "port": 5432}, {"name": "x", "port": 8080, "appProtocol": "grpc"}, {"port": 7000}]),
        )]);
        let model = Model::build(&o);
        let def = &model.registry.definitions("reviews.default.svc.cluster.local")[0];
        let protocols: Vec<Protocol> = def.ports.iter().map(|p| p.protocol).collect();
        assert_eq!(protocols, [Protocol::Http, Protocol::Tcp, Protocol::Grpc, Protocol::Auto]);
        assert!(model.registry.has_port("reviews.default.svc.cluster.local", 5432));
        assert!(!model.registry.has_port("reviews.default.svc.cluster.local", 1));
    }

    #[test]
    fn a_kubernetes_service_is_preferred_over_a_service_entry_for_the_same_host() {
        let se = json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "se", "namespace": "a"},
            "spec": {"hosts": ["reviews.default.svc.cluster.local"], "ports": [{"number": 1, "protocol": "TCP"}]}});
        let o = objects(&[se, service("default", "reviews", json!([{"name": "http", "port": 9080}]))]);
        let model = Model::build(&o);
        assert_eq!(model.registry.visible("reviews.default.svc.cluster.local", "x").unwrap().reference.kind, "Service");
    }

    #[test]
    fn the_sidecar_scope_imports_per_port_and_takes_the_outbound_mode() {
        let sc = json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "default", "namespace": "app"},
            "spec": {"egress": [{"hosts": ["./*"]}, {"port": {"number": 9080}, "hosts": ["default/*"]}], "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}});
        let o = objects(&[sc]);
        let model = Model::build(&o);
        let scope = model.sidecar_scope(&Caller::hypothetical("app"));
        assert_eq!(scope.outbound_mode, "REGISTRY_ONLY");
        assert!(scope.imports(9080, "default", "reviews.default.svc.cluster.local"));
        assert!(!scope.imports(80, "default", "reviews.default.svc.cluster.local"));
        assert!(scope.imports(80, "app", "a.app.svc.cluster.local"));
        assert!(model.sidecar_scope(&Caller::hypothetical("other")).imports(80, "default", "x"));
    }

    #[test]
    fn tcp_rules_apply_by_port_and_destination_subnets_are_not_compared() {
        let vs = |m: serde_json::Value| {
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "db", "namespace": "default"},
                "spec": {"hosts": ["db"], "tcp": [{"match": [m], "route": [{"destination": {"host": "db"}}]}]}})
        };
        let caller = Caller::hypothetical("default");
        let o = objects(&[vs(json!({"port": 5432}))]);
        let v = &o.virtual_services[0];
        assert!(virtual_services::tcp_rule(v, &caller, 5432).unwrap().is_some());
        assert!(virtual_services::tcp_rule(v, &caller, 3306).unwrap().is_none());
        let o = objects(&[vs(json!({"destinationSubnets": ["10.0.0.0/8"]}))]);
        assert!(virtual_services::tcp_rule(&o.virtual_services[0], &caller, 5432).is_err());
    }

    #[test]
    fn tilde_egress_entries_exclude_hosts_from_istio_1_31() {
        let sc = json!({"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "default", "namespace": "app"},
            "spec": {"egress": [{"hosts": ["*/*", "~default/reviews.default.svc.cluster.local"]}]}});
        let o = objects(&[sc]);
        let model = Model::build(&o);
        let caller = |v| Caller { istio_version: Some(v), ..Caller::hypothetical("app") };
        let (reviews, ratings) = ("reviews.default.svc.cluster.local", "ratings.default.svc.cluster.local");
        assert!(!model.sidecar_scope(&caller((1, 31))).imports(9080, "default", reviews));
        assert!(model.sidecar_scope(&caller((1, 31))).imports(9080, "default", ratings));
        // Before 1.31 the `~` entry imports nothing and excludes nothing.
        assert!(model.sidecar_scope(&caller((1, 30))).imports(9080, "default", reviews));
    }
}
