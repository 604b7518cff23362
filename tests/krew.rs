//! The krew release path, exercised here: `tools/package.py` packs archives and renders the
//! manifest from `.krew.yaml` as krew-release-bot does; the result is checked by krew-index's
//! rules, and the host archive is installed the way krew installs it (checksum, extraction of
//! `files` into a fresh root, `bin` linked as `kubectl-mesh_why` on PATH) and run through the
//! real kubectl.
//!
//! With `MESH_WHY_KREW_DIST` set (`tools/package.py` sets it to check a release build, and the
//! release workflow to check the real archives), that folder's manifest and archives are checked
//! instead of ones packed from the test build.

mod common;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const PLUGIN: &str = "mesh-why";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `tools/package.py` with `args`.
fn package(args: &[&str]) {
    common::require_python();
    let out = Command::new("python3").arg(root().join("tools/package.py")).args(args).output().unwrap();
    assert!(out.status.success(), "tools/package.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// krew's `os`/`arch` for this machine.
fn host_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        arch => arch,
    };
    (os, arch)
}

/// Extracts `archive` (tar.gz or zip) into `dir`.
fn extract(archive: &Path, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).unwrap();
    let name = archive.to_string_lossy();
    if name.ends_with(".tar.gz") {
        let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
        tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(dir).map_err(|e| format!("{name}: {e}"))
    } else if name.ends_with(".zip") {
        common::require_python();
        let out = Command::new("python3").args(["-m", "zipfile", "-e"]).arg(archive).arg(dir).output().map_err(|e| e.to_string())?;
        out.status.success().then_some(()).ok_or_else(|| format!("{name}: {}", String::from_utf8_lossy(&out.stderr)))
    } else {
        Err(format!("{name}: krew reads .tar.gz and .zip archives"))
    }
}

/// Applies a platform's `files` to the extracted archive in `from`, as krew does: each `from`
/// (a name or glob with `*`) is copied under `to` in the install folder `into`.
fn install_files(platform: &Value, from: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(into).unwrap();
    let Some(files) = platform["files"].as_array() else {
        return copy_tree(from, into);
    };
    for file in files {
        let (pattern, to) = (file["from"].as_str().unwrap_or_default(), file["to"].as_str().unwrap_or("."));
        if pattern.is_empty() || pattern.starts_with('/') || pattern.contains("..") || to.starts_with('/') || to.contains("..") {
            return Err(format!("files entry {file} leaves the archive or the install folder"));
        }
        let regex = regex::Regex::new(&format!("^{}$", regex::escape(pattern).replace("\\*", "[^/]*"))).unwrap();
        let mut matched = false;
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if regex.is_match(&entry.file_name().to_string_lossy()) {
                matched = true;
                std::fs::create_dir_all(into.join(to)).unwrap();
                copy_tree_entry(&entry.path(), &into.join(to).join(entry.file_name()))?;
            }
        }
        if !matched {
            return Err(format!("files: `{pattern}` matches nothing in the archive"));
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, into: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        copy_tree_entry(&entry.path(), &into.join(entry.file_name()))?;
    }
    Ok(())
}

fn copy_tree_entry(from: &Path, to: &Path) -> Result<(), String> {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        copy_tree(from, to)
    } else {
        std::fs::copy(from, to).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// The (os, arch) pairs a platform selector matches, among those krew knows.
fn selected(selector: &Value) -> Result<BTreeSet<(String, String)>, String> {
    let labels = selector["matchLabels"].as_object().ok_or("selector has no matchLabels")?;
    if selector.get("matchExpressions").is_some() {
        return Err("matchExpressions are not checked here: use matchLabels".into());
    }
    let label = regex::Regex::new(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$").unwrap();
    for (key, value) in labels {
        if !label.is_match(value.as_str().unwrap_or_default()) || !["os", "arch"].contains(&key.as_str()) {
            return Err(format!("selector label {key}: {value} is not a valid os/arch label"));
        }
    }
    let all = |key: &str, known: &[&str]| -> Result<Vec<String>, String> {
        match labels.get(key).and_then(Value::as_str) {
            Some(v) if known.contains(&v) => Ok(vec![v.to_string()]),
            Some(v) => Err(format!("selector {key}: `{v}` is not one of {known:?}")),
            None => Ok(known.iter().map(|s| s.to_string()).collect()),
        }
    };
    let (oses, arches) = (all("os", &["linux", "darwin", "windows"])?, all("arch", &["amd64", "arm64", "386", "arm", "ppc64le", "s390x"])?);
    Ok(oses.iter().flat_map(|o| arches.iter().map(move |a| (o.clone(), a.clone()))).collect())
}

/// What krew-index would reject in the manifest at `path`; each platform's archive is read from
/// `dist` (by the `uri`'s file name) and must be there.
fn krew_index_problems(path: &Path, dist: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let manifest: Value = match serde_saphyr::from_str(&text) {
        Ok(m) => m,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(p);
    if manifest["apiVersion"] != "krew.googlecontainertools.github.com/v1alpha2" || manifest["kind"] != "Plugin" {
        problem(format!("apiVersion/kind must be krew.googlecontainertools.github.com/v1alpha2 Plugin, not {} {}", manifest["apiVersion"], manifest["kind"]));
    }
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    if !regex::Regex::new(r"^[a-z0-9]+(-[a-z0-9]+)*$").unwrap().is_match(name) {
        problem(format!("metadata.name `{name}` must be lowercase words joined by dashes"));
    }
    if path.file_name().and_then(|f| f.to_str()) != Some(&format!("{name}.yaml")) {
        problem(format!("the file must be named {name}.yaml, not {}", path.display()));
    }
    let spec = &manifest["spec"];
    let short = spec["shortDescription"].as_str().unwrap_or_default();
    if short.trim().is_empty() || short.contains('\n') || short.chars().count() > 50 {
        problem(format!("shortDescription must be one line of at most 50 characters, not `{short}` ({})", short.chars().count()));
    }
    let description = spec["description"].as_str().unwrap_or_default();
    if description.trim().is_empty() {
        problem("description is empty".into());
    }
    for line in description.lines().filter(|l| l.chars().count() > 80) {
        problem(format!("description must be wrapped at 80 columns: `{line}`"));
    }
    let version = spec["version"].as_str().unwrap_or_default();
    if !regex::Regex::new(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$").unwrap().is_match(version) {
        problem(format!("version `{version}` must be semver with a leading v"));
    }
    if !spec["homepage"].as_str().is_some_and(|h| h.starts_with("https://")) {
        problem("homepage must be an https URL".into());
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    if platforms.is_empty() {
        problem("no platforms".into());
    }
    let mut seen = BTreeSet::new();
    let sha = regex::Regex::new("^[0-9a-f]{64}$").unwrap();
    for (i, platform) in platforms.iter().enumerate() {
        let at = format!("platform {i}");
        match selected(&platform["selector"]) {
            Ok(pairs) => {
                for pair in pairs {
                    if !seen.insert(pair.clone()) {
                        problem(format!("{at}: {}/{} is selected by more than one platform", pair.0, pair.1));
                    }
                }
            }
            Err(e) => problem(format!("{at}: {e}")),
        }
        let bin = platform["bin"].as_str().unwrap_or_default();
        if bin.is_empty() || bin.starts_with('/') || bin.contains("..") {
            problem(format!("{at}: bin `{bin}` must be a relative path inside the install folder"));
        }
        if platform["selector"]["matchLabels"]["os"] == "windows" && !bin.ends_with(".exe") {
            problem(format!("{at}: a windows bin must end in .exe, not `{bin}`"));
        }
        let digest = platform["sha256"].as_str().unwrap_or_default();
        if !sha.is_match(digest) {
            problem(format!("{at}: sha256 `{digest}` must be 64 lowercase hex digits"));
        }
        let uri = platform["uri"].as_str().unwrap_or_default();
        if !uri.starts_with("https://") || !uri.contains(&format!("/{version}/")) {
            problem(format!("{at}: uri `{uri}` must be an https URL of the {version} release"));
        }
        let archive = dist.join(uri.rsplit('/').next().unwrap_or_default());
        if !archive.is_file() {
            problem(format!("{at}: the archive {} is not there", archive.display()));
            continue;
        }
        if sha256(&archive) != digest {
            problem(format!("{at}: sha256 {digest} is not the archive's ({})", sha256(&archive)));
        }
        let scratch = tempfile::tempdir().unwrap();
        let (unpacked, installed) = (scratch.path().join("archive"), scratch.path().join("install"));
        if let Err(e) = extract(&archive, &unpacked).and_then(|()| install_files(platform, &unpacked, &installed)) {
            problem(format!("{at}: {e}"));
            continue;
        }
        if !installed.join(bin).is_file() {
            problem(format!("{at}: bin `{bin}` is not in the installed files"));
        }
        let licence = std::fs::read_dir(&installed).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().to_ascii_uppercase().starts_with("LICEN"));
        if !licence {
            problem(format!("{at}: no licence file is extracted by `files`"));
        }
    }
    problems
}

/// Packs a stand-in binary for every platform of `.krew.yaml` and renders the manifest for all
/// of them; returns the dist folder.
fn every_platform_packed() -> tempfile::TempDir {
    let dist = tempfile::tempdir().unwrap();
    let stand_in = dist.path().join("stand-in");
    std::fs::write(&stand_in, "not a real binary: the archive layout is what is checked\n").unwrap();
    let mut args = vec!["all", "--no-check", "--require-all", "--binary", stand_in.to_str().unwrap(), "--dist", dist.path().to_str().unwrap()];
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-apple-darwin", "aarch64-apple-darwin", "x86_64-pc-windows-msvc"] {
        args.extend(["--target", target]);
    }
    package(&args);
    dist
}

#[test]
fn every_platform_of_the_template_renders_to_a_manifest_krew_index_accepts() {
    let dist = every_platform_packed();
    let manifest = dist.path().join(format!("{PLUGIN}.yaml"));
    assert_eq!(krew_index_problems(&manifest, dist.path()), Vec::<String>::new());
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(!text.contains("{{"), "a template action is left: {text}");
    let rendered: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(rendered["spec"]["version"], format!("v{}", env!("CARGO_PKG_VERSION")));
    // The findings' links point at the homepage the manifest gives.
    assert_eq!(rendered["spec"]["homepage"], env!("CARGO_PKG_REPOSITORY"));
    assert_eq!(rendered["spec"]["platforms"].as_array().map(Vec::len), Some(5));
    let checksums = std::fs::read_to_string(dist.path().join("checksums.txt")).unwrap();
    for platform in rendered["spec"]["platforms"].as_array().unwrap() {
        let file = platform["uri"].as_str().unwrap().rsplit('/').next().unwrap();
        assert!(checksums.contains(&format!("{}  {file}\n", platform["sha256"].as_str().unwrap())), "{checksums}");
    }
}

#[test]
fn the_checks_reject_what_krew_index_rejects() {
    let dist = every_platform_packed();
    let manifest = dist.path().join(format!("{PLUGIN}.yaml"));
    let good = std::fs::read_to_string(&manifest).unwrap();
    let first_sha = good.split("sha256: \"").nth(1).unwrap()[..64].to_string();
    let breaks: Vec<(&str, String)> = vec![
        ("a long shortDescription", good.replacen("shortDescription: ", "shortDescription: Far too long a line for the plugin list of krew ", 1)),
        ("a version without v", good.replacen("version: v", "version: ", 1)),
        ("an unwrapped description", good.replacen("    for Istio meshes.", &format!("    for Istio meshes.{}", " wide".repeat(20)), 1)),
        ("an upper-case sha256", good.replacen(&first_sha, &first_sha.to_uppercase(), 1)),
        ("a wrong sha256", good.replacen(&first_sha, &"0".repeat(64), 1)),
        ("a duplicate selector", good.replacen("arch: arm64", "arch: amd64", 1)),
        ("no licence extracted", good.replace("    - from: LICENSE\n      to: .\n", "")),
        ("a bin not in the archive", good.replacen("bin: kubectl-mesh_why\n", "bin: kubectl-mesh-why\n", 1)),
        ("a windows bin without .exe", good.replace("bin: kubectl-mesh_why.exe", "bin: kubectl-mesh_why")),
        ("another kind", good.replacen("kind: Plugin", "kind: Plugins", 1)),
    ];
    for (what, text) in breaks {
        assert_ne!(text, good, "{what}: the change did not apply");
        std::fs::write(&manifest, text).unwrap();
        assert!(!krew_index_problems(&manifest, dist.path()).is_empty(), "{what} passes the checks");
    }
    std::fs::write(dist.path().join("plugin.yaml"), &good).unwrap();
    assert!(krew_index_problems(&dist.path().join("plugin.yaml"), dist.path()).iter().any(|p| p.contains("must be named mesh-why.yaml")));
}

/// The host's archive and its manifest: from `MESH_WHY_KREW_DIST`, or packed from the test
/// build (stripped of debug info, as a release build is) by `tools/package.py`.
fn host_dist() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(dist) = std::env::var_os("MESH_WHY_KREW_DIST") {
        return (PathBuf::from(dist), None);
    }
    let dist = tempfile::tempdir().unwrap();
    let binary = dist.path().join("kubectl-mesh_why");
    let stripped = Command::new("strip").arg("-o").arg(&binary).arg(env!("CARGO_BIN_EXE_kubectl-mesh_why")).status();
    if !stripped.is_ok_and(|s| s.success()) {
        std::fs::copy(env!("CARGO_BIN_EXE_kubectl-mesh_why"), &binary).unwrap();
    }
    package(&["all", "--no-check", "--binary", binary.to_str().unwrap(), "--dist", dist.path().to_str().unwrap()]);
    std::fs::remove_file(&binary).unwrap();
    (dist.path().to_path_buf(), Some(dist))
}

#[test]
fn the_host_archive_installs_the_way_krew_does_and_runs_under_kubectl() {
    common::require_kubectl();
    let (dist, _keep) = host_dist();
    let manifest_path = dist.join(format!("{PLUGIN}.yaml"));
    assert_eq!(krew_index_problems(&manifest_path, &dist), Vec::<String>::new());
    let manifest: Value = serde_saphyr::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let (os, arch) = host_platform();
    let platform = manifest["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| selected(&p["selector"]).unwrap().contains(&(os.to_string(), arch.to_string())))
        .unwrap_or_else(|| panic!("no platform of the manifest selects {os}/{arch}"))
        .clone();
    // krew: download (here: the local archive), verify the sha256, extract into a fresh
    // staging folder, move `files` into store/NAME/VERSION, link bin/kubectl-NAME to `bin`.
    let krew_root = tempfile::tempdir().unwrap();
    let archive = dist.join(platform["uri"].as_str().unwrap().rsplit('/').next().unwrap());
    assert_eq!(sha256(&archive), platform["sha256"].as_str().unwrap());
    let version = manifest["spec"]["version"].as_str().unwrap();
    let staging = krew_root.path().join("tmp");
    let store = krew_root.path().join("store").join(PLUGIN).join(version);
    extract(&archive, &staging).unwrap();
    install_files(&platform, &staging, &store).unwrap();
    let bin_dir = krew_root.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(store.join(platform["bin"].as_str().unwrap()), bin_dir.join(format!("kubectl-{}", PLUGIN.replace('-', "_")))).unwrap();

    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| Command::new("kubectl").args(args).env("PATH", &path).env("KUBECONFIG", krew_root.path().join("none")).output().unwrap();
    let help = kubectl(&["mesh-why", "--help"]);
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Explains why Istio traffic"));
    let shown = kubectl(&["mesh-why", "--version"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.starts_with(&format!("kubectl mesh-why {} (commit ", version.trim_start_matches('v'))), "{shown}");
}

#[test]
fn the_release_workflow_builds_every_platform_of_the_manifest() {
    let workflow: Value = serde_saphyr::from_str(&std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap()).unwrap();
    assert_eq!(workflow["on"]["push"]["tags"][0], "v*");
    let built: BTreeSet<String> = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            // The archive tools/package.py names for the triple: by krew os and arch.
            let target = m["target"].as_str().unwrap();
            let arch = if target.starts_with("x86_64") { "amd64" } else { "arm64" };
            let os = ["linux", "darwin", "windows"].into_iter().find(|os| target.contains(os)).unwrap();
            format!("kubectl-mesh_why-{os}-{arch}.{}", if os == "windows" { "zip" } else { "tar.gz" })
        })
        .collect();
    let template = std::fs::read_to_string(root().join(".krew.yaml")).unwrap();
    let listed: BTreeSet<String> =
        template.split("/releases/download/{{ .TagName }}/").skip(1).map(|rest| rest.split('"').next().unwrap().to_string()).collect();
    assert_eq!(built, listed);
    assert!(workflow["jobs"]["build"]["strategy"]["matrix"]["include"].as_array().unwrap().iter().all(|m| {
        let target = m["target"].as_str().unwrap();
        !target.contains("linux") || target.ends_with("-musl")
    }));
    // jemalloc built on a 4 KiB-page runner would crash on the arm64 kernels that use 64 KiB.
    let build = workflow["jobs"]["build"]["steps"].as_array().unwrap().iter().find(|s| s["name"] == "Build").unwrap();
    assert_eq!(build["env"]["AARCH64_UNKNOWN_LINUX_MUSL_JEMALLOC_SYS_WITH_LG_PAGE"], "16");
}
