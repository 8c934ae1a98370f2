//! The WebSocket handshake: actix-http hands every `Upgrade: websocket` request over together
//! with its socket; this module checks it (path, draining, connection limits, origin, headers),
//! answers `101 Switching Protocols` and starts a [`ClientSession`] on the socket through
//! [`socket`](super::socket).

use std::sync::Arc;

use actix_codec::Framed;
use actix_http::body::{BodySize, BoxBody};
use actix_http::header::{self, HeaderValue};
use actix_http::{h1, ws, ConnectionType, Request, RequestHead, Response, StatusCode};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::rt::net::TcpStream;
use actix_web::HttpResponse;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::socket::{self, SocketIo, TlsSocket};
use super::ws_frames::negotiate_deflate;
use crate::client::ClientSession;
use crate::node::Node;
use crate::protocol::command::ConnectRequest;
use crate::protocol::Protocol;

/// Centrifugo's subprotocols: the first one a client offers is selected (and answered).
const JSON_SUBPROTOCOL: &str = "centrifuge-json";
const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// An upgrade request with the connection it arrived on.
pub type Upgrade<T> = (Request, Framed<T, h1::Codec>);

/// An accepted connection, plain TCP or TLS: what a WebSocket runs on once upgraded.
pub trait UpgradedIo: AsyncRead + AsyncWrite + Unpin + 'static {
    type Socket: SocketIo;
    fn into_socket(self) -> Self::Socket;
    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream;
}

impl UpgradedIo for TcpStream {
    type Socket = TcpStream;
    fn into_socket(self) -> TcpStream {
        self
    }
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl UpgradedIo for TlsStream<TcpStream> {
    type Socket = TlsSocket;
    fn into_socket(self) -> TlsSocket {
        TlsSocket::new(self)
    }
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Answers one WebSocket upgrade request. `serves_websocket` is false on listeners without the
/// WebSocket endpoint (the internal port). Never fails: a refused handshake is answered with
/// its HTTP status and the connection closed.
pub async fn accept<T: UpgradedIo>(
    node: Arc<Node>,
    serves_websocket: bool,
    upgrade: Upgrade<T>,
) -> Result<(), actix_http::Error> {
    let (request, mut framed) = upgrade;
    let admitted = endpoint_of(&node, serves_websocket, request.head())
        .and_then(|endpoint| Ok((endpoint, admit(&node, request.head())?)));
    let (endpoint, mut response) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            refuse(framed, refusal).await;
            return Ok(());
        }
    };
    let settings = match &endpoint {
        Endpoint::Bidirectional(_) => node.settings.websocket.clone(),
        Endpoint::Unidirectional(_) => node.settings.uni_websocket.socket_settings(),
    };
    let deflate = settings.compression && accept_deflate(request.head(), &mut response);
    if let Err(error) = framed.send((response, BodySize::None).into()).await {
        tracing::debug!(%error, "WebSocket handshake: the client went away before the 101 answer");
        return Ok(());
    }
    let parts = framed.into_parts();
    let session = match endpoint {
        Endpoint::Bidirectional(protocol) => ClientSession::new(node.clone(), protocol),
        Endpoint::Unidirectional(connect) => {
            ClientSession::new(node.clone(), Protocol::UniJson).with_connect_request(connect)
        }
    }
    .with_header_user(&request.head().headers)
    .with_proxy_headers(&request.head().headers);
    socket::start(session, parts.io.into_socket(), &parts.read_buf, &settings, deflate);
    Ok(())
}

/// Which WebSocket endpoint an upgrade request is for.
enum Endpoint {
    /// `websocket.handler_prefix`, in the negotiated protocol.
    Bidirectional(Protocol),
    /// `uni_websocket.handler_prefix`, with the connect request of `cf_connect` if any.
    Unidirectional(Option<ConnectRequest>),
}

/// The endpoint `head` asks for: 404 for any other path (or on the internal port), 400 for a
/// `cf_connect` that is not a connect request (as Centrifugo answers before upgrading).
fn endpoint_of(node: &Node, serves_websocket: bool, head: &RequestHead) -> Result<Endpoint, Response<BoxBody>> {
    let settings = &node.settings;
    let path = head.uri.path();
    if serves_websocket && !settings.websocket.disabled && path == settings.websocket.handler_prefix {
        return Ok(Endpoint::Bidirectional(protocol_of(head)));
    }
    if serves_websocket && settings.uni_websocket.enabled && path == settings.uni_websocket.handler_prefix {
        return uni_connect_request(head).map(Endpoint::Unidirectional);
    }
    Err(Response::new(StatusCode::NOT_FOUND))
}

/// The `cf_connect` query parameter as a connect request (`None` when absent).
fn uni_connect_request(head: &RequestHead) -> Result<Option<ConnectRequest>, Response<BoxBody>> {
    let query = head.uri.query().unwrap_or_default();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let Some((_, text)) = pairs.into_iter().find(|(key, _)| key == "cf_connect") else { return Ok(None) };
    match serde_json::from_str::<Option<ConnectRequest>>(&text) {
        Ok(request) => Ok(Some(request.unwrap_or_default())),
        Err(error) => {
            tracing::debug!(%error, "uni_websocket: cf_connect is not a connect request (400)");
            Err(Response::new(StatusCode::BAD_REQUEST))
        }
    }
}

/// `GET <websocket.handler_prefix>` without an `Upgrade: websocket` header.
pub async fn not_upgraded() -> HttpResponse {
    HttpResponse::BadRequest().content_type("text/plain").body("expected a WebSocket upgrade request\n")
}

/// The `101` answer, or why the handshake is refused.
fn admit(node: &Node, head: &RequestHead) -> Result<Response<()>, Response<BoxBody>> {
    let settings = &node.settings;
    if node.is_draining() {
        return Err(Response::new(StatusCode::SERVICE_UNAVAILABLE));
    }
    if !node.admit_connection() {
        tracing::info!("WebSocket handshake refused: client.connection_limit or connection_rate_limit reached (503)");
        return Err(Response::new(StatusCode::SERVICE_UNAVAILABLE));
    }
    if let Some(origin) = head.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !origin_allowed(origin, &settings.client.allowed_origins) {
            tracing::info!(%origin, "WebSocket handshake refused: origin not in client.allowed_origins");
            return Err(Response::new(StatusCode::FORBIDDEN));
        }
    }
    let mut response = ws::handshake(head).map_err(|error| {
        tracing::debug!(%error, "WebSocket handshake refused");
        Response::from(error)
    })?;
    if let Some(subprotocol) = offered_subprotocol(head) {
        response.insert_header((header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(subprotocol)));
    }
    response.message_body(()).map_err(Response::from)
}

/// The first of Centrifugo's subprotocols the client offers.
fn offered_subprotocol(head: &RequestHead) -> Option<&'static str> {
    head.headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| [JSON_SUBPROTOCOL, PROTOBUF_SUBPROTOCOL].into_iter().find(|ours| offered.trim() == *ours))
}

/// Protobuf when the client offers its subprotocol first, or asks with `?format=protobuf` or
/// `?cf_protocol=protobuf` (as Centrifugo's handler does); JSON otherwise.
fn protocol_of(head: &RequestHead) -> Protocol {
    let query = head.uri.query().unwrap_or_default();
    let asked_in_query = query.split('&').any(|pair| pair == "format=protobuf" || pair == "cf_protocol=protobuf");
    if asked_in_query || offered_subprotocol(head) == Some(PROTOBUF_SUBPROTOCOL) {
        Protocol::Protobuf
    } else {
        Protocol::Json
    }
}

/// Answers a permessage-deflate offer, if the client made one the node can honour.
fn accept_deflate(head: &RequestHead, response: &mut Response<()>) -> bool {
    let offers = head.headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS).filter_map(|value| value.to_str().ok());
    let Some(answer) = negotiate_deflate(offers) else { return false };
    response.headers_mut().insert(header::SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static(answer));
    true
}

/// Answers a refused handshake (status and headers, no body) and closes the connection.
async fn refuse<T: UpgradedIo>(mut framed: Framed<T, h1::Codec>, refusal: Response<BoxBody>) {
    let (mut response, _) = refusal.into_parts();
    response.head_mut().set_connection_type(ConnectionType::Close);
    let response = response.set_body(());
    if let Err(error) = framed.send((response, BodySize::Sized(0)).into()).await {
        tracing::debug!(%error, "cannot answer a refused WebSocket handshake");
    }
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
