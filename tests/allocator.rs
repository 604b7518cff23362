//! The allocator the binary runs with: jemalloc, with the options src/main.rs chose for big
//! meshes. Its options are read from a symbol by name, so a misspelt one would be ignored
//! without a word: jemalloc's own report of its options says whether they took.

#![cfg(not(target_env = "msvc"))]

use std::process::Command;

#[test]
fn the_binary_runs_on_jemalloc_with_its_chosen_options() {
    // `stats_print` asks jemalloc to print its statistics, and the options in force, at exit.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-mesh_why")).arg("--version").env("_RJEM_MALLOC_CONF", "stats_print:true").output().unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("jemalloc statistics"), "jemalloc printed no statistics: {report}");
    for option in ["opt.narenas: 1", "opt.dirty_decay_ms: 300", "opt.muzzy_decay_ms: 0"] {
        assert!(report.contains(option), "`{option}` is not in force:\n{report}");
    }
}
