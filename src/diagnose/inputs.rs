//! What the checks read, and which of it a snapshot lacks.
//!
//! Every check declares the inputs whose absence could make it conclude wrongly (a
//! DestinationRule list that could not be read makes every subset look undeclared; a route
//! configuration that did not arrive makes the service's virtual host look missing). A check
//! with such an input missing is not run: the report says "not checked" and why, instead of a
//! finding drawn from data that is not there. Inputs whose absence only hides findings (no
//! counters, no finding from counters) are not declared.

use super::finding::Finding;
use crate::snapshot::{Gap, NOT_SERVED, admin_gap};
use std::collections::BTreeMap;

/// Something a check reads: an object kind, or a part of one caller's Envoy admin output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    /// Kubernetes Services.
    Services,
    /// Istio ServiceEntries.
    ServiceEntries,
    /// Istio VirtualServices.
    VirtualServices,
    /// Istio DestinationRules.
    DestinationRules,
    /// Istio and Gateway API Gateways.
    Gateways,
    /// Istio Sidecars.
    Sidecars,
    /// Istio PeerAuthentications.
    PeerAuthentications,
    /// Istio RequestAuthentications.
    RequestAuthentications,
    /// Gateway API routes (HTTP, GRPC, TCP, TLS).
    Routes,
    /// Gateway API ReferenceGrants.
    ReferenceGrants,
    /// Secrets that gateways name as TLS credentials.
    Secrets,
    /// Pods.
    Pods,
    /// EndpointSlices.
    EndpointSlices,
    /// Namespaces.
    Namespaces,
    /// A caller's route configurations (`/config_dump` dynamic_route_configs).
    ProxyRoutes,
    /// A caller's listeners.
    ProxyListeners,
    /// A caller's clusters.
    ProxyClusters,
    /// A caller's endpoints (EDS).
    ProxyEndpoints,
    /// A caller's live host health (`/clusters`).
    ProxyHostHealth,
}

use Input::*;

/// The config dump parts the intent is compared with.
pub const PROXY_CONFIG: &[Input] = &[ProxyRoutes, ProxyListeners, ProxyClusters, ProxyEndpoints];

impl Input {
    /// The gap sources that name this object kind (as live gathering names a list), or the
    /// admin requests (`/config_dump (FIELD)`, `/clusters`) and capture files that carry this
    /// part of a proxy.
    fn sources(self) -> &'static [&'static str] {
        match self {
            Services => &["services"],
            ServiceEntries => &["serviceentries.networking.istio.io"],
            VirtualServices => &["virtualservices.networking.istio.io"],
            DestinationRules => &["destinationrules.networking.istio.io"],
            Gateways => &["gateways.networking.istio.io", "gateways.gateway.networking.k8s.io"],
            Sidecars => &["sidecars.networking.istio.io"],
            PeerAuthentications => &["peerauthentications.security.istio.io"],
            RequestAuthentications => &["requestauthentications.security.istio.io"],
            Routes => &[
                "httproutes.gateway.networking.k8s.io",
                "grpcroutes.gateway.networking.k8s.io",
                "tcproutes.gateway.networking.k8s.io",
                "tlsroutes.gateway.networking.k8s.io",
            ],
            ReferenceGrants => &["referencegrants.gateway.networking.k8s.io"],
            Secrets => &["secrets"],
            Pods => &["pods"],
            EndpointSlices => &["endpointslices.discovery.k8s.io"],
            Namespaces => &["namespaces"],
            ProxyRoutes => &["/config_dump (dynamic_route_configs)", "config_dump.json"],
            ProxyListeners => &["/config_dump (dynamic_listeners)", "config_dump.json"],
            ProxyClusters => &["/config_dump (dynamic_active_clusters)", "/config_dump (dynamic_warming_clusters)", "config_dump.json"],
            ProxyEndpoints => &["/config_dump (dynamic_endpoint_configs)", "config_dump.json"],
            ProxyHostHealth => &["/clusters", "clusters.json"],
        }
    }

    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            ProxyRoutes => "route configurations",
            ProxyListeners => "listeners",
            ProxyClusters => "clusters",
            ProxyEndpoints => "endpoints",
            ProxyHostHealth => "host health (/clusters)",
            object => object.sources()[0],
        }
    }

    fn is_proxy(self) -> bool {
        PROXY_CONFIG.contains(&self) || self == ProxyHostHealth
    }
}

const OBJECT_INPUTS: &[Input] = &[
    Services,
    ServiceEntries,
    VirtualServices,
    DestinationRules,
    Gateways,
    Sidecars,
    PeerAuthentications,
    RequestAuthentications,
    Routes,
    ReferenceGrants,
    Secrets,
    Pods,
    EndpointSlices,
    Namespaces,
];

/// Inputs that are missing, each with why (the gap that says so).
#[derive(Debug, Clone, Default)]
pub struct Missing(BTreeMap<Input, String>);

impl Missing {
    /// The object kinds `gaps` say were not read, wholly or in part. A kind the cluster does not
    /// serve is not missing: there are none of it.
    pub fn objects(gaps: &[Gap]) -> Missing {
        let mut out = Missing::default();
        for gap in gaps.iter().filter(|g| !g.reason.starts_with(NOT_SERVED)) {
            if let Some(input) = OBJECT_INPUTS.iter().find(|i| i.sources().contains(&gap.source.as_str())) {
                out.0.entry(*input).or_insert_with(|| gap.reason.clone());
            }
        }
        out
    }

    /// These missing object kinds plus the parts of proxy `namespace/pod` that `gaps` (from the
    /// capture, or from reading its files) say are missing.
    pub fn with_proxy(&self, gaps: &[Gap], namespace: &str, pod: &str) -> Missing {
        let mut out = self.clone();
        for gap in gaps {
            let Some(part) = admin_gap(&gap.source, namespace, pod) else { continue };
            for input in [ProxyRoutes, ProxyListeners, ProxyClusters, ProxyEndpoints, ProxyHostHealth] {
                if input.sources().contains(&part) {
                    out.0.entry(input).or_insert_with(|| gap.reason.clone());
                }
            }
        }
        out
    }

    /// The first of `needs` that is missing, and why.
    pub fn first_of(&self, needs: &[Input]) -> Option<(Input, &str)> {
        needs.iter().find_map(|i| self.0.get(i).map(|why| (*i, why.as_str())))
    }
}

/// The inputs whose absence could make finding `id` false. Inputs whose absence only hides a
/// finding (a VirtualService not read cannot make two others conflict) are not listed.
pub fn needs(id: &str) -> &'static [Input] {
    match id {
        "subset-not-declared" | "dr-shadowed" => &[DestinationRules],
        "host-not-found" | "vs-host-mismatch" | "destination-port-missing" | "destination-port-pinned" => &[Services, ServiceEntries],
        "port-not-http" | "route-parent-port-mismatch" => &[Services],
        "sidecar-selects-no-pod" => &[Pods],
        "namespace-not-injected" => &[Namespaces],
        "gateway-not-found" => &[Gateways],
        "subset-no-endpoints" => &[Pods, EndpointSlices],
        "mtls-conflict" => &[PeerAuthentications, DestinationRules],
        "jwt-claim-route-unauthenticated" => &[RequestAuthentications, Pods],
        "gateway-credential-invalid" | "gateway-credential-missing" => &[Secrets, Pods],
        "gateway-port-not-exposed" => &[Services, Pods],
        "route-backend-unresolved" => &[Services, ServiceEntries, ReferenceGrants],
        "route-status-stale" | "route-not-accepted" => &[Routes, Gateways],
        "l7-rule-without-waypoint" => &[Namespaces, Services, Gateways],
        "proxy-stale" | "split-skew" => &[
            Services,
            ServiceEntries,
            VirtualServices,
            DestinationRules,
            Sidecars,
            Gateways,
            Routes,
            ProxyRoutes,
            ProxyListeners,
            ProxyClusters,
            ProxyEndpoints,
        ],
        "passthrough-fallback" => &[Services, ServiceEntries, VirtualServices, Sidecars, Routes, ProxyRoutes, ProxyListeners],
        "endpoints-stale" => &[Pods, EndpointSlices, DestinationRules, ProxyEndpoints],
        "endpoints-unhealthy" => &[ProxyHostHealth],
        _ => &[],
    }
}

/// Withholds the findings an incomplete input could have made false: each becomes a "not
/// checked" gap naming the input and why it is incomplete. Returns what was not examined, for
/// the verdict line.
pub fn withhold(findings: &mut Vec<Finding>, gaps: &mut Vec<Gap>) -> Vec<String> {
    let objects = Missing::objects(gaps);
    let mut missing = BTreeMap::from([(String::new(), objects.clone())]);
    let mut skipped = Skipped::default();
    findings.retain(|f| {
        let needs = needs(f.id);
        let mut keep = false;
        skipped.run(&objects, needs, &[f.id], "", || keep = true);
        for caller in &f.callers {
            if !keep {
                break;
            }
            let (namespace, pod) = caller.split_once('/').unwrap_or(("", caller));
            let with_proxy = objects.with_proxy(gaps, namespace, pod);
            keep = false;
            skipped.run(&with_proxy, needs, &[f.id], caller, || keep = true);
            missing.insert(caller.clone(), with_proxy);
        }
        keep
    });
    gaps.extend(skipped.gaps(&missing));
    skipped.inputs()
}

/// Checks that were not run, grouped by the input they lacked.
#[derive(Debug, Default)]
pub struct Skipped(BTreeMap<(Input, String), Vec<&'static str>>);

impl Skipped {
    /// Runs `check` unless one of `needs` is missing; then records its `ids` as not checked.
    /// `whose` names the caller for a proxy input.
    pub fn run(&mut self, missing: &Missing, needs: &[Input], ids: &[&'static str], whose: &str, check: impl FnOnce()) {
        match missing.first_of(needs) {
            None => check(),
            Some((input, _)) => {
                let owner = if input.is_proxy() { whose.to_string() } else { String::new() };
                let list = self.0.entry((input, owner)).or_default();
                for id in ids {
                    if !list.contains(id) {
                        list.push(id);
                    }
                }
            }
        }
    }

    /// One gap per missing input: which checks were not run for lack of it, and why it is missing.
    pub fn gaps(&self, missing: &BTreeMap<String, Missing>) -> Vec<Gap> {
        self.0
            .iter()
            .map(|((input, owner), ids)| {
                let why = missing.get(owner).and_then(|m| m.0.get(input)).map(String::as_str).unwrap_or("not read");
                let whose = if owner.is_empty() { String::new() } else { format!(" of {owner}") };
                Gap {
                    source: format!("{}{whose}", input.name()),
                    reason: format!("not checked: {} (they need it, and it is incomplete: {why})", ids.join(", ")),
                }
            })
            .collect()
    }

    /// What was not examined, for the verdict: `DestinationRules`, `the route configurations of ns/pod`.
    pub fn inputs(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.0.keys().map(|(input, owner)| if owner.is_empty() { input.name().to_string() } else { format!("the {} of {owner}", input.name()) }).collect();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(source: &str, reason: &str) -> Gap {
        Gap { source: source.into(), reason: reason.into() }
    }

    #[test]
    fn unreadable_kinds_are_missing_and_unserved_ones_are_not() {
        let gaps = [
            gap("destinationrules.networking.istio.io", "not readable: forbidden"),
            gap("httproutes.gateway.networking.k8s.io", &format!("{NOT_SERVED} in v1, v1beta1: are the Gateway API CRDs installed?")),
        ];
        let missing = Missing::objects(&gaps);
        assert_eq!(missing.first_of(&[Routes, DestinationRules]), Some((DestinationRules, "not readable: forbidden")));
        assert_eq!(missing.first_of(&[Routes]), None);
    }

    #[test]
    fn a_failed_admin_request_makes_that_part_of_that_proxy_missing() {
        let gaps = [gap(&crate::snapshot::admin_source("default", "a", "/config_dump (dynamic_route_configs)"), "not a config dump: EOF")];
        let missing = Missing::default().with_proxy(&gaps, "default", "a");
        assert_eq!(missing.first_of(PROXY_CONFIG).map(|(i, _)| i), Some(ProxyRoutes));
        assert_eq!(Missing::default().with_proxy(&gaps, "default", "b").first_of(PROXY_CONFIG), None);
        let mut skipped = Skipped::default();
        let mut ran = false;
        skipped.run(&missing, PROXY_CONFIG, &["proxy-stale"], "default/a", || ran = true);
        assert!(!ran);
        let gaps = skipped.gaps(&BTreeMap::from([("default/a".to_string(), missing)]));
        assert_eq!(gaps[0].source, "route configurations of default/a");
        assert!(gaps[0].reason.starts_with("not checked: proxy-stale") && gaps[0].reason.contains("EOF"), "{gaps:?}");
    }
}
