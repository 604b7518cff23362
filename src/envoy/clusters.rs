//! `GET /clusters?format=json`: live hosts per cluster with health and request counters.

use super::de::{leading, value_u64};
use super::stream::{self, Route, Verdict};
use super::types::Address;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::io::{BufRead, BufReader, Read};

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
        !self.failed_outlier_check && !self.failed_active_health_check && matches!(self.eds_health.as_str(), "" | "HEALTHY" | "UNKNOWN")
    }
}

/// Parses either form of `/clusters`: JSON (`?format=json`), or the plain-text form that
/// `istioctl bug-report` saves, keeping only clusters `want` selects.
pub fn parse(text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<Vec<ClusterStatus>> {
    if text.trim_start().starts_with('{') { parse_json(text, origin, want, None) } else { parse_text(text, origin, want) }
}

/// `text` cut down to the clusters `want` selects, in the same form: parsing the cut with
/// `want`, or with any selection within it, gives what parsing `text` gives. An error is the
/// one [`parse`] would give.
pub fn cut(text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<String> {
    if text.trim_start().starts_with('{') {
        let mut kept = Vec::new();
        parse_json(text, origin, want, Some(&mut kept))?;
        return Ok(format!(r#"{{"cluster_statuses":[{}]}}"#, kept.join(",")));
    }
    parse_text(text, origin, want)?;
    let wanted = |line: &&str| line.split("::").next().is_some_and(want);
    Ok(text.lines().filter(wanted).map(|line| format!("{line}\n")).collect())
}

/// `input` cut down as [`cut`] cuts it, a piece at a time: the clusters not selected are left
/// behind as they are read, so the file is never held whole. `None` when it cannot be cut
/// (then it is read whole).
pub fn cut_from(input: impl Read, origin: &str, want: &dyn Fn(&str) -> bool) -> Option<String> {
    let mut input = BufReader::new(input);
    if input.fill_buf().ok()?.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return stream::lines(input, stream::PIECE, |text| cut(text, origin, want).ok());
    }
    let route = |path: &[&str]| match path {
        [] => Route::Descend,
        ["cluster_statuses" | "clusterStatuses"] => Route::Elements,
        _ => Route::Copy,
    };
    let mut judge = |_: &str, _: Option<&str>, held: &[u8]| {
        let (took, status) = stream::value_at::<Name>(held)?;
        Ok((took, if want(&status.name) { Verdict::Keep } else { Verdict::Drop }))
    };
    let rest = stream::filter(input, stream::PIECE, &route, &mut judge)?;
    cut(&rest, origin, want).ok()
}

/// A cluster status's name; the rest of it is skipped.
#[derive(Deserialize)]
struct Name {
    #[serde(default)]
    name: String,
}

/// The text form: `CLUSTER::IP:PORT::FIELD::VALUE` per host field, plus cluster-level lines.
fn parse_text(text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<Vec<ClusterStatus>> {
    let mut out: Vec<ClusterStatus> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split("::").collect();
        let [cluster, address, field, value] = fields.as_slice() else {
            if fields.len() < 3 {
                return Err(Error::new(format!("not /clusters output: unexpected line `{}`", line.chars().take(80).collect::<String>()))
                    .at(origin)
                    .help("capture it with `GET /clusters?format=json`"));
            }
            continue;
        };
        // Cluster-level lines (`::added_via_api::`, `::default_priority::...`) have no `ip:port`.
        if !want(cluster) || !address.contains(':') {
            continue;
        }
        if out.last().is_none_or(|c| c.name != *cluster) {
            out.push(ClusterStatus { name: cluster.to_string(), hosts: Vec::new() });
        }
        let hosts = &mut out.last_mut().expect("pushed above").hosts;
        if hosts.last().is_none_or(|h| h.address != *address) {
            hosts.push(HostStatus { address: address.to_string(), ..Default::default() });
        }
        let host = hosts.last_mut().expect("pushed above");
        match *field {
            "rq_total" => host.rq_total = super::stats::counter(value, &format!("{cluster}::{address}::rq_total"), origin)?,
            "rq_error" => host.rq_error = super::stats::counter(value, &format!("{cluster}::{address}::rq_error"), origin)?,
            "health_flags" => {
                host.failed_outlier_check = value.contains("failed_outlier_check");
                host.failed_active_health_check = value.contains("failed_active_hc");
                if value.contains("failed_eds_health") {
                    host.eds_health = "UNHEALTHY".into();
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The JSON form. Each cluster is kept as text until its name is known, so only the selected
/// ones are decoded: a caller of a big mesh lists tens of thousands.
fn parse_json<'t>(text: &'t str, origin: &str, want: &dyn Fn(&str) -> bool, mut kept: Option<&mut Vec<&'t str>>) -> Result<Vec<ClusterStatus>> {
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default, alias = "clusterStatuses")]
        cluster_statuses: Option<Vec<&'a RawValue>>,
    }
    #[derive(Deserialize)]
    struct RawCluster {
        #[serde(default)]
        name: String,
        #[serde(default, alias = "hostStatuses")]
        host_statuses: Vec<RawHost>,
    }
    let invalid = |e: serde_json::Error| {
        Error::new(format!("clusters.json is not valid /clusters?format=json output: {e}"))
            .at(origin)
            .help("capture it with `GET /clusters?format=json`; the plain-text form is not accepted")
    };
    let top: Top = serde_json::from_str(text).map_err(invalid)?;
    let clusters = top
        .cluster_statuses
        .ok_or_else(|| Error::new("clusters.json has no `cluster_statuses`").at(origin).help("capture it with `GET /clusters?format=json`"))?;
    let mut out = Vec::new();
    for raw in clusters {
        // Envoy writes a cluster's name first: the hosts of one not wanted are not scanned again.
        let name = match leading(raw.get(), [&["name"]]) {
            Some([Some(name)]) => serde_json::from_str(name.get()).map_err(invalid)?,
            Some([None]) => String::new(),
            None => serde_json::from_str::<Name>(raw.get()).map_err(invalid)?.name,
        };
        if !want(&name) {
            continue;
        }
        let c: RawCluster = serde_json::from_str(raw.get()).map_err(invalid)?;
        let hosts = c.host_statuses.into_iter().map(|h| host_status(&c.name, h, origin)).collect::<Result<_>>()?;
        out.push(ClusterStatus { name: c.name, hosts });
        if let Some(kept) = kept.as_deref_mut() {
            kept.push(raw.get());
        }
    }
    Ok(out)
}

/// One `host_statuses[]` entry of the JSON form.
#[derive(Deserialize)]
struct RawHost {
    #[serde(default)]
    address: Option<Address>,
    #[serde(default)]
    stats: Vec<Value>,
    #[serde(default, alias = "healthStatus")]
    health_status: Option<Value>,
}

/// One host of the JSON form; a counter out of range is refused, not read as 0.
fn host_status(cluster: &str, h: RawHost, origin: &str) -> Result<HostStatus> {
    let stat = |name: &str| -> Result<u64> {
        let value = h.stats.iter().find(|s| s.get("name").and_then(Value::as_str) == Some(name)).and_then(|s| s.get("value"));
        match value {
            None => Ok(0),
            Some(v) => match value_u64(v) {
                Some(n) if n <= super::stats::MAX_COUNTER => Ok(n),
                _ => super::stats::counter(&v.to_string(), &format!("{cluster} host stat {name}"), origin),
            },
        }
    };
    let (rq_total, rq_error) = (stat("rq_total")?, stat("rq_error")?);
    let health = h.health_status.unwrap_or(Value::Null);
    let flag = |k: &str, camel: &str| health.get(k).or_else(|| health.get(camel)).and_then(Value::as_bool).unwrap_or(false);
    Ok(HostStatus {
        address: h.address.and_then(|a| a.socket_address).map(|s| s.to_addr()).unwrap_or_default(),
        eds_health: health.get("eds_health_status").or_else(|| health.get("edsHealthStatus")).and_then(Value::as_str).unwrap_or_default().to_string(),
        failed_outlier_check: flag("failed_outlier_check", "failedOutlierCheck"),
        failed_active_health_check: flag("failed_active_health_check", "failedActiveHealthCheck"),
        rq_total,
        rq_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_reads_hosts_health_and_counters() {
        let text = "outbound|9080|v1|r.d.svc.cluster.local::default_priority::max_connections::4294967295\n\
                    outbound|9080|v1|r.d.svc.cluster.local::10.1.0.11:9080::rq_total::42\n\
                    outbound|9080|v1|r.d.svc.cluster.local::10.1.0.11:9080::health_flags::healthy\n\
                    outbound|9080|v1|r.d.svc.cluster.local::10.1.0.12:9080::rq_total::7\n\
                    outbound|9080|v1|r.d.svc.cluster.local::10.1.0.12:9080::health_flags::/failed_outlier_check\n\
                    BlackHoleCluster::added_via_api::true\n";
        let parsed = parse(text, "t", &|c| c.starts_with("outbound")).unwrap();
        assert_eq!(parsed.len(), 1);
        let hosts = &parsed[0].hosts;
        assert_eq!((hosts[0].rq_total, hosts[0].is_healthy()), (42, true));
        assert_eq!((hosts[1].rq_total, hosts[1].is_healthy()), (7, false));
    }

    #[test]
    fn other_text_is_refused() {
        assert!(parse("hello world", "t", &|_| true).is_err());
        assert!(cut("hello world", "t", &|_| true).is_err());
    }

    #[test]
    fn a_cut_keeps_the_selected_clusters_in_either_form() {
        let host = |ip: &str, total: u64| {
            format!(r#"{{"address":{{"socket_address":{{"address":"{ip}","port_value":9080}}}},"stats":[{{"name":"rq_total","value":"{total}"}}]}}"#)
        };
        let cluster = |name: &str, ip: &str| format!(r#"{{"name":"{name}","host_statuses":[{}]}}"#, host(ip, 5));
        let json = format!(
            r#"{{"cluster_statuses":[{},{}]}}"#,
            cluster("outbound|9080|v1|r.d.svc.cluster.local", "10.1.0.11"),
            cluster("outbound|9080||p.d.svc.cluster.local", "10.1.0.12")
        );
        let text = "outbound|9080|v1|r.d.svc.cluster.local::10.1.0.11:9080::rq_total::5\noutbound|9080||p.d.svc.cluster.local::10.1.0.12:9080::rq_total::5\n";
        let want = |c: &str| c.contains("|r.d");
        for whole in [json.as_str(), text] {
            let cut = cut(whole, "c", &want).unwrap();
            assert!(!cut.contains("p.d.svc") && cut.len() < whole.len(), "{cut}");
            let (read, expected) = (parse(&cut, "c", &want).unwrap(), parse(whole, "c", &want).unwrap());
            assert_eq!(format!("{read:?}"), format!("{expected:?}"));
            assert_eq!(read[0].hosts[0].rq_total, 5);
            // Read a piece at a time, it is cut just the same.
            assert_eq!(cut_from(whole.as_bytes(), "c", &want), Some(cut));
        }
    }

    #[test]
    fn what_cannot_be_cut_whole_cannot_be_cut_as_it_is_read() {
        for broken in [r#"{"cluster_statuses":[{"name":"a"},"#, r#"{"cluster_statuses":[{"name":7}]}"#, "{}", "hello world"] {
            assert!(cut(broken, "c", &|_| true).is_err(), "{broken}");
            assert_eq!(cut_from(broken.as_bytes(), "c", &|_| true), None, "{broken}");
        }
    }
}
