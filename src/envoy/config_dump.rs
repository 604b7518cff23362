//! Selective reader for `GET /config_dump`.
//!
//! The dump is borrowed as raw JSON slices (`RawValue`); each section is identified by its
//! `@type`, and resources are decoded only when the [`Selection`] wants them (route
//! configurations and their virtual hosts, clusters, endpoints, listeners). Secrets are never
//! decoded. Memory stays close to the size of the input text.

use super::de::leading;
use super::listener::ListenerDetail;
use super::stream::{self, Route, Verdict};
use super::types::{Address, Cluster, ClusterLoadAssignment, VirtualHost, WeightedClusters};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

/// Which resources to decode. Anything not selected is skipped unparsed. (`Sync`: a dump is
/// read beside the capture's other files.)
pub struct Selection<'a> {
    /// Route configurations by name.
    pub route_config: &'a (dyn Fn(&str) -> bool + Sync),
    /// Virtual hosts by route configuration name, vhost name and domains.
    pub virtual_host: &'a (dyn Fn(&str, &str, &[String]) -> bool + Sync),
    /// Clusters (and their endpoints) by name.
    pub cluster: &'a (dyn Fn(&str) -> bool + Sync),
    /// Listeners by name.
    pub listener: &'a (dyn Fn(&str) -> bool + Sync),
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
    ///
    /// The text is read in one pass: each section is taken apart as it streams by, and of each
    /// resource only its name is read (Envoy writes it first) unless `sel` wants it. On a big
    /// mesh the dump holds tens of thousands of clusters; a question needs a handful.
    pub fn parse(text: &str, origin: &str, sel: &Selection<'_>) -> Result<ConfigDump> {
        ConfigDump::read(text, origin, sel, None).map(|(dump, _)| dump)
    }

    /// `text` cut down to what `sel` selects, in the dump's own shape: the selected resources
    /// whole, each other cluster as its name alone and each other virtual host of a selected
    /// route configuration as its name and domains, every section's `@type`. Parsing the cut
    /// with `sel`, or with any selection within it, gives what parsing `text` gives; so a
    /// snapshot can hold, for one question, a few MB of a proxy's dump instead of all of it.
    /// An error is the one [`ConfigDump::parse`] would give; the oldest (map form) dumps are
    /// refused.
    pub fn cut(text: &str, origin: &str, sel: &Selection<'_>) -> Result<String> {
        let (_, cut) = ConfigDump::read(text, origin, sel, Some(Cut::default()))?;
        let mut text = cut.map(|c| c.text).unwrap_or_default();
        // Held until the analysis: not at the capacity it grew to.
        text.shrink_to_fit();
        Ok(text)
    }

    /// The dump read from `input` cut down as [`ConfigDump::cut`] cuts it, a piece at a time:
    /// the clusters and endpoints not selected are left behind as they are read, so the dump
    /// is never held whole. `None` when it cannot be cut (then it is read whole).
    pub fn cut_from(input: impl Read, origin: &str, sel: &Selection<'_>) -> Option<String> {
        let route = |path: &[&str]| match path {
            [] | ["configs"] | ["configs", "[]"] => Route::Descend,
            ["configs", "[]", list] if cluster_list(list).is_some() || is_endpoint_list(list) => Route::Elements,
            ["configs", "[]", list, rest @ ..] if is_route_config_list(list) => match rest {
                [] | ["[]"] | ["[]", "route_config" | "routeConfig"] => Route::Descend,
                ["[]", "virtual_hosts" | "virtualHosts"] | ["[]", "route_config" | "routeConfig", "virtual_hosts" | "virtualHosts"] => Route::Elements,
                _ => Route::Copy,
            },
            _ => Route::Copy,
        };
        // What the cut would make of each element, so that cutting the rest gives what cutting
        // the whole would.
        let mut judge = |list: &str, owner: Option<&str>, held: &[u8]| {
            if is_endpoint_list(list) {
                let (took, entry) = stream::value_at::<EndpointEntry>(held)?;
                let verdict = match entry.endpoint_config.map(|raw| peek_name(raw.get(), origin, "cluster_name")) {
                    Some(Ok(name)) if !(sel.cluster)(&name) => Verdict::Drop,
                    _ => Verdict::Keep,
                };
                return Ok((took, verdict));
            }
            if cluster_list(list).is_some() {
                let (took, entry) = stream::value_at::<ClusterEntry>(held)?;
                let verdict = match entry.cluster.map(|raw| peek_name(raw.get(), origin, "name")) {
                    Some(Ok(name)) if !(sel.cluster)(&name) => Verdict::Stub(cluster_stub(&name)),
                    _ => Verdict::Keep,
                };
                return Ok((took, verdict));
            }
            // A virtual host, judged by the route configuration it is in when its name came first.
            let (took, raw) = stream::value_at::<&RawValue>(held)?;
            let verdict = match (owner, peek_virtual_host(raw.get(), origin)) {
                (Some(rc), _) if !(sel.route_config)(rc) => Verdict::Drop,
                (Some(rc), Ok((name, domains))) if !(sel.virtual_host)(rc, &name, &domains) => Verdict::Stub(virtual_host_stub(&name, &domains)),
                _ => Verdict::Keep,
            };
            Ok((took, verdict))
        };
        let rest = stream::filter(input, stream::PIECE, &route, &mut judge)?;
        ConfigDump::cut(&rest, origin, sel).ok()
    }

    fn read(text: &str, origin: &str, sel: &Selection<'_>, cut: Option<Cut>) -> Result<(ConfigDump, Option<Cut>)> {
        let mut reader = Reader { dump: ConfigDump::default(), origin, sel, failure: None, configs: false, cut };
        let mut de = serde_json::Deserializer::from_str(text);
        let read = serde::de::DeserializeSeed::deserialize(&mut reader, &mut de).and_then(|()| de.end());
        if let Some(failure) = reader.failure {
            return Err(failure);
        }
        read.map_err(|e| shape_error(e, origin, "the file"))?;
        if !reader.configs {
            return Err(Error::new("not an Envoy config dump: there is no top-level `configs`")
                .at(origin)
                .help("capture it with `GET /config_dump` on the proxy's admin port 15000"));
        }
        if reader.dump.sections.is_empty() {
            return Err(Error::new("the config dump has no sections").at(origin));
        }
        Ok((reader.dump, reader.cut))
    }

    fn add_clusters(&mut self, entries: Vec<ClusterEntry<'_>>, state: ClusterState, place: &str, sel: &Selection<'_>, mut kept: Kept<'_>) -> Result<()> {
        for (i, entry) in entries.into_iter().enumerate() {
            let Some(raw) = entry.cluster else { continue };
            let here = format!("{place}[{i}]");
            let name = peek_name(raw.get(), &here, "name")?;
            let selected = (sel.cluster)(&name);
            if selected {
                let cluster: Cluster = decode(raw.get(), &here, "cluster")?;
                self.clusters.push(DumpedCluster { cluster, state });
            }
            if let Some(kept) = kept.as_deref_mut() {
                // A cluster not selected is still there: its name says so.
                kept.push(if selected { format!(r#"{{"cluster":{}}}"#, raw.get()) } else { cluster_stub(&name) });
            }
            self.cluster_names.push(name);
        }
        Ok(())
    }

    fn add_route_configs(&mut self, entries: Vec<&RawValue>, place: &str, sel: &Selection<'_>, mut kept: Kept<'_>) -> Result<()> {
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
        for (i, element) in entries.into_iter().enumerate() {
            let here = format!("{place}[{i}]");
            let entry: Entry = decode(element.get(), &here, "route entry")?;
            let raw = entry.route_config.unwrap_or(element);
            let name = peek_name(raw.get(), &here, "name")?;
            if !(sel.route_config)(&name) {
                continue;
            }
            let config: Config = decode(raw.get(), &here, "route_config")?;
            let mut rc = RouteConfig { name: config.name, version_info: entry.version_info, last_updated: entry.last_updated, ..Default::default() };
            let mut hosts_kept = kept.is_some().then(Vec::new);
            for (j, vh) in config.virtual_hosts.into_iter().enumerate() {
                let at = format!("{here} virtual_hosts[{j}]");
                let (name, domains) = peek_virtual_host(vh.get(), &at)?;
                let selected = (sel.virtual_host)(&rc.name, &name, &domains);
                if selected {
                    rc.virtual_hosts.push(decode(vh.get(), &at, "virtual host")?);
                }
                if let Some(hosts) = hosts_kept.as_mut() {
                    hosts.push(if selected { vh.get().to_string() } else { virtual_host_stub(&name, &domains) });
                }
                rc.all_vhost_domains.push((name, domains));
            }
            if let (Some(kept), Some(hosts)) = (kept.as_deref_mut(), hosts_kept) {
                let mut entry = format!(r#"{{"route_config":{{"name":{},"virtual_hosts":[{}]}}"#, json_string(&rc.name), hosts.join(","));
                for (key, value) in [("version_info", &rc.version_info), ("last_updated", &rc.last_updated)] {
                    if let Some(value) = value {
                        entry.push_str(&format!(",{}:{}", json_string(key), json_string(value)));
                    }
                }
                entry.push('}');
                kept.push(entry);
            }
            self.route_configs.push(rc);
        }
        Ok(())
    }

    /// Adds the selected listeners of `found`: (listener, Envoy's rejection of it, where); each
    /// kept as `dynamic_listeners` (with its rejection) or `static_listeners` list it.
    fn add_listeners(&mut self, found: Vec<(&RawValue, Option<Value>, String)>, sel: &Selection<'_>, dynamic: bool, mut kept: Kept<'_>) -> Result<()> {
        for (raw, error, here) in found {
            let name = peek_name(raw.get(), &here, "name")?;
            if (sel.listener)(&name) {
                if let Some(kept) = kept.as_deref_mut() {
                    let listener = format!(r#"{{"listener":{}}}"#, raw.get());
                    kept.push(match (dynamic, &error) {
                        (false, _) => listener,
                        (true, None) => format!(r#"{{"active_state":{listener}}}"#),
                        (true, Some(error)) => format!(r#"{{"active_state":{listener},"error_state":{error}}}"#),
                    });
                }
                let mut listener = parse_listener(raw.get(), &here)?;
                listener.error = error.map(|e| e.get("details").and_then(Value::as_str).unwrap_or("rejected").to_string());
                self.listeners.push(listener);
            }
        }
        Ok(())
    }

    fn add_endpoints(&mut self, entries: Vec<EndpointEntry<'_>>, place: &str, sel: &Selection<'_>, mut kept: Kept<'_>) -> Result<()> {
        let endpoints = self.endpoints.get_or_insert_with(Vec::new);
        for (i, entry) in entries.into_iter().enumerate() {
            let Some(raw) = entry.endpoint_config else { continue };
            let here = format!("{place}[{i}]");
            let name = peek_name(raw.get(), &here, "cluster_name")?;
            if (sel.cluster)(&name) {
                endpoints.push(decode(raw.get(), &here, "endpoint config")?);
                if let Some(kept) = kept.as_deref_mut() {
                    kept.push(format!(r#"{{"endpoint_config":{}}}"#, raw.get()));
                }
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

/// `bootstrap` of a BootstrapConfigDump: only the node is read.
#[derive(Deserialize)]
struct Bootstrap {
    node: Option<Node>,
}

/// An element of a ClustersConfigDump list.
#[derive(Deserialize)]
struct ClusterEntry<'a> {
    #[serde(borrow)]
    cluster: Option<&'a RawValue>,
}

/// An element of an EndpointsConfigDump list.
#[derive(Deserialize)]
struct EndpointEntry<'a> {
    #[serde(borrow, alias = "endpointConfig")]
    endpoint_config: Option<&'a RawValue>,
}

/// An element of `static_listeners` or `dynamic_active_listeners` (v2alpha).
#[derive(Deserialize)]
struct WrappedListener<'a> {
    #[serde(borrow)]
    listener: Option<&'a RawValue>,
}

/// An element of `dynamic_listeners`: the active version, and the last rejected update.
#[derive(Deserialize)]
struct DynamicListener<'a> {
    #[serde(borrow, default, alias = "activeState")]
    active_state: Option<WrappedListener<'a>>,
    #[serde(default, alias = "errorState")]
    error_state: Option<Value>,
}

/// The sections mesh-why reads, by the last word of their `@type`.
#[derive(Clone, Copy)]
enum SectionKind {
    Bootstrap,
    Clusters,
    Routes,
    Listeners,
    Endpoints,
    /// Secrets (never decoded), ECDS, scoped routes: not used.
    Unused,
}

/// One streaming pass over a config dump, filling `dump`.
struct Reader<'s> {
    dump: ConfigDump,
    origin: &'s str,
    sel: &'s Selection<'s>,
    /// The error that stopped the pass, with where it happened (serde's errors carry only a
    /// message across the stream).
    failure: Option<Error>,
    /// Whether the top-level `configs` was there.
    configs: bool,
    /// The dump cut down to the selection, when one is being written.
    cut: Option<Cut>,
}

/// Where a field's selected elements go when the dump is being cut down.
type Kept<'k> = Option<&'k mut Vec<String>>;

/// A config dump cut down to a selection, written as it is read: `{"configs": [...]}`, each
/// section's `@type`, then the fields that were read, each with the elements kept.
#[derive(Default)]
struct Cut {
    text: String,
    sections: usize,
}

impl Cut {
    fn begin_section(&mut self, ty: &str) {
        if self.sections > 0 {
            self.text.push(',');
        }
        self.sections += 1;
        self.text.push_str(&format!(r#"{{"@type":{}"#, json_string(ty)));
    }

    fn field(&mut self, key: &str, value: &str) {
        self.text.push_str(&format!(",{}:{value}", json_string(key)));
    }
}

/// `s` as a JSON string.
fn json_string(s: &str) -> String {
    Value::from(s).to_string()
}

/// The state of the clusters a ClustersConfigDump lists under `key`, when it is such a list.
fn cluster_list(key: &str) -> Option<ClusterState> {
    match key {
        "static_clusters" | "staticClusters" => Some(ClusterState::Static),
        "dynamic_active_clusters" | "dynamicActiveClusters" => Some(ClusterState::Active),
        "dynamic_warming_clusters" | "dynamicWarmingClusters" => Some(ClusterState::Warming),
        _ => None,
    }
}

/// Whether an EndpointsConfigDump lists endpoint configurations under `key`.
fn is_endpoint_list(key: &str) -> bool {
    matches!(key, "static_endpoint_configs" | "staticEndpointConfigs" | "dynamic_endpoint_configs" | "dynamicEndpointConfigs")
}

/// Whether a RoutesConfigDump lists route configurations under `key`.
fn is_route_config_list(key: &str) -> bool {
    matches!(key, "static_route_configs" | "staticRouteConfigs" | "dynamic_route_configs" | "dynamicRouteConfigs")
}

/// What a cut keeps of a virtual host that is not selected: its name and the domains it still
/// claims.
fn virtual_host_stub(name: &str, domains: &[String]) -> String {
    format!(r#"{{"name":{},"domains":{}}}"#, json_string(name), Value::from(domains.to_vec()))
}

/// What a cut keeps of a cluster that is not selected: its name, which says it is there.
fn cluster_stub(name: &str) -> String {
    format!(r#"{{"cluster":{{"name":{}}}}}"#, json_string(name))
}

/// A section's field value: still in the stream, or set aside as text because the section's
/// `@type` came after it.
enum FieldValue<'m, 'de, A> {
    Streamed(&'m mut A),
    Aside(&'de RawValue),
}

impl<'de, A: serde::de::MapAccess<'de>> FieldValue<'_, 'de, A> {
    fn take<T: Deserialize<'de>>(self) -> std::result::Result<T, A::Error> {
        match self {
            FieldValue::Streamed(map) => map.next_value(),
            FieldValue::Aside(raw) => serde_json::from_str(raw.get()).map_err(serde::de::Error::custom),
        }
    }
}

impl Reader<'_> {
    /// Records `failure` and returns the serde error that ends the pass.
    fn stop<E: serde::de::Error>(&mut self, failure: Error) -> E {
        self.failure = Some(failure);
        E::custom("stopped")
    }

    /// Starts a section of type `ty` at `place`.
    fn section<E: serde::de::Error>(&mut self, ty: &str, place: &str) -> std::result::Result<SectionKind, E> {
        let short = ty.rsplit('/').next().unwrap_or(ty);
        let (api, name) = match short.rsplit_once('.') {
            Some((pkg, name)) if pkg.starts_with("envoy.admin.") => (pkg.trim_start_matches("envoy.admin.").to_string(), name),
            _ => {
                let failure = Error::new(format!("unknown config dump section type `{ty}`"))
                    .at(format!("{} {place}", self.origin))
                    .help("expected Envoy admin types such as type.googleapis.com/envoy.admin.v3.ClustersConfigDump");
                return Err(self.stop(failure));
            }
        };
        if self.dump.admin_api.is_empty() {
            self.dump.admin_api = api;
        }
        self.dump.sections.push(short.to_string());
        if name == "EndpointsConfigDump" {
            // Present, even if empty: the dump was taken with `include_eds`.
            self.dump.endpoints.get_or_insert_with(Vec::new);
        }
        Ok(match name {
            "BootstrapConfigDump" => SectionKind::Bootstrap,
            "ClustersConfigDump" => SectionKind::Clusters,
            "RoutesConfigDump" => SectionKind::Routes,
            "ListenersConfigDump" => SectionKind::Listeners,
            "EndpointsConfigDump" => SectionKind::Endpoints,
            _ => SectionKind::Unused,
        })
    }

    /// Reads one field of a section of `kind` at `place`; fields mesh-why does not use are skipped.
    fn field<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        kind: SectionKind,
        key: &str,
        value: FieldValue<'_, 'de, A>,
        place: &str,
    ) -> std::result::Result<(), A::Error> {
        let here = format!("{} {place} {key}", self.origin);
        let (sel, dump) = (self.sel, &mut self.dump);
        // When cutting the dump down: the field's elements that are kept, or its whole value.
        let mut kept = self.cut.is_some().then(Vec::new);
        let mut whole = None;
        let added = match (kind, key) {
            (SectionKind::Bootstrap, "bootstrap") if kept.is_some() => {
                let raw: &RawValue = value.take()?;
                whole = Some(raw.get().to_string());
                decode::<Option<Bootstrap>>(raw.get(), &here, "bootstrap").map(|b| dump.node = b.and_then(|b| b.node))
            }
            (SectionKind::Bootstrap, "bootstrap") => {
                dump.node = value.take::<Option<Bootstrap>>()?.and_then(|b| b.node);
                Ok(())
            }
            (SectionKind::Clusters, _) if let Some(state) = cluster_list(key) => dump.add_clusters(value.take()?, state, &here, sel, kept.as_mut()),
            (SectionKind::Routes, _) if is_route_config_list(key) => dump.add_route_configs(value.take()?, &here, sel, kept.as_mut()),
            (SectionKind::Listeners, "static_listeners" | "staticListeners" | "dynamic_active_listeners" | "dynamicActiveListeners") => {
                let found: Vec<WrappedListener> = value.take()?;
                let found = found.into_iter().enumerate().filter_map(|(i, w)| Some((w.listener?, None, format!("{here}[{i}]"))));
                dump.add_listeners(found.collect(), sel, false, kept.as_mut())
            }
            (SectionKind::Listeners, "dynamic_listeners" | "dynamicListeners") => {
                let found: Vec<DynamicListener> = value.take()?;
                let found = found.into_iter().enumerate().filter_map(|(i, d)| Some((d.active_state?.listener?, d.error_state, format!("{here}[{i}]"))));
                dump.add_listeners(found.collect(), sel, true, kept.as_mut())
            }
            (SectionKind::Endpoints, _) if is_endpoint_list(key) => dump.add_endpoints(value.take()?, &here, sel, kept.as_mut()),
            _ => {
                value.take::<serde::de::IgnoredAny>()?;
                kept = None;
                Ok(())
            }
        };
        if let Err(failure) = added {
            return Err(self.stop(failure));
        }
        if let (Some(cut), Some(kept)) = (&mut self.cut, kept) {
            cut.field(key, &whole.unwrap_or_else(|| format!("[{}]", kept.join(","))));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut Reader<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// The top-level object: `configs` is read, anything else skipped.
impl<'de> serde::de::Visitor<'de> for &mut Reader<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Envoy config dump (an object with `configs`)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "configs" {
                if self.configs && self.cut.is_some() {
                    return Err(self.stop(Error::new("the config dump has `configs` twice").at(self.origin)));
                }
                self.configs = true;
                if let Some(cut) = &mut self.cut {
                    cut.text.push_str(r#"{"configs":["#);
                }
                map.next_value_seed(Sections(&mut *self))?;
                if let Some(cut) = &mut self.cut {
                    cut.text.push_str("]}");
                }
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `configs`: a list of sections, or (Istio 0.8's Envoy) a map of them by name.
struct Sections<'r, 's>(&'r mut Reader<'s>);

impl<'de> serde::de::DeserializeSeed<'de> for Sections<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Sections<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of config dump sections")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(Section { reader: &mut *self.0, place: format!("configs[{i}]") })?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        // The old map form is small; its sections are read in name order, as they always were.
        if self.0.cut.is_some() {
            return Err(self.0.stop(Error::new("a config dump of the map form is not cut down").at(self.0.origin)));
        }
        self.0.dump.admin_api = "map form".into();
        let mut sections: BTreeMap<String, &'de RawValue> = BTreeMap::new();
        while let Some((name, section)) = map.next_entry()? {
            sections.insert(name, section);
        }
        for (name, section) in sections {
            let mut de = serde_json::Deserializer::from_str(section.get());
            serde::de::DeserializeSeed::deserialize(Section { reader: &mut *self.0, place: name }, &mut de).map_err(<A::Error as serde::de::Error>::custom)?;
        }
        Ok(())
    }
}

/// One section of `configs`, at `place`.
struct Section<'r, 's> {
    reader: &'r mut Reader<'s>,
    place: String,
}

impl<'de> serde::de::DeserializeSeed<'de> for Section<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Section<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a config dump section (an object with `@type`)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let Section { reader, place } = self;
        let mut kind = None;
        // Fields before `@type` (Envoy writes it first, but JSON does not promise it).
        let mut aside: Vec<(String, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match kind {
                Some(kind) => reader.field(kind, &key, FieldValue::Streamed(&mut map), &place)?,
                None if key == "@type" => {
                    let ty: String = map.next_value()?;
                    let known = reader.section(&ty, &place)?;
                    if let Some(cut) = &mut reader.cut {
                        cut.begin_section(&ty);
                    }
                    for (key, raw) in aside.drain(..) {
                        reader.field::<A>(known, &key, FieldValue::Aside(raw), &place)?;
                    }
                    kind = Some(known);
                }
                None => aside.push((key, map.next_value()?)),
            }
        }
        if kind.is_none() {
            return Err(reader.stop(Error::new("config dump section has no `@type`").at(format!("{} {place}", reader.origin))));
        }
        if let Some(cut) = &mut reader.cut {
            cut.text.push('}');
        }
        Ok(())
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
    let camel = if field == "cluster_name" { "clusterName" } else { field };
    match leading(raw, [&[field, camel]]) {
        Some([Some(value)]) => decode(value.get(), origin, field),
        Some([None]) => Ok(String::new()),
        // Not an object, or not as Envoy writes one: the full reading names what is wrong.
        None => {
            let v: BTreeMap<String, &RawValue> = decode(raw, origin, "resource")?;
            v.get(field).or_else(|| v.get(camel)).map_or(Ok(String::new()), |raw| decode(raw.get(), origin, field))
        }
    }
}

/// A virtual host's name and domains, read without its routes.
fn peek_virtual_host(raw: &str, origin: &str) -> Result<(String, Vec<String>)> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        name: String,
        #[serde(default)]
        domains: Vec<String>,
    }
    let Some([name, domains]) = leading(raw, [&["name"], &["domains"]]) else {
        let peek: Peek = decode(raw, origin, "virtual host")?;
        return Ok((peek.name, peek.domains));
    };
    let name = name.map_or(Ok(String::new()), |n| decode(n.get(), &format!("{origin} field `name`"), "virtual host"))?;
    let domains = domains.map_or(Ok(Vec::new()), |d| decode(d.get(), &format!("{origin} field `domains`"), "virtual host"))?;
    Ok((name, domains))
}

/// Decodes `raw` as `T`, naming the JSON path of a wrong field in the error.
fn decode<'a, T: Deserialize<'a>>(raw: &'a str, origin: &str, what: &str) -> Result<T> {
    // Tracking the path costs on every field, so it is done only to explain a failure.
    if let Ok(value) = serde_json::from_str(raw) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." { shape_error(inner, origin, what) } else { shape_error(inner, &format!("{origin} field `{path}`"), what) }
    })
}

/// The error for `e`, met reading `what` at `origin`.
fn shape_error(e: serde_json::Error, origin: &str, what: &str) -> Error {
    if e.is_syntax() || e.is_eof() {
        return json_error(e, origin);
    }
    Error::new(format!("{what} does not have the shape of Envoy's admin output: {e}"))
        .at(origin)
        .help("re-capture it with `GET /config_dump` (mesh-why reads Envoy's proto3 JSON)")
}

fn json_error(e: serde_json::Error, origin: &str) -> Error {
    let what = if e.is_eof() { "the config dump is truncated" } else { "the config dump is not valid JSON" };
    Error::new(format!("{what}: {e}")).at(origin).help("re-capture the file; a cut-off download or an editor can leave it incomplete")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A clusters section with its `@type` first (as Envoy writes it) or last.
    fn clusters_section(type_first: bool) -> String {
        let clusters = json!([{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|9080||reviews.shop.svc.cluster.local", "type": "EDS"}},
                              {"cluster": {"name": "outbound|9080||ratings.shop.svc.cluster.local", "type": "EDS"}}]);
        let ty = r#""@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump""#;
        if type_first { format!(r#"{{{ty}, "dynamic_active_clusters": {clusters}}}"#) } else { format!(r#"{{"dynamic_active_clusters": {clusters}, {ty}}}"#) }
    }

    fn parse(sections: &[&str]) -> Result<ConfigDump> {
        let text = format!(r#"{{"configs": [{}]}}"#, sections.join(","));
        let reviews = |name: &str| name.contains("reviews");
        let sel = Selection { route_config: &|_| true, virtual_host: &|_, _, _| true, cluster: &reviews, listener: &|_| true };
        ConfigDump::parse(&text, "config_dump.json", &sel)
    }

    #[test]
    fn a_section_reads_the_same_whether_its_type_comes_first_or_last() {
        for type_first in [true, false] {
            let text = clusters_section(type_first);
            let dump = parse(&[&text]).unwrap();
            assert_eq!(dump.cluster_names, ["outbound|9080||reviews.shop.svc.cluster.local", "outbound|9080||ratings.shop.svc.cluster.local"]);
            // Only the selected cluster is decoded.
            assert_eq!(dump.clusters.len(), 1, "type first: {type_first}");
            assert!(dump.cluster("outbound|9080||reviews.shop.svc.cluster.local").is_some());
            assert_eq!(dump.sections, ["envoy.admin.v3.ClustersConfigDump"]);
        }
    }

    #[test]
    fn an_unselected_resource_is_not_checked_past_its_name_but_a_selected_one_is() {
        let route = |name: &str| {
            format!(
                r#"{{"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [{{"route_config": {{"name": "{name}", "virtual_hosts": [{{"name": "reviews:9080", "domains": "not a list"}}]}}}}]}}"#
            )
        };
        let only = |wanted: &'static str| move |name: &str| name == wanted;
        let (a, b) = (only("9080"), only("other"));
        let text = format!(r#"{{"configs": [{}]}}"#, route("9080"));
        let wanted = Selection { route_config: &a, virtual_host: &|_, _, _| true, cluster: &|_| true, listener: &|_| true };
        let err = ConfigDump::parse(&text, "config_dump.json", &wanted).unwrap_err().to_string();
        assert!(err.contains("domains") && err.contains("virtual_hosts[0]"), "{err}");
        let skipped = Selection { route_config: &b, virtual_host: &|_, _, _| true, cluster: &|_| true, listener: &|_| true };
        assert!(ConfigDump::parse(&text, "config_dump.json", &skipped).unwrap().route_configs.is_empty());
    }

    #[test]
    fn a_section_without_a_type_and_a_dump_without_configs_are_errors() {
        let err = parse(&[r#"{"dynamic_active_clusters": []}"#]).unwrap_err().to_string();
        assert!(err.contains("no `@type`") && err.contains("configs[0]"), "{err}");
        let err = ConfigDump::parse(r#"{"other": 1}"#, "config_dump.json", &Selection::everything()).unwrap_err().to_string();
        assert!(err.contains("no top-level `configs`"), "{err}");
        let err = ConfigDump::parse(
            r#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [{"clus"#,
            "config_dump.json",
            &Selection::everything(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    /// A sidecar's dump with a resource of every kind read, each for two services, and a secret.
    fn two_services() -> String {
        let admin = |kind: &str| format!("type.googleapis.com/envoy.admin.v3.{kind}");
        let cluster = |name: &str| json!({"cluster": {"name": name, "type": "EDS", "connect_timeout": "10s"}});
        let listener = |port: u16| json!({"name": format!("0.0.0.0_{port}"), "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}}});
        let vhost = |host: &str| json!({"name": format!("{host}:9080"), "domains": [host], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": format!("outbound|9080||{host}")}}]});
        json!({"configs": [
            {"@type": admin("BootstrapConfigDump"), "bootstrap": {"node": {"id": "sidecar~10.0.0.1~web-1.shop~shop.svc.cluster.local"}}},
            {"@type": admin("ClustersConfigDump"),
             "static_clusters": [cluster("BlackHoleCluster")],
             "dynamic_active_clusters": [cluster("outbound|9080|v1|reviews.shop.svc.cluster.local"), cluster("outbound|9080||ratings.shop.svc.cluster.local")],
             "dynamic_warming_clusters": [cluster("outbound|9080|v2|reviews.shop.svc.cluster.local")]},
            {"@type": admin("ListenersConfigDump"),
             "static_listeners": [{"listener": listener(15001)}],
             "dynamic_listeners": [{"name": "0.0.0.0_9080", "active_state": {"listener": listener(9080)}, "error_state": {"details": "port in use"}},
                                   {"name": "0.0.0.0_8080", "active_state": {"listener": listener(8080)}}]},
            {"@type": admin("RoutesConfigDump"), "dynamic_route_configs": [
                {"route_config": {"name": "9080", "virtual_hosts": [vhost("reviews.shop.svc.cluster.local"), vhost("ratings.shop.svc.cluster.local")]}, "version_info": "7"},
                {"route_config": {"name": "8080", "virtual_hosts": [vhost("web.shop.svc.cluster.local")]}}]},
            {"@type": admin("SecretsConfigDump"), "dynamic_active_secrets": [{"name": "default", "secret": {"tls_certificate": {"private_key": {"inline_bytes": "c2VjcmV0"}}}}]},
            {"@type": admin("EndpointsConfigDump"), "dynamic_endpoint_configs": [
                {"endpoint_config": {"cluster_name": "outbound|9080|v1|reviews.shop.svc.cluster.local", "endpoints": [{"lb_endpoints": []}]}},
                {"endpoint_config": {"cluster_name": "outbound|9080||ratings.shop.svc.cluster.local", "endpoints": []}}]}
        ]})
        .to_string()
    }

    #[test]
    fn a_cut_dump_reads_as_the_whole_one_does_for_any_selection_within_the_cut() {
        let text = two_services();
        let (reviews, v1) = (|n: &str| n.contains("reviews"), |n: &str| n.contains("|v1|reviews"));
        let (port_9080, none) = (|n: &str| n == "9080" || n.ends_with("_9080"), |_: &str| false);
        let reviews_host = |_: &str, _: &str, domains: &[String]| domains.iter().any(|d| reviews(d));
        let broad = Selection { route_config: &port_9080, virtual_host: &reviews_host, cluster: &reviews, listener: &port_9080 };
        let cut = ConfigDump::cut(&text, "config_dump.json", &broad).unwrap();
        assert!(cut.len() < text.len());
        // The secret's section is there, its contents are not; a cluster or virtual host not
        // selected is there by name (and domains), a route configuration not at all.
        assert!(cut.contains("SecretsConfigDump") && !cut.contains("c2VjcmV0") && !cut.contains("web.shop"), "{cut}");
        assert!(cut.contains(r#"{"cluster":{"name":"outbound|9080||ratings.shop.svc.cluster.local"}}"#), "{cut}");
        assert!(cut.contains(r#"{"name":"ratings.shop.svc.cluster.local:9080","domains":["ratings.shop.svc.cluster.local"]}"#), "{cut}");
        assert_eq!(cut.matches(r#""routes""#).count(), 1, "{cut}");
        let narrow = Selection { route_config: &port_9080, virtual_host: &|_, _, h| h.iter().any(|h| reviews(h)), cluster: &v1, listener: &none };
        for sel in [&broad, &narrow] {
            // Read a piece at a time, it is cut just the same.
            let cut_whole = ConfigDump::cut(&text, "config_dump.json", sel).unwrap();
            assert_eq!(ConfigDump::cut_from(text.as_bytes(), "config_dump.json", sel), Some(cut_whole));
            let whole = ConfigDump::parse(&text, "config_dump.json", sel).unwrap();
            let read = ConfigDump::parse(&cut, "config_dump.json", sel).unwrap();
            assert_eq!(format!("{read:?}"), format!("{whole:?}"));
        }
        let listener = &ConfigDump::parse(&cut, "config_dump.json", &broad).unwrap().listeners[0];
        assert_eq!((listener.name.as_str(), listener.error.as_deref()), ("0.0.0.0_9080", Some("port in use")));
    }

    #[test]
    fn a_dump_that_cannot_be_read_cannot_be_cut_either() {
        let everything = Selection::everything();
        let text = two_services();
        let truncated = &text[..text.len() / 2];
        let (parse, cut) = (ConfigDump::parse(truncated, "d", &everything).unwrap_err(), ConfigDump::cut(truncated, "d", &everything).unwrap_err());
        assert_eq!(cut.to_string(), parse.to_string());
        assert_eq!(ConfigDump::cut_from(truncated.as_bytes(), "d", &everything), None);
        let map_form = r#"{"configs": {"clusters": {"@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump"}}}"#;
        assert!(ConfigDump::parse(map_form, "d", &everything).is_ok());
        assert!(ConfigDump::cut(map_form, "d", &everything).unwrap_err().to_string().contains("map form"));
        assert_eq!(ConfigDump::cut_from(map_form.as_bytes(), "d", &everything), None);
    }
}
