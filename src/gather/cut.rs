//! A snapshot's proxy captures cut down to what one question reads of them.
//!
//! On a big mesh a caller's config dump holds every service's clusters, and its `/clusters`
//! and stats every cluster's hosts and counters: a hundred MB and more per proxy, where a
//! question about one service reads its listeners and routes and a handful of clusters. So a
//! snapshot read for a question reads each proxy file after the objects (one per core at a
//! time, a piece at a time), and keeps only what the analysis will read of it: what [`Wanted`]
//! selects for the clusters the model expects that caller to hold, as the analysis asks. The
//! proxies are then held at the size of the question, not of the mesh, however many were
//! captured, and no file is held whole while it is read; a capture the question does not read
//! (a backend's, another caller's than `--from`'s) is not read.
//!
//! A cut keeps its file's own form, and the analysis reads it as it would the whole file, with
//! the same result. A file that cannot be cut (not text, not valid, an old form) is kept whole,
//! and the analysis says what is wrong with it as before.

use crate::actual::Wanted;
use crate::envoy::clusters;
use crate::envoy::config_dump::ConfigDump;
use crate::envoy::stats::Stats;
use crate::gather::files::{CLUSTERS_FILE, CONFIG_DUMP_FILE, stats_format};
use crate::intent::target::Target;
use crate::model::Model;
use crate::question::{self, Question};
use crate::snapshot::{ProxyCapture, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// How much of each proxy's capture one question reads.
pub struct Plan {
    /// The asked service; `None` when it cannot be resolved (the analysis then stops before
    /// any proxy is read, with the error that says why), and every file is kept whole.
    target: Option<Target>,
    /// Per captured proxy `(namespace, pod)`: the clusters of other hosts its reading selects,
    /// or `None` for a capture read whole (a ztunnel's). Captures not listed are not read.
    readings: BTreeMap<(String, String), Option<BTreeSet<String>>>,
}

impl Plan {
    /// What the analysis of `question` reads of `snapshot`'s captures: it examines the same
    /// callers ([`question::callers`]), and selects for each the clusters the intent expects.
    pub fn for_question(snapshot: &Snapshot, question: &Question) -> Plan {
        let objects = &snapshot.objects;
        let whole = Plan { target: None, readings: BTreeMap::new() };
        // Without a capture there is nothing to cut, and the model is not built for nothing.
        if snapshot.proxies.is_empty() {
            return whole;
        }
        let Ok(target) = Target::resolve(objects, &question.service, &question.namespace, question.port) else { return whole };
        let model = Model::build(objects);
        let Ok(examined) = question::callers(snapshot, &model, &target, question) else { return whole };
        let mut readings: BTreeMap<(String, String), Option<BTreeSet<String>>> = BTreeMap::new();
        for examined in examined {
            let Some(capture) = examined.capture else { continue };
            let names = crate::intent::derive(&model, &examined.caller, &target).view.clusters.into_keys();
            readings.entry(key(capture)).or_insert_with(|| Some(BTreeSet::new())).get_or_insert_default().extend(names);
        }
        let ztunnel = |c: &&ProxyCapture| crate::actual::ztunnel::is_ztunnel(c, objects.pod(&c.namespace, &c.pod).map(|p| &p.meta));
        for capture in snapshot.proxies.iter().filter(ztunnel) {
            readings.insert(key(capture), None);
        }
        Plan { target: Some(target), readings }
    }

    /// Whether any file of the proxy `namespace/pod` is read.
    pub fn reads(&self, namespace: &str, pod: &str) -> bool {
        self.target.is_none() || self.readings.contains_key(&(namespace.to_string(), pod.to_string()))
    }

    /// The file `file` of the proxy `namespace/pod`, which the question reads, read from
    /// `input` and cut down as it is read, so that it is never held whole; `None` when it is
    /// not cut (a form kept whole, or one that cannot be cut), and is to be read whole.
    pub fn cut_from(&self, namespace: &str, pod: &str, file: &str, input: impl Read, origin: &str) -> Option<String> {
        let target = self.target.as_ref()?;
        let extra = self.readings.get(&(namespace.to_string(), pod.to_string()))?.as_ref()?;
        let wanted = Wanted::new(target, extra);
        let want = |name: &str| wanted.cluster(name);
        match (file, stats_format(file)) {
            (_, Some(format)) => Stats::cut_from(format, input, origin, &want),
            (CONFIG_DUMP_FILE, _) => wanted.with_selection(|selection| ConfigDump::cut_from(input, origin, selection)),
            (CLUSTERS_FILE, _) => clusters::cut_from(input, origin, &want),
            _ => None,
        }
    }
}

fn key(capture: &ProxyCapture) -> (String, String) {
    (capture.namespace.clone(), capture.pod.clone())
}

#[cfg(test)]
mod tests {
    use crate::gather::files::{read_snapshot, read_snapshot_for};
    use crate::question::Question;
    use crate::render::{Format, render};
    use std::path::Path;

    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() { copy(&entry.path(), &target) } else { std::fs::copy(entry.path(), &target).map(drop).unwrap() }
        }
    }

    /// `dir` packed as a `.tar.gz` in a new temporary directory.
    fn pack(dir: &Path) -> (tempfile::TempDir, std::path::PathBuf) {
        let archive = tempfile::tempdir().unwrap();
        let packed = archive.path().join("snapshot.tar.gz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(std::fs::File::create(&packed).unwrap(), flate2::Compression::fast()));
        tar.append_dir_all(".", dir).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        (archive, packed)
    }

    #[test]
    fn a_file_that_cannot_be_cut_is_read_whole_from_a_directory_or_an_archive() {
        let question = Question { service: "reviews".into(), namespace: "default".into(), port: None, from: None, from_namespace: "default".into() };
        let dir = tempfile::tempdir().unwrap();
        copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios/healthy-canary"), dir.path());
        let caller = std::fs::read_dir(dir.path().join("proxies/default"))
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("productpage"))
            .unwrap();
        std::fs::write(caller.path().join("clusters.json"), "<html>502 Bad Gateway</html>\n").unwrap();
        let (_archive, packed) = pack(dir.path());
        let report = |source: &Path| {
            let snapshot = read_snapshot_for(source, &question).unwrap();
            let held = snapshot.proxies.iter().find(|p| p.pod.starts_with("productpage")).and_then(|p| p.clusters.clone()).unwrap();
            assert_eq!(held.bytes, b"<html>502 Bad Gateway</html>\n", "{}", source.display());
            render(&crate::diagnose::analyze(&snapshot, &question).unwrap(), Format::Json, false)
        };
        let (from_dir, from_archive) = (report(dir.path()), report(&packed));
        assert!(from_dir.contains("not /clusters output"), "{from_dir}");
        // The same, but for where the file is.
        assert_eq!(from_archive.replace(&packed.display().to_string(), &dir.path().display().to_string()), from_dir);
    }

    #[test]
    fn a_question_holds_what_it_reads_of_its_proxies_and_reports_as_on_them_whole_from_a_directory_or_an_archive() {
        let question = Question { service: "reviews".into(), namespace: "default".into(), port: None, from: None, from_namespace: "default".into() };
        for scenario in ["healthy-canary", "proxy-stale", "endpoints-unhealthy", "split-skew"] {
            let dir = tempfile::tempdir().unwrap();
            copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios").join(scenario), dir.path());
            // A backend's capture: the question does not read it, so not even a broken one matters.
            let backend = dir.path().join("proxies/default/reviews-v1-7d8f9c6b5-aaaaa");
            std::fs::create_dir_all(&backend).unwrap();
            std::fs::write(backend.join("config_dump.json"), "{ broken").unwrap();
            // The same snapshot as an archive, whose entries are cut as they are unpacked.
            let (_archive, packed) = pack(dir.path());
            let whole = read_snapshot(dir.path()).unwrap();
            for source in [dir.path(), packed.as_path()] {
                let cut = read_snapshot_for(source, &question).unwrap();
                let caller = |s: &'_ crate::snapshot::Snapshot| s.proxies.iter().find(|p| p.pod.starts_with("productpage")).unwrap().clone();
                let (all, held) = (caller(&whole), caller(&cut));
                let size = |c: &crate::snapshot::ProxyCapture| {
                    c.config_dump.iter().chain(&c.clusters).chain(c.stats.iter().map(|(_, b)| b)).map(|b| b.bytes.len()).sum::<usize>()
                };
                assert!(size(&held) < size(&all), "{scenario} {}: {} of {} bytes held", source.display(), size(&held), size(&all));
                let unread = cut.proxies.iter().find(|p| p.pod.starts_with("reviews")).unwrap();
                assert!(unread.config_dump.is_none(), "{scenario}");
                let report = |s| render(&crate::diagnose::analyze(s, &question).unwrap(), Format::Json, false);
                assert_eq!(report(&cut), report(&whole), "{scenario} {}", source.display());
            }
        }
    }
}
