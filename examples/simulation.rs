//! Parity with istiod's own simulation tests: replays every case of the shared corpus
//! `istio-simulation` (objects, a proxy, requests, and what istiod's tests assert about the
//! listener, filter chain, route configuration, virtual host, route, cluster or error) through
//! `trace` on the derived intent, and prints agreed / disagreed per case and per kind of result.
//!
//! Run: `cargo run --example simulation` (prints a skip reason when the corpus is absent;
//! `MESH_WHY_SIMULATION_CORPUS=DIR` points elsewhere; `-v` lists every disagreement). Every call
//! agrees today, so any disagreement is a regression: the report then exits 1 (CI runs it).
//!
//! Each case becomes a snapshot: its objects, a Pod for the proxy (IP, labels, an istio-proxy
//! container of the case's Istio version running `proxy sidecar|router`, ISTIO_META_* env) and,
//! when the case changes it, the `istio` ConfigMap with the mesh config. Each call is turned
//! into `trace` flags and parsed by the real command line, then traced in-process.

use clap::Parser;
use mesh_why::cli::{Cli, Command};
use mesh_why::gather::files::parse_documents;
use mesh_why::snapshot::Document;
use mesh_why::snapshot::Snapshot;
use mesh_why::trace::report::{build_request, trace};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FIELDS: [&str; 6] = ["listener", "filter_chain", "route_config", "virtual_host", "route", "cluster"];

fn main() {
    let corpus = std::env::var_os("MESH_WHY_SIMULATION_CORPUS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../shared/corpus/istio-simulation"));
    let verbose = std::env::args().any(|a| a == "-v");
    let Ok(entries) = std::fs::read_dir(&corpus) else {
        println!("skipping: the istio simulation corpus is not at {} (set MESH_WHY_SIMULATION_CORPUS)", corpus.display());
        return;
    };
    let mut cases: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.join("case.json").is_file()).collect();
    cases.sort();
    let (mut agreed, mut total, mut failed) = (0, 0, 0);
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_group: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for dir in &cases {
        match run_case(dir) {
            Ok((id, group, results)) => {
                let ok = results.iter().filter(|r| r.1.is_none()).count();
                println!("{id}: {ok}/{} agree", results.len());
                for (kind, problem) in &results {
                    let k = by_kind.entry(kind.clone()).or_default();
                    let g = by_group.entry(group.clone()).or_default();
                    k.1 += 1;
                    g.1 += 1;
                    if problem.is_none() {
                        k.0 += 1;
                        g.0 += 1;
                    } else if verbose {
                        println!("  disagree: {}", problem.as_deref().unwrap_or_default());
                    }
                }
                agreed += ok;
                total += results.len();
            }
            Err(e) => {
                failed += 1;
                println!("{}: could not run: {e}", dir.display());
            }
        }
    }
    println!("\nby kind of result:");
    for (kind, (ok, n)) in &by_kind {
        println!("  {kind}: {ok}/{n}");
    }
    println!("by group:");
    for (group, (ok, n)) in &by_group {
        println!("  {group}: {ok}/{n}");
    }
    println!("istio simulation parity: {agreed}/{total} calls agree ({} cases)", cases.len());
    if agreed != total || failed > 0 {
        println!("regression: {} call(s) disagree, {failed} case(s) could not run; `cargo run --example simulation -- -v` lists them", total - agreed);
        std::process::exit(1);
    }
}

/// The snapshot of a case: objects, the proxy's Pod, and the mesh config.
fn snapshot(dir: &Path, case: &Value) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    let yaml = std::fs::read(dir.join("objects.yaml")).unwrap_or_default();
    let mut docs = parse_documents(&yaml, "objects.yaml", false).map_err(|e| e.to_string())?;
    let proxy = &case["proxy"];
    let sidecar = proxy["type"] == "sidecar";
    let env: Vec<Value> = proxy["meta"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"name": format!("ISTIO_META_{k}"), "value": v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())}))
        .collect();
    let mut containers = vec![json!({
        "name": "istio-proxy",
        "image": format!("docker.io/istio/proxyv2:{}", proxy["istio_version"].as_str().unwrap_or("1.23.0")),
        "args": ["proxy", if sidecar { "sidecar" } else { "router" }],
        "env": env,
    })];
    let mut annotations = json!({});
    let mut init = json!([]);
    if sidecar {
        containers.insert(0, json!({"name": "app", "image": "app"}));
        init = json!([{"name": "istio-init", "image": "proxyv2"}]);
        annotations = json!({"sidecar.istio.io/status": "{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"]}"});
    }
    let ips: Vec<Value> = proxy["ips"].as_array().into_iter().flatten().map(|ip| json!({"ip": ip})).collect();
    docs.push(Document::Value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": proxy["name"], "namespace": proxy["namespace"], "labels": proxy["labels"], "annotations": annotations},
        "spec": {"containers": containers, "initContainers": init},
        "status": {"podIP": proxy["ip"], "podIPs": ips, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })));
    if !case["mesh_config"].is_null() {
        docs.push(Document::Value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": case["mesh_config"].to_string()}})));
    }
    for doc in docs {
        snap.objects.add(doc, "objects.yaml").map_err(|e| e.to_string())?;
    }
    let _ = snap.objects.sort();
    Ok(snap)
}

/// The `trace` flags of one call, as the corpus README spells them.
fn flags(case: &Value, call: &Value) -> Vec<String> {
    let proxy = &case["proxy"];
    let mut f: Vec<String> = vec!["kubectl-mesh_why".into(), "trace".into()];
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    f.extend(["--from".into(), format!("{}/{}", s(&proxy["namespace"]), s(&proxy["name"]))]);
    f.extend(["--port".into(), s(&call["port"]), "--address".into(), s(&call["address"]), "--path".into(), s(&call["path"])]);
    if let Some(h) = call["host"].as_str() {
        f.extend(["--host".into(), h.into()]);
    }
    for (k, v) in call["headers"].as_object().into_iter().flatten() {
        f.extend(["-H".into(), format!("{k}: {}", v.as_str().unwrap_or_default())]);
    }
    let tls = call["tls"].as_str().unwrap_or("plaintext");
    let protocol = call["protocol"].as_str().unwrap_or("tcp");
    let protocol = if protocol == "tcp" && tls == "tls" { "tls" } else { protocol };
    f.extend(["--protocol".into(), protocol.into()]);
    match tls {
        "tls" if protocol != "tls" => f.push("--tls".into()),
        "mtls" => f.push("--mtls".into()),
        _ => {}
    }
    for key in ["sni", "alpn"] {
        if let Some(v) = call[key].as_str() {
            f.extend([format!("--{key}"), v.into()]);
        }
    }
    if call["call_mode"] == "inbound" {
        f.push("--inbound".into());
    }
    f.extend(["-o".into(), "json".into()]);
    f
}

/// The snake_case code of an expected error (Go name or code).
fn error_code(e: &str) -> String {
    let name = e.strip_prefix("Err").unwrap_or(e);
    let code = match name {
        "NoListener" => "no_listener",
        "NoFilterChain" => "no_filter_chain",
        "MultipleFilterChain" => "multiple_filter_chains",
        "TLSError" => "tls_error",
        "MTLSError" => "mtls_error",
        "ProtocolError" => "protocol_error",
        "NoVirtualHost" => "no_virtual_host",
        "TLSRedirect" => "tls_redirect",
        "NoRoute" => "no_route",
        other => other,
    };
    code.to_string()
}

/// A call's kind of result and its disagreement, if any.
type CallResult = (String, Option<String>);

/// Runs every call of a case: (id, group, results).
fn run_case(dir: &Path) -> Result<(String, String, Vec<CallResult>), String> {
    let case: Value = serde_json::from_slice(&std::fs::read(dir.join("case.json")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let snap = snapshot(dir, &case)?;
    let id = case["id"].as_str().unwrap_or_default().to_string();
    let equivalents = case["real_cluster_equivalents"].as_object().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for call in case["calls"].as_array().into_iter().flatten() {
        let expect = &call["expect"];
        let kind = expect["error"].as_str().map(error_code).unwrap_or_else(|| "routed".into());
        let got = match run_call(&snap, &flags(&case, &call["call"])) {
            Ok(v) => v,
            Err(e) => {
                out.push((kind, Some(format!("{}: error {e}", call["test"].as_str().unwrap_or_default()))));
                continue;
            }
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut wrong = Vec::new();
        let strict = expect["strict"] == true;
        for field in FIELDS {
            if !strict && expect.get(field).is_none_or(|v| v.is_null()) {
                continue;
            }
            let (want, have) = (text(&expect[field]), text(&got[field]));
            let equivalent = equivalents.get(&want).and_then(Value::as_str) == Some(have.as_str());
            if want != have && !equivalent {
                wrong.push(format!("{field} want {want:?} got {have:?}"));
            }
        }
        let want_error = expect["error"].as_str().map(error_code).unwrap_or_default();
        if want_error != text(&got["error"]) {
            wrong.push(format!("error want {want_error:?} got {:?}", text(&got["error"])));
        }
        let problem = (!wrong.is_empty()).then(|| format!("{id} {}: {}", call["name"].as_str().unwrap_or("call"), wrong.join(", ")));
        out.push((kind, problem));
    }
    Ok((id, case["group"].as_str().unwrap_or_default().to_string(), out))
}

/// Parses the flags with the real command line and traces the call.
fn run_call(snap: &Snapshot, flags: &[String]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(flags).map_err(|e| e.to_string())?;
    let Some(Command::Trace(args)) = &cli.command else { return Err("not a trace command".into()) };
    let request = build_request(&snap.objects, args, cli.port, "default").map_err(|e| e.to_string())?;
    let report = trace(snap, cli.from.as_deref().unwrap_or_default(), "default", request).map_err(|e| e.to_string())?;
    serde_json::from_str(&mesh_why::trace::report::render(&report, args.output)).map_err(|e| e.to_string())
}
