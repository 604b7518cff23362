//! Fuzzes a `.tar.gz` snapshot as `--snapshot` reads it.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::archive(data, "snapshot.tar.gz"));
