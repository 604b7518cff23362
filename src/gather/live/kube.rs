//! The Kubernetes side of live mode: a client configured the way kubectl resolves kubeconfig,
//! and read-only lists of the kinds mesh-why uses.
//!
//! Only `get` and `list` are ever sent. A kind that is not served or not readable becomes a gap
//! naming the RBAC rule that would grant it; it never stops the run.

use super::Deadline;
use super::credentials::{self, PluginGuard, User};
use crate::error::{Error, Result};
use crate::snapshot::{Gap, NOT_SERVED};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::ListParams;
use serde_json::Value;
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How to reach the cluster: kubectl's `--kubeconfig` and `--context`, plus timeouts.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `--kubeconfig`: this file only, instead of `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: a context other than the current one.
    pub context: Option<String>,
    /// Limit for each API or admin request.
    pub request_timeout: Duration,
    /// The overall `--timeout`, which also bounds building the client (a credential plugin).
    pub deadline: Deadline,
}

/// A connected client and what the kubeconfig said about defaults.
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// Name of the kubeconfig context used (`None` in-cluster).
    pub context: Option<String>,
    /// The context's namespace, used when neither `-n` nor `SERVICE.NAMESPACE` names one.
    pub default_namespace: String,
    /// Limit for each request.
    pub request_timeout: Duration,
    /// Who the client authenticates as, to name it when credentials fail.
    user: User,
    /// Bounds the requests in flight at once (see [`CONCURRENT_REQUESTS`]).
    permits: Arc<Semaphore>,
}

/// API requests in flight at once. A question's lists are independent of each other, and
/// against a remote API server their time is mostly round trips, so they are sent together;
/// this keeps the connections they open to a handful, as kubectl's discovery does.
const CONCURRENT_REQUESTS: usize = 8;

/// Builds a client the way kubectl picks its configuration: `--kubeconfig`, else every file
/// listed in `KUBECONFIG` that exists (kubectl skips missing ones), else `~/.kube/config`, else
/// the in-cluster service account. Exec plugins, client certificates, tokens and
/// HTTPS_PROXY/NO_PROXY are handled by kube's config loader.
pub async fn connect(options: &ConnectOptions) -> Result<Cluster> {
    let kubeconfig = load_kubeconfig(options.kubeconfig.as_deref())?;
    let (mut config, context, user) = match kubeconfig {
        Some((file, source)) => {
            let context = options.context.clone().or_else(|| file.current_context.clone());
            let known: Vec<String> = file.contexts.iter().map(|c| c.name.clone()).collect();
            if let Some(name) = context.as_ref().filter(|n| !known.contains(n)) {
                return Err(Error::new(format!("context `{name}` is not in the kubeconfig")).at(&source).help(context_help(&known)));
            }
            let Some(name) = context else {
                return Err(Error::new("the kubeconfig has no current context").at(&source).help(context_help(&known)));
            };
            let user = User::of(&file, &name);
            let kube_options = KubeConfigOptions { context: Some(name.clone()), ..Default::default() };
            let config = kube::Config::from_custom_kubeconfig(file, &kube_options).await.map_err(|e| {
                Error::new(format!("cannot use context `{name}`: {}", crate::render::clean(&e.to_string())))
                    .at(&source)
                    .help("check the context's cluster and user entries; `kubectl config view --minify` shows what kubectl would use")
            })?;
            (config, Some(name), user)
        }
        None if options.context.is_some() => {
            return Err(Error::new("--context was given but no kubeconfig was found").help("pass --kubeconfig FILE or set KUBECONFIG, as for kubectl"));
        }
        None => {
            let config = kube::Config::incluster().map_err(|e| {
                Error::new(format!("no kubeconfig found and not running in a cluster ({e})"))
                    .help("pass --kubeconfig FILE or set KUBECONFIG, as for kubectl; or analyze saved state with --snapshot DIR")
            })?;
            (config, None, User::default())
        }
    };
    // Reads are bounded per request by `Cluster::get` and the admin client (a read timeout on
    // the connection would also cut port-forward streams); connecting is bounded here.
    config.connect_timeout = Some(options.request_timeout);
    let default_namespace = config.default_namespace.clone();
    let server = config.cluster_url.to_string();
    let client = build_client(config, &user, &options.deadline).await.map_err(|e| e.at(&server))?;
    Ok(Cluster { client, context, default_namespace, request_timeout: options.request_timeout, user, permits: Arc::new(Semaphore::new(CONCURRENT_REQUESTS)) })
}

/// Builds the client, which runs an exec credential plugin, on a blocking thread bounded by the
/// deadline; a plugin still running when we stop waiting (the deadline, Ctrl-C) is stopped.
async fn build_client(config: kube::Config, user: &User, deadline: &Deadline) -> Result<Client> {
    let guard = PluginGuard::new();
    let built = tokio::time::timeout_at(deadline.at, tokio::task::spawn_blocking(move || Client::try_from(config))).await;
    let client = match built {
        Err(_) => {
            let what = if user.plugin.is_some() { user.plugin_display() } else { "building the client".into() };
            return Err(Error::new(format!("{what} gave no answer within {}s (--timeout); it was stopped", deadline.total.as_secs_f64()))
                .help("run `kubectl version` with the same kubeconfig to see what the plugin waits for (a login?), then try again"));
        }
        Ok(Err(join)) => return Err(Error::new(format!("building the Kubernetes client failed: {join}"))),
        Ok(Ok(client)) => client,
    };
    guard.done();
    client.map_err(|e| match credentials::auth_failure(&e) {
        Some(auth) => credentials::auth_error(auth, user),
        None => Error::new(format!("cannot build a Kubernetes client: {}", error_chain(&e))).help("check the kubeconfig's certificate and proxy settings"),
    })
}

fn context_help(known: &[String]) -> String {
    if known.is_empty() {
        "the kubeconfig defines no contexts; `kubectl config get-contexts` lists what kubectl sees".into()
    } else {
        format!("pass --context with one of: {}", known.join(", "))
    }
}

/// The merged kubeconfig and a description of where it came from, or `None` when there is none.
fn load_kubeconfig(explicit: Option<&Path>) -> Result<Option<(Kubeconfig, String)>> {
    let read = |path: &Path| Kubeconfig::read_from(path).map_err(|e| credentials::unreadable_kubeconfig(path, &e));
    if let Some(path) = explicit {
        return Ok(Some((read(path)?, path.display().to_string())));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let mut merged: Option<Kubeconfig> = None;
        let mut used = Vec::new();
        for path in std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty() && p.is_file()) {
            let file = read(&path)?;
            merged = Some(match merged {
                None => file,
                Some(m) => m.merge(file).map_err(|e| Error::new(format!("cannot merge the KUBECONFIG files: {e}")).at(path.display()))?,
            });
            used.push(path.display().to_string());
        }
        return Ok(merged.map(|m| (m, format!("KUBECONFIG ({})", used.join(", ")))));
    }
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).map(PathBuf::from);
    match home.map(|h| h.join(".kube").join("config")).filter(|p| p.is_file()) {
        Some(path) => Ok(Some((read(&path)?, path.display().to_string()))),
        None => Ok(None),
    }
}

/// A resource kind to list: where it is served and how to name it in gaps and RBAC rules.
#[derive(Debug, Clone)]
pub struct Kind {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Served version chosen by discovery.
    pub version: String,
    /// Resource name in URLs and RBAC rules.
    pub plural: &'static str,
    /// `kind` stamped on list items that lack it.
    pub kind: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
}

impl Kind {
    /// A core (`v1`) kind.
    pub fn core(plural: &'static str, kind: &'static str, namespaced: bool) -> Kind {
        Kind { group: "", version: "v1".into(), plural, kind, namespaced }
    }

    /// A kind of a named group at a fixed version.
    pub fn grouped(group: &'static str, version: &str, plural: &'static str, kind: &'static str) -> Kind {
        Kind { group, version: version.into(), plural, kind, namespaced: true }
    }

    /// `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `pods`, `virtualservices.networking.istio.io`: how kubectl names the resource.
    pub fn resource(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn url(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{}/{}", self.group, self.version) };
        match namespace {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }

    /// The RBAC rule that grants `verb` on this kind, in a Role/ClusterRole's YAML flow style.
    pub fn rbac_rule(&self, verb: &str) -> String {
        format!("apiGroups: [\"{}\"], resources: [\"{}\"], verbs: [\"{verb}\"]", self.group, self.plural)
    }
}

/// Why a request to the API server failed.
#[derive(Debug)]
pub enum ApiFailure {
    /// 403: RBAC denies it (the server's message).
    Forbidden(String),
    /// 404: the kind (or object) is not there.
    NotFound(String),
    /// No answer within the request timeout or before the deadline.
    Timeout(Duration),
    /// Anything else (transport, TLS, credentials, 5xx).
    Other(String),
}

impl ApiFailure {
    fn from_kube(e: kube::Error, user: &User) -> ApiFailure {
        match e {
            kube::Error::Api(status) if status.code == 403 => ApiFailure::Forbidden(server_text(&status.message)),
            kube::Error::Api(status) if status.code == 404 => ApiFailure::NotFound(server_text(&status.message)),
            kube::Error::Api(status) => ApiFailure::Other(server_text(&format!("{} {}: {}", status.code, status.reason, status.message))),
            // A credential plugin run to refresh a token fails inside the request.
            other => match credentials::auth_failure(&other) {
                Some(auth) => ApiFailure::Other(credentials::describe_auth(auth, user)),
                None => ApiFailure::Other(error_chain(&other)),
            },
        }
    }

    /// A plain-words reason for a gap.
    pub fn describe(&self) -> String {
        match self {
            ApiFailure::Forbidden(m) => format!("forbidden: {m}"),
            ApiFailure::NotFound(m) => format!("not found: {m}"),
            ApiFailure::Timeout(d) => format!("no answer within {}s", d.as_secs_f64()),
            ApiFailure::Other(m) => m.clone(),
        }
    }
}

/// Longest piece of a server's message that is repeated (a misbehaving server may send pages).
const SERVER_TEXT_CHARS: usize = 300;

/// A message from the API server or kubelet, made safe to print: control and format
/// characters removed (as in the report), cut to [`SERVER_TEXT_CHARS`].
pub fn server_text(message: &str) -> String {
    let clean = crate::render::clean(message).replace('\n', " ");
    match clean.char_indices().nth(SERVER_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// An error and its sources on one line (kube nests the useful part several levels down),
/// cleaned like a server's message. A credential failure anywhere in the chain is said in its
/// own words instead: kube's text for it carries the plugin's arguments, environment and output.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(auth) = credentials::auth_failure(e) {
        return credentials::describe_auth(auth, &User::default());
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    server_text(&text)
}

impl Cluster {
    /// Sends one GET, bounded by the request timeout and the overall deadline, and by
    /// [`MAX_RESPONSE_BYTES`] for the answer.
    async fn get<T: serde::de::DeserializeOwned>(&self, request: hyper::Request<Vec<u8>>, deadline: &Deadline) -> std::result::Result<T, ApiFailure> {
        json(&self.body(request, deadline).await?)
    }

    /// The body of the answer to one GET, bounded like [`Cluster::get`].
    async fn body(&self, request: hyper::Request<Vec<u8>>, deadline: &Deadline) -> std::result::Result<hyper::body::Bytes, ApiFailure> {
        // The semaphore is never closed; waiting for a turn is bounded by the requests ahead.
        let _turn = self.permits.acquire().await;
        let limit = deadline.cap(self.request_timeout);
        tokio::time::timeout(limit, self.send(request)).await.unwrap_or(Err(ApiFailure::Timeout(limit)))
    }

    /// The body of a successful answer, read up to [`MAX_RESPONSE_BYTES`]; an error status
    /// becomes the failure its `Status` describes, as kube's own requests do.
    async fn send(&self, request: hyper::Request<Vec<u8>>) -> std::result::Result<hyper::body::Bytes, ApiFailure> {
        use http_body_util::BodyExt;
        let response = self.client.send(request.map(kube::client::Body::from)).await.map_err(|e| ApiFailure::from_kube(e, &self.user))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiFailure::Other(format!(
                    "the answer was larger than {} MiB and was not read further (a list is read in pages of {LIST_PAGE}; is something between here and the API server ignoring `limit`?)",
                    MAX_RESPONSE_BYTES >> 20
                ))
            } else {
                ApiFailure::Other(format!("the answer broke off ({})", server_text(&e.to_string())))
            }
        })?;
        let body = body.to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let failure = serde_json::from_slice::<kube::core::Status>(&body)
            .unwrap_or_else(|_| kube::core::Status::failure(&String::from_utf8_lossy(&body), "the answer is not a Status").with_code(status.as_u16()));
        Err(ApiFailure::from_kube(kube::Error::Api(failure.boxed()), &self.user))
    }

    /// Checks that the API server answers and accepts the credentials, before anything else.
    pub async fn probe(&self, deadline: &Deadline) -> Result<()> {
        let request = plain_get("/version");
        // `/version` is open to every authenticated user, so any failure here is about reaching
        // the server or about credentials, not about RBAC.
        self.get::<Value>(request, deadline).await.map(|_| ()).map_err(|failure| {
            let context = self.context.as_deref().map(|c| format!(" (context {c})")).unwrap_or_default();
            Error::new(format!("cannot reach the Kubernetes API server{context}: {}", failure.describe()))
                .help("check that `kubectl version` works with the same --kubeconfig/--context, or analyze saved state with --snapshot DIR")
        })
    }

    /// Lists `kind` in `namespace` (all namespaces when `None`) in pages of [`LIST_PAGE`],
    /// following continue tokens, up to [`MAX_LIST_BYTES`] in all. Items come back as the API
    /// server's JSON text with `apiVersion` and `kind` filled in, ready for the snapshot. A list
    /// that cannot be read whole is a failure: part of a list is never passed off as all of it.
    pub async fn list(&self, kind: &Kind, namespace: Option<&str>, params: &ListParams, deadline: &Deadline) -> std::result::Result<Vec<Item>, ApiFailure> {
        /// A page as the API server sends it; items stay text (a tree of every object of a big
        /// mesh was most of a question's decoding work).
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(default)]
            metadata: PageMeta,
            #[serde(borrow, default)]
            items: Vec<&'a RawValue>,
        }
        #[derive(serde::Deserialize, Default)]
        struct PageMeta {
            #[serde(default, rename = "continue")]
            next: Option<String>,
        }
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut params = ListParams { limit: Some(LIST_PAGE), ..params.clone() };
        loop {
            let request = kube::core::Request::new(kind.url(namespace)).list(&params).map_err(|e| ApiFailure::Other(e.to_string()))?;
            let body = self.body(request, deadline).await?;
            bytes += body.len();
            let page: Page = json(&body)?;
            let next = page.metadata.next.filter(|c| !c.is_empty());
            if next.is_some() && next == params.continue_token {
                return Err(ApiFailure::Other("the API server answered the same continue token twice; the list was not read to its end".into()));
            }
            for item in page.items {
                items.push(typed_item(item, kind).map_err(|e| ApiFailure::Other(format!("the answer is not valid JSON ({e})")))?);
            }
            if bytes > MAX_LIST_BYTES {
                return Err(ApiFailure::Other(format!(
                    "{} objects in {} MiB and not at the end; not read further, to bound memory. Narrow the question (-n, or a service instead of --all -A)",
                    items.len(),
                    bytes >> 20
                )));
            }
            match next {
                Some(token) => params.continue_token = Some(token),
                None => return Ok(items),
            }
        }
    }

    /// Gets one object (used for the `istio` ConfigMap).
    pub async fn get_object(&self, kind: &Kind, namespace: &str, name: &str, deadline: &Deadline) -> std::result::Result<Value, ApiFailure> {
        let request = kube::core::Request::new(kind.url(Some(namespace))).get(name, &Default::default()).map_err(|e| ApiFailure::Other(e.to_string()))?;
        let mut object: Value = self.get(request, deadline).await?;
        if let Some(obj) = object.as_object_mut() {
            obj.entry("apiVersion").or_insert_with(|| kind.api_version().into());
            obj.entry("kind").or_insert_with(|| kind.kind.into());
        }
        Ok(object)
    }

    /// Resource names `group/version` serves, by API discovery; empty when the group or version
    /// is not served at all (for Istio kinds: the CRDs are not installed).
    pub async fn served_resources(&self, group: &str, version: &str, deadline: &Deadline) -> std::result::Result<Vec<String>, ApiFailure> {
        let request = plain_get(&format!("/apis/{group}/{version}"));
        match self.get::<k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList>(request, deadline).await {
            Ok(list) => Ok(list.resources.into_iter().map(|r| r.name).collect()),
            Err(ApiFailure::NotFound(_)) => Ok(Vec::new()),
            Err(other) => Err(other),
        }
    }
}

/// A GET of a fixed path (`/version`, discovery), which kube's builders only make for objects.
fn plain_get(path: &str) -> hyper::Request<Vec<u8>> {
    let mut request = hyper::Request::new(Vec::new());
    *request.uri_mut() = hyper::Uri::try_from(path).unwrap_or_default();
    request
}

/// Page size for lists: large clusters are read in chunks instead of one huge response.
const LIST_PAGE: u32 = 500;

/// Largest answer read from the API server. A page of [`LIST_PAGE`] large pods is a few MiB;
/// a server (or proxy) that ignores `limit` or streams without end is cut off here.
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Most bytes of one list, all pages together: tens of thousands of pods fit, and what is kept
/// of them stays well within a laptop's memory.
const MAX_LIST_BYTES: usize = 512 << 20;

/// An answer's body as JSON (which may borrow from it).
fn json<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> std::result::Result<T, ApiFailure> {
    serde_json::from_slice(body).map_err(|e| ApiFailure::Other(format!("the answer is not valid JSON ({e})")))
}

/// One object as JSON text.
pub type Item = Box<RawValue>;

/// A list item of `kind` with `apiVersion` and `kind` set: the API server leaves them off
/// items of built-in kinds. They are written in front of the item's members, so the rest of
/// its text is kept as the server sent it.
fn typed_item(item: &RawValue, kind: &Kind) -> serde_json::Result<Item> {
    #[derive(serde::Deserialize)]
    struct Present {
        #[serde(default, rename = "apiVersion")]
        api_version: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        kind: Option<serde::de::IgnoredAny>,
    }
    let text = item.get().trim_start();
    let Some(members) = text.strip_prefix('{') else {
        // Not an object: decoding it says what it is, as it would for a file.
        return Ok(item.to_owned());
    };
    let present: Present = serde_json::from_str(text)?;
    let mut head = String::new();
    for (missing, name, value) in [(present.api_version.is_none(), "apiVersion", kind.api_version()), (present.kind.is_none(), "kind", kind.kind.to_string())] {
        if missing {
            head.push_str(&format!("{}:{},", serde_json::to_string(name)?, serde_json::to_string(&value)?));
        }
    }
    if head.is_empty() {
        return Ok(item.to_owned());
    }
    if members.trim_start().starts_with('}') {
        head.pop();
    }
    RawValue::from_string(format!("{{{head}{members}"))
}

/// Lists `kind` cluster-wide, falling back to `namespaces` one by one when the cluster-wide list
/// is forbidden. Every failure becomes a gap that says what is missing and which RBAC rule would
/// grant it.
async fn list_with_fallback(cluster: &Cluster, kind: &Kind, namespaces: &[String], params: &ListParams, deadline: &Deadline, gaps: &mut Vec<Gap>) -> Vec<Item> {
    let denied = match cluster.list(kind, None, params, deadline).await {
        Ok(items) => return items,
        Err(ApiFailure::Forbidden(message)) if kind.namespaced && !namespaces.is_empty() => ApiFailure::Forbidden(message),
        Err(failure) => {
            gaps.push(list_gap(kind, None, &failure));
            return Vec::new();
        }
    };
    let mut items = Vec::new();
    let mut failed = Vec::new();
    for ns in namespaces {
        match cluster.list(kind, Some(ns), params, deadline).await {
            Ok(found) => items.extend(found),
            Err(failure) => failed.push((ns, failure)),
        }
    }
    if failed.len() == namespaces.len() {
        // Denied everywhere: one gap, with the cluster-wide rule that fixes it.
        gaps.push(list_gap(kind, None, &denied));
        return items;
    }
    let read: Vec<&str> = namespaces.iter().filter(|ns| !failed.iter().any(|(f, _)| f == ns)).map(String::as_str).collect();
    gaps.push(Gap {
        source: kind.resource(),
        reason: format!(
            "{}; read only in namespace(s) {}. A ClusterRole with rule `{}` lets mesh-why see the objects of every namespace",
            denied.describe(),
            read.join(", "),
            kind.rbac_rule("list")
        ),
    });
    gaps.extend(failed.iter().map(|(ns, failure)| list_gap(kind, Some(ns), failure)));
    items
}

/// One list to read.
pub struct Ask {
    /// What to list.
    pub kind: Kind,
    /// Where.
    pub scope: Scope,
    /// Selectors.
    pub params: ListParams,
}

/// Where a list is read.
pub enum Scope {
    /// In one namespace.
    In(String),
    /// Cluster-wide, falling back to these namespaces one by one where that is forbidden.
    Wide(Vec<String>),
}

impl Ask {
    /// `kind` cluster-wide, or in `namespaces` where that is forbidden.
    pub fn wide(kind: Kind, namespaces: &[String]) -> Ask {
        Ask { kind, scope: Scope::Wide(namespaces.to_vec()), params: ListParams::default() }
    }

    /// `kind` in `namespace`.
    pub fn within(kind: Kind, namespace: &str, params: ListParams) -> Ask {
        Ask { kind, scope: Scope::In(namespace.to_string()), params }
    }
}

/// What one list (or one get) read: the kind to add its items as (none when the kind is not
/// served), the items, and the gaps.
pub struct Listed {
    /// The kind to add the items as.
    pub kind: Option<Kind>,
    /// The objects.
    pub items: Vec<Item>,
    /// What could not be read.
    pub gaps: Vec<Gap>,
}

impl Listed {
    /// Only a gap.
    pub fn gap(gap: Gap) -> Listed {
        Listed { kind: None, items: Vec::new(), gaps: vec![gap] }
    }

    /// One object of `kind` read with a GET, as a list of it.
    pub fn one(kind: Kind, object: &Value) -> Listed {
        Listed { kind: Some(kind), items: serde_json::value::to_raw_value(object).into_iter().collect(), gaps: Vec::new() }
    }
}

/// Reads `asks` together (the cluster bounds how many requests are in flight); the answers
/// come back in the order asked, so the capture is the same as read one by one.
pub async fn read_lists(cluster: &Cluster, asks: Vec<Ask>, deadline: &Deadline) -> Vec<Listed> {
    futures::future::join_all(asks.into_iter().map(|ask| read_list(cluster, ask, deadline))).await
}

/// Reads one list; a failure is a gap.
pub async fn read_list(cluster: &Cluster, ask: Ask, deadline: &Deadline) -> Listed {
    let Ask { kind, scope, params } = ask;
    match scope {
        Scope::In(namespace) => match cluster.list(&kind, Some(&namespace), &params, deadline).await {
            Ok(items) => Listed { kind: Some(kind), items, gaps: Vec::new() },
            // As nothing was read, no (empty) file is written for it either.
            Err(failure) => Listed::gap(list_gap(&kind, Some(&namespace), &failure)),
        },
        Scope::Wide(namespaces) => {
            let mut gaps = Vec::new();
            let items = list_with_fallback(cluster, &kind, &namespaces, &params, deadline, &mut gaps).await;
            Listed { kind: Some(kind), items, gaps }
        }
    }
}

/// The gap for a failed list of `kind` (in `namespace`, or cluster-wide).
fn list_gap(kind: &Kind, namespace: Option<&str>, failure: &ApiFailure) -> Gap {
    let place = namespace.map(|ns| format!(" in namespace {ns}")).unwrap_or_default();
    let reason = match failure {
        ApiFailure::Forbidden(message) => {
            let grant = match namespace {
                Some(ns) => format!("a Role in namespace {ns}"),
                None => "a ClusterRole".to_string(),
            };
            format!("not readable{place}: {message}. Grant it with {grant} rule `{}`", kind.rbac_rule("list"))
        }
        ApiFailure::NotFound(_) => format!("{NOT_SERVED}{place} (is the API or CRD installed?)"),
        other => format!("could not be listed{place}: {}", other.describe()),
    };
    Gap { source: kind.resource(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn list_items_get_their_type_in_front_and_keep_their_text() {
        let pods = Kind::core("pods", "Pod", true);
        let typed = typed_item(&item(r#"{"metadata": {"name": "a"}, "spec": {}}"#), &pods).unwrap();
        assert_eq!(typed.get(), r#"{"apiVersion":"v1","kind":"Pod","metadata": {"name": "a"}, "spec": {}}"#);
        assert_eq!(typed_item(&item("{ }"), &pods).unwrap().get(), r#"{"apiVersion":"v1","kind":"Pod" }"#);
        let istio = Kind::grouped("networking.istio.io", "v1", "virtualservices", "VirtualService");
        let whole = r#"{"apiVersion":"networking.istio.io/v1beta1","kind":"VirtualService","metadata":{}}"#;
        assert_eq!(typed_item(&item(whole), &istio).unwrap().get(), whole);
        assert_eq!(typed_item(&item("[1]"), &pods).unwrap().get(), "[1]");
        let half = typed_item(&item(r#"{"kind":"VirtualService"}"#), &istio).unwrap();
        assert_eq!(half.get(), r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService"}"#);
    }
}
