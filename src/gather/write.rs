//! Writes a live capture as a snapshot directory or `.tar.gz`, in the layout the reader
//! (`files`) defines, so `--snapshot` on it gives the same analysis as the live run.
//!
//! Existing data is never overwritten, and a write that fails half-way removes what it wrote.

use super::files::{CLUSTERS_FILE, CONFIG_DUMP_FILE, OBJECTS_DIR, PROXIES_DIR, SERVER_INFO_FILE, stats_file};
use super::live::Capture;
use crate::error::{Error, Result};
use crate::snapshot::{MANIFEST_FILE, Manifest};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use std::fs;
use std::path::Path;

/// True when `path` names an archive rather than a directory.
fn is_archive(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// Writes `capture` with `manifest` to `path` (a directory, or a `.tar.gz`/`.tgz` file).
pub fn write_snapshot(capture: &Capture, manifest: &Manifest, path: &Path) -> Result<()> {
    let files = layout(capture, manifest)?;
    if is_archive(path) { write_archive(&files, path) } else { write_dir(&files, path) }
}

/// The snapshot's files: relative path (with `/`) and contents.
fn layout(capture: &Capture, manifest: &Manifest) -> Result<Vec<(String, Vec<u8>)>> {
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    let mut files = Vec::new();
    let manifest = serde_json::to_value(manifest).map_err(|e| Error::new(format!("cannot encode {MANIFEST_FILE}: {e}")))?;
    files.push((MANIFEST_FILE.to_string(), pretty(&manifest)));
    for (file, items) in &capture.lists {
        // `kind: List`, as `kubectl get -o json` writes several objects; one item per line.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct List<'a> {
            api_version: &'static str,
            kind: &'static str,
            items: &'a [Box<serde_json::value::RawValue>],
        }
        let list = serde_json::to_vec_pretty(&List { api_version: "v1", kind: "List", items }).unwrap_or_default();
        files.push((format!("{OBJECTS_DIR}/{file}"), list));
    }
    for proxy in &capture.proxies {
        for part in [&proxy.namespace, &proxy.pod] {
            // Names come from the API server; never let one step outside the snapshot.
            if part.is_empty() || part.contains(['/', '\\']) || part.starts_with('.') {
                return Err(Error::new(format!("refusing to write a proxy directory named `{part}`"))
                    .help("pod and namespace names cannot contain `/` or start with `.`"));
            }
        }
        let dir = format!("{PROXIES_DIR}/{}/{}", proxy.namespace, proxy.pod);
        let singles = [(CONFIG_DUMP_FILE, &proxy.config_dump), (CLUSTERS_FILE, &proxy.clusters), (SERVER_INFO_FILE, &proxy.server_info)];
        for (name, blob) in singles {
            if let Some(blob) = blob {
                files.push((format!("{dir}/{name}"), blob.bytes.clone()));
            }
        }
        for (format, blob) in &proxy.stats {
            files.push((format!("{dir}/{}", stats_file(*format)), blob.bytes.clone()));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn write_dir(files: &[(String, Vec<u8>)], root: &Path) -> Result<()> {
    let shown = root.display().to_string();
    let existed = root.exists();
    if existed && fs::read_dir(root).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::new("the capture directory already exists and is not empty")
            .at(&shown)
            .help("choose a new directory (or DIR.tar.gz); mesh-why does not overwrite files"));
    }
    let result = files.iter().try_for_each(|(rel, bytes)| {
        let path = root.join(rel);
        path.parent().map(fs::create_dir_all).transpose()?;
        fs::write(&path, bytes)
    });
    result.map_err(|e| {
        // Leave nothing half-written behind: what this run created goes again.
        if existed {
            for top in [MANIFEST_FILE, OBJECTS_DIR, PROXIES_DIR] {
                let p = root.join(top);
                let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            }
        } else {
            let _ = fs::remove_dir_all(root);
        }
        Error::new(format!("cannot write the snapshot: {e}")).at(&shown).help("check free space and permissions, or write a .tar.gz elsewhere")
    })
}

fn write_archive(files: &[(String, Vec<u8>)], path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::new(format!("cannot create the archive: {e}")).at(&shown).help("choose a new file name; mesh-why does not overwrite files"))?;
    let mtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let result = files
        .iter()
        .try_for_each(|(rel, bytes)| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, rel, bytes.as_slice())
        })
        .and_then(|()| builder.into_inner()?.finish().map(|_| ()));
    result.map_err(|e| {
        let _ = fs::remove_file(path);
        Error::new(format!("cannot write the archive: {e}")).at(&shown).help("check free space and permissions")
    })
}
