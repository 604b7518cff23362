//! Render: the report as a terminal table, Markdown for an incident ticket, or JSON.
//!
//! Strings that come from the cluster (names, regexes, labels) are stripped of control
//! characters before they reach a terminal or a ticket, so a crafted object cannot inject
//! escape sequences, and Markdown table cells are escaped so a `|` in a regex cannot break them.

pub mod json;
mod markdown;
mod table;

use crate::diagnose::Report;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Terminal table.
    Table,
    /// Markdown for an incident ticket.
    Markdown,
    /// Machine-readable JSON (`mesh-why/v1`).
    Json,
}

/// Renders `report`; `color` enables ANSI colour in the table.
pub fn render(report: &Report, format: Format, color: bool) -> String {
    match format {
        Format::Table => table::render(report, color),
        Format::Markdown => markdown::render(report),
        Format::Json => json::render(report),
    }
}

/// Removes control characters (keeping newlines), so cluster data cannot drive the terminal.
pub fn clean(s: &str) -> String {
    s.chars().map(|c| if c == '\t' { ' ' } else { c }).filter(|c| !c.is_control() || *c == '\n').collect()
}

/// The one-line answer: the top finding, or what traffic does when nothing is wrong.
pub fn verdict(report: &Report) -> String {
    match report.findings.first() {
        Some(f) => clean(&format!("{}: {}", f.severity, f.summary)),
        None => {
            let ports = if report.expected.is_empty() { String::new() } else { format!(" ({})", report.expected.join("; ")) };
            clean(&format!("no problem found: traffic for {} should land as configured{ports}", report.target.host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(clean("a\u{1b}[31mb\tc\nd\u{7}"), "a[31mb c\nd");
    }
}
