//! ES512 (ECDSA on P-521 with SHA-512), which `jsonwebtoken` does not implement: the key is
//! read and the signature checked here, with RustCrypto's `p521`; the header and the claims are
//! read with `jsonwebtoken`'s own decoders, and the claims checked by the code every other
//! algorithm goes through, so an ES512 token is accepted or refused exactly as an ES256 one.

use base64::Engine as _;
use jsonwebtoken::Header;
use p521::ecdsa::signature::Verifier as _;
use p521::ecdsa::{Signature, VerifyingKey};
use p521::pkcs8::DecodePublicKey as _;

use super::TokenError;

/// The name of the algorithm in a token's header.
pub(super) const NAME: &str = "ES512";

/// Bytes of one P-521 coordinate or scalar.
const FIELD_BYTES: usize = 66;

/// The P-521 key of a PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`); `None` for any other key
/// (another curve, RSA, not PEM), which is then left to `jsonwebtoken`.
pub(super) fn key_from_pem(pem: &str) -> Option<VerifyingKey> {
    let key = p521::PublicKey::from_public_key_pem(pem.trim()).ok()?;
    VerifyingKey::from_affine(*key.as_affine()).ok()
}

/// The P-521 key whose uncompressed SEC1 point is `point` (as `jsonwebtoken` reads it from a PEM
/// certificate, of any curve); `None` for a point of another curve.
pub(super) fn key_from_point(point: &[u8]) -> Option<VerifyingKey> {
    (point.len() == 1 + 2 * FIELD_BYTES).then(|| VerifyingKey::from_sec1_bytes(point).ok()).flatten()
}

/// The P-521 key of a JWK's base64url `x` and `y` (66 bytes each; shorter ones are read as
/// big-endian numbers, as Centrifugo does); it must be a point of the curve.
pub(super) fn key_from_coordinates(x: &str, y: &str) -> Result<VerifyingKey, String> {
    let coordinate = |name: &str, text: &str| -> Result<Vec<u8>, String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("{name} is not base64url"))?;
        if bytes.is_empty() || bytes.len() > FIELD_BYTES {
            return Err(format!("{name} is not a P-521 coordinate"));
        }
        let mut padded = vec![0; FIELD_BYTES - bytes.len()];
        padded.extend_from_slice(&bytes);
        Ok(padded)
    };
    let mut sec1 = Vec::with_capacity(1 + 2 * FIELD_BYTES);
    sec1.push(0x04);
    sec1.extend(coordinate("x", x)?);
    sec1.extend(coordinate("y", y)?);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| "the point is not on the P-521 curve".to_owned())
}

/// The header of a token whose `alg` is ES512 (`None` for any other token): read as
/// `jsonwebtoken` reads headers, so it is refused or accepted for the same reasons.
pub(super) fn header(token: &str) -> Option<Header> {
    let (message, _signature) = token.rsplit_once('.')?;
    let (encoded, _payload) = message.rsplit_once('.')?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let alg = value.as_object_mut()?.get_mut("alg")?;
    if alg.as_str() != Some(NAME) {
        return None;
    }
    // Any algorithm `jsonwebtoken` knows stands in for ES512, which it does not.
    *alg = serde_json::Value::from("ES384");
    serde_json::from_value(value).ok()
}

/// The claims of `token` when its ES512 signature verifies with `key` (the header is already
/// known to say ES512). Signature first, as `jsonwebtoken` does: nothing of an unsigned payload
/// is read.
pub(super) fn decode(token: &str, key: &VerifyingKey) -> Result<serde_json::Value, TokenError> {
    let malformed = || TokenError::invalid("malformed token");
    let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
    if !message.contains('.') {
        return Err(malformed());
    }
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?;
    // Raw r || s, 66 bytes each (RFC 7518 §3.4); zero or out-of-range scalars are refused.
    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::invalid("bad signature"))?;
    key.verify(message.as_bytes(), &signature).map_err(|_| TokenError::invalid("bad signature"))?;
    super::unverified_claims(token)
}
