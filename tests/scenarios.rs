//! Runs every scenario snapshot under `testdata/scenarios/` through the built binary and checks
//! the ranked finding ids and the exit status against the scenario's `expected.json`.
//!
//! Every JSON report, and the mesh-wide (`--all -A`) report of every scenario, must hold to the
//! published schema (`docs/schema/mesh-why-v1.json`).
//!
//! `expected.json`: `{"service": "reviews.default", "args": [...], "exit": 1, "findings": [ids]}`.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenarios() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testdata/scenarios exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn run(dir: &Path) -> Result<(), String> {
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).map_err(|e| format!("expected.json: {e}"))?;
    let service = expected["service"].as_str().ok_or("expected.json: no service")?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"));
    cmd.arg(service).arg("--snapshot").arg(dir).args(["-o", "json"]);
    for a in expected["args"].as_array().into_iter().flatten() {
        cmd.arg(a.as_str().unwrap_or_default());
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("output is not JSON ({e}); stderr: {stderr}"))?;
    let got: Vec<&str> = report["findings"].as_array().into_iter().flatten().filter_map(|f| f["id"].as_str()).collect();
    if let Some(violations) = common::schema_violations(&report) {
        return Err(format!("the JSON breaks the mesh-why/v1 schema: {violations}"));
    }
    let mesh =
        Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(["--all", "-A", "-o", "json", "--snapshot"]).arg(dir).output().map_err(|e| e.to_string())?;
    let mesh: Value = serde_json::from_slice(&mesh.stdout).map_err(|e| format!("--all -A output is not JSON ({e})"))?;
    if let Some(violations) = common::schema_violations(&mesh) {
        return Err(format!("the --all -A JSON breaks the mesh-why/v1 schema: {violations}"));
    }
    let want: Vec<&str> = expected["findings"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if got != want {
        return Err(format!("findings: expected {want:?}, got {got:?}"));
    }
    let code = out.status.code();
    let want_code = expected["exit"].as_i64().map(|c| c as i32);
    if code != want_code {
        return Err(format!("exit status: expected {want_code:?}, got {code:?}; stderr: {stderr}"));
    }
    for f in report["findings"].as_array().into_iter().flatten() {
        for field in ["summary", "detail", "fix"] {
            if f[field].as_str().is_none_or(str::is_empty) {
                return Err(format!("finding {} has an empty {field}", f["id"]));
            }
        }
        if f["evidence"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("finding {} has no evidence", f["id"]));
        }
    }
    Ok(())
}

#[test]
fn every_scenario_yields_its_expected_ranked_findings() {
    let dirs = scenarios();
    assert!(!dirs.is_empty(), "no scenarios found");
    let failures: Vec<String> = dirs.iter().filter_map(|d| run(d).err().map(|e| format!("{}: {e}", d.file_name().unwrap().to_string_lossy()))).collect();
    println!("{} scenarios run", dirs.len());
    assert!(failures.is_empty(), "{} of {} scenarios failed:\n{}", failures.len(), dirs.len(), failures.join("\n"));
}

/// A healthy scenario: a near-miss (`*-ok`), a `healthy-*` mesh, or one that expects no finding.
fn healthy(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let expected: Value = std::fs::read_to_string(dir.join("expected.json")).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    name.ends_with("-ok") || name.starts_with("healthy-") || expected["findings"].as_array().is_some_and(Vec::is_empty)
}

/// The intent-vs-proxy diff of one scenario, with its expected arguments; `Err` when it is not empty.
fn empty_diff(dir: &Path) -> Result<(), String> {
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).map_err(|e| format!("expected.json: {e}"))?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"));
    cmd.arg(expected["service"].as_str().unwrap_or_default()).arg("--snapshot").arg(dir).args(["-o", "json"]);
    cmd.args(expected["args"].as_array().into_iter().flatten().filter_map(Value::as_str));
    let out = cmd.output().map_err(|e| e.to_string())?;
    let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("output is not JSON ({e})"))?;
    match report["diff"].as_array() {
        Some(d) if d.is_empty() => Ok(()),
        Some(d) => Err(format!("the model and the proxy differ: {}", Value::Array(d.clone()))),
        None => Err("the report has no diff field".into()),
    }
}

/// Every healthy scenario (ours and the near-misses) gives an empty diff: a difference the
/// model cannot stand behind fails here instead of reaching a user as a false alarm.
#[test]
fn every_healthy_scenario_gives_an_empty_diff() {
    let dirs: Vec<PathBuf> = scenarios().into_iter().filter(|d| healthy(d)).collect();
    assert!(dirs.len() >= 20, "expected the healthy scenarios, found {}", dirs.len());
    let with_proxy = dirs.iter().filter(|d| d.join("proxies").is_dir()).count();
    let failures: Vec<String> = dirs.iter().filter_map(|d| empty_diff(d).err().map(|e| format!("{}: {e}", d.file_name().unwrap().to_string_lossy()))).collect();
    println!("{} healthy scenarios give an empty diff ({with_proxy} with proxy captures)", dirs.len() - failures.len());
    assert!(failures.is_empty(), "{} of {} healthy scenarios show a difference:\n{}", failures.len(), dirs.len(), failures.join("\n"));
}
