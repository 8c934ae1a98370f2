//! Key material from config, pinned to algorithm families.

use jsonwebtoken::{Algorithm, DecodingKey};

use super::jwks::JwksSource;
use super::{es512, Alg, VerifyingKey};

use crate::config::TokenSettings;

/// A configured key that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct KeyError {
    /// Config key path.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// The keys and claim checks of one token kind.
pub(super) struct KeySet {
    hmac: Option<VerifyingKey>,
    hmac_previous: Option<(VerifyingKey, i64)>,
    rsa: Option<VerifyingKey>,
    /// P-256 or P-384 (`jsonwebtoken`'s), or P-521 (ES512), told apart by the key's curve.
    pub(super) ecdsa: Option<VerifyingKey>,
    /// `jwks_public_endpoint`: when set, only its keys verify (as in Centrifugo).
    pub(super) jwks: Option<JwksSource>,
    pub(super) audience: String,
    pub(super) audience_regex: Option<regex::Regex>,
    pub(super) issuer: String,
    pub(super) issuer_regex: Option<regex::Regex>,
    pub(super) user_id_claim: String,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("KeySet")
            .field("hmac", &self.hmac.is_some())
            .field("rsa", &self.rsa.is_some())
            .field("ecdsa", &self.ecdsa.is_some())
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    pub(super) fn from_settings(s: &TokenSettings, path: &str) -> Result<Self, KeyError> {
        let error = |field: &str, reason: String| KeyError { key: format!("{path}.{field}"), reason };
        let non_empty = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let secret = |k: String| VerifyingKey::Jwt(DecodingKey::from_secret(k.as_bytes()));
        let hmac = non_empty(&s.hmac_secret_key).map(secret);
        let hmac_previous =
            non_empty(&s.hmac_previous_secret_key).map(|k| (secret(k), s.hmac_previous_secret_key_valid_until));
        let rsa = match non_empty(&s.rsa_public_key) {
            Some(pem) => Some(VerifyingKey::Jwt(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| error("rsa_public_key", format!("not a PEM RSA public key ({e})")))?,
            )),
            None => None,
        };
        let ecdsa = match non_empty(&s.ecdsa_public_key) {
            Some(pem) => Some(match es512::key_from_pem(&pem) {
                Some(p521) => VerifyingKey::P521(p521),
                None => {
                    let key = DecodingKey::from_ec_pem(pem.as_bytes())
                        .map_err(|e| error("ecdsa_public_key", format!("not a PEM ECDSA public key ({e})")))?;
                    // A certificate's key: `jsonwebtoken` takes its point whatever the curve.
                    match key.try_get_as_bytes().ok().and_then(es512::key_from_point) {
                        Some(p521) => VerifyingKey::P521(p521),
                        None => VerifyingKey::Jwt(key),
                    }
                }
            }),
            None => None,
        };
        let pattern = |text: &str, field: &str| -> Result<Option<regex::Regex>, KeyError> {
            non_empty(text)
                .map(|text| {
                    regex::Regex::new(&text).map_err(|e| error(field, format!("not a regular expression ({e})")))
                })
                .transpose()
        };
        let jwks = non_empty(s.jwks_public_endpoint.trim()).map(|url| JwksSource::new(&url));
        Ok(Self {
            hmac,
            hmac_previous,
            rsa,
            ecdsa,
            jwks,
            audience: s.audience.clone(),
            audience_regex: pattern(&s.audience_regex, "audience_regex")?,
            issuer: s.issuer.clone(),
            issuer_regex: pattern(&s.issuer_regex, "issuer_regex")?,
            user_id_claim: s.user_id_claim.clone(),
        })
    }

    pub(super) fn has_keys(&self) -> bool {
        self.hmac.is_some() || self.rsa.is_some() || self.ecdsa.is_some() || self.jwks.is_some()
    }

    /// The keys that may verify `alg`, current key first.
    pub(super) fn keys_for(&self, alg: Alg, now: i64) -> Vec<&VerifyingKey> {
        use Algorithm::*;
        let Alg::Jwt(alg) = alg else {
            return self.ecdsa.iter().filter(|key| matches!(key, VerifyingKey::P521(_))).collect();
        };
        match alg {
            HS256 | HS384 | HS512 => {
                let previous =
                    self.hmac_previous.as_ref().filter(|(_, until)| *until <= 0 || now <= *until).map(|(key, _)| key);
                self.hmac.iter().chain(previous).collect()
            }
            RS256 | RS384 | RS512 => self.rsa.iter().collect(),
            ES256 | ES384 => self.ecdsa.iter().filter(|key| matches!(key, VerifyingKey::Jwt(_))).collect(),
            _ => Vec::new(),
        }
    }
}
