//! The parse floor of the big-mesh benchmark (`tools/bench`): reads each file and walks every
//! JSON value with serde's `IgnoredAny`, keeping nothing; other files are only read. Prints the
//! seconds and bytes, as `SECONDS BYTES`.
//!
//! Run: `cargo run --profile bench-fast --example parse_floor -- FILE...`

use serde::de::IgnoredAny;
use std::time::Instant;

fn main() {
    let start = Instant::now();
    let mut bytes = 0usize;
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        bytes += data.len();
        if path.ends_with(".json") {
            serde_json::from_slice::<IgnoredAny>(&data).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        }
    }
    println!("{:.4} {bytes}", start.elapsed().as_secs_f64());
}
