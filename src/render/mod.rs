//! Render: the report as a terminal table, Markdown for an incident ticket, or JSON.
//!
//! Strings that come from the cluster (names, regexes, labels) are stripped of control and
//! invisible format characters before they reach a terminal, a ticket or an error line, so a
//! crafted object cannot drive the terminal or disguise text (bidi overrides); Markdown escapes
//! them for the context they land in, and JSON writes those characters as `\u` escapes.

pub mod json;
pub mod markdown;
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

/// Removes control characters (C0, DEL, C1; keeping newlines) and invisible format characters
/// (bidi overrides and isolates, zero-width characters), so cluster data can neither drive the
/// terminal nor show text other than what it holds. Tabs and line separators become spaces.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, '\t' | '\u{2028}' | '\u{2029}') { ' ' } else { c })
        .filter(|c| *c == '\n' || !(c.is_control() || is_invisible(*c)))
        .collect()
}

/// Unicode format characters that change how text around them is shown without showing
/// themselves: bidi marks, embeddings, overrides and isolates, zero-width characters, BOM.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// At most `max` characters of `s`, with an ellipsis when cut: table cells stay cheap to lay
/// out whatever a name holds (the full text is in the details below the table).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// The one-line answer: the top finding, or what traffic does when nothing is wrong.
pub fn verdict(report: &Report) -> String {
    match report.findings.first() {
        Some(f) => clean(&format!("{}: {}", f.severity, f.summary)),
        None => {
            let ports = if report.expected.is_empty() { String::new() } else { format!(" ({})", report.expected.join("; ")) };
            // Silence about what was not looked at is false comfort: the verdict names it.
            let mut unexamined = report.not_examined.clone();
            if !report.proxies.iter().any(|p| p.proxy_read) {
                unexamined.push("no proxy's Envoy was read (data-plane checks skipped)".into());
            }
            let scope = if unexamined.is_empty() { String::new() } else { " in what was examined".into() };
            let rest = if unexamined.is_empty() { String::new() } else { format!("; not examined: {}", unexamined.join(", ")) };
            clean(&format!("no problem found{scope}: traffic for {} should land as configured{ports}{rest}", report.target.host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{clean, truncate};

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(clean("a\u{1b}[31mb\tc\nd\u{7}"), "a[31mb c\nd");
    }

    #[test]
    fn c1_controls_del_and_invisible_format_characters_are_removed() {
        assert_eq!(clean("evil\u{202e}gnp.exe\u{2066}x\u{2069}\u{200b}y\u{85}\u{9b}z\u{7f}"), "evilgnp.exexyz");
        assert_eq!(clean("a\u{2028}b"), "a b");
        assert_eq!(clean("Zürich 東京"), "Zürich 東京", "letters of any script stay");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("東京都", 2), "東京…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
