//! Admin tokens in the format Centrifugo's admin issues (gorilla/securecookie with a hash key
//! only, protocol-extensions.md §8), so a token from either works with the other when they share
//! `admin.secret`: base64url(`<unix ts>|<base64url(gob("authorized"))>|<HMAC-SHA256>`), the MAC
//! over `token|<ts>|<value>`, valid 30 days.

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a token is valid (securecookie's default max age).
pub const LIFETIME_SECS: i64 = 30 * 86_400;

/// The cookie name securecookie puts under the MAC.
const NAME: &str = "token";

/// `"authorized"` as Go's `encoding/gob` writes a string.
const VALUE: &[u8] = b"\x0d\x0c\x00\x0aauthorized";

fn mac(secret: &str, signed: &[u8]) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(signed);
    Some(mac.finalize().into_bytes().to_vec())
}

/// A token issued at `now` (Unix seconds); `None` with an empty secret.
pub fn issue(secret: &str, now: i64) -> Option<String> {
    if secret.is_empty() {
        return None;
    }
    let value = URL_SAFE.encode(VALUE);
    let signed = format!("{NAME}|{now}|{value}");
    let mac = mac(secret, signed.as_bytes())?;
    let mut out = format!("{now}|{value}|").into_bytes();
    out.extend_from_slice(&mac);
    Some(URL_SAFE.encode(out))
}

/// Whether `token` is one `secret` signed, not older than [`LIFETIME_SECS`] and not from the
/// future.
pub fn verify(secret: &str, token: &str, now: i64) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Ok(raw) = URL_SAFE.decode(token.trim()) else { return false };
    let mut parts = raw.splitn(3, |b| *b == b'|');
    let (Some(ts), Some(value), Some(tag)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let mut signed = format!("{NAME}|").into_bytes();
    signed.extend_from_slice(ts);
    signed.push(b'|');
    signed.extend_from_slice(value);
    let Ok(mut check) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    check.update(&signed);
    if check.verify_slice(tag).is_err() {
        return false;
    }
    let Some(issued) = std::str::from_utf8(ts).ok().and_then(|ts| ts.parse::<i64>().ok()) else { return false };
    let fresh = issued <= now + 1 && now - issued <= LIFETIME_SECS;
    fresh && URL_SAFE.decode(value).is_ok_and(|value| value == VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_only_and_for_thirty_days() {
        let token = issue("s3cret", 1_000_000).unwrap();
        assert!(verify("s3cret", &token, 1_000_000));
        assert!(verify("s3cret", &token, 1_000_000 + LIFETIME_SECS));
        assert!(!verify("s3cret", &token, 1_000_000 + LIFETIME_SECS + 1), "expired");
        assert!(!verify("s3cret", &token, 999_000), "from the future");
        assert!(!verify("other", &token, 1_000_000), "another secret");
        assert!(!verify("", &token, 1_000_000));
        assert!(issue("", 1).is_none());
    }

    #[test]
    fn forged_and_mangled_tokens_are_refused() {
        let token = issue("k", 5).unwrap();
        let raw = URL_SAFE.decode(&token).unwrap();
        let mut later = b"9|".to_vec();
        later.extend_from_slice(&raw[2..]);
        assert!(!verify("k", &URL_SAFE.encode(later), 9), "the timestamp is under the MAC");
        for bad in ["", "not base64 !", "AAAA", &URL_SAFE.encode("1|x"), &token[..token.len() - 4]] {
            assert!(!verify("k", bad, 5), "{bad:?}");
        }
    }

    #[test]
    fn the_value_is_gob_authorized_as_centrifugo_writes_it() {
        let token = issue("k", 1_700_000_000).unwrap();
        let raw = URL_SAFE.decode(token).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("1700000000|DQwACmF1dGhvcml6ZWQ=|"), "{text}");
    }
}
