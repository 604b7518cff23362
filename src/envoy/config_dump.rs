//! Selective reader for `GET /config_dump`.
//!
//! The dump is borrowed as raw JSON slices (`RawValue`); each section is identified by its
//! `@type`, and resources are decoded only when the [`Selection`] wants them (route
//! configurations and their virtual hosts, clusters, endpoints, listeners). Secrets are never
//! decoded. Memory stays close to the size of the input text.

use super::listener::ListenerDetail;
use super::types::{Address, Cluster, ClusterLoadAssignment, VirtualHost, WeightedClusters};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Which resources to decode. Anything not selected is skipped unparsed.
pub struct Selection<'a> {
    /// Route configurations by name.
    pub route_config: &'a dyn Fn(&str) -> bool,
    /// Virtual hosts by route configuration name, vhost name and domains.
    pub virtual_host: &'a dyn Fn(&str, &str, &[String]) -> bool,
    /// Clusters (and their endpoints) by name.
    pub cluster: &'a dyn Fn(&str) -> bool,
    /// Listeners by name.
    pub listener: &'a dyn Fn(&str) -> bool,
}

impl Selection<'static> {
    /// Decode everything (used by tests and the benchmark's worst case).
    pub fn everything() -> Selection<'static> {
        Selection { route_config: &|_| true, virtual_host: &|_, _, _| true, cluster: &|_| true, listener: &|_| true }
    }
}

/// What kind of proxy wrote the dump, from the node id's first field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyKind {
    /// An application sidecar (`sidecar~`).
    Sidecar,
    /// An Istio gateway (`router~`).
    Router,
    /// An ambient waypoint (`waypoint~`).
    Waypoint,
    /// Anything else (`ztunnel~`, unknown), with its type word.
    Other(String),
}

/// The Envoy node: identity and Istio metadata from the bootstrap (or `/server_info`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawNode")]
pub struct Node {
    /// `type~ip~pod.namespace~namespace.svc.domain`.
    pub id: String,
    /// Kind of proxy.
    pub kind: ProxyKind,
    /// `node.metadata.ISTIO_VERSION`.
    pub istio_version: Option<String>,
    /// `node.metadata.NAMESPACE`.
    pub namespace: Option<String>,
    /// `node.metadata.LABELS`.
    pub labels: BTreeMap<String, String>,
}

/// The node as Envoy prints it: an id and a metadata map.
#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    id: String,
    #[serde(default)]
    metadata: serde_json::Map<String, Value>,
}

impl From<RawNode> for Node {
    fn from(RawNode { id, metadata }: RawNode) -> Node {
        let fields: Vec<&str> = id.split('~').collect();
        let kind = match fields.first().copied() {
            Some("sidecar") => ProxyKind::Sidecar,
            Some("router") => ProxyKind::Router,
            Some("waypoint") => ProxyKind::Waypoint,
            other => ProxyKind::Other(other.unwrap_or_default().to_string()),
        };
        let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_string);
        let labels = metadata
            .get("LABELS")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        Node { kind, istio_version: text("ISTIO_VERSION"), namespace: text("NAMESPACE"), labels, id }
    }
}

/// A listener, reduced to what it routes to.
#[derive(Debug, Clone, Default)]
pub struct Listener {
    /// Listener name (`0.0.0.0_9080`, `10.96.0.20_9080`, `virtualOutbound`).
    pub name: String,
    /// Bound port.
    pub port: Option<u64>,
    /// RDS route configuration names used by its HTTP connection managers.
    pub route_configs: Vec<String>,
    /// Clusters its TCP proxies forward to.
    pub tcp_clusters: Vec<String>,
    /// The weight of each cluster a TCP proxy splits connections over (`weighted_clusters`).
    pub tcp_weights: BTreeMap<String, u32>,
    /// Envoy's rejection of the last update, if any.
    pub error: Option<String>,
    /// Address, filter chains and network filters, for walking a request.
    pub detail: ListenerDetail,
}

/// A route configuration with only the selected virtual hosts decoded.
#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    /// Name (`9080`, `reviews.default.svc.cluster.local:9080`, `http.80`).
    pub name: String,
    /// xDS version of the last accepted update.
    pub version_info: Option<String>,
    /// When Envoy accepted that update (RFC 3339).
    pub last_updated: Option<String>,
    /// Selected virtual hosts.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Names of all virtual hosts, selected or not (for "no vhost matched" explanations).
    pub all_vhost_domains: Vec<(String, Vec<String>)>,
}

/// Where a cluster sits in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// From the bootstrap.
    Static,
    /// Active dynamic cluster.
    Active,
    /// Received but still warming (not yet used for traffic).
    Warming,
}

/// A selected cluster and its state.
#[derive(Debug, Clone)]
pub struct DumpedCluster {
    /// The cluster.
    pub cluster: Cluster,
    /// Static, active or warming.
    pub state: ClusterState,
}

/// The parts of a config dump that were selected.
#[derive(Debug, Clone, Default)]
pub struct ConfigDump {
    /// `v3`, `v2alpha` or `map form`.
    pub admin_api: String,
    /// Bootstrap node, when the bootstrap section is present.
    pub node: Option<Node>,
    /// Selected listeners (dynamic active and static).
    pub listeners: Vec<Listener>,
    /// Selected route configurations.
    pub route_configs: Vec<RouteConfig>,
    /// Names of every cluster in the dump (cheap: one string per cluster).
    pub cluster_names: Vec<String>,
    /// Selected clusters.
    pub clusters: Vec<DumpedCluster>,
    /// Selected endpoint assignments; `None` when the dump was taken without `include_eds`.
    pub endpoints: Option<Vec<ClusterLoadAssignment>>,
    /// `@type` of every section, in order.
    pub sections: Vec<String>,
}

impl ConfigDump {
    /// Parses `text` (from `origin`), decoding only what `sel` selects.
    pub fn parse(text: &str, origin: &str, sel: &Selection<'_>) -> Result<ConfigDump> {
        #[derive(Deserialize)]
        struct Top<'a> {
            #[serde(borrow)]
            configs: Option<&'a RawValue>,
        }
        let top: Top = decode(text, origin, "the file")?;
        let configs = top.configs.ok_or_else(|| {
            Error::new("not an Envoy config dump: there is no top-level `configs`")
                .at(origin)
                .help("capture it with `GET /config_dump` on the proxy's admin port 15000")
        })?;
        let mut dump = ConfigDump::default();
        let raw = configs.get();
        let sections: Vec<(String, &RawValue)> = if raw.trim_start().starts_with('{') {
            dump.admin_api = "map form".into();
            let map: BTreeMap<String, &RawValue> = decode(raw, origin, "configs")?;
            map.into_iter().collect()
        } else {
            let list: Vec<&RawValue> = decode(raw, origin, "configs")?;
            list.into_iter().enumerate().map(|(i, s)| (format!("configs[{i}]"), s)).collect()
        };
        for (place, section) in sections {
            dump.read_section(section.get(), &format!("{origin} {place}"), sel)?;
        }
        if dump.sections.is_empty() {
            return Err(Error::new("the config dump has no sections").at(origin));
        }
        Ok(dump)
    }

    fn read_section(&mut self, raw: &str, origin: &str, sel: &Selection<'_>) -> Result<()> {
        #[derive(Deserialize)]
        struct Tag {
            #[serde(rename = "@type")]
            ty: Option<String>,
        }
        let tag: Tag = decode(raw, origin, "@type")?;
        let ty = tag.ty.ok_or_else(|| Error::new("config dump section has no `@type`").at(origin))?;
        let short = ty.rsplit('/').next().unwrap_or(&ty);
        let (api, name) = match short.rsplit_once('.') {
            Some((pkg, name)) if pkg.starts_with("envoy.admin.") => (pkg.trim_start_matches("envoy.admin.").to_string(), name),
            _ => {
                return Err(Error::new(format!("unknown config dump section type `{ty}`"))
                    .at(origin)
                    .help("expected Envoy admin types such as type.googleapis.com/envoy.admin.v3.ClustersConfigDump"));
            }
        };
        if self.admin_api.is_empty() {
            self.admin_api = api;
        }
        self.sections.push(short.to_string());
        match name {
            "BootstrapConfigDump" => self.read_bootstrap(raw, origin),
            "ClustersConfigDump" => self.read_clusters(raw, origin, sel),
            "RoutesConfigDump" => self.read_routes(raw, origin, sel),
            "ListenersConfigDump" => self.read_listeners(raw, origin, sel),
            "EndpointsConfigDump" => self.read_endpoints(raw, origin, sel),
            // Secrets are never decoded; other sections (ECDS, scoped routes) are not used.
            _ => Ok(()),
        }
    }

    fn read_bootstrap(&mut self, raw: &str, origin: &str) -> Result<()> {
        #[derive(Deserialize)]
        struct Section {
            bootstrap: Option<Bootstrap>,
        }
        #[derive(Deserialize)]
        struct Bootstrap {
            node: Option<Node>,
        }
        let s: Section = decode(raw, origin, "bootstrap")?;
        self.node = s.bootstrap.and_then(|b| b.node);
        Ok(())
    }

    fn read_clusters(&mut self, raw: &str, origin: &str, sel: &Selection<'_>) -> Result<()> {
        #[derive(Deserialize)]
        struct Section<'a> {
            #[serde(borrow, default, alias = "staticClusters")]
            static_clusters: Vec<Entry<'a>>,
            #[serde(borrow, default, alias = "dynamicActiveClusters")]
            dynamic_active_clusters: Vec<Entry<'a>>,
            #[serde(borrow, default, alias = "dynamicWarmingClusters")]
            dynamic_warming_clusters: Vec<Entry<'a>>,
        }
        #[derive(Deserialize)]
        struct Entry<'a> {
            #[serde(borrow)]
            cluster: Option<&'a RawValue>,
        }
        let s: Section = decode(raw, origin, "clusters")?;
        let groups = [
            (s.static_clusters, ClusterState::Static, "static_clusters"),
            (s.dynamic_active_clusters, ClusterState::Active, "dynamic_active_clusters"),
            (s.dynamic_warming_clusters, ClusterState::Warming, "dynamic_warming_clusters"),
        ];
        for (entries, state, field) in groups {
            for (i, entry) in entries.into_iter().enumerate() {
                let Some(raw) = entry.cluster else { continue };
                let here = format!("{origin} {field}[{i}]");
                let name = peek_name(raw.get(), &here, "name")?;
                if (sel.cluster)(&name) {
                    let cluster: Cluster = decode(raw.get(), &here, "cluster")?;
                    self.clusters.push(DumpedCluster { cluster, state });
                }
                self.cluster_names.push(name);
            }
        }
        Ok(())
    }

    fn read_routes(&mut self, raw: &str, origin: &str, sel: &Selection<'_>) -> Result<()> {
        #[derive(Deserialize)]
        struct Section<'a> {
            #[serde(borrow, default, alias = "staticRouteConfigs")]
            static_route_configs: Vec<&'a RawValue>,
            #[serde(borrow, default, alias = "dynamicRouteConfigs")]
            dynamic_route_configs: Vec<&'a RawValue>,
        }
        /// Admin wrapper around a route configuration; the oldest dumps list bare configurations.
        #[derive(Deserialize)]
        struct Entry<'a> {
            #[serde(borrow, default, alias = "routeConfig")]
            route_config: Option<&'a RawValue>,
            #[serde(default, alias = "versionInfo")]
            version_info: Option<String>,
            #[serde(default, alias = "lastUpdated")]
            last_updated: Option<String>,
        }
        #[derive(Deserialize)]
        struct Config<'a> {
            #[serde(default)]
            name: String,
            #[serde(borrow, default, alias = "virtualHosts")]
            virtual_hosts: Vec<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct VhostPeek {
            #[serde(default)]
            name: String,
            #[serde(default)]
            domains: Vec<String>,
        }
        let s: Section = decode(raw, origin, "routes")?;
        let groups = [(s.static_route_configs, "static_route_configs"), (s.dynamic_route_configs, "dynamic_route_configs")];
        for (entries, field) in groups {
            for (i, element) in entries.into_iter().enumerate() {
                let here = format!("{origin} {field}[{i}]");
                let entry: Entry = decode(element.get(), &here, "route entry")?;
                let raw = entry.route_config.unwrap_or(element);
                let name = peek_name(raw.get(), &here, "name")?;
                if !(sel.route_config)(&name) {
                    continue;
                }
                let config: Config = decode(raw.get(), &here, "route_config")?;
                let mut rc = RouteConfig { name: config.name, version_info: entry.version_info, last_updated: entry.last_updated, ..Default::default() };
                for (j, vh) in config.virtual_hosts.into_iter().enumerate() {
                    let at = format!("{here} virtual_hosts[{j}]");
                    let peek: VhostPeek = decode(vh.get(), &at, "virtual host")?;
                    if (sel.virtual_host)(&rc.name, &peek.name, &peek.domains) {
                        rc.virtual_hosts.push(decode(vh.get(), &at, "virtual host")?);
                    }
                    rc.all_vhost_domains.push((peek.name, peek.domains));
                }
                self.route_configs.push(rc);
            }
        }
        Ok(())
    }

    fn read_listeners(&mut self, raw: &str, origin: &str, sel: &Selection<'_>) -> Result<()> {
        #[derive(Deserialize)]
        struct Section<'a> {
            #[serde(borrow, default, alias = "staticListeners")]
            static_listeners: Vec<Wrapped<'a>>,
            #[serde(borrow, default, alias = "dynamicListeners")]
            dynamic_listeners: Vec<Dynamic<'a>>,
            #[serde(borrow, default, alias = "dynamicActiveListeners")]
            dynamic_active_listeners: Vec<Wrapped<'a>>,
        }
        #[derive(Deserialize)]
        struct Wrapped<'a> {
            #[serde(borrow)]
            listener: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Dynamic<'a> {
            #[serde(borrow, default, alias = "activeState")]
            active_state: Option<Wrapped<'a>>,
            #[serde(default, alias = "errorState")]
            error_state: Option<Value>,
        }
        let s: Section = decode(raw, origin, "listeners")?;
        let mut found: Vec<(&RawValue, Option<Value>, String)> = Vec::new();
        for (i, w) in s.static_listeners.into_iter().enumerate() {
            found.extend(w.listener.map(|l| (l, None, format!("static_listeners[{i}]"))));
        }
        for (i, w) in s.dynamic_active_listeners.into_iter().enumerate() {
            found.extend(w.listener.map(|l| (l, None, format!("dynamic_active_listeners[{i}]"))));
        }
        for (i, d) in s.dynamic_listeners.into_iter().enumerate() {
            if let Some(l) = d.active_state.and_then(|a| a.listener) {
                found.push((l, d.error_state, format!("dynamic_listeners[{i}]")));
            }
        }
        for (raw, error, place) in found {
            let here = format!("{origin} {place}");
            let name = peek_name(raw.get(), &here, "name")?;
            if (sel.listener)(&name) {
                let mut listener = parse_listener(raw.get(), &here)?;
                listener.error = error.map(|e| e.get("details").and_then(Value::as_str).unwrap_or("rejected").to_string());
                self.listeners.push(listener);
            }
        }
        Ok(())
    }

    fn read_endpoints(&mut self, raw: &str, origin: &str, sel: &Selection<'_>) -> Result<()> {
        #[derive(Deserialize)]
        struct Section<'a> {
            #[serde(borrow, default, alias = "staticEndpointConfigs")]
            static_endpoint_configs: Vec<Entry<'a>>,
            #[serde(borrow, default, alias = "dynamicEndpointConfigs")]
            dynamic_endpoint_configs: Vec<Entry<'a>>,
        }
        #[derive(Deserialize)]
        struct Entry<'a> {
            #[serde(borrow, alias = "endpointConfig")]
            endpoint_config: Option<&'a RawValue>,
        }
        let s: Section = decode(raw, origin, "endpoints")?;
        let endpoints = self.endpoints.get_or_insert_with(Vec::new);
        for (i, entry) in s.static_endpoint_configs.into_iter().chain(s.dynamic_endpoint_configs).enumerate() {
            let Some(raw) = entry.endpoint_config else { continue };
            let here = format!("{origin} endpoint_configs[{i}]");
            let name = peek_name(raw.get(), &here, "cluster_name")?;
            if (sel.cluster)(&name) {
                endpoints.push(decode(raw.get(), &here, "endpoint config")?);
            }
        }
        Ok(())
    }

    /// A selected cluster by name, ignoring warming ones.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.cluster.name == name && c.state != ClusterState::Warming).map(|c| &c.cluster)
    }

    /// True when the dump holds an active or static cluster of this name.
    pub fn has_cluster(&self, name: &str) -> bool {
        self.cluster_names.iter().any(|n| n == name)
    }
}

/// Reads a listener's name, port and what its network filters route to.
fn parse_listener(raw: &str, origin: &str) -> Result<Listener> {
    #[derive(Deserialize)]
    struct L<'a> {
        #[serde(default)]
        name: String,
        #[serde(default)]
        address: Option<Address>,
        #[serde(borrow, default, alias = "filterChains")]
        filter_chains: Vec<Chain<'a>>,
        #[serde(borrow, default, alias = "defaultFilterChain")]
        default_filter_chain: Option<Chain<'a>>,
    }
    #[derive(Deserialize)]
    struct Chain<'a> {
        #[serde(borrow, default)]
        filters: Vec<Filter<'a>>,
    }
    #[derive(Deserialize)]
    struct Filter<'a> {
        #[serde(borrow, default, alias = "typedConfig")]
        typed_config: Option<&'a RawValue>,
        #[serde(borrow, default)]
        config: Option<&'a RawValue>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct FilterConfig {
        rds: Option<Rds>,
        cluster: Option<String>,
        #[serde(alias = "weightedClusters")]
        weighted_clusters: Option<WeightedClusters>,
    }
    #[derive(Deserialize)]
    struct Rds {
        #[serde(default, alias = "routeConfigName")]
        route_config_name: String,
    }
    let l: L = decode(raw, origin, "listener")?;
    let detail = ListenerDetail::from_json(&decode::<Value>(raw, origin, "listener")?);
    let mut out = Listener { name: l.name, port: l.address.and_then(|a| a.socket_address).and_then(|s| s.port_value), detail, ..Default::default() };
    for chain in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
        for filter in &chain.filters {
            let Some(cfg) = filter.typed_config.or(filter.config) else { continue };
            let cfg: FilterConfig = decode(cfg.get(), origin, "filter config")?;
            if let Some(rds) = cfg.rds {
                push_unique(&mut out.route_configs, rds.route_config_name);
            }
            if let Some(c) = cfg.cluster {
                push_unique(&mut out.tcp_clusters, c);
            }
            for wc in cfg.weighted_clusters.into_iter().flat_map(|w| w.clusters) {
                out.tcp_weights.insert(wc.name.clone(), wc.weight_u32());
                push_unique(&mut out.tcp_clusters, wc.name);
            }
        }
    }
    Ok(out)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Reads one string field of an object without decoding the rest.
fn peek_name(raw: &str, origin: &str, field: &'static str) -> Result<String> {
    let v: BTreeMap<String, &RawValue> = decode(raw, origin, "resource")?;
    let camel = if field == "cluster_name" { "clusterName" } else { field };
    match v.get(field).or_else(|| v.get(camel)) {
        Some(raw) => decode(raw.get(), origin, field),
        None => Ok(String::new()),
    }
}

/// Decodes `raw` as `T`, naming the JSON path of a wrong field in the error.
fn decode<'a, T: Deserialize<'a>>(raw: &'a str, origin: &str, what: &str) -> Result<T> {
    let mut de = serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return json_error(inner, origin);
        }
        let field = if path == "." { String::new() } else { format!(" field `{path}`") };
        Error::new(format!("{what} does not have the shape of Envoy's admin output: {inner}"))
            .at(format!("{origin}{field}"))
            .help("re-capture it with `GET /config_dump` (mesh-why reads Envoy's proto3 JSON)")
    })
}

fn json_error(e: serde_json::Error, origin: &str) -> Error {
    let what = if e.is_eof() { "the config dump is truncated" } else { "the config dump is not valid JSON" };
    Error::new(format!("{what}: {e}")).at(origin).help("re-capture the file; a cut-off download or an editor can leave it incomplete")
}
