//! Command-line interface. kubectl hands every argument to the plugin untouched, so flags are
//! kubectl-style (`-n`, `-o`) and parsed here.

use crate::error::{Error, Result};
use crate::question::{From, Question};
use crate::render::Format;
use clap::Parser;
use std::path::PathBuf;

/// Explains why Istio traffic for a service is not landing where you expect.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl mesh-why",
    version,
    about = "Explains why Istio traffic for a service is not landing where you expect",
    after_help = "Examples:\n  kubectl mesh-why reviews -n bookinfo\n  kubectl mesh-why reviews.bookinfo --from deploy/productpage-v1 -o markdown\n  kubectl mesh-why reviews --snapshot ./incident-snapshot.tar.gz\n\nExit status: 0 no error found, 1 at least one error-severity finding, 2 could not run."
)]
pub struct Cli {
    /// The service asked about: SERVICE or SERVICE.NAMESPACE.
    pub service: String,
    /// Namespace of the service (and of --from pods).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    /// Only this service port.
    #[arg(long)]
    pub port: Option<u32>,
    /// Callers to examine: POD, deploy/NAME, or KEY=VALUE,... (default: every proxy that calls the service).
    #[arg(long = "from")]
    pub from: Option<String>,
    /// Analyze saved state instead of a live cluster: a snapshot directory or .tar.gz.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

impl Cli {
    /// Turns the arguments into a question; `SERVICE.NAMESPACE` wins over `-n`.
    pub fn question(&self) -> Result<Question> {
        let (service, namespace) = match self.service.split_once('.') {
            Some((s, ns)) => (s.to_string(), ns.trim_end_matches(".svc.cluster.local").trim_end_matches(".svc").to_string()),
            None => (self.service.clone(), self.namespace.clone().unwrap_or_else(|| "default".into())),
        };
        if service.is_empty() || namespace.is_empty() || namespace.contains('.') {
            return Err(Error::new(format!("`{}` is not SERVICE or SERVICE.NAMESPACE", self.service)).help("for example: reviews, or reviews.bookinfo"));
        }
        let from = self.from.as_deref().map(From::parse).transpose()?;
        Ok(Question {
            service,
            from_namespace: self.namespace.clone().unwrap_or_else(|| namespace.clone()),
            namespace,
            port: self.port,
            from,
        })
    }
}
