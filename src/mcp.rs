//! `kubectl mesh-why mcp`: a Model Context Protocol server on stdio (rmcp), so AI assistants get
//! mesh-why's evidence-backed verdicts (`mesh-why/v1` reports) and request traces as JSON.
//!
//! Each tool runs this same binary as a user would, with `-o json`, and returns its report: the
//! tools can do nothing the command line cannot, `capture` (which writes files) is not offered,
//! and a failing analysis cannot take the server down. Everything stays read-only.

use crate::version;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::schemars::JsonSchema;
use rmcp::{ErrorData, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;
use std::process::{Command, Stdio};

/// How to reach the cluster; ignored with `snapshot`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ClusterParams {
    /// Analyze saved state instead of the live cluster: a snapshot directory or .tar.gz (`kubectl mesh-why capture` or `istioctl bug-report` output).
    pub snapshot: Option<String>,
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    pub kubeconfig: Option<String>,
    /// The kubeconfig context (default: the current context).
    pub context: Option<String>,
    /// Limit for the whole run against the cluster, e.g. `60s` or `2m` (default 60s).
    pub timeout: Option<String>,
}

/// One service's question.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct WhyParams {
    /// The service asked about: SERVICE or SERVICE.NAMESPACE.
    pub service: String,
    /// Namespace of the service and of `from` pods (default: the kubeconfig context's).
    pub namespace: Option<String>,
    /// Only this service port.
    pub port: Option<u32>,
    /// Callers to examine: POD, deploy/NAME, or KEY=VALUE,... (default: the proxies that call the service).
    pub from: Option<String>,
    /// Most proxies to read (default 8).
    pub max_proxies: Option<u32>,
    /// Where the state comes from.
    #[serde(flatten)]
    pub cluster: ClusterParams,
}

/// A mesh-wide check.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct CheckAllParams {
    /// The namespace to check (default: the kubeconfig context's); ignored with `all_namespaces`.
    pub namespace: Option<String>,
    /// Check every namespace.
    #[serde(default)]
    pub all_namespaces: bool,
    /// Where the state comes from.
    #[serde(flatten)]
    pub cluster: ClusterParams,
}

/// One request to trace.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TraceParams {
    /// The calling pod: POD or POD.NAMESPACE.
    pub from: String,
    /// The service called, SERVICE or SERVICE.NAMESPACE (needed live: it decides what is read).
    pub service: Option<String>,
    /// Namespace of the service and of the calling pod (default: the kubeconfig context's).
    pub namespace: Option<String>,
    /// The port called.
    pub port: Option<u32>,
    /// Destination IP (default: the service's ClusterIP).
    pub address: Option<String>,
    /// Host / authority header (default: the service's name).
    pub host: Option<String>,
    /// Path, with an optional query string (default `/`).
    pub path: Option<String>,
    /// HTTP method (default GET).
    pub method: Option<String>,
    /// Request headers, each `name: value`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// What the caller sends: http, http2, grpc, tcp or tls (default http).
    pub protocol: Option<String>,
    /// The caller originates TLS.
    #[serde(default)]
    pub tls: bool,
    /// The caller sends Istio mutual TLS.
    #[serde(default)]
    pub mtls: bool,
    /// TLS server name (default: the host).
    pub sni: Option<String>,
    /// ALPN offered in the TLS handshake.
    pub alpn: Option<String>,
    /// The request arrives at the `from` pod through inbound capture.
    #[serde(default)]
    pub inbound: bool,
    /// Explain this access-log line (Istio's default format or JSON) instead of a request.
    pub log: Option<String>,
    /// Where the state comes from.
    #[serde(flatten)]
    pub cluster: ClusterParams,
}

/// The MCP server: its tools run the analysis.
#[derive(Debug, Clone, Default)]
pub struct Server;

/// `--name=value` for each value given: a value can never be read as another flag.
fn flags(pairs: &[(&str, Option<String>)]) -> Vec<String> {
    pairs.iter().filter_map(|(name, value)| value.as_ref().map(|v| format!("--{name}={v}"))).collect()
}

fn cluster_flags(c: &ClusterParams) -> Vec<String> {
    flags(&[("snapshot", c.snapshot.clone()), ("kubeconfig", c.kubeconfig.clone()), ("context", c.context.clone()), ("timeout", c.timeout.clone())])
}

/// Whether `word` can be passed as a positional SERVICE: not a flag, not a subcommand.
fn plain_word(word: &str) -> bool {
    !word.is_empty() && !word.starts_with('-') && !word.chars().any(char::is_whitespace) && !crate::cli::is_subcommand(word)
}

/// Runs this binary with `args` and `-o json`; the report, or the error it printed.
async fn run(args: Vec<String>) -> Result<CallToolResult, ErrorData> {
    let exe = std::env::current_exe().map_err(|e| ErrorData::internal_error(format!("cannot find the mesh-why binary: {e}"), None))?;
    let out = tokio::task::spawn_blocking(move || Command::new(exe).args(&args).args(["-o", "json"]).stdin(Stdio::null()).output())
        .await
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?
        .map_err(|e| ErrorData::internal_error(format!("cannot run mesh-why: {e}"), None))?;
    // Exit 1 is a finished analysis that found an error-severity cause: a result, not a failure.
    match (out.status.code(), serde_json::from_slice::<serde_json::Value>(&out.stdout)) {
        (Some(0 | 1), Ok(report)) => Ok(CallToolResult::structured(report)),
        _ => Ok(CallToolResult::error(vec![ContentBlock::text(crate::render::clean(String::from_utf8_lossy(&out.stderr).trim()))])),
    }
}

#[tool_router]
impl Server {
    #[tool(
        description = "Explain why Istio traffic for one service is not landing where expected: reads its Istio/Gateway API objects and the calling proxies' Envoy config (live, read-only, or from a snapshot), diffs intent against what each Envoy holds, and returns ranked findings with evidence, fix and docs link, as a mesh-why/v1 JSON report.",
        annotations(
            title = "Why is traffic not landing where expected",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn why(&self, Parameters(p): Parameters<WhyParams>) -> Result<CallToolResult, ErrorData> {
        if !plain_word(&p.service) {
            return Err(ErrorData::invalid_params(format!("`{}` is not SERVICE or SERVICE.NAMESPACE", p.service), None));
        }
        let mut args = vec![p.service];
        args.extend(flags(&[
            ("namespace", p.namespace),
            ("port", p.port.map(|v| v.to_string())),
            ("from", p.from),
            ("max-proxies", p.max_proxies.map(|v| v.to_string())),
        ]));
        args.extend(cluster_flags(&p.cluster));
        run(args).await
    }

    #[tool(
        description = "Check every service of a namespace (or of all namespaces) for configuration causes of misrouting, the way istioctl analyze does but with mesh-why's evidence and fixes; returns a mesh-why/v1 JSON report. Live it reads objects only (no proxy).",
        annotations(title = "Check every service", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn check_all(&self, Parameters(p): Parameters<CheckAllParams>) -> Result<CallToolResult, ErrorData> {
        let mut args = vec!["--all".to_string()];
        if p.all_namespaces {
            args.push("-A".into());
        } else {
            args.extend(flags(&[("namespace", p.namespace)]));
        }
        args.extend(cluster_flags(&p.cluster));
        run(args).await
    }

    #[tool(
        description = "Trace one request (or explain one access-log line) from a calling pod through its Envoy: listener, filter chain, route, cluster and outcome, next to what istiod should have pushed, with findings where they differ; JSON.",
        annotations(title = "Trace a request", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn trace(&self, Parameters(p): Parameters<TraceParams>) -> Result<CallToolResult, ErrorData> {
        let mut args = vec!["trace".to_string()];
        if let Some(service) = p.service {
            if !plain_word(&service) {
                return Err(ErrorData::invalid_params(format!("`{service}` is not SERVICE or SERVICE.NAMESPACE"), None));
            }
            args.push(service);
        }
        args.extend(flags(&[
            ("from", Some(p.from)),
            ("namespace", p.namespace),
            ("port", p.port.map(|v| v.to_string())),
            ("address", p.address),
            ("host", p.host),
            ("path", p.path),
            ("method", p.method),
            ("protocol", p.protocol),
            ("sni", p.sni),
            ("alpn", p.alpn),
            ("log", p.log),
        ]));
        args.extend(p.headers.into_iter().map(|h| format!("--header={h}")));
        args.extend([("tls", p.tls), ("mtls", p.mtls), ("inbound", p.inbound)].into_iter().filter(|(_, on)| *on).map(|(name, _)| format!("--{name}")));
        args.extend(cluster_flags(&p.cluster));
        run(args).await
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mesh-why", version::VERSION))
            .with_instructions("mesh-why explains why Istio traffic is not landing where expected. Every tool is read-only and returns a mesh-why/v1 JSON report: `verdict` is the one-line answer, `findings` are ranked causes with evidence, fix and a docs link, `gaps` say what could not be read or compared.")
    }
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve() -> crate::error::Result<()> {
    let failed = |e: &dyn std::fmt::Display| crate::error::Error::new(format!("MCP server: {e}"));
    let running = Server.serve(rmcp::transport::stdio()).await.map_err(|e| failed(&e))?;
    running.waiting().await.map_err(|e| failed(&e))?;
    Ok(())
}
