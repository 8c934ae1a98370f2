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

// ES512 (ECDSA P-521 + SHA-512), verified by gyre itself: a test-only P-521 key pair generated
// with openssl, and a token openssl signed with it (its raw r || s converted from DER).
const P521_PRIVATE: &str = include_str!("testdata/ec_p521_private.pem");
const P521_PUBLIC: &str = include_str!("testdata/ec_p521_public.pem");
const P521_JWK: &str = include_str!("testdata/ec_p521_public.jwk.json");
const ES512_BY_OPENSSL: &str = include_str!("testdata/es512_openssl.jwt");

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES512 token of `claims` signed with the test P-521 key, with `header` fields added.
fn es512(claims: serde_json::Value, header: serde_json::Value) -> String {
    use p521::ecdsa::signature::Signer as _;
    use p521::pkcs8::DecodePrivateKey as _;
    let mut full = json!({"alg": "ES512", "typ": "JWT"});
    if let (Some(full), Some(extra)) = (full.as_object_mut(), header.as_object()) {
        full.extend(extra.clone());
    }
    let message = format!("{}.{}", b64url(full.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let secret = p521::SecretKey::from_pkcs8_pem(P521_PRIVATE).unwrap();
    let key = p521::ecdsa::SigningKey::from_bytes(&secret.to_bytes()).unwrap();
    let signature: p521::ecdsa::Signature = key.sign(message.as_bytes());
    format!("{message}.{}", b64url(&signature.to_bytes()))
}

fn p521_verifier(subscription_tokens: bool) -> TokenVerifier {
    let mut settings = Settings::default();
    settings.client.token.ecdsa_public_key = P521_PUBLIC.into();
    if subscription_tokens {
        settings.client.subscription_token.enabled = true;
        settings.client.subscription_token.token.ecdsa_public_key = P521_PUBLIC.into();
    }
    TokenVerifier::from_settings(&settings).unwrap()
}

#[test]
fn es512_connection_and_subscription_tokens_verify_with_a_p521_pem() {
    let token = es512(json!({"sub": "9", "exp": NOW + 60, "info": {"a": 1}}), json!({}));
    let claims = p521_verifier(false).verify_connection(&token, NOW).unwrap();
    assert_eq!((claims.user.as_str(), claims.expire_at), ("9", Some(NOW + 60)));
    assert_eq!(claims.info.unwrap().as_bytes(), br#"{"a":1}"#);
    let token = es512(json!({"sub": "9", "channel": "$news"}), json!({}));
    for verifier in [p521_verifier(false), p521_verifier(true)] {
        assert_eq!(verifier.verify_subscription(&token, NOW).unwrap().channel, "$news");
    }
    // Signed by another implementation (openssl), not only by the one that verifies.
    let claims = p521_verifier(false).verify_connection(ES512_BY_OPENSSL.trim(), NOW).unwrap();
    assert_eq!(claims.user, "openssl");
}

#[test]
fn tampered_or_mangled_es512_tokens_are_invalid() {
    let token = es512(json!({"sub": "9"}), json!({}));
    let verifier = p521_verifier(false);
    let (message, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = message.split_once('.').unwrap();
    let forged = format!("{header}.{}.{signature}", b64url(br#"{"sub":"10"}"#));
    let mut flipped = signature.to_owned().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{message}.{}", String::from_utf8(flipped).unwrap());
    let short = format!("{message}.{}", &signature[..signature.len() - 4]);
    let zero = format!("{message}.{}", b64url(&[0; 132]));
    let overflow = format!("{message}.{}", b64url(&[0xff; 132]));
    for bad in [forged, flipped, short, zero, overflow, format!("{message}."), format!("{message}.!!"), message.into()]
    {
        assert!(matches!(verifier.verify_connection(&bad, NOW), Err(TokenError::Invalid(_))), "{bad}");
    }
    // The header's other fields are read as for any algorithm: a header that is not JSON, or
    // whose known fields have the wrong type, is malformed.
    let bad_header = format!("{}.{}", b64url(br#"{"alg":"ES512","kid":5}"#), token.split_once('.').unwrap().1);
    assert!(matches!(verifier.verify_connection(&bad_header, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn expired_es512_token_is_expired_and_claims_are_checked_as_for_any_algorithm() {
    let verifier = p521_verifier(true);
    let token = es512(json!({"sub": "9", "exp": NOW}), json!({}));
    assert_eq!(verifier.verify_connection(&token, NOW).unwrap_err(), TokenError::Expired);
    let token = es512(json!({"sub": "9", "channel": "c", "nbf": NOW + 1}), json!({}));
    assert_eq!(verifier.verify_subscription(&token, NOW).unwrap_err(), TokenError::Expired);
    let mut settings = Settings::default();
    settings.client.token.ecdsa_public_key = P521_PUBLIC.into();
    settings.client.token.audience = "gyre".into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    assert!(verifier.verify_connection(&es512(json!({"sub": "9", "aud": "gyre"}), json!({})), NOW).is_ok());
    let wrong = es512(json!({"sub": "9", "aud": "other"}), json!({}));
    assert_eq!(verifier.verify_connection(&wrong, NOW).unwrap_err(), TokenError::invalid("audience mismatch"));
}

#[test]
fn es512_and_p256_keys_do_not_verify_each_others_algorithms() {
    // ES512 with a P-256 key configured (and HMAC, RSA): refused, as any disabled algorithm.
    let token = es512(json!({"sub": "9"}), json!({}));
    let error = asymmetric_verifier().verify_connection(&token, NOW).unwrap_err();
    assert_eq!(error, TokenError::invalid("algorithm ES512 is not enabled by the configured keys"));
    assert!(matches!(verifier().verify_subscription(&token, NOW), Err(TokenError::Invalid(_))));
    // ES256 / ES384 with the P-521 key configured: refused.
    for alg in [jsonwebtoken::Algorithm::ES256, jsonwebtoken::Algorithm::ES384] {
        let header = Header::new(alg);
        let ec = encode(&header, &json!({"sub": "7"}), &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap());
        // ES384 cannot sign with a P-256 key; forge the header instead.
        let ec = ec.unwrap_or_else(|_| {
            let es256 = encode(
                &Header::new(jsonwebtoken::Algorithm::ES256),
                &json!({"sub": "7"}),
                &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
            )
            .unwrap();
            let rest = es256.split_once('.').unwrap().1.to_owned();
            format!("{}.{rest}", b64url(br#"{"alg":"ES384","typ":"JWT"}"#))
        });
        assert!(matches!(p521_verifier(true).verify_connection(&ec, NOW), Err(TokenError::Invalid(_))), "{alg:?}");
        assert!(matches!(p521_verifier(true).verify_subscription(&ec, NOW), Err(TokenError::Invalid(_))));
    }
    // An ES512 header on a token signed with ES256 (its 64-byte signature): refused.
    let es256 = encode(
        &Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"sub": "7"}),
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    let relabelled = format!("{}.{}", b64url(br#"{"alg":"ES512","typ":"JWT"}"#), es256.split_once('.').unwrap().1);
    assert!(matches!(p521_verifier(false).verify_connection(&relabelled, NOW), Err(TokenError::Invalid(_))));
}

#[test]
fn es512_tokens_with_insecure_skip_signature_verify_still_decode() {
    let mut settings = Settings::default();
    settings.client.token.ecdsa_public_key = P521_PUBLIC.into();
    settings.client.insecure_skip_token_signature_verify = true;
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let token = es512(json!({"sub": "9"}), json!({}));
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(verifier.verify_connection(&format!("{message}.AAAA"), NOW).unwrap().user, "9");
}

#[test]
fn es512_tokens_verify_with_a_jwks_p521_key_by_kid() {
    let mut settings = Settings::default();
    settings.client.token.jwks_public_endpoint = "http://127.0.0.1:9/jwks".into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    let Some(jwks::JwksSource::Fixed(set)) = &verifier.connection.jwks else { panic!("a fixed JWKS") };
    let token = es512(json!({"sub": "9"}), json!({"kid": "ec-p521-1"}));
    assert!(verifier.jwks_to_refresh(&token, false).is_some(), "an unknown kid asks for a fetch");
    set.store(format!(r#"{{"keys":[{P521_JWK}]}}"#).as_bytes()).unwrap();
    assert!(verifier.jwks_to_refresh(&token, false).is_none());
    assert_eq!(verifier.verify_connection(&token, NOW).unwrap().user, "9");
    let other_kid = es512(json!({"sub": "9"}), json!({"kid": "ec-1"}));
    assert!(matches!(verifier.verify_connection(&other_kid, NOW), Err(TokenError::Invalid(_))));
    let no_kid = es512(json!({"sub": "9"}), json!({}));
    assert!(matches!(verifier.verify_connection(&no_kid, NOW), Err(TokenError::Invalid(_))));
    // A P-256 JWK under the same kid does not verify ES512.
    let p256 = include_str!("testdata/ec_public.jwk.json").replace("\"ec-1\"", "\"ec-p521-1\"");
    set.store(format!(r#"{{"keys":[{p256}]}}"#).as_bytes()).unwrap();
    let error = verifier.verify_connection(&token, NOW).unwrap_err();
    assert_eq!(error, TokenError::invalid("algorithm does not match the key"));
}

#[test]
fn bad_p521_pem_is_a_config_error_and_a_p521_pem_is_told_by_its_curve() {
    let mut settings = Settings::default();
    settings.client.token.ecdsa_public_key = P521_PUBLIC.replace("MIGb", "MIGc");
    let error = TokenVerifier::from_settings(&settings).unwrap_err();
    assert_eq!(error.key, "client.token.ecdsa_public_key");
    settings.client.token.ecdsa_public_key = EC_PUBLIC.into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    assert!(matches!(verifier.connection.ecdsa, Some(VerifyingKey::Jwt(_))));
    assert!(matches!(p521_verifier(false).connection.ecdsa, Some(VerifyingKey::P521(_))));
    // A PEM certificate (self-signed with the test key) holds a P-521 key too.
    settings.client.token.ecdsa_public_key = include_str!("testdata/ec_p521_cert.pem").into();
    let verifier = TokenVerifier::from_settings(&settings).unwrap();
    assert_eq!(verifier.verify_connection(&es512(json!({"sub": "9"}), json!({})), NOW).unwrap().user, "9");
}
