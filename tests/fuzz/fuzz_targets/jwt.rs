//! Connection and subscription tokens: raw token text, and claims JSON signed with the node's
//! HMAC key (so the claims parser sees every input, not only those that pass the signature);
//! and the same bytes as a JWKS document (what an identity provider's endpoint may serve).
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use gyre::auth::TokenVerifier;
use gyre::config::Settings;
use jsonwebtoken::{crypto, Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret";

fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let mut settings = Settings::default();
        settings.client.token.hmac_secret_key = SECRET.into();
        TokenVerifier::from_settings(&settings).expect("an HMAC key")
    })
}

fn signed(claims: &[u8]) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims));
    let signature =
        crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET.as_bytes()), Algorithm::HS256).ok()?;
    Some(format!("{message}.{signature}"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 3 == 2 {
        let _ = gyre::auth::jwks::parse(rest);
        return;
    }
    let token = if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else { return };
        text.to_owned()
    } else {
        let Some(token) = signed(rest) else { return };
        token
    };
    let _ = verifier().verify_connection(&token, 1_700_000_000);
    let _ = verifier().verify_subscription(&token, 1_700_000_000);
});
