//! Fuzzes an objects file (YAML, or JSON when the first byte is odd) added to a snapshot.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else { return };
    let json = pick % 2 == 1;
    let Ok(docs) = mesh_why::gather::files::parse_documents(rest, "fuzz", json) else { return };
    let mut snapshot = mesh_why::snapshot::Snapshot::default();
    for doc in docs {
        if snapshot.objects.add(doc, "fuzz").is_err() {
            return;
        }
    }
    snapshot.gaps.extend(snapshot.objects.sort());
    common::analyse(&snapshot);
});
