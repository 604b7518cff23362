//! JSON output, schema `mesh-why/v1`.

use super::verdict;
use crate::diagnose::Report;
use crate::version;
use serde_json::json;

/// The `tool` field of every `mesh-why/v1` document: the build that wrote it.
pub fn tool() -> serde_json::Value {
    json!({"name": "mesh-why", "version": version::VERSION, "commit": version::COMMIT})
}

/// Renders the report as pretty JSON (control characters are escaped by the encoder).
pub fn render(report: &Report) -> String {
    let doc = json!({
        "schema": "mesh-why/v1",
        "tool": tool(),
        "verdict": verdict(report),
        "target": report.target,
        "proxies": report.proxies,
        "findings": report.findings,
        "diff": report.diff,
        "gaps": report.gaps,
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}
