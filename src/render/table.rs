//! Terminal output: a findings table (comfy-table) followed by details, diff and gaps.

use super::{clean, truncate, verdict};
use crate::diagnose::{Report, Severity};
use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use std::fmt::Write;

/// Most characters of a table cell (a few wrapped lines at the table's width).
const MAX_CELL: usize = 400;

/// Renders the report for a terminal; `color` adds ANSI colour.
pub fn render(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let t = &report.target;
    // A mesh-wide report has no ports: its target is a scope.
    let ports = if t.ports.is_empty() { String::new() } else { format!(" ({})", t.ports.join(", ")) };
    let _ = writeln!(out, "mesh-why: {}{ports}", clean(&t.host));
    let _ = writeln!(out, "verdict: {}", verdict(report));
    for p in &report.proxies {
        let version = p.istio_version.as_deref().map(|v| format!(", Istio {v}")).unwrap_or_default();
        let read = if p.proxy_read { ", proxy read" } else { ", objects only" };
        let kind = if p.sidecar || p.kind != "sidecar" { p.kind } else { "no sidecar" };
        let _ = writeln!(out, "caller: {} ({kind}{version}{read})", clean(&p.caller));
        if !p.path.is_empty() {
            let _ = writeln!(out, "  path: {}", clean(&p.path.join(" → ")));
        }
    }
    for n in &report.notes {
        let _ = writeln!(out, "note: {}", clean(n));
    }
    if !report.findings.is_empty() {
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_width(120);
        if color {
            table.enforce_styling();
        } else {
            table.force_no_tty();
        }
        table.set_header(["#", "severity", "finding", "subject", "summary"]);
        for (i, f) in report.findings.iter().enumerate() {
            let mut sev = Cell::new(f.severity);
            if color {
                sev = sev.fg(match f.severity {
                    Severity::Error => Color::Red,
                    Severity::Warning => Color::Yellow,
                    Severity::Info => Color::Cyan,
                });
            }
            // Wrapping costs more than linear time in a cell's length: cells are cut, and the
            // full text follows in the details.
            let (subject, summary) = (truncate(&clean(&f.subject.to_string()), MAX_CELL), truncate(&clean(&f.summary), MAX_CELL));
            table.add_row(vec![Cell::new(i + 1), sev, Cell::new(f.id), Cell::new(subject), Cell::new(summary)]);
        }
        let _ = writeln!(out, "{table}");
        for (i, f) in report.findings.iter().enumerate() {
            let code = f.codes().map(|c| format!(" [{c}]")).unwrap_or_default();
            let _ = writeln!(out, "\n{}. {}{code}: {}", i + 1, f.id, clean(&f.summary));
            let _ = writeln!(out, "   why: {}", clean(&f.detail));
            for e in &f.evidence {
                let _ = writeln!(out, "   evidence: {}", clean(e));
            }
            if !f.callers.is_empty() {
                let _ = writeln!(out, "   callers: {}", clean(&f.callers.join(", ")));
            }
            let _ = writeln!(out, "   fix: {}", clean(&f.fix).replace('\n', "\n        "));
            let _ = writeln!(out, "   see: {}", f.docs);
        }
    }
    for d in &report.diff {
        if !d.diff.text.is_empty() {
            let _ = writeln!(out, "\nintent vs proxy for {}:\n{}", clean(&d.caller), clean(&d.diff.text));
        }
    }
    if !report.gaps.is_empty() {
        let _ = writeln!(out, "\nnot examined:");
        for g in &report.gaps {
            let _ = writeln!(out, "  - {}: {}", clean(&g.source), clean(&g.reason));
        }
    }
    out
}
