//! Markdown for pasting into an incident ticket: verdict, findings table, details, diff.

use super::{clean, verdict};
use crate::diagnose::Report;
use std::fmt::Write;

/// Escapes cluster text for a line of prose: no HTML, link, image or code can start in it, and
/// a newline cannot begin a new block (a forged heading or list). Emphasis is left alone: it
/// can change how text looks, not what it says.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '\n' => out.push_str("<br>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '[' | ']' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes cluster text for a table cell: prose escaping, and a `|` cannot end the cell.
pub fn cell(s: &str) -> String {
    text(s).replace('|', "\\|")
}

/// Cluster text inside a code span: backticks cannot close it, newlines cannot end the line.
pub fn code_span(s: &str) -> String {
    clean(s).replace('`', "'").replace('\n', " ")
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
    let ports = if t.ports.is_empty() { String::new() } else { format!(" ({})", text(&t.ports.join(", "))) };
    let _ = writeln!(out, "### mesh-why: `{}`{ports}\n", code_span(&t.host));
    let _ = writeln!(out, "**Verdict:** {}\n", text(&verdict(report)));
    let callers: Vec<String> = report
        .proxies
        .iter()
        .map(|p| {
            format!("{} ({}{})", p.caller, if p.sidecar || p.kind != "sidecar" { p.kind } else { "no sidecar" }, if p.proxy_read { ", proxy read" } else { "" })
        })
        .collect();
    let _ = writeln!(out, "Callers examined: {}\n", text(&callers.join(", ")));
    let mut paths: Vec<&[String]> = report.proxies.iter().map(|p| p.path.as_slice()).filter(|p| !p.is_empty()).collect();
    paths.dedup();
    for p in paths {
        let _ = writeln!(out, "Path: {}\n", text(&p.join(" → ")));
    }
    for n in &report.notes {
        let _ = writeln!(out, "Note: {}\n", text(n));
    }
    if !report.findings.is_empty() {
        out.push_str("| # | severity | finding | subject | summary |\n|---|---|---|---|---|\n");
        for (i, f) in report.findings.iter().enumerate() {
            let _ = writeln!(out, "| {} | {} | `{}` | {} | {} |", i + 1, f.severity, f.id, cell(&f.subject.to_string()), cell(&f.summary));
        }
        out.push('\n');
        for (i, f) in report.findings.iter().enumerate() {
            let _ = writeln!(out, "#### {}. `{}`{}\n", i + 1, f.id, f.codes().map(|c| format!(" ({c})")).unwrap_or_default());
            let _ = writeln!(out, "{}\n", text(&f.detail));
            if !f.evidence.is_empty() {
                out.push_str("Evidence:\n");
                for e in &f.evidence {
                    let _ = writeln!(out, "- `{}`", code_span(e));
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
        let body = clean(&d.diff.text);
        let fence = fence(&body);
        let _ = writeln!(out, "Intent vs proxy for `{}`:\n{fence}diff\n{}{fence}\n", code_span(&d.caller), body);
    }
    if !report.gaps.is_empty() {
        out.push_str("Not examined:\n");
        for g in &report.gaps {
            let _ = writeln!(out, "- {}: {}", text(&g.source), text(&g.reason));
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
        assert_eq!(cell("[x](javascript:alert(1)) <img src=x>"), "\\[x\\](javascript:alert(1)) &lt;img src=x&gt;");
        assert_eq!(text("<!-- x\n#### 0. `all-clear`"), "&lt;\\!-- x<br>#### 0. \\`all-clear\\`");
        assert_eq!(code_span("^(jason)$\n\n#### 0. `x`"), "^(jason)$  #### 0. 'x'");
        assert_eq!(fence("x ``` y"), "````");
    }
}
