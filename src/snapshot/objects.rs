//! The cluster's objects as one typed, indexed store: Kubernetes core kinds and Istio kinds.
//!
//! Documents arrive as JSON values (YAML is converted by the reader) and are sorted by `kind`.
//! Kinds mesh-why does not use are counted and skipped. Of a Secret only its namespace and name
//! are kept (a Gateway's `credentialName` must exist), with its data key names and its
//! certificate's validity dates ([`Credential`]); its data, type and metadata are dropped at
//! once, so no secret material can reach the output.

use super::Gap;
use super::credential::Credential;
use super::service::{Service, ServiceObject};
use super::workloads::{Deployment, Pod};
use crate::error::{Error, Result};
use crate::istio::gateway_api::{ReferenceGrant, Route, RouteKind};
use crate::istio::gateway_api_decode::Decoded;
use crate::istio::{DestinationRule, Gateway, PackedLabels, PeerAuthentication, RequestAuthentication, ServiceEntry, Sidecar, VirtualService};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

/// The identity and bookkeeping fields of any object.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `default` when the document has none, as `kubectl apply` would.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: PackedLabels,
    /// `metadata.annotations`, without `kubectl apply`'s copy of the object ([`LAST_APPLIED`]).
    pub annotations: PackedLabels,
    /// `metadata.creationTimestamp` (RFC 3339), used for istiod's oldest-first ordering.
    pub creation_timestamp: Option<String>,
    /// `kind/name` of each owner reference, plus field managers (who rewrites this object).
    pub owners: Vec<String>,
    /// Where the object was read from (file and document number).
    pub origin: Origin,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When the object last changed: the latest `managedFields[].time`, else its creation.
    pub last_changed: Option<String>,
    /// `metadata.resourceVersion`: tells which of two copies of an object is newer.
    pub resource_version: Option<String>,
}

impl Meta {
    /// The identity of a decoded object, moved out of its metadata `m`, which keeps only its
    /// deletion time (read of pods): a big mesh holds tens of thousands of objects, and a second
    /// copy of their metadata was a sizeable part of the memory.
    fn take(m: &mut ObjectMeta, origin: &Origin) -> Meta {
        let kept = ObjectMeta { deletion_timestamp: m.deletion_timestamp.take(), ..ObjectMeta::default() };
        let m = std::mem::replace(m, kept);
        let managed = m.managed_fields.unwrap_or_default();
        let mut owners: Vec<String> = m.owner_references.into_iter().flatten().map(|o| format!("{}/{}", o.kind, o.name)).collect();
        owners.extend(managed.iter().filter_map(|f| f.manager.as_ref()).map(|m| format!("manager:{m}")));
        let last_change = managed.iter().filter_map(|f| f.time.as_ref()).map(|t| t.0).max();
        Meta {
            name: m.name.unwrap_or_default(),
            namespace: m.namespace.unwrap_or_else(|| "default".to_string()),
            labels: m.labels.map(PackedLabels::from).unwrap_or_default(),
            annotations: m.annotations.iter().flatten().filter(|(k, _)| *k != LAST_APPLIED).collect(),
            creation_timestamp: m.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            owners,
            origin: origin.clone(),
            generation: m.generation,
            last_changed: last_change.or(m.creation_timestamp.map(|t| t.0)).map(|t| t.to_string()),
            resource_version: m.resource_version,
        }
    }

    /// Whether this copy of an object is newer than `other`: by resourceVersion when both are
    /// numbers (etcd's are), else by last change. Ties keep the copy read first.
    fn newer_than(&self, other: &Meta) -> bool {
        let version = |m: &Meta| m.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        match (version(self), version(other)) {
            (Some(a), Some(b)) => a > b,
            _ => self.last_changed > other.last_changed,
        }
    }
}

/// Where an object was read from: a file and document, and its place in a list there. The
/// document's name is shared by its objects: written out for each, it cost a hundred bytes and
/// more per object of a big mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    document: Arc<str>,
    item: Option<usize>,
}

impl Origin {
    /// Item `i` of the list this origin names.
    fn item(&self, i: usize) -> Origin {
        match self.item {
            None => Origin { document: self.document.clone(), item: Some(i) },
            // A list in a list.
            Some(_) => Origin { document: self.to_string().into(), item: Some(i) },
        }
    }
}

impl From<&str> for Origin {
    fn from(document: &str) -> Origin {
        Origin { document: document.into(), item: None }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            None => f.write_str(&self.document),
            Some(i) => write!(f, "{} items[{i}]", self.document),
        }
    }
}

/// An object: its metadata plus its typed body (`spec` for Istio kinds, the whole object for
/// Kubernetes kinds).
#[derive(Debug, Clone)]
pub struct Resource<T> {
    /// Identity.
    pub meta: Meta,
    /// Typed body, boxed: the lists of a big mesh's objects then grow and join at the size of
    /// their identities, not of their bodies (a Service's is a kilobyte).
    pub spec: Box<T>,
}

/// A reference to an object, used as the subject and evidence of findings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kind, as Kubernetes spells it.
    pub kind: String,
    /// Namespace (empty for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `kind` `namespace/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef { kind: kind.to_string(), namespace: namespace.to_string(), name: name.to_string() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() { write!(f, "{} {}", self.kind, self.name) } else { write!(f, "{} {}/{}", self.kind, self.namespace, self.name) }
    }
}

impl<T> Resource<T> {
    /// An object with identity `meta` and body `spec`.
    pub fn new(meta: Meta, spec: T) -> Resource<T> {
        Resource { meta, spec: Box::new(spec) }
    }

    /// A reference to this object as `kind`.
    pub fn reference(&self, kind: &str) -> ObjectRef {
        ObjectRef::new(kind, &self.meta.namespace, &self.meta.name)
    }
}

/// The mesh-wide settings mesh-why uses, from the `istio` ConfigMap's `mesh` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeshConfig {
    /// Namespace whose Sidecar/DestinationRule/PeerAuthentication apply mesh-wide.
    pub root_namespace: String,
    /// `ALLOW_ANY` or `REGISTRY_ONLY`.
    pub outbound_traffic_policy: Option<istio_outbound::Policy>,
    /// Default exportTo for Services.
    pub default_service_export_to: Vec<String>,
    /// Default exportTo for VirtualServices.
    pub default_virtual_service_export_to: Vec<String>,
    /// Default exportTo for DestinationRules.
    pub default_destination_rule_export_to: Vec<String>,
    /// Automatic mTLS towards sidecar endpoints.
    pub enable_auto_mtls: bool,
    /// `defaultHttpRetryPolicy`: the retries of routes whose VirtualService sets none.
    pub default_http_retry_policy: Option<serde_json::Value>,
    /// `ingressClass`: the `kubernetes.io/ingress.class` annotation value istiod serves.
    pub ingress_class: String,
    /// `ingressControllerMode`: `OFF`, `STRICT` (only the class above) or `DEFAULT` (also unclassed).
    pub ingress_controller_mode: String,
    /// `ingressSelector`: the `istio` label of the pods serving Ingresses.
    pub ingress_selector: String,
    /// `ingressService`: the gateway Service serving Ingresses.
    pub ingress_service: String,
    /// `defaultConfig`: the proxies' defaults (only `proxyMetadata` is read).
    pub default_config: ProxyDefaults,
}

/// meshConfig `defaultConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProxyDefaults {
    /// Environment the proxies' agents run with (DNS capture, address auto-allocation).
    pub proxy_metadata: BTreeMap<String, String>,
}

impl MeshConfig {
    /// Whether proxies capture DNS and give ServiceEntries without addresses a VIP of their
    /// own (`ISTIO_META_DNS_CAPTURE` with `ISTIO_META_DNS_AUTO_ALLOCATE` or
    /// `PILOT_ENABLE_IP_AUTOALLOCATE`).
    pub fn allocates_addresses(&self) -> bool {
        let on = |k: &str| self.default_config.proxy_metadata.get(k).is_some_and(|v| v == "true");
        on("ISTIO_META_DNS_CAPTURE") && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
    }
}

/// Serde shape of meshConfig `outboundTrafficPolicy`.
pub mod istio_outbound {
    /// `{mode: ...}`.
    #[derive(Debug, Clone, Default, serde::Deserialize)]
    pub struct Policy {
        /// `ALLOW_ANY` or `REGISTRY_ONLY`.
        #[serde(default)]
        pub mode: Option<String>,
    }
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: "istio-system".into(),
            outbound_traffic_policy: None,
            default_service_export_to: vec![],
            default_virtual_service_export_to: vec![],
            default_destination_rule_export_to: vec![],
            enable_auto_mtls: true,
            default_http_retry_policy: None,
            ingress_class: "istio".into(),
            ingress_controller_mode: "STRICT".into(),
            ingress_selector: String::new(),
            ingress_service: "istio-ingressgateway".into(),
            default_config: ProxyDefaults::default(),
        }
    }
}

/// Every object in the snapshot, by kind.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Namespaces.
    pub namespaces: Vec<Resource<Namespace>>,
    /// Services.
    pub services: Vec<Resource<Service>>,
    /// Pods.
    pub pods: Vec<Resource<Pod>>,
    /// Nodes (their topology labels count as endpoint labels for subsets).
    pub nodes: Vec<Resource<Node>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Resource<EndpointSlice>>,
    /// Deployments (to resolve `--from deploy/NAME`).
    pub deployments: Vec<Resource<Deployment>>,
    /// VirtualServices.
    pub virtual_services: Vec<Resource<VirtualService>>,
    /// DestinationRules.
    pub destination_rules: Vec<Resource<DestinationRule>>,
    /// Gateways, Istio's and Gateway API's (`spec.gateway_api` tells them apart).
    pub gateways: Vec<Resource<Gateway>>,
    /// ServiceEntries.
    pub service_entries: Vec<Resource<ServiceEntry>>,
    /// Sidecars.
    pub sidecars: Vec<Resource<Sidecar>>,
    /// PeerAuthentications.
    pub peer_authentications: Vec<Resource<PeerAuthentication>>,
    /// RequestAuthentications (their selectors only).
    pub request_authentications: Vec<Resource<RequestAuthentication>>,
    /// Gateway API routes: HTTPRoute, GRPCRoute, TCPRoute, TLSRoute (`spec.kind` tells them apart).
    pub routes: Vec<Resource<Route>>,
    /// Gateway API ReferenceGrants.
    pub reference_grants: Vec<Resource<ReferenceGrant>>,
    /// Kubernetes Ingresses.
    pub ingresses: Vec<Resource<Ingress>>,
    /// IngressClasses (which controller serves an Ingress that names one).
    pub ingress_classes: Vec<Resource<IngressClass>>,
    /// The Gateways istiod derives from the Ingresses it serves (filled by [`Objects::sort`]).
    pub ingress_gateways: Vec<Resource<Gateway>>,
    /// The VirtualServices istiod derives from them, one per host (filled by [`Objects::sort`]).
    pub ingress_virtual_services: Vec<Resource<VirtualService>>,
    /// The internal VirtualServices istiod's Gateway API controller builds from mesh routes
    /// (filled by [`Objects::sort`], once every object is in).
    pub route_virtual_services: Vec<Resource<VirtualService>>,
    /// `(namespace, name)` of each Secret in the snapshot: the only part of a Secret kept.
    pub secret_names: BTreeSet<(String, String)>,
    /// What each Secret of [`Self::secret_names`] holds as a gateway credential (no material).
    pub secret_credentials: BTreeMap<(String, String), Credential>,
    /// Unix time (seconds) the objects describe: when they were captured or read; certificates
    /// are judged at this time.
    pub as_of: Option<i64>,
    /// Mesh settings (defaults when no `istio` ConfigMap was captured).
    pub mesh: MeshConfig,
    /// Whether a mesh config was found.
    pub mesh_config_found: bool,
    /// The injector's `enableNamespacesByDefault`: unlabelled namespaces get sidecars too.
    pub injection_enabled_by_default: bool,
    /// Kinds seen but not used, with counts (reported so users know they were read).
    pub skipped_kinds: BTreeMap<String, usize>,
    /// Pods, Deployments and EndpointSlices a focused reading ([`Objects::add_kept`]) left
    /// undecoded.
    pub skipped: Vec<Skipped>,
    /// Index of `pods` by (namespace, name), built by [`Objects::sort`]: every caller's
    /// endpoint lookups go through it, and a scan per lookup made large meshes quadratic.
    pod_index: HashMap<(String, String), usize>,
    /// Indices of `pods` by namespace, in their order (built with `pod_index`).
    pods_by_namespace: BTreeMap<String, Vec<usize>>,
    /// Index of `services` by (namespace, name), built by [`Objects::sort`]: `--all` resolves
    /// every Service by name.
    service_index: HashMap<(String, String), usize>,
}

/// What a focused reading keeps of a Pod, Deployment or EndpointSlice it did not decode: enough
/// to tell afterwards whether the question could have needed it.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// `Pod`, `Deployment` or `EndpointSlice`.
    pub kind: &'static str,
    /// `metadata.namespace` (`default` when absent).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels` (of an EndpointSlice, only the one that names its Service).
    pub labels: PackedLabels,
}

/// The annotation `kubectl apply` keeps a full copy of the object in: nothing reads it, and
/// held for every object of an applied mesh it would double what the objects take.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which namespaces' Pods, Deployments and EndpointSlices a focused reading decodes.
pub type Keep<'k> = &'k (dyn Fn(&str) -> bool + Sync);

/// Items of a list decoded together, on one core, before their objects join the others.
const LIST_SHARE: usize = 256;

/// The identity of an object. Read leniently: a field of the wrong type is reported by the
/// typed reading, with its path, if the object is kept.
#[derive(Default)]
struct Identity {
    name: Option<String>,
    namespace: Option<String>,
    labels: PackedLabels,
}

impl<'de> Deserialize<'de> for Identity {
    /// Reads `name`, `namespace` and `labels` straight from the text, skipping the rest of the
    /// metadata (annotations, managed fields) unparsed. Fails on anything but an object: callers
    /// read that as no identity.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Identity, D::Error> {
        struct Lenient;
        impl<'de> serde::de::Visitor<'de> for Lenient {
            type Value = Identity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("object metadata")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Identity, A::Error> {
                let mut identity = Identity::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "name" => identity.name = map.next_value::<Value>()?.as_str().map(str::to_string),
                        "namespace" => identity.namespace = map.next_value::<Value>()?.as_str().map(str::to_string),
                        "labels" => identity.labels = PackedLabels::of(&map.next_value::<Value>()?),
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(identity)
            }
        }
        deserializer.deserialize_map(Lenient)
    }
}

/// A JSON object's header: `kind`, `apiVersion`, identity and, in a list, its items as text.
/// Kubernetes writes an object's header first, so an object that is skipped costs little more
/// than finding where it ends.
#[derive(Default)]
struct Header<'t> {
    kind: Option<String>,
    api_version: Option<String>,
    identity: Option<Identity>,
    items: Option<Vec<&'t RawValue>>,
    /// Stop once the header is complete.
    early: bool,
    /// Stopped early (the error that ended the reading is this, not the text's).
    stopped: bool,
}

impl<'t> Header<'t> {
    /// Reads the header of the JSON object `text`: to its end (the text is checked, and an
    /// error names where), or, for an item of a list already checked, only until complete.
    fn read(text: &'t str, early: bool) -> serde_json::Result<Header<'t>> {
        let mut header = Header { early, ..Header::default() };
        let mut de = serde_json::Deserializer::from_str(text);
        match serde::de::DeserializeSeed::deserialize(&mut header, &mut de) {
            Err(_) if header.stopped => Ok(header),
            Err(e) => Err(e),
            Ok(()) => de.end().map(|()| header),
        }
    }

    fn complete(&self) -> bool {
        let list = self.kind.as_deref().is_some_and(|k| k.ends_with("List"));
        self.kind.is_some() && self.api_version.is_some() && self.identity.is_some() && (!list || self.items.is_some())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut Header<'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Header<'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "kind" => self.kind = map.next_value()?,
                "apiVersion" => self.api_version = map.next_value()?,
                "metadata" => {
                    // Lenient: metadata of the wrong type is reported by the typed reading.
                    let metadata: &'de RawValue = map.next_value()?;
                    self.identity = Some(serde_json::from_str(metadata.get()).unwrap_or_default());
                }
                "items" => self.items = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if self.early && self.complete() {
                self.stopped = true;
                return Err(serde::de::Error::custom("header read"));
            }
        }
        Ok(())
    }
}

/// Kubernetes object header used to route a document to its type.
#[derive(Deserialize)]
struct TypeMeta {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
}

/// One document as read: a value tree (YAML files, the API server's lists), or the text of a
/// JSON file's object, deserialized straight into its type. On a big mesh, building the value
/// tree of every JSON export first was most of the loading time.
pub enum Document<'t> {
    /// A parsed value.
    Value(Value),
    /// The JSON text of one object or list (a whole file): checked as its header is read.
    Json(&'t str),
    /// The JSON text of one item of a list read as [`Document::Json`], so already checked.
    Item(&'t str),
}

impl<'t> Document<'t> {
    fn is_null(&self) -> bool {
        match self {
            Document::Value(v) => v.is_null(),
            Document::Json(text) | Document::Item(text) => text.trim() == "null",
        }
    }

    /// The header, the items when the document is a list (taken out of it), and, when it was
    /// read on the way, the object's identity.
    fn header(&mut self) -> serde_json::Result<(TypeMeta, Vec<Document<'t>>, Option<Identity>)> {
        let read = match self {
            Document::Value(v) => {
                let meta = TypeMeta::deserialize(&*v)?;
                let items = match v.as_object_mut().filter(|_| meta.kind.as_deref().is_some_and(|k| k.ends_with("List"))).and_then(|list| list.remove("items"))
                {
                    Some(Value::Array(items)) => items.into_iter().map(Document::Value).collect(),
                    _ => Vec::new(),
                };
                return Ok((meta, items, None));
            }
            Document::Json(text) => Header::read(text, false)?,
            Document::Item(text) => Header::read(text, true)?,
        };
        let items = read.items.unwrap_or_default().into_iter().map(|raw| Document::Item(raw.get())).collect();
        Ok((TypeMeta { kind: read.kind, api_version: read.api_version }, items, read.identity))
    }

    /// The identity of a value document, from its metadata ([`Document::header`] reads that of
    /// JSON text on the way).
    fn identity(&self) -> Identity {
        match self {
            Document::Value(v) => v.get("metadata").and_then(|m| Identity::deserialize(m).ok()).unwrap_or_default(),
            Document::Json(_) | Document::Item(_) => Identity::default(),
        }
    }

    /// Where the object sits, `(namespace, name)`, read no further than its metadata; empty
    /// where absent or unreadable (decoding the object says what is wrong with it).
    pub fn placement(&self) -> (String, String) {
        let identity = match self {
            Document::Value(_) => self.identity(),
            Document::Json(text) | Document::Item(text) => Header::read(text, true).ok().and_then(|h| h.identity).unwrap_or_default(),
        };
        (identity.namespace.unwrap_or_default(), identity.name.unwrap_or_default())
    }

    fn into_value(self) -> serde_json::Result<Value> {
        match self {
            Document::Value(v) => Ok(v),
            Document::Json(text) | Document::Item(text) => serde_json::from_str(text),
        }
    }

    /// The document as `T`; a field of the wrong type is named by its path.
    fn typed<T: DeserializeOwned>(self, origin: &Origin, kind: &str) -> Result<T> {
        // Tracking the path costs on every field, so it is done only to explain a failure.
        let fast = match &self {
            Document::Value(v) => T::deserialize(v).ok(),
            Document::Json(text) | Document::Item(text) => serde_json::from_str(text).ok(),
        };
        if let Some(typed) = fast {
            return Ok(typed);
        }
        let read = match self {
            Document::Value(v) => serde_path_to_error::deserialize(v),
            Document::Json(text) | Document::Item(text) => serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text)),
        };
        read.map_err(|e| {
            let path = e.path().to_string();
            Error::new(format!("{kind} has a field of the wrong type: {}", e.into_inner()))
                .at(format!("{origin} field `{path}`"))
                .help("fix the field, or re-export the object with `kubectl get -o yaml`")
        })
    }
}

/// An Istio object: Kubernetes metadata plus a typed `spec`.
#[derive(Deserialize)]
struct IstioObject<S> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default = "Option::default")]
    spec: Option<S>,
}

impl Objects {
    /// Adds one document; `kind: List` is flattened. `origin` names the file and document.
    pub fn add_document(&mut self, doc: Value, origin: &str) -> Result<()> {
        self.add(Document::Value(doc), origin)
    }

    /// Adds one document in either form; `kind: List` is flattened.
    pub fn add(&mut self, doc: Document<'_>, origin: &str) -> Result<()> {
        self.add_kept(doc, &Origin::from(origin), None)
    }

    /// Adds one document, decoding Pods, Deployments and EndpointSlices only in the namespaces
    /// `keep` accepts (all with `None`); of the others only their identity is kept, in
    /// [`Objects::skipped`].
    pub fn add_kept(&mut self, mut doc: Document<'_>, origin: &Origin, keep: Option<Keep<'_>>) -> Result<()> {
        if doc.is_null() {
            return Ok(());
        }
        let (header, items, identity) = doc.header().map_err(|e| match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                Error::new(format!("invalid JSON: {e}")).at(format!("{origin} line {} column {}", e.line(), e.column()))
            }
            _ => Error::new(format!("not a Kubernetes object: {e}")).at(origin),
        })?;
        let Some(kind) = header.kind else {
            return Err(Error::new("document has no `kind`, so it is not a Kubernetes object")
                .at(origin)
                .help("objects/ takes `kubectl get -o yaml` or `-o json` output"));
        };
        let group = header.api_version.as_deref().and_then(|v| v.split_once('/')).map(|(g, _)| g).unwrap_or("");
        let k = kind.as_str();
        let bulk = match (group, k) {
            ("", "Pod") => Some("Pod"),
            ("apps", "Deployment") => Some("Deployment"),
            ("discovery.k8s.io", "EndpointSlice") => Some("EndpointSlice"),
            _ => None,
        };
        if let (Some(keep), Some(bulk)) = (keep, bulk) {
            let identity = identity.unwrap_or_else(|| doc.identity());
            let namespace = identity.namespace.unwrap_or_else(|| "default".into());
            if !keep(&namespace) {
                // Of a slice only its Service matters afterwards.
                let labels = match bulk {
                    "EndpointSlice" => identity.labels.iter().filter(|(k, _)| *k == SERVICE_NAME_LABEL).collect(),
                    _ => identity.labels,
                };
                self.skipped.push(Skipped { kind: bulk, namespace, name: identity.name.unwrap_or_default(), labels });
                return Ok(());
            }
        }
        match (group, k) {
            (_, k) if k.ends_with("List") => {
                let texts: Option<Vec<&str>> = items.iter().map(|d| if let Document::Item(text) = d { Some(*text) } else { None }).collect();
                // A big export's items are decoded on every core, a share at a time, and their
                // objects joined in list order; inside a worker (one file of several) they are
                // decoded in place, since joining shares would only copy them once more.
                match texts.filter(|t| t.len() > LIST_SHARE && crate::parallel::threads() > 1) {
                    Some(texts) => {
                        let shares: Vec<(usize, &[&str])> = texts.chunks(LIST_SHARE).enumerate().map(|(n, share)| (n * LIST_SHARE, share)).collect();
                        let parts = crate::parallel::in_parallel(&shares, |(first, share)| {
                            let mut part = Objects::default();
                            for (i, text) in share.iter().enumerate() {
                                part.add_kept(Document::Item(text), &origin.item(first + i), keep)?;
                            }
                            Ok(part)
                        });
                        self.absorb_all(parts.into_iter().collect::<Result<Vec<_>>>()?);
                    }
                    None => {
                        for (i, item) in items.into_iter().enumerate() {
                            self.add_kept(item, &origin.item(i), keep)?;
                        }
                    }
                }
            }
            ("", "Namespace") => self.namespaces.push(kube_object(doc, origin, k, |n: &mut Namespace| &mut n.metadata)?),
            ("", "Service") => {
                let mut service: ServiceObject = doc.typed(origin, k)?;
                self.services.push(Resource::new(Meta::take(&mut service.metadata, origin), Service { spec: service.spec }));
            }
            ("", "Pod") => self.pods.push(kube_object(doc, origin, k, |p: &mut Pod| &mut p.metadata)?),
            ("", "Node") => self.nodes.push(kube_object(doc, origin, k, |n: &mut Node| &mut n.metadata)?),
            ("discovery.k8s.io", "EndpointSlice") => self.endpoint_slices.push(kube_object(doc, origin, k, |e: &mut EndpointSlice| &mut e.metadata)?),
            ("apps", "Deployment") => self.deployments.push(kube_object(doc, origin, k, |d: &mut Deployment| &mut d.metadata)?),
            ("", "Secret") => {
                let doc = doc.into_value().map_err(|e| Error::new(format!("Secret is not valid JSON: {e}")).at(origin))?;
                let field = |f: &str| doc.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).map(str::to_string);
                let name = field("name").ok_or_else(|| Error::new("Secret has no metadata.name").at(origin))?;
                let key = (field("namespace").unwrap_or_else(|| "default".into()), name);
                // A Secret whose data does not parse yields no credential and, so that no value
                // can reach a message, no error either.
                // A live capture keeps a credential only in reduced form (no data at all).
                let reduced = doc
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(super::credential::REDUCED))
                    .and_then(Value::as_str)
                    .filter(|_| doc.get("data").is_none());
                let credential = match reduced {
                    Some(text) => serde_json::from_str::<Credential>(text).ok(),
                    None => serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(doc).ok().map(|secret| Credential::of(&secret)),
                };
                if let Some(credential) = credential {
                    self.secret_credentials.insert(key.clone(), credential);
                }
                self.secret_names.insert(key);
            }
            ("", "ConfigMap") => {
                let doc = doc.into_value().map_err(|e| Error::new(format!("ConfigMap is not valid JSON: {e}")).at(origin))?;
                self.add_config_map(&doc, origin)?
            }
            ("networking.istio.io", "VirtualService") => self.virtual_services.push(istio_object(doc, origin, k)?),
            ("networking.istio.io", "DestinationRule") => self.destination_rules.push(istio_object(doc, origin, k)?),
            ("networking.istio.io", "Gateway") => self.gateways.push(istio_object(doc, origin, k)?),
            ("gateway.networking.k8s.io", "Gateway") => {
                let gw: Resource<gateway_api::apis::experimental::gateways::GatewaySpec> = istio_object(doc, origin, k)?;
                self.gateways.push(Resource::new(gw.meta, (*gw.spec).into()));
            }
            ("networking.istio.io", "ServiceEntry") => self.service_entries.push(service_entry_object(doc, origin, k)?),
            ("networking.istio.io", "Sidecar") => self.sidecars.push(istio_object(doc, origin, k)?),
            ("security.istio.io", "PeerAuthentication") => self.peer_authentications.push(istio_object(doc, origin, k)?),
            ("security.istio.io", "RequestAuthentication") => self.request_authentications.push(istio_object(doc, origin, k)?),
            ("gateway.networking.k8s.io", k) if RouteKind::from_kind(k).is_some() => self.routes.push(route_object(doc, origin, k)?),
            ("gateway.networking.k8s.io", "ReferenceGrant") => {
                let grant: Resource<gateway_api::apis::experimental::referencegrants::ReferenceGrantSpec> = istio_object(doc, origin, k)?;
                self.reference_grants.push(Resource::new(grant.meta, (*grant.spec).into()));
            }
            ("networking.k8s.io", "Ingress") => self.ingresses.push(kube_object(doc, origin, k, |i: &mut Ingress| &mut i.metadata)?),
            ("networking.k8s.io", "IngressClass") => self.ingress_classes.push(kube_object(doc, origin, k, |c: &mut IngressClass| &mut c.metadata)?),
            _ => *self.skipped_kinds.entry(kind.clone()).or_default() += 1,
        }
        Ok(())
    }

    /// Adds the objects of `parts`, in order, after those read so far. Room for the bulky kinds
    /// is made once: grown by doubling, a vector of a big mesh's pods (kilobytes each) was
    /// copied into fresh memory again and again, and clearing those pages was the largest cost
    /// of reading it.
    pub fn absorb_all(&mut self, parts: Vec<Objects>) {
        let total = |count: fn(&Objects) -> usize| parts.iter().map(count).sum::<usize>();
        self.pods.reserve(total(|p| p.pods.len()));
        self.deployments.reserve(total(|p| p.deployments.len()));
        self.endpoint_slices.reserve(total(|p| p.endpoint_slices.len()));
        self.services.reserve(total(|p| p.services.len()));
        self.virtual_services.reserve(total(|p| p.virtual_services.len()));
        self.destination_rules.reserve(total(|p| p.destination_rules.len()));
        self.skipped.reserve(total(|p| p.skipped.len()));
        for part in parts {
            self.absorb(part);
        }
    }

    /// Adds the objects `part` read after those read so far, as if they had been added here.
    fn absorb(&mut self, part: Objects) {
        // Destructured whole, so that a kind added to `Objects` cannot be forgotten here.
        let Objects {
            namespaces,
            services,
            pods,
            nodes,
            endpoint_slices,
            deployments,
            virtual_services,
            destination_rules,
            gateways,
            service_entries,
            sidecars,
            peer_authentications,
            request_authentications,
            routes,
            reference_grants,
            ingresses,
            ingress_classes,
            ingress_gateways: _,
            ingress_virtual_services: _,
            route_virtual_services: _,
            secret_names,
            secret_credentials,
            as_of: _,
            mesh,
            mesh_config_found,
            injection_enabled_by_default,
            skipped_kinds,
            skipped,
            pod_index: _,
            pods_by_namespace: _,
            service_index: _,
        } = part;
        self.namespaces.extend(namespaces);
        self.services.extend(services);
        self.pods.extend(pods);
        self.nodes.extend(nodes);
        self.endpoint_slices.extend(endpoint_slices);
        self.deployments.extend(deployments);
        self.virtual_services.extend(virtual_services);
        self.destination_rules.extend(destination_rules);
        self.gateways.extend(gateways);
        self.service_entries.extend(service_entries);
        self.sidecars.extend(sidecars);
        self.peer_authentications.extend(peer_authentications);
        self.request_authentications.extend(request_authentications);
        self.routes.extend(routes);
        self.reference_grants.extend(reference_grants);
        self.ingresses.extend(ingresses);
        self.ingress_classes.extend(ingress_classes);
        self.secret_names.extend(secret_names);
        self.secret_credentials.extend(secret_credentials);
        if mesh_config_found {
            (self.mesh, self.mesh_config_found) = (mesh, true);
        }
        self.injection_enabled_by_default |= injection_enabled_by_default;
        for (kind, count) in skipped_kinds {
            *self.skipped_kinds.entry(kind).or_default() += count;
        }
        self.skipped.extend(skipped);
    }

    /// Reads meshConfig from the `istio` ConfigMap (key `mesh`, itself YAML), and the injector's
    /// `enableNamespacesByDefault` from `istio-sidecar-injector` (key `values`, JSON).
    fn add_config_map(&mut self, doc: &Value, origin: &Origin) -> Result<()> {
        let name = doc.pointer("/metadata/name").and_then(Value::as_str);
        if name.is_some_and(|n| n.starts_with("istio-sidecar-injector")) {
            let values: Option<Value> = doc.pointer("/data/values").and_then(Value::as_str).and_then(|v| serde_json::from_str(v).ok());
            let by_default = values.as_ref().and_then(|v| v.pointer("/sidecarInjectorWebhook/enableNamespacesByDefault")).and_then(Value::as_bool);
            self.injection_enabled_by_default |= by_default.unwrap_or(false);
            return Ok(());
        }
        let Some(mesh) = doc.pointer("/data/mesh").and_then(Value::as_str).filter(|_| name == Some("istio")) else {
            *self.skipped_kinds.entry("ConfigMap".into()).or_default() += 1;
            return Ok(());
        };
        let parsed: Option<MeshConfig> = serde_saphyr::from_str(mesh)
            .map_err(|e| Error::new(format!("meshConfig in ConfigMap istio is not valid: {e}")).at(format!("{origin} data.mesh")))?;
        self.mesh = parsed.unwrap_or_default();
        self.mesh_config_found = true;
        Ok(())
    }

    /// Drops repeated objects, sorts every kind into istiod's precedence order (oldest first,
    /// then name, then namespace), then derives what istiod builds from Ingresses and mesh routes. An object
    /// read twice (two files, or two archive entries) would otherwise conflict with itself; the
    /// newest copy is kept, and the returned gaps say which copies were ignored.
    #[must_use = "the gaps say which repeated objects were ignored"]
    pub fn sort(&mut self) -> Vec<Gap> {
        let mut repeats = Repeats::default();
        repeats.drop_from("Namespace", &mut self.namespaces);
        repeats.drop_from("Service", &mut self.services);
        repeats.drop_from("Pod", &mut self.pods);
        repeats.drop_from("Node", &mut self.nodes);
        repeats.drop_from("EndpointSlice", &mut self.endpoint_slices);
        repeats.drop_from("Deployment", &mut self.deployments);
        repeats.drop_from("VirtualService", &mut self.virtual_services);
        repeats.drop_from("DestinationRule", &mut self.destination_rules);
        repeats.drop_from_by(&mut self.gateways, |g| if g.spec.gateway_api { "Gateway (gateway.networking.k8s.io)" } else { "Gateway" });
        repeats.drop_from("ServiceEntry", &mut self.service_entries);
        repeats.drop_from("Sidecar", &mut self.sidecars);
        repeats.drop_from("PeerAuthentication", &mut self.peer_authentications);
        repeats.drop_from("RequestAuthentication", &mut self.request_authentications);
        repeats.drop_from_by(&mut self.routes, |r| r.spec.kind.as_str());
        repeats.drop_from("ReferenceGrant", &mut self.reference_grants);
        repeats.drop_from("Ingress", &mut self.ingresses);
        repeats.drop_from("IngressClass", &mut self.ingress_classes);
        // Oldest first, as istiod orders configuration. Two kinds share `gateways` and `routes`;
        // their kind settles a tie, so the order does not depend on which file was read first.
        fn by_age<T, K: Ord>(v: &mut [Resource<T>], kind: impl Fn(&Resource<T>) -> K) {
            v.sort_by(|a, b| {
                (&a.meta.creation_timestamp, &a.meta.name, &a.meta.namespace, kind(a)).cmp(&(
                    &b.meta.creation_timestamp,
                    &b.meta.name,
                    &b.meta.namespace,
                    kind(b),
                ))
            });
        }
        by_age(&mut self.virtual_services, |_| ());
        by_age(&mut self.destination_rules, |_| ());
        by_age(&mut self.sidecars, |_| ());
        by_age(&mut self.gateways, |g| g.spec.gateway_api);
        by_age(&mut self.service_entries, |_| ());
        by_age(&mut self.peer_authentications, |_| ());
        by_age(&mut self.routes, |r| r.spec.kind.as_str());
        by_age(&mut self.ingresses, |_| ());
        self.pod_index = self.pods.iter().enumerate().map(|(i, p)| ((p.meta.namespace.clone(), p.meta.name.clone()), i)).collect();
        self.service_index = self.services.iter().enumerate().map(|(i, s)| ((s.meta.namespace.clone(), s.meta.name.clone()), i)).collect();
        self.pods_by_namespace.clear();
        for (i, p) in self.pods.iter().enumerate() {
            self.pods_by_namespace.entry(p.meta.namespace.clone()).or_default().push(i);
        }
        (self.ingress_gateways, self.ingress_virtual_services) =
            crate::istio::ingress::translate(&self.ingresses, &self.ingress_classes, &self.services, &self.mesh);
        self.route_virtual_services = crate::istio::gateway_translation::mesh_virtual_services(self);
        repeats.into_gaps()
    }

    /// The Namespace object named `name`.
    pub fn namespace(&self, name: &str) -> Option<&Resource<Namespace>> {
        self.namespaces.iter().find(|n| n.meta.name == name)
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Resource<Service>> {
        if self.service_index.len() != self.services.len() {
            // Not sorted yet (objects still being added): look it up the slow way.
            return self.services.iter().find(|s| s.meta.namespace == namespace && s.meta.name == name);
        }
        self.service_index.get(&(namespace.to_string(), name.to_string())).map(|i| &self.services[*i])
    }

    /// The Pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Resource<Pod>> {
        if self.pod_index.len() != self.pods.len() {
            // Not sorted yet (objects still being added): look it up the slow way.
            return self.pods.iter().find(|p| p.meta.namespace == namespace && p.meta.name == name);
        }
        self.pod_index.get(&(namespace.to_string(), name.to_string())).map(|i| &self.pods[*i])
    }

    /// The Pods of `namespace`, in snapshot order.
    pub fn pods_in<'s>(&'s self, namespace: &str) -> Box<dyn Iterator<Item = &'s Resource<Pod>> + 's> {
        if self.pod_index.len() != self.pods.len() {
            let namespace = namespace.to_string();
            return Box::new(self.pods.iter().filter(move |p| p.meta.namespace == namespace));
        }
        Box::new(self.pods_by_namespace.get(namespace).into_iter().flatten().map(|i| &self.pods[*i]))
    }

    /// Total number of objects mesh-why uses.
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.services.len()
            + self.pods.len()
            + self.nodes.len()
            + self.endpoint_slices.len()
            + self.deployments.len()
            + self.virtual_services.len()
            + self.destination_rules.len()
            + self.gateways.len()
            + self.service_entries.len()
            + self.sidecars.len()
            + self.peer_authentications.len()
            + self.request_authentications.len()
            + self.routes.len()
            + self.reference_grants.len()
    }

    /// True when no usable object was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Objects read more than once, as they are found.
#[derive(Default)]
struct Repeats {
    /// (kind, namespace/name, where each copy came from, where the copy kept came from).
    found: Vec<(String, String, Vec<String>, String)>,
}

/// Repeated objects named one by one; past this, only counted.
const REPEATS_NAMED: usize = 10;

impl Repeats {
    fn drop_from<T>(&mut self, kind: &'static str, objects: &mut Vec<Resource<T>>) {
        self.drop_from_by(objects, |_| kind);
    }

    /// Keeps the newest copy of each (kind, namespace, name) of `objects`, in its place.
    fn drop_from_by<T>(&mut self, objects: &mut Vec<Resource<T>>, kind: impl Fn(&Resource<T>) -> &'static str) {
        // Per object: the copy kept so far, and every copy's index.
        let mut seen: BTreeMap<(&'static str, &str, &str), (usize, Vec<usize>)> = BTreeMap::new();
        for (i, o) in objects.iter().enumerate() {
            let (kept, copies) = seen.entry((kind(o), &o.meta.namespace, &o.meta.name)).or_insert((i, Vec::new()));
            copies.push(i);
            if o.meta.newer_than(&objects[*kept].meta) {
                *kept = i;
            }
        }
        let mut keep = vec![true; objects.len()];
        for ((kind, namespace, name), (kept, copies)) in seen.into_iter().filter(|(_, (_, copies))| copies.len() > 1) {
            for &i in copies.iter().filter(|i| **i != kept) {
                keep[i] = false;
            }
            let origins = copies.iter().map(|i| objects[*i].meta.origin.to_string()).collect();
            let name = if ["Namespace", "Node"].contains(&kind) { name.to_string() } else { format!("{namespace}/{name}") };
            self.found.push((kind.to_string(), name, origins, objects[kept].meta.origin.to_string()));
        }
        let mut keep = keep.into_iter();
        objects.retain(|_| keep.next().unwrap_or(true));
    }

    fn into_gaps(self) -> Vec<Gap> {
        let more = self.found.len().saturating_sub(REPEATS_NAMED);
        let mut gaps: Vec<Gap> = self
            .found
            .into_iter()
            .take(REPEATS_NAMED)
            .map(|(kind, name, origins, kept)| Gap {
                source: format!("objects: {kind} {name}"),
                reason: format!(
                    "read {} times ({}); one copy was used, the newest by resourceVersion (else the first read): {}",
                    origins.len(),
                    origins.join(", "),
                    kept
                ),
            })
            .collect();
        if more > 0 {
            gaps.push(Gap { source: "objects".into(), reason: format!("{more} more objects were read more than once; only the newest copy of each was used") });
        }
        gaps
    }
}

/// A Kubernetes object decoded as `T` (a Pod or Deployment only in the fields the analysis
/// reads: `workloads`). Its labels, annotations and owners live on in [`Resource::meta`] only.
fn kube_object<T: DeserializeOwned>(doc: Document<'_>, origin: &Origin, kind: &str, metadata: impl Fn(&mut T) -> &mut ObjectMeta) -> Result<Resource<T>> {
    let mut obj: T = doc.typed(origin, kind)?;
    Ok(Resource::new(Meta::take(metadata(&mut obj), origin), obj))
}

fn istio_object<S: DeserializeOwned + Default>(doc: Document<'_>, origin: &Origin, kind: &str) -> Result<Resource<S>> {
    let mut obj: IstioObject<S> = doc.typed(origin, kind)?;
    Ok(Resource::new(Meta::take(&mut obj.metadata, origin), obj.spec.unwrap_or_default()))
}

/// A ServiceEntry, with the addresses istiod allocated to it (`status.addresses`).
fn service_entry_object(doc: Document<'_>, origin: &Origin, kind: &str) -> Result<Resource<ServiceEntry>> {
    #[derive(Deserialize)]
    struct Address {
        #[serde(default)]
        value: String,
    }
    #[derive(Deserialize)]
    struct Status {
        #[serde(default)]
        addresses: Vec<Address>,
    }
    #[derive(Deserialize)]
    struct ServiceEntryObject {
        #[serde(default)]
        metadata: ObjectMeta,
        #[serde(default)]
        spec: Option<ServiceEntry>,
        #[serde(default)]
        status: Option<Status>,
    }
    let mut obj: ServiceEntryObject = doc.typed(origin, kind)?;
    let mut spec = obj.spec.unwrap_or_default();
    spec.allocated_addresses = obj.status.into_iter().flat_map(|s| s.addresses).map(|a| a.value).filter(|v| !v.is_empty()).collect();
    Ok(Resource::new(Meta::take(&mut obj.metadata, origin), spec))
}

/// A Gateway API route: metadata, `spec` and the `status` istiod writes back.
fn route_object(doc: Document<'_>, origin: &Origin, kind: &str) -> Result<Resource<Route>> {
    #[derive(Deserialize)]
    #[serde(bound(deserialize = "S: DeserializeOwned + Default, T: DeserializeOwned"))]
    struct RouteObject<S, T> {
        #[serde(default)]
        metadata: ObjectMeta,
        #[serde(default)]
        spec: S,
        #[serde(default)]
        status: Option<T>,
    }
    fn read<S: DeserializeOwned + Default, T: DeserializeOwned>(doc: Document<'_>, origin: &Origin, kind: &str) -> Result<(ObjectMeta, S, Option<T>)> {
        let o: RouteObject<S, T> = doc.typed(origin, kind)?;
        Ok((o.metadata, o.spec, o.status))
    }
    use gateway_api::apis::experimental::{grpcroutes as grpc, httproutes as http, tcproutes as tcp, tlsroutes as tls};
    let (mut metadata, decoded) = match kind {
        "GRPCRoute" => read::<grpc::GrpcRouteSpec, grpc::GrpcRouteStatus>(doc, origin, kind).map(|(m, s, t)| (m, Decoded::Grpc(s, t)))?,
        "TCPRoute" => read::<tcp::TcpRouteSpec, tcp::TcpRouteStatus>(doc, origin, kind).map(|(m, s, t)| (m, Decoded::Tcp(s, t)))?,
        "TLSRoute" => {
            // v1 requires hostnames; v1alpha2 and v1alpha3 TLSRoutes may leave them out.
            let mut value = doc.into_value().map_err(|e| Error::new(format!("{kind} is not valid JSON: {e}")).at(origin))?;
            if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("hostnames").or_insert_with(|| Value::Array(Vec::new()));
            }
            read::<tls::TlsRouteSpec, tls::TlsRouteStatus>(Document::Value(value), origin, kind).map(|(m, s, t)| (m, Decoded::Tls(s, t)))?
        }
        _ => read::<http::HttpRouteSpec, http::HttpRouteStatus>(doc, origin, kind).map(|(m, s, t)| (m, Decoded::Http(s, t)))?,
    };
    let (kind, spec, status) = decoded.reduce();
    let route = Route { kind, generation: metadata.generation, spec, status };
    Ok(Resource::new(Meta::take(&mut metadata, origin), route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_list(count: usize) -> Vec<Value> {
        (0..count).map(|i| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p{i}"), "namespace": format!("ns{}", i % 3)}})).collect()
    }

    fn read(items: &[Value], keep: Option<Keep<'_>>) -> Result<Objects> {
        let text = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        let mut objects = Objects::default();
        objects.add_kept(Document::Json(&text), &Origin::from("pods.json"), keep)?;
        Ok(objects)
    }

    #[test]
    fn an_objects_placement_is_read_from_its_metadata_alone() {
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop"},"spec":{"containers":[]}}"#;
        assert_eq!(Document::Item(pod).placement(), ("shop".to_string(), "web-1".to_string()));
        let odd = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":7}}"#;
        assert_eq!(Document::Item(odd).placement(), (String::new(), String::new()));
        assert_eq!(Document::Value(json!({"metadata": {"name": "a"}})).placement(), (String::new(), "a".to_string()));
    }

    #[test]
    fn kinds_that_share_a_list_are_ordered_the_same_whichever_file_came_first() {
        let meta = json!({"name": "web", "namespace": "shop", "creationTimestamp": "2026-01-10T09:00:00Z"});
        let spec = json!({"parentRefs": [{"name": "gw"}]});
        let documents = [
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": meta, "spec": spec}),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": meta, "spec": spec}),
            json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": meta, "spec": {}}),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": meta, "spec": {"gatewayClassName": "istio", "listeners": []}}),
        ];
        let order = |reversed: bool| {
            let mut objects = Objects::default();
            let mut documents = documents.to_vec();
            if reversed {
                documents.reverse();
            }
            for doc in documents {
                objects.add_document(doc, "test").unwrap();
            }
            let _ = objects.sort();
            let routes: Vec<&str> = objects.routes.iter().map(|r| r.spec.kind.as_str()).collect::<Vec<_>>();
            let gateways: Vec<bool> = objects.gateways.iter().map(|g| g.spec.gateway_api).collect();
            (routes.join(","), gateways)
        };
        assert_eq!(order(false), order(true));
        assert_eq!(order(false), ("GRPCRoute,HTTPRoute".to_string(), vec![false, true]));
    }

    #[test]
    fn a_big_list_read_in_shares_keeps_its_order_and_its_skipped_objects() {
        let items = pod_list(3 * LIST_SHARE + 7);
        let objects = read(&items, Some(&|ns: &str| ns != "ns1")).unwrap();
        let kept: Vec<&str> = objects.pods.iter().map(|p| p.meta.name.as_str()).collect();
        let expected: Vec<String> = (0..items.len()).filter(|i| i % 3 != 1).map(|i| format!("p{i}")).collect();
        assert_eq!(kept, expected);
        assert_eq!(objects.skipped.len(), items.len() - expected.len());
        assert_eq!(objects.pods[4].meta.origin.to_string(), "pods.json items[6]");
    }

    #[test]
    fn kubectl_applys_copy_of_an_object_is_not_kept() {
        let annotations = json!({LAST_APPLIED: "{\"kind\":\"Service\"}", "networking.istio.io/exportTo": "."});
        let items = [json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "shop", "annotations": annotations}})];
        let objects = read(&items, None).unwrap();
        let kept: Vec<(&str, &str)> = objects.services[0].meta.annotations.iter().collect();
        assert_eq!(kept, [("networking.istio.io/exportTo", ".")]);
    }

    #[test]
    fn a_skipped_pods_labels_read_as_a_decoded_pods_do() {
        let labels = json!({"version": "v2", "app": "reviews", "istio.io/rev": "", "replicas": 3});
        let items = [json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "labels": labels}})];
        let skipped = read(&items, Some(&|_: &str| false)).unwrap().skipped.remove(0).labels;
        let pairs: Vec<(&str, &str)> = skipped.iter().collect();
        assert_eq!(pairs, [("app", "reviews"), ("istio.io/rev", ""), ("version", "v2")]);
        use crate::istio::{Labels, labels_match};
        assert_eq!((skipped.label("version"), skipped.label("replicas"), skipped.label("ap")), (Some("v2"), None, None));
        let selector = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert!(labels_match(&selector(&[("app", "reviews"), ("istio.io/rev", "")]), &skipped));
        assert!(!labels_match(&selector(&[("app", "reviews"), ("version", "v1")]), &skipped));
        assert_eq!(format!("{skipped:?}"), r#"{"app": "reviews", "istio.io/rev": "", "version": "v2"}"#);
        assert_eq!(PackedLabels::of(&json!(null)).iter().count(), 0);
    }

    #[test]
    fn metadata_of_the_wrong_type_is_named_by_the_typed_reading() {
        let items = [json!({"apiVersion": "v1", "kind": "Pod", "metadata": "reviews-1"})];
        for keep in [None, Some(&(|_: &str| true) as Keep<'_>)] {
            let err = read(&items, keep).unwrap_err().to_string();
            assert!(err.contains("Pod has a field of the wrong type") && err.contains("field `metadata`"), "{err}");
        }
    }

    #[test]
    fn the_first_bad_item_of_a_big_list_is_the_one_named() {
        let mut items = pod_list(2 * LIST_SHARE + 1);
        for bad in [LIST_SHARE + 3, 2 * LIST_SHARE] {
            items[bad]["spec"] = json!({"nodeName": 7});
        }
        let err = read(&items, None).unwrap_err().to_string();
        assert!(err.contains(&format!("items[{}]", LIST_SHARE + 3)) && err.contains("spec.nodeName"), "{err}");
    }
}
