//! What this build is (version, commit, target) and where its findings are documented.

/// The tool's version, as released (`v` + this is the git tag).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the build came from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("MESH_WHY_COMMIT");

/// The target triple the binary was built for.
pub const TARGET: &str = env!("MESH_WHY_TARGET");

/// What `--version` prints after the name.
pub const LONG: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MESH_WHY_COMMIT"), ", ", env!("MESH_WHY_TARGET"), ")");

/// The project's home page, also the krew manifest's `homepage`.
pub const HOMEPAGE: &str = env!("CARGO_PKG_REPOSITORY");

/// The absolute link to a finding's entry in the catalogue at this release, so a link pasted
/// into a ticket still leads to the text that matches the binary that wrote it.
pub fn finding_url(id: &str) -> String {
    format!("{HOMEPAGE}/blob/v{VERSION}/docs/findings.md#{id}")
}
