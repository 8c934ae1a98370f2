//! HTTP proxy calls: a JSON POST on a pooled keep-alive client (one per worker thread, as the
//! sessions that call it run on that thread), with the response body bounded.

use awc::http::header::{HeaderName, HeaderValue};

use super::CallError;

thread_local! {
    /// Connections to backends are kept alive and reused by every session of this thread.
    static CLIENT: awc::Client = client();
}

fn client() -> awc::Client {
    let mut connector = awc::Connector::new();
    if let Some(tls) = crate::auth::jwks::tls_config() {
        connector = connector.rustls_0_23(tls);
    }
    // The proxy's own timeout bounds each call; this one only stops a call nothing bounds.
    // Redirects are not followed: a proxy endpoint that redirects is misconfigured, and
    // following it would carry the client's headers to wherever it points.
    awc::Client::builder().connector(connector).timeout(std::time::Duration::from_secs(60)).disable_redirects().finish()
}

/// POSTs `body` as JSON; the body of a 200 answer, at most `limit` bytes.
pub(super) async fn post(
    url: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    limit: usize,
) -> Result<bytes::Bytes, CallError> {
    let mut request = CLIENT.with(|client| client.post(url));
    for (name, value) in headers {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => request = request.insert_header((name, value)),
            _ => tracing::debug!(header = %name, "a header not valid in HTTP is not passed to the proxy"),
        }
    }
    let mut response = request
        .insert_header(("content-type", "application/json"))
        .send_body(body)
        .await
        .map_err(|e| CallError::Transport(e.to_string()))?;
    if response.status() != awc::http::StatusCode::OK {
        return Err(CallError::Status(response.status().as_u16()));
    }
    response.body().limit(limit).await.map_err(|e| CallError::Body(e.to_string()))
}
