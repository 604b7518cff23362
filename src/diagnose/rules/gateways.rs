//! Ingress: is the Gateway a VirtualService binds to real and running, does it have its TLS
//! certificate, does it serve the VirtualService's hosts, and do the mesh's subset rules apply
//! to traffic entering there.

use super::routing::bound_to_mesh;
use super::{Scope, destination_host, named};
use crate::diagnose::finding::{Finding, Severity};
use crate::istio::labels_match;
use crate::istio::names::hosts_overlap;
use crate::istio::{DestinationRole, Gateway, VirtualService};
use crate::model::Model;
use crate::model::virtual_services::{claiming_host, normalize_gateway, vs_hosts};
use crate::snapshot::{Gap, Resource};
use std::collections::BTreeSet;

/// The Gateways a VirtualService names, normalized to `namespace/name`, without `mesh` and
/// without the internal names istiod generates for Gateway API resources.
pub(super) fn bound_gateways(vs: &Resource<VirtualService>) -> Vec<(usize, String)> {
    vs.spec
        .gateways
        .iter()
        .enumerate()
        .filter(|(_, g)| *g != "mesh" && !g.contains(INTERNAL_GATEWAY))
        .map(|(i, g)| (i, normalize_gateway(g, &vs.meta.namespace)))
        .collect()
}

/// The Gateway object `namespace/name`.
pub(super) fn find_gateway<'a>(model: &Model<'a>, full: &str) -> Option<&'a Resource<Gateway>> {
    model.objects.gateways.iter().find(|g| format!("{}/{}", g.meta.namespace, g.meta.name) == full)
}

/// A VirtualService bound to a Gateway that does not exist, or a Gateway whose selector
/// matches no gateway pod (IST0101 both): its routes are installed nowhere.
pub fn gateway_not_found(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        for (i, full) in bound_gateways(vs) {
            if find_gateway(model, &full).is_some() {
                continue;
            }
            out.push(
                Finding::new("gateway-not-found", Severity::Error, vs.reference("VirtualService"), format!("{me} is bound to Gateway {full}, which does not exist, so its routes are installed on no gateway"))
                    .code("IST0101")
                    // analyze also reports the VirtualService's hosts as not found in that Gateway.
                    .also_code("IST0132")
                    .detail("istiod attaches a VirtualService's routes to the gateways it names; a name that matches no Gateway (short names resolve in the VirtualService's namespace) attaches them nowhere.")
                    .evidence([format!("{me} spec.gateways[{i}]: {}", vs.spec.gateways[i])])
                    .fix(format!("name an existing Gateway as `namespace/name` in spec.gateways[{i}] (kubectl get gateways.networking.istio.io -A), or create {full}")),
            );
        }
    }
    if model.objects.pods.is_empty() {
        return;
    }
    for gw in selector_gateways(model, scope) {
        if model.objects.pods.iter().any(|p| labels_match(&gw.spec.selector, &p.meta.labels)) {
            continue;
        }
        let selector: Vec<String> = gw.spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        out.push(
            Finding::new("gateway-not-found", Severity::Error, gw.reference("Gateway"), format!("{me} selects no gateway pod ({}), so no proxy serves it", selector.join(",")))
                .code("IST0101")
                .detail("A Gateway configures the gateway pods its selector matches, in any namespace; with none, its servers and the routes bound to it exist only on paper.")
                .evidence([format!("{me} spec.selector: {{{}}}", selector.join(", "))])
                .fix(format!("set spec.selector of {me} to the labels of your ingress gateway pods (kubectl get pods -A -l istio=ingressgateway --show-labels)")),
        );
    }
}

/// The Istio Gateways with a selector that concern `scope`: for one service, those its
/// VirtualServices bind to; for the mesh, those of the namespaces in scope.
pub(super) fn selector_gateways<'a>(model: &Model<'a>, scope: Scope<'_>) -> impl Iterator<Item = &'a Resource<Gateway>> {
    let bound: BTreeSet<String> = match scope {
        Scope::Service(_) => scope.virtual_services(model).into_iter().flat_map(bound_gateways).map(|(_, g)| g).collect(),
        Scope::Mesh(_) => BTreeSet::new(),
    };
    model.objects.gateways.iter().filter(|g| !g.spec.gateway_api && !g.spec.selector.is_empty()).filter(move |g| match scope {
        Scope::Service(_) => bound.contains(&format!("{}/{}", g.meta.namespace, g.meta.name)),
        Scope::Mesh(_) => scope.namespace(&g.meta.namespace),
    })
}

/// The [`selector_gateways`] whose selector matches pods, with the namespaces of those pods.
pub(super) fn running_gateways<'a>(model: &Model<'a>, scope: Scope<'_>) -> Vec<(&'a Resource<Gateway>, BTreeSet<&'a str>)> {
    selector_gateways(model, scope)
        .map(|g| (g, model.objects.pods.iter().filter(|p| labels_match(&g.spec.selector, &p.meta.labels)).map(|p| p.meta.namespace.as_str()).collect()))
        .filter(|(_, namespaces): &(_, BTreeSet<&str>)| !namespaces.is_empty())
        .collect()
}

/// The `(server index, credentialName)` of a Gateway's servers that name a Secret directly.
fn credentials(gw: &Resource<Gateway>) -> impl Iterator<Item = (usize, &str)> {
    gw.spec
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.tls.as_ref()?.credential_name.as_deref()?)))
        .filter(|(_, name)| !name.is_empty() && !name.contains("://"))
}

/// The `~istio-autogenerated-k8s-gateway~` infix of the Istio Gateways istiod generates for
/// Gateway API Gateways.
const INTERNAL_GATEWAY: &str = "~istio-autogenerated-k8s-gateway~";

/// A VirtualService bound to the internal name istiod generates for a Gateway API listener
/// (IST0165): the name is an implementation detail that changes with the listener or Istio.
pub fn gateway_internal_reference(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        for (i, name) in vs.spec.gateways.iter().enumerate() {
            let Some((gateway, listener)) = name.split_once(INTERNAL_GATEWAY) else { continue };
            out.push(
                Finding::new(
                    "gateway-internal-reference",
                    Severity::Warning,
                    vs.reference("VirtualService"),
                    format!("{me} is bound to {name}, the internal name istiod generates for listener {listener} of Gateway API Gateway {gateway}"),
                )
                .code("IST0165")
                .detail("istiod names the Istio Gateway it builds for each Gateway API listener `<gateway>~istio-autogenerated-k8s-gateway~<listener>`; that name is not an API: it changes when the listener is renamed or Istio changes the translation, and the binding then silently attaches the routes nowhere.")
                .evidence([format!("{me} spec.gateways[{i}]: {name}")])
                .fix(format!("attach the routes to Gateway {gateway} with an HTTPRoute (parentRefs), or bind {me} to an Istio Gateway (networking.istio.io) by its own name")),
            );
        }
    }
}

/// A gateway TLS server whose `credentialName` names a Secret missing from the namespace of
/// the gateway pods (IST0101): the gateway has no certificate for it and fails the handshake.
/// Runs only when the snapshot holds Secrets (see [`unchecked`]).
pub fn gateway_credential_missing(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    if model.objects.secret_names.is_empty() {
        return;
    }
    for (gw, namespaces) in running_gateways(model, scope) {
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        for (i, credential) in credentials(gw) {
            let missing: Vec<&str> =
                namespaces.iter().copied().filter(|ns| !model.objects.secret_names.contains(&(ns.to_string(), credential.to_string()))).collect();
            if missing.is_empty() {
                continue;
            }
            let port = gw.spec.servers[i].port.as_ref().map_or(0, |p| p.number);
            out.push(
                Finding::new(
                    "gateway-credential-missing",
                    Severity::Error,
                    gw.reference("Gateway"),
                    format!("{me} serves TLS on port {port} with credentialName {credential}, but no Secret {credential} exists in namespace {}, so the gateway has no certificate and TLS handshakes there fail", missing.join(", ")),
                )
                .code("IST0101")
                .detail("istiod hands a gateway the certificate from the Secret named by credentialName, read from the namespace the gateway pods run in (not the Gateway's own namespace); without it the server's listener has no certificate and clients see resets or handshake failures.")
                .evidence([format!("{me} spec.servers[{i}].tls.credentialName: {credential}"), format!("no Secret {credential} among the Secrets of namespace {}", missing.join(", "))])
                .fix(format!("create the TLS Secret in the gateway pods' namespace (kubectl create secret tls {credential} -n {} --cert=... --key=...), or point credentialName at an existing one", missing[0])),
            );
        }
    }
}

/// A gateway TLS server whose credential Secret exists but istiod cannot serve (IST0161): no
/// cert/key pair under the names it reads, a certificate that does not parse, or one outside
/// its validity dates. The gateway then has no certificate for the server.
pub fn gateway_credential_invalid(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for (gw, namespaces) in running_gateways(model, scope) {
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        for (i, credential) in credentials(gw) {
            for ns in &namespaces {
                let Some(secret) = model.objects.secret_credentials.get(&(ns.to_string(), credential.to_string())) else { continue };
                let Some(problem) = secret.problem(model.objects.as_of) else { continue };
                let port = gw.spec.servers[i].port.as_ref().map_or(0, |p| p.number);
                out.push(
                    Finding::new(
                        "gateway-credential-invalid",
                        Severity::Error,
                        gw.reference("Gateway"),
                        format!("{me} serves TLS on port {port} with Secret {ns}/{credential}, but {problem}, so the gateway has no certificate there"),
                    )
                    .code("IST0161")
                    .detail("istiod reads a gateway credential from the keys cert/key or tls.crt/tls.key and refuses a certificate that does not parse or is outside its validity dates; the server's listener is then left without a certificate and TLS handshakes on it fail.")
                    .evidence([format!("{me} spec.servers[{i}].tls.credentialName: {credential}"), format!("Secret {ns}/{credential}: {problem}")])
                    .fix(format!("replace the Secret with a valid certificate and key (kubectl create secret tls {credential} -n {ns} --cert=... --key=... --dry-run=client -o yaml | kubectl apply -f -)")),
                );
            }
        }
    }
}

/// What the object checks could not decide for lack of data: a gateway's `credentialName`
/// cannot be checked when the snapshot holds no Secrets (live mode never requests them).
pub fn unchecked(model: &Model<'_>, scope: Scope<'_>) -> Vec<Gap> {
    if !model.objects.secret_names.is_empty() {
        return Vec::new();
    }
    running_gateways(model, scope)
        .into_iter()
        .flat_map(|(gw, namespaces)| {
            credentials(gw).map(move |(i, credential)| Gap {
                source: format!("Secret {credential} (Gateway {}/{} spec.servers[{i}].tls.credentialName)", gw.meta.namespace, gw.meta.name),
                reason: format!(
                    "not checked: the Secret was not read (a snapshot without Secrets, or a live run that could not get it); confirm it exists with kubectl get secret {credential} -n {}",
                    namespaces.iter().copied().collect::<Vec<_>>().join(" / -n ")
                ),
            })
        })
        .collect()
}

/// The hosts a Gateway serves to VirtualServices in `vs_ns`: `ns/host` entries count only for
/// that namespace (`*/` for all, `./` for the Gateway's own).
fn served_hosts(gw: &Resource<Gateway>, vs_ns: &str) -> Vec<String> {
    gw.spec
        .servers
        .iter()
        .flat_map(|s| &s.hosts)
        .filter_map(|h| match h.split_once('/') {
            Some(("*", host)) => Some(host.to_string()),
            Some((".", host)) => (gw.meta.namespace == vs_ns).then(|| host.to_string()),
            Some((ns, host)) => (ns == vs_ns).then(|| host.to_string()),
            None => Some(h.clone()),
        })
        .collect()
}

/// A VirtualService bound to a Gateway that serves none of its hosts (IST0132).
pub fn gateway_host_not_served(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        let hosts: Vec<String> = vs.spec.hosts.iter().cloned().chain(vs_hosts(vs)).collect();
        for (i, full) in bound_gateways(vs) {
            let Some(gw) = find_gateway(model, &full) else { continue };
            let served = served_hosts(gw, &vs.meta.namespace);
            if hosts.iter().any(|h| served.iter().any(|s| hosts_overlap(s, h))) {
                continue;
            }
            out.push(
                Finding::new(
                    "gateway-host-not-served",
                    Severity::Warning,
                    vs.reference("VirtualService"),
                    format!("{me} is bound to Gateway {full}, which serves none of its hosts [{}], so requests for them get 404 there", vs.spec.hosts.join(", ")),
                )
                .code("IST0132")
                .detail(format!(
                    "Gateway {full} serves [{}] to VirtualServices in namespace {}; a VirtualService's routes are attached only for hosts its Gateway's servers list (a `namespace/` prefix limits a host to VirtualServices of that namespace).",
                    served.join(", "),
                    vs.meta.namespace
                ))
                .evidence([
                    format!("{me} spec.hosts: [{}], spec.gateways[{i}]: {}", vs.spec.hosts.join(", "), vs.spec.gateways[i]),
                    format!("Gateway {full} spec.servers[].hosts: [{}]", gw.spec.servers.iter().flat_map(|s| s.hosts.clone()).collect::<Vec<_>>().join(", ")),
                ])
                .fix(format!("add the host to a server of Gateway {full} (or `{}/<host>`), or change spec.hosts of {me} to a host the Gateway serves", vs.meta.namespace)),
            );
        }
    }
}

/// A gateway-bound VirtualService sends traffic straight to a host whose mesh VirtualService
/// splits it by subset: at the gateway the mesh rules do not apply (IST0140).
pub fn gateway_ignores_mesh_rules(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in model.objects.virtual_services.iter().filter(|vs| !bound_gateways(vs).is_empty()) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        let mut seen = BTreeSet::new();
        for d in vs.spec.destinations().into_iter().filter(|d| d.role == DestinationRole::HttpRoute && d.destination.subset.is_none()) {
            let host = destination_host(vs, d.destination);
            let in_scope = match scope {
                Scope::Service(t) => t.fqdn == host,
                Scope::Mesh(_) => scope.namespace(&vs.meta.namespace),
            };
            if !in_scope || !seen.insert(host.clone()) {
                continue;
            }
            // A waypoint applies the mesh rules to ingress traffic that goes through it, and
            // ingress-bypasses-waypoint explains traffic that does not.
            if model.host_waypoint(&host).is_some_and(|(_, w)| w.carries_service_traffic()) {
                continue;
            }
            let mesh_rules: Vec<String> = model
                .objects
                .virtual_services
                .iter()
                .filter(|m| !std::ptr::eq(*m, vs) && bound_to_mesh(m) && claiming_host(m, &host).is_some())
                .filter(|m| m.spec.destinations().iter().any(|md| md.destination.subset.is_some() && destination_host(m, md.destination) == host))
                .map(|m| named("VirtualService", &m.meta.namespace, &m.meta.name))
                .collect();
            if mesh_rules.is_empty() {
                continue;
            }
            out.push(
                Finding::new(
                    "gateway-ignores-mesh-rules",
                    Severity::Warning,
                    vs.reference("VirtualService"),
                    format!("{me} sends ingress traffic for {host} straight to the service, so the subset routing of {} does not apply to it", mesh_rules.join(", ")),
                )
                .code("IST0140")
                .detail("The gateway proxy uses only the VirtualServices bound to it; a mesh VirtualService's subsets and weights apply to sidecar callers. Ingress requests spread over every pod of the service.")
                .evidence([format!("{me} {}: host {}, no subset", d.path, d.destination.host), format!("{} route {host} to subsets", mesh_rules.join(", "))])
                .fix(format!("route to the subsets in {me} as well, or bind the mesh VirtualService to the gateway too (spec.gateways: [<gateway>, mesh]) and drop the duplicate route")),
            );
        }
    }
}

/// Gateways that run on the same pods and declare one host on one port (and bind address)
/// (IST0145): istiod merges their servers and keeps one of the duplicates, so which Gateway's
/// routes and TLS settings serve the host is left to creation order.
pub fn gateway_conflict(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let gateways: Vec<&Resource<Gateway>> = model.objects.gateways.iter().filter(|g| !g.spec.gateway_api).collect();
    // Two gateways share a workload when their selectors are equal or a pod carries both.
    let share = |a: &Gateway, b: &Gateway| {
        a.selector == b.selector || model.objects.pods.iter().any(|p| labels_match(&a.selector, &p.meta.labels) && labels_match(&b.selector, &p.meta.labels))
    };
    for gw in selector_gateways(model, scope) {
        let me = named("Gateway", &gw.meta.namespace, &gw.meta.name);
        let others: Vec<&&Resource<Gateway>> = gateways.iter().filter(|o| !std::ptr::eq(**o, gw) && share(&gw.spec, &o.spec)).collect();
        for server in &gw.spec.servers {
            let port = server.port.as_ref().map_or(0, |p| p.number);
            let bind = server.bind.as_deref().unwrap_or_default();
            let rivals: Vec<(String, &str)> = others
                .iter()
                .filter_map(|o| {
                    let same =
                        o.spec.servers.iter().filter(|s| s.port.as_ref().map_or(0, |p| p.number) == port && s.bind.as_deref().unwrap_or_default() == bind);
                    let host = same.flat_map(|s| &s.hosts).find(|h| server.hosts.contains(h))?;
                    Some((named("Gateway", &o.meta.namespace, &o.meta.name), host.as_str()))
                })
                .collect();
            if rivals.is_empty() {
                continue;
            }
            let names: Vec<&str> = rivals.iter().map(|(n, _)| n.as_str()).collect();
            let selector: Vec<String> = gw.spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(
                Finding::new(
                    "gateway-conflict",
                    Severity::Warning,
                    gw.reference("Gateway"),
                    format!("{me} and {} both serve [{}] on port {port} of the same gateway pods: one of them is ignored for those hosts", names.join(", "), server.hosts.join(", ")),
                )
                .code("IST0145")
                .detail("Gateways that select the same pods are merged into one set of listeners. Two servers with the same port, bind address and host are duplicates: istiod keeps the first and drops the other, so the host gets one Gateway's protocol, TLS settings and bound VirtualServices, chosen by creation order.")
                .evidence(rivals.iter().map(|(n, h)| format!("{n} also serves host {h} on port {port}; both select pods with {}", selector.join(","))))
                .fix(format!("serve each host on a port from one Gateway: merge the servers into {me} or remove the host from {}", names.join(", "))),
            );
        }
    }
}

/// Hosts of a gateway-bound VirtualService that a request cannot reach although the Gateway
/// serves some of its hosts: a request for the host, walked through the route configurations
/// derived for the gateway's pod with the trace's own virtual-host matcher, meets no virtual
/// host with routes (404, NR). When no host is served, `gateway-host-not-served` says so.
pub fn gateway_host_unrouted(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    let mut derived: std::collections::BTreeMap<String, Option<(String, crate::intent::listeners::Derived)>> = std::collections::BTreeMap::new();
    for vs in scope.virtual_services(model) {
        let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
        // As istiod names them at the gateway: short names resolved in the VirtualService's namespace.
        let resolved = vs_hosts(vs);
        let hosts: Vec<&String> = resolved.iter().filter(|h| !h.contains('*')).collect();
        for (_, full) in bound_gateways(vs) {
            let Some(gw) = find_gateway(model, &full) else { continue };
            let served = served_hosts(gw, &vs.meta.namespace);
            if !vs.spec.hosts.iter().chain(&vs_hosts(vs)).any(|h| served.iter().any(|s| hosts_overlap(s, h))) {
                continue;
            }
            let entry = derived.entry(full.clone()).or_insert_with(|| {
                let pod = model.objects.pods.iter().find(|p| !gw.spec.selector.is_empty() && labels_match(&gw.spec.selector, &p.meta.labels))?;
                let mut caller = crate::intent::target::Caller::from_pod(pod);
                caller.kind = crate::intent::target::CallerKind::Gateway;
                Some((caller.display(), crate::intent::listeners::derive(model, &caller)))
            });
            let Some((pod, d)) = entry.as_ref() else { continue };
            let configs = &d.config.route_configs;
            if configs.is_empty() {
                continue;
            }
            for host in &hosts {
                let reached = configs.iter().any(|rc| {
                    crate::trace::walk::match_virtual_host(rc, &host.to_ascii_lowercase())
                        .is_some_and(|(vh, _)| !vh.routes.is_empty() && !vh.name.starts_with("blackhole:"))
                });
                if reached {
                    continue;
                }
                let names: Vec<&str> = configs.iter().map(|rc| rc.name.as_str()).collect();
                out.push(
                    Finding::new(
                        "gateway-host-unrouted",
                        Severity::Warning,
                        vs.reference("VirtualService"),
                        format!("requests for {host} through Gateway {full} get 404 (NR): no virtual host of the gateway serves that host of {me}"),
                    )
                    .detail(format!(
                        "Walking a request for Host {host} through the route configurations istiod derives for the gateway pod {pod} ({}) with Envoy's virtual-host matching finds no virtual host with routes. Gateway {full} serves [{}] to VirtualServices of namespace {}; the other hosts of {me} are served.",
                        names.join(", "),
                        served.join(", "),
                        vs.meta.namespace
                    ))
                    .evidence([
                        format!("{me} spec.hosts: [{}]", vs.spec.hosts.join(", ")),
                        format!("Gateway {full} spec.servers[].hosts: [{}]", gw.spec.servers.iter().flat_map(|s| s.hosts.clone()).collect::<Vec<_>>().join(", ")),
                    ])
                    .fix(format!("add {host} to a server of Gateway {full}, or drop it from spec.hosts of {me}")),
                );
            }
        }
    }
}
