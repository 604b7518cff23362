//! Diagnose: runs intent, actual and diff for every examined caller and turns what they show
//! into ranked findings. Pure: it reads a snapshot value and returns a report value.

mod finding;
mod inputs;
mod path;
mod rules;

pub use finding::{Finding, Severity, merge_and_rank};

use crate::actual::{self, Actual};
use crate::diff::{self, ProxyDiff};
use crate::envoy::ProxyKind;
use crate::error::Result;
use crate::intent::{
    self, Intent,
    target::{Caller, SidecarState, Target},
};
use crate::model::Model;
use crate::question::{self, Question};
use crate::snapshot::{Gap, Snapshot};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// A caller that was examined, as shown in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyExamined {
    /// `namespace/pod`.
    pub caller: String,
    /// `sidecar`, `gateway`, `waypoint`, `ztunnel`, or `ambient` (a workload ztunnel captures).
    pub kind: &'static str,
    /// Whether it runs a proxy.
    pub sidecar: bool,
    /// Istio version of the proxy, when known.
    pub istio_version: Option<String>,
    /// Whether its Envoy admin output was read.
    pub proxy_read: bool,
    /// The hops a request from it to the service takes (sidecar, gateway, ztunnel, waypoint).
    pub path: Vec<String>,
}

/// Diff for one caller.
#[derive(Debug, Clone, Serialize)]
pub struct CallerDiff {
    /// `namespace/pod`.
    pub caller: String,
    /// The differences.
    #[serde(flatten)]
    pub diff: ProxyDiff,
}

/// The result of one analysis.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The service asked about.
    pub target: TargetSummary,
    /// Callers examined.
    pub proxies: Vec<ProxyExamined>,
    /// Ranked findings.
    pub findings: Vec<Finding>,
    /// Intent vs proxy, per caller that had a proxy capture.
    pub diff: Vec<CallerDiff>,
    /// What could not be read, and why.
    pub gaps: Vec<Gap>,
    /// What traffic should do, per port, for the first caller (for the verdict line).
    #[serde(skip)]
    pub expected: Vec<String>,
    /// Lines about how the question was read (a caller found in another namespace).
    #[serde(skip)]
    pub notes: Vec<String>,
    /// What could not be examined (inputs whose checks were withheld), for the verdict line.
    #[serde(skip)]
    pub not_examined: Vec<String>,
}

/// The target as shown in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    /// Service name.
    pub service: String,
    /// Namespace.
    pub namespace: String,
    /// Fully qualified host.
    pub host: String,
    /// Ports with the protocol Istio uses.
    pub ports: Vec<String>,
}

/// Everything the rules may look at for one caller.
pub(crate) struct CallerContext<'a> {
    /// The caller.
    pub caller: &'a Caller,
    /// What it should hold.
    pub intent: &'a Intent<'a>,
    /// What its proxy holds, if read.
    pub actual: Option<&'a Actual>,
    /// Their differences.
    pub diff: Option<&'a ProxyDiff>,
}

/// Analyzes `snapshot` for `question`.
pub fn analyze(snapshot: &Snapshot, question: &Question) -> Result<Report> {
    let target = Target::resolve(&snapshot.objects, &question.service, &question.namespace, question.port)?;
    let model = Model::build(&snapshot.objects);
    let mut report = analyze_service(snapshot, &model, question, &target)?;
    report.findings.extend(rules::object_findings(&model, rules::Scope::Service(&target)));
    report.gaps.extend(rules::unchecked(&model, rules::Scope::Service(&target)));
    report.not_examined = inputs::withhold(&mut report.findings, &mut report.gaps);
    report.findings = merge_and_rank(std::mem::take(&mut report.findings));
    Ok(report)
}

/// Gap source for "no proxy was read".
pub const NO_PROXIES: &str = "proxies/";

/// The findings that need a proxy's admin output, as the gaps name them.
pub const DATA_PLANE_CHECKS: &str = "proxy-stale, endpoints-stale, endpoints-unhealthy, circuit-breaker-open, split-skew, passthrough-fallback";

/// Analyzes every service of `namespace` (all namespaces when `None`), plus the objects that
/// concern no single service, into one report whose target is the scope.
pub fn analyze_mesh(snapshot: &Snapshot, namespace: Option<&str>) -> Result<Report> {
    let objects = &snapshot.objects;
    let model = Model::build(objects);
    let mut findings = rules::object_findings(&model, rules::Scope::Mesh(namespace));
    let mut proxies: Vec<ProxyExamined> = Vec::new();
    let mut diff = Vec::new();
    let mut gaps = snapshot.gaps.clone();
    gaps.extend(rules::unchecked(&model, rules::Scope::Mesh(namespace)));
    if let Some(target) = snapshot.manifest.as_ref().filter(|m| !m.covers(namespace)).map(|m| m.target.as_str()).filter(|t| !t.is_empty()) {
        gaps.push(Gap {
            source: crate::snapshot::MANIFEST_FILE.into(),
            reason: format!("the snapshot was captured for {target}: objects (pods above all) outside the namespaces that question needed may be missing, so findings about them may be wrong"),
        });
    }
    let mut seen_callers: HashSet<String> = HashSet::new();
    let mut seen_gaps: HashSet<(String, String)> = gaps.iter().map(|g| (g.source.clone(), g.reason.clone())).collect();
    let services: Vec<_> = objects.services.iter().filter(|s| namespace.is_none_or(|ns| s.meta.namespace == ns)).collect();
    // In batches: each service's report repeats the callers and gaps the merge drops, so
    // holding every report at once would grow with the mesh times its callers.
    let reports = services.chunks(MESH_BATCH).flat_map(|batch| {
        crate::parallel::in_parallel(batch, |svc| {
            let (name, ns) = (&svc.meta.name, &svc.meta.namespace);
            let question = Question { service: name.clone(), namespace: ns.clone(), port: None, from: None, from_namespace: ns.clone() };
            let target = Target::resolve(objects, name, ns, None)?;
            analyze_service(snapshot, &model, &question, &target)
        })
    });
    for (svc, report) in services.iter().zip(reports) {
        let (name, ns) = (&svc.meta.name, &svc.meta.namespace);
        let report = report?;
        findings.extend(report.findings);
        // Sets, not scans: every service lists the mesh's callers and gaps again.
        proxies.extend(report.proxies.into_iter().filter(|p| seen_callers.insert(p.caller.clone())));
        diff.extend(report.diff.into_iter().map(|d| CallerDiff { caller: format!("{} → {name}.{ns}", d.caller), diff: d.diff }));
        gaps.extend(report.gaps.into_iter().filter(|g| seen_gaps.insert((g.source.clone(), g.reason.clone()))));
    }
    let scope = namespace.unwrap_or("*");
    let not_examined = inputs::withhold(&mut findings, &mut gaps);
    Ok(Report {
        target: TargetSummary {
            service: "*".into(),
            namespace: scope.into(),
            host: namespace.map(|ns| format!("*.{ns}.svc.{}", crate::istio::names::DEFAULT_DOMAIN)).unwrap_or_else(|| "*".into()),
            ports: Vec::new(),
        },
        proxies,
        findings: merge_and_rank(findings),
        diff,
        gaps,
        expected: Vec::new(),
        notes: Vec::new(),
        not_examined,
    })
}

/// Services analysed together by [`analyze_mesh`] before their reports are merged.
const MESH_BATCH: usize = 128;

/// The findings about one service that need its callers, plus the checks of its own hosts;
/// the object checks shared with mesh-wide mode are the caller's to add.
fn analyze_service(snapshot: &Snapshot, model: &Model<'_>, question: &Question, target: &Target) -> Result<Report> {
    let objects = &snapshot.objects;
    let mut gaps = snapshot.gaps.clone();
    let mut findings = rules::service_findings(model, target);
    let mut proxies = Vec::new();
    let mut diffs = Vec::new();
    let mut expected = Vec::new();
    let mut expected_routes_here = false;
    let mut notes = Vec::new();
    let examined = question::callers(snapshot, model, target, question)?;
    // Callers without a capture that the objects cannot tell apart are pushed the same
    // configuration: the first is analysed for all, and the others are named on its findings
    // and listed after it. Without this, `--all` derived every pod's push for every service.
    let keys: Vec<Option<String>> = examined.iter().map(|e| (e.capture.is_none() && !e.caller.hypothetical).then(|| model.caller_key(&e.caller))).collect();
    let mut alike: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut representatives = Vec::new();
    for (e, key) in examined.into_iter().zip(&keys) {
        match key.as_deref().map(|k| (k, alike.get_mut(k))) {
            Some((_, Some(members))) => {
                members.push(e.caller.display());
                members.extend(e.alike);
            }
            Some((k, None)) => {
                alike.insert(k, Vec::new());
                representatives.push((e, Some(k)));
            }
            None => representatives.push((e, None)),
        }
    }
    for (mut examined, key) in representatives {
        let mut members = std::mem::take(&mut examined.alike);
        members.extend(key.and_then(|k| alike.get(k)).cloned().unwrap_or_default());
        notes.extend(examined.note);
        let mut caller = examined.caller;
        let mut actual = None;
        if let Some(capture) = examined.capture {
            let names = intent::derive(model, &caller, target).view.clusters.into_keys().collect();
            let read = actual::read(capture, target, &names);
            match read.node.as_ref().map(|n| n.kind.clone()) {
                Some(ProxyKind::Other(kind)) => gaps.push(Gap {
                    source: format!("proxies/{}/{}", capture.namespace, capture.pod),
                    reason: format!("refused: the proxy is an Istio `{kind}`, not a sidecar, gateway or waypoint; mesh-why reads those three"),
                }),
                _ => {
                    question::enrich(&mut caller, read.node.as_ref());
                    for m in &read.missing {
                        let source = format!("proxies/{}/{}/{m}", capture.namespace, capture.pod);
                        let reason = match read.unreadable.get(m) {
                            Some(why) => format!("unreadable ({why}); the checks that need it were skipped"),
                            None => "not captured; the checks that need it were skipped".into(),
                        };
                        // The reader may have said already why (an empty or unreadable file).
                        if !gaps.iter().any(|g| g.source == source) {
                            gaps.push(Gap { source, reason });
                        }
                    }
                    actual = Some(read);
                }
            }
        }
        let mut intent = intent::derive(model, &caller, target);
        if let Some(view) = actual.as_ref().and_then(|a| a.view.as_ref()) {
            intent::expect_clusters(model, &caller, target, &mut intent.view, view.clusters.keys());
        }
        for what in &intent.not_compared {
            let gap = Gap { source: format!("model, caller {}", caller.display()), reason: format!("not compared: {what}") };
            if !gaps.contains(&gap) {
                gaps.push(gap);
            }
        }
        let diff = actual.as_ref().and_then(|a| a.view.as_ref()).map(|v| diff::compare(&intent.view, v));
        // In ambient mode the waypoint's routes are what traffic meets, not a sidecar's.
        let routes_here = caller.kind == intent::target::CallerKind::Waypoint || !model.caller_is_ambient(&caller);
        if (expected.is_empty() || !expected_routes_here) && routes_here {
            expected = rules::describe_expected(&intent);
            expected_routes_here = true;
        }
        let ctx = CallerContext { caller: &caller, intent: &intent, actual: actual.as_ref(), diff: diff.as_ref() };
        let mut found = rules::caller_findings(model, target, &ctx);
        let me = caller.display();
        for f in found.iter_mut().filter(|f| f.callers.contains(&me)) {
            f.callers.extend(members.iter().cloned());
        }
        findings.extend(found);
        let examined = ProxyExamined::of(model, &caller, target, actual.is_some());
        let alike: Vec<ProxyExamined> = members.iter().map(|m| ProxyExamined { caller: m.clone(), proxy_read: false, ..examined.clone() }).collect();
        proxies.push(examined);
        proxies.extend(alike);
        if let Some(d) = diff.filter(|d| !d.text.is_empty() || !d.differences.is_empty()) {
            diffs.push(CallerDiff { caller: caller.display(), diff: d });
        }
    }
    // Ambient callers alone, with no pod of the waypoint in the snapshot: the waypoint's routes
    // are still what their traffic meets.
    if !expected_routes_here && let Some((gateway, _)) = model.serving_waypoint(Some(&target.fqdn), "") {
        let waypoint = intent::target::Caller::waypoint_of(&gateway.meta.namespace, &gateway.meta.name);
        expected = rules::describe_expected(&intent::derive(model, &waypoint, target));
    }
    for cap in snapshot.proxies.iter().filter(|c| actual::ztunnel::is_ztunnel(c, objects.pod(&c.namespace, &c.pod).map(|p| &p.meta))) {
        let source = format!("proxies/{}/{}", cap.namespace, cap.pod);
        match actual::ztunnel::read(cap, target) {
            Ok(view) => {
                if view.service.is_none() {
                    gaps.push(Gap { source, reason: format!("this ztunnel holds no service {}: its waypoint binding was not compared", target.fqdn) });
                }
                rules::ztunnel_findings(model, target, cap, &view, &mut findings);
                let caller = format!("{}/{}", cap.namespace, cap.pod);
                proxies.push(ProxyExamined { caller, kind: "ztunnel", sidecar: false, istio_version: None, proxy_read: true, path: Vec::new() });
            }
            Err(e) => gaps.push(Gap { source, reason: format!("unreadable ({}); the ztunnel checks were skipped", e.brief()) }),
        }
    }
    // A gatherer that read no proxy on purpose has already said so.
    if snapshot.proxies.is_empty() && !gaps.iter().any(|g| g.source == NO_PROXIES) {
        gaps.push(Gap { source: NO_PROXIES.into(), reason: format!("no proxy captures: data-plane checks ({DATA_PLANE_CHECKS}) were skipped") });
    }
    if objects.pods.is_empty() && objects.endpoint_slices.is_empty() {
        gaps.push(Gap { source: "objects/ Pods and EndpointSlices".into(), reason: "none captured: subset endpoints could not be checked".into() });
    }
    Ok(Report {
        target: TargetSummary {
            service: target.name.clone(),
            namespace: target.namespace.clone(),
            host: target.fqdn.clone(),
            ports: target.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol)).collect(),
        },
        proxies,
        findings,
        diff: diffs,
        gaps,
        expected,
        notes,
        not_examined: Vec::new(),
    })
}

impl ProxyExamined {
    /// How `caller` is listed; `proxy_read` when its Envoy was read.
    fn of(model: &Model<'_>, caller: &Caller, target: &Target, proxy_read: bool) -> ProxyExamined {
        ProxyExamined {
            path: path::hops(model, caller, target),
            caller: caller.display(),
            kind: match caller.kind {
                intent::target::CallerKind::Gateway => "gateway",
                intent::target::CallerKind::Waypoint => "waypoint",
                intent::target::CallerKind::Sidecar if model.caller_is_ambient(caller) => "ambient",
                intent::target::CallerKind::Sidecar => "sidecar",
            },
            sidecar: !matches!(caller.sidecar, SidecarState::Missing(_)),
            istio_version: caller.istio_version.map(|(a, b)| format!("{a}.{b}")),
            proxy_read,
        }
    }
}

impl Report {
    /// True when some finding has error severity.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}
