//! What a TLS Secret says about itself, without its material: which data keys it has, which
//! certificate/key pair istiod would take from it, and the validity dates of that certificate.
//! The Secret's bytes are read once here and dropped; nothing else of them is kept.

use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use x509_cert::Certificate;
use x509_cert::der::Decode;

/// The key pairs istiod reads a gateway credential from, in its order: generic, then TLS.
const PAIRS: &[(&str, &str)] = &[("cert", "key"), ("tls.crt", "tls.key")];

/// The annotation under which a live run records a credential Secret in reduced form: the
/// Secret without `data`, and this annotation holding its [`Credential`].
pub const REDUCED: &str = "mesh-why.io/gateway-credential";

/// A gateway credential Secret, reduced to what checking it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The data key names, each with whether its value is empty.
    pub keys: BTreeMap<String, bool>,
    /// The certificate istiod would serve, as far as it can be read.
    pub certificate: CertificateState,
}

/// The state of the certificate a credential holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateState {
    /// No certificate/key pair with values under the names istiod reads.
    NoPair,
    /// The pair's certificate is not PEM, or its first PEM block is not an X.509 certificate.
    Unreadable(String),
    /// A readable certificate, under key `key`, valid between these Unix times (seconds).
    Valid { key: String, not_before: i64, not_after: i64 },
}

impl Credential {
    /// Reads `secret`'s key names and certificate dates; the data itself is not kept.
    pub fn of(secret: &Secret) -> Credential {
        let data: BTreeMap<&str, &[u8]> = secret.data.iter().flatten().map(|(k, v)| (k.as_str(), v.0.as_slice())).collect();
        let keys = data.iter().map(|(k, v)| (k.to_string(), v.is_empty())).collect();
        let pair = PAIRS.iter().find(|(c, k)| data.get(c).is_some_and(|v| !v.is_empty()) && data.get(k).is_some_and(|v| !v.is_empty()));
        let certificate = match pair {
            None => CertificateState::NoPair,
            Some((cert, _)) => read_certificate(cert, data[cert]),
        };
        Credential { keys, certificate }
    }

    /// `secret` as a live capture writes it: metadata (name and namespace only) and, instead of
    /// its data, this reduction in the [`REDUCED`] annotation. No byte of the data is kept.
    pub fn reduced_secret(secret: &Secret) -> Value {
        let reduced = serde_json::to_string(&Credential::of(secret)).unwrap_or_default();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret.metadata.name, "namespace": secret.metadata.namespace, "annotations": {REDUCED: reduced}},
        })
    }

    /// Why istiod would refuse this credential at Unix time `now`, if it would.
    pub fn problem(&self, now: Option<i64>) -> Option<String> {
        match &self.certificate {
            CertificateState::NoPair => {
                let names: Vec<String> = self.keys.iter().map(|(k, empty)| if *empty { format!("{k} (empty)") } else { k.clone() }).collect();
                Some(format!(
                    "it has no non-empty cert/key or tls.crt/tls.key pair (keys: {})",
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                ))
            }
            CertificateState::Unreadable(why) => Some(format!("its certificate {why}")),
            CertificateState::Valid { key, not_before, not_after } => {
                let now = now?;
                if now > *not_after {
                    Some(format!("its certificate ({key}) expired at {}", date(*not_after)))
                } else if now < *not_before {
                    Some(format!("its certificate ({key}) is not valid before {}", date(*not_before)))
                } else {
                    None
                }
            }
        }
    }
}

/// The validity of the first certificate of the first PEM block, as istiod checks it.
fn read_certificate(key: &str, bytes: &[u8]) -> CertificateState {
    // pem::parse reads the first PEM block, whatever follows it (a chain, or trailing text).
    let Ok(block) = pem::parse(bytes) else { return CertificateState::Unreadable("has no readable PEM block".into()) };
    let der = block.contents();
    let Ok(cert) = Certificate::from_der(der) else { return CertificateState::Unreadable("is not an X.509 certificate".into()) };
    let validity = &cert.tbs_certificate.validity;
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    CertificateState::Valid { key: key.to_string(), not_before: secs(&validity.not_before), not_after: secs(&validity.not_after) }
}

/// A Unix time as an RFC 3339 date.
fn date(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}
