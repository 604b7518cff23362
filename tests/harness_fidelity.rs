//! Proves the test API server's fidelity by driving it with the real kubectl (`get`, and
//! `port-forward` to a real Envoy): runs `tests/harness/fidelity_test.py`; fails, saying what to
//! install, when python3, Envoy or kubectl is missing.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn real_kubectl_reads_the_test_api_server_and_forwards_to_envoy() {
    common::require_envoy();
    common::require_kubectl();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/fidelity_test.py");
    let out = Command::new("python3").arg(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "fidelity checks failed:\n{stdout}\n{stderr}");
}
