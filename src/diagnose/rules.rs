//! The checks: each looks at the objects, one caller's intent, its proxy, or their diff, and
//! reports a cause once. A cause owns its consequences: a subset missing from the
//! DestinationRule also leaves the proxy without that cluster, which is not reported again as
//! proxy drift because the intent lacks the cluster too.

use super::finding::{Finding, Severity};
use super::CallerContext;
use crate::diff::Difference;
use crate::intent::scope::{self, all_rules_for, claiming_host, destination_rule_for, vs_gateways, vs_hosts};
use crate::intent::target::{SidecarState, Target};
use crate::intent::{endpoints, Intent};
use crate::istio::names::{ClusterName, Protocol};
use crate::snapshot::{ObjectRef, Objects};

/// Checks that need only the objects.
pub fn object_findings(objects: &Objects, target: &Target) -> Vec<Finding> {
    let mut out = Vec::new();
    vs_gateway_only(objects, target, &mut out);
    vs_host_mismatch(objects, target, &mut out);
    out
}

/// Checks for one caller.
pub(crate) fn caller_findings(objects: &Objects, target: &Target, ctx: &CallerContext<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let SidecarState::Missing(reason) = &ctx.caller.sidecar {
        caller_without_sidecar(objects, target, ctx, reason, &mut out);
        return out;
    }
    port_not_http(target, ctx.intent, &mut out);
    subset_not_declared(objects, target, ctx, &mut out);
    subset_no_endpoints(objects, target, ctx, &mut out);
    no_route_match(ctx, &mut out);
    if let Some(diff) = ctx.diff {
        proxy_stale(ctx, diff, &mut out);
        endpoints_stale(target, ctx, diff, &mut out);
    }
    for f in &mut out {
        if !f.callers.contains(&ctx.caller.display()) {
            f.callers.push(ctx.caller.display());
        }
    }
    out
}

/// One line per port saying where traffic should go, for the verdict.
pub fn describe_expected(intent: &Intent<'_>) -> Vec<String> {
    intent
        .view
        .ports
        .iter()
        .filter_map(|p| {
            let vh = p.virtual_host.as_ref()?;
            let last = vh.routes.last()?;
            Some(format!("port {}: {} route(s); default {}", p.port, vh.routes.len(), last.action))
        })
        .collect()
}

/// Every routing rule for the host, so "rules are ignored" findings can say which.
fn has_routing_rules(objects: &Objects, target: &Target) -> bool {
    objects.virtual_services.iter().any(|vs| claiming_host(vs, &target.fqdn).is_some())
        || all_rules_for(objects, &target.fqdn).iter().any(|dr| !dr.spec.subsets.is_empty())
}

fn caller_without_sidecar(objects: &Objects, target: &Target, ctx: &CallerContext<'_>, reason: &str, out: &mut Vec<Finding>) {
    let rules = has_routing_rules(objects, target);
    let severity = if rules { Severity::Error } else { Severity::Warning };
    let ns_injected = objects.namespace(&ctx.caller.namespace).is_some_and(|n| {
        n.meta.labels.get("istio-injection").map(String::as_str) == Some("enabled") || n.meta.labels.contains_key("istio.io/rev")
    });
    let mut f = Finding::new(
        "caller-without-sidecar",
        severity,
        ctx.caller.reference(),
        format!("caller {} has no Istio sidecar, so routing rules for {} never run for its requests", ctx.caller.display(), target.name),
    )
    .detail(format!(
        "{reason}. Its requests go straight through kube-proxy, which spreads connections round-robin over all ready pods of the Service{}; VirtualService weights, subsets and retries do not apply.",
        if rules { " regardless of version" } else { "" }
    ))
    .evidence([format!("Pod {}/{} spec.containers: no istio-proxy", ctx.caller.namespace, ctx.caller.name)])
    .fix(if ns_injected {
        format!("restart the workload so the injector adds the sidecar: kubectl rollout restart deploy -n {} <deployment>", ctx.caller.namespace)
    } else {
        format!("enable injection and restart: kubectl label namespace {} istio-injection=enabled && kubectl rollout restart deploy -n {}", ctx.caller.namespace, ctx.caller.namespace)
    })
    .caller(ctx.caller.display());
    if ns_injected {
        f = f.code("IST0103");
    }
    out.push(f);
}

fn vs_gateway_only(objects: &Objects, target: &Target, out: &mut Vec<Finding>) {
    let mesh_claims = objects
        .virtual_services
        .iter()
        .any(|vs| vs_gateways(vs).iter().any(|g| g == "mesh") && claiming_host(vs, &target.fqdn).is_some());
    if mesh_claims {
        return;
    }
    for vs in objects.virtual_services.iter().filter(|vs| claiming_host(vs, &target.fqdn).is_some()) {
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

fn vs_host_mismatch(objects: &Objects, target: &Target, out: &mut Vec<Finding>) {
    for vs in &objects.virtual_services {
        if claiming_host(vs, &target.fqdn).is_some() || !vs_gateways(vs).iter().any(|g| g == "mesh") {
            continue;
        }
        let routes_here = vs.spec.http.iter().flat_map(|h| &h.route).any(|d| {
            crate::istio::names::resolve_short_name(&d.destination.host, &vs.meta.namespace, crate::istio::names::DEFAULT_DOMAIN) == target.fqdn
        });
        let dangling: Vec<(String, String)> = vs
            .spec
            .hosts
            .iter()
            .zip(vs_hosts(vs))
            .filter(|(_, resolved)| !scope::host_is_known(objects, resolved) && !resolved.contains('*'))
            .map(|(h, r)| (h.clone(), r))
            .collect();
        if !routes_here || dangling.is_empty() {
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
                format!("VirtualService {}/{} routes to {} but its hosts do not name it, so its rules are never used", vs.meta.namespace, vs.meta.name, target.name),
            )
            .detail(format!("{}. Callers address {}, which matches no host of this VirtualService, so they get the default route.", why.join("; "), target.fqdn))
            .evidence([format!("VirtualService {}/{} spec.hosts: [{}]", vs.meta.namespace, vs.meta.name, vs.spec.hosts.join(", "))])
            .fix(format!("set spec.hosts of VirtualService {}/{} to the Service's full name:\n  hosts:\n  - {}", vs.meta.namespace, vs.meta.name, target.fqdn)),
        );
    }
}

fn port_not_http(target: &Target, intent: &Intent<'_>, out: &mut Vec<Finding>) {
    for (pi, tp) in intent.ports.iter().zip(&target.ports) {
        let Some(vs) = pi.candidates.iter().find(|vs| !vs.spec.http.is_empty()) else { continue };
        let port_desc = format!("port {} (name {:?}{})", tp.port, tp.name.clone().unwrap_or_default(), tp.app_protocol.as_ref().map(|a| format!(", appProtocol {a}")).unwrap_or_default());
        let (severity, summary, code) = match tp.protocol {
            p if p.is_tcp_class() => (
                Severity::Error,
                format!("{port_desc} of Service {} is {p} for Istio, so the HTTP rules of VirtualService {}/{} do not apply", target.name, vs.meta.namespace, vs.meta.name),
                None,
            ),
            Protocol::Auto => (
                Severity::Info,
                format!("{port_desc} of Service {} has no protocol prefix, so Istio sniffs the protocol; HTTP rules apply only to clear-text HTTP/1.1 or h2c", target.name),
                Some("IST0118"),
            ),
            _ => continue,
        };
        let mut f = Finding::new("port-not-http", severity, target.reference(), summary)
            .detail("For TCP-class ports Envoy forwards connections with tcp_proxy: weights split connections rather than requests, and header matches, retries and timeouts are ignored.")
            .evidence([format!("Service {}/{} spec.ports[port={}].name: {:?}", target.namespace, target.name, tp.port, tp.name.clone().unwrap_or_default())])
            .fix(format!("name the port with its protocol, e.g. `name: http-{}`, or set `appProtocol: http`", tp.port));
        if let Some(c) = code {
            f = f.code(c);
        }
        out.push(f);
    }
}

fn subset_not_declared(objects: &Objects, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let Some(vh) = &pv.virtual_host else { continue };
        let Some(vs) = pi.winner else { continue };
        for route in &vh.routes {
            let total: u32 = route.action.clusters().map(|c| c.weight).sum();
            for wc in route.action.clusters() {
                let Some(cv) = ctx.intent.view.clusters.get(&wc.name) else { continue };
                let Some(name) = ClusterName::parse(&wc.name) else { continue };
                if cv.present || name.subset.is_empty() || !crate::intent::host_has_port(objects, &name.host, name.port) {
                    continue;
                }
                let service_ns = crate::intent::service_namespace(&name.host);
                let effective = destination_rule_for(objects, ctx.caller, &name.host, &service_ns);
                let elsewhere: Vec<ObjectRef> = all_rules_for(objects, &name.host)
                    .into_iter()
                    .filter(|dr| dr.spec.subset(&name.subset).is_some())
                    .map(|dr| dr.reference("DestinationRule"))
                    .collect();
                let reason = match (&effective, elsewhere.first()) {
                    (None, None) => format!("no DestinationRule for {} is visible to this caller", name.host),
                    (Some(e), None) => format!(
                        "DestinationRule {}/{} (in effect) declares subsets [{}], not `{}`",
                        e.primary().meta.namespace,
                        e.primary().meta.name,
                        e.subset_names().join(", "),
                        name.subset
                    ),
                    (None, Some(other)) => format!("{other} declares it, but is not visible to namespace {} (exportTo)", ctx.caller.namespace),
                    (Some(e), Some(other)) => format!(
                        "{other} declares it, but DestinationRule {}/{} is the one in effect for this caller (it shadows the other)",
                        e.primary().meta.namespace,
                        e.primary().meta.name
                    ),
                };
                let share = if total > 0 && route.action.clusters().count() > 1 { format!("{}% of ", wc.weight * 100 / total) } else { String::new() };
                let rule = route.rule_index.unwrap_or(0);
                let mut evidence = vec![format!("VirtualService {}/{} spec.http[{rule}] destination subset {}", vs.meta.namespace, vs.meta.name, name.subset)];
                if let Some(actual) = ctx.actual.and_then(|a| a.view.as_ref()) {
                    let state = if actual.clusters.get(&wc.name).is_some_and(|c| c.present) { "present (unexpected)" } else { "absent" };
                    evidence.push(format!("{}: cluster {} {state}", ctx.caller.display(), wc.name));
                }
                let fix = match &effective {
                    Some(e) => format!(
                        "declare the subset in DestinationRule {}/{} (or fix the subset name in the VirtualService):\n  subsets:\n  - name: {}\n    labels:\n      version: {}",
                        e.primary().meta.namespace, e.primary().meta.name, name.subset, name.subset
                    ),
                    None => format!(
                        "create a DestinationRule for {} declaring it:\n  apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata:\n    name: {}\n    namespace: {}\n  spec:\n    host: {}\n    subsets:\n    - name: {}\n      labels:\n        version: {}",
                        name.host, target.name, service_ns, name.host, name.subset, name.subset
                    ),
                };
                out.push(
                    Finding::new(
                        "subset-not-declared",
                        Severity::Error,
                        vs.reference("VirtualService"),
                        format!("{share}requests routed to subset `{}` of {} fail with 503 (NC): the subset is not declared", name.subset, name.host),
                    )
                    .code("IST0101")
                    .detail(format!("{reason}. istiod still writes the route to cluster {} but creates no such cluster, so Envoy answers 503 with response flag NC (no cluster).", wc.name))
                    .evidence(evidence)
                    .fix(fix),
                );
            }
        }
    }
}

fn subset_no_endpoints(objects: &Objects, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    let routed: Vec<&str> = ctx.intent.view.ports.iter().flat_map(|p| p.virtual_host.iter()).flat_map(|vh| &vh.routes).flat_map(|r| r.action.clusters()).map(|c| c.name.as_str()).collect();
    for (name, cv) in &ctx.intent.view.clusters {
        let Some(parsed) = ClusterName::parse(name) else { continue };
        if parsed.host != target.fqdn || parsed.subset.is_empty() || !cv.present {
            continue;
        }
        let Some(eps) = &cv.endpoints else { continue };
        if !eps.is_empty() {
            continue;
        }
        let Some(rule) = cv.destination_rule.as_ref() else { continue };
        let dr = objects.destination_rules.iter().find(|d| d.meta.namespace == rule.namespace && d.meta.name == rule.name);
        let labels = dr.and_then(|d| d.spec.subset(&parsed.subset)).map(|s| s.labels.clone()).unwrap_or_default();
        let label_text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let tp = target.ports.iter().find(|p| p.port == parsed.port);
        let backends = tp.and_then(|tp| endpoints::backends(objects, target, tp)).unwrap_or_default();
        let versions: Vec<String> = backends
            .iter()
            .map(|b| {
                let shown: Vec<String> = labels.keys().map(|k| format!("{k}={}", b.labels.get(k).map(String::as_str).unwrap_or("<unset>"))).collect();
                format!("{} {}{}", b.pod.clone().unwrap_or_else(|| b.address.clone()), shown.join(","), if b.ready { "" } else { " (not ready)" })
            })
            .collect();
        let is_routed = routed.contains(&name.as_str());
        out.push(
            Finding::new(
                "subset-no-endpoints",
                if is_routed { Severity::Error } else { Severity::Warning },
                rule.clone(),
                format!("subset `{}` of {} selects no ready pod{}", parsed.subset, target.name, if is_routed { ", so requests routed to it fail with 503 (UH)" } else { "" }),
            )
            .code("IST0173")
            .detail(format!(
                "The subset's labels [{}] match none of the ready pods of Service {}/{}. Pods: {}.",
                label_text.join(", "),
                target.namespace,
                target.name,
                if versions.is_empty() { "none".to_string() } else { versions.join("; ") }
            ))
            .evidence([format!("{rule} spec.subsets[name={}].labels: {{{}}}", parsed.subset, label_text.join(", "))])
            .fix(format!("make the subset's labels match the pods' labels (kubectl get pods -n {} -l {} --show-labels), or deploy pods with those labels", target.namespace, label_text.join(","))),
        );
    }
}

fn no_route_match(ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
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
                vs.reference("VirtualService"),
                format!("requests to {} on port {} that match none of the {} route(s) of VirtualService {}/{} get 404 (NR)", vh.name, pv.port, vh.routes.len(), vs.meta.namespace, vs.meta.name),
            )
            .detail(format!("Every rule has a match condition and none is a catch-all. Matches: {}.", matches.join(" | ")))
            .evidence([format!("VirtualService {}/{} spec.http: no rule without `match`", vs.meta.namespace, vs.meta.name)])
            .fix("add a last rule without `match` that routes to the default destination:\n  - route:\n    - destination:\n        host: <service>"),
        );
    }
}

fn proxy_stale(ctx: &CallerContext<'_>, diff: &crate::diff::ProxyDiff, out: &mut Vec<Finding>) {
    let config: Vec<&Difference> = diff.differences.iter().filter(|d| !d.is_endpoints()).collect();
    if config.is_empty() {
        return;
    }
    let evidence: Vec<String> = config.iter().map(|d| describe_difference(&ctx.caller.display(), d)).collect();
    let weights_changed = config.iter().any(|d| matches!(d, Difference::Route { expected: Some(_), actual: Some(_), .. }));
    let summary = match stale_split(ctx, &config) {
        Some((want, have)) => format!("the Envoy of {} still splits {have} instead of {want}: it runs old configuration", ctx.caller.display()),
        None => format!("the Envoy of {} holds configuration that differs from what the current objects imply ({} difference(s))", ctx.caller.display(), config.len()),
    };
    out.push(
        Finding::new("proxy-stale", Severity::Error, ctx.caller.reference(), summary)
        .detail(format!(
            "{}istiod has not pushed the current configuration to this proxy, or Envoy rejected the update; it keeps serving the old routes.{}",
            if weights_changed { "Routes differ (old matches or weights). " } else { "" },
            ctx.actual.map(|a| a.rejected.iter().map(|(l, d)| format!(" Listener {l} rejected an update: {d}.")).collect::<String>()).unwrap_or_default()
        ))
        .evidence(evidence)
        .fix(format!(
            "check sync state with `istioctl proxy-status {}.{}`; look for rejected config in istiod's logs; restarting the pod forces a fresh push",
            ctx.caller.name, ctx.caller.namespace
        )),
    );
}

/// For a route whose weights alone changed: the intended and the held split, as `v1 90 / v2 10`.
fn stale_split(ctx: &CallerContext<'_>, config: &[&Difference]) -> Option<(String, String)> {
    let (port, index) = config.iter().find_map(|d| match d {
        Difference::Route { port, index, expected: Some(_), actual: Some(_) } => Some((*port, *index)),
        _ => None,
    })?;
    let route_at = |view: &crate::view::ProxyView| {
        view.ports.iter().find(|p| p.port == port)?.virtual_host.as_ref()?.routes.get(index).cloned()
    };
    let (want, have) = (route_at(&ctx.intent.view)?, route_at(ctx.actual?.view.as_ref()?)?);
    let split = |r: &crate::view::RouteView| {
        r.action
            .clusters()
            .map(|c| {
                let subset = ClusterName::parse(&c.name).map(|n| n.subset).filter(|s| !s.is_empty()).unwrap_or_else(|| c.name.clone());
                (subset, c.weight)
            })
            .collect::<Vec<_>>()
    };
    let (w, h) = (split(&want), split(&have));
    let names = |v: &[(String, u32)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if want.matcher != have.matcher || names(&w) != names(&h) || w.len() < 2 {
        return None;
    }
    let show = |v: &[(String, u32)]| v.iter().map(|(n, wt)| format!("{n} {wt}")).collect::<Vec<_>>().join(" / ");
    Some((show(&w), show(&h)))
}

fn endpoints_stale(target: &Target, ctx: &CallerContext<'_>, diff: &crate::diff::ProxyDiff, out: &mut Vec<Finding>) {
    let stale: Vec<&Difference> = diff.differences.iter().filter(|d| d.is_endpoints()).collect();
    let Some(Difference::Endpoints { cluster, .. }) = stale.first() else { return };
    out.push(
        Finding::new(
            "endpoints-stale",
            Severity::Error,
            target.reference(),
            format!("the endpoints {} holds for {} differ from the ready pods ({} cluster(s))", ctx.caller.display(), target.name, stale.len()),
        )
        .detail("Envoy sends traffic to addresses that no ready pod of the subset has any more, or does not know pods that are ready now; requests fail or skip new pods until istiod pushes endpoints again.")
        .evidence(stale.iter().map(|d| describe_difference(&ctx.caller.display(), d)))
        .fix(format!(
            "compare with `istioctl proxy-config endpoints {}.{} --cluster \"{cluster}\"`, check the Service's EndpointSlices and istiod's pushes (`istioctl proxy-status`)",
            ctx.caller.name, ctx.caller.namespace
        )),
    );
}

fn describe_difference(caller: &str, d: &Difference) -> String {
    match d {
        Difference::VirtualHostMissing { port } => format!("{caller}: route config {port} has no virtual host for the service (expected one)"),
        Difference::VirtualHostUnexpected { port } => format!("{caller}: route config {port} has a virtual host for the service that should not be there"),
        Difference::Route { port, index, expected, actual } => format!(
            "{caller}: port {port} route #{index}: expected {}, Envoy has {}",
            expected.as_deref().unwrap_or("nothing"),
            actual.as_deref().unwrap_or("nothing")
        ),
        Difference::TcpRoute { port, expected, actual } => format!("{caller}: port {port} tcp_proxy: expected [{}], Envoy has [{}]", expected.join(", "), actual.join(", ")),
        Difference::ClusterMissing { cluster } => format!("{caller}: cluster {cluster} expected but absent"),
        Difference::ClusterUnexpected { cluster } => format!("{caller}: cluster {cluster} present but no longer declared"),
        Difference::Endpoints { cluster, missing, unexpected } => {
            format!("{caller}: cluster {cluster} endpoints: missing [{}], unexpected [{}]", missing.join(", "), unexpected.join(", "))
        }
    }
}
