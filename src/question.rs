//! The question asked: which service, which port, and which callers to examine.

use crate::error::{Error, Result};
use crate::intent::target::{Caller, CallerKind, Target, parse_istio_version};
use crate::istio::labels_match;
use crate::snapshot::{ProxyCapture, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

/// `--from`: which callers to examine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// A pod name.
    Pod(String),
    /// `deploy/NAME`.
    Deployment(String),
    /// `KEY=VALUE,...`.
    Labels(BTreeMap<String, String>),
}

impl From {
    /// Parses `POD`, `deploy/NAME` (or `deployment/`, `deployments/`) and `KEY=VALUE,...`.
    pub fn parse(s: &str) -> Result<From> {
        if let Some((kind, name)) = s.split_once('/') {
            return match kind {
                "deploy" | "deployment" | "deployments" => Ok(From::Deployment(name.to_string())),
                "pod" | "pods" | "po" => Ok(From::Pod(name.to_string())),
                _ => Err(Error::new(format!("--from {s}: unknown kind `{kind}`")).help("use POD, pod/NAME, deploy/NAME or KEY=VALUE,...")),
            };
        }
        if s.contains('=') {
            let mut labels = BTreeMap::new();
            for pair in s.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(|| Error::new(format!("--from {s}: `{pair}` is not KEY=VALUE")))?;
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            return Ok(From::Labels(labels));
        }
        Ok(From::Pod(s.to_string()))
    }
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            From::Pod(name) => write!(f, "pod/{name}"),
            From::Deployment(name) => write!(f, "deploy/{name}"),
            From::Labels(labels) => f.write_str(&labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
        }
    }
}

/// The service asked about.
#[derive(Debug, Clone)]
pub struct Question {
    /// Service name.
    pub service: String,
    /// Service namespace.
    pub namespace: String,
    /// Only this port.
    pub port: Option<u32>,
    /// Callers to examine.
    pub from: Option<From>,
    /// Namespace `--from` pods are looked up in (`-n`, else the service's).
    pub from_namespace: String,
}

/// A caller together with its captured Envoy, if any.
pub struct Examined<'a> {
    /// The caller.
    pub caller: Caller,
    /// Its admin output.
    pub capture: Option<&'a ProxyCapture>,
}

/// Picks the callers to examine: `--from`, else every captured proxy that is not a backend of
/// the service, else every pod that could call it, else a stand-in sidecar.
pub fn callers<'a>(snapshot: &'a Snapshot, target: &Target, question: &Question) -> Result<Vec<Examined<'a>>> {
    let objects = &snapshot.objects;
    let capture_of = |ns: &str, pod: &str| snapshot.proxies.iter().find(|p| p.namespace == ns && p.pod == pod);
    let backends: BTreeSet<(String, String)> =
        objects.pods.iter().filter(|p| target.selects(p)).map(|p| (p.meta.namespace.clone(), p.meta.name.clone())).collect();
    let mut out: Vec<Examined> = Vec::new();
    if let Some(from) = &question.from {
        let ns = &question.from_namespace;
        let deployment_selector = |name: &str| {
            objects
                .deployments
                .iter()
                .find(|d| d.meta.namespace == *ns && d.meta.name == name)
                .and_then(|d| d.spec.spec.as_ref()?.selector.match_labels.clone())
        };
        for pod in objects.pods.iter().filter(|p| p.meta.namespace == *ns) {
            let hit = match from {
                From::Pod(name) => pod.meta.name == *name,
                From::Labels(l) => labels_match(l, &pod.meta.labels),
                From::Deployment(name) => match deployment_selector(name) {
                    Some(sel) => labels_match(&sel, &pod.meta.labels),
                    None => pod.meta.owners.iter().any(|o| o.strip_prefix("ReplicaSet/").is_some_and(|rs| rs.rsplit_once('-').is_some_and(|(d, _)| d == name))),
                },
            };
            if hit {
                out.push(Examined { caller: Caller::from_pod(pod), capture: capture_of(&pod.meta.namespace, &pod.meta.name) });
            }
        }
        if let (From::Pod(name), true) = (from, out.is_empty())
            && let Some(cap) = capture_of(ns, name)
        {
            out.push(Examined { caller: from_capture(cap), capture: Some(cap) });
        }
        if out.is_empty() {
            let pods: Vec<&str> = objects.pods.iter().filter(|p| p.meta.namespace == *ns).map(|p| p.meta.name.as_str()).take(5).collect();
            let known = if pods.is_empty() { format!("no pod of namespace {ns} was read") } else { format!("pods there include {}", pods.join(", ")) };
            return Err(Error::new(format!("--from {from} matched no pod in namespace {ns}"))
                .help(format!("{known}; pass a pod name, deploy/NAME or KEY=VALUE labels, and -n for the caller's namespace")));
        }
        return Ok(out);
    }
    for cap in &snapshot.proxies {
        if backends.contains(&(cap.namespace.clone(), cap.pod.clone())) {
            continue;
        }
        let caller = objects.pod(&cap.namespace, &cap.pod).map(Caller::from_pod).unwrap_or_else(|| from_capture(cap));
        out.push(Examined { caller, capture: Some(cap) });
    }
    // Pods that could call the service: all of them when no proxy was captured, else the ones
    // without a sidecar (they have no Envoy to capture, and are a finding of their own).
    let captured_any = !out.is_empty();
    {
        let mut seen_workloads = BTreeSet::new();
        let interested: BTreeSet<&str> = objects
            .virtual_services
            .iter()
            .filter(|vs| vs.spec.http.iter().flat_map(|h| &h.route).any(|d| d.destination.host.starts_with(&target.name)))
            .map(|vs| vs.meta.namespace.as_str())
            .chain([target.namespace.as_str()])
            .collect();
        for pod in &objects.pods {
            if backends.contains(&(pod.meta.namespace.clone(), pod.meta.name.clone())) || !interested.contains(pod.meta.namespace.as_str()) {
                continue;
            }
            let mut caller = Caller::from_pod(pod);
            caller.possible = captured_any;
            let already = out.iter().any(|e| e.caller.namespace == pod.meta.namespace && e.caller.name == pod.meta.name);
            let has_sidecar = !matches!(caller.sidecar, crate::intent::target::SidecarState::Missing(_));
            if caller.kind == CallerKind::Gateway || already || (captured_any && has_sidecar) {
                continue;
            }
            let workload = pod.meta.owners.first().cloned().unwrap_or_else(|| pod.meta.labels.get("app").cloned().unwrap_or_else(|| pod.meta.name.clone()));
            if seen_workloads.insert((pod.meta.namespace.clone(), workload)) {
                out.push(Examined { caller, capture: None });
            }
        }
    }
    if out.is_empty() {
        out.push(Examined { caller: Caller::hypothetical(&target.namespace), capture: None });
    }
    Ok(out)
}

/// A caller known only from its captured Envoy (node metadata fills in labels and namespace).
fn from_capture(cap: &ProxyCapture) -> Caller {
    let mut caller = Caller::hypothetical(&cap.namespace);
    caller.name = cap.pod.clone();
    caller.hypothetical = false;
    caller.sidecar = crate::intent::target::SidecarState::FromProxyOnly;
    caller
}

/// Fills in what the proxy itself says: Istio version, labels and kind when no pod was captured.
pub fn enrich(caller: &mut Caller, node: Option<&crate::envoy::config_dump::Node>) {
    let Some(node) = node else { return };
    caller.istio_version = node.istio_version.as_deref().and_then(parse_istio_version);
    if caller.labels.is_empty() {
        caller.labels = node.labels.clone();
    }
    if node.kind == crate::envoy::ProxyKind::Router {
        caller.kind = CallerKind::Gateway;
    }
    if let Some(ns) = node.namespace.as_ref().filter(|_| caller.sidecar == crate::intent::target::SidecarState::FromProxyOnly) {
        caller.namespace = ns.clone();
    }
}
