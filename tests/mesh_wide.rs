//! Mesh-wide mode: `--all` checks every service in scope and reports one findings list whose
//! target is the scope; the SERVICE argument is refused with it. Also the checks of objects tied
//! to no single service that need care: a Secret is read for its name only.

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

#[test]
fn a_secret_is_read_for_its_name_only() {
    for format in ["json", "markdown", "table"] {
        let out = run(&["--all", "-A", "--snapshot", &scenario("gateway-credential-missing"), "-o", format]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("gateway-credential-missing"), "{text}");
        // The fixture's fake certificate, key and last-applied annotation must not be echoed.
        for secret in ["ZmFrZS1jZXJ0aWZpY2F0ZQ", "ZmFrZS1rZXktbWF0ZXJpYWw", "last-applied"] {
            assert!(!text.contains(secret), "{format} output leaks {secret}");
        }
    }
}

#[test]
fn without_secrets_a_gateway_credential_is_a_gap_not_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    let yaml = std::fs::read_to_string(Path::new(&scenario("gateway-credential-missing")).join("objects/bookinfo.yaml")).unwrap();
    let kept: Vec<&str> = yaml.split("\n---\n").filter(|doc| !doc.contains("kind: Secret")).collect();
    std::fs::write(objects.join("bookinfo.yaml"), kept.join("\n---\n")).unwrap();
    let out = run(&["reviews", "--snapshot", &dir.path().to_string_lossy(), "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["findings"].as_array().unwrap().iter().all(|f| f["id"] != "gateway-credential-missing"), "{report}");
    let gap = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["source"].as_str().unwrap().starts_with("Secret bookinfo-cert"))
        .expect("a gap for the unchecked credential");
    assert!(gap["reason"].as_str().unwrap().contains("kubectl get secret bookinfo-cert -n istio-system"), "{gap}");
}

#[test]
fn a_cause_analyze_reports_twice_is_one_finding_with_both_codes() {
    let out = run(&["--all", "-A", "--snapshot", &scenario("gateway-not-found"), "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let on_vs: Vec<&Value> = report["findings"].as_array().unwrap().iter().filter(|f| f["subject"]["kind"] == "VirtualService").collect();
    assert_eq!(on_vs.len(), 1, "{report}");
    assert_eq!(on_vs[0]["id"], "gateway-not-found");
    assert_eq!(on_vs[0]["istio_code"], "IST0101");
    assert_eq!(on_vs[0]["also_istio_codes"], serde_json::json!(["IST0132"]));
}

#[test]
fn a_credential_is_read_for_its_key_names_and_dates_only() {
    for name in ["gateway-credential-invalid", "gateway-credential-invalid-ok"] {
        let dir = scenario(name);
        let yaml = std::fs::read_to_string(Path::new(&scenario(name)).join("objects/bookinfo.yaml")).unwrap();
        // Every Secret value, as stored (base64) and as decoded PEM, in pieces of 12 characters.
        let values: Vec<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("bookinfo.crt: ").or(l.trim().strip_prefix("bookinfo.key: "))).collect();
        let values: Vec<&str> =
            if values.is_empty() { yaml.lines().filter_map(|l| l.trim().strip_prefix("cert: ").or(l.trim().strip_prefix("key: "))).collect() } else { values };
        assert_eq!(values.len(), 2, "{name}: the fixture's two Secret values");
        let decoded: Vec<String> =
            values.iter().map(|v| String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v).unwrap()).unwrap()).collect();
        let pieces: Vec<String> = values
            .iter()
            .map(|v| v.to_string())
            .chain(decoded.iter().flat_map(|pem| pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_string)))
            .flat_map(|s| s.as_bytes().chunks(12).filter(|c| c.len() == 12).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>())
            .collect();
        assert!(pieces.len() > 20, "{name}: too little secret data to check");
        for args in [vec!["--all", "-A"], vec!["reviews"]] {
            for format in ["json", "markdown", "table"] {
                let mut all = args.clone();
                all.extend(["--snapshot", &dir, "-o", format]);
                let out = run(&all);
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                for piece in &pieces {
                    assert!(!text.contains(piece.as_str()), "{name} {args:?} -o {format} leaks secret data {piece}");
                }
            }
        }
    }
}

/// The JWT-claim route scenario's objects with `manifest` as its `mesh-why.json`; the report.
fn jwt_claim_report(manifest: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).unwrap();
    std::fs::copy(Path::new(&scenario("jwt-claim-route-unauthenticated")).join("objects/bookinfo.yaml"), objects.join("bookinfo.yaml")).unwrap();
    std::fs::write(dir.path().join("mesh-why.json"), manifest.to_string()).unwrap();
    let out = run(&["reviews", "--snapshot", &dir.path().to_string_lossy(), "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether the report holds the JWT-claim route finding.
fn has_jwt_claim_finding(report: &Value) -> bool {
    report["findings"].as_array().unwrap().iter().any(|f| f["id"] == "jwt-claim-route-unauthenticated")
}

#[test]
fn a_jwt_claim_route_is_not_judged_without_the_request_authentications() {
    let gap = serde_json::json!({"source": "requestauthentications.security.istio.io", "reason": "forbidden: list requestauthentications"});
    let report = jwt_claim_report(serde_json::json!({"format_version": 1, "gaps": [gap]}));
    assert!(!has_jwt_claim_finding(&report), "{report}");
    assert!(report["gaps"].to_string().contains("not checked: jwt-claim-route-unauthenticated"), "{report}");
}

#[test]
fn a_capture_that_predates_request_authentications_does_not_judge_jwt_claim_routes() {
    let vs = "objects/virtualservices.networking.istio.io.json: 2 objects";
    let old = jwt_claim_report(serde_json::json!({"format_version": 1, "collected": [vs]}));
    assert!(!has_jwt_claim_finding(&old), "{old}");
    let new = jwt_claim_report(serde_json::json!({"format_version": 1, "collected": [vs, "objects/requestauthentications.security.istio.io.json: 0 objects"]}));
    assert!(has_jwt_claim_finding(&new), "{new}");
}
