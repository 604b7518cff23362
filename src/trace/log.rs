//! One access-log line explained: Istio's default text format or a JSON log is parsed, the
//! request it records is traced, and each response flag is mapped to its causes in the config.

use super::report::{TraceReport, trace};
use super::{Protocol, Request, Security};
use crate::error::{Error, Result};
use crate::snapshot::Snapshot;
use serde::Serialize;

/// The fields of a log line that explain where the request went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogLine {
    /// HTTP method (`-` for TCP).
    pub method: String,
    /// Original path.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2`, `-`.
    pub protocol: String,
    /// Response code (0 when the connection ended without one).
    pub status: u32,
    /// Response flags, split.
    pub flags: Vec<String>,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: String,
    /// `:authority`.
    pub authority: String,
    /// `%UPSTREAM_HOST%`.
    pub upstream_host: String,
    /// `%UPSTREAM_CLUSTER%`.
    pub upstream_cluster: String,
    /// `%DOWNSTREAM_LOCAL_ADDRESS%`: where the request was sent.
    pub downstream_local_address: String,
    /// `%REQUESTED_SERVER_NAME%`.
    pub server_name: String,
    /// `%ROUTE_NAME%`.
    pub route_name: String,
}

fn dash(s: &str) -> String {
    if s == "-" { String::new() } else { s.to_string() }
}

/// Splits a line into fields: `"quoted strings"`, `[bracketed]` and bare words.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let close = match c {
            '"' => Some('"'),
            '[' => Some(']'),
            _ => None,
        };
        let mut field = String::new();
        if let Some(close) = close {
            chars.next();
            for c in chars.by_ref() {
                if c == close {
                    break;
                }
                field.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                field.push(c);
                chars.next();
            }
        }
        out.push(field);
    }
    out
}

/// Parses Istio's default access-log format or a JSON access log.
pub fn parse(line: &str) -> Result<LogLine> {
    let line = line.trim();
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::new(format!("the access-log line is not valid JSON: {e}")))?;
        let s = |k: &str| dash(&v.get(k).filter(|x| !x.is_null()).map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).unwrap_or_default());
        return Ok(LogLine {
            method: s("method"),
            path: s("path"),
            protocol: s("protocol"),
            status: s("response_code").parse().unwrap_or(0),
            flags: split_flags(&s("response_flags")),
            details: s("response_code_details"),
            authority: s("authority"),
            upstream_host: s("upstream_host"),
            upstream_cluster: s("upstream_cluster"),
            downstream_local_address: s("downstream_local_address"),
            server_name: s("requested_server_name"),
            route_name: s("route_name"),
        });
    }
    let f = fields(line);
    // [time] "METHOD PATH PROTO" code flags details termination "failure" rx tx duration upstream-time
    // "xff" "agent" "id" "authority" "upstream host" cluster upstream-local downstream-local downstream-remote sni route
    if f.len() < 22 {
        return Err(Error::new(format!("the access-log line has {} fields; Istio's default format has 23", f.len()))
            .help("pass the whole line as Envoy wrote it (quoted for the shell), or a JSON access-log line"));
    }
    let mut request = f[1].split_whitespace();
    let get = |i: usize| dash(f.get(i).map(String::as_str).unwrap_or("-"));
    Ok(LogLine {
        method: dash(request.next().unwrap_or("-")),
        path: dash(request.next().unwrap_or("-")),
        protocol: dash(request.next().unwrap_or("-")),
        status: f[2].parse().unwrap_or(0),
        flags: split_flags(&f[3]),
        details: get(4),
        authority: get(14),
        upstream_host: get(15),
        upstream_cluster: get(16),
        downstream_local_address: get(18),
        server_name: get(20),
        route_name: get(21),
    })
}

fn split_flags(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|f| !f.is_empty() && *f != "-").map(str::to_string).collect()
}

/// What a response flag means and where in the configuration its causes are.
pub fn flag_causes(flag: &str) -> &'static str {
    match flag {
        "NR" => {
            "no route: no virtual host serves the authority, or no route of it matches the request (VirtualService hosts and matches); for TCP, no filter chain matched"
        }
        "NC" => "no cluster: the route names a cluster Envoy does not hold (a subset no DestinationRule declares, or a DestinationRule not pushed yet)",
        "UH" => {
            "no healthy upstream: the cluster has no endpoint (subset labels select no ready pod, the Service selects nothing) or outlier detection ejected them all"
        }
        "UF" => {
            "upstream connection failure: TLS settings disagree (DestinationRule tls vs PeerAuthentication), the targetPort is wrong, or nothing listens there"
        }
        "UO" => "upstream overflow: the DestinationRule's connectionPool limits (circuit breaker) were reached",
        "URX" => "retries exhausted: the VirtualService retry policy's attempts all failed",
        "UC" => "upstream connection terminated: the application closed the connection (keep-alive mismatch, crash)",
        "UT" => "upstream request timeout: the VirtualService timeout elapsed before the response",
        "LR" => "connection local reset",
        "UR" => "upstream remote reset",
        "DC" => "downstream connection terminated: the client went away before the response",
        "DPE" => "downstream protocol error: the client's bytes are not the protocol the port declares (port name or appProtocol)",
        "UPE" => "upstream protocol error: the application answered in another protocol than the port declares",
        "UAEX" => "unauthorized by the external authorization service (a CUSTOM AuthorizationPolicy)",
        "RL" => "rate limited (local or global rate limit filter)",
        "FI" => "fault injected: the VirtualService fault abort",
        "DI" => "delay injected: the VirtualService fault delay",
        "NFCF" => "no filter chain found: the listener has no chain for this destination, SNI or ALPN (plaintext to a STRICT mTLS port)",
        "SI" => "stream idle timeout",
        "DF" => "DNS resolution failed (dynamic forward proxy)",
        "UMSDR" => "upstream took longer than the max stream duration",
        "OM" => "overload manager terminated the request",
        "DO" => "dropped by overload (drop_overload)",
        "IH" => "strictly-checked request header invalid",
        "RLSE" => "rate limit service error",
        "UPS" => "upstream proxy failed",
        _ => "unknown flag",
    }
}

/// Explains a log line: its flags, then the traced request and how it compares with the log.
pub fn explain(snapshot: &Snapshot, from: &str, namespace: &str, line: &str) -> Result<TraceReport> {
    let log = parse(line)?;
    let (address, port) =
        log.downstream_local_address.rsplit_once(':').and_then(|(a, p)| Some((a.trim_matches(['[', ']']).to_string(), p.parse::<u32>().ok()?))).ok_or_else(
            || {
                Error::new("the access-log line has no downstream local address (ADDRESS:PORT)")
                    .help("Istio's default format writes it after the upstream local address")
            },
        )?;
    let tcp = log.method.is_empty();
    let request = Request {
        address,
        port,
        host: (!log.authority.is_empty()).then(|| log.authority.clone()),
        path: if log.path.is_empty() { "/".into() } else { log.path.clone() },
        method: if tcp { "GET".into() } else { log.method.clone() },
        headers: Vec::new(),
        protocol: if tcp {
            Protocol::Tcp
        } else if log.protocol.starts_with("HTTP/2") {
            Protocol::Http2
        } else {
            Protocol::Http
        },
        security: if log.server_name.is_empty() || !tcp { Security::Plaintext } else { Security::Tls },
        sni: (!log.server_name.is_empty()).then(|| log.server_name.clone()),
        alpn: None,
        inbound: false,
    };
    let mut report = trace(snapshot, from, namespace, request)?;
    let mut notes: Vec<String> = log.flags.iter().map(|f| format!("{f}: {}", flag_causes(f))).collect();
    if let Some(w) = report.answer() {
        if !log.upstream_cluster.is_empty() && w.cluster.as_deref().is_some_and(|c| c != log.upstream_cluster) {
            notes.push(format!(
                "the log's upstream cluster {} is not where the {} configuration sends this request ({})",
                log.upstream_cluster,
                report.source,
                w.cluster.as_deref().unwrap_or_default()
            ));
        }
        if !log.route_name.is_empty() && w.route.as_deref().is_some_and(|r| r != log.route_name) {
            notes.push(format!("the log's route {} is not the route matched now ({})", log.route_name, w.route.as_deref().unwrap_or_default()));
        }
    }
    report.log = Some(LogExplanation { line: log, notes });
    Ok(report)
}

/// A parsed log line and what its flags mean.
#[derive(Debug, Clone, Serialize)]
pub struct LogExplanation {
    /// The parsed line.
    pub line: LogLine,
    /// One note per flag, then where the log and the trace disagree.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_default_format_and_json() {
        let line = r#"[2020-11-25T21:26:18.409Z] "GET /status/418?x=1 HTTP/1.1" 503 UH,URX no_healthy_upstream - "-" 0 135 4 4 "-" "curl/7.73.0-DEV" "84961386-6d84" "httpbin:8000" "-" outbound|8000||httpbin.foo.svc.cluster.local - 10.0.45.184:8000 10.44.1.23:46520 - default"#;
        let l = parse(line).unwrap();
        assert_eq!((l.method.as_str(), l.path.as_str(), l.status), ("GET", "/status/418?x=1", 503));
        assert_eq!(l.flags, ["UH", "URX"]);
        assert_eq!((l.authority.as_str(), l.upstream_cluster.as_str()), ("httpbin:8000", "outbound|8000||httpbin.foo.svc.cluster.local"));
        assert_eq!((l.downstream_local_address.as_str(), l.route_name.as_str(), l.upstream_host.as_str()), ("10.0.45.184:8000", "default", ""));
        let j = parse(r#"{"method":"GET","path":"/","response_code":404,"response_flags":"NR","authority":"a","route_name":null,"downstream_local_address":"1.2.3.4:80"}"#).unwrap();
        assert_eq!((j.status, j.flags.as_slice(), j.route_name.as_str()), (404, ["NR".to_string()].as_slice(), ""));
        assert!(parse("GET / 404").is_err());
    }
}
