//! Command-line interface. kubectl hands every argument to the plugin untouched, so flags are
//! kubectl-style (`-n`, `-o`) and parsed here.

use crate::error::{Error, Result};
use crate::question::{From, Question};
use crate::render::Format;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Explains why Istio traffic for a service is not landing where you expect.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl mesh-why",
    version = crate::version::LONG,
    about = "Explains why Istio traffic for a service is not landing where you expect",
    after_help = "Examples:\n  kubectl mesh-why reviews -n bookinfo\n  kubectl mesh-why reviews.bookinfo --from deploy/productpage-v1 -o markdown\n  kubectl mesh-why capture reviews -n bookinfo -d incident-snapshot.tar.gz\n  kubectl mesh-why reviews --snapshot ./incident-snapshot.tar.gz\n  kubectl mesh-why --all -n bookinfo\n  kubectl mesh-why capture --all -A -d mesh-snapshot.tar.gz\n  kubectl mesh-why --all -A --snapshot ./incident-snapshot.tar.gz -o json\n\nExit status: 0 no error found, 1 at least one error-severity finding, 2 could not run.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// Save the cluster state for a question instead of analyzing it.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The service asked about: SERVICE or SERVICE.NAMESPACE (not with --all).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub service: Option<String>,
    /// Check (or capture) every service in the namespace (-n, or -A for all namespaces) instead of one; live, objects only.
    #[arg(long, global = true)]
    pub all: bool,
    /// With --all: every namespace.
    #[arg(short = 'A', long = "all-namespaces", requires = "all", global = true)]
    pub all_namespaces: bool,
    /// Namespace of the service (and of --from pods); default: the kubeconfig context's.
    #[arg(short = 'n', long = "namespace", global = true)]
    pub namespace: Option<String>,
    /// Only this service port.
    #[arg(long, global = true)]
    pub port: Option<u32>,
    /// Callers: POD, POD.NAMESPACE, NAMESPACE/POD, deploy/NAME[.NAMESPACE] or KEY=VALUE,... (default: every proxy that calls the service; trace needs one).
    #[arg(long = "from", global = true)]
    pub from: Option<String>,
    /// How to reach the cluster (live mode and capture).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Analyze saved state instead of a live cluster: a snapshot directory or .tar.gz.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Save what the question needs from the cluster and its proxies, to analyze later with --snapshot.
    Capture {
        /// The service asked about: SERVICE or SERVICE.NAMESPACE (not with --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Where to write: a new directory, or a file ending in .tar.gz.
        #[arg(short = 'd', long = "dir")]
        dir: PathBuf,
    },
    /// Print a shell completion script for kubectl-mesh_why (see the README to install it, and the kubectl_complete-mesh_why link).
    Completion {
        /// The shell: bash, zsh, fish or powershell.
        shell: clap_complete::Shell,
    },
    /// Serve the analysis to AI assistants over the Model Context Protocol on stdio (read-only tools, JSON results).
    Mcp,
    /// Trace one request from a caller through its Envoy and through what istiod should push.
    Trace(Box<TraceArgs>),
}

/// `trace`: the request and where it comes from (`--from` and `--port` are the global flags).
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// The service called, SERVICE or SERVICE.NAMESPACE: sets the host and, from its ClusterIP, the address.
    pub service: Option<String>,
    /// Destination IP (default: the service's ClusterIP, else 1.3.3.7, an address no listener is bound to).
    #[arg(long)]
    pub address: Option<String>,
    /// Host / authority header (default: the service's name).
    #[arg(long)]
    pub host: Option<String>,
    /// Path, with an optional query string.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// What the caller sends.
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: crate::trace::Protocol,
    /// The caller originates TLS.
    #[arg(long)]
    pub tls: bool,
    /// The caller sends Istio mutual TLS.
    #[arg(long, conflicts_with = "tls")]
    pub mtls: bool,
    /// TLS server name (default: the host).
    #[arg(long)]
    pub sni: Option<String>,
    /// ALPN offered in the TLS handshake (default: from the protocol).
    #[arg(long)]
    pub alpn: Option<String>,
    /// The request arrives at the --from pod through inbound capture.
    #[arg(long)]
    pub inbound: bool,
    /// Explain one access-log line (Istio's default format or JSON) instead of a request.
    #[arg(long)]
    pub log: Option<String>,
    /// Analyze saved state instead of a live cluster: a snapshot directory or .tar.gz.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

/// Whether `word` names a subcommand (so it cannot be passed as a SERVICE).
pub fn is_subcommand(word: &str) -> bool {
    <Cli as clap::CommandFactory>::command().find_subcommand(word).is_some()
}

/// kubectl-style flags for reaching the cluster, accepted before or after `capture`.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Most proxies to read (callers first, then gateways, then one destination pod per subset).
    #[arg(long = "max-proxies", global = true, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_proxies: u32,
    /// Limit for the whole run against the cluster, e.g. 60s or 2m.
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Limit for each request to the API server or to a proxy, e.g. 10s.
    #[arg(long = "request-timeout", global = true, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

/// Parses kubectl-style durations: `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    // A zero limit would mean "wait forever" to kubectl; mesh-why never waits forever.
    if seconds <= 0.0 || !seconds.is_finite() {
        return Err(format!("`{text}`: the limit must be more than zero"));
    }
    // A day is past any wait mesh-why should make; beyond it, a typo more likely than intent.
    Duration::try_from_secs_f64(seconds).ok().filter(|d| *d <= MAX_DURATION).ok_or_else(|| format!("`{text}`: more than the largest limit, 24h"))
}

/// The longest `--timeout` or `--request-timeout` accepted.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl Cli {
    /// The SERVICE argument, given at the top level or after `capture`.
    pub fn service_arg(&self) -> &str {
        match &self.command {
            Some(Command::Capture { service, .. }) => service.as_deref().unwrap_or_default(),
            Some(Command::Trace(t)) => t.service.as_deref().unwrap_or_default(),
            _ => self.service.as_deref().unwrap_or_default(),
        }
    }

    /// With --all, the namespace to check (`None` for every namespace, `-A`); `None` without
    /// --all. `-n` wins over `default_namespace`, as for one service.
    pub fn mesh_scope(&self, default_namespace: &str) -> Option<Option<String>> {
        self.all.then(|| (!self.all_namespaces).then(|| self.namespace.clone().unwrap_or_else(|| default_namespace.into())))
    }

    /// Turns the arguments into a question; `SERVICE.NAMESPACE` wins over `-n`, which wins over
    /// `default_namespace` (the kubeconfig context's, as kubectl does).
    pub fn question(&self, default_namespace: &str) -> Result<Question> {
        self.question_about(self.service_arg(), default_namespace)
    }

    /// The question about `arg` (SERVICE or SERVICE.NAMESPACE) with the other flags given.
    pub fn question_about(&self, arg: &str, default_namespace: &str) -> Result<Question> {
        // clap cannot tie a global flag to another once a subcommand is parsed.
        if self.all_namespaces {
            return Err(
                Error::new("-A (--all-namespaces) goes with --all").help("ask about one service with -n NAMESPACE, or check every service with --all -A")
            );
        }
        let (service, namespace) = match arg.split_once('.') {
            Some((s, ns)) => (s.to_string(), ns.trim_end_matches(".svc.cluster.local").trim_end_matches(".svc").to_string()),
            None => (arg.to_string(), self.namespace.clone().unwrap_or_else(|| default_namespace.into())),
        };
        if service.is_empty() || namespace.is_empty() || namespace.contains('.') {
            return Err(Error::new(format!("`{arg}` is not SERVICE or SERVICE.NAMESPACE")).help("for example: reviews, or reviews.bookinfo"));
        }
        let (from, from_ns) = self.from.as_deref().map(From::parse).transpose()?.map_or((None, None), |(f, ns)| (Some(f), ns));
        let from_namespace = from_ns.or_else(|| self.namespace.clone()).unwrap_or_else(|| namespace.clone());
        Ok(Question { service, from_namespace, namespace, port: self.port, from })
    }
}
