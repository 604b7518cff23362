//! An `istioctl bug-report` archive is analyzed like a snapshot: its cluster-wide object dumps
//! become objects and its per-proxy admin output becomes proxy captures; secrets are never read.

use std::fs;
use std::path::Path;
use std::process::Command;

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/scenarios/proxy-stale");
const POD: &str = "productpage-v1-6b7f9d8c7-ccccc";

fn findings(snapshot: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(["reviews", "-o", "json", "--snapshot"]).arg(snapshot).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report["findings"].to_string())
}

#[test]
fn bug_report_archive_reads_like_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bug-report");
    let proxy = root.join("proxies/default").join(POD);
    fs::create_dir_all(proxy.join("stats")).unwrap();
    fs::create_dir_all(root.join("cluster")).unwrap();
    let scenario = Path::new(SCENARIO);
    fs::copy(scenario.join("objects/bookinfo.yaml"), root.join("cluster/k8s-resources")).unwrap();
    fs::write(root.join("cluster/crs"), "apiVersion: v1\nkind: List\nitems: []\n").unwrap();
    // Not YAML at all: it would fail the run if mesh-why ever read it.
    fs::write(root.join("cluster/secrets"), "\u{0}binary secret material").unwrap();
    let captured = scenario.join("proxies/default").join(POD);
    for (from, to) in
        [("config_dump.json", "config_dump"), ("clusters.json", "clusters"), ("server_info.json", "server_info"), ("stats_prometheus.txt", "stats/prometheus")]
    {
        fs::copy(captured.join(from), proxy.join(to)).unwrap();
    }
    let archive = tmp.path().join("bug-report.tar.gz");
    let status = Command::new("tar").arg("czf").arg(&archive).arg("-C").arg(tmp.path()).arg("bug-report").status().unwrap();
    assert!(status.success());

    let expected = findings(scenario);
    assert_eq!(findings(&archive), expected);
    assert_eq!(findings(tmp.path()), expected, "the unpacked archive reads the same");
    assert!(expected.1.contains("proxy-stale"));
}
