//! TLS for the listeners: a certificate and key checked at start (readable, matching, not
//! expired) and turned into a rustls server config (HTTP/WebSocket ports) or a tonic one (gRPC
//! ports). Mutual TLS when `client_ca_pem` is set, as Centrifugo.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::tls::{load_pem, PemText};
use crate::config::TlsSettings;

/// A listener's checked TLS material.
#[derive(Clone)]
pub struct ListenerTls {
    /// For the HTTP/WebSocket listeners (ALPN http/1.1 is added by actix-http).
    pub config: Arc<ServerConfig>,
    cert: PemText,
    key: PemText,
    client_ca: Option<PemText>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ListenerTls").field("cert", &self.cert.origin).finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Reads and checks `settings` (`None` when TLS is off). `at` names the setting in errors,
    /// e.g. `http_server.tls`.
    pub fn from_settings(settings: &TlsSettings, at: &str) -> Result<Option<Self>, String> {
        if !settings.enabled {
            return Ok(None);
        }
        if settings.cert_pem.is_empty() || settings.key_pem.is_empty() {
            return Err(format!("{at}: enabled without a certificate: set {at}.cert_pem and {at}.key_pem"));
        }
        let cert = load_pem(&settings.cert_pem, &format!("{at}.cert_pem"))?;
        let key = load_pem(&settings.key_pem, &format!("{at}.key_pem"))?;
        let client_ca = match settings.client_ca_pem.as_str() {
            "" => None,
            value => Some(load_pem(value, &format!("{at}.client_ca_pem"))?),
        };
        let chain = certificates(&cert)?;
        check_validity(&chain[0], &cert.origin, unix_now())?;
        let private_key = PrivateKeyDer::from_pem_slice(&key.text)
            .map_err(|error| format!("{}: no private key could be read: {error}", key.origin))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|error| format!("{at}: {error}"))?;
        let builder = match &client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates(ca)? {
                    roots.add(certificate).map_err(|error| format!("{}: not a CA certificate: {error}", ca.origin))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|error| format!("{}: {error}", ca.origin))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, private_key).map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => {
                format!("{}: the key does not match the certificate in {}", key.origin, cert.origin)
            }
            other => format!("{}: unusable key: {other}", key.origin),
        })?;
        Ok(Some(Self { config: Arc::new(config), cert, key, client_ca }))
    }

    /// The same material for a tonic (gRPC) server.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        let identity = tonic::transport::Identity::from_pem(&self.cert.text, &self.key.text);
        let config = tonic::transport::ServerTlsConfig::new().identity(identity);
        match &self.client_ca {
            Some(ca) => config.client_ca_root(tonic::transport::Certificate::from_pem(&ca.text)),
            None => config,
        }
    }
}

/// Every certificate in `pem`, at least one.
fn certificates(pem: &PemText) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(&pem.text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: unreadable certificate: {error}", pem.origin))?;
    if chain.is_empty() {
        return Err(format!("{}: no CERTIFICATE block", pem.origin));
    }
    Ok(chain)
}

/// Refuses a certificate that has expired (clients would refuse every connection) or that
/// cannot be parsed; one not valid yet is only logged (clocks drift).
fn check_validity(certificate: &CertificateDer<'_>, origin: &str, now_unix: u64) -> Result<(), String> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(certificate.as_ref())
        .map_err(|error| format!("{origin}: the certificate cannot be parsed: {error}"))?;
    let validity = &parsed.tbs_certificate.validity;
    let not_after = validity.not_after.to_unix_duration().as_secs();
    if not_after < now_unix {
        return Err(format!("{origin}: the certificate expired on {}; renew it", validity.not_after));
    }
    if validity.not_before.to_unix_duration().as_secs() > now_unix {
        tracing::warn!(certificate = %origin, not_before = %validity.not_before, "the certificate is not valid yet");
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(cert: &str, key: &str) -> TlsSettings {
        TlsSettings { enabled: true, cert_pem: cert.into(), key_pem: key.into(), ..TlsSettings::default() }
    }

    fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap()
    }

    #[test]
    fn off_is_none_and_on_needs_both_files() {
        assert!(ListenerTls::from_settings(&TlsSettings::default(), "http_server.tls").unwrap().is_none());
        let error = ListenerTls::from_settings(&settings("", ""), "http_server.tls").unwrap_err();
        assert!(error.contains("set http_server.tls.cert_pem and http_server.tls.key_pem"), "{error}");
    }

    #[test]
    fn a_matching_pair_loads_inline_and_a_mismatched_key_is_named() {
        let one = self_signed("localhost");
        let two = self_signed("localhost");
        let good = settings(&one.cert.pem(), &one.signing_key.serialize_pem());
        assert!(ListenerTls::from_settings(&good, "grpc_api.tls").unwrap().is_some());

        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("other.key");
        std::fs::write(&key_path, two.signing_key.serialize_pem()).unwrap();
        let bad = settings(&one.cert.pem(), key_path.to_str().unwrap());
        let error = ListenerTls::from_settings(&bad, "grpc_api.tls").unwrap_err();
        assert!(error.contains("other.key") && error.contains("does not match the certificate"), "{error}");
        assert!(!error.contains("PRIVATE KEY"), "no key text in messages: {error}");
    }

    #[test]
    fn an_expired_certificate_is_refused_with_its_date() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let error =
            ListenerTls::from_settings(&settings(&cert.pem(), &key.serialize_pem()), "http_server.tls").unwrap_err();
        assert!(error.contains("http_server.tls.cert_pem (inline PEM)"), "{error}");
        assert!(error.contains("expired on 2021-01-01"), "{error}");
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let one = self_signed("localhost");
        let error =
            ListenerTls::from_settings(&settings(&one.cert.pem(), &one.cert.pem()), "uni_grpc.tls").unwrap_err();
        assert!(error.starts_with("uni_grpc.tls.key_pem (inline PEM): no private key"), "{error}");
    }
}
