//! The request walker: Envoy's matching rules applied to one proxy's configuration.
//!
//! Listener: exact `address:port`, then `0.0.0.0:port`, then `virtualOutbound` (original
//! destination hand-off); inbound capture enters `virtualInbound`. Filter chain: Envoy's sieve
//! (destination port, longest destination prefix, exact then longest wildcard server name,
//! transport protocol, application protocols), else the default chain. Virtual host: exact
//! domain, longest `*suffix`, longest `prefix*`, `*`. Route: the first whose path (query
//! stripped), headers and query parameters match.

use super::{Action, EndpointHealth, ProxyConfig, Request, Security, Share, Step, Stop, Walk};
use crate::envoy::listener::{ChainMatcher, FilterChain, ListenerDetail, NetworkFilter, OnMatch, RouteConfiguration};
use crate::envoy::types::{HeaderMatcher, Route, RouteMatch, StringMatcher, VirtualHost};
use serde_json::Value;
use std::net::IpAddr;

/// Walks `req` through `config`.
pub fn walk(config: &ProxyConfig, req: &Request) -> Walk {
    let mut w = Walk::default();
    let Some((name, listener)) = match_listener(config, req, &mut w.steps) else {
        return stop(w, Stop::NoListener);
    };
    w.listener = Some(name.clone());
    let tls_inspector = listener.runs_filter("tls_inspector", req.port);
    // Without the TLS inspector Envoy never reads SNI or ALPN; the HTTP inspector sets the
    // ALPN of plaintext HTTP.
    let mut alpn = if tls_inspector { req.alpn.clone() } else { None };
    let sni = if tls_inspector && req.security != Security::Plaintext { req.sni.clone() } else { None };
    if listener.runs_filter("http_inspector", req.port) && req.security == Security::Plaintext {
        alpn = match req.protocol {
            super::Protocol::Http => Some("http/1.1".into()),
            super::Protocol::Http2 | super::Protocol::Grpc => Some("h2c".into()),
            _ => alpn,
        };
    }
    let chain = match match_filter_chain(listener, req, tls_inspector, sni.as_deref(), alpn.as_deref()) {
        Ok((chain, why)) => {
            w.steps.push(Step { stage: "filter_chain", chosen: chain.name.clone(), why });
            chain
        }
        Err((stop_at, why)) => {
            w.steps.push(Step { stage: "filter_chain", chosen: String::new(), why });
            return stop(w, stop_at);
        }
    };
    w.filter_chain = Some(chain.name.clone());
    if let Some(tls) = &chain.tls {
        if req.security == Security::Plaintext {
            return stop(w, Stop::TlsError);
        }
        let wants_mtls = tls.istio_mtls && tls.require_client_certificate;
        if wants_mtls != (req.security == Security::Mtls) {
            return stop(w, Stop::MtlsError);
        }
    }
    match &chain.network {
        NetworkFilter::Http { rds, inline } => {
            if (req.security != Security::Plaintext && chain.tls.is_none()) || !req.protocol.is_http() {
                w.steps.push(Step {
                    stage: "network_filter",
                    chosen: "http_connection_manager".into(),
                    why: "the chain decodes HTTP but the bytes are not plaintext HTTP".into(),
                });
                return stop(w, Stop::ProtocolError);
            }
            let rc: Option<&RouteConfiguration> = match (inline, rds) {
                (Some(rc), _) => Some(rc),
                (None, Some(name)) => {
                    w.route_config = Some(name.clone());
                    config.route_configs.iter().find(|rc| rc.name == *name)
                }
                (None, None) => None,
            };
            let rc_name = rds.clone().unwrap_or_else(|| inline.as_ref().map(|r| r.name.clone()).unwrap_or_default());
            let Some(rc) = rc else {
                w.steps.push(Step {
                    stage: "route_config",
                    chosen: rc_name.clone(),
                    why: format!("route configuration {rc_name} is not in the configuration"),
                });
                return stop(w, Stop::NoVirtualHost);
            };
            w.steps.push(Step {
                stage: "route_config",
                chosen: rc_name,
                why: if inline.is_some() {
                    "inline in the HTTP connection manager".into()
                } else {
                    "rds.route_config_name of the HTTP connection manager".into()
                },
            });
            let host = req.host.clone().unwrap_or_default().to_ascii_lowercase();
            let Some((vh, why)) = match_virtual_host(rc, &host) else {
                w.steps.push(Step {
                    stage: "virtual_host",
                    chosen: String::new(),
                    why: format!("no domain of the {} virtual hosts matches `{host}`", rc.virtual_hosts.len()),
                });
                return stop(w, Stop::NoVirtualHost);
            };
            w.virtual_host = Some(vh.name.clone());
            w.steps.push(Step { stage: "virtual_host", chosen: vh.name.clone(), why });
            if vh.require_tls.as_deref() == Some("ALL") && req.security == Security::Plaintext {
                return stop(w, Stop::TlsRedirect);
            }
            let Some((index, route)) = vh.routes.iter().enumerate().find(|(_, r)| route_matches(&r.matcher, req)) else {
                w.steps.push(Step {
                    stage: "route",
                    chosen: String::new(),
                    why: format!("none of the {} routes matches {} {}", vh.routes.len(), req.method, req.path),
                });
                return stop(w, Stop::NoRoute);
            };
            let name = route.name.clone().unwrap_or_default();
            w.route = Some(name.clone());
            w.steps.push(Step {
                stage: "route",
                chosen: name,
                why: format!("routes[{index}] is the first whose match holds: {}", describe_match(&route.matcher)),
            });
            let action = route_action(route);
            if let Some(Action::Forward { clusters, .. }) = &action
                && let [Share { cluster, .. }] = clusters.as_slice()
                && route.route.as_ref().is_some_and(|a| a.cluster.is_some())
            {
                w.cluster = Some(cluster.clone());
            }
            w.action = action;
        }
        NetworkFilter::Tcp { cluster, weighted } => {
            w.cluster = cluster.clone();
            let clusters = match cluster {
                Some(c) => vec![Share { cluster: c.clone(), percent: 100.0 }],
                None => shares(weighted),
            };
            w.steps.push(Step { stage: "network_filter", chosen: "tcp_proxy".into(), why: "the chain ends in a tcp_proxy".into() });
            w.action = Some(Action::Tcp { clusters });
        }
        NetworkFilter::Other => {
            w.steps.push(Step {
                stage: "network_filter",
                chosen: String::new(),
                why: "the chain has neither an HTTP connection manager nor a tcp_proxy".into(),
            });
        }
    }
    finish(config, w)
}

fn stop(mut w: Walk, at: Stop) -> Walk {
    w.error = Some(at);
    w.outcome = at.meaning().into();
    w
}

/// Names the upstream(s) and what meets the request there (missing cluster, no healthy endpoint).
fn finish(config: &ProxyConfig, mut w: Walk) -> Walk {
    let clusters: Vec<Share> = match &w.action {
        Some(Action::Forward { clusters, .. }) | Some(Action::Tcp { clusters }) => clusters.clone(),
        Some(Action::Redirect) => {
            w.outcome = "redirect (3xx) from the route".into();
            return w;
        }
        Some(Action::DirectResponse { status }) => {
            w.outcome = format!("direct response {status} from the route");
            return w;
        }
        None => {
            w.outcome = "the connection ends at a filter chain without a known network filter".into();
            return w;
        }
    };
    let mut outcomes = Vec::new();
    for Share { cluster, percent: share } in &clusters {
        w.steps.push(Step {
            stage: "cluster",
            chosen: cluster.clone(),
            why: if clusters.len() > 1 { format!("weighted cluster, {share}% of requests") } else { "the action's cluster".into() },
        });
        let known = config.clusters.as_ref().map(|names| names.iter().any(|n| n == cluster));
        let what = match cluster.as_str() {
            "PassthroughCluster" | "InboundPassthroughCluster" | "AllowAnyDynamicDNSCluster" => format!("{cluster}: forwarded to the original destination"),
            "BlackHoleCluster" => "BlackHoleCluster: the connection is dropped (502 for HTTP)".into(),
            _ if known == Some(false) => format!("503 NC: cluster {cluster} is not in the configuration"),
            _ => match config.endpoints.get(cluster) {
                Some((0, 0)) => format!("503 UH: cluster {cluster} has no endpoints"),
                Some((0, total)) => format!("503 UH: none of the {total} endpoints of {cluster} is healthy"),
                Some((healthy, total)) => {
                    w.endpoints.push(EndpointHealth { cluster: cluster.clone(), healthy: *healthy, total: *total });
                    format!("upstream {cluster} ({healthy}/{total} endpoints healthy)")
                }
                None => format!("upstream {cluster}"),
            },
        };
        if let Some((healthy, total)) = config.endpoints.get(cluster)
            && *healthy == 0
        {
            w.endpoints.push(EndpointHealth { cluster: cluster.clone(), healthy: 0, total: *total });
        }
        outcomes.push(if clusters.len() > 1 { format!("{share}%: {what}") } else { what });
    }
    w.outcome = outcomes.join("; ");
    w
}

fn route_action(route: &Route) -> Option<Action> {
    if route.redirect.is_some() {
        return Some(Action::Redirect);
    }
    if let Some(d) = &route.direct_response {
        return Some(Action::DirectResponse { status: d.status });
    }
    let action = route.route.as_ref()?;
    let clusters = match (&action.cluster, &action.weighted_clusters) {
        (Some(c), _) => vec![Share { cluster: c.clone(), percent: 100.0 }],
        (None, Some(wc)) => shares(&wc.clusters.iter().map(|c| (c.name.clone(), c.weight.unwrap_or(0))).collect::<Vec<_>>()),
        (None, None) => Vec::new(),
    };
    let fault = route.typed_per_filter_config.as_ref().is_some_and(|m| m.keys().any(|k| k.ends_with("fault")));
    Some(Action::Forward { clusters, timeout: action.timeout.clone(), retries: action.retry_policy.as_ref().and_then(|r| r.num_retries), fault })
}

/// Weights to percentages with one decimal.
fn shares(weighted: &[(String, u64)]) -> Vec<Share> {
    // Summed wide: weights come from the config dump and may be anything a u64 holds.
    let total: u128 = weighted.iter().map(|(_, w)| u128::from(*w)).sum();
    weighted
        .iter()
        .map(|(n, w)| Share { cluster: n.clone(), percent: if total == 0 { 0.0 } else { (*w as f64 * 1000.0 / total as f64).round() / 10.0 } })
        .collect()
}

fn match_listener<'c>(config: &'c ProxyConfig, req: &Request, steps: &mut Vec<Step>) -> Option<&'c (String, ListenerDetail)> {
    let by_name = |n: &str| config.listeners.iter().find(|(name, _)| name == n);
    if req.inbound {
        let found = by_name("virtualInbound").or_else(|| config.listeners.iter().find(|(_, l)| l.port == 15006 && l.use_original_dst));
        let why =
            if found.is_some() { "inbound capture redirects the connection to port 15006".into() } else { "the proxy has no virtualInbound listener".into() };
        steps.push(Step { stage: "listener", chosen: found.map(|(n, _)| n.clone()).unwrap_or_default(), why });
        return found;
    }
    let exact = config.listeners.iter().find(|(_, l)| l.port == req.port && l.address == req.address);
    let wildcard = || config.listeners.iter().find(|(_, l)| l.port == req.port && (l.address == "0.0.0.0" || l.address == "::"));
    let outbound = || by_name("virtualOutbound").or_else(|| config.listeners.iter().find(|(_, l)| l.port == 15001 && l.use_original_dst));
    let (found, why) = if let Some(l) = exact {
        (Some(l), format!("bound to {}:{}", req.address, req.port))
    } else if let Some(l) = wildcard() {
        (Some(l), format!("no listener on {}:{}; the wildcard 0.0.0.0:{} listener takes it", req.address, req.port, req.port))
    } else if let Some(l) = outbound() {
        (Some(l), format!("no listener for port {}: virtualOutbound (original destination) takes it", req.port))
    } else if let Some(l) = by_name("main_internal").filter(|(_, l)| l.internal) {
        (Some(l), "a waypoint: its HBONE listener hands the tunnelled connection to the internal listener main_internal".into())
    } else {
        (None, format!("no listener on {}:{} or 0.0.0.0:{}, and no virtualOutbound", req.address, req.port, req.port))
    };
    steps.push(Step { stage: "listener", chosen: found.map(|(n, _)| n.clone()).unwrap_or_default(), why });
    found
}

/// Envoy's filter chain sieve; each level keeps the best-ranked chains that set the field, or,
/// when none matches, the chains that leave it empty.
fn match_filter_chain<'l>(
    listener: &'l ListenerDetail,
    req: &Request,
    tls_inspector: bool,
    sni: Option<&str>,
    alpn: Option<&str>,
) -> Result<(&'l FilterChain, String), (Stop, String)> {
    if let Some(matcher) = &listener.chain_matcher {
        let mut path = Vec::new();
        let name = resolve(matcher, req, alpn, &mut path);
        let how = path.join(" → ");
        return match name.and_then(|n| listener.filter_chains.iter().find(|c| c.name == n)) {
            Some(chain) => Ok((chain, format!("filter_chain_matcher: {how}"))),
            None => Err((Stop::NoFilterChain, format!("filter_chain_matcher leads to no filter chain ({how})"))),
        };
    }
    let mut chains: Vec<&FilterChain> = listener.filter_chains.iter().collect();
    let mut decided = Vec::new();
    let address: Option<IpAddr> = req.address.parse().ok();
    chains = sieve(chains, &mut decided, "destination_port", |m| m.destination_port.is_some(), |m| (m.destination_port == Some(req.port)) as usize);
    chains = sieve(
        chains,
        &mut decided,
        "prefix_ranges",
        |m| !m.prefix_ranges.is_empty(),
        |m| {
            m.prefix_ranges
                .iter()
                .filter(|(prefix, len)| address.is_some_and(|a| in_prefix(a, prefix, *len)))
                .map(|(_, len)| *len as usize + 1)
                .max()
                .unwrap_or(0)
        },
    );
    chains = sieve(
        chains,
        &mut decided,
        "server_names",
        |m| !m.server_names.is_empty(),
        |m| {
            let Some(sni) = sni else { return 0 };
            m.server_names
                .iter()
                .map(|s| {
                    if s.eq_ignore_ascii_case(sni) {
                        usize::MAX
                    } else if let Some(suffix) = s.strip_prefix('*') {
                        if sni.len() > suffix.len() && sni.to_ascii_lowercase().ends_with(&suffix.to_ascii_lowercase()) { s.len() } else { 0 }
                    } else {
                        0
                    }
                })
                .max()
                .unwrap_or(0)
        },
    );
    chains = sieve(
        chains,
        &mut decided,
        "transport_protocol",
        |m| m.transport_protocol.is_some(),
        |m| {
            let t = m.transport_protocol.as_deref().unwrap_or_default();
            let seen = if !tls_inspector || req.security == Security::Plaintext { "raw_buffer" } else { "tls" };
            (t == seen) as usize
        },
    );
    chains = sieve(
        chains,
        &mut decided,
        "application_protocols",
        |m| !m.application_protocols.is_empty(),
        |m| alpn.is_some_and(|a| m.application_protocols.iter().any(|p| p == a)) as usize,
    );
    let how = if decided.is_empty() { "no filter_chain_match field narrows the choice".to_string() } else { decided.join(", ") };
    match chains.as_slice() {
        [one] => Ok((one, format!("filter_chain_match: {how}"))),
        [] => match &listener.default_filter_chain {
            Some(d) => Ok((d, format!("no filter chain matches ({how}): default_filter_chain"))),
            None => Err((Stop::NoFilterChain, format!("no filter chain matches ({how}) and the listener has no default_filter_chain"))),
        },
        many => Err((
            Stop::MultipleFilterChains,
            format!("{} chains match alike: {}", many.len(), many.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
        )),
    }
}

/// Walks a `filter_chain_matcher` tree for the request: the chain name it names, with each
/// input and value taken on the way.
fn resolve(m: &ChainMatcher, req: &Request, alpn: Option<&str>, path: &mut Vec<String>) -> Option<String> {
    let value = match m.input.as_str() {
        "DestinationIPInput" => Some(req.address.clone()),
        "DestinationPortInput" => Some(req.port.to_string()),
        // Istio writes ALPN keys quoted (`'h2c'`).
        "ApplicationProtocolInput" => alpn.map(|a| format!("'{a}'")),
        _ => None,
    };
    let address: Option<IpAddr> = req.address.parse().ok();
    let next =
        value.as_deref().and_then(|v| {
            m.exact.iter().find(|(k, _)| k == v).map(|(_, n)| n).or_else(|| {
                m.ranges.iter().filter(|(p, len, _)| address.is_some_and(|a| in_prefix(a, p, *len))).max_by_key(|(_, len, _)| *len).map(|(_, _, n)| n)
            })
        });
    path.push(format!("{} {}", m.input, value.as_deref().unwrap_or("(not read)")));
    match next.or(m.on_no_match.as_deref())? {
        OnMatch::Chain(name) => Some(name.clone()),
        OnMatch::Matcher(inner) => resolve(inner, req, alpn, path),
    }
}

fn sieve<'l>(
    chains: Vec<&'l FilterChain>,
    decided: &mut Vec<String>,
    field: &str,
    set: impl Fn(&crate::envoy::listener::ChainMatch) -> bool,
    rank: impl Fn(&crate::envoy::listener::ChainMatch) -> usize,
) -> Vec<&'l FilterChain> {
    if !chains.iter().any(|c| set(&c.matcher)) {
        return chains;
    }
    let ranked: Vec<(usize, &FilterChain)> = chains.iter().map(|c| (if set(&c.matcher) { rank(&c.matcher) } else { 0 }, *c)).collect();
    let best = ranked.iter().map(|(r, _)| *r).max().unwrap_or(0);
    if best > 0 {
        decided.push(format!("{field} matches"));
        return ranked.into_iter().filter(|(r, _)| *r == best).map(|(_, c)| c).collect();
    }
    decided.push(format!("{field} matches no chain, chains without it remain"));
    chains.into_iter().filter(|c| !set(&c.matcher)).collect()
}

fn in_prefix(address: IpAddr, prefix: &str, len: u32) -> bool {
    let Ok(net) = prefix.parse::<IpAddr>() else { return false };
    match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = len.min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Envoy's virtual host order: exact domain, longest `*suffix`, longest `prefix*`, then `*`.
pub fn match_virtual_host<'r>(rc: &'r RouteConfiguration, host: &str) -> Option<(&'r VirtualHost, String)> {
    let domains = || rc.virtual_hosts.iter().flat_map(|vh| vh.domains.iter().map(move |d| (vh, d.to_ascii_lowercase())));
    if let Some((vh, d)) = domains().find(|(_, d)| d == host) {
        return Some((vh, format!("domain `{d}` equals the host")));
    }
    let best = |pick: &dyn Fn(&str) -> Option<usize>| {
        domains().filter_map(|(vh, d)| pick(&d).map(|n| (n, vh, d))).fold(None, |acc: Option<(usize, &VirtualHost, String)>, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        })
    };
    let suffix = best(&|d| {
        let s = d.strip_prefix('*')?;
        (d != "*" && host.len() > s.len() && host.ends_with(s)).then_some(d.len())
    });
    if let Some((_, vh, d)) = suffix {
        return Some((vh, format!("`{d}` is the longest wildcard suffix matching the host")));
    }
    let prefix = best(&|d| {
        let p = d.strip_suffix('*')?;
        (d != "*" && host.len() > p.len() && host.starts_with(p)).then_some(d.len())
    });
    if let Some((_, vh, d)) = prefix {
        return Some((vh, format!("`{d}` is the longest wildcard prefix matching the host")));
    }
    domains().find(|(_, d)| d == "*").map(|(vh, _)| (vh, "`*` catches every host".to_string()))
}

/// Envoy's route match: path (query stripped), headers, query parameters.
pub fn route_matches(m: &RouteMatch, req: &Request) -> bool {
    let full = req.path.as_str();
    let path = full.split(['?', '#']).next().unwrap_or_default();
    let sensitive = m.case_sensitive.unwrap_or(true);
    let fold = |s: &str| if sensitive { s.to_string() } else { s.to_ascii_lowercase() };
    let p = fold(path);
    let path_ok = if let Some(prefix) = &m.prefix {
        p.starts_with(&fold(prefix))
    } else if let Some(exact) = &m.path {
        p == fold(exact)
    } else if let Some(sep) = &m.path_separated_prefix {
        let sep = fold(sep);
        p == sep || p.strip_prefix(&sep).is_some_and(|rest| rest.starts_with('/'))
    } else if let Some(re) = m.safe_regex.as_ref().map(|r| r.regex.as_str()).or(m.regex.as_deref()) {
        full_match(re, path)
    } else {
        // connect_matcher and path_match_policy are not modelled: such a route never matches here.
        false
    };
    path_ok && m.headers.iter().all(|h| header_matches(h, req)) && m.query_parameters.iter().all(|q| query_matches(q, full))
}

pub(super) fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(value))
}

fn string_matches(m: &StringMatcher, value: &str) -> bool {
    let fold = |s: &str| if m.ignore_case { s.to_ascii_lowercase() } else { s.to_string() };
    let v = fold(value);
    if let Some(e) = &m.exact {
        v == fold(e)
    } else if let Some(p) = &m.prefix {
        v.starts_with(&fold(p))
    } else if let Some(s) = &m.suffix {
        v.ends_with(&fold(s))
    } else if let Some(c) = &m.contains {
        v.contains(&fold(c))
    } else if let Some(re) = &m.safe_regex {
        full_match(&re.regex, value)
    } else {
        true
    }
}

/// Envoy's header matcher: a missing header matches only `present_match: false` (or its inversion).
fn header_matches(h: &HeaderMatcher, req: &Request) -> bool {
    let invert = h.invert_match.unwrap_or(false);
    let Some(value) = req.header(&h.name) else {
        return match h.present_match {
            Some(present) => present == invert,
            None => false,
        };
    };
    let hit = if let Some(present) = h.present_match {
        present
    } else if let Some(sm) = &h.string_match {
        string_matches(sm, value)
    } else if let Some(e) = &h.exact_match {
        value == e
    } else if let Some(p) = &h.prefix_match {
        value.starts_with(p.as_str())
    } else if let Some(re) = h.safe_regex_match.as_ref().map(|r| r.regex.as_str()).or(h.regex_match.as_deref()) {
        full_match(re, value)
    } else {
        true
    };
    hit != invert
}

/// `query_parameters`: the first value of the parameter, by `string_match` or `present_match`.
fn query_matches(q: &Value, path: &str) -> bool {
    let name = q.get("name").and_then(Value::as_str).unwrap_or_default();
    let query = path.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or_default()).unwrap_or_default();
    let value = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    });
    let Some(value) = value else { return false };
    if q.get("present_match").or_else(|| q.get("presentMatch")).and_then(Value::as_bool) == Some(true) {
        return true;
    }
    match q.get("string_match").or_else(|| q.get("stringMatch")) {
        Some(sm) => serde_json::from_value::<StringMatcher>(sm.clone()).is_ok_and(|sm| string_matches(&sm, value)),
        None => true,
    }
}

/// One line for a route match (`prefix /api, header end-user=jason`).
pub fn describe_match(m: &RouteMatch) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &m.prefix {
        parts.push(format!("prefix {p}"));
    }
    if let Some(p) = &m.path {
        parts.push(format!("path {p}"));
    }
    if let Some(p) = &m.path_separated_prefix {
        parts.push(format!("path_separated_prefix {p}"));
    }
    if let Some(r) = &m.safe_regex {
        parts.push(format!("regex {}", r.regex));
    }
    if m.case_sensitive == Some(false) {
        parts.push("case-insensitive".into());
    }
    for h in &m.headers {
        let not = if h.invert_match == Some(true) { "not " } else { "" };
        parts.push(match (&h.present_match, &h.string_match) {
            (Some(true), _) => format!("header {not}present {}", h.name),
            (Some(false), _) => format!("header {not}absent {}", h.name),
            (_, Some(sm)) => format!("header {not}{} {}", h.name, serde_json::to_string(&describe_string(sm)).unwrap_or_default()),
            _ => format!("header {not}{}", h.name),
        });
    }
    for q in &m.query_parameters {
        parts.push(format!("query {}", q.get("name").and_then(Value::as_str).unwrap_or_default()));
    }
    parts.join(", ")
}

fn describe_string(sm: &StringMatcher) -> String {
    match (&sm.exact, &sm.prefix, &sm.suffix, &sm.contains, &sm.safe_regex) {
        (Some(e), ..) => format!("= {e}"),
        (_, Some(p), ..) => format!("prefix {p}"),
        (_, _, Some(s), ..) => format!("suffix {s}"),
        (_, _, _, Some(c), _) => format!("contains {c}"),
        (.., Some(r)) => format!("regex {}", r.regex),
        _ => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Protocol;
    use serde_json::json;

    fn config() -> ProxyConfig {
        let listener = ListenerDetail::from_json(&json!({
            "name": "0.0.0.0_80", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
            "listener_filters": [{"name": "envoy.filters.listener.tls_inspector"}, {"name": "envoy.filters.listener.http_inspector"}],
            "filter_chains": [{"name": "0.0.0.0_80", "filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
                "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {"rds": {"route_config_name": "80"}}}]}],
            "default_filter_chain": {"name": "PassthroughFilterChain", "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"cluster": "PassthroughCluster"}}]}
        }));
        let rc = RouteConfiguration::from_json(&json!({"name": "80", "virtual_hosts": [
            {"name": "reviews.default.svc.cluster.local:80", "domains": ["reviews.default.svc.cluster.local", "reviews", "reviews:80"], "routes": [
                {"name": "jason", "match": {"prefix": "/api", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
                 "route": {"cluster": "outbound|80|v2|reviews.default.svc.cluster.local"}},
                {"name": "not-get", "match": {"path_separated_prefix": "/admin", "headers": [{"name": ":method", "string_match": {"exact": "GET"}, "invert_match": true}]},
                 "direct_response": {"status": 403}},
                {"name": "q", "match": {"prefix": "/", "query_parameters": [{"name": "v", "string_match": {"exact": "3"}}]},
                 "route": {"weighted_clusters": {"clusters": [{"name": "outbound|80|v3|reviews.default.svc.cluster.local", "weight": 90}, {"name": "outbound|80|v1|reviews.default.svc.cluster.local", "weight": 10}]}}},
                {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "outbound|80||reviews.default.svc.cluster.local"}}]},
            {"name": "wild", "domains": ["*.example.com"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "wild"}}]},
            {"name": "allow_any", "domains": ["*"], "routes": [{"name": "allow_any", "match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]}]}));
        let mut endpoints = std::collections::BTreeMap::new();
        endpoints.insert("outbound|80|v2|reviews.default.svc.cluster.local".to_string(), (0, 2));
        ProxyConfig { listeners: vec![("0.0.0.0_80".into(), listener)], route_configs: vec![rc], clusters: None, endpoints }
    }

    fn req(host: &str, path: &str) -> Request {
        Request { host: Some(host.into()), path: path.into(), ..Request::http("10.0.0.1", 80) }
    }

    #[test]
    fn routes_by_header_method_and_query() {
        let c = config();
        let mut r = req("reviews:80", "/api/v1?x=1");
        r.headers.push(("end-user".into(), "jason".into()));
        let w = walk(&c, &r);
        assert_eq!((w.route.as_deref(), w.cluster.as_deref()), (Some("jason"), Some("outbound|80|v2|reviews.default.svc.cluster.local")));
        assert!(w.outcome.starts_with("503 UH"), "{}", w.outcome);
        assert_eq!(walk(&c, &req("reviews:80", "/api")).route.as_deref(), Some("default"));
        // path_separated_prefix does not match /administrator; inverted :method matches POST only.
        assert_eq!(walk(&c, &req("reviews:80", "/administrator")).route.as_deref(), Some("default"));
        let mut post = req("reviews:80", "/admin/x");
        post.method = "POST".into();
        assert_eq!(walk(&c, &post).action, Some(Action::DirectResponse { status: 403 }));
        assert_eq!(walk(&c, &req("reviews:80", "/admin/x")).route.as_deref(), Some("default"));
        let q = walk(&c, &req("reviews:80", "/?v=3&v=4"));
        assert_eq!((q.route.as_deref(), q.cluster.as_deref()), (Some("q"), None));
        assert_eq!(walk(&c, &req("reviews:80", "/?v=4&v=3")).route.as_deref(), Some("default"));
    }

    #[test]
    fn virtual_host_order_and_chains() {
        let c = config();
        assert_eq!(walk(&c, &req("a.example.com", "/")).virtual_host.as_deref(), Some("wild"));
        assert_eq!(walk(&c, &req("example.com", "/")).cluster.as_deref(), Some("PassthroughCluster"));
        let mut tls = req("reviews", "/");
        tls.security = Security::Tls;
        let w = walk(&c, &tls.with_defaults());
        assert_eq!((w.filter_chain.as_deref(), w.cluster.as_deref()), (Some("PassthroughFilterChain"), Some("PassthroughCluster")));
        let mut tcp = req("reviews", "/");
        tcp.protocol = Protocol::Tcp;
        assert_eq!(walk(&c, &tcp).filter_chain.as_deref(), Some("PassthroughFilterChain"));
        assert_eq!(walk(&c, &Request::http("10.0.0.1", 81)).error, Some(Stop::NoListener));
    }
}
