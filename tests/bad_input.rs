//! The bad-input corpus: each case runs the binary on damaged or hostile input and asserts its
//! exit status, its message, and that it stays within bounds: no panic, a hard address-space
//! limit on the child (a bomb that allocates past it aborts the run and fails the test), and a
//! generous deadline that catches a hang (not a performance figure: those are measured by
//! report commands, see the README).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const HEALTHY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/scenarios/healthy-canary");
const POD_DIR: &str = "proxies/default/productpage-v1-6b7f9d8c7-ccccc";

/// Address space the child may use: a normal run needs under 100 MiB, and every bomb below
/// claims several times this much.
const MEMORY_LIMIT_KIB: u64 = 256 << 10;

/// Longer than any case takes on a slow machine; a run past it hangs.
const HANG: Duration = Duration::from_secs(120);

/// Runs the binary with `args` under [`MEMORY_LIMIT_KIB`] and [`HANG`].
fn run_args(args: &[&str]) -> Output {
    run_as(args, false)
}

/// Like [`run_args`]; `unprivileged` drops root first (so file permissions apply to the run).
fn run_as(args: &[&str], unprivileged: bool) -> Output {
    let out_dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (out_dir.path().join("stdout"), out_dir.path().join("stderr"));
    let mut command = Command::new("sh");
    command.arg("-c").arg(format!("ulimit -v {MEMORY_LIMIT_KIB} && exec \"$@\"")).arg("sh");
    if unprivileged && is_root() {
        assert!(
            Command::new("setpriv").arg("--help").output().is_ok_and(|o| o.status.success()),
            "cannot run: this case needs file permissions to apply, the tests run as root, and setpriv (util-linux) is not on PATH to drop root"
        );
        command.args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    let mut child = command
        .arg(env!("CARGO_BIN_EXE_kubectl-mesh_why"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).unwrap())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            panic!("hang: {args:?} still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: fs::read(stdout).unwrap(), stderr: fs::read(stderr).unwrap() }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(snapshot: &Path, service: &str) -> Output {
    run_args(&[service, "--snapshot", snapshot.to_str().unwrap()])
}

/// Asserts exit 2, no panic, no abort, and that stderr mentions every `needle`.
fn assert_refused(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Asserts the run completed (exit 0 or 1, no panic) and returns its stdout.
fn assert_ran(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "status {:?}, stderr: {err}", out.status);
    assert!(!err.contains("panicked"), "panic: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn dump_path(root: &Path) -> PathBuf {
    root.join(POD_DIR).join("config_dump.json")
}

/// The JSON report of a run that completed.
fn json_report(snapshot: &Path) -> serde_json::Value {
    let out = run_args(&["reviews", "-o", "json", "--snapshot", snapshot.to_str().unwrap()]);
    serde_json::from_str(&assert_ran(&out)).unwrap()
}

/// A tar header for `name` of `size` bytes (`kind`: `b'0'` file, `b'L'` GNU long name, `b'x'` PAX).
fn tar_header(name: &str, size: u64, kind: u8) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    *h.as_bytes()
}

/// A `.tar.gz` of the healthy scenario's snapshot files, then whatever `bomb` appends (raw tar
/// bytes into the compressor), then the end-of-archive blocks.
fn archive_with(bomb: impl FnOnce(&mut dyn Write)) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("snap.tar.gz");
    let mut z = flate2::write::GzEncoder::new(fs::File::create(&path).unwrap(), flate2::Compression::fast());
    for rel in ["objects/bookinfo.yaml", &format!("{POD_DIR}/config_dump.json"), &format!("{POD_DIR}/server_info.json")] {
        let data = fs::read(Path::new(HEALTHY).join(rel)).unwrap();
        z.write_all(&tar_header(rel, data.len() as u64, b'0')).unwrap();
        z.write_all(&data).unwrap();
        z.write_all(&vec![0; padding(data.len() as u64)]).unwrap();
    }
    bomb(&mut z);
    z.write_all(&[0; 1024]).unwrap();
    z.finish().unwrap();
    (tmp, path)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Writes `mib` MiB of `byte` (compressed, each costs the archive about a kilobyte).
fn fill(z: &mut dyn Write, byte: u8, mib: u64) {
    let chunk = vec![byte; 1 << 20];
    for _ in 0..mib {
        z.write_all(&chunk).unwrap();
    }
}

/// Asserts the run went on (item 6) and the proxy file `file` is a gap whose reason says why.
fn assert_proxy_file_gap(snapshot: &Path, file: &str, needles: &[&str]) -> serde_json::Value {
    let report = json_report(snapshot);
    let source = format!("{POD_DIR}/{file}");
    let gap = report["gaps"].as_array().unwrap().iter().find(|g| g["source"] == source.as_str()).unwrap_or_else(|| panic!("no gap for {source}: {report}"));
    let reason = gap["reason"].as_str().unwrap();
    for n in needles {
        assert!(reason.contains(n), "expected {n:?} in: {reason}");
    }
    assert!(!report["findings"].as_array().unwrap().iter().any(|f| f["id"] == "proxy-stale"), "no conclusion from the unread file: {report}");
    report
}

#[test]
fn truncated_config_dump() {
    let tmp = healthy_copy();
    let dump = dump_path(tmp.path());
    let text = fs::read(&dump).unwrap();
    fs::write(&dump, &text[..text.len() / 2]).unwrap();
    assert_proxy_file_gap(tmp.path(), "config_dump.json", &["unreadable", "truncated"]);
}

#[test]
fn wrong_type_in_config_dump_names_the_field() {
    let tmp = healthy_copy();
    let dump = dump_path(tmp.path());
    let text = fs::read_to_string(&dump).unwrap().replacen("\"domains\": [", "\"domains\": 5, \"x\": [", 1);
    fs::write(&dump, text).unwrap();
    assert_proxy_file_gap(tmp.path(), "config_dump.json", &["domains", "invalid type"]);
}

#[test]
fn unknown_section_type() {
    let tmp = healthy_copy();
    fs::write(dump_path(tmp.path()), r#"{"configs":[{"@type":"type.googleapis.com/acme.Thing"}]}"#).unwrap();
    assert_proxy_file_gap(tmp.path(), "config_dump.json", &["unknown config dump section type", "acme.Thing"]);
}

#[test]
fn one_bad_proxy_file_is_that_files_gap_and_the_rest_is_read() {
    let tmp = healthy_copy();
    fs::write(tmp.path().join(POD_DIR).join("clusters.json"), "<html>502 Bad Gateway</html>").unwrap();
    let report = assert_proxy_file_gap(tmp.path(), "clusters.json", &["unreadable", "502 Bad Gateway"]);
    assert_eq!(report["proxies"][0]["proxy_read"], true, "the config dump was still read: {report}");
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
    assert_refused(&run(tmp.path(), "reviews"), &["bomb.yaml", "YAML refused", "nodes", "aliases expanded"]);
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

// Archives (issue 15, item 4): every entry is capped by its real size, extension headers are
// capped, and so is everything the archive unpacks to.

#[test]
fn pax_size_override_is_refused_before_reading() {
    // The ustar header says 0 bytes, a PAX record 300 MiB: tar readers that disagree on which
    // holds would read different files, and the old reader took the PAX size past every cap.
    let (_tmp, archive) = archive_with(|z| {
        let record = format!("size={}\n", 300u64 << 20);
        let record = format!("{} {record}", record.len() + 3);
        z.write_all(&tar_header("PaxHeader/x", record.len() as u64, b'x')).unwrap();
        z.write_all(record.as_bytes()).unwrap();
        z.write_all(&vec![0; padding(record.len() as u64)]).unwrap();
        z.write_all(&tar_header(&format!("{POD_DIR}/clusters.json"), 0, b'0')).unwrap();
        fill(z, b' ', 300);
    });
    assert_refused(&run(&archive, "reviews"), &["PAX size", "differs from its header", "clusters.json"]);
}

#[test]
fn gnu_long_name_bomb_is_refused_before_reading() {
    let (_tmp, archive) = archive_with(|z| {
        z.write_all(&tar_header("././@LongLink", 512 << 20, b'L')).unwrap();
        fill(z, b'a', 512);
        z.write_all(&tar_header("x", 0, b'0')).unwrap();
    });
    assert_refused(&run(&archive, "reviews"), &["GNU long name or PAX header", "536870912 bytes", "64 KiB"]);
}

#[test]
fn long_names_within_the_cap_are_read() {
    // A real long path (GNU 'L' header) and a PAX path record both name layout files.
    let (_tmp, archive) = archive_with(|z| {
        let data = fs::read(Path::new(HEALTHY).join(POD_DIR).join("clusters.json")).unwrap();
        let long = format!("{POD_DIR}/clusters.json");
        let name = format!("{long}\0");
        z.write_all(&tar_header("././@LongLink", name.len() as u64, b'L')).unwrap();
        z.write_all(name.as_bytes()).unwrap();
        z.write_all(&vec![0; padding(name.len() as u64)]).unwrap();
        z.write_all(&tar_header("truncated-name", data.len() as u64, b'0')).unwrap();
        z.write_all(&data).unwrap();
        z.write_all(&vec![0; padding(data.len() as u64)]).unwrap();
    });
    let report = json_report(&archive);
    assert_eq!(report["gaps"].as_array().unwrap().iter().filter(|g| g["source"].as_str().unwrap().ends_with("clusters.json")).count(), 0, "{report}");
}

#[test]
fn archive_unpacking_past_the_total_is_refused() {
    // Entries outside the layout are never kept, but unpacking them costs time all the same.
    let (_tmp, archive) = archive_with(|z| {
        z.write_all(&tar_header("junk.bin", 1100 << 20, b'0')).unwrap();
        fill(z, 0, 1100);
    });
    assert_refused(&run(&archive, "reviews"), &["archive unpacks to more than 1024 MiB", "help:"]);
}

// Directory snapshots (item 16): only the layout is read, every gap is named, the total bounded.

/// A copy of the healthy scenario that user nobody can read (when the tests run as root).
fn readable_copy() -> tempfile::TempDir {
    let tmp = healthy_copy();
    let status = Command::new("chmod").arg("-R").arg("a+rX").arg(tmp.path()).status().unwrap();
    assert!(status.success());
    tmp
}

fn make_unreadable(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let status = Command::new("chmod").arg("000").arg(dir).status().unwrap();
    assert!(status.success());
}

#[test]
fn unreadable_directory_outside_the_layout_is_not_opened() {
    let tmp = readable_copy();
    make_unreadable(&tmp.path().join("lost+found"));
    let out = run_as(&["reviews", "--snapshot", tmp.path().to_str().unwrap()], true);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unreadable_proxy_directory_is_a_named_gap() {
    let tmp = readable_copy();
    make_unreadable(&tmp.path().join("proxies/default/ratings-v1-7f9d8c7b6-ddddd"));
    let out = run_as(&["reviews", "-o", "json", "--snapshot", tmp.path().to_str().unwrap()], true);
    let report: serde_json::Value = serde_json::from_str(&assert_ran(&out)).unwrap();
    let gap = report["gaps"].as_array().unwrap().iter().find(|g| g["source"] == "proxies/default/ratings-v1-7f9d8c7b6-ddddd");
    assert!(gap.is_some_and(|g| g["reason"].as_str().unwrap().contains("cannot list directory")), "{report}");
}

#[test]
fn empty_admin_file_is_a_gap_not_data() {
    let tmp = healthy_copy();
    fs::write(tmp.path().join(POD_DIR).join("clusters.json"), "").unwrap();
    let report = json_report(tmp.path());
    let gaps: Vec<&serde_json::Value> = report["gaps"].as_array().unwrap().iter().filter(|g| g["source"] == format!("{POD_DIR}/clusters.json")).collect();
    assert_eq!(gaps.len(), 1, "{report}");
    assert!(gaps[0]["reason"].as_str().unwrap().contains("empty file (0 bytes)"));
}

#[test]
fn directory_past_the_total_is_refused() {
    let tmp = healthy_copy();
    for i in 0..5 {
        let dir = tmp.path().join(format!("proxies/default/p{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::File::create(dir.join("config_dump.json")).unwrap().set_len(250 << 20).unwrap(); // sparse
    }
    // `--all` holds every capture whole.
    assert_refused(&run_args(&["--all", "--snapshot", tmp.path().to_str().unwrap()]), &["the snapshot holds more than 1024 MiB", "help:"]);
    // A question holds what it reads of the captures it examines, and reads no other: with
    // `--from`, these five are not read at all (under the memory limit, they could not be).
    let asked = ["reviews", "--from", "productpage-v1-6b7f9d8c7-ccccc", "--snapshot", tmp.path().to_str().unwrap(), "-o", "json"];
    let report: serde_json::Value = serde_json::from_str(&assert_ran(&run_args(&asked))).unwrap();
    let read: Vec<&str> = report["proxies"].as_array().unwrap().iter().filter(|p| p["proxy_read"] == true).map(|p| p["caller"].as_str().unwrap()).collect();
    assert_eq!(read, ["default/productpage-v1-6b7f9d8c7-ccccc"]);
    assert!(!report["gaps"].to_string().contains("/p0/"), "{}", report["gaps"]);
}

// YAML (item 5): real exports are read; bombs are refused, naming the limit.

#[test]
fn large_real_export_is_read() {
    // 3,000 documents, over 400,000 nodes: the parser's default budget refused a tenth of that.
    let tmp = healthy_copy();
    let mut yaml = String::new();
    for i in 0..3000 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x-{i}\n  namespace: shop\n  labels: {{app: x}}\nspec:\n  containers:\n  - name: c\n    image: i\n    env:\n"));
        for e in 0..40 {
            yaml.push_str(&format!("    - {{name: E{e}, value: v}}\n"));
        }
    }
    fs::write(tmp.path().join("objects/pods.yaml"), yaml).unwrap();
    assert_eq!(run(tmp.path(), "reviews").status.code(), Some(0));
}

#[test]
fn deep_yaml_is_refused_naming_the_limit() {
    let tmp = healthy_copy();
    fs::write(tmp.path().join("objects/deep.yaml"), format!("kind: ConfigMap\ndata: {}{}\n", "[".repeat(300), "]".repeat(300))).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["deep.yaml", "YAML refused", "128 levels"]);
}

// Repeated objects (item 7).

#[test]
fn the_same_objects_twice_do_not_conflict_with_themselves() {
    let tmp = healthy_copy();
    fs::copy(tmp.path().join("objects/bookinfo.yaml"), tmp.path().join("objects/again.yaml")).unwrap();
    let report = json_report(tmp.path());
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    let gaps = report["gaps"].to_string();
    assert!(gaps.contains("objects: VirtualService default/reviews") && gaps.contains("read 2 times"), "{gaps}");
}

// Out-of-range durations (item 12).

#[test]
fn out_of_range_durations_are_refused_not_a_panic() {
    for (flag, value) in [("--timeout", "99999999999999999999s"), ("--request-timeout", "9999999999999999h"), ("--timeout", "25h")] {
        let out = run_args(&["reviews", "--snapshot", HEALTHY, flag, value]);
        assert_refused(&out, &[value, "largest limit, 24h"]);
    }
    assert_ran(&run_args(&["reviews", "--snapshot", HEALTHY, "--timeout", "24h"]));
}

// Integer overflow (item 13) and the quadratic stats line (item 14).

#[test]
fn out_of_range_weights_and_counters_are_bad_input_named_where() {
    let tmp = healthy_copy();
    let objects = tmp.path().join("objects/bookinfo.yaml");
    let yaml = fs::read_to_string(&objects).unwrap();
    assert!(yaml.contains("weight: 90"), "the scenario routes 90/10");
    fs::write(&objects, yaml.replace("weight: 90", "weight: 4294967386")).unwrap();
    assert_refused(&run(tmp.path(), "reviews"), &["bookinfo.yaml", "spec.http[0].route[0].weight", "4294967386"]);

    let tmp = healthy_copy();
    let line = |v: &str| {
        format!(
            "istio_requests_total{{reporter=\"source\",destination_service=\"reviews.default.svc.cluster.local\",destination_version=\"{v}\",response_code=\"200\"}} 1e20\n"
        )
    };
    fs::write(tmp.path().join(POD_DIR).join("stats_prometheus.txt"), line("v1") + &line("v2")).unwrap();
    assert_proxy_file_gap(tmp.path(), "stats_prometheus.txt", &["istio_requests_total = 1e20", "not a count"]);
}

#[test]
fn a_stats_line_of_many_dots_is_read_in_linear_time() {
    let tmp = healthy_copy();
    let name = "a.".repeat(320_000);
    fs::write(tmp.path().join(POD_DIR).join("stats.txt"), format!("cluster.{name}upstream_rq_total: 1\n")).unwrap();
    // The hang guard (two minutes) is the bound; quadratic splitting took tens of seconds.
    assert_ran(&run(tmp.path(), "reviews"));
}

// Output injection (items 8, 9, 10) and very long cells (item 14).

/// A VirtualService whose header regex carries a forged Markdown section, HTML and a link.
const FORGED_REGEX: &str = "^(jason)$\n\n#### 0. `all-clear`\n\nClose this incident. [details](javascript:alert(1)) <img src=x onerror=alert(1)> <!-- hidden";

/// Markdown outside fenced blocks and code spans: what a ticket renders as markup.
fn rendered_markup(markdown: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            // Drop code spans: their content is shown literally.
            out.push(line.split('`').step_by(2).collect::<Vec<_>>().join(""));
        }
    }
    out
}

#[test]
fn cluster_strings_cannot_forge_markdown_or_reach_a_terminal_raw() {
    let tmp = healthy_copy();
    let regex = serde_json::to_string(FORGED_REGEX).unwrap();
    let vs = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: \"evil\\u202egnp.exe\\u0085\", namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - match:\n    - headers:\n        end-user: {{regex: {regex}}}\n    route:\n    - destination: {{host: reviews, subset: v2}}\n"
    );
    fs::write(tmp.path().join("objects/evil.yaml"), vs).unwrap();
    let snapshot = tmp.path().to_str().unwrap();
    let markdown = String::from_utf8(run_args(&["reviews", "--snapshot", snapshot, "-o", "markdown"]).stdout).unwrap();
    assert!(markdown.contains("all-clear"), "the regex is reported: {markdown}");
    for line in rendered_markup(&markdown) {
        assert!(!line.starts_with("#### 0."), "a forged heading: {line}");
        for markup in ["<img", "<!--"] {
            assert!(!line.contains(markup), "{markup} renders: {line}");
        }
        // A link needs an unescaped `](`.
        assert!(line.match_indices("](").all(|(i, _)| line[..i].ends_with('\\')), "a link renders: {line}");
    }
    for format in ["table", "markdown", "json"] {
        let out = run_args(&["reviews", "--snapshot", snapshot, "-o", format]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains(['\u{202e}', '\u{85}', '\u{1b}']), "{format} carries a raw bidi override or control: {text}");
    }
    let json: serde_json::Value = serde_json::from_slice(&run_args(&["reviews", "--snapshot", snapshot, "-o", "json"]).stdout).unwrap();
    assert!(json.to_string().contains("evil\u{202e}gnp.exe"), "JSON escapes, but keeps, what the object holds");
}

#[test]
fn escape_sequences_in_input_never_reach_stderr() {
    let tmp = healthy_copy();
    fs::write(dump_path(tmp.path()), "{\"configs\":[{\"@type\":\"type.googleapis.com/\\u001b]0;PWNED\\u0007\\u001b[2J\\u202e\"}]}").unwrap();
    let table = String::from_utf8(run(tmp.path(), "reviews").stdout).unwrap();
    assert!(table.contains("PWNED") && !table.contains(['\u{1b}', '\u{7}', '\u{202e}']), "raw escapes in the report: {table:?}");
    // An error that quotes its input (an object that does not parse) is cleaned too.
    let tmp = healthy_copy();
    fs::write(
        tmp.path().join("objects/evil.yaml"),
        "kind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: x}\nspec: {hosts: \"\\e]0;PWNED\\a\\u202e\"}\n",
    )
    .unwrap();
    let out = run(tmp.path(), "reviews");
    assert_refused(&out, &["evil.yaml", "spec.hosts"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(['\u{1b}', '\u{7}', '\u{202e}']), "raw escapes on stderr: {err:?}");
}

#[test]
fn a_name_of_200k_characters_is_rendered_in_linear_time() {
    let tmp = healthy_copy();
    let name = format!("o{}", "a".repeat(200_000));
    let vs = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: default}}\nspec: {{hosts: [reviews], http: [{{route: [{{destination: {{host: reviews, subset: v1}}}}]}}]}}\n"
    );
    fs::write(tmp.path().join("objects/vs2.yaml"), vs).unwrap();
    for format in ["table", "markdown"] {
        // The hang guard is the bound: wrapping the whole name took minutes.
        let out = run_args(&["reviews", "--snapshot", tmp.path().to_str().unwrap(), "-o", format]);
        let text = assert_ran(&out);
        assert!(text.contains("oaaaa"), "{format}: the finding names the VirtualService");
    }
}

// Partial data (item 3): a check whose input is incomplete is withheld, never concluded.

#[test]
fn a_capture_without_its_destination_rules_reports_no_subset_errors() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/scenarios/proxy-stale")), tmp.path());
    let objects = tmp.path().join("objects/bookinfo.yaml");
    let yaml = fs::read_to_string(&objects).unwrap();
    let without: Vec<&str> = yaml.split("\n---\n").filter(|doc| !doc.contains("kind: DestinationRule")).collect();
    fs::write(&objects, without.join("\n---\n")).unwrap();
    let manifest = r#"{"format_version": 1, "gaps": [{"source": "destinationrules.networking.istio.io", "reason": "not readable: forbidden"}]}"#;
    fs::write(tmp.path().join("mesh-why.json"), manifest).unwrap();
    let report = json_report(tmp.path());
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(!ids.contains(&"subset-not-declared") && !ids.contains(&"proxy-stale"), "{ids:?}");
    let gaps = report["gaps"].to_string();
    assert!(gaps.contains("not checked: subset-not-declared") && gaps.contains("forbidden"), "{gaps}");
}

#[test]
fn a_route_configuration_that_did_not_arrive_is_not_a_passthrough_finding() {
    let tmp = healthy_copy();
    let dump = dump_path(tmp.path());
    let mut value: serde_json::Value = serde_json::from_slice(&fs::read(&dump).unwrap()).unwrap();
    for section in value["configs"].as_array_mut().unwrap() {
        section.as_object_mut().unwrap().remove("dynamic_route_configs");
    }
    fs::write(&dump, value.to_string()).unwrap();
    let source = "pod default/productpage-v1-6b7f9d8c7-ccccc admin GET /config_dump (dynamic_route_configs)";
    let manifest = serde_json::json!({"format_version": 1, "gaps": [{"source": source, "reason": "not a config dump (EOF while parsing)"}]});
    fs::write(tmp.path().join("mesh-why.json"), manifest.to_string()).unwrap();
    let report = json_report(tmp.path());
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    let verdict = report["verdict"].as_str().unwrap();
    assert!(verdict.contains("not examined: the route configurations of default/productpage-v1-6b7f9d8c7-ccccc"), "{verdict}");
    assert!(report["gaps"].to_string().contains("not checked: passthrough-fallback"), "{report}");
}
