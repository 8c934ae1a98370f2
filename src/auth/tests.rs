use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;

const SECRET: &str = "secret";
const NOW: i64 = 1_700_000_000;

fn verifier() -> TokenVerifier {
    let mut settings = Settings::default();
    settings.client.token.hmac_secret_key = SECRET.into();
    TokenVerifier::from_settings(&settings).unwrap()
}

fn sign(claims: serde_json::Value, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[test]
fn valid_connection_token_gives_user_expiry_and_info() {
    let token = sign(json!({"sub": "42", "exp": NOW + 60, "info": {"name": "Alice"}}), SECRET);
    let claims = verifier().verify_connection(&token, NOW).unwrap();
    assert_eq!(claims.user, "42");
    assert_eq!(claims.expire_at, Some(NOW + 60));
    assert_eq!(claims.info.unwrap().as_bytes(), br#"{"name":"Alice"}"#);
}

#[test]
fn wrong_secret_is_invalid_and_expired_is_expired() {
    let token = sign(json!({"sub": "42"}), "other");
    assert!(matches!(verifier().verify_connection(&token, NOW), Err(TokenError::Invalid(_))));
    let token = sign(json!({"sub": "42", "exp": NOW}), SECRET);
    assert_eq!(verifier().verify_connection(&token, NOW).unwrap_err(), TokenError::Expired);
    let token = sign(json!({"sub": "42", "nbf": NOW + 10}), SECRET);
    assert_eq!(verifier().verify_connection(&token, NOW).unwrap_err(), TokenError::Expired);
}

#[test]
fn alg_none_and_garbage_are_invalid() {
    // {"alg":"none","typ":"JWT"} . {"sub":"42"} . (no signature)
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI0MiJ9.";
    assert!(matches!(verifier().verify_connection(none, NOW), Err(TokenError::Invalid(_))));
    assert!(matches!(verifier().verify_connection("not-a-token", NOW), Err(TokenError::Invalid(_))));
    assert!(matches!(verifier().verify_connection("", NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn numeric_sub_and_channel_claim_are_invalid_for_connections() {
    let token = sign(json!({"sub": 42}), SECRET);
    assert!(matches!(verifier().verify_connection(&token, NOW), Err(TokenError::Invalid(_))));
    let token = sign(json!({"sub": "42", "channel": "news"}), SECRET);
    assert!(matches!(verifier().verify_connection(&token, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn expire_at_overrides_exp() {
    let token = sign(json!({"sub": "1", "exp": NOW + 60, "expire_at": 0}), SECRET);
    assert_eq!(verifier().verify_connection(&token, NOW).unwrap().expire_at, None);
    let token = sign(json!({"sub": "1", "exp": NOW + 60, "expire_at": NOW + 5}), SECRET);
    assert_eq!(verifier().verify_connection(&token, NOW).unwrap().expire_at, Some(NOW + 5));
}

#[test]
fn subscription_token_needs_a_channel() {
    let token = sign(json!({"sub": "1", "channel": "$x", "b64info": "eyJhIjoxfQ=="}), SECRET);
    let claims = verifier().verify_subscription(&token, NOW).unwrap();
    assert_eq!(claims.channel, "$x");
    assert_eq!(claims.info.unwrap().as_bytes(), br#"{"a":1}"#);
    let token = sign(json!({"sub": "1"}), SECRET);
    assert!(matches!(verifier().verify_subscription(&token, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let mut settings = Settings::default();
    settings.client.token.hmac_secret_key = SECRET.into();
    settings.client.token.audience = "gyre".into();
    settings.client.token.issuer = "backend".into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let good = sign(json!({"sub": "1", "aud": ["x", "gyre"], "iss": "backend"}), SECRET);
    assert!(verifier.verify_connection(&good, NOW).is_ok());
    let bad_aud = sign(json!({"sub": "1", "aud": "x", "iss": "backend"}), SECRET);
    assert!(matches!(verifier.verify_connection(&bad_aud, NOW), Err(TokenError::Invalid(_))));
    let no_iss = sign(json!({"sub": "1", "aud": "gyre"}), SECRET);
    assert!(matches!(verifier.verify_connection(&no_iss, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn audience_and_issuer_regexes_must_match() {
    let mut settings = Settings::default();
    settings.client.token.hmac_secret_key = SECRET.into();
    settings.client.token.audience_regex = "^app-(eu|us)$".into();
    settings.client.token.issuer_regex = r"^https://id\.example\.com/realms/[a-z]+$".into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let iss = "https://id.example.com/realms/acme";
    let good = sign(json!({"sub": "1", "aud": ["other", "app-eu"], "iss": iss}), SECRET);
    assert!(verifier.verify_connection(&good, NOW).is_ok());
    for (aud, iss) in
        [(json!("app-asia"), iss), (json!(["app-eu"]), "https://evil.example.com/realms/acme"), (json!(null), iss)]
    {
        let bad = sign(json!({"sub": "1", "aud": aud, "iss": iss}), SECRET);
        assert!(matches!(verifier.verify_connection(&bad, NOW), Err(TokenError::Invalid(_))), "{aud} {iss}");
    }
}

#[test]
fn hs_token_is_refused_when_only_rsa_is_configured() {
    let mut settings = Settings::default();
    settings.client.token.rsa_public_key = String::new();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let token = sign(json!({"sub": "1"}), SECRET);
    assert!(matches!(verifier.verify_connection(&token, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn previous_hmac_secret_works_until_its_deadline() {
    let mut settings = Settings::default();
    settings.client.token.hmac_secret_key = "new".into();
    settings.client.token.hmac_previous_secret_key = "old".into();
    settings.client.token.hmac_previous_secret_key_valid_until = NOW + 10;
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let token = sign(json!({"sub": "1"}), "old");
    assert!(verifier.verify_connection(&token, NOW).is_ok());
    assert!(verifier.verify_connection(&token, NOW + 11).is_err());
}

#[test]
fn bad_rsa_pem_is_a_config_error_naming_the_key() {
    let mut settings = Settings::default();
    settings.client.token.rsa_public_key = "not pem".into();
    let error = TokenVerifier::from_settings(&settings).unwrap_err();
    assert_eq!(error.key, "client.token.rsa_public_key");
}

// Test-only key pairs, generated for this suite with openssl.
const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("testdata/ec_private.pem");
const EC_PUBLIC: &str = include_str!("testdata/ec_public.pem");

fn asymmetric_verifier() -> TokenVerifier {
    let mut settings = Settings::default();
    settings.client.token.rsa_public_key = RSA_PUBLIC.into();
    settings.client.token.ecdsa_public_key = EC_PUBLIC.into();
    TokenVerifier::from_settings(&settings).unwrap()
}

#[test]
fn rsa_and_ecdsa_tokens_verify_with_their_public_keys() {
    let claims = json!({"sub": "7"});
    let rsa = encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    let ec = encode(
        &Header::new(jsonwebtoken::Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    let verifier = asymmetric_verifier();
    assert_eq!(verifier.verify_connection(&rsa, NOW).unwrap().user, "7");
    assert_eq!(verifier.verify_connection(&ec, NOW).unwrap().user, "7");
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // Classic algorithm confusion: the public key used as an HMAC secret.
    let forged = sign(json!({"sub": "7"}), RSA_PUBLIC);
    assert!(matches!(asymmetric_verifier().verify_connection(&forged, NOW), Err(TokenError::Invalid(_))));
}
