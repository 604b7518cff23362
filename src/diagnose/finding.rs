//! Findings: one cause each, with evidence and a fix, and the order they are shown in.

use crate::snapshot::ObjectRef;
use serde::Serialize;
use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Traffic is (or will be) failing or misrouted.
    Error,
    /// Likely to misroute under some conditions, or the evidence is partial.
    Warning,
    /// Worth knowing; no misrouting by itself.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A diagnosed cause.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable id from the findings catalogue.
    pub id: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The matching `istioctl analyze` code, when it has the same check.
    pub istio_code: Option<&'static str>,
    /// Further analyze codes for this same cause, where analyze splits it into several messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_istio_codes: Vec<&'static str>,
    /// The object the problem is about.
    pub subject: ObjectRef,
    /// The cause in one sentence.
    pub summary: String,
    /// Why, in a few sentences.
    pub detail: String,
    /// Object fields and Envoy resources that show it.
    pub evidence: Vec<String>,
    /// What to change.
    pub fix: String,
    /// Callers affected (`namespace/pod`).
    pub callers: Vec<String>,
    /// Absolute link to the catalogue entry at this release.
    pub docs: String,
}

impl Finding {
    /// A new finding; callers, evidence and detail are added by the builder methods.
    pub fn new(id: &'static str, severity: Severity, subject: ObjectRef, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            severity,
            istio_code: None,
            also_istio_codes: Vec::new(),
            subject,
            summary: summary.into(),
            detail: String::new(),
            evidence: Vec::new(),
            fix: String::new(),
            callers: Vec::new(),
            docs: crate::version::finding_url(id),
        }
    }

    /// Sets the istioctl analyze code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.istio_code = Some(code);
        self
    }

    /// Adds an analyze code that reports this same cause as a second message.
    pub fn also_code(mut self, code: &'static str) -> Self {
        self.also_istio_codes.push(code);
        self
    }

    /// The analyze codes as shown to users: `IST0130, IST0131`.
    pub fn codes(&self) -> Option<String> {
        let first = self.istio_code?;
        Some(std::iter::once(first).chain(self.also_istio_codes.iter().copied()).collect::<Vec<_>>().join(", "))
    }

    /// Sets the explanation.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Adds evidence lines.
    pub fn evidence(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(lines);
        self
    }

    /// Sets the fix.
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    /// Records an affected caller.
    pub fn caller(mut self, caller: impl Into<String>) -> Self {
        self.callers.push(caller.into());
        self
    }
}

/// Order in which ids best explain "traffic does not land where I expect": causes that make
/// every rule moot first, then causes that fail requests, then drift and partial gaps.
const EXPLANATORY_ORDER: &[&str] = &[
    "caller-without-sidecar",
    "namespace-not-injected",
    "namespace-injection-conflict",
    "vs-gateway-only",
    "vs-host-mismatch",
    "vs-not-visible",
    "sidecar-selects-no-pod",
    "sidecar-selector-conflict",
    "sidecar-namespace-conflict",
    "l7-rule-without-waypoint",
    "waypoint-not-bound",
    "waypoint-for-excludes-service",
    "vs-ignored-by-waypoint",
    "waypoint-source-labels-dropped",
    "ingress-bypasses-waypoint",
    "ztunnel-waypoint-stale",
    "route-not-accepted",
    "route-parent-port-mismatch",
    "vs-conflict",
    "vs-httproute-conflict",
    "port-not-http",
    "external-name-port-protocol",
    "deployment-service-protocol-conflict",
    "deployment-service-target-port-conflict",
    "gateway-ignores-mesh-rules",
    "dr-shadowed",
    "subset-not-declared",
    "host-not-found",
    "destination-port-missing",
    "destination-port-pinned",
    "route-backend-unresolved",
    "route-zero-weight",
    "jwt-claim-route-unauthenticated",
    "gateway-not-found",
    "gateway-credential-missing",
    "gateway-credential-invalid",
    "gateway-host-not-served",
    "gateway-host-unrouted",
    "gateway-conflict",
    "gateway-internal-reference",
    "gateway-port-not-exposed",
    "gateway-duplicate-certificate",
    "dr-conflict",
    "subset-no-endpoints",
    "mtls-conflict",
    "proxy-stale",
    "route-status-stale",
    "endpoints-stale",
    "endpoints-unhealthy",
    "circuit-breaker-open",
    "passthrough-fallback",
    "split-skew",
    "consistent-hash-with-weights",
    "no-route-match",
    "unreachable-rule",
    "weights-managed-externally",
    "tls-origination-unverified",
    "service-entry-protocol-conflict",
    "service-entry-address-required",
    "sidecar-no-effect-ambient",
    "sidecar-bypasses-waypoint",
    "namespace-injected-by-default",
];

/// Merges findings of the same cause reported for several callers, then ranks them:
/// severity, explanatory order, then how many callers are affected.
pub fn merge_and_rank(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::new();
    for f in findings {
        match merged.iter_mut().find(|m| m.id == f.id && m.subject == f.subject && m.summary == f.summary) {
            Some(m) => {
                // The same cause seen from several callers: keep its worst severity.
                m.severity = m.severity.min(f.severity);
                for c in f.callers {
                    if !m.callers.contains(&c) {
                        m.callers.push(c);
                    }
                }
                for e in f.evidence {
                    if !m.evidence.contains(&e) {
                        m.evidence.push(e);
                    }
                }
            }
            None => merged.push(f),
        }
    }
    let rank = |id: &str| EXPLANATORY_ORDER.iter().position(|x| *x == id).unwrap_or(EXPLANATORY_ORDER.len());
    merged.sort_by(|a, b| {
        (a.severity, rank(a.id), std::cmp::Reverse(a.callers.len()), &a.subject).cmp(&(b.severity, rank(b.id), std::cmp::Reverse(b.callers.len()), &b.subject))
    });
    merged
}

#[cfg(test)]
mod tests {
    use super::EXPLANATORY_ORDER;
    use std::path::Path;

    /// Every id the rules may emit is ranked, documented where the output links, and shown
    /// failing by a scenario; so no id can be added without its entry and its proof.
    #[test]
    fn every_id_has_its_docs_entry_and_a_failing_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let docs = std::fs::read_to_string(root.join("docs/findings.md")).unwrap();
        let mut expected = String::new();
        for entry in std::fs::read_dir(root.join("testdata/scenarios")).unwrap() {
            expected += &std::fs::read_to_string(entry.unwrap().path().join("expected.json")).unwrap_or_default();
        }
        let rules =
            std::fs::read_dir(root.join("src/diagnose/rules")).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect::<String>();
        for id in EXPLANATORY_ORDER {
            assert!(docs.contains(&format!("## `{id}`")), "docs/findings.md has no entry for {id}");
            assert!(expected.contains(&format!("\"{id}\"")), "no scenario expects {id}");
        }
        for emitted in rules.split("Finding::new(").skip(1) {
            let id = emitted.trim_start().trim_start_matches('"').split('"').next().unwrap();
            if id.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                assert!(EXPLANATORY_ORDER.contains(&id), "{id} is emitted but not ranked");
            }
        }
    }
}
