//! Bad input gets a clear error naming the file and field, exit status 2, and never a panic.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const HEALTHY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/scenarios/healthy-canary");

fn run(snapshot: &Path, service: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).arg(service).arg("--snapshot").arg(snapshot).output().unwrap()
}

/// Asserts exit 2, no panic, and that stderr mentions every `needle`.
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// A copy of the healthy scenario to damage.
fn healthy_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(Path::new(HEALTHY), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

fn dump_path(root: &Path) -> std::path::PathBuf {
    root.join("proxies/default/productpage-v1-6b7f9d8c7-ccccc/config_dump.json")
}

#[test]
fn truncated_config_dump() {
    let tmp = healthy_copy();
    let dump = dump_path(tmp.path());
    let text = fs::read(&dump).unwrap();
    fs::write(&dump, &text[..text.len() / 2]).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["truncated", "config_dump.json"]);
}

#[test]
fn wrong_type_in_config_dump_names_the_field() {
    let tmp = healthy_copy();
    let dump = dump_path(tmp.path());
    let text = fs::read_to_string(&dump).unwrap().replacen("\"domains\": [", "\"domains\": 5, \"x\": [", 1);
    fs::write(&dump, text).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["config_dump.json", "domains", "invalid type"]);
}

#[test]
fn unknown_section_type() {
    let tmp = healthy_copy();
    fs::write(dump_path(tmp.path()), r#"{"configs":[{"@type":"type.googleapis.com/acme.Thing"}]}"#).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["unknown config dump section type", "acme.Thing"]);
}

#[test]
fn wrong_type_in_an_object_names_the_field() {
    let tmp = healthy_copy();
    let objects = tmp.path().join("objects/bookinfo.yaml");
    let text = fs::read_to_string(&objects).unwrap().replace("hosts: [reviews]", "hosts: 5");
    fs::write(&objects, text).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["bookinfo.yaml", "spec.hosts"]);
}

#[test]
fn empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["no objects and no proxy captures", "help:"]);
}

#[test]
fn missing_snapshot() {
    assert_refused(&run(Path::new("/nonexistent/snapshot"), "reviews"), &["cannot read snapshot", "help:"]);
}

#[test]
fn binary_file_in_objects() {
    let tmp = healthy_copy();
    fs::write(tmp.path().join("objects/blob.yaml"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["blob.yaml", "not text"]);
}

#[test]
fn one_gigabyte_file_is_refused_before_reading() {
    let tmp = healthy_copy();
    let f = fs::File::create(dump_path(tmp.path())).unwrap();
    f.set_len(1 << 30).unwrap(); // sparse: costs no disk
    assert_refused(&run(tmp.path(), "reviews"), &["1024 MiB", "config_dump.json"]);
}

#[test]
fn yaml_bomb_is_refused() {
    let tmp = healthy_copy();
    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, next) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"]) {
        bomb.push_str(&format!("{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    fs::write(tmp.path().join("objects/bomb.yaml"), bomb).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["bomb.yaml", "invalid YAML"]);
}

#[test]
fn unknown_service_lists_what_exists() {
    assert_refused(&run(Path::new(HEALTHY), "reveiws"), &["service reveiws not found in namespace default", "help:"]);
}

#[test]
fn unknown_fields_are_accepted() {
    let tmp = healthy_copy();
    let objects = tmp.path().join("objects/bookinfo.yaml");
    let text = fs::read_to_string(&objects).unwrap().replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  futureField: {x: 1}\n");
    fs::write(&objects, text).unwrap();
    assert_eq!(run(tmp.path(), "reviews").status.code(), Some(0));
}

#[test]
fn tar_gz_snapshot_reads_like_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("snap.tar.gz");
    let status = Command::new("tar").arg("czf").arg(&archive).arg("-C").arg(HEALTHY).arg(".").status().unwrap();
    assert!(status.success());
    let from_dir = run(Path::new(HEALTHY), "reviews");
    let from_tar = run(&archive, "reviews");
    assert_eq!(from_tar.status.code(), Some(0), "{}", String::from_utf8_lossy(&from_tar.stderr));
    let strip = |o: &Output| String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(strip(&from_dir), strip(&from_tar));
}
