//! The WebSocket route: origin check, upgrade, one [`ClientSession`] per connection.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, Error, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use super::ClientSession;
use crate::node::Node;

/// Centrifugo's JSON subprotocol, selected when a client offers it.
const JSON_SUBPROTOCOL: &str = "centrifuge-json";

/// `GET /connection/websocket`.
pub async fn upgrade(req: HttpRequest, stream: web::Payload, node: web::Data<Arc<Node>>) -> HttpResponse {
    if node.is_draining() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    if !node.admit_connection() {
        tracing::info!("WebSocket handshake refused: client.connection_limit or connection_rate_limit reached (503)");
        return HttpResponse::ServiceUnavailable().finish();
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin_allowed(origin, &node.settings.client.allowed_origins) {
            tracing::info!(%origin, "WebSocket handshake refused: origin not in client.allowed_origins");
            return HttpResponse::Forbidden().finish();
        }
    }
    let limit = node.settings.websocket.message_size_limit;
    let session = ClientSession::new(node.get_ref().clone());
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(limit)
        .protocols(&[JSON_SUBPROTOCOL])
        .start()
        .unwrap_or_else(|error| {
            tracing::debug!(%error, "WebSocket handshake failed");
            HttpResponse::from_error(error)
        })
}

/// The root span of HTTP requests, except WebSocket upgrades: an upgrade's response body lives
/// as long as the connection and keeps its span alive (~700 bytes of formatted fields per idle
/// connection at `info`) and entered around every write.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        if is_websocket_upgrade(request.headers()) {
            Span::none()
        } else {
            DefaultRootSpanBuilder::on_request_start(request)
        }
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get(header::UPGRADE).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Whether `origin` matches one of the patterns (`*` matches any run of characters;
/// case-insensitive). An empty list allows nothing: only requests without an Origin header
/// pass, as in Centrifugo.
pub fn origin_allowed(origin: &str, patterns: &[String]) -> bool {
    let origin = origin.to_ascii_lowercase();
    patterns.iter().any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &origin))
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn origin_patterns_match_like_centrifugo() {
        assert!(origin_allowed("http://localhost:3000", &patterns(&["http://localhost:*"])));
        assert!(!origin_allowed("http://evil.com", &patterns(&["http://localhost:*"])));
        assert!(origin_allowed("https://anything", &patterns(&["*"])));
        assert!(origin_allowed("HTTPS://App.Example.com", &patterns(&["https://*.example.com"])));
        assert!(!origin_allowed("https://example.com", &patterns(&["https://*.example.com"])));
        assert!(!origin_allowed("http://localhost", &patterns(&[])));
    }
}
