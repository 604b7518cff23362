//! What a node's ztunnel holds for the asked service, from its `/config_dump` (port 15000):
//! the service's waypoint as istiod pushed it over WDS.
//!
//! ztunnel is not Envoy: its dump is `{workloads, services, policies, certificates, ...}`, whose
//! `services` are a map in older releases and a list in newer ones. Only the target's entry is
//! kept.

use crate::error::{Error, Result};
use crate::intent::target::Target;
use crate::snapshot::{Blob, Meta, ProxyCapture};
use serde::Deserialize;
use serde_json::Value;

/// True for a ztunnel's capture: its pod's labels say so, or without the pod, its name.
pub fn is_ztunnel(capture: &ProxyCapture, pod: Option<&Meta>) -> bool {
    match pod {
        Some(meta) => crate::istio::ambient::is_ztunnel(&meta.labels),
        None => capture.pod.starts_with("ztunnel-"),
    }
}

/// The target as one ztunnel sees it: its service entry, when ztunnel has one for the host.
#[derive(Debug, Clone, Default)]
pub struct ZtunnelView {
    /// The service entry.
    pub service: Option<ServiceEntry>,
}

/// ztunnel's entry for a service.
#[derive(Debug, Clone)]
pub struct ServiceEntry {
    /// Host name.
    pub hostname: String,
    /// Where ztunnel sends the service's traffic first, when it has a waypoint: the waypoint's
    /// address (`network/IP`, shown as the IP) or host name.
    pub waypoint: Option<String>,
}

#[derive(Deserialize)]
struct Dump {
    #[serde(default)]
    services: Value,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    waypoint: Option<RawGateway>,
}

#[derive(Deserialize)]
struct RawGateway {
    #[serde(default)]
    destination: Value,
}

/// The entries of a map-or-list field.
fn entries(field: Value) -> Vec<Value> {
    match field {
        Value::Array(items) => items,
        Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    }
}

/// A waypoint destination: `network/IP` becomes the IP; `{namespace, hostname}` the host name.
fn destination(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.rsplit('/').next().unwrap_or(s).to_string()),
        Value::Object(o) => o.get("hostname").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Reads the ztunnel dump of `capture` for `target`.
pub fn read(capture: &ProxyCapture, target: &Target) -> Result<ZtunnelView> {
    let blob: &Blob = capture.config_dump.as_ref().ok_or_else(|| Error::new("no config_dump.json was captured from this ztunnel"))?;
    let dump: Dump = serde_json::from_slice(&blob.bytes).map_err(|e| {
        Error::new(format!("not a ztunnel config dump: {e}")).at(&blob.origin).help("capture it with `GET /config_dump` on the ztunnel pod's port 15000")
    })?;
    if dump.services.is_null() {
        return Err(Error::new("not a ztunnel config dump: there is no `services`").at(&blob.origin));
    }
    let service = entries(dump.services)
        .into_iter()
        .filter_map(|v| serde_json::from_value::<RawService>(v).ok())
        .find(|s| s.hostname == target.fqdn)
        .map(|s| ServiceEntry { hostname: s.hostname, waypoint: s.waypoint.and_then(|w| destination(&w.destination)) });
    Ok(ZtunnelView { service })
}
