//! The question asked: which service, which port, and which callers to examine.

use crate::error::{Error, Result};
use crate::intent::target::{Caller, CallerKind, SidecarState, Target, parse_istio_version};
use crate::istio::labels_match;
use crate::model::Model;
use crate::snapshot::{ProxyCapture, Snapshot};
use std::collections::{BTreeMap, BTreeSet, HashSet};

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

/// `NAME.NAMESPACE` split at its last dot, as istioctl reads `POD.NAMESPACE`.
fn name_and_namespace(s: &str) -> (String, Option<String>) {
    match s.rsplit_once('.') {
        Some((name, ns)) if !name.is_empty() && !ns.is_empty() => (name.to_string(), Some(ns.to_string())),
        _ => (s.to_string(), None),
    }
}

impl From {
    /// Parses `POD`, `POD.NAMESPACE`, `NAMESPACE/POD`, `pod/POD[.NAMESPACE]`,
    /// `deploy/NAME[.NAMESPACE]` (or `deployment/`, `deployments/`) and `KEY=VALUE,...`; the
    /// namespace, when the form names one, comes second.
    pub fn parse(s: &str) -> Result<(From, Option<String>)> {
        if s.contains('=') {
            let mut labels = BTreeMap::new();
            for pair in s.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(|| Error::new(format!("--from {s}: `{pair}` is not KEY=VALUE")))?;
                labels.insert(k.trim().to_string(), v.trim().to_string());
            }
            return Ok((From::Labels(labels), None));
        }
        let invalid = || {
            Error::new(format!("--from {s}: not a pod or deployment")).help("use POD, POD.NAMESPACE, NAMESPACE/POD, deploy/NAME[.NAMESPACE] or KEY=VALUE,...")
        };
        if let Some((kind, rest)) = s.split_once('/') {
            let (name, ns) = name_and_namespace(rest);
            if name.is_empty() || rest.contains('/') {
                return Err(invalid());
            }
            return Ok(match kind {
                "deploy" | "deployment" | "deployments" => (From::Deployment(name), ns),
                "pod" | "pods" | "po" => (From::Pod(name), ns),
                namespace if !namespace.is_empty() && namespace.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') => {
                    (From::Pod(rest.to_string()), Some(namespace.to_string()))
                }
                _ => return Err(invalid()),
            });
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let (name, ns) = name_and_namespace(s);
        Ok((From::Pod(name), ns))
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
    /// How it was found, when that is worth a line (a bare pod found in another namespace).
    pub note: Option<String>,
    /// The callers (`namespace/pod`) pushed the same configuration, analysed through this one.
    pub alike: Vec<String>,
}

/// A bare pod name not found in the `--from` namespace, looked up in every namespace of the
/// snapshot (pods, then captured proxies): used when unique, with a note saying where.
fn elsewhere<'a>(snapshot: &'a Snapshot, name: &str, asked_ns: &str) -> Result<Option<Examined<'a>>> {
    let mut namespaces: BTreeSet<&str> = snapshot.objects.pods.iter().filter(|p| p.meta.name == name).map(|p| p.meta.namespace.as_str()).collect();
    namespaces.extend(snapshot.proxies.iter().filter(|p| p.pod == name).map(|p| p.namespace.as_str()));
    let ns = match namespaces.len() {
        0 => return Ok(None),
        1 => namespaces.pop_first().unwrap_or_default(),
        _ => {
            let list: Vec<&str> = namespaces.into_iter().collect();
            return Err(Error::new(format!("--from {name} is not in namespace {asked_ns} and names pods in several namespaces: {}", list.join(", ")))
                .help(format!("name one: --from {name}.NAMESPACE or -n NAMESPACE, e.g. --from {name}.{}", list[0])));
        }
    };
    let capture = snapshot.proxies.iter().find(|p| p.namespace == ns && p.pod == name);
    let caller = match (snapshot.objects.pod(ns, name), capture) {
        (Some(pod), _) => Caller::from_pod(pod),
        (None, Some(cap)) => from_capture(cap),
        (None, None) => return Ok(None),
    };
    let note = format!("--from {name}: no such pod in namespace {asked_ns}; found it in namespace {ns}");
    Ok(Some(Examined { caller, capture, note: Some(note), alike: Vec::new() }))
}

/// The callers `--from` names in namespace `ns`: a pod (else its captured proxy, else a pod of
/// that name found in another namespace), a deployment's pods, or the pods with the labels.
pub fn named<'a>(snapshot: &'a Snapshot, from: &From, ns: &str) -> Result<Vec<Examined<'a>>> {
    let objects = &snapshot.objects;
    let capture_of = |ns: &str, pod: &str| snapshot.proxies.iter().find(|p| p.namespace == ns && p.pod == pod);
    let mut out: Vec<Examined> = Vec::new();
    let deployment_selector = |name: &str| {
        objects.deployments.iter().find(|d| d.meta.namespace == ns && d.meta.name == name).and_then(|d| d.spec.spec.as_ref()?.selector.match_labels.clone())
    };
    for pod in objects.pods.iter().filter(|p| p.meta.namespace == ns) {
        let hit = match from {
            From::Pod(name) => pod.meta.name == *name,
            From::Labels(l) => labels_match(l, &pod.meta.labels),
            From::Deployment(name) => match deployment_selector(name) {
                Some(sel) => labels_match(&sel, &pod.meta.labels),
                None => pod.meta.owners.iter().any(|o| o.strip_prefix("ReplicaSet/").is_some_and(|rs| rs.rsplit_once('-').is_some_and(|(d, _)| d == name))),
            },
        };
        if hit {
            out.push(Examined { caller: Caller::from_pod(pod), capture: capture_of(&pod.meta.namespace, &pod.meta.name), note: None, alike: Vec::new() });
        }
    }
    if let (From::Pod(name), true) = (from, out.is_empty())
        && let Some(cap) = capture_of(ns, name)
    {
        out.push(Examined { caller: from_capture(cap), capture: Some(cap), note: None, alike: Vec::new() });
    }
    if let (From::Pod(name), true) = (from, out.is_empty()) {
        out.extend(elsewhere(snapshot, name, ns)?);
    }
    if out.is_empty() {
        let pods: Vec<&str> = objects.pods.iter().filter(|p| p.meta.namespace == ns).map(|p| p.meta.name.as_str()).take(5).collect();
        let known = if pods.is_empty() { format!("no pod of namespace {ns} was read") } else { format!("pods there include {}", pods.join(", ")) };
        return Err(Error::new(format!("--from {from} matched no pod in namespace {ns}")).help(format!(
            "{known}; pass a pod name (POD.NAMESPACE or NAMESPACE/POD), deploy/NAME[.NAMESPACE] or KEY=VALUE labels, and -n for the caller's namespace"
        )));
    }
    Ok(out)
}

/// Picks the callers to examine: `--from`, else every captured proxy that is not a backend of
/// the service, else every workload that could call it (one per class the model groups alike,
/// naming the others), else a stand-in sidecar.
pub fn callers<'a>(snapshot: &'a Snapshot, model: &Model<'_>, target: &Target, question: &Question) -> Result<Vec<Examined<'a>>> {
    if let Some(from) = &question.from {
        return named(snapshot, from, &question.from_namespace);
    }
    let objects = &snapshot.objects;
    let backends: HashSet<(&str, &str)> = model.backends(target).into_iter().map(|p| (p.meta.namespace.as_str(), p.meta.name.as_str())).collect();
    let is_backend = |ns: &str, pod: &str| backends.contains(&(ns, pod));
    let mut out: Vec<Examined> = Vec::new();
    // A ztunnel is not a caller: it carries ambient callers' connections (read on its own).
    let ztunnel = |cap: &ProxyCapture| crate::actual::ztunnel::is_ztunnel(cap, objects.pod(&cap.namespace, &cap.pod).map(|p| &p.meta));
    for cap in snapshot.proxies.iter().filter(|cap| !is_backend(&cap.namespace, &cap.pod) && !ztunnel(cap)) {
        let caller = objects.pod(&cap.namespace, &cap.pod).map(Caller::from_pod).unwrap_or_else(|| from_capture(cap));
        out.push(Examined { caller, capture: Some(cap), note: None, alike: Vec::new() });
    }
    // Workloads that could call the service (those of its namespace and of the namespaces whose
    // mesh VirtualServices route to it): all of them when no proxy was captured, else the ones
    // without a sidecar (they have no Envoy to capture, and are a finding of their own).
    let captured_any = !out.is_empty();
    let captured: HashSet<(&str, &str)> = snapshot.proxies.iter().map(|c| (c.namespace.as_str(), c.pod.as_str())).collect();
    let interested: BTreeSet<&str> = model.mesh_routing_to(&target.fqdn).map(|(vs, _)| vs.meta.namespace.as_str()).chain([target.namespace.as_str()]).collect();
    for class in interested.into_iter().flat_map(|ns| model.caller_classes(ns)) {
        let has_sidecar = !matches!(class.caller.sidecar, SidecarState::Missing(_));
        if class.caller.kind == CallerKind::Gateway || (captured_any && has_sidecar) {
            continue;
        }
        let mut members = class.members.iter().filter(|(pod, _)| {
            let (ns, name) = (pod.meta.namespace.as_str(), pod.meta.name.as_str());
            !is_backend(ns, name) && !captured.contains(&(ns, name))
        });
        let Some((first, _)) = members.next() else { continue };
        let mut caller = if std::ptr::eq(*first, class.members[0].0) { class.caller.clone() } else { Caller::from_pod(first) };
        caller.possible = captured_any;
        out.push(Examined { caller, capture: None, note: None, alike: members.map(|(_, name)| name.clone()).collect() });
    }
    if out.is_empty() {
        out.push(Examined { caller: Caller::hypothetical(&target.namespace), capture: None, note: None, alike: Vec::new() });
    }
    Ok(out)
}

/// A caller known only from its captured Envoy (node metadata fills in labels and namespace).
fn from_capture(cap: &ProxyCapture) -> Caller {
    let mut caller = Caller::hypothetical(&cap.namespace);
    caller.name = cap.pod.clone();
    caller.hypothetical = false;
    caller.sidecar = SidecarState::FromProxyOnly;
    caller
}

/// Fills in what the proxy itself says: Istio version, labels and kind when no pod was captured.
pub fn enrich(caller: &mut Caller, node: Option<&crate::envoy::config_dump::Node>) {
    let Some(node) = node else { return };
    caller.istio_version = node.istio_version.as_deref().and_then(parse_istio_version);
    if caller.labels.is_empty() {
        caller.labels = node.labels.clone();
    }
    match node.kind {
        crate::envoy::ProxyKind::Router => caller.kind = CallerKind::Gateway,
        crate::envoy::ProxyKind::Waypoint => caller.kind = CallerKind::Waypoint,
        _ => {}
    }
    if let Some(ns) = node.namespace.as_ref().filter(|_| caller.sidecar == SidecarState::FromProxyOnly) {
        caller.namespace = ns.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_istioctl_and_kubectl_forms() {
        let pod = |n: &str, ns: Option<&str>| (From::Pod(n.into()), ns.map(String::from));
        assert_eq!(From::parse("productpage-1").unwrap(), pod("productpage-1", None));
        assert_eq!(From::parse("productpage-1.frontend").unwrap(), pod("productpage-1", Some("frontend")));
        assert_eq!(From::parse("frontend/productpage-1").unwrap(), pod("productpage-1", Some("frontend")));
        assert_eq!(From::parse("pod/productpage-1.frontend").unwrap(), pod("productpage-1", Some("frontend")));
        assert_eq!(From::parse("deploy/productpage.frontend").unwrap(), (From::Deployment("productpage".into()), Some("frontend".into())));
        assert_eq!(From::parse("deploy/productpage").unwrap(), (From::Deployment("productpage".into()), None));
        assert!(matches!(From::parse("app=productpage,version=v1").unwrap(), (From::Labels(l), None) if l.len() == 2));
        assert!(From::parse("Bad_NS/pod").is_err());
        assert!(From::parse("").is_err());
    }
}
