//! What a caller's Envoy shows: configuration or endpoints that drifted from the objects,
//! hosts it ejected, connection-pool overflows, a split that differs from the weights, and
//! requests that fell to the passthrough or blackhole route.

use super::routing::fallback_for;
use super::significance::chi_square;
use super::{named, rule_at};
use crate::actual::Actual;
use crate::diagnose::CallerContext;
use crate::diagnose::finding::{Finding, Severity};
use crate::diff::{Difference, ProxyDiff};
use crate::intent::target::{CallerKind, Target};
use crate::istio::names::{ClusterName, Protocol};
use crate::model::Model;
use crate::snapshot::ObjectRef;
use crate::view::{ProxyView, RouteView};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// Every data-plane check for one caller.
pub fn check(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    if let Some(diff) = ctx.diff {
        proxy_stale(ctx, diff, out);
        endpoints_stale(target, ctx, diff, out);
    }
    passthrough_fallback(model, target, ctx, out);
    let Some(actual) = ctx.actual else { return };
    endpoints_unhealthy(model, target, ctx, actual, out);
    circuit_breaker_open(model, target, ctx, actual, out);
    split_skew(model, target, ctx, actual, out);
}

fn proxy_stale(ctx: &CallerContext<'_>, diff: &ProxyDiff, out: &mut Vec<Finding>) {
    // On a sidecar a missing virtual host is reported as passthrough-fallback, its consequence.
    let passthrough = |d: &Difference| sidecar(ctx) && matches!(d, Difference::VirtualHostMissing { .. });
    let config: Vec<&Difference> = diff.differences.iter().filter(|d| !d.is_endpoints() && !passthrough(d)).collect();
    if config.is_empty() {
        return;
    }
    let mut evidence: Vec<String> = config.iter().map(|d| describe_difference(&ctx.caller.display(), d)).collect();
    evidence.extend(staleness(ctx, &config));
    let weights_changed = config.iter().any(|d| matches!(d, Difference::Route { expected: Some(_), actual: Some(_), .. }));
    let summary = match stale_split(ctx, &config) {
        Some((want, have)) => format!("the Envoy of {} still splits {have} instead of {want}: it runs old configuration", ctx.caller.display()),
        None => {
            format!(
                "the Envoy of {} holds configuration that differs from what the current objects imply ({} difference(s))",
                ctx.caller.display(),
                config.len()
            )
        }
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

/// How old the proxy's copy is: for each port whose routes differ, the route configuration's
/// `version_info` and `last_updated` in Envoy against the generation and last change
/// (managedFields) of the VirtualService that now decides the port.
fn staleness(ctx: &CallerContext<'_>, config: &[&Difference]) -> Vec<String> {
    let Some(actual) = ctx.actual else { return Vec::new() };
    let mut out = Vec::new();
    for (pi, pv) in ctx.intent.ports.iter().zip(&ctx.intent.view.ports) {
        let differs = config.iter().any(|d| matches!(d, Difference::Route { port, .. } | Difference::TcpRoute { port, .. } if *port == pv.port));
        let Some(rc) = pv.route_config.as_ref().filter(|_| differs) else { continue };
        let Some((_, version, updated)) = actual.route_versions.iter().find(|(name, _, _)| name == rc) else { continue };
        let envoy = format!(
            "{}: Envoy's route config {rc} has version_info {}, last_updated {}",
            ctx.caller.display(),
            version.as_deref().unwrap_or("(none)"),
            updated.as_deref().unwrap_or("(unknown)")
        );
        let Some(vs) = pi.winner else {
            out.push(envoy);
            continue;
        };
        let changed = vs.meta.last_changed.as_deref();
        let age = match (changed.and_then(|c| c.parse::<Timestamp>().ok()), updated.as_deref().and_then(|u| u.parse::<Timestamp>().ok())) {
            (Some(c), Some(u)) if c > u => format!(": the proxy's copy is {} older than the change", whole_seconds(c.duration_since(u).as_secs())),
            (Some(_), Some(_)) => ": the proxy took an update after this change, so another object or a rejected push explains the difference".into(),
            _ => String::new(),
        };
        out.push(format!(
            "{envoy}; {} {}/{} generation {}, last changed {}{age}",
            vs.spec.source_kind(),
            vs.meta.namespace,
            vs.meta.name,
            vs.meta.generation.map(|g| g.to_string()).unwrap_or_else(|| "(unknown)".into()),
            changed.unwrap_or("(unknown)")
        ));
    }
    out
}

/// `1h 2m 3s`, `4m 0s`, `5s`.
fn whole_seconds(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// True for a sidecar caller (gateways have no passthrough catch-all: they answer 404).
fn sidecar(ctx: &CallerContext<'_>) -> bool {
    ctx.caller.kind == CallerKind::Sidecar
}

/// For a route whose weights alone changed: the intended and the held split, as `v1 90 / v2 10`.
fn stale_split(ctx: &CallerContext<'_>, config: &[&Difference]) -> Option<(String, String)> {
    let (port, index) = config.iter().find_map(|d| match d {
        Difference::Route { port, index, expected: Some(_), actual: Some(_) } => Some((*port, *index)),
        _ => None,
    })?;
    let route_at = |view: &ProxyView| view.ports.iter().find(|p| p.port == port)?.virtual_host.as_ref()?.routes.get(index).cloned();
    let (want, have) = (route_at(&ctx.intent.view)?, route_at(ctx.actual?.view.as_ref()?)?);
    let (w, h) = (split_of(&want), split_of(&have));
    let names = |v: &[(String, u32)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if want.matcher != have.matcher || names(&w) != names(&h) || w.len() < 2 || w == h {
        return None;
    }
    let show = |v: &[(String, u32)]| v.iter().map(|(n, wt)| format!("{n} {wt}")).collect::<Vec<_>>().join(" / ");
    Some((show(&w), show(&h)))
}

/// A route's destinations as (subset, or cluster name for the default subset, weight).
fn split_of(route: &RouteView) -> Vec<(String, u32)> {
    route.action.clusters().map(|c| (subset_label(&c.name), c.weight)).collect()
}

/// The subset of a cluster name, or the name itself when it has none.
fn subset_label(cluster: &str) -> String {
    ClusterName::parse(cluster).map(|n| n.subset).filter(|s| !s.is_empty()).unwrap_or_else(|| cluster.to_string())
}

fn endpoints_stale(target: &Target, ctx: &CallerContext<'_>, diff: &ProxyDiff, out: &mut Vec<Finding>) {
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
        Difference::TcpRoute { port, expected, actual } => {
            format!("{caller}: port {port} tcp_proxy: expected [{}], Envoy has [{}]", expected.join(", "), actual.join(", "))
        }
        Difference::ClusterMissing { cluster } => format!("{caller}: cluster {cluster} expected but absent"),
        Difference::ClusterUnexpected { cluster } => format!("{caller}: cluster {cluster} present but no longer declared"),
        Difference::LbPolicy { cluster, expected, actual } => format!("{caller}: cluster {cluster} lb_policy: expected {expected}, Envoy has {actual}"),
        Difference::Endpoints { cluster, missing, unexpected } => {
            format!("{caller}: cluster {cluster} endpoints: missing [{}], unexpected [{}]", missing.join(", "), unexpected.join(", "))
        }
    }
}

/// True when an Istio metric's destination is the target: by service labels, or by the host or
/// address the client dialled.
fn names_target(labels: &BTreeMap<String, String>, target: &Target) -> bool {
    let service = labels.get("destination_service").map(String::as_str).unwrap_or_default();
    let host = service.rsplit_once(':').map(|(h, _)| h).unwrap_or(service);
    let short = [target.name.clone(), format!("{}.{}", target.name, target.namespace), format!("{}.{}.svc", target.name, target.namespace)];
    host == target.fqdn || short.iter().any(|s| s == host) || target.cluster_ip.as_deref() == Some(host)
}

/// Requests for the target match no virtual host of the caller's Envoy and fall to the
/// catch-all route: the route config lacks the service's virtual host although the objects
/// give it one, or Istio's metrics count requests for it on PassthroughCluster/BlackHoleCluster.
fn passthrough_fallback(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, out: &mut Vec<Finding>) {
    if !sidecar(ctx) {
        return;
    }
    let mut evidence: Vec<String> = Vec::new();
    for d in ctx.diff.iter().flat_map(|d| &d.differences) {
        let Difference::VirtualHostMissing { port } = d else { continue };
        let expected = ctx.intent.view.ports.iter().find(|p| p.port == *port).and_then(|p| p.virtual_host.as_ref());
        let domains = expected.map(|vh| vh.domains.join(", ")).unwrap_or_default();
        evidence.push(format!(
            "{}: route config {port} has no virtual host for {} (expected domains [{domains}]); only the catch-all is left",
            ctx.caller.display(),
            target.fqdn
        ));
    }
    let fell: u64 = ctx
        .actual
        .iter()
        .flat_map(|a| &a.stats.istio_requests)
        .filter(|(l, _)| l.get("reporter").is_none_or(|r| r == "source") && names_target(l, target))
        .filter(|(l, _)| matches!(l.get("destination_service_name").map(String::as_str), Some("PassthroughCluster" | "BlackHoleCluster")))
        .fold(0u64, |sum, (_, n)| sum.saturating_add(*n));
    if fell > 0 {
        evidence.push(format!(
            "{}: istio_requests_total{{reporter=\"source\", destination_service_name=\"PassthroughCluster\"|\"BlackHoleCluster\"}} for {}: {fell}",
            ctx.caller.display(),
            target.fqdn
        ));
    }
    if evidence.is_empty() {
        return;
    }
    out.push(
        Finding::new(
            "passthrough-fallback",
            Severity::Error,
            target.reference(),
            format!("requests from {} for {} match no virtual host of its Envoy, so they {}", ctx.caller.display(), target.name, fallback_for(model, ctx.caller)),
        )
        .detail(format!(
            "The objects give {} a virtual host for this caller, but its Envoy does not route the requests through it: the route configuration lacks it (istiod has not pushed it, or the live cluster's Sidecar or exportTo differ from the snapshot), or the requests carry a Host the virtual host does not list.",
            target.fqdn
        ))
        .evidence(evidence)
        .fix(format!(
            "check `istioctl proxy-config routes {}.{} --name <port>` for the service's domains and `istioctl proxy-status`; call the service by a name its virtual host lists ({}, {}.{}, ...)",
            ctx.caller.name, ctx.caller.namespace, target.name, target.name, target.namespace
        )),
    );
}

/// The DestinationRule shaping a cluster of the target for this caller, if any.
fn rule_for_cluster<'a>(
    model: &Model<'a>,
    target: &Target,
    ctx: &CallerContext<'_>,
    cluster: &ClusterName,
) -> Option<&'a crate::snapshot::Resource<crate::istio::DestinationRule>> {
    let rule = model.destination_rule(ctx.caller, &target.fqdn, &target.namespace)?;
    Some(rule.subset_owner(&cluster.subset).unwrap_or(rule.primary()))
}

/// Hosts Envoy holds for the target but will not send to: ejected by outlier detection or
/// failing active health checks.
fn endpoints_unhealthy(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, actual: &Actual, out: &mut Vec<Finding>) {
    let mut lines = Vec::new();
    let mut all_out = false;
    let mut subject: Option<ObjectRef> = None;
    for (cluster, hosts) in &actual.hosts {
        let Some(name) = ClusterName::parse(cluster).filter(|n| n.host == target.fqdn) else { continue };
        let bad: Vec<String> = hosts
            .iter()
            .filter(|h| h.failed_outlier_check || h.failed_active_health_check)
            .map(|h| format!("{} {}", h.address, if h.failed_outlier_check { "failed_outlier_check" } else { "failed_active_hc" }))
            .collect();
        if bad.is_empty() {
            continue;
        }
        all_out |= bad.len() == hosts.len();
        lines.push(format!("{}: /clusters {cluster}: {} of {} host(s) out: {}", ctx.caller.display(), bad.len(), hosts.len(), bad.join(", ")));
        let dr = rule_for_cluster(model, target, ctx, &name);
        subject = subject.or_else(|| {
            dr.filter(|d| d.spec.effective_policy(name.port, Some(name.subset.as_str()).filter(|s| !s.is_empty())).outlier_detection.is_some())
                .map(|d| d.reference("DestinationRule"))
        });
    }
    for ((cluster, stat), value) in &actual.stats.cluster {
        if stat == "outlier_detection.ejections_active" && *value > 0 && !actual.hosts.contains_key(cluster) {
            lines.push(format!("{}: cluster.{cluster}.outlier_detection.ejections_active: {value}", ctx.caller.display()));
        }
    }
    if lines.is_empty() {
        return;
    }
    out.push(
        Finding::new(
            "endpoints-unhealthy",
            if all_out { Severity::Error } else { Severity::Warning },
            subject.unwrap_or_else(|| target.reference()),
            format!("endpoints of {} are ejected by outlier detection or failing health checks{}", target.name, if all_out { ": a cluster has no host left, so its requests fail with 503 (UH)" } else { "; the remaining pods take their share" }),
        )
        .detail("The pods are in the endpoint set, but Envoy stopped sending to them after consecutive errors (outlier detection) or failed active health checks. Ejections last baseEjectionTime and grow with each repeat; at most maxEjectionPercent of the hosts are ejected.")
        .evidence(lines)
        .fix(format!(
            "find why those pods return 5xx or time out (kubectl logs / describe); review outlierDetection (consecutive5xxErrors, baseEjectionTime, maxEjectionPercent) in the DestinationRule; watch `istioctl proxy-config endpoints {}.{}`",
            ctx.caller.name, ctx.caller.namespace
        )),
    );
}

/// Envoy counters and gauges that show a connection-pool limit being hit.
const OVERFLOW_STATS: &[&str] = &[
    "upstream_rq_pending_overflow",
    "upstream_cx_overflow",
    "upstream_rq_retry_overflow",
    "circuit_breakers.default.cx_open",
    "circuit_breakers.default.rq_pending_open",
    "circuit_breakers.default.rq_open",
    "circuit_breakers.default.rq_retry_open",
];

/// Connection-pool limits of the target's clusters are being hit (503 UO).
fn circuit_breaker_open(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, actual: &Actual, out: &mut Vec<Finding>) {
    let mut lines = Vec::new();
    let mut subject: Option<ObjectRef> = None;
    let mut limits = Vec::new();
    for cluster in ctx.intent.view.clusters.keys() {
        let Some(name) = ClusterName::parse(cluster).filter(|n| n.host == target.fqdn) else { continue };
        let hits: Vec<String> =
            OVERFLOW_STATS.iter().filter_map(|s| actual.stats.cluster_stat(cluster, s).filter(|v| *v > 0).map(|v| format!("{s}: {v}"))).collect();
        if hits.is_empty() {
            continue;
        }
        lines.push(format!("{}: cluster.{cluster}: {}", ctx.caller.display(), hits.join(", ")));
        let subset = Some(name.subset.as_str()).filter(|s| !s.is_empty());
        let pool = rule_for_cluster(model, target, ctx, &name).and_then(|dr| Some((dr, dr.spec.effective_policy(name.port, subset).connection_pool?)));
        if let Some((dr, pool)) = pool {
            limits.push(format!("{} connectionPool: {pool}", named("DestinationRule", &dr.meta.namespace, &dr.meta.name)));
            subject = subject.or(Some(dr.reference("DestinationRule")));
        }
    }
    if lines.is_empty() {
        return;
    }
    limits.dedup();
    lines.extend(limits);
    out.push(
        Finding::new(
            "circuit-breaker-open",
            Severity::Error,
            subject.unwrap_or_else(|| target.reference()),
            format!("requests from {} to {} overflow the connection-pool limits and fail with 503 (UO)", ctx.caller.display(), target.name),
        )
        .detail("Envoy rejects a request at once when the cluster has reached maxConnections, http1MaxPendingRequests or http2MaxRequests (or maxRetries for retries). The overflow counters are cumulative since the proxy started; an `_open` gauge of 1 means the breaker is open right now.")
        .evidence(lines)
        .fix("raise the limits in the DestinationRule's trafficPolicy.connectionPool (tcp.maxConnections, http.http1MaxPendingRequests, http.http2MaxRequests), or add backend capacity; sample the counters twice to see if they still rise"),
    );
}

/// Below this many requests a split is not judged at all.
const MIN_REQUESTS: u64 = 30;

/// Significance level for split-skew.
const P_THRESHOLD: f64 = 0.01;

/// Observed requests per cluster of a weighted route, and where the counts came from.
fn observed_counts(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, actual: &Actual, clusters: &[String]) -> Option<(Vec<u64>, &'static str)> {
    if clusters.iter().all(|c| actual.hosts.contains_key(c)) {
        let counts: Vec<u64> = clusters.iter().map(|c| actual.hosts[c].iter().fold(0u64, |sum, h| sum.saturating_add(h.rq_total))).collect();
        if counts.iter().any(|c| *c > 0) {
            return Some((counts, "/clusters per-host rq_total"));
        }
    }
    let rule = model.destination_rule(ctx.caller, &target.fqdn, &target.namespace)?;
    let versions: Vec<String> = clusters
        .iter()
        .map(|c| {
            let subset = ClusterName::parse(c)?.subset;
            rule.subset_owner(&subset)?.spec.subset(&subset)?.labels.get("version").map(str::to_string)
        })
        .collect::<Option<_>>()?;
    let samples = actual.stats.istio_requests.iter().filter(|(l, _)| l.get("reporter").is_none_or(|r| r == "source") && names_target(l, target));
    let mut counts = vec![0; versions.len()];
    for (labels, n) in samples {
        if let Some(i) = versions.iter().position(|v| labels.get("destination_version") == Some(v)) {
            counts[i] += n;
        }
    }
    (counts.iter().sum::<u64>() > 0).then_some((counts, "istio_requests_total{reporter=\"source\"} by destination_version"))
}

/// `= 3.2e-4`, or `< 1e-12` when the probability underflows any useful precision.
fn p_text(p: f64) -> String {
    if p < 1e-12 { "< 1e-12".into() } else { format!("= {p:.1e}") }
}

/// The observed split of a weighted route differs from its weights beyond chance.
fn split_skew(model: &Model<'_>, target: &Target, ctx: &CallerContext<'_>, actual: &Actual, out: &mut Vec<Finding>) {
    for (pv, pi) in ctx.intent.view.ports.iter().zip(&ctx.intent.ports) {
        let (Some(vh), Some(vs)) = (&pv.virtual_host, pi.winner) else { continue };
        // Old weights in the proxy explain the split; proxy-stale reports that.
        let stale = ctx.diff.is_some_and(|d| d.differences.iter().any(|x| matches!(x, Difference::Route { port, .. } if *port == pv.port)));
        if stale {
            continue;
        }
        for (i, route) in vh.routes.iter().enumerate().filter(|(_, r)| r.action.clusters().count() > 1) {
            let clusters: Vec<String> = route.action.clusters().map(|c| c.name.clone()).collect();
            let shared = vh.routes.iter().enumerate().any(|(j, r)| j != i && r.action.clusters().any(|c| clusters.contains(&c.name)));
            let Some((counts, source)) = observed_counts(model, target, ctx, actual, &clusters).filter(|_| !shared) else { continue };
            let n = counts.iter().fold(0u64, |sum, c| sum.saturating_add(*c));
            let weights: Vec<f64> = route.action.clusters().map(|c| c.weight as f64).collect();
            let Some(test) = chi_square(&counts, &weights).filter(|t| n >= MIN_REQUESTS && t.p_value < P_THRESHOLD) else { continue };
            let total_weight: f64 = weights.iter().sum();
            let labels: Vec<String> = clusters.iter().map(|c| subset_label(c)).collect();
            let seen: Vec<String> = labels.iter().zip(&counts).map(|(l, c)| format!("{l} {:.0}% ({c})", *c as f64 * 100.0 / n as f64)).collect();
            let meant: Vec<String> = labels.iter().zip(&weights).map(|(l, w)| format!("{l} {:.0}%", w * 100.0 / total_weight)).collect();
            let long_lived = matches!(pv.protocol, Protocol::Http2 | Protocol::Grpc) || pv.protocol.is_tcp_class();
            out.push(
                Finding::new(
                    "split-skew",
                    Severity::Warning,
                    vs.reference(vs.spec.source_kind()),
                    format!("requests for {}:{} split {} instead of the intended {} (N = {n}, p {})", target.name, pv.port, seen.join(" / "), meant.join(" / "), p_text(test.p_value)),
                )
                .detail(format!(
                    "Over {n} requests counted by {}, a split this far from the weights is this unlikely under the intended ones: p {} (chi-square {:.1}, {} degree(s) of freedom; judged at p < {P_THRESHOLD}). Likely causes: the counters are cumulative since the proxy started, so a recent weight change is diluted by earlier traffic (sample twice and compare the deltas){}; retries and callers outside this proxy are not in these counts.",
                    source,
                    p_text(test.p_value),
                    test.statistic,
                    test.df,
                    if long_lived { "; this port's long-lived HTTP/2 or TCP connections make each connection's requests follow one pick" } else { "" }
                ))
                .evidence([
                    format!("{}: {source}: {}", ctx.caller.display(), labels.iter().zip(&counts).map(|(l, c)| format!("{l} {c}")).collect::<Vec<_>>().join(", ")),
                    format!("{} weights: {}", rule_at(vs, route.rule_index), meant.join(" / ")),
                ])
                .fix(format!(
                    "measure deltas over a fixed window (two /clusters or istio_requests_total samples) before acting; if the skew persists, check `istioctl proxy-config routes {}.{}` for the weights Envoy holds and whether clients reuse long-lived connections",
                    ctx.caller.name, ctx.caller.namespace
                )),
            );
        }
    }
}
