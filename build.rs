//! Records what `--version` reports: the commit the build came from and the target it is for.
//! Reads the local git checkout only (never the network); `MESH_WHY_COMMIT` overrides it, for
//! builds from a source archive that has no `.git`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string()).filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MESH_WHY_COMMIT");
    // A new commit or checkout moves HEAD or the ref it points at: only then run again. Cargo
    // reruns a script on every build while a watched path is missing (a repository often has no
    // packed-refs), which would rebuild the crate each time, so only existing paths are watched;
    // packing the ref later removes its loose file, which is a change too.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "packed-refs"].into_iter().map(str::to_string).chain(branch);
    for path in watched.filter_map(|p| git(&["rev-parse", "--git-path", &p])).filter(|p| std::path::Path::new(p).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = std::env::var("MESH_WHY_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=MESH_WHY_COMMIT={commit}");
    println!("cargo:rustc-env=MESH_WHY_TARGET={}", std::env::var("TARGET").unwrap_or_else(|_| "unknown".into()));
}
