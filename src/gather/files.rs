//! Reads a snapshot from a directory or a `.tar.gz` of one.
//!
//! Layout: `objects/**/*.{yaml,yml,json}`, `proxies/NAMESPACE/POD/{config_dump.json,
//! clusters.json, stats.txt|stats.json|stats_prometheus.txt, server_info.json}` and an optional
//! `mesh-why.json`. Every file is size-checked before it is read, and archives are bounded in
//! total, so a huge file or a decompression bomb gets a clear error instead of exhausting memory.

use super::cut::Plan;
use super::focus::Focus;
use crate::error::{Error, Result};
use crate::question::Question;
use crate::snapshot::{Blob, Document, Gap, Keep, MANIFEST_FILE, Manifest, Objects, Origin, ProxyCapture, Snapshot, StatsFormat};
use flate2::read::GzDecoder;
use serde_json::Value;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

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

/// The encoding of the stats capture named `file`, if it is one.
pub fn stats_format(file: &str) -> Option<StatsFormat> {
    [StatsFormat::Text, StatsFormat::Json, StatsFormat::Prometheus].into_iter().find(|f| stats_file(*f) == file)
}

/// Largest single file accepted; real config dumps of big meshes stay well below this.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest total a snapshot may hold besides its objects: the proxies' files (held whole until
/// the question is known), or everything else an archive unpacks to (headers and entries that
/// are not read included).
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// Largest total of object files: each is decoded and dropped before the next is read, so
/// they bound the time a reading takes rather than the memory it holds. A 20,000-service
/// mesh's export is under 2 GiB.
pub const MAX_OBJECT_BYTES: u64 = 8 << 30;
/// What each file costs against [`MAX_SNAPSHOT_BYTES`] at least (a tar header's size), so a
/// snapshot of millions of tiny files is bounded too.
const FILE_OVERHEAD: u64 = 512;
/// Largest GNU long-name or PAX extension header of an archive entry: a path is a few hundred
/// bytes, and these headers are held in memory whole.
const MAX_EXTENSION_BYTES: u64 = 64 << 10;
/// Most entries one directory of a snapshot may list.
const MAX_DIR_ENTRIES: usize = 100_000;

/// Reads the snapshot at `path` (directory, `.tar.gz` or `.tgz`).
pub fn read_snapshot(path: &Path) -> Result<Snapshot> {
    read(path, None, false).map(|(snapshot, _)| snapshot)
}

/// Reads the snapshot at `path` for `question`: Pods and Deployments are decoded only where the
/// question looks ([`Focus`]), unless the objects read show it may look further (then they are
/// read whole); proxy files are read after the objects, one per core at a time, and only what
/// the question reads of them is kept ([`Plan`]).
pub fn read_snapshot_for(path: &Path, question: &Question) -> Result<Snapshot> {
    let focus = Focus::of(question);
    let (mut snapshot, mut unread) = read(path, Some(focus.clone()), true)?;
    if !focus.stands(&snapshot, question) {
        drop(snapshot);
        (snapshot, unread) = read(path, None, true)?;
    }
    let plan = Plan::for_question(&snapshot, question);
    read_deferred(&mut snapshot, unread, &plan)?;
    Ok(snapshot)
}

/// Reads the proxy files `unread` left for later that `plan` reads, each cut down as it is read
/// (or, when it cannot be, read again and kept whole), and puts them in `snapshot`'s captures: a directory's on every core, an archive's in one more pass over it. What is kept
/// is charged as a whole file would be, so a file that cannot be cut (and is kept whole) counts.
fn read_deferred(snapshot: &mut Snapshot, unread: Unread, plan: &Plan) -> Result<()> {
    let read: Vec<(&Deferred, [&str; 3])> =
        unread.files.iter().filter_map(|d| Some((d, proxy_file(&d.rel)?))).filter(|(_, [ns, pod, _])| plan.reads(ns, pod)).collect();
    // Per file: the blob kept, if any, or the gap of a file that could not be read.
    let cut = |(deferred, [ns, pod, file]): &(&Deferred, [&str; 3])| {
        let origin = deferred.origin.clone();
        if let Some(text) = fs::File::open(&deferred.path).ok().and_then(|f| plan.cut_from(ns, pod, file, f.take(deferred.len), &origin)) {
            return Ok(Some(Blob { origin, bytes: text.into_bytes() }));
        }
        // The same cut of the same bytes in memory would fail the same way: kept whole.
        let bytes = read_capped(fs::File::open(&deferred.path), deferred.len).map_err(|e| read_gap(&e, deferred.rel.clone()))?;
        Ok(Some(Blob { origin, bytes }))
    };
    let kept: Vec<std::result::Result<Option<Blob>, Gap>> = match &unread.archive {
        Some((archive, budget)) => cut_archived(archive, *budget, &read, plan)?,
        // Big files are cut on every core; a small capture is not worth a thread.
        None if read.iter().map(|(d, _)| d.len).sum::<u64>() > PARALLEL_CUT_BYTES => crate::parallel::in_parallel(&read, cut),
        None => read.iter().map(cut).collect(),
    };
    let mut held = unread.charged;
    for ((_, [ns, pod, file]), kept) in read.iter().zip(kept) {
        match kept {
            Ok(Some(blob)) => {
                held = held.saturating_add((blob.bytes.len() as u64).max(FILE_OVERHEAD));
                if held > MAX_SNAPSHOT_BYTES {
                    return Err(too_large(&blob.origin));
                }
                if let Some(capture) = snapshot.proxies.iter_mut().find(|c| c.namespace == *ns && c.pod == *pod) {
                    attach(capture, file, blob, &mut snapshot.gaps);
                }
            }
            Ok(None) => {}
            Err(gap) => snapshot.gaps.push(gap),
        }
    }
    Ok(())
}

/// The entries `read` of the archive at `path` (unpacking at most `budget`), unpacked again
/// now that the question is known and each cut down as it is unpacked; one that cannot be cut
/// so is unpacked once more and kept whole. An entry no longer there is a gap.
fn cut_archived(path: &Path, budget: u64, read: &[(&Deferred, [&str; 3])], plan: &Plan) -> Result<Vec<std::result::Result<Option<Blob>, Gap>>> {
    let at: HashMap<&str, usize> = read.iter().enumerate().map(|(i, (d, _))| (d.rel.as_str(), i)).collect();
    let mut kept: Vec<Option<Blob>> = read.iter().map(|_| None).collect();
    for whole in [false, true] {
        if kept.iter().all(Option::is_some) {
            break;
        }
        walk_archive(path, Rc::new(Cell::new(budget)), &mut |entry, rel, len, _| {
            let Some(&i) = at.get(rel.as_str()).filter(|i| kept[**i].is_none()) else { return Ok(()) };
            let (deferred, [ns, pod, file]) = &read[i];
            let origin = deferred.origin.clone();
            kept[i] = if whole {
                Some(Blob { origin, bytes: read_capped(Ok(entry), len)? })
            } else {
                plan.cut_from(ns, pod, file, entry.take(len), &origin).map(|text| Blob { origin, bytes: text.into_bytes() })
            };
            Ok(())
        })?;
    }
    let gap = |d: &Deferred| Gap {
        source: d.rel.clone(),
        reason: "not in the archive when it was read again (was it changed?); the checks that need it were skipped".into(),
    };
    Ok(kept.into_iter().zip(read).map(|(kept, (d, _))| kept.map(Some).ok_or_else(|| gap(d))).collect())
}

/// Proxy files adding up to more than this are read and cut on every core.
const PARALLEL_CUT_BYTES: u64 = 16 << 20;

/// A proxy file of a snapshot (a directory's file, or an archive's entry), admitted but left
/// unread until the question says what it needs of it: its snapshot name, path (the archive's,
/// for an entry), size and the origin its blob will name.
struct Deferred {
    rel: String,
    path: PathBuf,
    len: u64,
    origin: String,
}

/// `proxies/NAMESPACE/POD/FILE`, split.
fn proxy_file(rel: &str) -> Option<[&str; 3]> {
    let mut parts = under(rel, PROXIES_DIR)?.split('/');
    let found = [parts.next()?, parts.next()?, parts.next()?];
    parts.next().is_none().then_some(found)
}

/// Reads the snapshot at `path`; with `defer`, its proxy files are admitted but not read, and
/// returned to be read once the question's needs are known.
fn read(path: &Path, focus: Option<Focus>, defer: bool) -> Result<(Snapshot, Unread)> {
    let meta = fs::metadata(path).map_err(|e| {
        Error::new(format!("cannot read snapshot: {e}")).at(path.display()).help("pass a directory written by `kubectl mesh-why capture`, or a .tar.gz of one")
    })?;
    let mut files = Collected::new(path.display().to_string(), focus);
    files.deferred = defer.then(Vec::new);
    if meta.is_dir() {
        read_directory(path, &mut files)?;
    } else {
        read_archive(path, &mut files)?;
    }
    // An archive is unpacked again for its deferred entries, within what this pass could unpack.
    let archive = (!meta.is_dir()).then(|| (path.to_path_buf(), MAX_SNAPSHOT_BYTES.saturating_add(files.objects)));
    let mut snapshot = files.assembly.finish()?;
    snapshot.gaps.extend(files.gaps);
    Ok((snapshot, Unread { files: files.deferred.unwrap_or_default(), charged: files.total, archive }))
}

/// The proxy files left unread by a reading for a question, and what the files read were
/// charged against [`MAX_SNAPSHOT_BYTES`].
struct Unread {
    files: Vec<Deferred>,
    charged: u64,
    /// The archive the files are entries of, and what it may unpack; `None` for a directory.
    archive: Option<(PathBuf, u64)>,
}

/// What a reader collected: the snapshot so far, what it could not read, and the bytes spent.
struct Collected {
    assembly: Assembly,
    gaps: Vec<Gap>,
    /// Bytes charged against [`MAX_SNAPSHOT_BYTES`].
    total: u64,
    /// Bytes of object files, charged against [`MAX_OBJECT_BYTES`].
    objects: u64,
    /// What an archive may still unpack: object entries are moved from this budget to
    /// `objects` before they are read.
    unpack_budget: Rc<Cell<u64>>,
    /// The proxy files left unread for now, when reading for a question.
    deferred: Option<Vec<Deferred>>,
}

impl Collected {
    fn new(root: String, focus: Option<Focus>) -> Collected {
        let assembly = Assembly { root, focus, snap: Snapshot::default(), proxies: BTreeMap::new() };
        Collected { assembly, gaps: Vec::new(), total: 0, objects: 0, unpack_budget: Rc::new(Cell::new(MAX_SNAPSHOT_BYTES)), deferred: None }
    }

    /// Whether the file `rel` of `len` bytes is left unread until the question says what it
    /// needs of it: a proxy capture's file, in a directory read for a question.
    fn defers(&self, rel: &str, len: u64) -> bool {
        self.deferred.is_some() && len > 0 && proxy_file(rel).is_some_and(|[_, _, file]| is_capture_file(file))
    }

    /// Leaves the file `rel` (at `path`, or an entry of the archive there) of `len` bytes unread
    /// for now, when it [`defers`](Collected::defers) it; whether it did.
    fn defer(&mut self, rel: &str, path: &Path, len: u64) -> bool {
        let (true, Some([ns, pod, _]), Some(deferred)) = (self.defers(rel, len), proxy_file(rel), self.deferred.as_mut()) else { return false };
        capture(&mut self.assembly.proxies, ns, pod);
        let origin = format!("{}/{rel}", self.assembly.root);
        deferred.push(Deferred { rel: rel.to_string(), path: path.to_path_buf(), len, origin });
        true
    }

    /// Charges `len` bytes of the file `rel` against the snapshot's totals, before they are read.
    fn charge(&mut self, rel: &str, len: u64, shown: &str) -> Result<()> {
        if under(rel, OBJECTS_DIR).is_some() {
            self.objects = self.objects.saturating_add(len.max(FILE_OVERHEAD));
            if self.objects > MAX_OBJECT_BYTES {
                return Err(Error::new(format!("the snapshot's objects add up to more than {} MiB", MAX_OBJECT_BYTES >> 20))
                    .at(shown)
                    .help("capture the namespaces the question needs (`kubectl mesh-why capture SERVICE -n NAMESPACE`)"));
            }
            return Ok(());
        }
        self.total = self.total.saturating_add(len.max(FILE_OVERHEAD));
        if self.total > MAX_SNAPSHOT_BYTES {
            return Err(too_large(shown));
        }
        Ok(())
    }
}

fn too_large(shown: &str) -> Error {
    Error::new(format!("the snapshot holds more than {} MiB besides its objects", MAX_SNAPSHOT_BYTES >> 20))
        .at(shown)
        .help("capture one question (`kubectl mesh-why capture SERVICE`), or remove the proxies the question does not need")
}

/// Top-level names of the layout (`cluster/` is an `istioctl bug-report`'s).
const LAYOUT_ROOTS: [&str; 4] = [MANIFEST_FILE, OBJECTS_DIR, PROXIES_DIR, "cluster"];

/// Reads the layout from a directory, or from its subdirectories when it holds none (an
/// unpacked `tar czf x.tgz snapshot/`, or `bug-report/`). Nothing outside the layout is opened,
/// so an unreadable `lost+found` next to it does not matter.
fn read_directory(root: &Path, out: &mut Collected) -> Result<()> {
    let has_layout = |dir: &Path| LAYOUT_ROOTS.iter().any(|n| fs::symlink_metadata(dir.join(n)).is_ok());
    if has_layout(root) {
        return read_layout(root, out);
    }
    let listing = list(root).map_err(|e| Error::new(format!("cannot list directory: {e}")).at(root.display()))?;
    for (_, path, ft) in listing {
        if ft.is_dir() && has_layout(&path) {
            read_layout(&path, out)?;
        }
    }
    Ok(())
}

/// A directory's entries (name, path, type), sorted by name; symlinks are listed as such and
/// never followed: a snapshot is self-contained.
fn list(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, fs::FileType)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if out.len() == MAX_DIR_ENTRIES {
            return Err(std::io::Error::other(format!("more than {MAX_DIR_ENTRIES} entries")));
        }
        out.push((entry.file_name().to_string_lossy().into_owned(), entry.path(), entry.file_type()?));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads `base`'s layout: the manifest, `objects/**`, `proxies/NS/POD/*` (and a bug-report's
/// `cluster/` dumps and `stats/prometheus`). Objects that cannot be read stop the run, since
/// rules would conclude from their absence; a proxy that cannot be read is a gap.
fn read_layout(base: &Path, out: &mut Collected) -> Result<()> {
    let file_type = |p: &Path| fs::symlink_metadata(p).ok().map(|m| m.file_type());
    for name in [MANIFEST_FILE, "cluster/k8s-resources", "cluster/crs"] {
        if file_type(&base.join(name)).is_some_and(|t| t.is_file()) {
            read_file(base, name, true, out)?;
        }
    }
    let (objects, proxies) = (base.join(OBJECTS_DIR), base.join(PROXIES_DIR));
    let has_proxies = file_type(&proxies).is_some_and(|t| t.is_dir());
    // Read for a question, the proxy files are only listed; the pods of the proxies captured
    // are then decoded with the objects, as the question examines them.
    if has_proxies && out.deferred.is_some() {
        read_proxies_dir(base, &proxies, out)?;
        let assembly = &mut out.assembly;
        if let Some(focus) = assembly.focus.as_mut() {
            assembly.proxies.keys().for_each(|(namespace, _)| focus.keep(namespace));
        }
    }
    if file_type(&objects).is_some_and(|t| t.is_dir()) {
        read_objects_dir(base, &objects, out)?;
    }
    if has_proxies && out.deferred.is_none() {
        read_proxies_dir(base, &proxies, out)?;
    }
    Ok(())
}

/// Reads `objects/**`: every file is size-checked and charged first, in order, then the files
/// are read and decoded on every core, and their objects joined in file order.
fn read_objects_dir(base: &Path, dir: &Path, out: &mut Collected) -> Result<()> {
    let mut found = Vec::new();
    find_object_files(base, dir, &mut found)?;
    let mut files = Vec::with_capacity(found.len());
    for found in found {
        files.extend(admit(base, &found, true, out)?);
    }
    out.assembly.take_object_files(&files)
}

/// The object files under `dir`, relative to `base`, in name order.
fn find_object_files(base: &Path, dir: &Path, found: &mut Vec<String>) -> Result<()> {
    let listing = list(dir).map_err(|e| {
        Error::new(format!("cannot list directory: {e}")).at(dir.display()).help("objects/ must be readable: the analysis would miss what it holds")
    })?;
    for (_, path, ft) in listing {
        if ft.is_dir() {
            find_object_files(base, &path, found)?;
        } else if ft.is_file() && is_object_file(&path.to_string_lossy()) {
            found.push(relative(base, &path));
        }
    }
    Ok(())
}

/// `proxies/NAMESPACE/POD/FILE`, and `POD/stats/prometheus` from a bug-report.
fn read_proxies_dir(base: &Path, proxies: &Path, out: &mut Collected) -> Result<()> {
    let mut dirs = vec![(proxies.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let listing = match list(&dir) {
            Ok(listing) => listing,
            Err(e) => {
                let source = relative(base, &dir);
                out.gaps.push(Gap { source, reason: format!("cannot list directory: {e}; the proxies below it were not read") });
                continue;
            }
        };
        for (name, path, ft) in listing.into_iter().rev() {
            // NAMESPACE and POD directories, then a pod's files, then a bug-report's stats/.
            match depth {
                0 | 1 if ft.is_dir() => dirs.push((path, depth + 1)),
                2 if ft.is_dir() && name == "stats" => dirs.push((path, depth + 1)),
                2 | 3 if ft.is_file() => read_file(base, &relative(base, &path), false, out)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `path` relative to `base`, with `/`.
fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

/// Reads one file of the layout, mapped to its snapshot name; `required` files that cannot be
/// read stop the run, others become gaps.
fn read_file(base: &Path, found: &str, required: bool, out: &mut Collected) -> Result<()> {
    let Some((rel, path, len)) = admit(base, found, required, out)? else { return Ok(()) };
    if out.defer(&rel, &path, len) {
        return Ok(());
    }
    match read_capped(fs::File::open(&path), len) {
        Ok(bytes) => out.assembly.take(rel, bytes),
        Err(e) => cannot_read(e, rel, &path, required, out),
    }
}

/// The file `found` of the layout, size-checked and charged against the snapshot's totals
/// before it is read (a deferred file, for what is kept of it once read): its snapshot name,
/// path and size; `None` for a file that is not read.
fn admit(base: &Path, found: &str, required: bool, out: &mut Collected) -> Result<Option<(String, PathBuf, u64)>> {
    let Some(rel) = layout_name(found) else { return Ok(None) };
    let path = base.join(found);
    let len = match fs::symlink_metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) => return cannot_read(e, rel, &path, required, out).map(|()| None),
    };
    let shown = path.display().to_string();
    check_size(&rel, len, &shown)?;
    if !out.defers(&rel, len) {
        out.charge(&rel, len, &shown)?;
    }
    Ok(Some((rel, path, len)))
}

/// A file that cannot be read stops the run if it is `required`, and is a gap otherwise.
fn cannot_read(e: std::io::Error, rel: String, path: &Path, required: bool, out: &mut Collected) -> Result<()> {
    if required {
        return Err(unreadable(&e, path));
    }
    out.gaps.push(read_gap(&e, rel));
    Ok(())
}

/// The gap of the file `rel` that could not be read.
fn read_gap(e: &std::io::Error, rel: String) -> Gap {
    Gap { source: rel, reason: format!("cannot read: {e}; the checks that need it were skipped") }
}

fn unreadable(e: &std::io::Error, path: &Path) -> Error {
    Error::new(format!("cannot read file: {e}")).at(path.display())
}

/// Reads at most `len` bytes (a file that grew while being read is cut at the size checked).
fn read_capped(file: std::io::Result<impl Read>, len: u64) -> std::io::Result<Vec<u8>> {
    // Sized once (`len` is within MAX_FILE_BYTES): growing by doubling copied a big dump
    // several times over. Memory that cannot be had is an error to report, not an abort.
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len as usize).map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    file?.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
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
    rel == MANIFEST_FILE || under(rel, OBJECTS_DIR).is_some_and(is_object_file) || under(rel, PROXIES_DIR).is_some()
}

/// Objects come in YAML or JSON files.
fn is_object_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// `rel` without the leading `dir/`, when it lies below `dir`.
fn under<'a>(rel: &'a str, dir: &str) -> Option<&'a str> {
    rel.strip_prefix(dir)?.strip_prefix('/')
}

/// Counts what the decompressor produces against a budget ([`MAX_SNAPSHOT_BYTES`] plus the
/// object entries read), so neither large entries nor entries that are skipped unread can make
/// an archive unpack without bound.
struct Budgeted<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

/// The error [`Budgeted`] reports, recognised under the tar reader's own errors.
#[derive(Debug)]
struct OverBudget;

impl fmt::Display for OverBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "archive unpacks to more than {} MiB besides its objects", MAX_SNAPSHOT_BYTES >> 20)
    }
}

impl std::error::Error for OverBudget {}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left.set(self.left.get().checked_sub(n as u64).ok_or_else(|| std::io::Error::other(OverBudget))?);
        Ok(n)
    }
}

/// The extension headers that describe the next entry of an archive.
#[derive(Default)]
struct Extensions {
    gnu_long_name: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

impl Extensions {
    /// The PAX record `key`, if present.
    fn pax(&self, key: &str) -> std::io::Result<Option<String>> {
        for ext in tar::PaxExtensions::new(self.pax.as_deref().unwrap_or_default()) {
            let ext = ext?;
            if ext.key_bytes() == key.as_bytes() {
                return Ok(Some(String::from_utf8_lossy(ext.value_bytes()).into_owned()));
            }
        }
        Ok(None)
    }
}

/// Reads a `.tar.gz`: each entry the layout names is taken, or, a proxy file read for a
/// question, left for later.
fn read_archive(path: &Path, out: &mut Collected) -> Result<()> {
    let budget = out.unpack_budget.clone();
    walk_archive(path, budget, &mut |entry, rel, len, shown| {
        if out.defer(&rel, path, len) {
            return Ok(());
        }
        if under(&rel, OBJECTS_DIR).is_some() {
            out.charge(&rel, len, &format!("{shown}:{rel}")).map_err(EntryError::Refused)?;
            out.unpack_budget.set(out.unpack_budget.get().saturating_add(len));
        }
        // Grown as it arrives, not sized up front: the size is only what the entry's header claims.
        let mut bytes = Vec::with_capacity(len.min(1 << 20) as usize);
        entry.take(len).read_to_end(&mut bytes)?;
        out.assembly.take(rel, bytes).map_err(EntryError::Refused)
    })
}

/// What is done with an archive entry the layout names: given the entry, its snapshot name,
/// its size and how the archive is shown.
type Visit<'v> = dyn FnMut(&mut dyn Read, String, u64, &str) -> std::result::Result<(), EntryError> + 'v;

/// Walks a `.tar.gz`, unpacking at most what `budget` allows, and visits each entry the layout
/// names. Entries are iterated raw and their GNU long-name and PAX headers read here, each
/// capped at [`MAX_EXTENSION_BYTES`], since the tar crate would hold them whole however large
/// they claim to be.
fn walk_archive(path: &Path, budget: Rc<Cell<u64>>, visit: &mut Visit<'_>) -> Result<()> {
    let shown = path.display().to_string();
    let file = fs::File::open(path).map_err(|e| Error::new(format!("cannot open archive: {e}")).at(&shown))?;
    let bad = |e: std::io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<OverBudget>()) {
            return Error::new(format!("{e} (entries mesh-why does not read included)"))
                .at(&shown)
                .help("an archive this large is not a snapshot of one question: unpack it and check what it holds");
        }
        Error::new(format!("not a readable .tar.gz snapshot: {e}")).at(&shown).help("pass a directory, or an archive made with `tar czf snap.tar.gz -C DIR .`")
    };
    let mut archive = tar::Archive::new(Budgeted { inner: GzDecoder::new(std::io::BufReader::new(file)), left: budget });
    let mut extensions = Extensions::default();
    for entry in archive.entries().map_err(bad)?.raw(true) {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let slot = match kind {
            k if k.is_gnu_longname() => Some(&mut extensions.gnu_long_name),
            k if k.is_pax_local_extensions() => Some(&mut extensions.pax),
            k if k.is_gnu_longlink() || k.is_pax_global_extensions() => None,
            _ => {
                let ext = std::mem::take(&mut extensions);
                let named = entry_name(&entry, &ext, &shown).and_then(|named| match named {
                    Some((rel, len)) => visit(&mut entry, rel, len, &shown),
                    None => Ok(()),
                });
                named.map_err(|e| e.into_error(&bad))?;
                continue;
            }
        };
        if entry.size() > MAX_EXTENSION_BYTES {
            return Err(Error::new(format!(
                "archive entry header {} (a GNU long name or PAX header) is {} bytes, larger than the {} KiB mesh-why reads",
                String::from_utf8_lossy(&entry.path_bytes()),
                entry.size(),
                MAX_EXTENSION_BYTES >> 10
            ))
            .at(&shown));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(bad)?;
        if let Some(slot) = slot {
            *slot = Some(data);
        }
    }
    Ok(())
}

/// Why an entry could not be read: the archive's own failure, or a refusal already worded.
enum EntryError {
    Io(std::io::Error),
    Refused(Error),
}

impl EntryError {
    fn into_error(self, bad: &dyn Fn(std::io::Error) -> Error) -> Error {
        match self {
            EntryError::Io(e) => bad(e),
            EntryError::Refused(e) => e,
        }
    }
}

impl From<std::io::Error> for EntryError {
    fn from(e: std::io::Error) -> Self {
        EntryError::Io(e)
    }
}

/// The snapshot name and size of a (non-extension) entry, size-checked, when the layout names
/// it.
fn entry_name<R: Read>(entry: &tar::Entry<'_, R>, ext: &Extensions, shown: &str) -> std::result::Result<Option<(String, u64)>, EntryError> {
    let refuse = |e: Error| EntryError::Refused(e.at(shown));
    // A PAX size that differs from the header's makes tar readers disagree on where the next
    // entry starts (and on what a file holds): such an archive is refused, not guessed at.
    if let Some(size) = ext.pax("size")?
        && size.trim().parse::<u64>().ok() != Some(entry.size())
    {
        return Err(refuse(Error::new(format!(
            "archive entry {} has a PAX size ({size}) that differs from its header's ({})",
            String::from_utf8_lossy(&entry.path_bytes()),
            entry.size()
        ))));
    }
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let name: Vec<u8> = match (ext.pax("path")?, &ext.gnu_long_name) {
        (Some(path), _) => path.into_bytes(),
        (None, Some(long)) => long.split(|b| *b == 0).next().unwrap_or_default().to_vec(),
        (None, None) => entry.path_bytes().into_owned(),
    };
    let name = String::from_utf8_lossy(&name).into_owned();
    let raw = Path::new(&name);
    if raw.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refuse(Error::new(format!("archive entry {name} points outside the snapshot"))));
    }
    let rel: String = raw
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    let Some(rel) = layout_name(&strip_top_dir(&rel)) else { return Ok(None) };
    let len = entry.size();
    check_size(&rel, len, &format!("{shown}:{rel}")).map_err(EntryError::Refused)?;
    Ok(Some((rel, len)))
}

/// Archives made with `tar czf x.tgz snapshot/` (and bug-report archives, under `bug-report/`)
/// carry one leading directory; drop it.
fn strip_top_dir(rel: &str) -> String {
    match rel.split_once('/') {
        Some((first, rest)) if ![OBJECTS_DIR, PROXIES_DIR, "cluster"].contains(&first) && rel != MANIFEST_FILE => rest.to_string(),
        _ => rel.to_string(),
    }
}

/// The snapshot being built from its files, taken one at a time as they are read: objects and
/// the manifest are parsed at once and their bytes dropped, so a snapshot's objects never sit in
/// memory as text all together; proxy files are kept raw until the question is known.
struct Assembly {
    root: String,
    focus: Option<Focus>,
    snap: Snapshot,
    proxies: BTreeMap<(String, String), ProxyCapture>,
}

impl Assembly {
    /// Takes one file of the layout (`rel`, its snapshot name).
    fn take(&mut self, rel: String, bytes: Vec<u8>) -> Result<()> {
        let origin = format!("{}/{rel}", self.root);
        let (snap, proxies) = (&mut self.snap, &mut self.proxies);
        if rel == MANIFEST_FILE {
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::new(format!("{MANIFEST_FILE} is not valid: {e}")).at(&origin))?;
            snap.gaps.extend(manifest.gaps.iter().cloned());
            snap.manifest = Some(manifest);
        } else if under(&rel, OBJECTS_DIR).is_some() {
            let (objects, gap) = self.decode_object_file(&rel, &bytes)?;
            self.snap.objects.absorb_all(vec![objects]);
            self.snap.gaps.extend(gap);
        } else if let Some([ns, pod, file]) = proxy_file(&rel) {
            let capture = capture(proxies, ns, pod);
            // An empty config dump, /clusters or server_info is no capture: the checks that need
            // it must not run on it. (Empty stats are data: no counter matched the filter.)
            if bytes.is_empty() && [CONFIG_DUMP_FILE, CLUSTERS_FILE, SERVER_INFO_FILE].contains(&file) {
                snap.gaps.push(empty_file(rel.clone()));
                return Ok(());
            }
            attach(capture, file, Blob { origin, bytes }, &mut snap.gaps);
        }
        Ok(())
    }

    /// Reads and decodes the object files `(rel, path, len)` on every core, and takes their
    /// objects in file order. The first file that fails, in that order, is the one reported.
    fn take_object_files(&mut self, files: &[(String, PathBuf, u64)]) -> Result<()> {
        let this = &*self;
        let parts = crate::parallel::in_parallel(files, |(rel, path, len)| {
            let bytes = read_capped(fs::File::open(path), *len).map_err(|e| unreadable(&e, path))?;
            this.decode_object_file(rel, &bytes)
        });
        let (objects, gaps): (Vec<Objects>, Vec<Option<Gap>>) = parts.into_iter().collect::<Result<Vec<_>>>()?.into_iter().unzip();
        self.snap.objects.absorb_all(objects);
        self.snap.gaps.extend(gaps.into_iter().flatten());
        Ok(())
    }

    /// The objects of one object file (`rel`, its snapshot name), or the gap of an empty one.
    fn decode_object_file(&self, rel: &str, bytes: &[u8]) -> Result<(Objects, Option<Gap>)> {
        let mut objects = Objects::default();
        if bytes.is_empty() {
            return Ok((objects, Some(empty_file(rel.to_string()))));
        }
        let origin = format!("{}/{rel}", self.root);
        let focus = self.focus.as_ref().map(|f| move |ns: &str| f.keeps(ns));
        for (i, doc) in parse_documents(bytes, &origin, rel.to_ascii_lowercase().ends_with(".json"))?.into_iter().enumerate() {
            objects.add_kept(doc, &Origin::from(format!("{origin} (document {})", i + 1).as_str()), focus.as_ref().map(|f| f as Keep))?;
        }
        Ok((objects, None))
    }

    /// The snapshot, once every file was taken.
    fn finish(self) -> Result<Snapshot> {
        let Assembly { root, mut snap, proxies, .. } = self;
        snap.proxies = proxies.into_values().collect();
        if snap.objects.is_empty() && snap.proxies.is_empty() {
            return Err(Error::new("the snapshot holds no objects and no proxy captures")
                .at(root)
                .help("expected objects/*.yaml (from `kubectl get -o yaml`) and/or proxies/NAMESPACE/POD/config_dump.json"));
        }
        let repeats = snap.objects.sort();
        snap.gaps.extend(repeats);
        snap.gaps.extend(snap.manifest.as_ref().and_then(kinds_not_collected));
        // Certificates are judged as of the capture, or, for plain files, now (read here, at the edge).
        let captured = snap.manifest.as_ref().and_then(|m| m.captured_at.parse::<k8s_openapi::jiff::Timestamp>().ok());
        snap.objects.as_of = Some(captured.unwrap_or_else(k8s_openapi::jiff::Timestamp::now).as_second());
        Ok(snap)
    }
}

/// The capture of proxy `ns/pod` in `proxies`, begun empty if it is not there yet.
fn capture<'p>(proxies: &'p mut BTreeMap<(String, String), ProxyCapture>, ns: &str, pod: &str) -> &'p mut ProxyCapture {
    proxies.entry((ns.to_string(), pod.to_string())).or_insert_with(|| ProxyCapture { namespace: ns.to_string(), pod: pod.to_string(), ..Default::default() })
}

/// The files of a proxy capture, by their names in the layout.
fn is_capture_file(file: &str) -> bool {
    [CONFIG_DUMP_FILE, CLUSTERS_FILE, SERVER_INFO_FILE].contains(&file) || stats_format(file).is_some()
}

/// Puts `blob`, the proxy file `file`, in `capture`; a file of another name is a gap.
fn attach(capture: &mut ProxyCapture, file: &str, blob: Blob, gaps: &mut Vec<Gap>) {
    match (file, stats_format(file)) {
        (_, Some(format)) => capture.stats.push((format, blob)),
        (CONFIG_DUMP_FILE, _) => capture.config_dump = Some(blob),
        (CLUSTERS_FILE, _) => capture.clusters = Some(blob),
        (SERVER_INFO_FILE, _) => capture.server_info = Some(blob),
        _ => gaps.push(Gap { source: blob.origin, reason: "unknown file in a proxy directory; ignored".into() }),
    }
}

/// A capture made before mesh-why read RequestAuthentications lists every kind it read in
/// `collected` but not them: none in the snapshot then means "not asked", not "none exist".
fn kinds_not_collected(manifest: &Manifest) -> Option<Gap> {
    const SOURCE: &str = "requestauthentications.security.istio.io";
    let listed = |line: &String| line.starts_with(&format!("objects/{SOURCE}"));
    let objects_listed = manifest.collected.iter().any(|l| l.starts_with("objects/"));
    (objects_listed && !manifest.collected.iter().any(listed) && !manifest.gaps.iter().any(|g| g.source == SOURCE))
        .then(|| Gap { source: SOURCE.into(), reason: "not collected: the capture was made by a mesh-why that did not read them".into() })
}

/// The gap of a file that is there but empty.
fn empty_file(source: String) -> Gap {
    Gap { source, reason: "empty file (0 bytes): nothing was read from it; the checks that need it were skipped".into() }
}

/// Parses a YAML (multi-document) or JSON file into documents, refusing binary content. A JSON
/// file is read when it is added: each object straight into its type.
pub fn parse_documents<'t>(bytes: &'t [u8], origin: &str, json: bool) -> Result<Vec<Document<'t>>> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| !t.contains('\0'))
        .ok_or_else(|| Error::new("file is not text (binary content)").at(origin).help("objects/ takes YAML or JSON files only"))?;
    if json {
        // Checked as its header is read, in the one pass that also finds a list's items.
        return Ok(vec![Document::Json(text)]);
    }
    let options = serde_saphyr::options! { budget: Some(yaml_budget(text.len())), with_snippet: false, };
    let docs = serde_saphyr::from_str_multiple_with_options::<Value, Vec<Value>>(text, options).map_err(|e| {
        let mut cause = &e;
        while let serde_saphyr::Error::AliasError { error, .. } | serde_saphyr::Error::WithSnippet { error, .. } = cause {
            cause = error;
        }
        match cause {
            serde_saphyr::Error::Budget { breach, location } => Error::new(format!("YAML refused: {}", budget_breach(breach)))
                .at(format!("{origin} line {} column {}", location.line(), location.column()))
                .help("objects/ takes `kubectl get -o yaml` output: split a file this large by kind or namespace, or export it as JSON"),
            // The parser's own nesting guard can trip before the budget's depth is counted.
            _ if e.to_string().contains("recursion limit exceeded") => Error::new(format!("YAML refused: nested more than {MAX_YAML_DEPTH} levels deep"))
                .at(format!("{origin} ({})", first_line(&e.to_string())))
                .help("Kubernetes objects nest a few dozen levels at most: this file is not an export"),
            _ => Error::new(format!("invalid YAML: {}", first_line(&e.to_string()))).at(origin),
        }
    })?;
    Ok(docs.into_iter().map(Document::Value).collect())
}

/// Deepest nesting accepted in YAML, as serde_json accepts in JSON.
const MAX_YAML_DEPTH: usize = 128;

/// The YAML parser's limits, sized to the file. Kubernetes exports (tens of MB, tens of
/// thousands of documents) use no aliases and take at least a byte per node, so nodes and
/// events are allowed in proportion to the input, and memory grows with the file, which the
/// file and snapshot caps bound; alias expansion, which would not, is held to the defaults.
fn yaml_budget(len: usize) -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 1024 + len / 16;
    budget.max_nodes = 250_000 + len;
    budget.max_events = 1_000_000 + 2 * len;
    budget.max_total_scalar_bytes = (64 << 20) + len;
    budget.max_depth = MAX_YAML_DEPTH;
    budget.enforce_alias_anchor_ratio = false;
    budget
}

/// A budget breach in words, with the limit that was hit.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => format!("nested more than {MAX_YAML_DEPTH} levels deep"),
        B::Aliases { aliases } => format!("{aliases} aliases (`*name`), more than the parser's limit; Kubernetes exports use none"),
        B::Anchors { anchors } => format!("{anchors} anchors (`&name`), more than the parser's limit; Kubernetes exports use none"),
        B::AliasAnchorRatio { aliases, anchors } => {
            format!("{aliases} aliases for {anchors} anchors: expanding them would multiply the document (an alias bomb)")
        }
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } => "its aliases expand to more than the parser's limit (an alias bomb)".into(),
        B::Documents { documents } => format!("more than {} documents for its size ({documents} read)", documents.saturating_sub(1)),
        B::Nodes { nodes } => format!("more than {} nodes (mappings, lists and values, with aliases expanded) for its size", nodes.saturating_sub(1)),
        B::Events { events } => format!("more than {} parser events for its size", events.saturating_sub(1)),
        B::ScalarBytes { total_scalar_bytes } => format!("its values add up to more than {} bytes", total_scalar_bytes.saturating_sub(1)),
        other => format!("{other:?}"),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_proxy_files_are_charged_against_their_own_totals() {
        let mut files = Collected::new("snap".into(), None);
        // A big mesh's objects are read one file at a time, so they do not count against what
        // may be held whole.
        for i in 0..6 {
            files.charge(&format!("objects/pods-{i}.json"), 250 << 20, "snap").unwrap();
        }
        files.charge("proxies/default/web-1/config_dump.json", 250 << 20, "snap").unwrap();
        for i in 0..3 {
            files.charge(&format!("proxies/default/web-{i}/clusters.json"), 250 << 20, "snap").unwrap();
        }
        let err = files.charge("proxies/default/web-9/config_dump.json", 250 << 20, "snap").unwrap_err().to_string();
        assert!(err.contains("more than 1024 MiB besides its objects"), "{err}");
        while files.objects + (250 << 20) <= MAX_OBJECT_BYTES {
            files.charge("objects/more.json", 250 << 20, "snap").unwrap();
        }
        let err = files.charge("objects/more.json", 250 << 20, "snap").unwrap_err().to_string();
        assert!(err.contains("objects add up to more than"), "{err}");
    }

    #[test]
    fn proxy_files_left_for_the_question_are_charged_for_what_is_kept_of_them() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios/healthy-canary");
        let proxy = dir.join("proxies/default/productpage-v1-6b7f9d8c7-ccccc");
        let files: u64 = fs::read_dir(&proxy).unwrap().flatten().map(|f| f.metadata().unwrap().len()).sum();
        let (whole, all) = read(&dir, None, false).unwrap();
        let (later, unread) = read(&dir, None, true).unwrap();
        assert!(all.files.is_empty() && whole.proxies[0].config_dump.is_some());
        assert_eq!(unread.files.len(), 5);
        assert!(later.proxies[0].config_dump.is_none() && later.proxies[0].stats.is_empty());
        assert_eq!(all.charged - unread.charged, files);
    }
}
