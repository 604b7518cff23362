//! Actual: what one Envoy really holds for the asked service, read from its admin output and
//! normalized into the same [`ProxyView`] shape as the intent.

pub mod ztunnel;

use crate::envoy::ProxyKind;
use crate::envoy::clusters::{self, HostStatus};
use crate::envoy::config_dump::{ConfigDump, Node, Selection};
use crate::envoy::server_info::{self, ServerInfo};
use crate::envoy::stats::Stats;
use crate::envoy::types::{HeaderMatcher, Route, RouteAction, RouteMatch, StringMatcher};
use crate::error::Result;
use crate::intent::target::Target;
use crate::istio::names::{ClusterName, InboundVipCluster, Protocol, cluster_host};
use crate::snapshot::{Blob, ObjectRef, ProxyCapture};
use crate::view::{
    Action, ClusterView, HeaderCondition, MatchView, PathMatch, PortView, ProxyView, RouteFeatures, RouteView, VirtualHostView, WeightedCluster,
};
use std::collections::{BTreeMap, BTreeSet};

/// One proxy's configuration and live state for the target.
#[derive(Debug, Default)]
pub struct Actual {
    /// Normalized configuration (`None` without a config dump).
    pub view: Option<ProxyView>,
    /// The Envoy node (bootstrap or server_info).
    pub node: Option<Node>,
    /// `/server_info`.
    pub server_info: Option<ServerInfo>,
    /// Live hosts per cluster from `/clusters`.
    pub hosts: BTreeMap<String, Vec<HostStatus>>,
    /// Counters.
    pub stats: Stats,
    /// Whether the dump carried endpoints (`include_eds`).
    pub has_eds: bool,
    /// Listeners rejected by Envoy (NACKed updates), with details.
    pub rejected: Vec<(String, String)>,
    /// What was missing from the capture, or unreadable in it.
    pub missing: Vec<String>,
    /// Why each unreadable file (also in `missing`) could not be read.
    pub unreadable: BTreeMap<String, String>,
    /// The target's route configurations: name, `version_info`, `last_updated`.
    pub route_versions: Vec<(String, Option<String>, Option<String>)>,
}

/// What a question reads of one proxy's capture: the target's listeners, route configurations
/// and virtual hosts, and the clusters of its host plus `extra` (with their endpoints and
/// counters). Reading a capture and cutting one down to a question ([`crate::gather`]) ask the
/// same of it.
pub struct Wanted<'a> {
    target: &'a Target,
    extra: &'a BTreeSet<String>,
    /// The target's ports, as the route configurations and listeners of a sidecar name them.
    port_names: Vec<String>,
    /// `HOST:PORT`, the route configurations of sniffed ports.
    sniffed_names: Vec<String>,
}

impl<'a> Wanted<'a> {
    /// What is read for `target`, and of the clusters of other hosts, `extra`.
    pub fn new(target: &'a Target, extra: &'a BTreeSet<String>) -> Wanted<'a> {
        let port_names = target.ports.iter().map(|p| p.port.to_string()).collect();
        let sniffed_names = target.ports.iter().map(|p| format!("{}:{}", target.fqdn, p.port)).collect();
        Wanted { target, extra, port_names, sniffed_names }
    }

    /// Whether the cluster `name` (its config, endpoints, hosts and counters) is read.
    pub fn cluster(&self, name: &str) -> bool {
        self.extra.contains(name) || cluster_host(name).is_some_and(|h| h == self.target.fqdn)
    }

    fn is_waypoint_route_config(&self, name: &str) -> bool {
        InboundVipCluster::parse(name).is_some_and(|c| c.host == self.target.fqdn)
    }

    fn route_config(&self, name: &str) -> bool {
        self.port_names.iter().any(|p| p == name)
            || self.sniffed_names.iter().any(|p| p == name)
            || is_gateway_route_config(name)
            || self.is_waypoint_route_config(name)
    }

    fn virtual_host(&self, rc: &str, name: &str, domains: &[String]) -> bool {
        let fqdn = &self.target.fqdn;
        is_gateway_route_config(rc)
            || self.is_waypoint_route_config(rc)
            || name.strip_prefix(fqdn.as_str()).is_some_and(|rest| rest.starts_with(':'))
            || domains.iter().any(|d| d == fqdn || d.trim_end_matches('.') == fqdn)
    }

    fn listener(&self, name: &str) -> bool {
        self.port_names.iter().any(|p| name.strip_suffix(p.as_str()).is_some_and(|rest| rest.ends_with('_')))
    }

    /// Runs `read` with the config dump [`Selection`] of what is wanted.
    pub fn with_selection<R>(&self, read: impl FnOnce(&Selection<'_>) -> R) -> R {
        let (route_config, virtual_host) = (|n: &str| self.route_config(n), |rc: &str, n: &str, d: &[String]| self.virtual_host(rc, n, d));
        let (cluster, listener) = (|n: &str| self.cluster(n), |n: &str| self.listener(n));
        read(&Selection { route_config: &route_config, virtual_host: &virtual_host, cluster: &cluster, listener: &listener })
    }
}

/// Reads `capture` for `target`, decoding only what concerns it (plus `extra_clusters`); a
/// file that cannot be read is listed in `missing` and `unreadable`.
pub fn read(capture: &ProxyCapture, target: &Target, extra_clusters: &BTreeSet<String>) -> Actual {
    let wanted = Wanted::new(target, extra_clusters);
    wanted.with_selection(|selection| read_selected(capture, &wanted, selection))
}

fn read_selected(capture: &ProxyCapture, wanted: &Wanted<'_>, selection: &Selection<'_>) -> Actual {
    let (target, extra_clusters) = (wanted.target, wanted.extra);
    let mut actual = Actual::default();
    let wants_cluster = |name: &str| wanted.cluster(name);
    // A file that cannot be read is that proxy's gap, as if it had not been captured: the rest
    // of its capture, and every other proxy, is still analysed. The dump is read beside the
    // other files: it is the largest, and each is read on its own.
    let (dump, ()) = crate::parallel::join(
        || capture.config_dump.as_ref().map(|blob| text(blob).and_then(|t| ConfigDump::parse(t, &blob.origin, selection))),
        || actual.read_beside_dump(capture, &wants_cluster),
    );
    let dump = match dump {
        Some(Ok(dump)) => Some(dump),
        Some(Err(e)) => {
            actual.unreadable("config_dump.json", &e);
            None
        }
        None => {
            actual.missing.push("config_dump.json".into());
            None
        }
    };
    // A dump with endpoints carries each host's health as Envoy uses it (a live reading takes
    // it from there, not from the unfilterable `/clusters`).
    if capture.clusters.is_none() && dump.as_ref().is_none_or(|d| d.endpoints.is_none()) {
        actual.missing.push("clusters.json".into());
    }
    // Named in the order a capture lists its files, whichever was read first.
    let order = ["config_dump.json", "server_info.json", "clusters.json"];
    actual.missing.sort_by_key(|m| order.iter().position(|f| f == m).unwrap_or(order.len()));
    actual.node = dump.as_ref().and_then(|d| d.node.clone()).or_else(|| actual.server_info.as_ref().and_then(|s| s.node.clone()));
    if let Some(dump) = dump {
        actual.has_eds = dump.endpoints.is_some();
        actual.rejected = dump.listeners.iter().filter_map(|l| Some((l.name.clone(), l.error.clone()?))).collect();
        // A live capture's dump holds no bootstrap, so the node may come from /server_info.
        let kind = actual.node.as_ref().map_or(ProxyKind::Sidecar, |n| n.kind.clone());
        actual.view = Some(normalize(&dump, &kind, target, &actual.hosts, extra_clusters));
        actual.route_versions = dump.route_configs.iter().map(|rc| (rc.name.clone(), rc.version_info.clone(), rc.last_updated.clone())).collect();
    }
    actual
}

impl Actual {
    /// Reads a capture's files other than its config dump: server info, `/clusters`, stats.
    fn read_beside_dump(&mut self, capture: &ProxyCapture, wants_cluster: &dyn Fn(&str) -> bool) {
        match &capture.server_info {
            Some(blob) => match text(blob).and_then(|t| server_info::parse(t, &blob.origin)) {
                Ok(info) => self.server_info = Some(info),
                Err(e) => self.unreadable("server_info.json", &e),
            },
            None => self.missing.push("server_info.json".into()),
        }
        if let Some(blob) = &capture.clusters {
            match text(blob).and_then(|t| clusters::parse(t, &blob.origin, wants_cluster)) {
                Ok(list) => self.hosts.extend(list.into_iter().map(|c| (c.name, c.hosts))),
                Err(e) => self.unreadable("clusters.json", &e),
            }
        }
        if capture.stats.is_empty() {
            self.missing.push("stats".into());
        }
        for (format, blob) in &capture.stats {
            // Counters from a file read halfway would be wrong: a file is taken whole or not at all.
            let mut one = Stats::default();
            match text(blob).and_then(|t| one.add(*format, t, &blob.origin, wants_cluster)) {
                Ok(()) => self.stats.merge(one),
                Err(e) => self.unreadable(crate::gather::files::stats_file(*format), &e),
            }
        }
    }

    /// Records `file` as unreadable, with why.
    fn unreadable(&mut self, file: &str, e: &crate::error::Error) {
        self.missing.push(file.to_string());
        self.unreadable.insert(file.to_string(), e.brief());
    }
}

/// Gateway route configurations are named `http.PORT` or `https.PORT.NAME.GATEWAY.NAMESPACE`;
/// all their virtual hosts are read, since any of them may route to the service.
fn is_gateway_route_config(name: &str) -> bool {
    name.starts_with("http.") || name.starts_with("https.")
}

fn text(blob: &Blob) -> Result<&str> {
    std::str::from_utf8(&blob.bytes)
        .map_err(|_| crate::error::Error::new("file is not UTF-8 text (binary content?)").at(&blob.origin).help("re-capture it from the proxy's admin port"))
}

/// Builds the normalized view of the dump of a gateway (`router`), a waypoint or a sidecar.
fn normalize(dump: &ConfigDump, kind: &ProxyKind, target: &Target, hosts: &BTreeMap<String, Vec<HostStatus>>, extra: &BTreeSet<String>) -> ProxyView {
    let mut view = ProxyView::default();
    view.ports = match kind {
        ProxyKind::Router => gateway_entries(dump, target),
        ProxyKind::Waypoint => waypoint_entries(dump, target),
        _ => sidecar_entries(dump, target),
    };
    view.clusters = clusters(dump, target, &view, hosts, extra);
    if *kind == ProxyKind::Waypoint {
        // A waypoint holds outbound clusters only for the destinations of services it serves;
        // the target's are judged by the routes that name them, not by being there.
        let named: BTreeSet<String> =
            view.ports.iter().flat_map(|p| p.virtual_host.iter()).flat_map(|vh| &vh.routes).flat_map(|r| r.action.clusters()).map(|c| c.name.clone()).collect();
        view.clusters.retain(|name, _| InboundVipCluster::parse(name).is_some() || named.contains(name));
        // Its endpoints are HBONE addresses inside Envoy, not pod addresses.
        view.clusters.values_mut().for_each(|c| c.endpoints = None);
    }
    view
}

/// One entry per HTTP service port, as a waypoint serves it: the inline route configuration
/// `inbound-vip|PORT|http|HOST` and its one virtual host.
fn waypoint_entries(dump: &ConfigDump, target: &Target) -> Vec<PortView> {
    let mut entries = Vec::new();
    for tp in &target.ports {
        let name = InboundVipCluster { port: tp.port, protocol: "http", subset: String::new(), host: target.fqdn.clone() }.to_string();
        let Some((rc, vh)) = dump.route_configs.iter().filter(|rc| rc.name == name).find_map(|rc| rc.virtual_hosts.first().map(|vh| (rc, vh))) else {
            continue;
        };
        entries.push(PortView {
            key: crate::intent::port_key(tp.port),
            port: tp.port,
            protocol: tp.protocol,
            route_config: Some(rc.name.clone()),
            virtual_host: Some(VirtualHostView { name: vh.name.clone(), domains: vh.domains.clone(), routes: vh.routes.iter().map(route_view).collect() }),
            tcp_destinations: Vec::new(),
        });
    }
    entries
}

/// One entry per gateway virtual host whose routes reach the target.
fn gateway_entries(dump: &ConfigDump, target: &Target) -> Vec<PortView> {
    let mut out = Vec::new();
    for rc in dump.route_configs.iter().filter(|rc| is_gateway_route_config(&rc.name)) {
        for vh in &rc.virtual_hosts {
            let routes: Vec<RouteView> = vh.routes.iter().map(route_view).collect();
            let reaches = routes.iter().flat_map(|r| r.action.clusters()).any(|c| ClusterName::parse(&c.name).is_some_and(|n| n.host == target.fqdn));
            if !reaches {
                continue;
            }
            out.push(PortView {
                key: format!("vhost {}", vh.name),
                port: vh.name.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0),
                protocol: Protocol::Http,
                route_config: Some(rc.name.clone()),
                virtual_host: Some(VirtualHostView { name: vh.name.clone(), domains: vh.domains.clone(), routes }),
                tcp_destinations: Vec::new(),
            });
        }
    }
    out
}

/// One entry per service port, as a sidecar serves it.
fn sidecar_entries(dump: &ConfigDump, target: &Target) -> Vec<PortView> {
    let mut entries = Vec::new();
    for tp in &target.ports {
        let sniffed = format!("{}:{}", target.fqdn, tp.port);
        let port_name = tp.port.to_string();
        let found =
            dump.route_configs.iter().filter(|rc| rc.name == port_name || rc.name == sniffed).find_map(|rc| rc.virtual_hosts.first().map(|vh| (rc, vh)));
        let mut pv = PortView {
            key: crate::intent::port_key(tp.port),
            port: tp.port,
            protocol: tp.protocol,
            route_config: None,
            virtual_host: None,
            tcp_destinations: Vec::new(),
        };
        if let Some((rc, vh)) = found {
            pv.protocol = if rc.name == sniffed {
                Protocol::Auto
            } else if tp.protocol.is_http() {
                tp.protocol
            } else {
                Protocol::Http
            };
            pv.route_config = Some(rc.name.clone());
            pv.virtual_host = Some(VirtualHostView { name: vh.name.clone(), domains: vh.domains.clone(), routes: vh.routes.iter().map(route_view).collect() });
        } else if let Some(l) =
            dump.listeners.iter().find(|l| l.name.ends_with(&format!("_{}", tp.port)) && !l.tcp_clusters.is_empty() && l.route_configs.is_empty())
        {
            pv.tcp_destinations = l
                .tcp_clusters
                .iter()
                .filter(|c| ClusterName::parse(c).is_some_and(|n| n.host == target.fqdn))
                .map(|c| WeightedCluster { name: c.clone(), weight: l.tcp_weights.get(c).copied().unwrap_or(100) })
                .collect();
            if !pv.tcp_destinations.is_empty() && !tp.protocol.is_tcp_class() {
                pv.protocol = Protocol::Tcp;
            }
        }
        entries.push(pv);
    }
    entries
}

/// The target's clusters, those the routes name and those the intent expects, with endpoints.
fn clusters(
    dump: &ConfigDump,
    target: &Target,
    view: &ProxyView,
    hosts: &BTreeMap<String, Vec<HostStatus>>,
    extra: &BTreeSet<String>,
) -> BTreeMap<String, ClusterView> {
    let mut out = BTreeMap::new();
    let mut names: BTreeSet<String> = dump.cluster_names.iter().filter(|n| cluster_host(n).is_some_and(|h| h == target.fqdn)).cloned().collect();
    names.extend(extra.iter().cloned());
    for port in &view.ports {
        names.extend(port.virtual_host.iter().flat_map(|vh| vh.routes.iter()).flat_map(|r| r.action.clusters()).map(|c| c.name.clone()));
    }
    for name in names {
        let cluster = dump.cluster(&name);
        let eds = dump.endpoints.as_ref().and_then(|eps| eps.iter().find(|e| e.cluster_name == name));
        let endpoints = match (hosts.get(&name), eds) {
            (Some(h), _) => Some(h.iter().map(|h| (h.address.clone(), h.is_healthy())).collect()),
            (None, Some(cla)) => Some(
                cla.endpoints
                    .iter()
                    .flat_map(|l| l.lb_endpoints.iter())
                    .filter_map(|e| {
                        let addr = e.endpoint.as_ref()?.address.as_ref()?.socket_address.as_ref()?.to_addr();
                        Some((addr, matches!(e.health_status.as_deref(), None | Some("HEALTHY" | "UNKNOWN"))))
                    })
                    .collect(),
            ),
            _ => None,
        };
        out.insert(
            name.clone(),
            ClusterView {
                present: dump.has_cluster(&name),
                lb_policy: cluster.map(|c| c.lb_policy.clone().unwrap_or_else(|| "ROUND_ROBIN".into())),
                destination_rule: cluster.and_then(|c| c.metadata.as_ref()?.istio("config").and_then(config_ref)),
                endpoints,
                name,
            },
        );
    }
    out
}

/// `/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME` → an object reference.
pub fn config_ref(path: &str) -> Option<ObjectRef> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ns_at = parts.iter().position(|p| *p == "namespaces")?;
    let kind = match *parts.get(ns_at + 2)? {
        "virtual-service" => "VirtualService",
        "destination-rule" => "DestinationRule",
        other => other,
    };
    Some(ObjectRef::new(kind, parts.get(ns_at + 1)?, parts.get(ns_at + 3)?))
}

fn route_view(r: &Route) -> RouteView {
    let action = if let Some(dr) = &r.direct_response {
        Action::DirectResponse { status: dr.status }
    } else if r.redirect.is_some() {
        Action::Redirect
    } else {
        let ra = r.route.clone().unwrap_or_default();
        let clusters = match (&ra.cluster, &ra.weighted_clusters) {
            (Some(c), _) => vec![WeightedCluster { name: c.clone(), weight: 100 }],
            (None, Some(w)) => w.clusters.iter().map(|c| WeightedCluster { name: c.name.clone(), weight: c.weight_u32() }).collect(),
            _ => Vec::new(),
        };
        Action::Forward { clusters }
    };
    RouteView {
        name: r.name.clone().unwrap_or_default(),
        matcher: match_view(&r.matcher),
        action,
        timeout: r.route.as_ref().and_then(|a| a.timeout.clone()),
        features: route_features(r),
        source: r.metadata.as_ref().and_then(|m| m.istio("config")).and_then(config_ref),
        rule_index: None,
    }
}

/// Rewrites, faults (from the fault filter's per-route config), mirrors and retries of a route.
fn route_features(r: &Route) -> RouteFeatures {
    let none = RouteAction::default();
    let action = r.route.as_ref().unwrap_or(&none);
    let mut rewrite = Vec::new();
    rewrite.extend(action.prefix_rewrite.as_ref().map(|p| format!("uri {p}")));
    rewrite.extend(action.host_rewrite_literal.as_ref().map(|h| format!("authority {h}")));
    let fault_config = r.typed_per_filter_config.as_ref().and_then(|c| c.get("envoy.filters.http.fault"));
    let mut fault = Vec::new();
    if let Some(fc) = fault_config {
        fault.extend(fc.pointer("/abort/http_status").and_then(|s| s.as_u64()).map(|s| format!("abort {s}")));
        fault.extend(fc.pointer("/delay/fixed_delay").and_then(|d| d.as_str()).map(|d| format!("delay {d}")));
    }
    let mirror = action.request_mirror_policies.iter().chain(action.request_mirror_policy.iter()).map(|m| m.cluster.clone()).collect();
    RouteFeatures { rewrite, fault, mirror, retries: action.retry_policy.as_ref().map(|p| p.num_retries.unwrap_or(1)) }
}

fn match_view(m: &RouteMatch) -> MatchView {
    let path = if let Some(p) = &m.path {
        PathMatch::Exact(p.clone())
    } else if let Some(r) = m.safe_regex.as_ref().map(|r| r.regex.clone()).or_else(|| m.regex.clone()) {
        PathMatch::Regex(r)
    } else if let Some(p) = &m.path_separated_prefix {
        PathMatch::SeparatedPrefix(p.clone())
    } else {
        PathMatch::Prefix(m.prefix.clone().unwrap_or_else(|| "/".into()))
    };
    let mut headers: Vec<HeaderCondition> = m.headers.iter().map(header_view).collect();
    headers.sort();
    let mut query: Vec<String> = m
        .query_parameters
        .iter()
        .map(|q| {
            let name = q.get("name").and_then(|n| n.as_str()).unwrap_or_default();
            let sm: StringMatcher = q.get("string_match").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default();
            let (kind, value) = string_matcher(&sm).unwrap_or(("present", String::new()));
            format!("{name} {kind} {value}").trim_end().to_string()
        })
        .collect();
    query.sort();
    MatchView { path, ignore_case: m.case_sensitive == Some(false), headers, query }
}

fn string_matcher(sm: &StringMatcher) -> Option<(&'static str, String)> {
    if let Some(e) = &sm.exact {
        Some(("exact", e.clone()))
    } else if let Some(p) = &sm.prefix {
        Some(("prefix", p.clone()))
    } else if let Some(r) = &sm.safe_regex {
        Some(("regex", r.regex.clone()))
    } else if let Some(s) = &sm.suffix {
        Some(("suffix", s.clone()))
    } else {
        sm.contains.as_ref().map(|c| ("contains", c.clone()))
    }
}

fn header_view(h: &HeaderMatcher) -> HeaderCondition {
    let (kind, value) = h
        .string_match
        .as_ref()
        .and_then(string_matcher)
        .or_else(|| h.exact_match.clone().map(|v| ("exact", v)))
        .or_else(|| h.prefix_match.clone().map(|v| ("prefix", v)))
        .or_else(|| h.safe_regex_match.as_ref().map(|r| ("regex", r.regex.clone())))
        .or_else(|| h.regex_match.clone().map(|v| ("regex", v)))
        .unwrap_or(("present", String::new()));
    HeaderCondition { name: h.name.to_ascii_lowercase(), kind: kind.into(), value, invert: h.invert_match.unwrap_or(false) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::target::TargetPort;

    /// A live capture's config dump holds no bootstrap: the `/server_info` node must still mark
    /// a gateway, or its `http.PORT` route configurations would be read as a sidecar's.
    #[test]
    fn a_gateway_dump_without_bootstrap_is_known_by_its_server_info_node() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/scenarios/gateway-healthy/proxies/istio-system/istio-ingressgateway-5d8f7c9b6-ggggg");
        let mut dump: serde_json::Value = serde_json::from_slice(&std::fs::read(format!("{dir}/config_dump.json")).unwrap()).unwrap();
        dump["configs"].as_array_mut().unwrap().retain(|s| !s["@type"].as_str().unwrap().ends_with("BootstrapConfigDump"));
        let blob = |file: &str, bytes: Vec<u8>| Blob { origin: file.to_string(), bytes };
        let capture = ProxyCapture {
            namespace: "istio-system".into(),
            pod: "istio-ingressgateway-5d8f7c9b6-ggggg".into(),
            config_dump: Some(blob("config_dump.json", serde_json::to_vec(&dump).unwrap())),
            clusters: None,
            stats: Vec::new(),
            server_info: Some(blob("server_info.json", std::fs::read(format!("{dir}/server_info.json")).unwrap())),
        };
        let target = Target {
            name: "reviews".into(),
            namespace: "default".into(),
            fqdn: "reviews.default.svc.cluster.local".into(),
            ports: vec![TargetPort { port: 9080, name: Some("http".into()), app_protocol: None, protocol: Protocol::Http, target_port: None }],
            selector: BTreeMap::new(),
            cluster_ip: None,
            export_to: Vec::new(),
        };
        let actual = read(&capture, &target, &BTreeSet::new());
        assert_eq!(actual.node.map(|n| n.kind), Some(ProxyKind::Router));
        let keys: Vec<String> = actual.view.unwrap().ports.into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["vhost bookinfo.example.com:80"]);
    }
}
