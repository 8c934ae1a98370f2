//! API key check (protocol-server.md §1.2), constant-time.

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use crate::config::HttpApiSettings;

/// `X-API-Key`, else `Authorization: apikey KEY`, else `?api_key=`; an empty configured key
/// refuses everything unless `insecure`.
pub(super) fn authorized(req: &HttpRequest, settings: &HttpApiSettings) -> bool {
    if settings.insecure {
        return true;
    }
    if settings.key.is_empty() {
        tracing::warn!("API call refused: http_api.key is empty (set it, or http_api.insecure for development)");
        return false;
    }
    let key = settings.key.as_bytes();
    let matches = |candidate: &[u8]| bool::from(candidate.ct_eq(key));
    if let Some(header) = req.headers().get("X-API-Key").filter(|v| !v.is_empty()) {
        return matches(header.as_bytes());
    }
    if let Some(header) = req.headers().get("Authorization").and_then(|v| v.to_str().ok()) {
        let mut parts = header.split_whitespace();
        if let (Some(scheme), Some(value), None) = (parts.next(), parts.next(), parts.next()) {
            if scheme.eq_ignore_ascii_case("apikey") && matches(value.as_bytes()) {
                return true;
            }
        }
    }
    query_key(req.query_string()).is_some_and(|value| matches(value.as_bytes()))
}

fn query_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "api_key").then(|| value.to_owned())
    })
}
