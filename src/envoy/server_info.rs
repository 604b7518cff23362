//! `GET /server_info`: Envoy version, state and the node (with Istio's metadata).

use super::config_dump::Node;
use crate::error::{Error, Result};
use serde::Deserialize;

/// The parts of `/server_info` mesh-why uses.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `sha/version/Clean/RELEASE/BoringSSL`.
    pub version: String,
    /// `LIVE`, `DRAINING`, `PRE_INITIALIZING`, `INITIALIZING`.
    pub state: String,
    /// The node, when present.
    pub node: Option<Node>,
}

/// Parses `/server_info` JSON.
pub fn parse(text: &str, origin: &str) -> Result<ServerInfo> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        version: String,
        #[serde(default)]
        state: String,
        #[serde(default)]
        node: Option<Node>,
    }
    let raw: Raw = serde_json::from_str(text).map_err(|e| Error::new(format!("server_info.json is not valid /server_info output: {e}")).at(origin))?;
    Ok(ServerInfo { version: raw.version, state: raw.state, node: raw.node })
}
