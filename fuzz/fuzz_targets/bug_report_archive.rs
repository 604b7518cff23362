//! Fuzzes an `istioctl bug-report` archive as `--snapshot` reads it.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::archive(data, "bug-report.tgz"));
