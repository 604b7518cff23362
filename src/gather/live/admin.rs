//! What to read from one Envoy's admin API for the question, and how the answers become the
//! same files a snapshot holds.
//!
//! Only the resources the analysis decodes are fetched: the route configurations named after
//! the target's ports, the listeners on those ports, and the clusters (with endpoints and
//! stats) that belong to the target or that the routes point at. Secrets are never requested.
//! Envoy answers a filtered `config_dump?resource=...` with bare elements; they are reassembled
//! into the usual section form, so a captured `config_dump.json` reads exactly like a full dump.

use super::Deadline;
use super::portforward::{AdminConnection, AdminFailure};
use super::proxies::Choice;
use crate::actual;
use crate::gather::files::{CONFIG_DUMP_FILE, SERVER_INFO_FILE, stats_file};
use crate::intent::target::Target;
use crate::istio::names::ClusterName;
use crate::snapshot::{Blob, Gap, ProxyCapture, StatsFormat, admin_source};
use indexmap::IndexMap;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Why a proxy is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A sidecar that calls the service.
    Caller,
    /// An ingress gateway that routes to the service.
    Gateway,
    /// A pod behind the service (one per subset).
    Destination,
    /// The ambient waypoint that routes the service's traffic.
    Waypoint,
    /// The ztunnel of an ambient caller's node.
    Ztunnel,
}

impl Role {
    /// The word used in the output.
    pub fn word(self) -> &'static str {
        match self {
            Role::Caller => "caller",
            Role::Gateway => "gateway",
            Role::Destination => "destination",
            Role::Waypoint => "waypoint",
            Role::Ztunnel => "ztunnel",
        }
    }
}

/// Envoy refuses a `name_regex` or stats `filter` whose RE2 program exceeds 100 instructions
/// (its default `re2.max_program_size.error_level`), roughly one per literal character. Names
/// longer than this are matched by their prefix; the analysis selects exact names anyway.
const MAX_LITERAL: usize = 40;

/// Alternatives per `name_regex` when several ports are asked about, for the same reason.
const PORTS_PER_PATTERN: usize = 8;

/// Istio proxies' outbound cluster names: `outbound|PORT|SUBSET|` before the host.
const OUTBOUND_PREFIX: &str = "outbound\\|[0-9]+\\|[^|]*\\|";

/// Per-cluster stats, only those Envoy has written (see `read_outbound`).
const STATS_USED: &str = "/stats?usedonly";

/// Istio's request counters; Istio's stats filter creates a series on its first request, so
/// `usedonly` leaves out nothing and spares Envoy matching every other stat.
const PROMETHEUS_REQUESTS: &str = "/stats/prometheus?usedonly&filter=istio_requests_total";

/// The config dump sections read, in Envoy's order, with the repeated fields fetched for each.
const LAYOUT: &[(&str, &[&str])] = &[
    ("ClustersConfigDump", &["dynamic_active_clusters", "dynamic_warming_clusters"]),
    ("EndpointsConfigDump", &["dynamic_endpoint_configs"]),
    ("ListenersConfigDump", &["dynamic_listeners"]),
    ("RoutesConfigDump", &["static_route_configs", "dynamic_route_configs"]),
];

/// The requests a role's reading sends, by the name gaps give them, in order.
fn requests(role: Role) -> &'static [&'static str] {
    match role {
        Role::Destination => &["/server_info", "/config_dump (dynamic_active_clusters)"],
        Role::Waypoint => &["/server_info", "/config_dump (static_route_configs)", "/config_dump (dynamic_active_clusters)"],
        Role::Ztunnel => &["/config_dump"],
        Role::Caller | Role::Gateway => &[
            "/server_info",
            "/config_dump (dynamic_route_configs)",
            "/config_dump (dynamic_listeners)",
            "/stats/prometheus",
            "/config_dump (dynamic_active_clusters)",
            "/config_dump (dynamic_warming_clusters)",
            "/config_dump (dynamic_endpoint_configs)",
            "/stats",
        ],
    }
}

/// What one proxy's reading produced.
pub struct ProxyRead {
    /// The files, as a snapshot holds them.
    pub capture: ProxyCapture,
    /// Requests that failed without ending the reading (an HTTP error for one resource).
    pub gaps: Vec<Gap>,
    /// Admin requests sent.
    pub requests: usize,
    /// Body bytes received.
    pub bytes: usize,
    /// Wall time spent on this proxy.
    pub elapsed: Duration,
}

/// Reads one proxy's admin API for the question, in two parts: [`Reader::start`] needs only the
/// target's ports, so for a caller named by `--from` it runs while the cluster's objects are
/// still being listed; [`Reader::finish`] needs the clusters the intent expects.
pub struct Reader {
    conn: AdminConnection,
    origin: String,
    target: Target,
    role: Role,
    timeout: Duration,
    deadline: Deadline,
    read: ProxyRead,
    /// Config dump elements fetched so far, by field, as Envoy wrote them.
    found: BTreeMap<&'static str, Vec<String>>,
    /// Requests answered (by the name gaps give them), whatever the status.
    answered: BTreeSet<String>,
    /// The request a broken stream or a timeout stopped the reading at, and why.
    stopped: Option<(String, AdminFailure)>,
    /// The `name_regex` patterns of the clusters fetched so far.
    clusters_read: BTreeSet<String>,
    /// Per-cluster counters fetched so far; `None` once a request for them broke.
    stats_text: Option<Vec<u8>>,
    /// Whether what was read is to be read again (see [`Reader::read_again`]).
    again: bool,
    /// The clusters the fetched routes and listeners name (see `note_routed_clusters`).
    routed: BTreeSet<String>,
}

impl Reader {
    /// A reader of the proxy `choice` names, for `target`, over `conn`.
    pub fn new(conn: AdminConnection, choice: &Choice, target: &Target, timeout: Duration, deadline: &Deadline) -> Reader {
        let capture = ProxyCapture { namespace: choice.namespace.clone(), pod: choice.pod.clone(), ..Default::default() };
        let read = ProxyRead { capture, gaps: Vec::new(), requests: 0, bytes: 0, elapsed: Duration::ZERO };
        Reader {
            conn,
            origin: format!("pod {}/{} admin", choice.namespace, choice.pod),
            target: target.clone(),
            role: choice.role,
            timeout,
            deadline: *deadline,
            read,
            found: BTreeMap::new(),
            answered: BTreeSet::new(),
            stopped: None,
            clusters_read: BTreeSet::new(),
            stats_text: None,
            again: false,
            routed: BTreeSet::new(),
        }
    }

    /// Sends the requests that need only the target: for a caller or a gateway, its server
    /// info, route configurations, listeners and request counters, and the clusters its routes
    /// name.
    pub async fn start(mut self) -> Reader {
        let started = Instant::now();
        let outcome = match self.role {
            // The inbound side of a backend: the clusters it accepts the service's traffic on.
            Role::Destination => match self.server_info().await {
                Ok(()) => self.dump("dynamic_active_clusters", &["inbound\\|.*".to_string()], false).await,
                Err(e) => Err(e),
            },
            Role::Caller | Role::Gateway => self.read_routes().await,
            Role::Waypoint => self.read_waypoint_routes().await,
            Role::Ztunnel => self.read_ztunnel().await,
        };
        self.stopped = outcome.err();
        self.read.elapsed += started.elapsed();
        self
    }

    /// Sends the rest of the requests and returns the files. `expected` are the cluster names
    /// the intent expects this caller to hold (they may belong to other hosts, e.g. a mirror).
    /// An HTTP error on one request only leaves a gap. A broken stream or a timeout ends the
    /// reading: what was read before is kept, and each request not answered is a gap; when
    /// nothing was answered, the failure (and the path that failed) is returned.
    pub async fn finish(mut self, expected: &BTreeSet<String>) -> Result<ProxyRead, (String, AdminFailure)> {
        if std::mem::take(&mut self.again) {
            let ProxyCapture { namespace, pod, .. } = std::mem::take(&mut self.read.capture);
            self.read.capture = ProxyCapture { namespace, pod, ..Default::default() };
            self.read.gaps.clear();
            self.found.clear();
            self.answered.clear();
            self.clusters_read.clear();
            self.routed.clear();
            (self.stopped, self.stats_text) = (None, None);
            self = self.start().await;
        }
        let started = Instant::now();
        if self.stopped.is_none() {
            self.stopped = match self.role {
                Role::Caller | Role::Gateway => self.read_clusters(expected).await,
                Role::Waypoint => self.read_waypoint_clusters(expected).await,
                Role::Destination | Role::Ztunnel => Ok(()),
            }
            .err();
        }
        if let Some((path, failure)) = self.stopped.take() {
            if self.answered.is_empty() {
                return Err((path, failure));
            }
            let why = format!("the reading stopped at GET {path}: {}", super::describe(&failure, &format!("GET {path}")));
            for what in requests(self.role).iter().filter(|w| !self.answered.contains(**w)) {
                let (namespace, pod) = (&self.read.capture.namespace, &self.read.capture.pod);
                self.read.gaps.push(Gap { source: admin_source(namespace, pod, what), reason: format!("not read ({why}); what was read before is kept") });
            }
        }
        if let Some(text) = self.stats_text.take() {
            self.read.capture.stats.push((StatsFormat::Text, self.blob(stats_file(StatsFormat::Text), text)));
        }
        if !self.found.is_empty() {
            self.read.capture.config_dump = Some(self.blob(CONFIG_DUMP_FILE, assemble(&self.found)));
        }
        self.read.elapsed += started.elapsed();
        Ok(self.read)
    }

    /// `/server_info`: the node, and for a live dump without bootstrap, the proxy's kind.
    async fn server_info(&mut self) -> Result<(), (String, AdminFailure)> {
        if let Some(body) = self.fetch("/server_info", "/server_info").await? {
            self.read.capture.server_info = Some(self.blob(SERVER_INFO_FILE, body));
        }
        Ok(())
    }

    /// A caller's or gateway's view of the target as its routes have it: the route
    /// configurations and listeners of the target's ports, Istio's request counters, and the
    /// clusters the routes name.
    async fn read_routes(&mut self) -> Result<(), (String, AdminFailure)> {
        self.server_info().await?;
        let ports: Vec<String> = self.target.ports.iter().map(|p| p.port.to_string()).collect();
        let mut route_patterns: Vec<String> = ports.chunks(PORTS_PER_PATTERN).map(|c| c.join("|")).collect();
        // Sniffed (protocol auto) ports get a route configuration per host: `host:PORT`.
        route_patterns.push(format!("{}:[0-9]+", literal(&self.target.fqdn)));
        if self.role == Role::Gateway {
            // Gateways name route configurations after their servers: `http.8080`, `https.443.NAME.NS`.
            route_patterns.push("https?\\.[0-9]+(\\..*)?".into());
        }
        let listener_patterns: Vec<String> = ports.chunks(PORTS_PER_PATTERN).map(|c| format!(".*_(?:{})", c.join("|"))).collect();
        self.dump("dynamic_route_configs", &route_patterns, false).await?;
        self.dump("dynamic_listeners", &listener_patterns, false).await?;
        self.note_routed_clusters();
        if let Some(body) = self.fetch(PROMETHEUS_REQUESTS, "/stats/prometheus").await? {
            self.read.capture.stats.push((StatsFormat::Prometheus, self.blob(stats_file(StatsFormat::Prometheus), body)));
        }
        self.read_clusters(&BTreeSet::new()).await
    }

    /// The clusters, with endpoints, their hosts' health and their counters, of the hosts the
    /// fetched routes and `expected` name that were not read yet.
    async fn read_clusters(&mut self, expected: &BTreeSet<String>) -> Result<(), (String, AdminFailure)> {
        let names = self.routed_clusters(expected);
        let (hosts, others) = cluster_hosts(&self.target.fqdn, &names);
        let patterns = hosts.iter().map(|h| (Some(h), format!("{OUTBOUND_PREFIX}{}", literal(h)))).chain(others.iter().map(|n| (None, literal(n))));
        let unread: Vec<(Option<&String>, String)> = patterns.filter(|(_, p)| self.clusters_read.insert(p.clone())).collect();
        let hosts: Vec<&String> = unread.iter().filter_map(|(h, _)| *h).collect();
        let cluster_patterns: Vec<String> = unread.iter().map(|(_, p)| p.clone()).collect();
        if cluster_patterns.is_empty() {
            return Ok(());
        }
        self.dump("dynamic_active_clusters", &cluster_patterns, false).await?;
        self.dump("dynamic_warming_clusters", &cluster_patterns, false).await?;
        self.dump("dynamic_endpoint_configs", &cluster_patterns, true).await?;
        // Host health comes with the endpoints above: Envoy dumps each host's health as it
        // uses it (outlier ejection and active health checks included), and ejections are
        // counted in the stats below. `/clusters` cannot be filtered, and on a big mesh it is
        // larger than everything else read here together.
        // Per-cluster counters, by host: Istio ends the cluster part of the name with `;`.
        // `usedonly`: Envoy still walks every stat (a big mesh's sidecar has hundreds of
        // thousands), but matches and prints only those ever written, which cuts its work several
        // times over. What is left out was never written, so is zero, and the analysis only acts
        // on counts above zero.
        let stats = hosts.iter().map(|host| format!("{STATS_USED}&filter={}", query_escape(&format!("^cluster\\.[^;]*{};", literal(host)))));
        for path in stats.collect::<Vec<_>>() {
            let body = self.fetch(&path, "/stats").await;
            // Counters of some hosts would be taken for all of them: keep them only when whole.
            match &body {
                Ok(Some(body)) => self.stats_text.get_or_insert_with(Vec::new).extend(body),
                Err(_) => self.stats_text = None,
                Ok(None) => {}
            }
            body?;
        }
        Ok(())
    }

    /// A waypoint's share of the target, first part: the inline route configurations its HBONE
    /// listener holds for the service's ports (`inbound-vip|PORT|http|HOST`, listed as static).
    async fn read_waypoint_routes(&mut self) -> Result<(), (String, AdminFailure)> {
        self.server_info().await?;
        let host = literal(&self.target.fqdn);
        let ports: Vec<String> = self.target.ports.iter().map(|p| p.port.to_string()).collect();
        let routes: Vec<String> = ports.chunks(PORTS_PER_PATTERN).map(|c| format!("inbound-vip\\|(?:{})\\|http\\|{host}", c.join("|"))).collect();
        self.dump("static_route_configs", &routes, false).await?;
        self.note_routed_clusters();
        Ok(())
    }

    /// The rest of a waypoint's share: its `inbound-vip` clusters for the service plus those its
    /// routes name. Its endpoints are HBONE addresses the analysis does not compare, so neither
    /// EDS nor `/clusters` is read.
    async fn read_waypoint_clusters(&mut self, expected: &BTreeSet<String>) -> Result<(), (String, AdminFailure)> {
        let host = literal(&self.target.fqdn);
        let names = self.routed_clusters(expected);
        let mut clusters = vec![format!("inbound-vip\\|[0-9]+\\|[^|]*\\|{host}")];
        clusters.extend(names.iter().filter(|n| !n.starts_with("inbound-vip|")).map(|n| literal(n)));
        self.dump("dynamic_active_clusters", &clusters, false).await
    }

    /// A ztunnel's dump: it has no filters, so it is read whole, within the response size limit.
    async fn read_ztunnel(&mut self) -> Result<(), (String, AdminFailure)> {
        if let Some(body) = self.fetch("/config_dump", "/config_dump").await? {
            self.read.capture.config_dump = Some(self.blob(CONFIG_DUMP_FILE, body));
        }
        Ok(())
    }

    fn blob(&self, file: &str, bytes: Vec<u8>) -> Blob {
        Blob { origin: format!("{} ({file})", self.origin), bytes }
    }

    /// `GET path`: `Some(body)` on 200, `None` (and a gap naming `what`, the path without its
    /// query) on another status.
    async fn fetch(&mut self, path: &str, what: &str) -> Result<Option<Vec<u8>>, (String, AdminFailure)> {
        self.read.requests += 1;
        let response = self.conn.get(path, self.timeout, &self.deadline).await.map_err(|f| (what.to_string(), f))?;
        self.answered.insert(what.to_string());
        self.read.bytes += response.body.len();
        if response.status == 200 {
            return Ok(Some(response.body));
        }
        let text = String::from_utf8_lossy(&response.body);
        let first: String = text.lines().next().unwrap_or("").chars().take(200).collect();
        self.gap(what, format!("Envoy answered {}: {first}; the checks that need it were skipped", response.status));
        Ok(None)
    }

    fn gap(&mut self, what: &str, reason: String) {
        let source = admin_source(&self.read.capture.namespace, &self.read.capture.pod, what);
        self.read.gaps.push(Gap { source, reason });
    }

    /// Adds the elements of `field` whose names match any of `patterns`, one request per
    /// pattern, to the dump; the field is left out when no request succeeded (as Envoy leaves
    /// out what it does not have), and a request that fails leaves a gap.
    async fn dump(&mut self, field: &'static str, patterns: &[String], include_eds: bool) -> Result<(), (String, AdminFailure)> {
        let eds = if include_eds { "include_eds=true&" } else { "" };
        let what = format!("/config_dump ({field})");
        for pattern in patterns {
            let path = format!("/config_dump?{eds}resource={field}&name_regex={}", query_escape(pattern));
            let Some(body) = self.fetch(&path, &what).await? else { continue };
            match elements(&body) {
                Ok(list) => self.found.entry(field).or_default().extend(list),
                Err(e) => self.gap(&what, format!("not a config dump ({e}); the checks that need it were skipped")),
            }
        }
        Ok(())
    }

    /// What the reading so far shows of the target, read with the code the analysis uses
    /// (`extra` as there). With /server_info the node says what kind of proxy this is, so routes
    /// are read on its own shapes (a gateway's server routes, a waypoint's inbound-vip ones).
    pub fn so_far(&self, extra: &BTreeSet<String>) -> actual::Actual {
        let config_dump = Some(Blob { origin: self.origin.clone(), bytes: assemble(&self.found) });
        let partial = ProxyCapture { config_dump, server_info: self.read.capture.server_info.clone(), ..Default::default() };
        actual::read(&partial, &self.target, extra)
    }

    /// Has [`Reader::finish`] read everything again first, as if nothing had been read. A
    /// reading that broke is not repeated: its failure stands, as any other reading's.
    pub fn read_again(&mut self) {
        self.again = self.stopped.is_none();
    }

    /// Records the cluster names the fetched routes and listeners send the target's traffic
    /// to, read with the code the analysis uses, so the capture holds every cluster the analysis
    /// will look up. Read once, as the routes are: a big mesh's route configuration is megabytes.
    fn note_routed_clusters(&mut self) {
        // A dump that does not parse here is a gap of the analysis later, with a precise
        // reason; until then the expected names are still worth fetching.
        let read = self.so_far(&BTreeSet::new());
        let mut names = BTreeSet::new();
        for port in read.view.iter().flat_map(|v| &v.ports) {
            names.extend(port.tcp_destinations.iter().map(|c| c.name.clone()));
            for route in port.virtual_host.iter().flat_map(|vh| &vh.routes) {
                names.extend(route.action.clusters().map(|c| c.name.clone()));
            }
        }
        self.routed = names;
    }

    /// The clusters the fetched routes name, plus `expected`.
    fn routed_clusters(&self, expected: &BTreeSet<String>) -> BTreeSet<String> {
        self.routed.union(expected).cloned().collect()
    }
}

/// The hosts of Istio outbound clusters among `names` (always including `fqdn`), and the names
/// that are not Istio outbound clusters (`BlackHoleCluster`, `PassthroughCluster`).
fn cluster_hosts(fqdn: &str, names: &BTreeSet<String>) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut hosts = BTreeSet::from([fqdn.to_string()]);
    let mut others = BTreeSet::new();
    for name in names {
        match ClusterName::parse(name) {
            Some(c) => hosts.insert(c.host),
            None => others.insert(name.clone()),
        };
    }
    (hosts, others)
}

/// `text` as an RE2 literal, cut to its first [`MAX_LITERAL`] characters (then `.*`).
fn literal(text: &str) -> String {
    if text.chars().count() <= MAX_LITERAL {
        return regex::escape(text);
    }
    let prefix: String = text.chars().take(MAX_LITERAL).collect();
    format!("{}.*", regex::escape(&prefix))
}

/// `{"configs": [elements]}` (a filtered dump) → the elements, each without its `@type`.
/// Envoy answers `{}` when nothing matches. The elements stay text: a big mesh's route
/// configuration runs to megabytes, and the analysis decodes it once, later.
fn elements(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Filtered {
        #[serde(default)]
        configs: Vec<IndexMap<String, Box<RawValue>>>,
    }
    let filtered: Filtered = serde_json::from_slice(body)?;
    filtered
        .configs
        .into_iter()
        .map(|mut element| {
            // In a full dump the element type is implied by the section field.
            element.shift_remove("@type");
            object(element.iter().map(|(k, v)| (k.as_str(), &**v)))
        })
        .collect()
}

/// The JSON text of the object with `members`, in order.
fn object<'a>(members: impl Iterator<Item = (&'a str, &'a RawValue)>) -> Result<String, serde_json::Error> {
    let mut text = String::from("{");
    for (i, (key, value)) in members.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key)?);
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    Ok(text)
}

/// A whole config dump (`{"configs": [sections]}`) from the fetched fields, in Envoy's section
/// order; a section none of whose fields was fetched is left out.
fn assemble(found: &BTreeMap<&'static str, Vec<String>>) -> Vec<u8> {
    let mut out = String::from("{\"configs\":[");
    let sections = LAYOUT.iter().filter(|(_, fields)| fields.iter().any(|f| found.contains_key(f)));
    for (i, (ty, fields)) in sections.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{{\"@type\":\"type.googleapis.com/envoy.admin.v3.{ty}\""));
        for field in fields.iter().filter(|f| found.contains_key(*f)) {
            out.push_str(&format!(",\"{field}\":["));
            for (j, element) in found[field].iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(element);
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str("]}");
    out.into_bytes()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn filtered_elements_reassemble_into_sections() {
        let body = br#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig","version_info":"1","route_config":{"name":"9080"}}]}"#;
        let list = elements(body).unwrap();
        let dump = assemble(&BTreeMap::from([("dynamic_route_configs", list)]));
        let v: Value = serde_json::from_slice(&dump).unwrap();
        assert_eq!(v["configs"][0]["@type"], "type.googleapis.com/envoy.admin.v3.RoutesConfigDump");
        assert_eq!(v["configs"][0]["dynamic_route_configs"][0]["route_config"]["name"], "9080");
        assert!(v["configs"][0]["dynamic_route_configs"][0].get("@type").is_none());
        assert!(elements(b"{}").unwrap().is_empty());
        // Envoy's text is kept as it is, members in their order.
        let text = String::from_utf8(dump).unwrap();
        assert!(text.contains(r#"{"version_info":"1","route_config":{"name":"9080"}}"#), "{text}");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a|b.c d"), "a%7Cb.c%20d");
    }

    #[test]
    fn cluster_patterns_match_whole_names_and_stay_short() {
        let pattern = format!("^(?:{OUTBOUND_PREFIX}{})$", literal("reviews.default.svc.cluster.local"));
        let re = regex::Regex::new(&pattern).unwrap();
        assert!(re.is_match("outbound|9080|v1|reviews.default.svc.cluster.local"));
        assert!(re.is_match("outbound|9080||reviews.default.svc.cluster.local"));
        assert!(!re.is_match("outbound|9080||ratingsXdefault.svc.cluster.local"));
        let long = literal("a-service-name-that-is-long.a-namespace-that-is-long.svc.cluster.local");
        assert!(long.ends_with(".*") && long.len() < 60);
    }
}
