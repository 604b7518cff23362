//! Mesh-wide mode: `--all` checks every service in scope and reports one findings list whose
//! target is the scope; the SERVICE argument is refused with it.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("binary runs")
}

fn scenario(name: &str) -> String {
    Path::new("testdata/scenarios").join(name).to_string_lossy().into_owned()
}

#[test]
fn all_namespaces_reports_every_cause_once_with_the_scope_as_target() {
    let out = run(&["--all", "-A", "--snapshot", &scenario("vs-conflict"), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["schema"], "mesh-why/v1");
    assert_eq!(report["target"]["namespace"], "*");
    let subjects: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {} {}", f["id"].as_str().unwrap(), f["istio_code"].as_str().unwrap_or("-"), f["subject"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(subjects, ["vs-conflict IST0109 reviews-v2-test", "vs-conflict IST0109 reviews"]);
}

#[test]
fn one_namespace_limits_the_object_checks_to_it() {
    let out = run(&["--all", "-n", "frontend", "--snapshot", &scenario("namespace-not-injected"), "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["namespace-not-injected"]);
    assert_eq!(report["findings"][0]["subject"]["kind"], "Namespace");
    let out = run(&["--all", "-n", "default", "--snapshot", &scenario("namespace-not-injected"), "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn a_service_with_all_is_a_usage_error() {
    let out = run(&["reviews", "--all", "--snapshot", &scenario("vs-conflict")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all"));
}
