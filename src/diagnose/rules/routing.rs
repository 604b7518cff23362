//! VirtualService rules: whether they reach the callers (gateways, hosts, visibility,
//! conflicts, port protocol) and whether they do what they seem to (catch-all, affinity, who
//! owns the weights).

use super::{Scope, named, rule_at};
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::intent::Intent;
use crate::intent::target::{Caller, CallerKind, Target, TargetPort};
use crate::istio::VirtualService;
use crate::istio::names::host_matches;
use crate::istio::names::{ClusterName, Protocol, hosts_overlap, specificity};
use crate::model::sidecar_scope::{export_namespaces, exported_to};
use crate::model::virtual_services::{has_http_rule_for_port, vs_gateways, vs_hosts};
use crate::model::{HostIndex, Model};
use crate::snapshot::Resource;
use std::collections::BTreeSet;

/// True when the VirtualService applies to sidecars (`gateways` empty or listing `mesh`).
pub fn bound_to_mesh(vs: &Resource<VirtualService>) -> bool {
    vs_gateways(vs).iter().any(|g| g == "mesh")
}

/// A VirtualService for the service bound only to gateways, when no mesh one claims it.
pub fn vs_gateway_only(model: &Model<'_>, target: &Target, out: &mut Vec<Finding>) {
    let claiming = model.virtual_services_claiming(&target.fqdn);
    let mesh_claims = claiming.iter().any(|(vs, _)| bound_to_mesh(vs));
    if mesh_claims {
        return;
    }
    // A gateway VirtualService for every host (`*`) is an ingress catch-all, not a rule meant
    // for this service.
    for vs in claiming.into_iter().filter(|(_, h)| *h != "*").map(|(vs, _)| vs) {
        let gateways = vs_gateways(vs);
        let routes_subsets = vs.spec.http.iter().flat_map(|h| &h.route).any(|d| d.destination.subset.is_some() || d.weight.is_some());
        out.push(
            Finding::new(
                "vs-gateway-only",
                if routes_subsets { Severity::Error } else { Severity::Warning },
                vs.reference("VirtualService"),
                format!("VirtualService {}/{} applies only at gateways, so sidecar callers of {} ignore it", vs.meta.namespace, vs.meta.name, target.name),
            )
            .detail(format!(
                "spec.gateways lists {} without the reserved name `mesh`. Traffic between pods inside the mesh uses the default route and spreads over every pod of the Service by replica count.",
                gateways.join(", ")
            ))
            .evidence([format!("VirtualService {}/{} spec.gateways: [{}]", vs.meta.namespace, vs.meta.name, vs.spec.gateways.join(", "))])
            .fix(format!("add `mesh` to spec.gateways of VirtualService {}/{}:\n  gateways:\n  - {}\n  - mesh", vs.meta.namespace, vs.meta.name, vs.spec.gateways.join("\n  - "))),
        );
    }
}

/// A mesh VirtualService that routes to the service under hosts that do not name it.
pub fn vs_host_mismatch(model: &Model<'_>, target: &Target, out: &mut Vec<Finding>) {
    // Only the mesh VirtualServices that route here (an index of the model): a scan of every
    // VirtualService per service made `--all` quadratic.
    for (vs, resolved) in model.mesh_routing_to(&target.fqdn) {
        if resolved.iter().any(|h| host_matches(h, &target.fqdn)) {
            continue;
        }
        let dangling: Vec<(String, String)> = vs
            .spec
            .hosts
            .iter()
            .zip(resolved)
            .filter(|(_, resolved)| !model.registry.is_known(resolved) && !resolved.contains('*'))
            .map(|(h, r)| (h.clone(), r.clone()))
            .collect();
        if dangling.is_empty() {
            continue;
        }
        let why: Vec<String> = dangling
            .iter()
            .map(|(h, r)| {
                if h.contains('.') {
                    format!("`{h}` contains a dot, so Istio takes it literally; no Service is named `{r}`")
                } else {
                    format!("short name `{h}` resolves in the VirtualService's namespace to `{r}`, which does not exist")
                }
            })
            .collect();
        out.push(
            Finding::new(
                "vs-host-mismatch",
                Severity::Error,
                vs.reference("VirtualService"),
                format!(
                    "VirtualService {}/{} routes to {} but its hosts do not name it, so its rules are never used",
                    vs.meta.namespace, vs.meta.name, target.name
                ),
            )
            .detail(format!(
                "{}. Callers address {}, which matches no host of this VirtualService, so they get the default route.",
                why.join("; "),
                target.fqdn
            ))
            .evidence([format!("VirtualService {}/{} spec.hosts: [{}]", vs.meta.namespace, vs.meta.name, vs.spec.hosts.join(", "))])
            .fix(format!("set spec.hosts of VirtualService {}/{} to the Service's full name:\n  hosts:\n  - {}", vs.meta.namespace, vs.meta.name, target.fqdn)),
        );
    }
}

/// `port 9080 (name "http", appProtocol h2c)`.
fn port_description(tp: &TargetPort) -> String {
    let app = tp.app_protocol.as_ref().map(|a| format!(", appProtocol {a}")).unwrap_or_default();
    format!("port {} (name {:?}{app})", tp.port, tp.name.clone().unwrap_or_default())
}

/// A TCP-class port under HTTP rules: the rules are silently ignored for it.
pub fn port_not_http(target: &Target, intent: &Intent<'_>, out: &mut Vec<Finding>) {
    for (pi, tp) in intent.ports.iter().zip(&target.ports) {
        if !tp.protocol.is_tcp_class() || pi.winner.is_some() {
            continue;
        }
        let Some(vs) = pi.candidates.iter().find(|vs| has_http_rule_for_port(vs, tp.port)) else { continue };
        out.push(
            Finding::new(
                "port-not-http",
                Severity::Error,
                target.reference(),
                format!(
                    "{} of Service {} is {} for Istio, so the HTTP rules of VirtualService {}/{} do not apply",
                    port_description(tp),
                    target.name,
                    tp.protocol,
                    vs.meta.namespace,
                    vs.meta.name
                ),
            )
            .detail("For TCP-class ports Envoy forwards connections with tcp_proxy: weights split connections rather than requests, and header matches, retries and timeouts are ignored.")
            .evidence([format!("Service {}/{} spec.ports[port={}].name: {:?}", target.namespace, target.name, tp.port, tp.name.clone().unwrap_or_default())])
            .fix(format!("name the port with its protocol, e.g. `name: http-{}`, or set `appProtocol: http`", tp.port)),
        );
    }
}

/// A rule without `match.port` whose destination pins one port of the service: istiod uses
/// the rule on every port's route configuration, so requests to the other ports go to the
/// pinned port's clusters (gRPC to an HTTP/1.1 port, say).
pub fn destination_port_pinned(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    // A gateway's listener ports are not the service's: its routes name a port by design.
    if ctx.caller.kind != CallerKind::Sidecar {
        return;
    }
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let (Some(vh), Some(vs)) = (&pv.virtual_host, pi.winner) else { continue };
        for (position, route) in vh.routes.iter().enumerate() {
            let Some((index, rule)) = route.rule_index.and_then(|i| Some((i, vs.spec.http.get(i)?))) else { continue };
            // A rule narrowed to ports, or a delegate's, is meant for the ports it names.
            if rule.delegate.is_some() || rule.matches.iter().any(|m| m.port.is_some()) {
                continue;
            }
            let pinned: Vec<ClusterName> =
                route.action.clusters().filter_map(|c| ClusterName::parse(&c.name)).filter(|c| c.host == target.fqdn && c.port != pv.port).collect();
            let Some(to) = pinned.first().map(|c| c.port).filter(|p| model.registry.has_port(&target.fqdn, *p)) else { continue };
            let to_protocol = model.registry.definitions(&target.fqdn).first().and_then(|d| d.port(to)).map(|p| p.protocol);
            let me = named("VirtualService", &vs.meta.namespace, &vs.meta.name);
            let protocols = to_protocol.map(|p| format!(": {} requests reach the {p} port", pv.protocol)).unwrap_or_default();
            let mut evidence =
                vec![format!("{me} spec.http[{index}]: no match.port, destination port {to}"), format!("intent: route config {} {}", pv.port, route.action)];
            if let Some(have) = ctx.actual.and_then(|a| a.view.as_ref()).and_then(|v| v.ports.iter().find(|p| p.key == pv.key)) {
                let held = have.virtual_host.as_ref().and_then(|vh| vh.routes.get(position)).map(|r| r.action.to_string());
                evidence.push(format!("{}: route config {} {}", ctx.caller.display(), pv.port, held.unwrap_or_else(|| "has no route for the service".into())));
            }
            out.push(
                Finding::new(
                    "destination-port-pinned",
                    if to_protocol.is_some_and(|p| p != pv.protocol) { Severity::Error } else { Severity::Warning },
                    vs.reference("VirtualService"),
                    format!("{me} spec.http[{index}] pins destination port {to}, so requests to {} port {} go to port {to}{protocols}", target.name, pv.port),
                )
                .detail(format!(
                    "A rule without match.port applies on every port of the host: istiod puts it into the route configuration of port {} too, and its destination port sends that traffic to outbound|{to}|…|{}.",
                    pv.port, target.fqdn
                ))
                .evidence(evidence)
                .fix(format!(
                    "keep the rule to its port with `match: [{{port: {to}}}]` on spec.http[{index}] of {me} (port {} then gets its own rules or the default route), or drop destination.port so each port routes to itself",
                    pv.port
                )),
            );
        }
    }
}

/// Namespaces whose Services `istioctl analyze` does not hold to the port naming convention.
const NAMING_EXEMPT_NAMESPACES: &[&str] = &["kube-system", "kube-public"];

/// A Service port without a protocol prefix: Istio sniffs the protocol (IST0118), one
/// finding per port. Control-plane, managed-gateway and ExternalName Services are exempt.
pub fn port_not_http_naming(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for svc in &model.objects.services {
        let labels = &svc.meta.labels;
        let exempt = NAMING_EXEMPT_NAMESPACES.contains(&svc.meta.namespace.as_str())
            || labels.contains_key("istio")
            || labels.get("release").is_some_and(|r| r == "istio")
            || labels.contains_key("gateway.istio.io/managed");
        let external_name = svc.spec.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName");
        let target = Target::from_service(svc);
        let in_scope = match scope {
            Scope::Service(t) => t.fqdn == target.fqdn,
            Scope::Mesh(_) => scope.namespace(&svc.meta.namespace),
        };
        if exempt || !in_scope {
            continue;
        }
        if external_name {
            external_name_port(&target, out);
            continue;
        }
        for tp in target.ports.iter().filter(|tp| tp.protocol == Protocol::Auto) {
            out.push(
                Finding::new(
                    "port-not-http",
                    Severity::Info,
                    target.reference(),
                    format!("{} of Service {} has no protocol prefix, so Istio sniffs the protocol; HTTP rules apply only to clear-text HTTP/1.1 or h2c", port_description(tp), target.name),
                )
                .code("IST0118")
                .detail("Without `http-`, `grpc-`, `tcp-`… in the port name or an `appProtocol`, Envoy inspects the first bytes of each connection. Clients that start with TLS or a server-first protocol fall to the TCP chain, where HTTP routes, retries and header matches do not apply.")
                .evidence([format!("Service {}/{} spec.ports[port={}].name: {:?}", target.namespace, target.name, tp.port, tp.name.clone().unwrap_or_default())])
                .fix(format!("name the port with its protocol, e.g. `name: http-{}`, or set `appProtocol: http`", tp.port)),
            );
        }
    }
}

/// ExternalName Service ports whose protocol istiod cannot route by (IST0150): sniffed, or
/// named plain `tcp`. The external name has no address of the mesh's own, so only an HTTP Host
/// or a TLS SNI tells its traffic apart.
fn external_name_port(target: &Target, out: &mut Vec<Finding>) {
    for tp in target.ports.iter().filter(|tp| tp.protocol == Protocol::Auto || tp.name.as_deref() == Some("tcp")) {
        out.push(
            Finding::new(
                "external-name-port-protocol",
                Severity::Warning,
                target.reference(),
                format!("{} of ExternalName Service {} does not say its protocol, so sidecars may not forward its traffic to the external name", port_description(tp), target.name),
            )
            .code("IST0150")
            .detail("An ExternalName Service is a DNS alias without a cluster IP. Sidecars route to it by HTTP Host header or TLS SNI, which the port's protocol must declare; an unnamed, unprefixed or plain `tcp` port leaves the connection to sniffing or to a listener with nothing to match on.")
            .evidence([format!("Service {}/{} spec.type: ExternalName, spec.ports[port={}].name: {:?}", target.namespace, target.name, tp.port, tp.name.clone().unwrap_or_default())])
            .fix(format!("name the port with its protocol, e.g. `name: https-{}` (or `http-`, `tls-`), or set `appProtocol`", tp.port)),
        );
    }
}

/// What a caller's sidecar does with requests for hosts it does not know.
pub fn fallback_for(model: &Model<'_>, caller: &Caller) -> &'static str {
    match model.sidecar_scope(caller).outbound_mode.as_str() {
        "REGISTRY_ONLY" => "fail with 502 from the block_all route (REGISTRY_ONLY)",
        _ => "go to PassthroughCluster, straight to the address dialled, bypassing VirtualService, DestinationRule and mTLS",
    }
}

/// The service, a VirtualService or a DestinationRule for it is hidden from the caller by
/// exportTo or the Sidecar's egress hosts.
pub fn vs_not_visible(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let caller_ns = &ctx.caller.namespace;
    for (pi, pv) in ctx.intent.ports.iter().zip(&ctx.intent.view.ports) {
        let Some((reason, hider)) = &pi.hidden else { continue };
        let mut evidence = vec![format!("{}: {reason}", hider.as_ref().map(|h| h.to_string()).unwrap_or_else(|| target.reference().to_string()))];
        if let Some(actual) = ctx.actual {
            let vhost = actual.view.as_ref().and_then(|v| v.ports.iter().find(|p| p.port == pv.port)).and_then(|p| p.virtual_host.as_ref());
            if vhost.is_none() {
                evidence.push(format!("{}: route config {} has no virtual host for {}, only the catch-all", ctx.caller.display(), pv.port, target.fqdn));
            }
        }
        out.push(
            Finding::new(
                "vs-not-visible",
                Severity::Error,
                hider.clone().unwrap_or_else(|| target.reference()),
                format!(
                    "Service {}/{} port {} is not visible to callers in namespace {caller_ns}, so their requests to it {}",
                    target.namespace,
                    target.name,
                    pv.port,
                    fallback_for(model, ctx.caller)
                ),
            )
            .detail(format!("{reason}. The caller's Envoy has no virtual host or cluster for the service, so none of its routing rules apply."))
            .evidence(evidence)
            .fix(match hider {
                Some(h) if h.kind == "Sidecar" => {
                    format!("add `{}/{}` (or `{}/*`) to spec.egress[].hosts of {h}", target.namespace, target.fqdn, target.namespace)
                }
                _ => format!(
                    "add {caller_ns} to the networking.istio.io/exportTo annotation of Service {}/{} (or remove the annotation)",
                    target.namespace, target.name
                ),
            }),
        );
    }
    hidden_virtual_services(model, target, ctx, out);
}

/// VirtualServices for the target that the caller would use but cannot see.
fn hidden_virtual_services(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let caller_ns = &ctx.caller.namespace;
    let unrouted: Vec<u32> =
        ctx.intent.ports.iter().filter(|p| p.hidden.is_none() && p.winner.is_none() && p.protocol != Protocol::Udp).map(|p| p.port).collect();
    let Some(&port) = unrouted.first() else { return };
    let defaults = &model.objects.mesh.default_virtual_service_export_to;
    let scope = model.sidecar_scope(ctx.caller);
    for vs in model.virtual_services_claiming(&target.fqdn).into_iter().map(|(vs, _)| vs).filter(|vs| bound_to_mesh(vs)) {
        let exported = exported_to(&vs.spec.export_to, defaults, &vs.meta.namespace, caller_ns);
        let egress = scope.egress_hosts(port);
        let imported = vs_hosts(vs).iter().any(|h| scope.imports(port, &vs.meta.namespace, h));
        let reason = if !exported {
            format!("its exportTo [{}] does not include namespace {caller_ns}", vs.spec.export_to.join(", "))
        } else if !imported {
            let sc = scope.reference().map(|s| s.to_string()).unwrap_or_default();
            format!("the egress hosts [{}] of {sc} do not import namespace {}", egress.join(", "), vs.meta.namespace)
        } else {
            continue;
        };
        let splits = vs.spec.http.iter().any(|h| h.route.len() > 1 || h.route.iter().any(|d| d.destination.subset.is_some()));
        out.push(
            Finding::new(
                "vs-not-visible",
                if splits { Severity::Error } else { Severity::Warning },
                vs.reference("VirtualService"),
                format!(
                    "VirtualService {}/{} is not visible to callers in namespace {caller_ns}, so its rules for {} are ignored there",
                    vs.meta.namespace, vs.meta.name, target.name
                ),
            )
            .detail(format!("{reason}. Those callers use the default route on port(s) {unrouted:?}, which spreads requests over all pods of the Service."))
            .evidence([format!(
                "VirtualService {}/{} spec.exportTo: [{}]; caller {}",
                vs.meta.namespace,
                vs.meta.name,
                vs.spec.export_to.join(", "),
                ctx.caller.display()
            )])
            .fix(if exported {
                format!("add `{}/*` to the Sidecar's egress hosts for namespace {caller_ns}", vs.meta.namespace)
            } else {
                format!(
                    "add `{caller_ns}` to spec.exportTo of VirtualService {}/{} (or remove exportTo to export it everywhere)",
                    vs.meta.namespace, vs.meta.name
                )
            }),
        );
    }
}

/// Where a VirtualService's hosts are visible: `None` means every namespace.
fn visibility(model: &Model<'_>, vs: &Resource<VirtualService>) -> Option<Vec<String>> {
    export_namespaces(&vs.spec.export_to, &model.objects.mesh.default_virtual_service_export_to, &vs.meta.namespace)
}

/// A namespace where callers see both scopes, if any (the first VirtualService's own namespace
/// when both are public).
fn shared_namespace(a: (&Resource<VirtualService>, &Option<Vec<String>>), b: &Option<Vec<String>>) -> Option<String> {
    match (a.1, b) {
        (None, None) => Some(a.0.meta.namespace.clone()),
        (None, Some(list)) | (Some(list), None) => list.first().cloned(),
        (Some(x), Some(y)) => x.iter().find(|ns| y.contains(ns)).cloned(),
    }
}

/// True when `a` wins over `b` for a host both claim, for callers in `namespace`: the more
/// specific host first, then istiod's precedence (private, exported, public; oldest first).
fn wins(model: &Model<'_>, namespace: &str, a: (&Resource<VirtualService>, &str), b: (&Resource<VirtualService>, &str)) -> bool {
    if specificity(a.1) != specificity(b.1) {
        return specificity(a.1) > specificity(b.1);
    }
    let order = model.mesh_virtual_services(&Caller::hypothetical(namespace), 0);
    let rank = |vs: &Resource<VirtualService>| order.iter().position(|o| std::ptr::eq(*o, vs)).unwrap_or(usize::MAX);
    rank(a.0) <= rank(b.0)
}

/// Several mesh VirtualServices claim overlapping hosts for the same callers (IST0109): one
/// finding per VirtualService, saying whether it wins or is ignored.
pub fn vs_conflict(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    // Each mesh VirtualService with its resolved hosts and where it is visible.
    type Claim<'o> = (&'o Resource<VirtualService>, Vec<String>, Option<Vec<String>>);
    let mesh: Vec<Claim<'_>> =
        model.objects.virtual_services.iter().filter(|vs| bound_to_mesh(vs)).map(|vs| (vs, vs_hosts(vs), visibility(model, vs))).collect();
    // Only the VirtualServices that could share a host are compared: all pairs made `--all`
    // quadratic. A wildcard host can overlap any name, so it is compared with every one.
    let index = HostIndex::build(mesh.iter().map(|(_, hosts, _)| hosts.iter().map(String::as_str)));
    for (i, (a, a_hosts, a_vis)) in mesh.iter().enumerate() {
        if !scope.virtual_service(a) {
            continue;
        }
        let mut rivals: Vec<String> = Vec::new();
        let mut evidence = Vec::new();
        let mut loses = false;
        let candidates: BTreeSet<usize> =
            if a_hosts.iter().any(|h| h.starts_with('*')) { (0..mesh.len()).collect() } else { a_hosts.iter().flat_map(|h| index.candidates(h)).collect() };
        for (j, (b, b_hosts, b_vis)) in candidates.into_iter().map(|j| (j, &mesh[j])) {
            let Some(ns) = shared_namespace((a, a_vis), b_vis).filter(|_| i != j) else { continue };
            let clash =
                a_hosts.iter().flat_map(|ha| b_hosts.iter().map(move |hb| (ha, hb))).find(|(ha, hb)| hosts_overlap(ha, hb) && scope.host(ha) && scope.host(hb));
            let Some((ha, hb)) = clash else { continue };
            let b_name = named("VirtualService", &b.meta.namespace, &b.meta.name);
            loses |= !wins(model, &ns, (a, ha), (b, hb));
            evidence.push(format!("{b_name} spec.hosts: {hb} (overlaps {ha}; both visible in namespace {ns})"));
            rivals.push(b_name);
        }
        if rivals.is_empty() {
            continue;
        }
        let me = named("VirtualService", &a.meta.namespace, &a.meta.name);
        let summary = if loses {
            format!("{me} is ignored for some hosts: {} claims them too and takes precedence", rivals.join(", "))
        } else {
            format!("{me} shares hosts with {}, whose rules sidecars then ignore for those hosts", rivals.join(", "))
        };
        evidence.insert(0, format!("{me} spec.hosts: [{}], exportTo: [{}]", a.spec.hosts.join(", "), a.spec.export_to.join(", ")));
        out.push(
            Finding::new("vs-conflict", if loses { Severity::Error } else { Severity::Warning }, a.reference("VirtualService"), summary)
                .code("IST0109")
                .detail("Sidecars never merge VirtualServices: for each host, the one with the most specific host wins, then the one private to the caller's namespace, then the oldest; the other's routes are dropped for that host.")
                .evidence(evidence)
                .fix(format!("merge the rules into one VirtualService per host, or narrow spec.hosts / spec.exportTo so that {me} and {} no longer overlap", rivals.join(", "))),
        );
    }
}

/// The winning VirtualService has no catch-all route for the caller: unmatched requests get 404.
pub fn no_route_match(ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let (Some(vh), Some(vs)) = (&pv.virtual_host, pi.winner) else { continue };
        if vh.routes.iter().any(|r| r.matcher.is_catch_all()) {
            continue;
        }
        let matches: Vec<String> = vh.routes.iter().map(|r| r.matcher.to_string()).collect();
        out.push(
            Finding::new(
                "no-route-match",
                Severity::Warning,
                vs.reference(vs.spec.source_kind()),
                format!(
                    "requests to {} on port {} that match none of the {} route(s) of {} get 404 (NR)",
                    vh.name,
                    pv.port,
                    vh.routes.len(),
                    named(vs.spec.source_kind(), &vs.meta.namespace, &vs.meta.name)
                ),
            )
            .detail(format!("Every rule has a match condition and none is a catch-all. Matches: {}.", matches.join(" | ")))
            .evidence([format!("{}: no rule without `match`", rule_at(vs, None))])
            .fix("add a last rule without `match` that routes to the default destination:\n  - route:\n    - destination:\n        host: <service>"),
        );
    }
}

/// A weighted split across subsets whose DestinationRule asks for consistent hashing.
pub fn consistent_hash_with_weights(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let Some(rule) = model.destination_rule(ctx.caller, &target.fqdn, &target.namespace) else { return };
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let (Some(vh), Some(vs)) = (&pv.virtual_host, pi.winner) else { continue };
        for route in vh.routes.iter().filter(|r| r.action.clusters().count() > 1) {
            let hashed: Vec<String> = route
                .action
                .clusters()
                .filter_map(|c| ClusterName::parse(&c.name))
                .filter(|c| c.host == target.fqdn)
                .filter(|c| {
                    let dr = rule.subset_owner(&c.subset).unwrap_or(rule.primary());
                    let subset = Some(c.subset.as_str()).filter(|s| !s.is_empty());
                    dr.spec.effective_policy(c.port, subset).load_balancer.is_some_and(|lb| lb.get("consistentHash").is_some())
                })
                .map(|c| if c.subset.is_empty() { "(default)".to_string() } else { c.subset })
                .collect();
            if hashed.is_empty() {
                continue;
            }
            let split: Vec<String> = route.action.clusters().map(|c| format!("{} {}", c.name, c.weight)).collect();
            let dr = rule.primary();
            out.push(
                Finding::new(
                    "consistent-hash-with-weights",
                    Severity::Warning,
                    vs.reference(vs.spec.source_kind()),
                    format!(
                        "{} splits {} by weight while DestinationRule {}/{} asks for consistent-hash affinity: a user's requests still hop between versions",
                        named(vs.spec.source_kind(), &vs.meta.namespace, &vs.meta.name), target.name, dr.meta.namespace, dr.meta.name
                    ),
                )
                .detail(format!(
                    "The weighted choice between clusters is made per request before any hashing; consistent hashing only picks a pod inside the chosen cluster (subsets [{}]). The same cookie or header lands on different versions in proportion to the weights.",
                    hashed.join(", ")
                ))
                .evidence([
                    format!("{}: {}", rule_at(vs, route.rule_index), split.join(", ")),
                    format!("DestinationRule {}/{} trafficPolicy.loadBalancer.consistentHash", dr.meta.namespace, dr.meta.name),
                ])
                .fix("route sticky users by a match (header or cookie) to one subset instead of a weight, or drop the weighted split if affinity matters more than the canary share"),
            );
        }
    }
}

/// Controllers and GitOps tools that rewrite a VirtualService's weights, recognised by owner
/// references, field managers, annotations and labels.
const WEIGHT_OWNERS: &[(&str, &str)] = &[
    ("Rollout/", "Argo Rollouts (owner reference)"),
    ("Canary/", "Flagger (owner reference)"),
    ("manager:argo-rollouts", "Argo Rollouts (field manager)"),
    ("manager:rollouts-controller", "Argo Rollouts (field manager)"),
    ("manager:flagger", "Flagger (field manager)"),
    ("manager:argocd-application-controller", "Argo CD (field manager)"),
    ("manager:argocd-controller", "Argo CD (field manager)"),
    ("manager:kustomize-controller", "Flux (field manager)"),
    ("manager:helm-controller", "Flux Helm (field manager)"),
];

/// Annotation and label key prefixes that mark a synced or generated object.
const WEIGHT_OWNER_KEYS: &[(&str, &str)] = &[
    ("argocd.argoproj.io/", "Argo CD"),
    ("kustomize.toolkit.fluxcd.io/", "Flux"),
    ("helm.toolkit.fluxcd.io/", "Flux Helm"),
    ("rollouts-pod-template-hash", "Argo Rollouts"),
];

/// Who rewrites this object's spec, if anyone.
fn managed_by(vs: &Resource<VirtualService>) -> Vec<String> {
    let meta = &vs.meta;
    let mut out: Vec<String> = WEIGHT_OWNERS.iter().filter(|(key, _)| meta.owners.iter().any(|o| o.starts_with(key))).map(|(_, who)| who.to_string()).collect();
    let keys = meta.annotations.keys().chain(meta.labels.keys());
    for key in keys {
        if let Some((_, who)) = WEIGHT_OWNER_KEYS.iter().find(|(prefix, _)| key.starts_with(prefix)) {
            out.push(format!("{who} ({key})"));
        }
    }
    if let Some(m) = meta.labels.get("app.kubernetes.io/managed-by") {
        out.push(format!("{m} (label app.kubernetes.io/managed-by)"));
    }
    let mut unique: Vec<String> = Vec::new();
    for who in out {
        if !unique.contains(&who) {
            unique.push(who);
        }
    }
    unique
}

/// A weighted VirtualService whose weights a controller or GitOps sync owns.
pub fn weights_managed_externally(model: &Model<'_>, scope: Scope<'_>, out: &mut Vec<Finding>) {
    for vs in scope.virtual_services(model) {
        let weighted =
            vs.spec.http.iter().map(|h| &h.route).chain(vs.spec.tcp.iter().map(|t| &t.route)).find(|r| r.len() > 1 && r.iter().any(|d| d.weight.is_some()));
        let Some(routes) = weighted else { continue };
        let owners = managed_by(vs);
        if owners.is_empty() {
            continue;
        }
        let rollout = owners.iter().any(|o| o.starts_with("Argo Rollouts") || o.starts_with("Flagger"));
        let weights: Vec<String> =
            routes.iter().map(|d| format!("{} {}", d.destination.subset.as_deref().unwrap_or(&d.destination.host), d.weight.unwrap_or(0))).collect();
        out.push(
            Finding::new(
                "weights-managed-externally",
                if rollout { Severity::Warning } else { Severity::Info },
                vs.reference("VirtualService"),
                format!("the weights of VirtualService {}/{} are managed by {}; edits made by hand will be reverted", vs.meta.namespace, vs.meta.name, owners.join(", ")),
            )
            .detail(format!(
                "Current split: {}. {}",
                weights.join(" / "),
                if rollout { "A progressive-delivery controller sets the weights on every step of the rollout." } else { "A sync tool re-applies the version from its source of truth." }
            ))
            .evidence([format!("VirtualService {}/{} metadata (owners, managers, annotations): {}", vs.meta.namespace, vs.meta.name, owners.join("; "))])
            .fix(if rollout {
                "change the split through the controller (e.g. `kubectl argo rollouts promote/abort`, or the Canary's analysis settings), not the VirtualService".to_string()
            } else {
                "change the weights in the Git source (or Helm values) that the sync tool applies".to_string()
            }),
        );
    }
}
