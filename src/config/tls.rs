//! Centrifugo's TLS object (`http_server.tls`, `http_server.internal_tls`, `uni_grpc.tls`,
//! `grpc_api.tls`), and where its PEM values come from. Turning it into a rustls server
//! config is [`crate::tls`]'s job.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One listener's TLS, with Centrifugo's keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// Serve TLS on this listener. Default false.
    pub enabled: bool,
    /// The certificate chain: a file path, PEM text, or base64 of PEM text.
    pub cert_pem: String,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1), in the same forms.
    pub key_pem: String,
    /// A client-side setting (the CA a client trusts); listeners ignore it.
    pub server_ca_pem: String,
    /// CA certificates that sign client certificates: setting it requires every client to
    /// present one (mutual TLS), as Centrifugo.
    pub client_ca_pem: String,
    /// A client-side setting; listeners ignore it.
    pub insecure_skip_verify: bool,
    /// A client-side setting (the expected server name); listeners ignore it.
    pub server_name: String,
}

/// PEM text, and where it came from (for messages: a file's path, or "inline PEM"; never the
/// text itself, which may be a private key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemText {
    pub text: Vec<u8>,
    pub origin: String,
}

/// Resolves a PEM value as Centrifugo does: PEM text as it is, then base64-encoded PEM, then a
/// path to a file holding PEM. `key` names the setting in messages.
pub fn load_pem(value: &str, key: &str) -> Result<PemText, String> {
    if looks_like_pem(value.as_bytes()) {
        return Ok(PemText { text: value.as_bytes().to_vec(), origin: format!("{key} (inline PEM)") });
    }
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        if looks_like_pem(&decoded) {
            return Ok(PemText { text: decoded, origin: format!("{key} (inline base64 PEM)") });
        }
    }
    let path = Path::new(value);
    if value.is_empty() {
        return Err(format!("{key} is empty; give a PEM file's path or the PEM text"));
    }
    let text = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{key}: file {value:?} does not exist (and the value is neither PEM nor base64 PEM)")
        }
        _ => format!("{key}: cannot read file {value:?}: {error}"),
    })?;
    if !looks_like_pem(&text) {
        return Err(format!("{key}: file {value:?} holds no PEM block (expected -----BEGIN ...-----)"));
    }
    Ok(PemText { text, origin: format!("{key} (file {value:?})") })
}

/// Whether `bytes` hold a PEM block's opening line.
fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|window| window == b"-----BEGIN ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_comes_inline_as_base64_or_from_a_file() {
        let inline = load_pem(PEM, "http_server.tls.cert_pem").unwrap();
        assert_eq!(inline.text, PEM.as_bytes());
        assert!(inline.origin.contains("inline PEM"));

        let encoded = base64::engine::general_purpose::STANDARD.encode(PEM);
        let decoded = load_pem(&encoded, "k").unwrap();
        assert_eq!(decoded.text, PEM.as_bytes());
        assert!(decoded.origin.contains("base64"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, PEM).unwrap();
        let from_file = load_pem(path.to_str().unwrap(), "k").unwrap();
        assert_eq!(from_file.text, PEM.as_bytes());
        assert!(from_file.origin.contains("cert.pem"));
    }

    #[test]
    fn missing_files_and_files_without_pem_are_named() {
        let error = load_pem("/nonexistent/cert.pem", "grpc_api.tls.cert_pem").unwrap_err();
        assert!(error.starts_with("grpc_api.tls.cert_pem: file \"/nonexistent/cert.pem\" does not exist"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.pem");
        std::fs::write(&path, "not pem").unwrap();
        let error = load_pem(path.to_str().unwrap(), "k").unwrap_err();
        assert!(error.contains("junk.pem") && error.contains("no PEM block"), "{error}");

        assert!(load_pem("", "k").unwrap_err().contains("k is empty"));
    }
}
