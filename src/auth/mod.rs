//! JWT verification for connection and subscription tokens, with Centrifugo's semantics
//! (protocol-server.md §2): algorithms pinned per configured key, `exp`/`nbf` checked strictly
//! with no leeway, `expire_at` overriding `exp`, optional `aud`/`iss` checks.
//!
//! Outcomes are only ever [`TokenError::Invalid`] or [`TokenError::Expired`]; callers map them to
//! codes (connect: 3500 / 109; subscribe: 103 / 109). Token text never reaches a log.

mod claims;
mod es512;
pub mod jwks;
mod keys;

pub use claims::{ConnectionClaims, SubscriptionClaims};
pub use keys::KeyError;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use crate::config::Settings;
use keys::KeySet;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, wrongly signed, unsupported algorithm, or claims that do not fit.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` in the past or `nbf` in the future.
    #[error("token expired")]
    Expired,
}

impl TokenError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid(reason.into())
    }
}

/// A token's `alg`: one `jsonwebtoken` verifies, or ES512 (ECDSA P-521 + SHA-512), which it
/// does not and gyre verifies itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Jwt(Algorithm),
    Es512,
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jwt(alg) => write!(f, "{alg:?}"),
            Self::Es512 => f.write_str(es512::NAME),
        }
    }
}

/// A key that verifies tokens: `jsonwebtoken`'s, or a P-521 public key (ES512 only).
#[derive(Clone)]
pub enum VerifyingKey {
    Jwt(DecodingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            Self::Jwt(_) => "VerifyingKey::Jwt",
            Self::P521(_) => "VerifyingKey::P521",
        })
    }
}

/// The token's header and algorithm (a header `jsonwebtoken` cannot read, but for its `alg`
/// being ES512, is read as it would read it).
fn header(token: &str) -> Result<(Alg, Header), TokenError> {
    match jsonwebtoken::decode_header(token) {
        Ok(header) => Ok((Alg::Jwt(header.alg), header)),
        Err(_) => es512::header(token)
            .map(|header| (Alg::Es512, header))
            .ok_or_else(|| TokenError::invalid("malformed token")),
    }
}

/// The claims of `token`, decoded as `jsonwebtoken` decodes them, without looking at its
/// signature (`insecure_skip_token_signature_verify`, or once the signature was checked).
fn unverified_claims(token: &str) -> Result<serde_json::Value, TokenError> {
    jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token)
        .map_err(|error| TokenError::Invalid(describe(&error)))
}

/// The claims of `token` if its signature verifies with `key` under `alg` (the header's);
/// a key of another family than the algorithm's is refused.
fn verify_with(key: &VerifyingKey, alg: Alg, token: &str) -> Result<serde_json::Value, TokenError> {
    match (key, alg) {
        (VerifyingKey::Jwt(key), Alg::Jwt(alg)) => {
            jsonwebtoken::decode::<serde_json::Value>(token, key, &validation(alg))
                .map(|data| data.claims)
                .map_err(|error| TokenError::Invalid(describe(&error)))
        }
        (VerifyingKey::P521(key), Alg::Es512) => es512::decode(token, key),
        _ => Err(TokenError::invalid("algorithm does not match the key")),
    }
}

/// Verifies tokens with the keys from `client.token` (and `client.subscription_token`).
#[derive(Debug)]
pub struct TokenVerifier {
    connection: KeySet,
    subscription: Option<KeySet>,
    skip_signature: bool,
}

impl TokenVerifier {
    /// Builds the verifier; fails on key material that does not parse.
    pub fn from_settings(settings: &Settings) -> Result<Self, KeyError> {
        let client = &settings.client;
        let connection = KeySet::from_settings(&client.token, "client.token")?;
        let subscription = if client.subscription_token.enabled {
            Some(KeySet::from_settings(&client.subscription_token.token, "client.subscription_token")?)
        } else {
            None
        };
        Ok(Self { connection, subscription, skip_signature: client.insecure_skip_token_signature_verify })
    }

    /// Whether any key is configured for connection tokens.
    pub fn has_connection_keys(&self) -> bool {
        self.connection.has_keys()
    }

    /// The JWKS to fetch again before `token` can be verified: its keys come from a JWKS that
    /// has no key with the token's `kid` (key rotation). The caller refreshes it, then verifies.
    pub fn jwks_to_refresh(&self, token: &str, subscription: bool) -> Option<Arc<jwks::Jwks>> {
        let keys = if subscription { self.subscription.as_ref().unwrap_or(&self.connection) } else { &self.connection };
        let jwks = jwks_for(keys, token).ok()??;
        let kid = header(token).ok()?.1.kid?;
        jwks.key(&kid).is_none().then_some(jwks)
    }

    /// Verifies a connection token at time `now` (Unix seconds).
    pub fn verify_connection(&self, token: &str, now: i64) -> Result<ConnectionClaims, TokenError> {
        let payload = self.decode(&self.connection, token, now)?;
        ConnectionClaims::from_payload(payload, &self.connection.user_id_claim)
    }

    /// Verifies a subscription token at time `now` (Unix seconds).
    pub fn verify_subscription(&self, token: &str, now: i64) -> Result<SubscriptionClaims, TokenError> {
        let keys = self.subscription.as_ref().unwrap_or(&self.connection);
        let payload = self.decode(keys, token, now)?;
        SubscriptionClaims::from_payload(payload, &keys.user_id_claim)
    }

    fn decode(&self, keys: &KeySet, token: &str, now: i64) -> Result<serde_json::Value, TokenError> {
        let (alg, header) = header(token)?;
        let payload = self.decode_signed(keys, token, alg, header.kid, now)?;
        claims::check_registered(&payload, keys, now)?;
        Ok(payload)
    }

    fn decode_signed(
        &self,
        keys: &KeySet,
        token: &str,
        alg: Alg,
        kid: Option<String>,
        now: i64,
    ) -> Result<serde_json::Value, TokenError> {
        if let Some(jwks) = jwks_for(keys, token)? {
            return self.decode_with_jwks(&jwks, token, alg, kid);
        }
        let candidates = keys.keys_for(alg, now);
        if candidates.is_empty() {
            return Err(TokenError::Invalid(format!("algorithm {alg} is not enabled by the configured keys")));
        }
        if self.skip_signature {
            return unverified_claims(token);
        }
        let mut last = TokenError::invalid("bad signature");
        for key in candidates {
            match verify_with(key, alg, token) {
                Ok(claims) => return Ok(claims),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

impl TokenVerifier {
    /// JWKS only (the other keys of this token kind are ignored, as in Centrifugo): the key
    /// named by the token's `kid`, with an algorithm it allows.
    fn decode_with_jwks(
        &self,
        jwks: &jwks::Jwks,
        token: &str,
        alg: Alg,
        kid: Option<String>,
    ) -> Result<serde_json::Value, TokenError> {
        let kid = kid.filter(|kid| !kid.is_empty()).ok_or_else(|| TokenError::invalid("token has no kid"))?;
        let (key, algorithms) =
            jwks.key(&kid).ok_or_else(|| TokenError::invalid("no key with the token's kid in the JWKS"))?;
        if !algorithms.contains(&alg) {
            return Err(TokenError::invalid("algorithm does not match the key"));
        }
        if self.skip_signature {
            return unverified_claims(token);
        }
        verify_with(&key, alg, token)
    }
}

/// The key set that verifies `token`, when its keys come from a JWKS: a templated endpoint is
/// filled from the named groups of `issuer_regex` (on `iss`) and `audience_regex` (on the first
/// `aud` it matches), read from the token before its signature is checked, as Centrifugo does.
fn jwks_for(keys: &KeySet, token: &str) -> Result<Option<Arc<jwks::Jwks>>, TokenError> {
    let Some(source) = &keys.jwks else { return Ok(None) };
    if !source.is_templated() {
        return source.for_vars(&std::collections::HashMap::new()).map(Some).map_err(TokenError::Invalid);
    }
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(token)
        .map_err(|_| TokenError::invalid("malformed token"))?;
    let mut vars = std::collections::HashMap::new();
    if let Some(pattern) = &keys.issuer_regex {
        let iss = claims.get("iss").and_then(serde_json::Value::as_str).unwrap_or_default();
        let captures =
            pattern.captures(iss).ok_or_else(|| TokenError::invalid("issuer does not match issuer_regex"))?;
        named_groups(pattern, &captures, &mut vars);
    }
    if let Some(pattern) = &keys.audience_regex {
        let captures = claims::audiences(claims.get("aud"))
            .find_map(|aud| pattern.captures(aud))
            .ok_or_else(|| TokenError::invalid("no audience matches audience_regex"))?;
        named_groups(pattern, &captures, &mut vars);
    }
    source.for_vars(&vars).map(Some).map_err(TokenError::Invalid)
}

fn named_groups(
    pattern: &regex::Regex,
    captures: &regex::Captures<'_>,
    vars: &mut std::collections::HashMap<String, String>,
) {
    for name in pattern.capture_names().flatten() {
        if let Some(value) = captures.name(name) {
            vars.insert(name.to_owned(), value.as_str().to_owned());
        }
    }
}

/// Signature and algorithm only: time and claim checks are Centrifugo's, in `claims`.
fn validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    validation
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key".into(),
        ErrorKind::Json(_) => "claims are not valid JSON".into(),
        _ => "malformed token".into(),
    }
}

#[cfg(test)]
mod tests;
