//! `kubectl mesh-why trace` end to end on scenario snapshots (captures made by a real Envoy):
//! the JSON's top-level fields, the finding where intent and Envoy part, a healthy near-miss
//! without one, `/clusters` health, `--log`, and bad flags. Every JSON output is checked against
//! the published `mesh-why/v1` schema.

mod common;

use serde_json::Value;

/// A way to break a document, and what it is called.
type Break = (&'static str, fn(&mut Value));
use std::process::{Command, Output};

const CALLER: &str = "productpage-v1-6b7f9d8c7-ccccc";

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).current_dir(env!("CARGO_MANIFEST_DIR")).arg("trace").args(args).output().expect("the binary runs")
}

fn trace_json(scenario: &str, extra: &[&str]) -> (Value, i32) {
    let snapshot = format!("testdata/scenarios/{scenario}");
    let mut args = vec!["reviews", "--from", CALLER, "--port", "9080", "--snapshot", &snapshot, "-o", "json"];
    args.extend_from_slice(extra);
    let out = run(&args);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(common::schema_violations(&json), None, "{scenario} {extra:?}");
    (json, out.status.code().unwrap_or(-1))
}

#[test]
fn stale_proxy_is_the_finding_where_the_walks_part() {
    let (json, code) = trace_json("proxy-stale", &[]);
    assert_eq!(code, 1);
    assert_eq!(json["source"], "envoy");
    assert_eq!((json["listener"].as_str(), json["route_config"].as_str()), (Some("0.0.0.0_9080"), Some("9080")));
    assert_eq!(json["virtual_host"], "reviews.default.svc.cluster.local:9080");
    assert_eq!((json["cluster"].clone(), json["error"].clone()), (Value::Null, Value::Null), "a weighted route names no single cluster");
    assert_eq!(json["findings"][0]["id"], "proxy-stale");
    let evidence = json["findings"][0]["evidence"][0].as_str().unwrap();
    assert!(evidence.contains("90%") && evidence.contains("50%"), "{evidence}");
    assert!(json["steps"].as_array().unwrap().iter().any(|s| s["stage"] == "virtual_host"));
    assert!(json["envoy"].is_object() && json["intent"].is_object());
}

#[test]
fn a_trace_is_a_mesh_why_v1_document_the_schema_holds_to_its_promise() {
    let (json, _) = trace_json("proxy-stale", &[]);
    assert_eq!((json["schema"].as_str(), json["kind"].as_str()), (Some("mesh-why/v1"), Some("trace")));
    assert_eq!(json["tool"]["version"], env!("CARGO_PKG_VERSION"));
    let share = &json["envoy"]["action"]["clusters"][0];
    assert_eq!((share["cluster"].as_str(), share["percent"].as_f64()), (Some("outbound|9080|v1|reviews.default.svc.cluster.local"), Some(50.0)));
    let breaks: [Break; 4] = [
        ("an unknown source", |t| t["source"] = "guess".into()),
        ("a stop code that is not snake_case", |t| t["error"] = "No Route".into()),
        ("a share over 100%", |t| t["envoy"]["action"]["clusters"][0]["percent"] = 150.0.into()),
        ("a step without its reason", |t| {
            t["steps"][0].as_object_mut().unwrap().remove("why");
        }),
    ];
    for (what, change) in breaks {
        let mut broken = json.clone();
        change(&mut broken);
        assert!(common::schema_violations(&broken).is_some(), "the schema accepts {what}");
    }
    // A report's shape is not a trace's: without `kind` the document must be a report.
    let mut untagged = json;
    untagged.as_object_mut().unwrap().remove("kind");
    assert!(common::schema_violations(&untagged).is_some(), "a trace without its kind passes as a report");
}

#[test]
fn healthy_canary_has_no_finding_and_unhealthy_endpoints_show_as_uh() {
    let (json, code) = trace_json("healthy-canary", &[]);
    assert_eq!(code, 0);
    assert_eq!(json["findings"], Value::Array(vec![]));
    let (json, _) = trace_json("endpoints-unhealthy", &[]);
    assert!(json["outcome"].as_str().unwrap().contains("503 UH"), "{}", json["outcome"]);
}

/// The check calls `review-zero` unreachable; the trace of the very request it is for agrees.
#[test]
fn a_rule_the_check_calls_unreachable_is_one_the_trace_never_reaches() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["reviews", "--snapshot", "testdata/scenarios/unreachable-rule-exact", "-o", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!((finding["id"].as_str(), finding["istio_code"].as_str()), (Some("unreachable-rule"), None), "{finding}");
    assert!(finding["summary"].as_str().unwrap().contains("\"review-zero\""), "{finding}");
    let (json, _) = trace_json("unreachable-rule-exact", &["--path", "/reviews/0", "-H", "end-user: jason"]);
    assert_eq!(json["route"], "under-reviews");
    // Where the check stays silent (the path differs in case), the trace reaches the rule.
    let (json, _) = trace_json("unreachable-rule-exact-ok", &["--path", "/Reviews/0", "-H", "end-user: jason"]);
    assert_eq!(json["route"], "review-zero");
}

#[test]
fn a_trailing_dot_host_is_served_from_istio_1_27_and_passes_through_before() {
    let host = ["--host", "reviews.default.svc.cluster.local."];
    let (json, code) = trace_json("trailing-dot-host-1.27-ok", &host);
    assert_eq!((code, json["virtual_host"].as_str()), (0, Some("reviews.default.svc.cluster.local:9080")));
    assert_eq!(json["intent"]["virtual_host"], json["envoy"]["virtual_host"]);
    // A 1.24 caller's Envoy has no such domain: the request meets the catch-all, as the model says.
    let (json, code) = trace_json("healthy-canary", &host);
    assert_eq!((code, json["virtual_host"].as_str(), json["intent"]["virtual_host"].as_str()), (0, Some("allow_any"), Some("allow_any")));
    assert!(json["findings"].as_array().is_some_and(Vec::is_empty), "{json}");
}

#[test]
fn a_host_the_check_calls_unrouted_is_one_the_gateway_trace_finds_no_virtual_host_for() {
    let gateway = "istio-system/istio-ingressgateway-5d8f7c9b6-ggggg";
    let walk = |host: &str| {
        let out = run(&[
            "--from",
            gateway,
            "--port",
            "80",
            "--host",
            host,
            "--path",
            "/reviews/1",
            "--snapshot",
            "testdata/scenarios/gateway-host-unrouted",
            "-o",
            "json",
        ]);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (json["route_config"].as_str().map(str::to_string), json["error"].as_str().map(str::to_string))
    };
    assert_eq!(walk("ratings.example.com"), (Some("http.80".into()), Some("no_virtual_host".into())));
    assert_eq!(walk("reviews.example.com").1, None, "the served host goes through");
}

#[test]
fn an_ambient_caller_is_traced_in_the_waypoint_of_the_destination() {
    // productpage has no sidecar: the waypoint's Envoy routes, through its internal listener
    // and the filter chain its filter_chain_matcher picks by destination VIP and port.
    let (json, code) = trace_json("waypoint-proxy-stale", &[]);
    assert_eq!((code, json["source"].as_str()), (1, Some("envoy")), "{json}");
    assert!(json["caller_note"].as_str().unwrap().contains("ztunnel sends this request to waypoint default/waypoint"), "{json}");
    assert_eq!(
        (json["listener"].as_str(), json["filter_chain"].as_str()),
        (Some("main_internal"), Some("inbound-vip|9080|http|reviews.default.svc.cluster.local"))
    );
    assert_eq!(json["findings"][0]["id"], "proxy-stale", "the waypoint still splits 50/50: {json}");
    let (json, code) = trace_json("waypoint-healthy", &[]);
    assert_eq!(code, 0, "{json}");
    assert!(json["findings"].as_array().unwrap().is_empty() && json["outcome"].as_str().unwrap().contains("90%"), "{json}");
    // Without a waypoint there are no HTTP routes on the way, and the trace says so.
    let (json, _) = trace_json("l7-rule-without-waypoint", &[]);
    assert!(json["gaps"].as_array().unwrap().iter().any(|g| g.as_str().unwrap().contains("ztunnel forwards the connection at L4")), "{json}");
}

#[test]
fn explains_an_access_log_line() {
    let line = r#"[2026-12-03T10:38:29.630Z] "GET /reviews/0 HTTP/1.1" 503 UH no_healthy_upstream - "-" 0 19 0 - "-" "curl" "id" "reviews:9080" "-" outbound|9080|v2|reviews.default.svc.cluster.local - 10.96.0.20:9080 10.0.0.5:4242 - -"#;
    let (json, _) = trace_json("endpoints-unhealthy", &["--log", line]);
    let notes = json["log"]["notes"].as_array().unwrap();
    assert!(notes[0].as_str().unwrap().starts_with("UH: no healthy upstream"), "{notes:?}");
    assert_eq!(json["log"]["line"]["upstream_cluster"], "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_eq!(json["request"]["address"], "10.96.0.20");
}

#[test]
fn a_bare_caller_in_another_namespace_is_found_and_said_so() {
    let (json, _) = trace_json("from-pod-in-other-namespace", &[]);
    assert_eq!(json["caller"], format!("frontend/{CALLER}"));
    let note = json["caller_note"].as_str().unwrap();
    assert!(note.contains("found it in namespace frontend"), "{note}");
    let table = run(&["reviews", "--from", CALLER, "--port", "9080", "--snapshot", "testdata/scenarios/from-pod-in-other-namespace"]);
    assert!(String::from_utf8_lossy(&table.stdout).lines().nth(1).is_some_and(|l| l.contains("found it in namespace frontend")));
    let named = run(&[
        "reviews",
        "--from",
        &format!("frontend/{CALLER}"),
        "--port",
        "9080",
        "--snapshot",
        "testdata/scenarios/from-pod-in-other-namespace",
        "-o",
        "json",
    ]);
    let json: Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(json["caller_note"], Value::Null, "a caller named with its namespace needs no note");
}

#[test]
fn bad_flags_exit_2_with_what_to_do() {
    for args in [
        vec!["reviews", "--from", CALLER, "--port", "9080", "--path", "no-slash", "--snapshot", "testdata/scenarios/proxy-stale"],
        vec!["reviews", "--from", CALLER, "--port", "9080", "-H", "no-colon", "--snapshot", "testdata/scenarios/proxy-stale"],
        vec!["reviews", "--from", "nobody", "--port", "9080", "--snapshot", "testdata/scenarios/proxy-stale"],
        vec!["--from", CALLER, "--snapshot", "testdata/scenarios/proxy-stale"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}
