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
    to_text(&doc)
}

/// Pretty JSON of a `mesh-why/v1` document, safe to print: beyond the C0 controls the encoder
/// escapes, DEL, C1 controls and invisible format characters (bidi overrides) are written as
/// `\u` escapes too. They can only occur inside strings, so the document means the same.
pub fn to_text(doc: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(doc).unwrap_or_default();
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        // Raw C0 characters here are the layout's own newlines: the encoder escaped the others.
        if (c.is_control() && c >= '\u{7f}') || super::is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}') {
            // Every such character is in the Basic Multilingual Plane: one escape each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::to_text;
    use serde_json::json;

    #[test]
    fn del_c1_and_bidi_are_escaped_and_the_document_means_the_same() {
        let doc = json!({"name": "evil\u{202e}gnp.exe\u{7f}\u{85}", "n": 1});
        let text = to_text(&doc);
        assert!(text.contains("evil\\u202egnp.exe\\u007f\\u0085"), "{text}");
        assert!(!text.chars().any(|c| c == '\u{202e}' || c == '\u{85}' || c == '\u{7f}'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), doc);
    }
}
