//! Live mode: reads a cluster and the chosen proxies into the same snapshot the offline analysis
//! reads, so a live run and `--snapshot` on a capture of it give the same answer.
//!
//! Strictly read-only: API requests are `get`/`list`, proxies are reached through
//! `pods/portforward` and asked only `GET`s. Every wait is bounded by `--request-timeout` and
//! the overall `--timeout`; whatever cannot be read becomes a gap, not a failed run.

pub mod admin;
pub mod credentials;
mod head_start;
pub mod kube;
pub mod portforward;
pub mod proxies;

use self::admin::{Reader, Role};
use self::head_start::HeadStart;
use self::kube::{ApiFailure, Ask, Cluster, Item, Kind, Listed, Scope, read_list, read_lists};
use self::portforward::{AdminConnection, AdminFailure};
use self::proxies::Choice;
use crate::diff::{self, Difference};
use crate::error::{Error, Result};
use crate::gather::files::MAX_FILE_BYTES;
use crate::intent::{
    self,
    target::{Caller, Target},
};
use crate::question::{From, Question};
use crate::snapshot::{Document, FORMAT_VERSION, Gap, LAST_APPLIED, Manifest, NOT_SERVED, Objects, ProxyCapture, Snapshot};
use ::kube::Api;
use ::kube::core::params::ListParams;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Proxies read at the same time. Each reading is a port-forward and about ten admin requests
/// in turn, so its time is mostly waiting on the API server, the kubelet and that proxy's Envoy
/// (on another node); reading 20 callers four at a time took five such turns. Twenty open
/// port-forwards are little load for an API server, and this bounds how many are open at once.
const CONCURRENT_PROXIES: usize = 20;

/// Where istiod keeps the `istio` ConfigMap (meshConfig) in a default installation.
const ISTIO_NAMESPACE: &str = "istio-system";

/// The Gateway API's group.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// Istio, Gateway API and Ingress kinds to read: group, versions in order of preference, resource, kind.
const ISTIO_KINDS: &[(&str, &[&str], &str, &str)] = &[
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "virtualservices", "VirtualService"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "destinationrules", "DestinationRule"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "gateways", "Gateway"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "serviceentries", "ServiceEntry"),
    ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"], "sidecars", "Sidecar"),
    ("security.istio.io", &["v1", "v1beta1"], "peerauthentications", "PeerAuthentication"),
    ("security.istio.io", &["v1", "v1beta1"], "requestauthentications", "RequestAuthentication"),
    ("gateway.networking.k8s.io", &["v1", "v1beta1"], "gateways", "Gateway"),
    ("gateway.networking.k8s.io", &["v1", "v1beta1"], "httproutes", "HTTPRoute"),
    ("gateway.networking.k8s.io", &["v1", "v1alpha2"], "grpcroutes", "GRPCRoute"),
    ("gateway.networking.k8s.io", &["v1alpha2"], "tcproutes", "TCPRoute"),
    ("gateway.networking.k8s.io", &["v1", "v1alpha3", "v1alpha2"], "tlsroutes", "TLSRoute"),
    ("gateway.networking.k8s.io", &["v1", "v1beta1"], "referencegrants", "ReferenceGrant"),
    // istiod serves Kubernetes Ingresses too (as Gateways and VirtualServices of its own).
    ("networking.k8s.io", &["v1"], "ingresses", "Ingress"),
    ("networking.k8s.io", &["v1"], "ingressclasses", "IngressClass"),
];

/// The overall `--timeout`: every wait is capped by what is left of it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// A deadline `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline { at: Instant::now() + total, total }
    }

    /// `limit`, or less if the deadline is nearer.
    pub fn cap(&self, limit: Duration) -> Duration {
        limit.min(self.at.saturating_duration_since(Instant::now()))
    }
}

/// Live-mode settings from the command line.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Most proxies to read.
    pub max_proxies: usize,
    /// The overall `--timeout`, started before the client was built.
    pub deadline: Deadline,
    /// Read the destination's proxies too (their inbound side); a trace needs only the caller's.
    pub destinations: bool,
}

/// What a live gathering produced, in the form `capture` writes: the objects as the API server
/// returned them (one list per resource), each proxy's admin output, and the gaps.
#[derive(Debug)]
pub struct Capture {
    /// Objects per file name under `objects/` (`pods.json`, `virtualservices.networking.istio.io.json`),
    /// as JSON text: the analysis reads them decoded, from `decoded`.
    pub lists: BTreeMap<String, Vec<Box<RawValue>>>,
    /// Admin output per proxy.
    pub proxies: Vec<ProxyCapture>,
    /// What could not be read, and why.
    pub gaps: Vec<Gap>,
    /// What was read: object counts, and per proxy why it was chosen and what reading it cost.
    pub collected: Vec<String>,
    /// Kube context used.
    pub context: Option<String>,
    /// (file, namespace, name) of every object added, to drop repeats.
    seen: BTreeSet<(String, String, String)>,
    /// The objects of `lists`, decoded once as they are added and looked at in place: a question
    /// looks at them several times while it reads, and a copy per look was its largest cost.
    snapshot: Snapshot,
    /// Whether objects were added since the snapshot was last settled.
    unsettled: bool,
    /// The first decoding error of each file, by file name.
    errors: BTreeMap<String, Error>,
    /// Objects read twice, found by settling.
    repeats: Vec<Gap>,
}

impl Capture {
    /// An empty capture from `cluster`.
    fn new(cluster: &Cluster) -> Capture {
        Capture {
            lists: BTreeMap::new(),
            proxies: Vec::new(),
            gaps: Vec::new(),
            collected: Vec::new(),
            context: cluster.context.clone(),
            seen: BTreeSet::new(),
            snapshot: Snapshot::default(),
            unsettled: false,
            errors: BTreeMap::new(),
            repeats: Vec::new(),
        }
    }

    /// Readies the objects added so far for a look, as the reader does once it has read every
    /// file; the first file (by name) whose objects could not be decoded is the error, as the
    /// reader would report it. The objects are then in `self.snapshot.objects`, in the order
    /// the reader gives the written files: each kind comes from one file, in the order added,
    /// and the kinds two files share are put in a total order by [`Objects::sort`].
    fn settle(&mut self) -> Result<()> {
        if let Some(error) = self.errors.values().next() {
            return Err(error.clone());
        }
        if std::mem::take(&mut self.unsettled) {
            let repeats = self.snapshot.objects.sort();
            self.repeats.extend(repeats);
            self.snapshot.objects.as_of = Some(k8s_openapi::jiff::Timestamp::now().as_second());
        }
        Ok(())
    }

    /// The snapshot the analysis reads, built as the reader builds it from the written files
    /// (same documents, same order), so live and offline analyses agree.
    pub fn into_snapshot(mut self) -> Result<Snapshot> {
        self.settle()?;
        let mut snapshot = self.snapshot;
        snapshot.gaps = self.gaps;
        snapshot.gaps.extend(self.repeats);
        self.proxies.sort_by(|a, b| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)));
        snapshot.proxies = self.proxies;
        Ok(snapshot)
    }

    /// `mesh-why.json` for this capture; `target` names the question.
    pub fn manifest(&self, target: String) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            // The clock is read here, at the edge; the analysis never looks at it.
            captured_at: k8s_openapi::jiff::Timestamp::now().to_string(),
            target,
            context: self.context.clone(),
            collected: self.collected.clone(),
            gaps: self.gaps.clone(),
        }
    }

    /// Adds what `lists` read, in the order they were asked for, as if read one after another.
    fn take(&mut self, lists: Vec<Listed>) {
        for listed in lists {
            self.gaps.extend(listed.gaps);
            if let Some(kind) = &listed.kind {
                self.add(kind, listed.items);
            }
        }
    }

    /// Records how many objects of each file were read.
    fn count_objects(&mut self) {
        for (file, items) in &self.lists {
            self.collected.push(format!("objects/{file}: {} objects", items.len()));
        }
    }

    fn add(&mut self, kind: &Kind, items: Vec<Item>) {
        let file = format!("{}.json", kind.resource());
        let list = self.lists.entry(file.clone()).or_default();
        for item in items {
            let (namespace, name) = Document::Item(item.get()).placement();
            // Pods can be listed twice (a caller namespace and a gateway selector).
            if self.seen.insert((file.clone(), namespace, name)) {
                let Some(raw) = scrubbed(item) else { continue };
                // As the reader decodes the written file: same documents, same origins.
                if !self.errors.contains_key(&file)
                    && let Err(e) = self.snapshot.objects.add(Document::Item(raw.get()), &format!("API server, {file} items[{}]", list.len()))
                {
                    self.errors.insert(file.clone(), e);
                }
                self.unsettled = true;
                list.push(raw);
            }
        }
    }
}

/// `item` with [`scrub`] applied; only an item that may hold what it removes is decoded for it.
/// A JSON key can be spelled with escapes (`\u0065nv`, `\/`), so text with those is decoded too.
fn scrubbed(item: Item) -> Option<Item> {
    let text = item.get();
    if ![LAST_APPLIED, "\"env\"", "\\u", "\\/"].iter().any(|needle| text.contains(needle)) {
        return Some(item);
    }
    let mut value: Value = serde_json::from_str(text).ok()?;
    scrub(&mut value);
    // Serializing a `Value` cannot fail: its keys are strings.
    serde_json::value::to_raw_value(&value).ok()
}

/// The pods `selector` picks (a Gateway's, or ztunnel's): cluster-wide, since gateway pods may
/// run in any namespace, else in istio-system and `gateway_ns`.
fn selected_pods(gateway_ns: &str, selector: &BTreeMap<String, String>) -> Ask {
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let fallback: Vec<String> = BTreeSet::from([ISTIO_NAMESPACE.to_string(), gateway_ns.to_string()]).into_iter().collect();
    Ask { kind: pods(), scope: Scope::Wide(fallback), params: ListParams::default().labels(&labels.join(",")) }
}

fn pods() -> Kind {
    Kind::core("pods", "Pod", true)
}

/// Deployments, which `--from deploy/NAME` names.
fn deployments() -> Kind {
    Kind::grouped("apps", "v1", "deployments", "Deployment")
}

fn endpoint_slices() -> Kind {
    Kind::grouped("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
}

/// Removes what mesh-why never reads but a shared capture could leak: container environment
/// values (often credentials) and `last-applied-configuration` (a full copy of the object).
fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(annotations)) = map.get_mut("metadata").and_then(|m| m.get_mut("annotations")) {
                annotations.remove(LAST_APPLIED);
            }
            if let Some(Value::Array(env)) = map.get_mut("env") {
                for var in env.iter_mut().filter_map(Value::as_object_mut) {
                    if var.contains_key("value") {
                        var.insert("value".into(), "(redacted by mesh-why)".into());
                    }
                }
            }
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Progress on stderr, drawn only when stderr is a terminal.
fn progress() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Reads what `question` needs from the cluster and its proxies.
pub async fn gather(cluster: &Cluster, question: &Question, options: &LiveOptions) -> Result<Capture> {
    let deadline = options.deadline;
    let bar = progress();
    let known: Vec<String> = BTreeSet::from([question.namespace.clone(), question.from_namespace.clone(), ISTIO_NAMESPACE.to_string()]).into_iter().collect();
    bar.set_message(format!("reading Istio and Kubernetes objects ({})", known.join(", ")));
    cluster.probe(&deadline).await?;
    let lists = async {
        let mut capture = read_configuration(cluster, &known, &deadline).await;
        capture.settle()?;
        let target = Target::resolve(&capture.snapshot.objects, &question.service, &question.namespace, question.port).map_err(|e| {
            // "Not found" would mislead when Services could not be read at all.
            match capture.gaps.iter().find(|g| g.source == services().resource()) {
                Some(gap) => Error::new(format!("cannot look up service {}.{}: services {}", question.service, question.namespace, gap.reason))
                    .help("mesh-why needs to list Services; have the RBAC rule above granted, or analyze saved state with --snapshot DIR"),
                None => e,
            }
        })?;
        let listed = read_pods(cluster, question, &target, &capture.snapshot, &deadline).await;
        capture.take(listed);
        capture.settle()?;
        let credentials = read_gateway_credentials(cluster, &capture.snapshot.objects, &deadline).await;
        capture.take(vec![credentials]);
        capture.settle()?;
        let choices = proxies::choose(&capture.snapshot, &target, question, options)?;
        Ok((capture, target, choices))
    };
    // A failed list ends the question at once, without waiting for the head start.
    let head_start = async { Ok(HeadStart::begin(cluster, question, options, &deadline).await) };
    let (head_start, (mut capture, target, choices)) = futures::future::try_join(head_start, lists).await?;
    capture.gaps.extend(choices.gaps);
    capture.count_objects();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {pos}/{len} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.set_message(format!("reading the Envoy admin of {} proxies", choices.chosen.len()));
    bar.set_length(choices.chosen.len() as u64);
    let reads = read_proxies(cluster, &capture.snapshot, &target, choices.chosen, head_start, &deadline, &bar).await;
    for (choice, outcome) in reads {
        match outcome {
            Ok(read) => {
                let line = format!(
                    "proxy {}/{} ({}, {}): {} admin requests, {} bytes in {:.2}s",
                    choice.namespace,
                    choice.pod,
                    choice.role.word(),
                    choice.why,
                    read.requests,
                    read.bytes,
                    read.elapsed.as_secs_f64()
                );
                // On a terminal, say which proxies were read and why (the report lists callers only).
                bar.println(format!("read {line}"));
                capture.collected.push(line);
                capture.gaps.extend(read.gaps);
                capture.proxies.push(read.capture);
            }
            Err(gap) => capture.gaps.push(gap),
        }
    }
    bar.finish_and_clear();
    Ok(capture)
}

/// Reads what `--all` checks in `namespace` (every namespace when `None`): the configuration,
/// the pods and EndpointSlices. No proxy is read: a mesh-wide run compares configuration
/// across services, and reading every sidecar of a large mesh would neither be fast nor small.
pub async fn gather_mesh(cluster: &Cluster, namespace: Option<&str>, options: &LiveOptions) -> Result<Capture> {
    let deadline = options.deadline;
    let bar = progress();
    bar.set_message(format!("reading Istio and Kubernetes objects ({})", namespace.unwrap_or("all namespaces")));
    let known: Vec<String> = match namespace {
        // With -A nothing narrower than the whole cluster would do, so a forbidden cluster-wide
        // list is a gap rather than a walk through every namespace.
        None => Vec::new(),
        Some(ns) => BTreeSet::from([ns.to_string(), ISTIO_NAMESPACE.to_string()]).into_iter().collect(),
    };
    cluster.probe(&deadline).await?;
    let listed: Vec<Ask> = match namespace {
        None => vec![Ask::wide(pods(), &[]), Ask::wide(endpoint_slices(), &[])],
        Some(ns) => {
            let mut asks: Vec<Ask> = known.iter().map(|place| Ask::within(pods(), place, ListParams::default())).collect();
            asks.push(Ask::within(endpoint_slices(), ns, ListParams::default()));
            asks
        }
    };
    // Pods and EndpointSlices do not depend on the configuration: they are read beside it.
    let (mut capture, listed) = tokio::join!(read_configuration(cluster, &known, &deadline), read_lists(cluster, listed, &deadline));
    let mut selected = Vec::new();
    if let Some(ns) = namespace {
        // Gateways often share a selector: one list per distinct selector. Taken before any pod
        // is added, so the snapshot holds only the configuration.
        capture.settle()?;
        let gateways = capture.snapshot.objects.gateways.iter();
        let selectors: BTreeSet<&BTreeMap<String, String>> =
            gateways.filter(|g| g.meta.namespace == ns && !g.spec.selector.is_empty()).map(|g| &g.spec.selector).collect();
        selected = read_lists(cluster, selectors.iter().map(|s| selected_pods(ns, s)).collect(), &deadline).await;
    }
    capture.take(listed);
    capture.take(selected);
    capture.settle()?;
    let credentials = read_gateway_credentials(cluster, &capture.snapshot.objects, &deadline).await;
    capture.take(vec![credentials]);
    capture.count_objects();
    capture.gaps.push(Gap {
        source: crate::diagnose::NO_PROXIES.into(),
        reason: format!(
            "not read: --all checks configuration across services, so the data-plane checks ({}) were skipped; to compare one service with what its proxies hold, ask about it (kubectl mesh-why SERVICE -n NAMESPACE)",
            crate::diagnose::DATA_PLANE_CHECKS
        ),
    });
    bar.finish_and_clear();
    Ok(capture)
}

/// Gets, by name, the Secrets the running gateways among `objects` take TLS certificates from,
/// and keeps only their reduction (data key names, certificate validity dates): the Secret's
/// data is dropped here and never reaches the capture or the output. No other Secret is
/// requested.
async fn read_gateway_credentials(cluster: &Cluster, objects: &Objects, deadline: &Deadline) -> Listed {
    let kind = Kind::core("secrets", "Secret", true);
    let references: Vec<(String, String)> = crate::istio::credential_references(objects).into_iter().collect();
    let answers = futures::future::join_all(references.iter().map(|(ns, name)| cluster.get_object(&kind, ns, name, deadline))).await;
    let mut listed = Listed { kind: Some(kind.clone()), items: Vec::new(), gaps: Vec::new() };
    for ((ns, name), answer) in references.iter().zip(answers) {
        match answer {
            Ok(value) => {
                if let Ok(secret) = serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(value) {
                    listed.items.extend(serde_json::value::to_raw_value(&crate::snapshot::Credential::reduced_secret(&secret)).ok());
                }
            }
            // Absent: the missing-credential check says so.
            Err(ApiFailure::NotFound(_)) => {}
            Err(failure) => {
                let why = match &failure {
                    ApiFailure::Forbidden(message) => {
                        format!("not readable: {message}. Grant it with a Role in namespace {ns} rule `{}` (resourceNames: [{name}])", kind.rbac_rule("get"))
                    }
                    other => format!("could not be read: {}", other.describe()),
                };
                listed.gaps.push(Gap { source: kind.resource(), reason: format!("Secret {ns}/{name} {why}") });
            }
        }
    }
    listed
}

/// A capture of the configuration: Namespaces, Services, the Istio kinds and meshConfig,
/// cluster-wide, or in `known` namespaces where a cluster-wide list is forbidden. All of it is
/// read at once, and added in that order.
async fn read_configuration(cluster: &Cluster, known: &[String], deadline: &Deadline) -> Capture {
    let mut capture = Capture::new(cluster);
    let core = vec![Ask::wide(Kind::core("namespaces", "Namespace", false), &[]), Ask::wide(services(), known)];
    let (core, istio, mesh) =
        tokio::join!(read_lists(cluster, core, deadline), read_istio_kinds(cluster, known, deadline), read_mesh_config(cluster, deadline));
    capture.take(core);
    capture.take(istio);
    capture.take(vec![mesh]);
    capture
}

/// Services: the target's lookup needs them, so their gap is named in its error.
fn services() -> Kind {
    Kind::core("services", "Service", true)
}

/// Lists the Istio kinds at the first served version of each; a kind whose group is not served
/// (Istio not installed) is a gap.
async fn read_istio_kinds(cluster: &Cluster, known: &[String], deadline: &Deadline) -> Vec<Listed> {
    // Discovery first, about every group version at once; several kinds share one.
    let asked: BTreeSet<(&str, &str)> = ISTIO_KINDS.iter().flat_map(|(group, versions, ..)| versions.iter().map(move |v| (*group, *v))).collect();
    let answers = futures::future::join_all(asked.iter().map(|(group, version)| cluster.served_resources(group, version, deadline))).await;
    let served: BTreeMap<(&str, &str), std::result::Result<Vec<String>, String>> =
        asked.iter().copied().zip(answers.into_iter().map(|a| a.map_err(|f| f.describe()))).collect();
    let plans = ISTIO_KINDS.iter().map(|(group, versions, plural, kind_name)| {
        let mut failed = None;
        for version in *versions {
            match &served[&(*group, *version)] {
                Ok(names) if names.iter().any(|n| n == plural) => return Ok(Ask::wide(Kind::grouped(group, version, plural, kind_name), known)),
                Ok(_) => {}
                Err(reason) => failed = Some(reason.clone()),
            }
        }
        let source = format!("{plural}.{group}");
        Err(match failed {
            Some(reason) => Gap { source, reason: format!("API discovery failed: {reason}") },
            None => {
                let hint = match *group {
                    GATEWAY_API_GROUP => "are the Gateway API CRDs (this kind's channel) installed?",
                    "networking.k8s.io" => "Kubernetes serves it from 1.19 on",
                    _ => "are Istio's CRDs installed?",
                };
                Gap { source, reason: format!("{NOT_SERVED} in {}: {hint}", versions.join(", ")) }
            }
        })
    });
    let lists = plans.map(|plan| async move {
        match plan {
            Ok(ask) => read_list(cluster, ask, deadline).await,
            Err(gap) => Listed::gap(gap),
        }
    });
    futures::future::join_all(lists).await
}

/// Reads meshConfig from the `istio` ConfigMap, keeping only its `mesh` key.
async fn read_mesh_config(cluster: &Cluster, deadline: &Deadline) -> Listed {
    let kind = Kind::core("configmaps", "ConfigMap", true);
    let source = format!("configmap {ISTIO_NAMESPACE}/istio (meshConfig)");
    let gap = |reason: String| Listed::gap(Gap { source: source.clone(), reason });
    match cluster.get_object(&kind, ISTIO_NAMESPACE, "istio", deadline).await {
        Ok(mut object) => {
            // Other keys (meshNetworks, values) are not used; leave them out of the snapshot.
            if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
                data.retain(|k, _| k == "mesh");
            }
            Listed::one(kind, &object)
        }
        Err(ApiFailure::NotFound(_)) => gap("not found: Istio's default mesh settings were assumed".into()),
        Err(ApiFailure::Forbidden(message)) => gap(format!(
            "not readable ({message}); Istio's default mesh settings were assumed. Grant it with a Role in {ISTIO_NAMESPACE} rule `apiGroups: [\"\"], resources: [\"configmaps\"], resourceNames: [\"istio\"], verbs: [\"get\"]`"
        )),
        Err(other) => gap(format!("could not be read ({}); Istio's default mesh settings were assumed", other.describe())),
    }
}

/// Lists pods where callers, gateways and backends can be, the service's EndpointSlices, and
/// the Deployment `--from deploy/NAME` names.
async fn read_pods(cluster: &Cluster, question: &Question, target: &Target, snapshot: &Snapshot, deadline: &Deadline) -> Vec<Listed> {
    let mut asks = Vec::new();
    for ns in proxies::caller_namespaces(snapshot, target, question) {
        // The service's namespace is listed whole (its pods are backends, callers, and what its
        // Sidecars select); another namespace only for the callers `--from` names there.
        let named = (ns != target.namespace && ns == question.from_namespace).then_some(question.from.as_ref()).flatten();
        let params = match named {
            Some(From::Pod(name)) => ListParams::default().fields(&format!("metadata.name={name}")),
            Some(From::Labels(labels)) => ListParams::default().labels(&labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")),
            _ => ListParams::default(),
        };
        asks.push(Ask::within(pods(), &ns, params));
    }
    for (gateway, selector) in proxies::gateway_selectors(snapshot, target) {
        asks.push(selected_pods(gateway.split('/').next().unwrap_or(ISTIO_NAMESPACE), &selector));
    }
    // Ambient callers' node proxies, to read the service's waypoint binding from.
    if snapshot.objects.namespaces.iter().any(|ns| crate::istio::ambient::namespace_is_ambient(&snapshot.objects, &ns.meta.name)) {
        asks.push(selected_pods(ISTIO_NAMESPACE, &BTreeMap::from([("app".to_string(), crate::istio::ambient::ZTUNNEL_APP.to_string())])));
    }
    let params = ListParams::default().labels(&format!("{}={}", crate::snapshot::SERVICE_NAME_LABEL, target.name));
    asks.push(Ask::within(endpoint_slices(), &target.namespace, params));
    if let Some(From::Deployment(name)) = &question.from {
        asks.push(Ask::within(deployments(), &question.from_namespace, ListParams::default().fields(&format!("metadata.name={name}"))));
    }
    read_lists(cluster, asks, deadline).await
}

/// Reads the chosen proxies, a few at a time, each bounded by the overall deadline; a reading
/// begun ahead of the choice is finished instead of started again.
async fn read_proxies(
    cluster: &Cluster,
    snapshot: &Snapshot,
    target: &Target,
    chosen: Vec<Choice>,
    mut head_start: Vec<HeadStart>,
    deadline: &Deadline,
    bar: &ProgressBar,
) -> Vec<(Choice, std::result::Result<admin::ProxyRead, Gap>)> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PROXIES));
    let mut tasks = tokio::task::JoinSet::new();
    // Built once for all callers: on a big mesh building it is most of deriving one.
    let model = crate::model::Model::build(&snapshot.objects);
    for (index, choice) in chosen.iter().enumerate() {
        // The clusters the intent expects this caller to hold, so the capture includes them
        // even when they belong to other hosts.
        let intended = match snapshot.objects.pod(&choice.namespace, &choice.pod) {
            Some(pod) if choice.role != Role::Destination => Some(intent::derive(&model, &Caller::from_pod(pod), target).view),
            _ => None,
        };
        let expected: BTreeSet<String> = intended.iter().flat_map(|v| v.clusters.keys().cloned()).collect();
        let mut begun = HeadStart::take_for(&mut head_start, choice, target);
        // A reading begun before the objects were listed may predate a change they show (a fix
        // applied just before the question, not yet pushed): where its configuration differs
        // from them, the proxy is read again, after them, as without the head start. Endpoints
        // change all the time, and either order races with them.
        if let (Some(Ok(reader)), Some(intended)) = (&mut begun, &intended) {
            let agrees = reader.so_far(&expected).view.is_some_and(|v| diff::compare(intended, &v).differences.iter().all(Difference::is_endpoints));
            if !agrees {
                reader.read_again();
            }
        }
        let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &choice.namespace);
        let (choice, target, deadline, permits) = (choice.clone(), target.clone(), *deadline, permits.clone());
        let timeout = cluster.request_timeout;
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let reading = async {
                let reader = match begun {
                    Some(begun) => begun?,
                    None => start_reading(&pods, &choice, &target, timeout, &deadline).await?,
                };
                let source = proxy_source(&choice);
                reader
                    .finish(&expected)
                    .await
                    .map_err(|(path, failure)| Gap { source, reason: format!("not read: {}", describe(&failure, &format!("GET {path}"))) })
            };
            let outcome = tokio::time::timeout_at(deadline.at, reading).await.unwrap_or_else(|_| Err(out_of_time(&choice, &deadline)));
            (index, outcome)
        });
    }
    drop(model);
    let mut results: Vec<Option<std::result::Result<admin::ProxyRead, Gap>>> = chosen.iter().map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        bar.inc(1);
        if let Ok((index, outcome)) = joined {
            results[index] = Some(outcome);
        }
    }
    chosen
        .into_iter()
        .zip(results)
        .map(|(choice, outcome)| {
            let outcome = outcome.unwrap_or_else(|| Err(Gap { source: proxy_source(&choice), reason: "not read: the reading task failed".into() }));
            (choice, outcome)
        })
        .collect()
}

/// Opens the port-forward to `choice` and sends the requests that need only `target`
/// ([`Reader::start`]), within the overall deadline; a failure is a gap that says what to check.
async fn start_reading(pods: &Api<Pod>, choice: &Choice, target: &Target, timeout: Duration, deadline: &Deadline) -> std::result::Result<Reader, Gap> {
    let start = async {
        let conn = AdminConnection::open(pods, &choice.pod, MAX_FILE_BYTES as usize, deadline.cap(timeout)).await.map_err(|failure| Gap {
            source: proxy_source(choice),
            reason: format!("not read: {}", describe(&failure, "opening the port-forward to 15000")),
        })?;
        Ok(Reader::new(conn, choice, target, timeout, deadline).start().await)
    };
    tokio::time::timeout_at(deadline.at, start).await.unwrap_or_else(|_| Err(out_of_time(choice, deadline)))
}

/// How a proxy's gaps name it.
fn proxy_source(choice: &Choice) -> String {
    format!("pod {}/{}", choice.namespace, choice.pod)
}

/// The gap of a proxy the overall `--timeout` left unread.
fn out_of_time(choice: &Choice, deadline: &Deadline) -> Gap {
    Gap {
        source: proxy_source(choice),
        reason: format!("not read: the overall --timeout ({}s) ran out first; raise it, or narrow the question with --from", deadline.total.as_secs()),
    }
}

/// Plain words for an admin failure during `what`.
fn describe(failure: &AdminFailure, what: &str) -> String {
    match failure {
        AdminFailure::Open(m) => m.clone(),
        AdminFailure::Port(m) => format!("the Envoy admin port 15000 is not reachable in the pod ({m}); is the istio-proxy container running?"),
        AdminFailure::Timeout(d) => {
            format!("Envoy admin gave no answer to {what} within {:.1}s (--request-timeout); the proxy may be stuck or overloaded", d.as_secs_f64())
        }
        AdminFailure::Transport(m) => format!("{what} failed: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{scrub, scrubbed};
    use serde_json::json;
    use serde_json::value::RawValue;

    #[test]
    fn environment_values_and_last_applied_configuration_are_removed() {
        let mut pod = json!({
            "metadata": {"name": "p", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "keep": "x"}},
            "spec": {"containers": [{"name": "app", "env": [{"name": "TOKEN", "value": "s3cret"}, {"name": "FROM", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}
        });
        scrub(&mut pod);
        assert_eq!(pod["metadata"]["annotations"], json!({"keep": "x"}));
        assert_eq!(pod["spec"]["containers"][0]["env"][0]["value"], "(redacted by mesh-why)");
        assert!(pod["spec"]["containers"][0]["env"][1].get("value").is_none());
        assert!(!pod.to_string().contains("s3cret"));
    }

    #[test]
    fn items_are_decoded_for_scrubbing_only_when_they_hold_what_it_removes() {
        let plain = r#"{"kind": "Service",  "metadata": {"name": "s"}}"#;
        assert_eq!(scrubbed(RawValue::from_string(plain.into()).unwrap()).unwrap().get(), plain);
        let secret = r#"{"kind": "Pod", "spec": {"containers": [{"env": [{"name": "T", "value": "s3cret"}]}]}}"#;
        let pod = scrubbed(RawValue::from_string(secret.into()).unwrap()).unwrap();
        assert!(!pod.get().contains("s3cret"), "{}", pod.get());
        let applied = r#"{"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"token\": 1}"}}}"#;
        let escaped = r#"{"spec": {"containers": [{"\u0065nv": [{"name": "T", "value": "s3cret"}]}]}}"#;
        assert!(!scrubbed(RawValue::from_string(escaped.into()).unwrap()).unwrap().get().contains("s3cret"));
        assert_eq!(scrubbed(RawValue::from_string(applied.into()).unwrap()).unwrap().get(), r#"{"metadata":{"annotations":{}}}"#);
    }
}
