//! What every target does with its input: put it where a real snapshot holds it (a healthy
//! canary's objects and caller), analyse the question and the mesh, and render all three
//! formats. Errors are fine; panics, hangs and unbounded memory are what the fuzzer finds.

#![allow(dead_code)] // each target uses the part it needs

use mesh_why::diagnose::{analyze, analyze_mesh};
use mesh_why::question::Question;
use mesh_why::render::{Format, render};
use mesh_why::snapshot::{Blob, Snapshot, StatsFormat};
use std::path::Path;
use std::sync::OnceLock;

/// The scenario every proxy-file target starts from.
const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/scenarios/healthy-canary");

fn base() -> &'static Snapshot {
    static BASE_SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    BASE_SNAPSHOT.get_or_init(|| mesh_why::gather::files::read_snapshot(Path::new(BASE)).expect("the base scenario reads"))
}

/// Analyses `snapshot` for reviews.default and for the whole mesh, rendering every format.
pub fn analyse(snapshot: &Snapshot) {
    let question = Question { service: "reviews".into(), namespace: "default".into(), port: None, from: None, from_namespace: "default".into() };
    for report in [analyze(snapshot, &question), analyze_mesh(snapshot, None)].into_iter().flatten() {
        for format in [Format::Table, Format::Markdown, Format::Json] {
            let _ = render(&report, format, false);
        }
    }
}

/// Which admin file of the caller's capture the input replaces.
pub enum ProxyFile {
    ConfigDump,
    Clusters,
    ServerInfo,
    Stats(StatsFormat),
}

/// The base snapshot with one admin file of its caller replaced by `data`, analysed.
pub fn proxy_file(file: ProxyFile, data: &[u8]) {
    let mut snapshot = base().clone();
    let Some(capture) = snapshot.proxies.first_mut() else { return };
    let blob = Some(Blob { origin: "fuzz".into(), bytes: data.to_vec() });
    match file {
        ProxyFile::ConfigDump => capture.config_dump = blob,
        ProxyFile::Clusters => capture.clusters = blob,
        ProxyFile::ServerInfo => capture.server_info = blob,
        ProxyFile::Stats(format) => capture.stats = blob.into_iter().map(|b| (format, b)).collect(),
    }
    analyse(&snapshot);
}

/// Reads `data` as a snapshot archive (written to a temporary file, as a user passes one) and
/// analyses what it holds.
pub fn archive(data: &[u8], name: &str) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(snapshot) = mesh_why::gather::files::read_snapshot(&path) {
        analyse(&snapshot);
    }
}
