//! Fuzzes the caller's stats in each of the three encodings (the first byte picks one).

#![no_main]

mod common;

use mesh_why::snapshot::StatsFormat;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else { return };
    let format = [StatsFormat::Text, StatsFormat::Json, StatsFormat::Prometheus][usize::from(*pick) % 3];
    common::proxy_file(common::ProxyFile::Stats(format), rest);
});
