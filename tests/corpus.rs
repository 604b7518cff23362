//! Real config dumps from Istio 0.8 to 1.22 (the shared corpus, read by path and never copied):
//! every one loads, or is refused with a reason; and where a dump and its YAML come from the
//! same cluster, the analysis reports no false `proxy-stale`.

use mesh_why::envoy::clusters;
use mesh_why::envoy::config_dump::{ConfigDump, ProxyKind, Selection};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus. Its tests are `#[ignore]`d, so a checkout without it reports them as ignored
/// rather than passing them unrun; `tools/test` includes them when the corpus is there, and
/// then its absence is a failure.
fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/envoy-dumps");
    assert!(dir.is_dir(), "the Envoy dump corpus is not at {}: run these tests where it is, or leave out --include-ignored", dir.display());
    dir
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(json_files(&p));
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
#[ignore = "needs the shared Envoy dump corpus at ../shared/corpus/envoy-dumps"]
fn every_corpus_dump_loads_or_is_refused_with_a_reason() {
    let dir = corpus();
    let mut loaded = 0;
    for path in json_files(&dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        if name.ends_with("clusters.json") {
            let parsed = clusters::parse(&text, &name, &|_| true).unwrap();
            let reviews = parsed.iter().find(|c| c.name == "outbound|9080||reviews.default.svc.cluster.local").unwrap();
            let want = |n: &str| n.contains("reviews");
            assert_eq!(clusters::cut_from(text.as_bytes(), &name, &want), Some(clusters::cut(&text, &name, &want).unwrap()), "{name}");
            assert_eq!(reviews.hosts.len(), 3, "{name}: camelCase host_statuses must be read");
            println!("{name}: /clusters with {} clusters", parsed.len());
            continue;
        }
        match ConfigDump::parse(&text, &name, &Selection::everything()) {
            Ok(dump) => {
                let kind = dump.node.as_ref().map(|n| n.kind.clone());
                if let Some(ProxyKind::Other(k)) = &kind {
                    panic!("{name}: proxy type `{k}` is not a sidecar, gateway or waypoint");
                }
                let vhosts: usize = dump.route_configs.iter().map(|r| r.virtual_hosts.len()).sum();
                println!(
                    "{name}: {} ({}), {} route configs, {vhosts} vhosts, {} clusters, {} listeners",
                    dump.admin_api,
                    kind.map(|k| format!("{k:?}")).unwrap_or_else(|| "no bootstrap".into()),
                    dump.route_configs.len(),
                    dump.clusters.len(),
                    dump.listeners.len()
                );
                assert!(!dump.sections.is_empty());
                loaded += 1;
            }
            Err(e) => {
                println!("{name}: refused: {}", e.message());
                // Only files that are not Envoy /config_dump output may be refused.
                assert!(name.contains("bootstrap") || name.contains("pilot_debug"), "{name} should load: {e}");
            }
        }
    }
    assert!(loaded >= 25, "only {loaded} dumps loaded");
}

#[test]
#[ignore = "needs the shared Envoy dump corpus at ../shared/corpus/envoy-dumps"]
fn every_corpus_dump_cut_down_reads_as_the_whole_dump_does() {
    let dir = corpus();
    // Selections unrelated to what the dumps hold, the narrow one within the broad one.
    let (some, fewer) = (|n: &str| n.len().is_multiple_of(2) || n.contains("reviews"), |n: &str| n.len().is_multiple_of(4));
    let broad = Selection { route_config: &|_| true, virtual_host: &|_, n, _| some(n), cluster: &some, listener: &some };
    let narrow = Selection { route_config: &some, virtual_host: &|_, n, _| fewer(n), cluster: &fewer, listener: &fewer };
    let mut cut_down = 0;
    for path in json_files(&dir).into_iter().filter(|p| !p.ends_with("clusters.json")) {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(&dir).unwrap().display().to_string();
        let Ok(whole) = ConfigDump::parse(&text, &name, &broad) else { continue };
        let cut = match ConfigDump::cut(&text, &name, &broad) {
            Ok(cut) => cut,
            Err(e) if whole.admin_api == "map form" => {
                assert!(e.to_string().contains("map form"), "{name}: {e}");
                assert_eq!(ConfigDump::cut_from(text.as_bytes(), &name, &broad), None, "{name}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        // Read a piece at a time, it is cut just the same.
        assert_eq!(ConfigDump::cut_from(text.as_bytes(), &name, &broad).as_deref(), Some(cut.as_str()), "{name}");
        assert_eq!(ConfigDump::cut_from(text.as_bytes(), &name, &narrow).as_deref(), ConfigDump::cut(&text, &name, &narrow).ok().as_deref(), "{name}");
        for sel in [&broad, &narrow] {
            let (read, expected) = (ConfigDump::parse(&cut, &name, sel).unwrap(), ConfigDump::parse(&text, &name, sel).unwrap());
            assert_eq!(format!("{read:?}"), format!("{expected:?}"), "{name}");
        }
        println!("{name}: {} of {} bytes kept", cut.len(), text.len());
        cut_down += 1;
    }
    assert!(cut_down >= 20, "only {cut_down} dumps cut down");
}

/// Builds a snapshot from corpus YAML and one dump, runs the binary, returns the findings.
fn analyze(yaml: &[PathBuf], dump: &Path, pod: (&str, &str), args: &[&str]) -> Vec<serde_json::Value> {
    report(yaml, dump, pod, args)["findings"].as_array().unwrap().clone()
}

/// [`analyze`], returning the whole JSON report.
fn report(yaml: &[PathBuf], dump: &Path, pod: (&str, &str), args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    for (i, y) in yaml.iter().enumerate() {
        std::fs::copy(y, objects.join(format!("{i}.yaml"))).unwrap();
    }
    let proxy = tmp.path().join("proxies").join(pod.0).join(pod.1);
    std::fs::create_dir_all(&proxy).unwrap();
    std::fs::copy(dump, proxy.join("config_dump.json")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).args(args).arg("--snapshot").arg(tmp.path()).args(["-o", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    for d in report["diff"].as_array().into_iter().flatten() {
        println!("{}", d["text"].as_str().unwrap_or_default());
    }
    report
}

fn ids(findings: &[serde_json::Value]) -> Vec<&str> {
    findings.iter().map(|f| f["id"].as_str().unwrap()).collect()
}

#[test]
#[ignore = "needs the shared Envoy dump corpus at ../shared/corpus/envoy-dumps"]
fn paired_yaml_and_dumps_show_no_false_proxy_stale() {
    let dir = corpus();
    let header = dir.join("istio-1.22-ingress-header-subsets");
    let yaml: Vec<PathBuf> = ["app1", "app2", "app3", "gateway-dr-vs"].iter().map(|n| header.join(format!("k8s/{n}.yaml"))).collect();
    // The repository these come from compares load balancers: its DestinationRules say
    // LEAST_REQUEST (and the gateway dump has it), but the sidecar was dumped during a
    // ROUND_ROBIN run. That drift is real and must be the only one: routes and clusters match.
    for service in ["app1", "app2", "app3"] {
        let findings = analyze(&yaml, &header.join("app1-0.sidecar.config_dump.json"), ("default", "app1-0"), &[service]);
        println!("1.22 {service}: {:?}", ids(&findings));
        let stale = findings.iter().find(|f| f["id"] == "proxy-stale").unwrap_or_else(|| panic!("the load-balancer drift of {service} is not seen"));
        for line in stale["evidence"].as_array().unwrap() {
            assert!(line.as_str().unwrap().ends_with("lb_policy: expected LEAST_REQUEST, Envoy has ROUND_ROBIN"), "false proxy-stale for {service}: {line}");
        }
    }
    for service in ["app1", "app2", "app3"] {
        let ingress = header.join("ingressgateway.config_dump.json");
        let findings = analyze(&yaml, &ingress, ("istio-system", "istio-ingressgateway-0"), &[service]);
        let ids = ids(&findings);
        println!("1.22 ingress gateway, {service}: {ids:?}");
        assert!(!ids.contains(&"proxy-stale"), "false proxy-stale at the gateway for {service}: {ids:?}");
    }
    let ossm = dir.join("ossm-istio-1.20-sidecar-and-ingress");
    let yaml: Vec<PathBuf> = ["app", "internal-call"].iter().map(|n| ossm.join(format!("k8s/{n}.yaml"))).collect();
    let findings = analyze(
        &yaml,
        &ossm.join("hello-openshift.sidecar.config_dump.json"),
        ("vanilla-playground", "hello-openshift"),
        &["hello-openshift.vanilla-playground", "--from", "hello-openshift"],
    );
    let ids = ids(&findings);
    println!("1.20 hello-openshift: {ids:?}");
    assert!(!ids.contains(&"proxy-stale"), "false proxy-stale: {ids:?}");
    assert!(ids.contains(&"no-route-match"), "the VS has only an exact `/` match: {ids:?}");
}

/// Our own objects for the waypoint of the 1.21 ambient dump: Service httpbin bound to it.
const WAYPOINT_OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: httpbin-istio-waypoint}}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec:
  clusterIP: 10.104.171.68
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: httpbin-istio-waypoint, namespace: default}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Pod
metadata:
  name: httpbin-istio-waypoint-58f646c5ff-dbfkz
  namespace: default
  labels: {gateway.networking.k8s.io/gateway-name: httpbin-istio-waypoint}
spec:
  containers: [{name: istio-proxy, image: proxyv2:1.21.0, args: [proxy, waypoint]}]
status: {podIP: 192.168.252.229}
"#;

#[test]
#[ignore = "needs the shared Envoy dump corpus at ../shared/corpus/envoy-dumps"]
fn a_real_waypoint_dump_is_read_on_its_own_shapes_without_false_staleness() {
    let dir = corpus();
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects.yaml");
    std::fs::write(&objects, WAYPOINT_OBJECTS).unwrap();
    let dump = dir.join("istio-1.21-ambient-waypoint/config_dump.json");
    let pod = ("default", "httpbin-istio-waypoint-58f646c5ff-dbfkz");
    let question = report(&[objects], &dump, pod, &["httpbin.default", "--from", "httpbin-istio-waypoint-58f646c5ff-dbfkz.default"]);
    let caller = &question["proxies"][0];
    assert_eq!((caller["kind"].as_str(), caller["proxy_read"].as_bool()), (Some("waypoint"), Some(true)), "{caller}");
    let findings = question["findings"].as_array().unwrap();
    assert!(!ids(findings).contains(&"proxy-stale"), "false proxy-stale on the waypoint: {:?}", ids(findings));
    assert!(question["diff"].as_array().is_none_or(Vec::is_empty), "the waypoint's route for port 8000 matches the model: {}", question["diff"]);
    // A request walks istiod's real filter_chain_matcher (an IP range matcher, then ports).
    let objects = tmp.path().join("objects.yaml");
    let trace = report(&[objects], &dump, pod, &["trace", "httpbin.default", "--from", "default/httpbin-istio-waypoint-58f646c5ff-dbfkz", "--port", "8000"]);
    assert_eq!(trace["listener"], "main_internal", "{trace}");
    assert_eq!(trace["filter_chain"], "inbound-vip|8000||httpbin.default.svc.cluster.local-http", "{trace}");
    assert!(trace["findings"].as_array().unwrap().is_empty() && trace["outcome"].as_str().unwrap().contains("inbound-vip|8000|http|httpbin"), "{trace}");
}
