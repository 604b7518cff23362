//! `GET /clusters?format=json`: live hosts per cluster with health and request counters.

use super::de::value_u64;
use super::types::Address;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// The hosts Envoy currently holds for one cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus {
    /// Cluster name.
    pub name: String,
    /// Hosts with health and counters.
    pub hosts: Vec<HostStatus>,
}

/// One upstream host.
#[derive(Debug, Clone, Default)]
pub struct HostStatus {
    /// `ip:port`.
    pub address: String,
    /// Health as sent by EDS (`HEALTHY`, `UNHEALTHY`, `DRAINING`...); empty when unknown.
    pub eds_health: String,
    /// Ejected by outlier detection.
    pub failed_outlier_check: bool,
    /// Failing active health checks.
    pub failed_active_health_check: bool,
    /// Requests sent to this host (`rq_total`).
    pub rq_total: u64,
    /// 5xx responses from this host (`rq_error`).
    pub rq_error: u64,
}

impl HostStatus {
    /// True when Envoy would send traffic to this host.
    pub fn is_healthy(&self) -> bool {
        !self.failed_outlier_check
            && !self.failed_active_health_check
            && matches!(self.eds_health.as_str(), "" | "HEALTHY" | "UNKNOWN")
    }
}

/// Parses the JSON form, keeping only clusters `want` selects.
pub fn parse(text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<Vec<ClusterStatus>> {
    #[derive(Deserialize)]
    struct Top {
        #[serde(default, alias = "clusterStatuses")]
        cluster_statuses: Option<Vec<RawCluster>>,
    }
    #[derive(Deserialize)]
    struct RawCluster {
        #[serde(default)]
        name: String,
        #[serde(default, alias = "hostStatuses")]
        host_statuses: Vec<RawHost>,
    }
    #[derive(Deserialize)]
    struct RawHost {
        #[serde(default)]
        address: Option<Address>,
        #[serde(default)]
        stats: Vec<Value>,
        #[serde(default, alias = "healthStatus")]
        health_status: Option<Value>,
    }
    let top: Top = serde_json::from_str(text).map_err(|e| {
        Error::new(format!("clusters.json is not valid /clusters?format=json output: {e}"))
            .at(origin)
            .help("capture it with `GET /clusters?format=json`; the plain-text form is not accepted")
    })?;
    let clusters = top.cluster_statuses.ok_or_else(|| {
        Error::new("clusters.json has no `cluster_statuses`").at(origin).help("capture it with `GET /clusters?format=json`")
    })?;
    Ok(clusters
        .into_iter()
        .filter(|c| want(&c.name))
        .map(|c| ClusterStatus {
            name: c.name,
            hosts: c
                .host_statuses
                .into_iter()
                .map(|h| {
                    let stat = |name: &str| {
                        h.stats.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name)).and_then(|s| s.get("value")).and_then(value_u64).unwrap_or(0)
                    };
                    let health = h.health_status.unwrap_or(Value::Null);
                    let flag = |k: &str, camel: &str| {
                        health.get(k).or_else(|| health.get(camel)).and_then(Value::as_bool).unwrap_or(false)
                    };
                    HostStatus {
                        address: h.address.and_then(|a| a.socket_address).map(|s| s.to_addr()).unwrap_or_default(),
                        eds_health: health
                            .get("eds_health_status")
                            .or_else(|| health.get("edsHealthStatus"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        failed_outlier_check: flag("failed_outlier_check", "failedOutlierCheck"),
                        failed_active_health_check: flag("failed_active_health_check", "failedActiveHealthCheck"),
                        rq_total: stat("rq_total"),
                        rq_error: stat("rq_error"),
                    }
                })
                .collect(),
        })
        .collect())
}
