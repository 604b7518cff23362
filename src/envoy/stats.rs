//! Envoy stats in its three encodings, reduced to counters about the clusters in question, and
//! Istio's `istio_requests_total` from the Prometheus form.

use crate::error::{Error, Result};
use crate::snapshot::StatsFormat;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The largest count believed: 2^53 (exact in a float, as Prometheus carries it). Envoy's
/// counters never come near it, so a larger one is a broken or forged capture.
pub const MAX_COUNTER: u64 = 1 << 53;

/// A counter's text as a count, refusing what no real Envoy reports.
pub fn counter(value: &str, what: &str, origin: &str) -> Result<u64> {
    let out_of_range = || {
        Error::new(format!("{what} = {} is not a count Envoy reports (0 to 2^53)", value.chars().take(40).collect::<String>()))
            .at(origin)
            .help("the capture is damaged: capture this proxy again")
    };
    // Prometheus writes counters as floats (`1.7e+07`); the other forms as integers.
    let v: f64 = value.trim().parse().map_err(|_| out_of_range())?;
    if !v.is_finite() || v < 0.0 || v > MAX_COUNTER as f64 {
        return Err(out_of_range());
    }
    Ok(v as u64)
}

/// Longest `cluster.` stat name looked at: an Istio cluster name (a 253-byte host, port and
/// subset) and its stat fit well within it; longer names are not a cluster's.
const MAX_STAT_NAME: usize = 1024;

/// Counters kept from one proxy's stats.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// `cluster.<name>.<stat>` values for selected clusters, keyed by (cluster, stat).
    pub cluster: BTreeMap<(String, String), u64>,
    /// `istio_requests_total` samples (source reporter), as label maps and counts.
    pub istio_requests: Vec<(BTreeMap<String, String>, u64)>,
}

impl Stats {
    /// A cluster counter, if Envoy reported it.
    pub fn cluster_stat(&self, cluster: &str, stat: &str) -> Option<u64> {
        self.cluster.get(&(cluster.to_string(), stat.to_string())).copied()
    }

    /// Adds what `other` read.
    pub fn merge(&mut self, other: Stats) {
        self.cluster.extend(other.cluster);
        self.istio_requests.extend(other.istio_requests);
    }

    /// Merges one capture in; `want` selects clusters by name.
    pub fn add(&mut self, format: StatsFormat, text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<()> {
        match format {
            StatsFormat::Text => {
                for (name, value) in text.lines().filter_map(text_stat) {
                    self.add_stat(name, value, want);
                }
            }
            StatsFormat::Json => {
                let v: Value = serde_json::from_str(text).map_err(|e| Error::new(format!("stats.json is not valid JSON: {e}")).at(origin))?;
                for s in v.get("stats").and_then(Value::as_array).into_iter().flatten() {
                    if let (Some(name), Some(value)) = (s.get("name").and_then(Value::as_str), s.get("value")) {
                        self.add_stat(name, &value.to_string(), want);
                    }
                }
            }
            StatsFormat::Prometheus => self.add_prometheus(text, origin)?,
        }
        Ok(())
    }

    /// `text` cut down to the lines [`Stats::add`] reads with `want` (or with any selection
    /// within it), in the same form; `None` for the JSON form, which is kept whole. An error is
    /// the one [`Stats::add`] would give.
    pub fn cut(format: StatsFormat, text: &str, origin: &str, want: &dyn Fn(&str) -> bool) -> Result<Option<String>> {
        let kept: Vec<&str> = match format {
            StatsFormat::Json => return Ok(None),
            StatsFormat::Text => text.lines().filter(|line| text_stat(line).is_some_and(|(name, _)| cluster_stat(name, want).is_some())).collect(),
            StatsFormat::Prometheus => {
                Stats::default().add_prometheus(text, origin)?;
                text.lines().filter(|l| l.starts_with(ISTIO_REQUESTS)).collect()
            }
        };
        Ok(Some(kept.iter().map(|line| format!("{line}\n")).collect()))
    }

    /// `input` cut down as [`Stats::cut`] cuts it, a piece of lines at a time, so it is never
    /// held whole; `None` when it is kept whole (the JSON form) or cannot be cut (then it is
    /// read whole).
    pub fn cut_from(format: StatsFormat, input: impl std::io::Read, origin: &str, want: &dyn Fn(&str) -> bool) -> Option<String> {
        if matches!(format, StatsFormat::Json) {
            return None;
        }
        super::stream::lines(input, super::stream::PIECE, |text| Stats::cut(format, text, origin, want).ok().flatten())
    }

    /// Keeps one `cluster.<name>.<stat>` integer of a wanted cluster (histograms are skipped).
    fn add_stat(&mut self, name: &str, value: &str, want: &dyn Fn(&str) -> bool) {
        let Some((cluster, stat)) = cluster_stat(name, want) else { return };
        // Gauges such as `version` (a hash) use the whole u64 range: kept as read, not judged.
        if let Ok(v) = value.parse::<u64>() {
            self.cluster.insert((cluster, stat.to_string()), v);
        }
    }

    fn add_prometheus(&mut self, text: &str, origin: &str) -> Result<()> {
        for line in text.lines().filter(|l| l.starts_with(ISTIO_REQUESTS)) {
            let Some((labels, value)) = line.rsplit_once("} ") else { continue };
            let labels = parse_labels(&labels[ISTIO_REQUESTS.len()..]);
            let v = counter(value, "istio_requests_total", origin)?;
            self.istio_requests.push((labels, v));
        }
        Ok(())
    }
}

/// The name and value of a line of the text form (`NAME: VALUE`), as reading and cutting it
/// both take them.
fn text_stat(line: &str) -> Option<(&str, &str)> {
    line.rsplit_once(": ").map(|(name, value)| (name.trim(), value.trim()))
}

/// How a line of Istio's request counters starts in the Prometheus form.
const ISTIO_REQUESTS: &str = "istio_requests_total{";

/// The wanted cluster and the stat of the stat name `name`, when it is a `cluster.` stat.
fn cluster_stat<'a>(name: &'a str, want: &dyn Fn(&str) -> bool) -> Option<(String, &'a str)> {
    let rest = name.strip_prefix("cluster.").filter(|r| r.len() <= MAX_STAT_NAME)?;
    split_cluster_stat(rest, want)
}

/// Splits `<cluster>.<stat>` into a wanted cluster name and the stat. Istio's alt_stat_name ends
/// the cluster part with `;` (`outbound|9080|v1|host;.upstream_rq_total`), in the cluster's own
/// name or in its SNI form (`outbound_.9080_.v1_.host;`); without the `;`, the dotted host and
/// dotted stat are told apart by trying each `.` from the left until `want` accepts the name.
fn split_cluster_stat<'a>(rest: &'a str, want: &dyn Fn(&str) -> bool) -> Option<(String, &'a str)> {
    // A big mesh's stats run to hundreds of thousands of lines, a handful wanted: a name is
    // copied only once it is.
    let wanted = |cluster: &str, stat: &'a str| {
        let name = sni_to_cluster_name(cluster).map_or(Cow::Borrowed(cluster), Cow::Owned);
        want(&name).then(|| (name.into_owned(), stat))
    };
    match rest.split_once(";.") {
        Some((cluster, stat)) => wanted(cluster, stat),
        None => rest.match_indices('.').find_map(|(i, _)| wanted(&rest[..i], &rest[i + 1..])),
    }
}

/// `outbound_.9080_.v1_.reviews.default.svc.cluster.local` → `outbound|9080|v1|reviews...`.
fn sni_to_cluster_name(stat_name: &str) -> Option<String> {
    let rest = stat_name.strip_prefix("outbound_.")?;
    let (port, rest) = rest.split_once("_.")?;
    let (subset, host) = rest.split_once("_.")?;
    let subset = if subset == "_" { "" } else { subset };
    Some(format!("outbound|{port}|{subset}|{host}"))
}

/// Parses `a="1",b="x\"y"` into a map.
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_istio_alt_stat_names_and_prometheus_labels() {
        let mut s = Stats::default();
        let text = "cluster.outbound|9080|v1|reviews.default.svc.cluster.local;.upstream_rq_total: 42\ncluster.xds-grpc.upstream_rq_total: 7\n";
        s.add(StatsFormat::Text, text, "t", &|c| c.contains("reviews")).unwrap();
        assert_eq!(s.cluster_stat("outbound|9080|v1|reviews.default.svc.cluster.local", "upstream_rq_total"), Some(42));
        assert_eq!(s.cluster.len(), 1);
        let sni = "cluster.outbound_.9080_.v2_.reviews.default.svc.cluster.local;.circuit_breakers.default.rq_open: 1\ncluster.outbound|9080||reviews.default.svc.cluster.local.upstream_cx_overflow: 3\n";
        s.add(StatsFormat::Text, sni, "t", &|c| c.ends_with("|reviews.default.svc.cluster.local")).unwrap();
        assert_eq!(s.cluster_stat("outbound|9080|v2|reviews.default.svc.cluster.local", "circuit_breakers.default.rq_open"), Some(1));
        assert_eq!(s.cluster_stat("outbound|9080||reviews.default.svc.cluster.local", "upstream_cx_overflow"), Some(3));
        let prom = "# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"source\",destination_version=\"v2\",response_code=\"200\"} 17\n";
        s.add(StatsFormat::Prometheus, prom, "p", &|_| true).unwrap();
        assert_eq!(s.istio_requests[0].0["destination_version"], "v2");
        assert_eq!(s.istio_requests[0].1, 17);
    }

    #[test]
    fn a_cut_keeps_the_lines_read_and_refuses_what_reading_refuses() {
        let want = |c: &str| c.contains("reviews");
        let text =
            "cluster.outbound|9080|v1|reviews.default.svc.cluster.local;.upstream_rq_total: 42\ncluster.xds-grpc.upstream_rq_total: 7\nserver.uptime: 9\n";
        let prom = "# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"source\"} 17\nenvoy_server_uptime 9\n";
        for (format, whole) in [(StatsFormat::Text, text), (StatsFormat::Prometheus, prom)] {
            let cut = Stats::cut(format, whole, "s", &want).unwrap().unwrap();
            assert_eq!(cut.lines().count(), 1, "{cut}");
            let (mut read, mut expected) = (Stats::default(), Stats::default());
            read.add(format, &cut, "s", &want).unwrap();
            expected.add(format, whole, "s", &want).unwrap();
            assert_eq!(format!("{read:?}"), format!("{expected:?}"));
            assert_eq!(Stats::cut_from(format, whole.as_bytes(), "s", &want), Some(cut));
        }
        assert!(Stats::cut(StatsFormat::Prometheus, "istio_requests_total{} -1\n", "s", &want).is_err());
        assert_eq!(Stats::cut_from(StatsFormat::Prometheus, &b"istio_requests_total{} -1\n"[..], "s", &want), None);
        assert!(Stats::cut(StatsFormat::Json, "{}", "s", &want).unwrap().is_none());
        assert_eq!(Stats::cut_from(StatsFormat::Json, &b"{}"[..], "s", &want), None);
    }
}
