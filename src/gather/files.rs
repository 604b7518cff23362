//! Reads a snapshot from a directory or a `.tar.gz` of one.
//!
//! Layout: `objects/**/*.{yaml,yml,json}`, `proxies/NAMESPACE/POD/{config_dump.json,
//! clusters.json, stats.txt|stats.json|stats_prometheus.txt, server_info.json}` and an optional
//! `mesh-why.json`. Every file is size-checked before it is read, and archives are bounded in
//! total, so a huge file or a decompression bomb gets a clear error instead of exhausting memory.

use crate::error::{Error, Result};
use crate::snapshot::{Blob, Gap, MANIFEST_FILE, Manifest, ProxyCapture, Snapshot, StatsFormat};
use flate2::read::GzDecoder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path};

/// Directory of Kubernetes and Istio objects.
pub const OBJECTS_DIR: &str = "objects";
/// Directory of proxy captures, one `NAMESPACE/POD/` directory per proxy.
pub const PROXIES_DIR: &str = "proxies";
/// `GET /config_dump` in a proxy directory.
pub const CONFIG_DUMP_FILE: &str = "config_dump.json";
/// `GET /clusters?format=json` in a proxy directory.
pub const CLUSTERS_FILE: &str = "clusters.json";
/// `GET /server_info` in a proxy directory.
pub const SERVER_INFO_FILE: &str = "server_info.json";

/// File name of a stats capture in each encoding.
pub fn stats_file(format: StatsFormat) -> &'static str {
    match format {
        StatsFormat::Text => "stats.txt",
        StatsFormat::Json => "stats.json",
        StatsFormat::Prometheus => "stats_prometheus.txt",
    }
}

/// Largest single file accepted; real config dumps of big meshes stay well below this.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest total size of an archive's contents once decompressed.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// Reads the snapshot at `path` (directory, `.tar.gz` or `.tgz`).
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    let meta = fs::metadata(path).map_err(|e| {
        Error::new(format!("cannot read snapshot: {e}")).at(path.display()).help("pass a directory written by `kubectl mesh-why capture`, or a .tar.gz of one")
    })?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        walk_dir(path, path, &mut files)?;
        files
    } else {
        read_archive(path)?
    };
    let display_root = path.display().to_string();
    assemble(files, &display_root)
}

/// Files of a snapshot: path relative to the root (with `/`), and contents.
type FileList = Vec<(String, Vec<u8>)>;

fn walk_dir(root: &Path, dir: &Path, out: &mut FileList) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::new(format!("cannot list directory: {e}")).at(dir.display()))?;
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Symlinks are not followed: a snapshot is self-contained.
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk_dir(root, &path, out)?;
        } else if ft.is_file() {
            let found = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let Some(rel) = layout_name(&strip_top_dir(&found)) else { continue };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            check_size(&rel, len, &path.display().to_string())?;
            let bytes = fs::read(&path).map_err(|e| Error::new(format!("cannot read file: {e}")).at(path.display()))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

fn check_size(rel: &str, len: u64, shown: &str) -> Result<()> {
    if len > MAX_FILE_BYTES {
        return Err(Error::new(format!("{rel} is {} MiB, larger than the {} MiB mesh-why reads", len >> 20, MAX_FILE_BYTES >> 20))
            .at(shown)
            .help("capture a filtered dump (`kubectl mesh-why capture` fetches only what the question needs)"));
    }
    Ok(())
}

/// The snapshot-layout name of a file, or `None` for files that are not read. Files of an
/// `istioctl bug-report` archive are mapped onto the layout: its cluster-wide `kubectl get -o
/// yaml` output becomes objects, its per-proxy admin output becomes proxy captures. Nothing
/// else is read from it (never `cluster/secrets`).
fn layout_name(rel: &str) -> Option<String> {
    match rel {
        "cluster/k8s-resources" | "cluster/crs" => Some(format!("{OBJECTS_DIR}/{}.yaml", &rel["cluster/".len()..])),
        _ => bug_report_proxy_file(rel).or_else(|| is_wanted(rel).then(|| rel.to_string())),
    }
}

/// `proxies/NS/POD/config_dump` (and `clusters`, `server_info`, `stats/prometheus`), as
/// `istioctl bug-report` names them, mapped to the snapshot's file names.
fn bug_report_proxy_file(rel: &str) -> Option<String> {
    let proxy = rel.strip_prefix("proxies/")?;
    let (pod_dir, endpoint) = match proxy.rsplit_once("/stats/") {
        Some((dir, "prometheus")) => (dir, stats_file(StatsFormat::Prometheus)),
        _ => {
            let (dir, file) = proxy.rsplit_once('/')?;
            let name = match file {
                "config_dump" => CONFIG_DUMP_FILE,
                "clusters" => CLUSTERS_FILE,
                "server_info" => SERVER_INFO_FILE,
                _ => return None,
            };
            (dir, name)
        }
    };
    Some(format!("{PROXIES_DIR}/{pod_dir}/{endpoint}"))
}

/// Only the files the layout names are read; anything else in the tree is ignored.
fn is_wanted(rel: &str) -> bool {
    rel == MANIFEST_FILE || under(rel, OBJECTS_DIR).is_some() || under(rel, PROXIES_DIR).is_some()
}

/// `rel` without the leading `dir/`, when it lies below `dir`.
fn under<'a>(rel: &'a str, dir: &str) -> Option<&'a str> {
    rel.strip_prefix(dir)?.strip_prefix('/')
}

fn read_archive(path: &Path) -> Result<FileList> {
    let shown = path.display().to_string();
    let file = fs::File::open(path).map_err(|e| Error::new(format!("cannot open archive: {e}")).at(&shown))?;
    let bad = |e: std::io::Error| {
        Error::new(format!("not a readable .tar.gz snapshot: {e}")).at(&shown).help("pass a directory, or an archive made with `tar czf snap.tar.gz -C DIR .`")
    };
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut out = FileList::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path().map_err(bad)?.into_owned();
        if raw.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(Error::new(format!("archive entry {} points outside the snapshot", raw.display())).at(&shown));
        }
        let rel: String = raw
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        let Some(rel) = layout_name(&strip_top_dir(&rel)) else { continue };
        let len = entry.header().size().unwrap_or(0);
        check_size(&rel, len, &format!("{shown}:{rel}"))?;
        total += len;
        if total > MAX_ARCHIVE_BYTES {
            return Err(Error::new(format!("archive unpacks to more than {} MiB", MAX_ARCHIVE_BYTES >> 20)).at(&shown));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        entry.by_ref().take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(bad)?;
        out.push((rel, bytes));
    }
    Ok(out)
}

/// Archives made with `tar czf x.tgz snapshot/` (and bug-report archives, under `bug-report/`)
/// carry one leading directory; drop it.
fn strip_top_dir(rel: &str) -> String {
    match rel.split_once('/') {
        Some((first, rest)) if ![OBJECTS_DIR, PROXIES_DIR, "cluster"].contains(&first) && rel != MANIFEST_FILE => rest.to_string(),
        _ => rel.to_string(),
    }
}

/// Turns the file list into a snapshot: parses objects and the manifest, keeps proxy files raw.
fn assemble(files: FileList, root: &str) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let mut proxies: BTreeMap<(String, String), ProxyCapture> = BTreeMap::new();
    for (rel, bytes) in files {
        let origin = format!("{root}/{rel}");
        if rel == MANIFEST_FILE {
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::new(format!("{MANIFEST_FILE} is not valid: {e}")).at(&origin))?;
            snap.gaps.extend(manifest.gaps.iter().cloned());
            snap.manifest = Some(manifest);
        } else if let Some(obj_path) = under(&rel, OBJECTS_DIR) {
            let lower = obj_path.to_ascii_lowercase();
            if lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json") {
                for (i, doc) in parse_documents(&bytes, &origin, lower.ends_with(".json"))?.into_iter().enumerate() {
                    snap.objects.add_document(doc, &format!("{origin} (document {})", i + 1))?;
                }
            }
        } else if let Some(proxy_path) = under(&rel, PROXIES_DIR) {
            let parts: Vec<&str> = proxy_path.split('/').collect();
            let [ns, pod, file] = parts.as_slice() else { continue };
            let capture = proxies.entry((ns.to_string(), pod.to_string())).or_insert_with(|| ProxyCapture {
                namespace: ns.to_string(),
                pod: pod.to_string(),
                ..Default::default()
            });
            let blob = Blob { origin: origin.clone(), bytes };
            let stats = [StatsFormat::Text, StatsFormat::Json, StatsFormat::Prometheus].into_iter().find(|f| stats_file(*f) == *file);
            match (*file, stats) {
                (_, Some(format)) => capture.stats.push((format, blob)),
                (CONFIG_DUMP_FILE, _) => capture.config_dump = Some(blob),
                (CLUSTERS_FILE, _) => capture.clusters = Some(blob),
                (SERVER_INFO_FILE, _) => capture.server_info = Some(blob),
                _ => snap.gaps.push(Gap { source: origin, reason: "unknown file in a proxy directory; ignored".into() }),
            }
        }
    }
    snap.proxies = proxies.into_values().collect();
    if snap.objects.is_empty() && snap.proxies.is_empty() {
        return Err(Error::new("the snapshot holds no objects and no proxy captures")
            .at(root)
            .help("expected objects/*.yaml (from `kubectl get -o yaml`) and/or proxies/NAMESPACE/POD/config_dump.json"));
    }
    snap.objects.sort();
    Ok(snap)
}

/// Parses a YAML (multi-document) or JSON file into JSON values, refusing binary content.
pub fn parse_documents(bytes: &[u8], origin: &str, json: bool) -> Result<Vec<Value>> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.contains('\0'))
        .ok_or_else(|| Error::new("file is not text (binary content)").at(origin).help("objects/ takes YAML or JSON files only"))?;
    if json {
        return serde_json::from_str::<Value>(text)
            .map(|v| vec![v])
            .map_err(|e| Error::new(format!("invalid JSON: {e}")).at(format!("{origin} line {} column {}", e.line(), e.column())));
    }
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(text).map_err(|e| Error::new(format!("invalid YAML: {}", first_line(&e.to_string()))).at(origin))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
