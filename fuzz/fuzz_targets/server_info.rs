//! Fuzzes the caller's `server_info` file: parsed, analysed and rendered.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::proxy_file(common::ProxyFile::ServerInfo, data));
