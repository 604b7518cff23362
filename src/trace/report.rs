//! One traced request on both sides (the caller's Envoy, the derived intent), where they part,
//! and its rendering as table, Markdown or JSON.

use super::{ProxyConfig, Request, Walk, walk::walk};
use crate::diagnose::{Finding, Severity};
use crate::envoy::config_dump::{ConfigDump, Node, Selection};
use crate::envoy::listener::RouteConfiguration;
use crate::error::{Error, Result};
use crate::intent::target::Caller;
use crate::question::Examined;
use crate::render::{Format, clean};
use crate::snapshot::{ProxyCapture, Snapshot};
use serde::Serialize;

/// The traced request and what each side makes of it.
#[derive(Debug, Clone, Serialize)]
pub struct TraceReport {
    /// The caller (`namespace/pod`).
    pub caller: String,
    /// How the caller was found, when that is worth a line (a bare pod in another namespace).
    pub note: Option<String>,
    /// The request, with defaults filled.
    pub request: Request,
    /// `envoy` when the caller's Envoy was read, else `intent`.
    pub source: &'static str,
    /// The walk through the caller's Envoy configuration.
    pub envoy: Option<Walk>,
    /// The walk through the configuration istiod should push.
    pub intent: Option<Walk>,
    /// Where the two walks part, named from the findings catalogue.
    pub findings: Vec<Finding>,
    /// What was not compared, and why.
    pub gaps: Vec<String>,
    /// The access-log line explained (`--log`).
    pub log: Option<super::log::LogExplanation>,
}

impl TraceReport {
    /// The walk that answers: Envoy's when read, else the intent's.
    pub fn answer(&self) -> Option<&Walk> {
        self.envoy.as_ref().or(self.intent.as_ref())
    }
}

/// Reads one field of a walk.
type WalkField = fn(&Walk) -> Option<String>;

/// The caller `--from` names (the first pod when it names several), pods looked up in
/// `namespace` unless the form names one.
fn find_caller<'s>(snapshot: &'s Snapshot, from: &str, namespace: &str) -> Result<Examined<'s>> {
    let (from, ns) = crate::question::From::parse(from)?;
    let mut named = crate::question::named(snapshot, &from, ns.as_deref().unwrap_or(namespace))?;
    Ok(named.swap_remove(0))
}

/// The Envoy-shaped configuration in a captured config dump.
/// What the walker reads from a capture, and the proxy's node (its Istio version decides
/// what istiod would push it).
fn envoy_config(capture: &ProxyCapture) -> Result<Option<(ProxyConfig, Option<Node>)>> {
    let Some(blob) = &capture.config_dump else { return Ok(None) };
    let text = std::str::from_utf8(&blob.bytes).map_err(|_| Error::new("the config dump is not UTF-8").at(&blob.origin))?;
    let dump = ConfigDump::parse(text, &blob.origin, &Selection::everything())?;
    let mut config = from_dump(&dump);
    // `/clusters` holds what Envoy really does with each host (outlier ejection, active health
    // checks), which the dump's EDS health does not.
    if let Some(blob) = &capture.clusters {
        let text = std::str::from_utf8(&blob.bytes).map_err(|_| Error::new("the clusters output is not UTF-8").at(&blob.origin))?;
        for c in crate::envoy::clusters::parse(text, &blob.origin, &|_| true)? {
            config.endpoints.insert(c.name, (c.hosts.iter().filter(|h| h.is_healthy()).count(), c.hosts.len()));
        }
    }
    Ok(Some((config, dump.node)))
}

/// Converts a parsed dump into what the walker reads.
pub fn from_dump(dump: &ConfigDump) -> ProxyConfig {
    let endpoints = dump
        .endpoints
        .iter()
        .flatten()
        .map(|cla| {
            let all: Vec<_> = cla.endpoints.iter().flat_map(|l| &l.lb_endpoints).collect();
            let healthy = all.iter().filter(|e| matches!(e.health_status.as_deref(), None | Some("HEALTHY" | "UNKNOWN" | "DEGRADED"))).count();
            (cla.cluster_name.clone(), (healthy, all.len()))
        })
        .collect();
    ProxyConfig {
        listeners: dump.listeners.iter().map(|l| (l.name.clone(), l.detail.clone())).collect(),
        route_configs: dump.route_configs.iter().map(|rc| RouteConfiguration { name: rc.name.clone(), virtual_hosts: rc.virtual_hosts.clone() }).collect(),
        clusters: Some(dump.cluster_names.clone()),
        endpoints,
    }
}

/// Traces `request` from the caller named by `from` on both sides.
pub fn trace(snapshot: &Snapshot, from: &str, namespace: &str, request: Request) -> Result<TraceReport> {
    let Examined { mut caller, mut capture, mut note, .. } = find_caller(snapshot, from, namespace)?;
    let request = request.with_defaults();
    let mut gaps = Vec::new();
    let model = crate::model::Model::build(&snapshot.objects);
    // An ambient caller has no Envoy: its node's ztunnel hands the request to the waypoint of
    // the destination, where the routes are; without one it forwards at L4.
    if model.caller_is_ambient(&caller) {
        match model.serving_waypoint(request.host.as_deref(), &request.address) {
            Some((gateway, pod)) => {
                let (ns, name) = (&gateway.meta.namespace, &gateway.meta.name);
                note = Some(format!("{} is in ambient mode: its node's ztunnel sends this request to waypoint {ns}/{name}, which routes it; traced there", caller.display()));
                capture = pod.and_then(|p| snapshot.proxies.iter().find(|c| c.namespace == p.meta.namespace && c.pod == p.meta.name));
                caller = pod.map(Caller::from_pod).unwrap_or_else(|| Caller::waypoint_of(ns, name));
            }
            None => gaps.push(format!(
                "{} is in ambient mode and no waypoint serves the destination: ztunnel forwards the connection at L4 straight to the pods, so no HTTP route applies; the walk shows what a sidecar would do",
                caller.display()
            )),
        }
    }
    let envoy = match capture.map(envoy_config).transpose()?.flatten() {
        Some((config, node)) => {
            crate::question::enrich(&mut caller, node.as_ref());
            Some(walk(&config, &request))
        }
        None => {
            gaps.push(format!("the Envoy of {} was not read: the trace follows the derived intent only", caller.display()));
            None
        }
    };
    let derived = crate::intent::listeners::derive(&model, &caller);
    gaps.extend(derived.gaps.iter().cloned());
    let intent = Some(walk(&derived.config, &request));
    let findings = parting(&caller, envoy.as_ref(), intent.as_ref(), &mut gaps);
    Ok(TraceReport {
        caller: caller.display(),
        note,
        source: if envoy.is_some() { "envoy" } else { "intent" },
        request,
        envoy,
        intent,
        findings,
        gaps,
        log: None,
    })
}

/// The first step where intent and Envoy part, as a finding. Only the HTTP routing stages are
/// reported: listener and filter-chain synthesis is modelled for the common shapes only, and a
/// false alarm there would cost more than silence.
fn parting(caller: &Caller, envoy: Option<&Walk>, intent: Option<&Walk>, gaps: &mut Vec<String>) -> Vec<Finding> {
    let (Some(e), Some(i)) = (envoy, intent) else { return Vec::new() };
    // Filter chain names are cosmetic (many dumps leave them empty): the chain shows in what
    // it leads to, the route configuration or the tcp_proxy cluster.
    let fields: [(&str, WalkField); 6] = [
        ("listener", |w| w.listener.clone()),
        ("route_config", |w| w.route_config.clone()),
        ("virtual_host", |w| w.virtual_host.clone()),
        ("route", |w| w.route.clone()),
        ("cluster", |w| w.action.as_ref().map(describe_action)),
        ("error", |w| w.error.map(|s| s.code())),
    ];
    let Some((stage, get)) = fields.iter().find(|(_, get)| get(e).unwrap_or_default() != get(i).unwrap_or_default()) else { return Vec::new() };
    let (want, have) = (get(i).unwrap_or_else(|| "nothing".into()), get(e).unwrap_or_else(|| "nothing".into()));
    if *stage == "listener" || (*stage == "error" && e.route_config.is_none()) {
        gaps.push(format!("intent and Envoy part at the {stage} (intent {want}, Envoy {have}); listener synthesis is modelled for common shapes only, so this is not reported as a finding"));
        return Vec::new();
    }
    let summary =
        format!("the Envoy of {} sends this request differently than istiod's configuration would: {stage} {have} instead of {want}", caller.display());
    vec![
        Finding::new("proxy-stale", Severity::Error, caller.reference(), summary)
            .detail("The first step where the request's walk through the proxy's configuration and through the configuration derived from the objects part. istiod has not pushed the current configuration to this proxy, or Envoy rejected it.")
            .evidence([format!("{stage}: intent {want}, Envoy {have}"), format!("Envoy outcome: {}", e.outcome), format!("intent outcome: {}", i.outcome)])
            .fix(format!("check sync state with `istioctl proxy-status {}`; look for rejected config in istiod's logs", caller.name))
            .caller(caller.display()),
    ]
}

/// The clusters of an action with their shares (`a 90%, b 10%`), or what it does instead.
fn describe_action(a: &super::Action) -> String {
    let clusters = |c: &[super::Share]| c.iter().map(|s| format!("{} {}%", s.cluster, s.percent)).collect::<Vec<_>>().join(", ");
    match a {
        super::Action::Forward { clusters: c, .. } | super::Action::Tcp { clusters: c } => clusters(c),
        super::Action::Redirect => "redirect".into(),
        super::Action::DirectResponse { status } => format!("direct response {status}"),
    }
}

/// Renders the report.
pub fn render(report: &TraceReport, format: Format) -> String {
    match format {
        Format::Json => render_json(report),
        Format::Markdown => render_text(report, true),
        Format::Table => render_text(report, false),
    }
}

fn render_json(report: &TraceReport) -> String {
    let answer = report.answer().cloned().unwrap_or_default();
    let json = serde_json::json!({
        "schema": "mesh-why/v1",
        "kind": "trace",
        "tool": crate::render::json::tool(),
        "listener": answer.listener,
        "filter_chain": answer.filter_chain,
        "route_config": answer.route_config,
        "virtual_host": answer.virtual_host,
        "route": answer.route,
        "cluster": answer.cluster,
        "error": answer.error.map(|s| s.code()),
        "outcome": answer.outcome,
        "source": report.source,
        "caller": report.caller,
        "caller_note": report.note,
        "request": report.request,
        "steps": answer.steps,
        "envoy": report.envoy,
        "intent": report.intent,
        "findings": report.findings,
        "gaps": report.gaps,
        "log": report.log,
    });
    crate::render::json::to_text(&json)
}

fn render_text(report: &TraceReport, markdown: bool) -> String {
    let r = &report.request;
    let mut out = String::new();
    // Markdown escapes cluster text for the ticket (no forged headings, links or HTML).
    let text = |s: &str| if markdown { crate::render::markdown::text(s) } else { clean(s) };
    let scheme = if r.security == super::Security::Plaintext { "http" } else { "https" };
    let title = format!(
        "trace: {} {}{} from {} to {}:{}{}",
        r.method,
        r.host.as_deref().map(|h| format!("{scheme}://{h}")).unwrap_or_default(),
        r.path,
        report.caller,
        r.address,
        r.port,
        if r.inbound { " (inbound)" } else { "" }
    );
    let Some(answer) = report.answer() else { return text(&title) + "\n" };
    out.push_str(&if markdown { format!("### {}\n\n", text(&title)) } else { format!("{}\n", text(&title)) });
    if let Some(note) = &report.note {
        out.push_str(&text(note));
        out.push_str(if markdown { "\n\n" } else { "\n" });
    }
    let verdict = match report.findings.first() {
        Some(f) => format!("verdict: {}: {}", f.severity, f.summary),
        None => format!("verdict ({}): {}", report.source, answer.outcome),
    };
    out.push_str(&text(&verdict));
    out.push_str("\n\n");
    if markdown {
        out.push_str("| # | stage | chosen | why |\n|---|---|---|---|\n");
    }
    for (n, s) in answer.steps.iter().enumerate() {
        let chosen = if s.chosen.is_empty() { "-".to_string() } else { s.chosen.clone() };
        if markdown {
            let chosen = crate::render::markdown::code_span(&chosen).replace('|', "\\|");
            out.push_str(&format!("| {} | {} | `{chosen}` | {} |\n", n + 1, s.stage, crate::render::markdown::cell(&s.why)));
        } else {
            out.push_str(&format!("{:>2}. {:<13} {}\n    {}\n", n + 1, s.stage, clean(&chosen), clean(&s.why)));
        }
    }
    if let (Some(e), Some(i)) = (&report.envoy, &report.intent)
        && (e.error != i.error || e.action.as_ref().map(describe_action) != i.action.as_ref().map(describe_action))
    {
        out.push_str(&format!("\nintent would: {}\n", text(&i.outcome)));
    }
    if let Some(log) = &report.log {
        out.push_str(&format!(
            "\naccess log: {}\n",
            text(&format!("{} {} {}, flags {}", log.line.status, log.line.method, log.line.path, log.line.flags.join(",")))
        ));
        for n in &log.notes {
            out.push_str(&format!("  - {}\n", text(n)));
        }
    }
    for f in &report.findings {
        out.push_str(&format!("\n{}: {}\n  evidence: {}\n  fix: {}\n", f.id, text(&f.summary), text(&f.evidence.join("; ")), text(&f.fix)));
    }
    for g in &report.gaps {
        out.push_str(&format!("\nnot compared: {}", text(g)));
    }
    out.push('\n');
    out
}

/// The Kubernetes service a trace is about, as `NAME[.NAMESPACE]`: SERVICE when given, else
/// the one `--host` names, else the one the `--log` line's upstream cluster or authority names.
/// Live mode reads that service's objects and the caller's proxy; `None` when nothing names an
/// in-cluster service.
pub fn called_service(args: &crate::cli::TraceArgs) -> Result<Option<String>> {
    if args.service.is_some() {
        return Ok(args.service.clone());
    }
    let suffix = format!(".svc.{}", crate::istio::names::DEFAULT_DOMAIN);
    // `NAME`, `NAME.NS`, `NAME.NS.svc[.cluster.local]`, with or without `:PORT`; a name of
    // another domain (three labels or more) is not an in-cluster service.
    let from_host = |host: &str| -> Option<String> {
        let host = host.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(host, |(h, _)| h).trim_end_matches('.');
        let name = host.strip_suffix(&suffix).or_else(|| host.strip_suffix(".svc")).unwrap_or(host);
        (!name.is_empty() && name.split('.').count() <= 2).then(|| name.to_string())
    };
    if let Some(host) = &args.host {
        return Ok(from_host(host));
    }
    let Some(line) = &args.log else { return Ok(None) };
    let log = super::log::parse(line)?;
    Ok(crate::istio::names::ClusterName::parse(&log.upstream_cluster).and_then(|c| from_host(&c.host)).or_else(|| from_host(&log.authority)))
}

/// Builds the request from the `trace` flags; SERVICE[.NS] fills host, address and port.
pub fn build_request(objects: &crate::snapshot::Objects, args: &crate::cli::TraceArgs, port: Option<u32>, namespace: &str) -> Result<Request> {
    let service = match &args.service {
        Some(s) => {
            let (name, ns) = s.split_once('.').map(|(n, ns)| (n, ns.split('.').next().unwrap_or(ns))).unwrap_or((s.as_str(), namespace));
            let svc = objects.service(ns, name).ok_or_else(|| {
                Error::new(format!("service {name}.{ns} is not in the snapshot"))
                    .help("name the service as SERVICE.NAMESPACE, or pass --host and --port instead")
            })?;
            Some((format!("{name}.{ns}.svc.{}", crate::istio::names::DEFAULT_DOMAIN), svc.spec.spec.clone().unwrap_or_default()))
        }
        None => None,
    };
    let port = match (port, &service) {
        (Some(p), _) => p,
        (None, Some((host, spec))) => match spec.ports.as_deref().unwrap_or_default() {
            [one] => one.port as u32,
            _ => return Err(Error::new(format!("{host} has several ports")).help("pick one with --port")),
        },
        (None, None) => return Err(Error::new("trace needs --port (or a SERVICE to take it from)").help("for example: --port 9080")),
    };
    let address = args
        .address
        .clone()
        .or_else(|| service.as_ref().and_then(|(_, spec)| spec.cluster_ip.clone().filter(|ip| !ip.is_empty() && ip != "None")))
        .unwrap_or_else(|| "1.3.3.7".into());
    if address.parse::<std::net::IpAddr>().is_err() {
        return Err(Error::new(format!("--address {address} is not an IP address")).help("for example: --address 10.96.0.20"));
    }
    let mut headers = Vec::new();
    for h in &args.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| Error::new(format!("-H {h}: not `name: value`")).help("for example: -H 'end-user: jason'"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    if !args.path.starts_with('/') {
        return Err(Error::new(format!("--path {}: a path starts with /", args.path)).help("for example: --path '/api/v1/reviews/0?x=1'"));
    }
    let host = args.host.clone().or_else(|| service.as_ref().map(|(h, _)| h.clone()));
    let security = match (args.tls || args.protocol == super::Protocol::Tls, args.mtls) {
        (_, true) => super::Security::Mtls,
        (true, false) => super::Security::Tls,
        _ => super::Security::Plaintext,
    };
    Ok(Request {
        address,
        port,
        host,
        path: args.path.clone(),
        method: args.method.to_ascii_uppercase(),
        headers,
        protocol: args.protocol,
        security,
        sni: args.sni.clone(),
        alpn: args.alpn.clone(),
        inbound: args.inbound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn called(args: &[&str]) -> Option<String> {
        let cli = crate::cli::Cli::try_parse_from([&["kubectl-mesh_why", "trace", "--from", "p"], args].concat()).unwrap();
        let Some(crate::cli::Command::Trace(t)) = &cli.command else { unreachable!("a trace command") };
        called_service(t).unwrap()
    }

    #[test]
    fn the_service_comes_from_the_argument_the_host_or_the_log_line() {
        assert_eq!(called(&["ratings.shop", "--host", "reviews"]).as_deref(), Some("ratings.shop"));
        assert_eq!(called(&["--host", "reviews.default.svc.cluster.local:9080"]).as_deref(), Some("reviews.default"));
        assert_eq!(called(&["--host", "reviews.default.svc."]).as_deref(), Some("reviews.default"));
        assert_eq!(called(&["--host", "reviews"]).as_deref(), Some("reviews"));
        assert_eq!(called(&["--host", "api.example.com"]), None, "a host of another domain is no in-cluster service");
        let line = r#"[2026-12-03T10:38:29.630Z] "GET /r HTTP/1.1" 503 UH - - "-" 0 19 0 - "-" "curl" "id" "x.example.com" "-" outbound|9080|v2|reviews.default.svc.cluster.local - 10.96.0.20:9080 10.0.0.5:4242 - -"#;
        assert_eq!(called(&["--log", line]).as_deref(), Some("reviews.default"), "the upstream cluster names the service");
        assert_eq!(
            called(&["--log", &line.replace("outbound|9080|v2|reviews.default.svc.cluster.local", "-").replace("x.example.com", "ratings:9080")]).as_deref(),
            Some("ratings")
        );
    }
}
