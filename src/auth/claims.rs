//! Typed claims, read from a verified payload.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use super::keys::KeySet;
use super::TokenError;
use crate::domain::Payload;

/// Claims of a verified connection token.
#[derive(Debug, Clone)]
pub struct ConnectionClaims {
    /// User id (`""` = anonymous).
    pub user: String,
    /// When the connection expires (Unix s); `None` = never.
    pub expire_at: Option<i64>,
    /// Connection info (`info` / `b64info`).
    pub info: Option<Payload>,
    /// Server-side subscriptions (`subs` keys, else `channels`).
    pub channels: Vec<String>,
    /// Per-channel info from `subs`.
    pub subs_info: BTreeMap<String, Payload>,
    /// The whole payload.
    pub raw: Value,
}

/// Claims of a verified subscription token.
#[derive(Debug, Clone)]
pub struct SubscriptionClaims {
    /// User id; must equal the connection's.
    pub user: String,
    /// Channel the token grants.
    pub channel: String,
    /// Deprecated client id claim; if set, must equal the connection's id.
    pub client: String,
    /// When the subscription expires (Unix s); `None` = never.
    pub expire_at: Option<i64>,
    /// Channel info (`info` / `b64info`).
    pub info: Option<Payload>,
    /// Data for the subscribe reply (`data` / `b64data`).
    pub data: Option<Payload>,
    /// The whole payload.
    pub raw: Value,
}

/// `exp`/`nbf` (strict, no leeway) and the configured `aud`/`iss`.
pub(super) fn check_registered(payload: &Value, keys: &KeySet, now: i64) -> Result<(), TokenError> {
    if !payload.is_object() {
        return Err(TokenError::invalid("claims are not an object"));
    }
    let exp = numeric_date(payload, "exp")?;
    let nbf = numeric_date(payload, "nbf")?;
    let issuer_ok = keys.issuer.is_empty() || payload.get("iss").and_then(Value::as_str) == Some(&keys.issuer);
    if !issuer_ok {
        return Err(TokenError::invalid("issuer mismatch"));
    }
    if !keys.audience.is_empty() && !audience_contains(payload.get("aud"), &keys.audience) {
        return Err(TokenError::invalid("audience mismatch"));
    }
    if let Some(pattern) = &keys.issuer_regex {
        if !payload.get("iss").and_then(Value::as_str).is_some_and(|iss| pattern.is_match(iss)) {
            return Err(TokenError::invalid("issuer does not match issuer_regex"));
        }
    }
    if let Some(pattern) = &keys.audience_regex {
        if !audiences(payload.get("aud")).any(|aud| pattern.is_match(aud)) {
            return Err(TokenError::invalid("no audience matches audience_regex"));
        }
    }
    if exp.is_some_and(|exp| exp <= now as f64) || nbf.is_some_and(|nbf| nbf >= now as f64 + 1.0) {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// The `aud` claim's values (a string, or an array of strings).
pub(super) fn audiences(aud: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match aud {
        Some(Value::String(a)) => Box::new(std::iter::once(a.as_str())),
        Some(Value::Array(items)) => Box::new(items.iter().filter_map(Value::as_str)),
        _ => Box::new(std::iter::empty()),
    }
}

fn audience_contains(aud: Option<&Value>, wanted: &str) -> bool {
    match aud {
        Some(Value::String(a)) => a == wanted,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(wanted)),
        _ => false,
    }
}

/// A NumericDate claim: a number, or a string holding one (Go's json.Number accepts both).
fn numeric_date(payload: &Value, claim: &str) -> Result<Option<f64>, TokenError> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| TokenError::Invalid(format!("{claim} is not a number")))
        }
        Some(_) => Err(TokenError::Invalid(format!("{claim} is not a number"))),
    }
}

/// The user id from `sub` (must be a string) or from the configured claim (numbers stringified).
fn user_id(payload: &Value, user_id_claim: &str) -> Result<String, TokenError> {
    if !user_id_claim.is_empty() {
        return Ok(match payload.get(user_id_claim) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        });
    }
    string_claim(payload, "sub")
}

fn string_claim(payload: &Value, claim: &str) -> Result<String, TokenError> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(TokenError::Invalid(format!("{claim} must be a string"))),
    }
}

/// `expire_at` present and > 0 wins; present and ≤ 0 means "never"; absent falls back to `exp`.
fn expiry(payload: &Value) -> Result<Option<i64>, TokenError> {
    match numeric_date(payload, "expire_at")? {
        Some(at) if at > 0.0 => Ok(Some(at as i64)),
        Some(_) => Ok(None),
        None => Ok(numeric_date(payload, "exp")?.map(|exp| exp as i64)),
    }
}

/// The JSON value of `<name>` or, when non-empty, the bytes base64-encoded in `b64<name>` (any
/// bytes: Protobuf clients take binary info; JSON clients are closed with 3506 if it is not JSON).
fn raw_claim(payload: &Value, name: &str) -> Result<Option<Payload>, TokenError> {
    let b64_name = format!("b64{name}");
    if let Some(encoded) = payload.get(&b64_name).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| TokenError::Invalid(format!("{b64_name} is not base64")))?;
        return Ok(Some(Payload::new(bytes)));
    }
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => to_raw(value).map(Some),
    }
}

fn to_raw(value: &Value) -> Result<Payload, TokenError> {
    serde_json::value::to_raw_value(value).map(Payload::from_json).map_err(|_| TokenError::invalid("claim is not JSON"))
}

fn string_list(payload: &Value, claim: &str) -> Result<Vec<String>, TokenError> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| TokenError::Invalid(format!("{claim} must hold strings")))
            })
            .collect(),
        Some(_) => Err(TokenError::Invalid(format!("{claim} must be a list"))),
    }
}

impl ConnectionClaims {
    pub(super) fn from_payload(payload: Value, user_id_claim: &str) -> Result<Self, TokenError> {
        if payload.get("channel").and_then(Value::as_str).is_some_and(|c| !c.is_empty()) {
            return Err(TokenError::invalid("connection token must not carry a channel claim"));
        }
        let mut subs_info = BTreeMap::new();
        let mut channels = Vec::new();
        if let Some(subs) = payload.get("subs").and_then(Value::as_object).filter(|m| !m.is_empty()) {
            for (channel, options) in subs {
                channels.push(channel.clone());
                if let Some(info) = raw_claim(options, "info")? {
                    subs_info.insert(channel.clone(), info);
                }
            }
        } else {
            channels = string_list(&payload, "channels")?;
        }
        Ok(Self {
            user: user_id(&payload, user_id_claim)?,
            expire_at: expiry(&payload)?,
            info: raw_claim(&payload, "info")?,
            channels,
            subs_info,
            raw: payload,
        })
    }
}

impl SubscriptionClaims {
    pub(super) fn from_payload(payload: Value, user_id_claim: &str) -> Result<Self, TokenError> {
        let channel = string_claim(&payload, "channel")?;
        if channel.is_empty() {
            return Err(TokenError::invalid("subscription token has no channel claim"));
        }
        Ok(Self {
            user: user_id(&payload, user_id_claim)?,
            channel,
            client: string_claim(&payload, "client")?,
            expire_at: expiry(&payload)?,
            info: raw_claim(&payload, "info")?,
            data: raw_claim(&payload, "data")?,
            raw: payload,
        })
    }
}
