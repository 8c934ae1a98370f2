//! API key check (protocol-server.md §1.2), constant-time.

use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use crate::config::HttpApiSettings;
use crate::telemetry::LogBudget;

/// `X-API-Key`, else `Authorization: apikey KEY`, else `?api_key=`; an empty configured key
/// refuses everything unless `insecure`.
pub(super) fn authorized(req: &HttpRequest, settings: &HttpApiSettings) -> bool {
    if settings.insecure {
        return true;
    }
    if settings.key.is_empty() {
        // Any caller can trigger this: a few lines a minute say it.
        static EMPTY_KEY: LogBudget = LogBudget::new(5);
        if EMPTY_KEY.allow() {
            tracing::warn!("API call refused: http_api.key is empty (set it, or http_api.insecure for development)");
        }
        return false;
    }
    let key = settings.key.as_bytes();
    let matches = |candidate: &[u8]| bool::from(candidate.ct_eq(key));
    let by_header = if let Some(header) = req.headers().get("X-API-Key").filter(|v| !v.is_empty()) {
        // A wrong X-API-Key is not retried with Authorization, but still with the query.
        matches(header.as_bytes())
    } else {
        req.headers().get("Authorization").and_then(|v| v.to_str().ok()).is_some_and(|header| {
            let mut parts = header.split_whitespace();
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(scheme), Some(value), None) if scheme.eq_ignore_ascii_case("apikey") && matches(value.as_bytes()))
        })
    };
    by_header || query_key(req.query_string()).is_some_and(|value| matches(value.as_bytes()))
}

/// The first `api_key` query parameter, decoded as Go's `URL.Query()` does (`+` is a space,
/// `%XX` a byte); a query that does not parse has none.
fn query_key(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs.into_iter().find_map(|(name, value)| (name == "api_key").then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_key_is_percent_decoded() {
        assert_eq!(query_key("api_key=a%2Bb%2Fc%3D%25"), Some("a+b/c=%".to_owned()));
        assert_eq!(query_key("x=1&api_key=a+b&api_key=second"), Some("a b".to_owned()));
        assert_eq!(query_key("x=1"), None);
    }
}
