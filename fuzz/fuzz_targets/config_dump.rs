//! Fuzzes the caller's `config_dump` file: parsed, analysed and rendered.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::proxy_file(common::ProxyFile::ConfigDump, data));
