//! Envoy's admin output, parsed into typed structs holding the fields mesh-why compares.
//!
//! Config dumps are read selectively: the document is scanned as raw JSON slices and only the
//! sections, route configurations, virtual hosts and clusters the question needs are decoded,
//! so a 100 MB dump never becomes a 100 MB value tree. Both admin API generations
//! (`envoy.admin.v2alpha` and `v3`), the old map form and camelCase spellings are accepted.

pub mod clusters;
pub mod config_dump;
mod de;
pub mod listener;
pub mod server_info;
pub mod stats;
pub mod stream;
pub mod types;

pub use config_dump::{ConfigDump, ProxyKind, Selection};
