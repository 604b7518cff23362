//! Workloads: does the caller run a sidecar, will its namespace's pods get one, and do the
//! client's TLS choice and the destination's PeerAuthentication agree.

use super::{Scope, has_routing_rules, named};
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::target::{Caller, Target, TargetPort, has_proxy, sidecar_exemption};
use crate::istio::{PeerAuthentication, Sidecar, labels_match};
use crate::model::Model;
use crate::snapshot::{ObjectRef, Pod, PodTemplateSpec, Resource};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Namespaces `istioctl analyze` does not expect to be injected.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// How a namespace asks for sidecars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injection {
    /// `istio-injection=enabled`, `istio.io/rev`, or the injector enables every namespace.
    Enabled,
    /// Deliberately not injected (`istio-injection` with another value, or ambient mode).
    OptedOut,
    /// No label at all: pods get no sidecar.
    Unlabelled,
}

/// The namespace's injection setting; `None` when the Namespace object was not captured.
fn injection(model: &Model<'_>, namespace: &str) -> Option<Injection> {
    let labels = &model.objects.namespace(namespace)?.meta.labels;
    Some(match labels.get("istio-injection") {
        Some("enabled") => Injection::Enabled,
        Some(_) => Injection::OptedOut,
        None if labels.contains_key("istio.io/rev") || model.objects.injection_enabled_by_default => Injection::Enabled,
        None if labels.get("istio.io/dataplane-mode") == Some("ambient") => Injection::OptedOut,
        None => Injection::Unlabelled,
    })
}

fn is_system(model: &Model<'_>, namespace: &str) -> bool {
    SYSTEM_NAMESPACES.contains(&namespace) || namespace == model.objects.mesh.root_namespace
}

/// The one finding for a namespace without injection, whichever check sees it first.
fn not_injected(namespace: &str, severity: Severity, bare_pods: &[String]) -> Finding {
    let pods = if bare_pods.is_empty() {
        "No captured pod there lacks a sidecar yet.".to_string()
    } else {
        format!("Pods without a sidecar there: {}.", bare_pods.join(", "))
    };
    Finding::new(
        "namespace-not-injected",
        severity,
        ObjectRef::new("Namespace", "", namespace),
        format!("namespace {namespace} is not labelled for sidecar injection, so its pods get no Istio sidecar"),
    )
    .code("IST0102")
    .detail(format!("Without `istio-injection=enabled` or `istio.io/rev`, the injector skips the namespace: its pods bypass every VirtualService and DestinationRule, and STRICT mTLS servers refuse them. {pods}"))
    .evidence([format!("Namespace {namespace} metadata.labels: no istio-injection or istio.io/rev")])
    .fix(format!("kubectl label namespace {namespace} istio-injection=enabled (or istio.io/rev=<revision>) and restart its workloads: kubectl rollout restart deploy -n {namespace}"))
}

/// Pods in `namespace` that lack a sidecar they should have.
fn bare_pods(model: &Model<'_>, namespace: &str) -> Vec<String> {
    model
        .objects
        .pods
        .iter()
        .filter(|p| p.meta.namespace == namespace && !has_proxy(p) && sidecar_exemption(p).is_none())
        .map(|p| p.meta.name.clone())
        .collect()
}

/// Namespaces without any injection label (IST0102).
pub fn namespace_not_injected(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for ns in model.objects.namespaces.iter().map(|n| n.meta.name.as_str()).filter(|ns| scope.namespace(ns) && !is_system(model, ns)) {
        let labels = model.objects.namespace(ns).map(|n| &n.meta.labels);
        let unlabelled = labels.is_some_and(|l| ["istio-injection", "istio.io/rev"].iter().all(|k| !l.contains_key(k)));
        let ambient = labels.is_some_and(|l| l.get("istio.io/dataplane-mode").is_some_and(|m| m == "ambient"));
        if unlabelled && !ambient && model.objects.injection_enabled_by_default {
            out.push(
                Finding::new(
                    "namespace-injected-by-default",
                    Severity::Info,
                    ObjectRef::new("Namespace", "", ns),
                    format!("namespace {ns} has no injection label, and the injector enables every namespace by default, so its pods get sidecars"),
                )
                .code("IST0148")
                .detail("The istio-sidecar-injector configuration sets enableNamespacesByDefault: unlabelled namespaces are injected. Worth knowing when a pod there unexpectedly has (or a new namespace unexpectedly gets) a sidecar.")
                .evidence([format!("Namespace {ns} metadata.labels: no istio-injection or istio.io/rev"), "ConfigMap istio-sidecar-injector values: sidecarInjectorWebhook.enableNamespacesByDefault: true".into()])
                .fix(format!("label the namespace to make the choice explicit: kubectl label namespace {ns} istio-injection=enabled (or =disabled)")),
            );
            continue;
        }
        if injection(model, ns) != Some(Injection::Unlabelled) {
            continue;
        }
        let bare = bare_pods(model, ns);
        out.push(not_injected(ns, if bare.is_empty() { Severity::Info } else { Severity::Warning }, &bare));
    }
}

/// Namespaces labelled for more than one way into the mesh (IST0123): `istio-injection`
/// with `istio.io/rev`, or either with ambient mode; the injector and the CNI then disagree
/// on what the pods get.
pub fn namespace_injection_conflict(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let istio_ns = model.objects.mesh.root_namespace.as_str();
    for ns in model.objects.namespaces.iter().filter(|n| scope.namespace(&n.meta.name) && n.meta.name != istio_ns && n.meta.name != "istio-system") {
        let labels = &ns.meta.labels;
        let injection = labels.get("istio-injection");
        let mut set: Vec<String> = injection.map(|v| format!("istio-injection={v}")).into_iter().collect();
        // Another value of istio-injection opts out: the other labels are then moot.
        if injection.is_none_or(|v| v == "enabled") {
            set.extend(["istio.io/rev", "istio.io/dataplane-mode"].iter().filter_map(|k| labels.get(k).map(|v| format!("{k}={v}"))));
        }
        if set.len() < 2 {
            continue;
        }
        let name = &ns.meta.name;
        out.push(
            Finding::new(
                "namespace-injection-conflict",
                Severity::Warning,
                ObjectRef::new("Namespace", "", name),
                format!("namespace {name} is labelled for several ways into the mesh ({}), so which one its pods get is not what the labels say", set.join(", ")),
            )
            .code("IST0123")
            .detail("`istio-injection=enabled` takes precedence over `istio.io/rev` (the revision label is then ignored), and sidecar injection over ambient mode. The labels promise one data plane; the pods get another.")
            .evidence([format!("Namespace {name} metadata.labels: {}", set.join(", "))])
            .fix(format!("keep one: `istio-injection=enabled` or `istio.io/rev=<revision>` for sidecars, or `istio.io/dataplane-mode=ambient` alone (kubectl label namespace {name} <label>-)")),
        );
    }
}

/// The one finding for a pod without a sidecar, whichever check sees it first.
fn without_sidecar(pod: &ObjectRef, reason: &str, severity: Severity, namespace_injected: bool) -> Finding {
    let me = format!("{}/{}", pod.namespace, pod.name);
    let mut f = Finding::new("caller-without-sidecar", severity, pod.clone(), format!("pod {me} runs without an Istio sidecar, so routing rules never apply to its requests"))
        .detail(format!(
            "{reason}. Its requests go straight through kube-proxy, which spreads connections round-robin over all ready pods of each Service regardless of version; VirtualService weights, subsets and retries do not apply, and STRICT mTLS servers reset its connections."
        ))
        .evidence([format!("Pod {me} spec.containers: no istio-proxy")])
        .fix(if namespace_injected {
            format!("restart the workload so the injector adds the sidecar: kubectl rollout restart deploy -n {} <deployment>", pod.namespace)
        } else {
            format!("remove the opt-out (or hostNetwork) from the pod template if it should be in the mesh, then restart it in namespace {}", pod.namespace)
        });
    if namespace_injected {
        f = f.code("IST0103");
    }
    f
}

/// Pods in injection-enabled namespaces that run without the sidecar they should have
/// (IST0103): injected after they started, or the injector was down.
pub fn pods_without_sidecar(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let Scope::Mesh(_) = scope else { return };
    for pod in model.objects.pods.iter().filter(|p| scope.namespace(&p.meta.namespace) && !is_system(model, &p.meta.namespace)) {
        if has_proxy(pod) || sidecar_exemption(pod).is_some() || injection(model, &pod.meta.namespace) != Some(Injection::Enabled) {
            continue;
        }
        let reason = "The pod has no istio-proxy container although its namespace is labelled for injection (it started before the label, or the injector was unavailable)";
        out.push(without_sidecar(&pod.reference("Pod"), reason, Severity::Warning, true));
    }
}

/// Sidecars whose choice istiod leaves undefined: several select one pod (IST0110), or a
/// namespace has several without a selector (IST0111); and Sidecars that reach only ambient
/// workloads, which have no sidecar to configure (IST0167).
pub fn sidecar_conflicts(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    let in_scope: Vec<&Resource<Sidecar>> = objects.sidecars.iter().filter(|sc| scope.namespace(&sc.meta.namespace)).collect();
    let pod_is_ambient = |p: &Resource<Pod>| {
        p.meta.annotations.get(crate::istio::ambient::REDIRECTION).is_some_and(|v| v == "enabled")
            || crate::istio::ambient::workload_is_ambient(objects, &p.meta, has_proxy(p))
    };
    let mut ineffective: BTreeMap<String, (&Resource<Sidecar>, String)> = BTreeMap::new();
    // Pods and the selector Sidecars that pick them, in pod order.
    let mut picked: BTreeMap<(&str, &str), Vec<&Resource<Sidecar>>> = BTreeMap::new();
    for sc in in_scope.iter().copied() {
        let Some(selector) = sc.spec.workload_selector.as_ref().map(|w| &w.labels).filter(|l| !l.is_empty()) else { continue };
        for pod in objects.pods_in(&sc.meta.namespace).filter(|p| labels_match(selector, &p.meta.labels)) {
            picked.entry((pod.meta.namespace.as_str(), pod.meta.name.as_str())).or_default().push(sc);
        }
    }
    for ((ns, pod), sidecars) in &picked {
        let ambient = objects.pod(ns, pod).is_some_and(pod_is_ambient);
        if ambient {
            for sc in sidecars {
                ineffective
                    .entry(named("Sidecar", ns, &sc.meta.name))
                    .or_insert((sc, format!("it selects pod {ns}/{pod}, which runs in ambient mode without a sidecar")));
            }
            continue;
        }
        if sidecars.len() < 2 {
            continue;
        }
        let names: Vec<String> = sidecars.iter().map(|sc| named("Sidecar", ns, &sc.meta.name)).collect();
        for sc in sidecars {
            let me = named("Sidecar", ns, &sc.meta.name);
            out.push(
                Finding::new("sidecar-selector-conflict", Severity::Warning, sc.reference("Sidecar"), format!("{me} and others select pod {ns}/{pod}: which of {} applies to it is undefined", names.join(", ")))
                    .code("IST0110")
                    .detail("istiod gives each proxy one Sidecar; when several workloadSelectors match a pod, the one it picks is not specified, so the pod's egress imports and outbound policy can change from one push to the next.")
                    .evidence(sidecars.iter().map(|s| {
                        let labels: Vec<String> = s.spec.workload_selector.iter().flat_map(|w| &w.labels).map(|(k, v)| format!("{k}={v}")).collect();
                        format!("{} spec.workloadSelector.labels: {{{}}}", named("Sidecar", ns, &s.meta.name), labels.join(", "))
                    }))
                    .fix(format!("make the workloadSelectors of {} select disjoint pods, or merge them into one Sidecar", names.join(", "))),
            );
        }
    }
    let mut by_namespace: BTreeMap<&str, Vec<&Resource<Sidecar>>> = BTreeMap::new();
    for sc in in_scope.iter().copied().filter(|sc| sc.spec.workload_selector.as_ref().is_none_or(|w| w.labels.is_empty())) {
        by_namespace.entry(sc.meta.namespace.as_str()).or_default().push(sc);
    }
    for (ns, sidecars) in by_namespace {
        if crate::istio::ambient::namespace_is_ambient(objects, ns) {
            for sc in sidecars {
                ineffective
                    .entry(named("Sidecar", ns, &sc.meta.name))
                    .or_insert((sc, format!("namespace {ns} runs in ambient mode, where pods have no sidecar")));
            }
            continue;
        }
        if sidecars.len() < 2 {
            continue;
        }
        let names: Vec<String> = sidecars.iter().map(|sc| named("Sidecar", ns, &sc.meta.name)).collect();
        for sc in &sidecars {
            out.push(
                Finding::new(
                    "sidecar-namespace-conflict",
                    Severity::Warning,
                    sc.reference("Sidecar"),
                    format!("namespace {ns} has several Sidecars without workloadSelector ({}): which one applies to its pods is undefined", names.join(", ")),
                )
                .code("IST0111")
                .detail("A Sidecar without workloadSelector is the namespace default; istiod uses one, and which one it picks when there are several is not specified.")
                .evidence(names.iter().map(|n| format!("{n} spec.workloadSelector: none")))
                .fix(format!("keep one Sidecar without workloadSelector in namespace {ns}: merge the others into it or give them selectors")),
            );
        }
    }
    for (me, (sc, why)) in ineffective {
        out.push(
            Finding::new("sidecar-no-effect-ambient", Severity::Warning, sc.reference("Sidecar"), format!("{me} has no effect: {why}"))
                .code("IST0167")
                .detail("A Sidecar configures the istio-proxy container of pods that have one. Ambient pods are served by ztunnel and waypoints, which do not read Sidecar resources.")
                .evidence([format!("{me}: {why}")])
                .fix(format!("delete {me}, or put its egress limits where ambient applies them (a waypoint's policies), or inject sidecars into the pods it is for")),
        );
    }
}

/// A Sidecar whose workloadSelector matches no pod of its namespace (IST0101): the pods it was
/// written for run under the namespace's default Sidecar, or the root namespace's, instead.
pub fn sidecar_selects_no_pod(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    if model.objects.pods.is_empty() {
        return;
    }
    for sc in &model.objects.sidecars {
        let Some(selector) = sc.spec.workload_selector.as_ref().map(|w| &w.labels).filter(|l| !l.is_empty()) else { continue };
        let in_scope = match scope {
            Scope::Service(t) => sc.meta.namespace == t.namespace || names_host(sc, t),
            Scope::Mesh(_) => scope.namespace(&sc.meta.namespace),
        };
        let ns = &sc.meta.namespace;
        if !in_scope || model.objects.pods.iter().any(|p| &p.meta.namespace == ns && labels_match(selector, &p.meta.labels)) {
            continue;
        }
        let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let elsewhere: Vec<String> = model
            .objects
            .pods
            .iter()
            .filter(|p| labels_match(selector, &p.meta.labels))
            .map(|p| format!("{}/{}", p.meta.namespace, p.meta.name))
            .take(3)
            .collect();
        let me = named("Sidecar", ns, &sc.meta.name);
        let detail = if elsewhere.is_empty() {
            "A Sidecar with a workloadSelector applies only to pods of its own namespace that carry every label; with none, its egress and ingress settings reach no proxy, and the pods it was meant for import what the namespace default Sidecar (or the root namespace's, or none) allows.".to_string()
        } else {
            format!(
                "A Sidecar applies only to pods of its own namespace; pods with these labels exist elsewhere ({}), but a Sidecar never reaches across namespaces.",
                elsewhere.join(", ")
            )
        };
        out.push(
            Finding::new("sidecar-selects-no-pod", Severity::Warning, sc.reference("Sidecar"), format!("{me} selects no pod in namespace {ns} ({}), so its settings apply to no proxy", labels.join(",")))
                .code("IST0101")
                .detail(detail)
                .evidence([format!("{me} spec.workloadSelector.labels: {{{}}}", labels.join(", "))])
                .fix(format!("set spec.workloadSelector.labels of {me} to the labels of the pods it is for (kubectl get pods -n {ns} --show-labels), or move it to their namespace")),
        );
    }
}

/// True when an egress entry of the Sidecar names the target's host without a wildcard.
fn names_host(sc: &Resource<Sidecar>, target: &Target) -> bool {
    sc.spec.egress.iter().flat_map(|e| &e.hosts).any(|entry| {
        let host = entry.split_once('/').map_or(entry.as_str(), |(_, h)| h);
        !host.contains('*') && (host == target.fqdn || target.fqdn.starts_with(&format!("{host}.")))
    })
}

/// The examined caller has no sidecar: the namespace's missing label is the cause when it has
/// none, else the pod itself.
pub fn caller_without_sidecar(model: &Model<'_>, target: &Target, caller: &Caller, reason: &str, out: &mut Vec<Finding>) {
    let severity = if has_routing_rules(model, target) && !caller.possible { Severity::Error } else { Severity::Warning };
    let pod = model.objects.pod(&caller.namespace, &caller.name);
    let exempt = pod.and_then(sidecar_exemption).is_some();
    let ns = injection(model, &caller.namespace);
    if !exempt && ns == Some(Injection::Unlabelled) {
        out.push(not_injected(&caller.namespace, severity, &bare_pods(model, &caller.namespace)));
        return;
    }
    out.push(without_sidecar(&caller.reference(), reason, severity, !exempt && ns == Some(Injection::Enabled)));
}

/// What a client sends for one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientTls {
    /// Plain text to every endpoint.
    Plain,
    /// TLS that is not Istio mTLS (`SIMPLE`, `MUTUAL`).
    OtherTls,
    /// Istio mTLS to every endpoint (`ISTIO_MUTUAL`).
    IstioMutual,
    /// Auto mTLS: Istio mTLS to sidecar endpoints, plain text to the rest.
    Auto,
}

/// The PeerAuthentication mode in force on a pod's port: selector PA in its namespace (port
/// level first), then the namespace-wide PA, then the root namespace's, else PERMISSIVE.
fn peer_mode<'a>(model: &Model<'a>, pod: &'a Resource<Pod>, port: Option<i32>) -> (String, Option<&'a Resource<PeerAuthentication>>) {
    let set = |m: Option<&String>| m.filter(|m| !m.is_empty() && *m != "UNSET").cloned();
    fn in_ns<'o>(objects: &'o crate::snapshot::Objects, ns: &'o str) -> impl Iterator<Item = &'o Resource<PeerAuthentication>> {
        objects.peer_authentications.iter().filter(move |pa| pa.meta.namespace == ns)
    }
    let selected = in_ns(model.objects, &pod.meta.namespace)
        .filter(|pa| pa.spec.selector.as_ref().is_some_and(|s| !s.labels.is_empty() && labels_match(&s.labels, &pod.meta.labels)));
    for pa in selected {
        let port_mode = port.and_then(|p| pa.spec.port_level_mtls.get(&p.to_string())).and_then(|m| set(m.mode.as_ref()));
        if let Some(mode) = port_mode.or_else(|| set(pa.spec.mtls.as_ref().and_then(|m| m.mode.as_ref()))) {
            return (mode, Some(pa));
        }
    }
    let namespace_wide = |ns: &'a str| {
        in_ns(model.objects, ns)
            .find(|pa| pa.spec.selector.as_ref().is_none_or(|s| s.labels.is_empty()))
            .and_then(|pa| Some((set(pa.spec.mtls.as_ref()?.mode.as_ref())?, pa)))
    };
    match namespace_wide(&pod.meta.namespace).or_else(|| namespace_wide(&model.objects.mesh.root_namespace)) {
        Some((mode, pa)) => (mode, Some(pa)),
        None => ("PERMISSIVE".into(), None),
    }
}

/// The container port a service port targets on `pod`.
fn container_port(pod: &Resource<Pod>, tp: &TargetPort) -> Option<i32> {
    match &tp.target_port {
        None => Some(tp.port as i32),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The client's TLS choice for a port disagrees with what the destination pods accept.
pub fn mtls_conflict(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let rule = model.destination_rule(ctx.caller, &target.fqdn, &target.namespace);
    let pods = model.backends(target);
    for tp in target.ports.iter().filter(|tp| tp.protocol != crate::istio::names::Protocol::Udp) {
        let explicit = rule.as_ref().and_then(|r| Some((r.primary(), r.primary().spec.effective_policy(tp.port, None).tls?.mode?)));
        let client = match explicit.as_ref().map(|(_, m)| m.as_str()) {
            Some("DISABLE") => ClientTls::Plain,
            Some("SIMPLE" | "MUTUAL") => ClientTls::OtherTls,
            Some("ISTIO_MUTUAL") => ClientTls::IstioMutual,
            _ if model.objects.mesh.enable_auto_mtls => ClientTls::Auto,
            _ => ClientTls::Plain,
        };
        let mut refused: Vec<String> = Vec::new();
        let mut server: Option<String> = None;
        for pod in &pods {
            let sidecar = has_proxy(pod);
            let (mode, pa) = peer_mode(model, pod, container_port(pod, tp));
            let clash = match client {
                ClientTls::Plain | ClientTls::OtherTls => sidecar && mode == "STRICT",
                ClientTls::IstioMutual => !sidecar || mode == "DISABLE",
                ClientTls::Auto => false,
            };
            if clash {
                refused.push(format!("{} ({})", pod.meta.name, if sidecar { format!("mTLS {mode}") } else { "no sidecar".into() }));
                server = server.or_else(|| pa.map(|pa| named("PeerAuthentication", &pa.meta.namespace, &pa.meta.name)));
            }
        }
        if refused.is_empty() {
            continue;
        }
        let (subject, client_text) = match &explicit {
            Some((dr, mode)) => {
                (dr.reference("DestinationRule"), format!("{} sets tls.mode {mode}", named("DestinationRule", &dr.meta.namespace, &dr.meta.name)))
            }
            None => (target.reference(), "meshConfig turns auto mTLS off and no DestinationRule sets tls, so clients send plain text".to_string()),
        };
        let server_text = server.clone().unwrap_or_else(|| "their sidecars".into());
        let (symptom, fix) = match client {
            ClientTls::IstioMutual => (
                "connections fail (503 UF) because nothing terminates Istio mTLS there",
                "drop tls.mode ISTIO_MUTUAL from the DestinationRule and let auto mTLS choose per endpoint, or inject sidecars into those pods",
            ),
            _ => (
                "the server sidecars reset the connections (503 UC/UF; server log `filter_chain_not_found`)",
                "remove the tls block (auto mTLS then sends Istio mTLS to sidecar pods) or set tls.mode ISTIO_MUTUAL; or relax the PeerAuthentication to PERMISSIVE while migrating",
            ),
        };
        out.push(
            Finding::new(
                "mtls-conflict",
                Severity::Error,
                subject,
                format!("{client_text} for {}:{}, which pods behind it do not accept ({server_text}): {symptom}", target.name, tp.port),
            )
            .detail(format!("Pods affected: {}. The client picks TLS from the DestinationRule in effect (or auto mTLS); the server side enforces its PeerAuthentication (workload, then namespace, then root namespace).", refused.join(", ")))
            .evidence([format!("client: {client_text}"), format!("server: {server_text} on {}", refused.join(", "))])
            .fix(fix),
        );
    }
}

/// Services that select one Deployment's pods and disagree on a port (IST0116: the same port
/// with different protocols) or on a target port (IST0137: one target port behind different
/// service ports): istiod builds one inbound listener per target port, so one Service's
/// settings win for the workload.
pub fn deployment_service_conflicts(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let objects = model.objects;
    // Services by namespace, once: a scan of every Service per Deployment grew with their product.
    let mut services_in: BTreeMap<&str, Vec<&Resource<crate::snapshot::Service>>> = BTreeMap::new();
    for svc in &objects.services {
        services_in.entry(svc.meta.namespace.as_str()).or_default().push(svc);
    }
    for deploy in &objects.deployments {
        let ns = deploy.meta.namespace.as_str();
        let Some(template) = deploy.spec.spec.as_ref().map(|s| &s.template) else { continue };
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        let annotations = template.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default();
        // Waypoints are Deployments the mesh controller manages: not workloads with Services.
        if deploy.meta.labels.get("gateway.istio.io/managed").is_some_and(|v| v == "istio.io-mesh-controller")
            || !deployment_in_mesh(model, ns, &labels, &annotations, template)
        {
            continue;
        }
        let services: Vec<&Resource<crate::snapshot::Service>> = services_in
            .get(ns)
            .into_iter()
            .flatten()
            .copied()
            .filter(|svc| svc.spec.spec.as_ref().and_then(|s| s.selector.as_ref()).is_some_and(|sel| !sel.is_empty() && labels_match(sel, &labels)))
            .collect();
        let in_scope = match scope {
            Scope::Service(t) => services.iter().any(|s| s.meta.name == t.name && s.meta.namespace == t.namespace),
            Scope::Mesh(_) => scope.namespace(ns),
        };
        if !in_scope || services.len() < 2 {
            continue;
        }
        let me = named("Deployment", ns, &deploy.meta.name);
        // port → protocol → Services; target port → service port → Service.
        let mut protocols: BTreeMap<i32, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut targets: BTreeMap<String, BTreeMap<i32, String>> = BTreeMap::new();
        for svc in &services {
            for port in svc.spec.spec.as_ref().and_then(|s| s.ports.as_ref()).into_iter().flatten() {
                let protocol = port.protocol.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "TCP".into());
                protocols.entry(port.port).or_default().entry(protocol).or_default().push(svc.meta.name.clone());
                let target = match &port.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => n.to_string(),
                    Some(IntOrString::String(s)) if !s.is_empty() && s != "0" => s.clone(),
                    _ => port.port.to_string(),
                };
                targets.entry(target).or_default().insert(port.port, svc.meta.name.clone());
            }
        }
        for (port, by_protocol) in protocols.iter().filter(|(_, m)| m.len() > 1) {
            let shown: Vec<String> = by_protocol.iter().map(|(p, names)| format!("{p} ({})", names.join(", "))).collect();
            out.push(
                Finding::new(
                    "deployment-service-protocol-conflict",
                    Severity::Warning,
                    deploy.reference("Deployment"),
                    format!("Services selecting the pods of {me} give port {port} different protocols: {}", shown.join(", ")),
                )
                .code("IST0116")
                .detail("The pods receive traffic for every Service that selects them, and their sidecar has one inbound listener per port: the Services cannot both be right about the protocol, so one of them gets its traffic handled as the other's.")
                .evidence(by_protocol.iter().map(|(p, names)| format!("port {port} protocol {p}: Service(s) {}", names.join(", "))))
                .fix(format!("give port {port} the same protocol in every Service that selects {me}, or narrow the Services' selectors")),
            );
        }
        for (target, by_port) in targets.iter().filter(|(_, m)| m.len() > 1) {
            let shown: Vec<String> = by_port.iter().map(|(p, name)| format!("{name} port {p}")).collect();
            out.push(
                Finding::new(
                    "deployment-service-target-port-conflict",
                    Severity::Warning,
                    deploy.reference("Deployment"),
                    format!("Services selecting the pods of {me} send different ports to target port {target}: {}", shown.join(", ")),
                )
                .code("IST0137")
                .detail("The sidecar builds one inbound listener per target port and names it after one service port; the other Service's port settings (protocol, name) do not apply to the traffic it sends there.")
                .evidence(shown.iter().map(|s| format!("{s} → targetPort {target}")))
                .fix(format!("expose target port {target} under one service port in every Service that selects {me}")),
            );
        }
    }
}

/// Whether a Deployment's pods run a sidecar: its template has one, or asks for one
/// (`sidecar.istio.io/inject` label, then annotation), or its namespace enables injection.
fn deployment_in_mesh(
    model: &Model<'_>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    template: &PodTemplateSpec,
) -> bool {
    if template.spec.as_ref().is_some_and(|s| s.containers.iter().any(|c| c.name == "istio-proxy" && c.image.as_deref().is_some_and(|i| !i.is_empty()))) {
        return true;
    }
    if let Some(v) = labels.get("sidecar.istio.io/inject").or_else(|| annotations.get("sidecar.istio.io/inject")) {
        return v == "true";
    }
    model.objects.namespace(namespace).is_some_and(|n| n.meta.labels.get("istio-injection").is_some_and(|v| v == "enabled"))
}
