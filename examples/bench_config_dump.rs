//! Benchmark: time (and peak memory) to read the largest corpus config dump for one question,
//! and the same on a synthetic ~100 MB dump built by repeating its clusters and route configs.
//!
//! Run: `cargo run --release --example bench_config_dump` (prints a skip reason when the shared
//! corpus is absent).

use mesh_why::envoy::config_dump::{ConfigDump, Selection};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

const LARGEST: &str = "../shared/corpus/envoy-dumps/istio-1.6-ratings-sidecar-weighted-large/config_dump.json";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, file] = args.as_slice()
        && flag == "--parse-only"
    {
        parse_only(file);
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(LARGEST);
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipping: the corpus dump is not at {}", path.display());
        return;
    };
    with_question(|q| report("largest corpus dump, question selection", &text, q, 50));
    report("largest corpus dump, everything decoded", &text, &Selection::everything(), 20);
    let big = inflate(&text, 100 << 20);
    with_question(|q| report("synthetic dump, question selection", &big, q, 3));
    // Peak memory of reading the big dump, measured in a fresh process so that building the
    // synthetic input does not count.
    let file = std::env::temp_dir().join(format!("mesh-why-bench-{}.json", std::process::id()));
    std::fs::write(&file, &big).unwrap();
    drop(big);
    let out = std::process::Command::new(std::env::current_exe().unwrap()).arg("--parse-only").arg(&file).output().unwrap();
    let _ = std::fs::remove_file(&file);
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Child mode: read one file as the CLI does and report peak resident memory.
fn parse_only(file: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let dump = with_question(|q| ConfigDump::parse(&text, file, q).unwrap());
    println!(
        "reading the {:.1} MB dump: peak resident memory {} MiB ({} clusters seen, {} decoded)",
        text.len() as f64 / 1e6,
        peak_rss_mib(),
        dump.cluster_names.len(),
        dump.clusters.len()
    );
}

/// Runs `f` with the selection one question makes: route config "80" and the ratings service.
fn with_question<R>(f: impl FnOnce(&Selection<'_>) -> R) -> R {
    let route_config = |n: &str| n == "80";
    let vhost = |_: &str, n: &str, _: &[String]| n.starts_with("ratings.");
    let cluster = |n: &str| n.contains("|ratings.");
    let listener = |n: &str| n.ends_with("_80");
    f(&Selection { route_config: &route_config, virtual_host: &vhost, cluster: &cluster, listener: &listener })
}

fn report(label: &str, text: &str, sel: &Selection<'_>, runs: usize) {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let dump = ConfigDump::parse(text, "bench", sel).expect("dump parses");
            std::hint::black_box(dump);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{label}: {:.1} MB, median {:.2} ms over {runs} runs", text.len() as f64 / 1e6, times[runs / 2]);
}

/// Repeats the dump's dynamic clusters and route configs (renamed) until it is `target` bytes.
fn inflate(text: &str, target: usize) -> String {
    let mut doc: Value = serde_json::from_str(text).unwrap();
    let repeated: usize = doc["configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| ["dynamic_active_clusters", "dynamic_route_configs"].map(|f| s.get(f).map(|v| v.to_string().len()).unwrap_or(0)))
        .sum();
    let copies = (target - text.len()) / repeated.max(1) + 1;
    for section in doc["configs"].as_array_mut().unwrap() {
        for field in ["dynamic_active_clusters", "dynamic_route_configs"] {
            let Some(list) = section.get_mut(field).and_then(Value::as_array_mut) else { continue };
            let original = list.clone();
            for i in 1..copies {
                for item in &original {
                    let mut item = item.clone();
                    for key in ["cluster", "route_config"] {
                        if let Some(name) = item.get_mut(key).and_then(|c| c.get_mut("name")) {
                            *name = Value::String(format!("copy{i}-{}", name.as_str().unwrap_or_default()));
                        }
                    }
                    list.push(item);
                }
            }
        }
    }
    serde_json::to_string(&doc).unwrap()
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}
