//! What users and their tools read besides the findings: `--version`, the absolute links to the
//! findings catalogue in every format, and the published JSON Schema's grip on the report.

mod common;

use serde_json::Value;

/// A way to break a document, and what it is called.
type Break = (&'static str, fn(&mut Value));
use std::path::Path;
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(args).current_dir(root()).output().unwrap()
}

fn proxy_stale(format: &str) -> String {
    String::from_utf8(run(&["reviews", "--snapshot", "testdata/scenarios/proxy-stale", "-o", format]).stdout).unwrap()
}

#[test]
fn version_names_the_release_the_commit_and_the_target() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    // `kubectl mesh-why 0.1.0 (commit 0123456789ab, x86_64-unknown-linux-gnu)`
    let rest = text.trim().strip_prefix(&format!("kubectl mesh-why {version} (commit ")).unwrap_or_else(|| panic!("{text}"));
    let (commit, target) = rest.trim_end_matches(')').split_once(", ").unwrap_or_else(|| panic!("{text}"));
    assert!(commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())), "{text}");
    assert!(target.split('-').count() >= 3 && target.starts_with(std::env::consts::ARCH), "{text}");
    let report: Value = serde_json::from_str(&proxy_stale("json")).unwrap();
    assert_eq!(report["tool"]["version"], version);
    assert_eq!(report["tool"]["commit"], commit);
}

#[test]
fn every_format_links_each_finding_to_its_entry_at_this_release() {
    let url = format!("{}/blob/v{}/docs/findings.md#proxy-stale", env!("CARGO_PKG_REPOSITORY"), env!("CARGO_PKG_VERSION"));
    assert!(url.starts_with("https://github.com/"), "{url}");
    let report: Value = serde_json::from_str(&proxy_stale("json")).unwrap();
    assert_eq!(report["findings"][0]["docs"], url.as_str());
    assert!(proxy_stale("table").contains(&format!("see: {url}\n")));
    assert!(proxy_stale("markdown").contains(&format!("See {url}\n")));
    // The anchor is the one GitHub makes of the catalogue's heading.
    let catalogue = std::fs::read_to_string(root().join("docs/findings.md")).unwrap();
    assert!(catalogue.contains("## `proxy-stale`"));
}

#[test]
fn the_schema_rejects_a_report_that_breaks_the_promise() {
    let report: Value = serde_json::from_str(&proxy_stale("json")).unwrap();
    assert_eq!(common::schema_violations(&report), None);
    let breaks: [Break; 4] = [
        ("a relative link", |r| r["findings"][0]["docs"] = "docs/findings.md#proxy-stale".into()),
        ("a renamed field", |r| {
            let summary = r["findings"][0].as_object_mut().unwrap().remove("summary").unwrap();
            r["findings"][0]["message"] = summary;
        }),
        ("an unknown severity", |r| r["findings"][0]["severity"] = "critical".into()),
        ("a route difference without its index", |r| {
            r["diff"][0]["differences"][0].as_object_mut().unwrap().remove("index");
        }),
    ];
    for (what, change) in breaks {
        let mut broken = report.clone();
        change(&mut broken);
        assert!(common::schema_violations(&broken).is_some(), "the schema accepts {what}");
    }
    // Additions are allowed within mesh-why/v1.
    let mut added = report;
    added["findings"][0]["new_field"] = 1.into();
    assert_eq!(common::schema_violations(&added), None);
}

#[test]
fn completion_scripts_for_every_shell_and_bash_loads_its_own() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = run(&["completion", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("kubectl-mesh_why"), "{shell}");
    }
    assert_eq!(run(&["completion", "tcsh"]).status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kubectl-mesh_why.bash");
    std::fs::write(&script, run(&["completion", "bash"]).stdout).unwrap();
    let loaded = Command::new("bash").arg("-c").arg(format!("source '{}' && complete -p kubectl-mesh_why", script.display())).output().expect("bash runs");
    assert!(loaded.status.success() && String::from_utf8_lossy(&loaded.stdout).contains("kubectl-mesh_why"), "{}", String::from_utf8_lossy(&loaded.stderr));
}

/// The README's demo commands and the output it shows for them: `cargo run --release -- ARGS`
/// followed, further on, by "Output of the ... command:" and a fenced block.
#[test]
fn the_readme_shows_what_its_demo_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let demos: Vec<&str> = readme.lines().filter_map(|l| l.trim().strip_prefix("cargo run --release -- ")).collect();
    let shown: Vec<&str> = readme.split("command:\n\n```\n").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert!(!demos.is_empty() && demos.len() >= shown.len(), "{demos:?}");
    for (args, expected) in demos.iter().zip(&shown) {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(args.split_whitespace()).current_dir(root()).env("NO_COLOR", "1").output().unwrap();
        assert_ne!(out.status.code(), Some(2), "`{args}`: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), expected.trim_end(), "the README shows another output for `{args}`: update it");
    }
}
