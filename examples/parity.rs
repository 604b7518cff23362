//! Parity with `istioctl analyze`: replays the inputs of analyze's own test suite (the shared
//! corpus `istio-analyzers`) through what `kubectl-mesh_why --all -A --snapshot DIR -o json`
//! runs (the library's snapshot reader, mesh analysis and JSON renderer, in process) and compares
//! the (istio_code, subject) pairs with the messages each case expects.
//!
//! Run: `cargo run --example parity` (prints a skip reason when the corpus is absent;
//! `MESH_WHY_ANALYZER_CORPUS=DIR` points elsewhere). Exits 1 when a message is missed or
//! falsely reported, so CI keeps the parity it has.
//!
//! Each upstream case runs ONE analyzer, so per case only the findings that analyzer's checks
//! correspond to are compared (by code, finding id and subject kind); a code shared by several
//! analyzers (IST0101) would otherwise turn other checks into false positives. Like the upstream
//! harness, every case also gets an ingress gateway Pod (`istio=ingressgateway`) and Service
//! `istio-ingressgateway` in `istio-system` with TCP ports 80, 443, 31400 and 15443.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// analyze's analyzers that do not bear on routing (UID 1337, `image: auto`): left out of the
/// report.
const NOT_ROUTING: &[&str] = &["applicationUID.Analyzer", "injection.ImageAutoAnalyzer"];

/// The codes the findings catalogue covers: a miss or a false positive among them fails the run.
/// The other codes of the routing analyzers are counted too, as what parity still lacks.
const COMPARED: &[&str] = &[
    "IST0101", "IST0102", "IST0103", "IST0109", "IST0112", "IST0118", "IST0130", "IST0131", "IST0132", "IST0140", "IST0173", "IST0174", "IST0134", "IST0177",
    "IST0110", "IST0111", "IST0167", "IST0128", "IST0129", "IST0145", "IST0138", "IST0162", "IST0165", "IST0149", "IST0161", "IST0123", "IST0148", "IST0150",
    "IST0116", "IST0137",
];

/// One of our checks: (istio_code, finding id, subject kind).
type Check = (&'static str, &'static str, &'static str);

/// Per upstream analyzer, the checks of ours that make the same check.
const ANALYZERS: &[(&str, &[Check])] = &[
    (
        "virtualservice.DestinationHostAnalyzer",
        &[
            ("IST0101", "host-not-found", "VirtualService"),
            ("IST0101", "destination-port-missing", "VirtualService"),
            ("IST0112", "destination-port-missing", "VirtualService"),
            ("IST0140", "gateway-ignores-mesh-rules", "VirtualService"),
        ],
    ),
    ("virtualservice.DestinationRuleAnalyzer", &[("IST0101", "subset-not-declared", "VirtualService")]),
    (
        "virtualservice.GatewayAnalyzer",
        &[
            ("IST0101", "gateway-not-found", "VirtualService"),
            ("IST0132", "gateway-not-found", "VirtualService"),
            ("IST0132", "gateway-host-not-served", "VirtualService"),
            ("IST0165", "gateway-internal-reference", "VirtualService"),
        ],
    ),
    ("virtualservice.ConflictingMeshGatewayHostsAnalyzer", &[("IST0109", "vs-conflict", "VirtualService")]),
    ("schema.ValidationAnalyzer.VirtualService", &[("IST0130", "unreachable-rule", "VirtualService"), ("IST0131", "unreachable-rule", "VirtualService")]),
    ("gateway.IngressGatewayPortAnalyzer", &[("IST0101", "gateway-not-found", "Gateway"), ("IST0162", "gateway-port-not-exposed", "Gateway")]),
    ("virtualservice.JWTClaimRouteAnalyzer", &[("IST0149", "jwt-claim-route-unauthenticated", "VirtualService")]),
    ("gateway.CertificateAnalyzer", &[("IST0138", "gateway-duplicate-certificate", "Gateway")]),
    (
        "gateway.SecretAnalyzer",
        &[
            ("IST0101", "gateway-not-found", "Gateway"),
            ("IST0101", "gateway-credential-missing", "Gateway"),
            ("IST0161", "gateway-credential-invalid", "Gateway"),
        ],
    ),
    (
        "injection.Analyzer",
        &[
            ("IST0102", "namespace-not-injected", "Namespace"),
            ("IST0103", "caller-without-sidecar", "Pod"),
            ("IST0123", "namespace-injection-conflict", "Namespace"),
            ("IST0148", "namespace-injected-by-default", "Namespace"),
        ],
    ),
    ("service.PortNameAnalyzer", &[("IST0118", "port-not-http", "Service"), ("IST0150", "external-name-port-protocol", "Service")]),
    (
        "deployment.MultiServiceAnalyzer",
        &[("IST0116", "deployment-service-protocol-conflict", "Deployment"), ("IST0137", "deployment-service-target-port-conflict", "Deployment")],
    ),
    ("destinationrule.SubsetSelectPodAnalyzer", &[("IST0173", "subset-no-endpoints", "DestinationRule"), ("IST0174", "host-not-found", "DestinationRule")]),
    (
        "sidecar.SelectorAnalyzer",
        &[
            ("IST0101", "sidecar-selects-no-pod", "Sidecar"),
            ("IST0110", "sidecar-selector-conflict", "Sidecar"),
            ("IST0111", "sidecar-namespace-conflict", "Sidecar"),
            ("IST0167", "sidecar-no-effect-ambient", "Sidecar"),
        ],
    ),
    (
        "destinationrule.CaCertificateAnalyzer",
        &[("IST0128", "tls-origination-unverified", "DestinationRule"), ("IST0129", "tls-origination-unverified", "DestinationRule")],
    ),
    ("gateway.ConflictingGatewayAnalyzer", &[("IST0145", "gateway-conflict", "Gateway")]),
    ("serviceentry.Analyzer", &[("IST0134", "service-entry-address-required", "ServiceEntry")]),
    ("serviceentry.ConflictingServiceEntryProtocolAnalyzer", &[("IST0177", "service-entry-protocol-conflict", "ServiceEntry")]),
];

/// The upstream harness's built-in ingress gateway.
const HARNESS_OBJECTS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: istio-ingressgateway-harness
  namespace: istio-system
  labels: {istio: ingressgateway, app: istio-ingressgateway}
spec:
  containers:
  - {name: istio-proxy, image: proxyv2, args: [proxy, router]}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: istio-system
  labels: {istio: ingressgateway, app: istio-ingressgateway}
spec:
  selector: {istio: ingressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 80, protocol: TCP}
  - {name: https, port: 443, targetPort: 443, protocol: TCP}
  - {name: tcp, port: 31400, targetPort: 31400, protocol: TCP}
  - {name: tls, port: 15443, targetPort: 15443, protocol: TCP}
";

/// One upstream case: its inputs, analyzer and expected (code, resource) messages.
struct Case {
    name: String,
    inputs: Vec<String>,
    analyzer: String,
    expected: Vec<(String, String)>,
    /// A MeshConfig file the case applies (`mesh_config=FILE` in its note).
    mesh_config: Option<String>,
}

/// Counts for one code.
#[derive(Default)]
struct Tally {
    expected: usize,
    found: usize,
    missed: Vec<String>,
    false_positives: Vec<String>,
}

fn main() {
    let corpus = std::env::var_os("MESH_WHY_ANALYZER_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/istio-analyzers"));
    let Ok(tsv) = std::fs::read_to_string(corpus.join("expected.tsv")) else {
        println!("skipping: the istioctl analyze corpus is not at {} (set MESH_WHY_ANALYZER_CORPUS)", corpus.display());
        return;
    };
    let cases = read_cases(&tsv);
    let mut tallies: BTreeMap<&str, Tally> = cases.iter().flat_map(|c| &c.expected).map(|(code, _)| (code.as_str(), Tally::default())).collect();
    let mut failures = Vec::new();
    for case in &cases {
        let checks = ANALYZERS.iter().find(|(a, _)| *a == case.analyzer).map(|(_, c)| *c).unwrap_or_default();
        let found = if checks.is_empty() {
            // An analyzer none of our checks corresponds to yet: its messages are all missed.
            Ok(Vec::new())
        } else {
            run_case(&corpus, case)
        };
        let found = match found {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        let mut ours: Vec<(String, String)> = found
            .into_iter()
            .filter(|(code, id, kind, _)| checks.iter().any(|(c, i, k)| c == code && i == id && k == kind))
            .map(|(code, _, _, resource)| (code, resource))
            .collect();
        for (code, resource) in &case.expected {
            let tally = tallies.get_mut(code.as_str()).expect("compared code");
            tally.expected += 1;
            match ours.iter().position(|o| o.0 == *code && o.1 == *resource) {
                Some(i) => {
                    ours.remove(i);
                    tally.found += 1;
                }
                None => tally.missed.push(format!("{} [{}]: {resource}", case.name, case.analyzer)),
            }
        }
        for (code, resource) in ours {
            if let Some(tally) = tallies.get_mut(code.as_str()) {
                tally.false_positives.push(format!("{} [{}]: {resource}", case.name, case.analyzer));
            }
        }
    }
    print_table(&tallies, cases.len());
    for (code, t) in tallies.iter().filter(|(code, _)| COMPARED.contains(code)) {
        for m in &t.missed {
            println!("missed {code}: {m}");
        }
        for f in &t.false_positives {
            println!("false positive {code}: {f}");
        }
    }
    for f in &failures {
        println!("failed to run: {f}");
    }
    let differences = tallies.iter().any(|(code, t)| (COMPARED.contains(code) && !t.missed.is_empty()) || !t.false_positives.is_empty());
    if !failures.is_empty() || differences {
        std::process::exit(1);
    }
}

/// Groups the rows of expected.tsv into cases, keeping only messages with compared codes.
fn read_cases(tsv: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, inputs, analyzer, code, resource, note, ..] = cols.as_slice() else { continue };
        if NOT_ROUTING.contains(analyzer) {
            continue;
        }
        let key = (name.to_string(), inputs.to_string());
        let index = match cases.iter().position(|c| (c.name.clone(), c.inputs.join(",")) == key) {
            Some(i) => i,
            None => {
                cases.push(Case {
                    name: name.to_string(),
                    inputs: inputs.split(',').map(str::to_string).collect(),
                    analyzer: analyzer.to_string(),
                    expected: Vec::new(),
                    mesh_config: note.split_whitespace().find_map(|w| w.strip_prefix("mesh_config=")).map(|f| f.trim_end_matches(';').to_string()),
                });
                cases.len() - 1
            }
        };
        if *code != "none" {
            // Objects without a namespace land in `default`, as kubectl apply would put them.
            let resource = if note.contains("ns_unset") && !resource.starts_with("Namespace ") { format!("{resource}.default") } else { resource.to_string() };
            cases[index].expected.push((code.to_string(), resource));
        }
    }
    cases
}

/// Builds the case's snapshot in a temporary directory, runs the binary on it, and returns each
/// finding as (code, id, subject kind, `Kind name.namespace` or `Kind name`).
fn run_case(corpus: &Path, case: &Case) -> Result<Vec<(String, String, String, String)>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let objects = dir.path().join("objects");
    std::fs::create_dir(&objects).map_err(|e| e.to_string())?;
    for (i, input) in case.inputs.iter().enumerate() {
        let text = std::fs::read_to_string(corpus.join("inputs").join(input)).map_err(|e| format!("{input}: {e}"))?;
        std::fs::write(objects.join(format!("{i:02}-input.yaml")), text).map_err(|e| e.to_string())?;
    }
    std::fs::write(objects.join("zz-harness.yaml"), HARNESS_OBJECTS).map_err(|e| e.to_string())?;
    if let Some(file) = &case.mesh_config {
        // As the cluster holds it: the `istio` ConfigMap's `mesh` key.
        let mesh = std::fs::read_to_string(corpus.join("inputs").join(file)).map_err(|e| format!("{file}: {e}"))?;
        let config_map =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": mesh}});
        std::fs::write(objects.join("zz-mesh.json"), config_map.to_string()).map_err(|e| e.to_string())?;
    }
    // In process rather than through the binary: building the binary alone would resolve the
    // dependencies' features without the dev-dependencies and compile everything a second time.
    let snapshot = mesh_why::gather::files::read_snapshot(dir.path()).map_err(|e| e.to_string())?;
    let analysis = mesh_why::diagnose::analyze_mesh(&snapshot, None).map_err(|e| e.to_string())?;
    let report: Value =
        serde_json::from_str(&mesh_why::render::render(&analysis, mesh_why::render::Format::Json, false)).map_err(|e| format!("output is not JSON: {e}"))?;
    Ok(report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| {
            let subject = &f["subject"];
            let (kind, ns, name) =
                (subject["kind"].as_str().unwrap_or_default(), subject["namespace"].as_str().unwrap_or_default(), subject["name"].as_str().unwrap_or_default());
            let resource = if ns.is_empty() { format!("{kind} {name}") } else { format!("{kind} {name}.{ns}") };
            let id = f["id"].as_str().unwrap_or_default().to_string();
            // A finding stands for every analyze message of its cause: its code and the codes
            // analyze reports the same cause under as well.
            let codes = f["istio_code"].as_str().into_iter().chain(f["also_istio_codes"].as_array().into_iter().flatten().filter_map(Value::as_str));
            codes.map(|c| (c.to_string(), id.clone(), kind.to_string(), resource.clone())).collect::<Vec<_>>()
        })
        .collect())
}

fn print_table(tallies: &BTreeMap<&str, Tally>, cases: usize) {
    println!("mesh-why vs istioctl analyze test suite ({cases} cases)\n");
    println!("{:<8} {:>8} {:>6} {:>7} {:>16}", "code", "expected", "found", "missed", "false positives");
    let mut total = Tally::default();
    let mut fp = 0;
    for (code, t) in tallies {
        let mark = if COMPARED.contains(code) { "" } else { "  (no check yet)" };
        println!("{code:<8} {:>8} {:>6} {:>7} {:>16}{mark}", t.expected, t.found, t.missed.len(), t.false_positives.len());
        total.expected += t.expected;
        total.found += t.found;
        total.missed.extend(t.missed.iter().cloned());
        fp += t.false_positives.len();
    }
    println!("{:<8} {:>8} {:>6} {:>7} {:>16}\n", "total", total.expected, total.found, total.missed.len(), fp);
}
