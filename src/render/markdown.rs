//! Markdown for pasting into an incident ticket: verdict, findings table, details, diff.

use super::{clean, verdict};
use crate::diagnose::Report;
use std::fmt::Write;

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    clean(s).replace('\\', "\\\\").replace('|', "\\|").replace('\n', "<br>")
}

/// A code fence longer than any backtick run inside `body`.
fn fence(body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.target;
    let ports = if t.ports.is_empty() { String::new() } else { format!(" ({})", cell(&t.ports.join(", "))) };
    let _ = writeln!(out, "### mesh-why: `{}`{ports}\n", cell(&t.host));
    let _ = writeln!(out, "**Verdict:** {}\n", cell(&verdict(report)));
    let callers: Vec<String> = report
        .proxies
        .iter()
        .map(|p| format!("{} ({}{})", p.caller, if p.sidecar { p.kind } else { "no sidecar" }, if p.proxy_read { ", proxy read" } else { "" }))
        .collect();
    let _ = writeln!(out, "Callers examined: {}\n", cell(&callers.join(", ")));
    for n in &report.notes {
        let _ = writeln!(out, "Note: {}\n", cell(n));
    }
    if !report.findings.is_empty() {
        out.push_str("| # | severity | finding | subject | summary |\n|---|---|---|---|---|\n");
        for (i, f) in report.findings.iter().enumerate() {
            let _ = writeln!(out, "| {} | {} | `{}` | {} | {} |", i + 1, f.severity, f.id, cell(&f.subject.to_string()), cell(&f.summary));
        }
        out.push('\n');
        for (i, f) in report.findings.iter().enumerate() {
            let _ = writeln!(out, "#### {}. `{}`{}\n", i + 1, f.id, f.codes().map(|c| format!(" ({c})")).unwrap_or_default());
            let _ = writeln!(out, "{}\n", clean(&f.detail));
            if !f.evidence.is_empty() {
                out.push_str("Evidence:\n");
                for e in &f.evidence {
                    let _ = writeln!(out, "- `{}`", clean(e).replace('`', "'"));
                }
                out.push('\n');
            }
            let fix = clean(&f.fix);
            let fence = fence(&fix);
            let _ = writeln!(out, "Fix:\n{fence}\n{fix}\n{fence}\n\nSee {}\n", f.docs);
        }
    }
    for d in &report.diff {
        if d.diff.text.is_empty() {
            continue;
        }
        let text = clean(&d.diff.text);
        let fence = fence(&text);
        let _ = writeln!(out, "Intent vs proxy for `{}`:\n{fence}diff\n{}{fence}\n", cell(&d.caller), text);
    }
    if !report.gaps.is_empty() {
        out.push_str("Not examined:\n");
        for g in &report.gaps {
            let _ = writeln!(out, "- {}: {}", cell(&g.source), cell(&g.reason));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_and_fences_cannot_break_out() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
        assert_eq!(fence("x ``` y"), "````");
    }
}
