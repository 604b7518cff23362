//! kubectl finds the plugin on PATH: `kubectl mesh-why --help` and `kubectl plugin list` with the
//! real kubectl (failing, saying what to install, where kubectl is not installed).

mod common;

use std::process::Command;

#[test]
fn real_kubectl_finds_the_plugin_on_path() {
    common::require_kubectl();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl-mesh_why");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-mesh_why"), &link).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    // No kubeconfig: --help must not need a cluster.
    let kubectl = |args: &[&str]| Command::new("kubectl").args(args).env("PATH", &path).env("KUBECONFIG", dir.path().join("none")).output().unwrap();
    let help = kubectl(&["mesh-why", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
    assert!(text.contains("Explains why Istio traffic"), "{text}");
    let list = kubectl(&["plugin", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-mesh_why"));
}
