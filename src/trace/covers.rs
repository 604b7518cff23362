//! When one Envoy route match takes every request another would: the relation behind "this rule
//! can never be reached", judged with the same matching rules the trace walks requests with
//! (`walk::route_matches`), so a check and a trace never disagree about which route wins.
//!
//! The relation is sound, not complete: `covers` answers true only when it can show every
//! request the later match takes is taken by the earlier one (a regex is compared only with an
//! identical regex or with a literal it fully matches). A false alarm costs more than silence.

use super::walk::full_match;
use crate::envoy::types::{HeaderMatcher, RouteMatch, StringMatcher};
use serde_json::Value;

/// The values one condition accepts.
#[derive(Debug, Clone, PartialEq)]
enum Text {
    /// Any value.
    Any,
    /// Equal to the string (`fold`: ASCII case ignored).
    Exact(String, bool),
    /// Starting with it.
    Prefix(String, bool),
    /// Ending with it.
    Suffix(String, bool),
    /// Containing it.
    Contains(String, bool),
    /// Fully matched by the RE2 pattern.
    Regex(String),
}

/// What one header or query condition accepts: absence, or a present value (`negated`: any value
/// the text does not accept).
#[derive(Debug, Clone, PartialEq)]
enum Presence {
    Absent,
    Present(Text, bool),
}

/// True when every request `later` takes, `earlier` takes too.
pub fn covers(earlier: &RouteMatch, later: &RouteMatch) -> bool {
    let (Some(a), Some(b)) = (path(earlier), path(later)) else { return false };
    b.iter().all(|piece| a.iter().any(|whole| text_within(piece, whole)))
        && earlier.headers.iter().all(|ha| {
            let want = header(ha);
            later.headers.iter().any(|hb| same_header(&ha.name, &hb.name) && presence_within(&header(hb), &want))
        })
        && earlier.query_parameters.iter().all(|qa| {
            let want = query(qa);
            later.query_parameters.iter().any(|qb| qb.get("name") == qa.get("name") && presence_within(&query(qb), &want))
        })
}

/// The path condition as a union of text conditions; none when the walk never matches it.
fn path(m: &RouteMatch) -> Option<Vec<Text>> {
    let fold = m.case_sensitive == Some(false);
    if let Some(p) = &m.prefix {
        Some(vec![Text::Prefix(p.clone(), fold)])
    } else if let Some(p) = &m.path {
        Some(vec![Text::Exact(p.clone(), fold)])
    } else if let Some(p) = &m.path_separated_prefix {
        Some(vec![Text::Exact(p.clone(), fold), Text::Prefix(format!("{p}/"), fold)])
    } else {
        m.safe_regex.as_ref().map(|r| r.regex.clone()).or_else(|| m.regex.clone()).map(|r| vec![Text::Regex(r)])
    }
}

fn same_header(a: &str, b: &str) -> bool {
    let canonical = |n: &str| if n.eq_ignore_ascii_case("host") { ":authority".to_string() } else { n.to_ascii_lowercase() };
    canonical(a) == canonical(b)
}

/// A header matcher as the walk reads it (`walk::header_matches`).
fn header(h: &HeaderMatcher) -> Presence {
    let invert = h.invert_match.unwrap_or(false);
    if let Some(present) = h.present_match {
        return if present != invert { Presence::Present(Text::Any, false) } else { Presence::Absent };
    }
    let text = if let Some(sm) = &h.string_match {
        string(sm)
    } else if let Some(e) = &h.exact_match {
        Text::Exact(e.clone(), false)
    } else if let Some(p) = &h.prefix_match {
        Text::Prefix(p.clone(), false)
    } else if let Some(r) = h.safe_regex_match.as_ref().map(|r| r.regex.clone()).or_else(|| h.regex_match.clone()) {
        Text::Regex(r)
    } else {
        Text::Any
    };
    Presence::Present(text, invert)
}

/// A query parameter matcher as the walk reads it: the parameter must be there.
fn query(q: &Value) -> Presence {
    let sm = q.get("string_match").or_else(|| q.get("stringMatch")).and_then(|v| serde_json::from_value::<StringMatcher>(v.clone()).ok());
    let present = q.get("present_match").or_else(|| q.get("presentMatch")).and_then(Value::as_bool) == Some(true);
    Presence::Present(sm.filter(|_| !present).map(|sm| string(&sm)).unwrap_or(Text::Any), false)
}

fn string(sm: &StringMatcher) -> Text {
    let fold = sm.ignore_case;
    match (&sm.exact, &sm.prefix, &sm.suffix, &sm.contains, &sm.safe_regex) {
        (Some(e), ..) => Text::Exact(e.clone(), fold),
        (_, Some(p), ..) => Text::Prefix(p.clone(), fold),
        (_, _, Some(s), ..) => Text::Suffix(s.clone(), fold),
        (_, _, _, Some(c), _) => Text::Contains(c.clone(), fold),
        (.., Some(r)) => Text::Regex(r.regex.clone()),
        _ => Text::Any,
    }
}

/// True when every value condition `b` accepts, `a` accepts.
fn presence_within(b: &Presence, a: &Presence) -> bool {
    match (b, a) {
        (Presence::Absent, Presence::Absent) => true,
        (Presence::Present(..), Presence::Present(Text::Any, false)) => true,
        (Presence::Present(tb, false), Presence::Present(ta, false)) => text_within(tb, ta),
        // A negated condition is covered only by the same one.
        (Presence::Present(tb, true), Presence::Present(ta, true)) => tb == ta,
        _ => false,
    }
}

/// True when every value `b` accepts, `a` accepts.
fn text_within(b: &Text, a: &Text) -> bool {
    if a == b || *a == Text::Any {
        return true;
    }
    let (value, b_fold) = match b {
        Text::Any | Text::Regex(_) => return false,
        Text::Exact(v, f) | Text::Prefix(v, f) | Text::Suffix(v, f) | Text::Contains(v, f) => (v, *f),
    };
    let a_fold = match a {
        Text::Exact(_, f) | Text::Prefix(_, f) | Text::Suffix(_, f) | Text::Contains(_, f) => *f,
        Text::Any | Text::Regex(_) => false,
    };
    // `b` ignoring case accepts every casing of its letters; `a` must too.
    if b_fold && !a_fold && value.bytes().any(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    let fold = |s: &str| if a_fold { s.to_ascii_lowercase() } else { s.to_string() };
    let v = fold(value);
    match (b, a) {
        (Text::Exact(..), Text::Exact(e, _)) => v == fold(e),
        (Text::Exact(..) | Text::Prefix(..), Text::Prefix(p, _)) => v.starts_with(&fold(p)),
        (Text::Exact(..) | Text::Suffix(..), Text::Suffix(s, _)) => v.ends_with(&fold(s)),
        (_, Text::Contains(c, _)) => v.contains(&fold(c)),
        (Text::Exact(..), Text::Regex(r)) => full_match(r, value),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::types::RegexMatcher;
    use crate::trace::Request;
    use crate::trace::walk::route_matches;

    fn path_matches() -> Vec<RouteMatch> {
        let mut out = Vec::new();
        for value in ["/", "/a", "/a/", "/A", "/ab", "/a/b", "/b"] {
            for fold in [None, Some(false)] {
                let m = RouteMatch { case_sensitive: fold, ..RouteMatch::default() };
                out.push(RouteMatch { prefix: Some(value.into()), ..m.clone() });
                out.push(RouteMatch { path: Some(value.into()), ..m.clone() });
                out.push(RouteMatch { path_separated_prefix: Some(value.into()), ..m });
            }
        }
        out.push(RouteMatch { safe_regex: Some(RegexMatcher { regex: "/a.*".into() }), ..RouteMatch::default() });
        out
    }

    fn header_conditions() -> Vec<HeaderMatcher> {
        let mut out = vec![HeaderMatcher { name: "x".into(), ..HeaderMatcher::default() }];
        for present in [true, false] {
            out.push(HeaderMatcher { name: "x".into(), present_match: Some(present), ..HeaderMatcher::default() });
        }
        for value in ["v", "va", "V"] {
            for ignore_case in [false, true] {
                for sm in [
                    StringMatcher { exact: Some(value.into()), ignore_case, ..StringMatcher::default() },
                    StringMatcher { prefix: Some(value.into()), ignore_case, ..StringMatcher::default() },
                    StringMatcher { suffix: Some(value.into()), ignore_case, ..StringMatcher::default() },
                    StringMatcher { contains: Some(value.into()), ignore_case, ..StringMatcher::default() },
                ] {
                    out.push(HeaderMatcher { name: "x".into(), string_match: Some(sm), ..HeaderMatcher::default() });
                }
            }
        }
        out.push(HeaderMatcher { name: "x".into(), safe_regex_match: Some(RegexMatcher { regex: "v.*".into() }), ..HeaderMatcher::default() });
        let inverted: Vec<_> = out.iter().map(|h| HeaderMatcher { invert_match: Some(true), ..h.clone() }).collect();
        out.extend(inverted);
        out
    }

    fn requests() -> Vec<Request> {
        let mut out = Vec::new();
        for path in ["/", "/a", "/a/", "/A", "/ab", "/Ab", "/a/b", "/A/b", "/b", "/a?q=v"] {
            for header in [None, Some(""), Some("v"), Some("va"), Some("V"), Some("xv"), Some("Va")] {
                let mut r = Request::http("10.0.0.1", 80);
                r.path = path.into();
                r.headers = header.map(|v| vec![("x".to_string(), v.to_string())]).unwrap_or_default();
                out.push(r);
            }
        }
        out
    }

    /// Soundness: whenever `covers` says so, no request matched by the later match escapes the
    /// earlier one, over every pair drawn from a grid of paths, headers and cases.
    #[test]
    fn covers_never_claims_what_a_request_disproves() {
        let requests = requests();
        let mut matches = path_matches();
        let prefix = RouteMatch { prefix: Some("/".into()), ..RouteMatch::default() };
        matches.extend(header_conditions().into_iter().map(|h| RouteMatch { headers: vec![h], ..prefix.clone() }));
        let mut claimed = 0;
        for a in &matches {
            for b in &matches {
                if !covers(a, b) {
                    continue;
                }
                claimed += 1;
                if let Some(r) = requests.iter().find(|r| route_matches(b, r) && !route_matches(a, r)) {
                    panic!("covers({a:?}, {b:?}) but {} with {:?} escapes", r.path, r.headers);
                }
            }
        }
        assert!(claimed > 300, "the relation proves too little to be useful: {claimed} pairs");
    }

    #[test]
    fn a_prefix_covers_the_exact_paths_and_headers_under_it() {
        let api = RouteMatch { prefix: Some("/api".into()), ..RouteMatch::default() };
        let exact = RouteMatch { path: Some("/api/v1".into()), ..RouteMatch::default() };
        let jason = HeaderMatcher {
            name: "end-user".into(),
            string_match: Some(StringMatcher { exact: Some("jason".into()), ..StringMatcher::default() }),
            ..HeaderMatcher::default()
        };
        assert!(covers(&api, &exact));
        assert!(!covers(&exact, &api));
        // A header condition narrows: the earlier match takes only some of the later one's.
        assert!(!covers(&RouteMatch { headers: vec![jason.clone()], ..api.clone() }, &exact));
        assert!(covers(&api, &RouteMatch { headers: vec![jason], ..exact }));
        // Case: a case-sensitive prefix does not take `/API/...`.
        assert!(!covers(&api, &RouteMatch { prefix: Some("/api/v1".into()), case_sensitive: Some(false), ..RouteMatch::default() }));
    }
}
