//! The HTTP transports, where a response body is the connection's downstream:
//!
//! * unidirectional: `uni_sse` (Server-Sent Events) and `uni_http_stream` (JSON lines). The
//!   request carries the connect request; the body streams the `connect` push and every push
//!   after it (Centrifugo's unidirectional client protocol, protocol-extensions.md §5);
//! * bidirectional emulation: `http_stream` and `sse`, which centrifuge-js falls back to when
//!   WebSocket is blocked. The request carries the connect command; the body streams replies
//!   and pushes as a WebSocket would; later commands arrive at `/emulation` naming the session
//!   (protocol-extensions.md §4).
//!
//! The session is the same [`ClientSession`] actor a WebSocket runs; its frames become the
//! body: the payload of each data frame, framed as SSE events or lines, and its close frame
//! ends it. Connection endpoints answer CORS as Centrifugo does: the request's `Origin` is
//! allowed back when `client.allowed_origins` lets it in.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::dev::ContextFut;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::{Stream, StreamExt};

use super::websocket::origin_allowed;
use super::ws_frames::server_frame_payload;
use super::Flow;
use crate::client::ClientSession;
use crate::cluster::RelayEmulation;
use crate::node::Node;
use crate::protocol::command::ConnectRequest;
use crate::protocol::{Disconnect, Protocol};

/// How pushes are framed in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `data: <json>\n\n`, after an initial `\r\n`.
    Sse,
    /// `<json>\n`.
    Lines,
    /// The payloads as they are (delimited Protobuf replies).
    Raw,
}

/// `uni_sse.handler_prefix`: `GET` with the connect request in `cf_connect` (none: an empty
/// request), or `POST` with it as the body.
pub async fn sse(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let limit = node.settings.uni_sse.max_request_body_size;
    let request = match *req.method() {
        Method::GET => query_connect_request(&req),
        Method::POST => body_connect_request(&body, limit),
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    let response = match request {
        Ok(request) => open(&node, &req, request, Framing::Sse).await,
        Err(status) => HttpResponse::new(status),
    };
    with_cors(&req, &node, response)
}

/// `uni_http_stream.handler_prefix`: `POST` with the connect request as the body; `OPTIONS` is
/// a CORS preflight.
pub async fn http_stream(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let limit = node.settings.uni_http_stream.max_request_body_size;
    let request = match *req.method() {
        Method::POST => body_connect_request(&body, limit),
        Method::OPTIONS => return with_cors(&req, &node, preflight()),
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    let response = match request {
        Ok(request) => open(&node, &req, request, Framing::Lines).await,
        Err(status) => HttpResponse::new(status),
    };
    with_cors(&req, &node, response)
}

/// The connect request of a request, or the status that refuses it.
type Parsed = Result<ConnectRequest, StatusCode>;

/// `http_stream.handler_prefix`: `POST` with the connect command: JSON lines, or delimited
/// Protobuf commands with `Content-Type: application/octet-stream` (the stream is then
/// delimited Protobuf replies); `OPTIONS` is a CORS preflight.
pub async fn emulated_http_stream(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let limit = node.settings.http_stream.max_request_body_size;
    let response = match *req.method() {
        Method::POST if body.len() > limit => HttpResponse::PayloadTooLarge().finish(),
        Method::POST if is_protobuf(&req) => open_emulated(&node, &req, Protocol::Protobuf, body, Framing::Raw),
        Method::POST => match json_commands(&body, limit) {
            Ok(commands) => open_emulated(&node, &req, Protocol::Json, commands.into_bytes(), Framing::Lines),
            Err(status) => HttpResponse::new(status),
        },
        Method::OPTIONS => preflight(),
        _ => HttpResponse::MethodNotAllowed().finish(),
    };
    with_cors(&req, &node, response)
}

/// `sse.handler_prefix`: `GET` with the connect command in `cf_connect`, or `POST` with it as
/// the body.
pub async fn emulated_sse(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let commands = match *req.method() {
        Method::GET => query_value(&req, "cf_connect").map(ByteString::from).ok_or(StatusCode::BAD_REQUEST),
        Method::POST => json_commands(&body, node.settings.sse.max_request_body_size),
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    let response = match commands {
        Ok(commands) => open_emulated(&node, &req, Protocol::Json, commands.into_bytes(), Framing::Sse),
        Err(status) => HttpResponse::new(status),
    };
    with_cors(&req, &node, response)
}

/// `emulation.handler_prefix`: `{"session": …, "node": …, "data": "<JSON command lines>"}` for
/// an emulated session. 204 once handed to the session, here or (relayed through NATS) on the
/// node that holds it, also for a session that is gone, as Centrifugo answers; 404 for a node
/// that is not in the cluster; 500 when NATS cannot take the relay.
pub async fn emulation(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let response = match *req.method() {
        Method::POST => emulation_request(&req, &body, &node).await,
        Method::OPTIONS => preflight(),
        _ => HttpResponse::MethodNotAllowed().finish(),
    };
    with_cors(&req, &node, response)
}

/// What an `/emulation` body holds (JSON; `data` is the command lines as one string).
#[derive(serde::Deserialize)]
struct EmulationRequest {
    session: String,
    node: String,
    data: String,
}

/// An `/emulation` body: JSON, or a Protobuf `EmulationRequest` when the content type is
/// `application/octet-stream` (as Centrifugo decides): (session, node, commands).
fn decode_emulation(req: &HttpRequest, body: &[u8]) -> Option<(String, String, Bytes)> {
    if is_protobuf(req) {
        let request = <crate::protocol::protobuf::wire::EmulationRequest as prost::Message>::decode(body).ok()?;
        return Some((request.session, request.node, request.data));
    }
    let request = serde_json::from_slice::<EmulationRequest>(body).ok()?;
    Some((request.session, request.node, Bytes::from(request.data)))
}

/// Decodes what the HTTP transports read from a request (the fuzz target's entry point): an
/// `/emulation` body (JSON, or Protobuf when `protobuf`), a unidirectional connect request, and
/// a query string's `cf_connect`. Returns how many of the three decoded.
pub fn decode_request_inputs(body: &[u8], protobuf: bool, query: &str) -> usize {
    let emulation = if protobuf {
        <crate::protocol::protobuf::wire::EmulationRequest as prost::Message>::decode(body).is_ok()
    } else {
        serde_json::from_slice::<EmulationRequest>(body).is_ok()
    };
    let connect = parse(body).is_ok();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let cf_connect =
        pairs.iter().find(|(key, _)| key == "cf_connect").is_some_and(|(_, v)| parse(v.as_bytes()).is_ok());
    usize::from(emulation) + usize::from(connect) + usize::from(cf_connect)
}

async fn emulation_request(req: &HttpRequest, body: &[u8], node: &Node) -> HttpResponse {
    if body.len() > node.settings.emulation.max_request_body_size {
        return HttpResponse::PayloadTooLarge().finish();
    }
    let Some((session, target, data)) = decode_emulation(req, body) else {
        return HttpResponse::BadRequest().finish();
    };
    if target == node.uid {
        node.emulated.deliver(&session, data);
        return HttpResponse::NoContent().finish();
    }
    let Some(bridge) = &node.cluster else { return HttpResponse::NotFound().finish() };
    let relay = RelayEmulation { node: target, session, data: crate::domain::Payload::new(data) };
    match bridge.send(relay).await {
        Ok(Ok(true)) => HttpResponse::NoContent().finish(),
        Ok(Ok(false)) => HttpResponse::NotFound().finish(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot relay an /emulation request: NATS is unavailable");
            HttpResponse::InternalServerError().finish()
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Max-Age", "300"))
        .insert_header(("Access-Control-Allow-Methods", "POST, OPTIONS"))
        .finish()
}

/// Centrifugo's CORS answer on connection endpoints: when the origin passes
/// `client.allowed_origins`, it is allowed back with credentials and the asked-for headers.
fn with_cors(req: &HttpRequest, node: &Node, mut response: HttpResponse) -> HttpResponse {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return response };
    let allowed = origin.to_str().is_ok_and(|o| origin_allowed(o, &node.settings.client.allowed_origins));
    if !allowed {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, header::HeaderValue::from_static("true"));
    if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    response
}

fn is_protobuf(req: &HttpRequest) -> bool {
    req.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/octet-stream")
}

/// The opening request's JSON command lines.
fn json_commands(body: &web::Bytes, limit: usize) -> Result<ByteString, StatusCode> {
    if body.len() > limit {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    ByteString::try_from(body.clone()).map_err(|_| StatusCode::BAD_REQUEST)
}

/// Starts an emulated session on the opening commands and answers with its stream.
fn open_emulated(
    node: &Arc<Node>,
    req: &HttpRequest,
    protocol: Protocol,
    commands: Bytes,
    framing: Framing,
) -> HttpResponse {
    if node.is_draining() || !node.admit_connection() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let transport = if framing == Framing::Sse { "sse" } else { "http_stream" };
    let session = ClientSession::new(node.clone(), protocol)
        .emulated(transport, commands)
        .with_header_user(req.headers())
        .with_proxy_headers(req.headers());
    streaming(SessionBody::new(session, framing, peer_of(req)), framing)
}

fn query_value(req: &HttpRequest, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    pairs.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

fn query_connect_request(req: &HttpRequest) -> Parsed {
    match query_value(req, "cf_connect") {
        Some(text) => parse(text.as_bytes()),
        None => Ok(ConnectRequest::default()),
    }
}

fn body_connect_request(body: &[u8], limit: usize) -> Parsed {
    if body.len() > limit {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    parse(body)
}

/// A connect request; `null` (or an empty body) is an empty one; anything else bad is 400.
fn parse(text: &[u8]) -> Parsed {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(ConnectRequest::default());
    }
    serde_json::from_slice::<Option<ConnectRequest>>(text).map(Option::unwrap_or_default).map_err(|error| {
        tracing::debug!(%error, "unidirectional connect request is not JSON for a connect request (400)");
        StatusCode::BAD_REQUEST
    })
}

/// Starts the session and answers with its stream. With `connect_code_to_http_response`
/// enabled the connect runs first: a refused one is answered with its HTTP status and body.
async fn open(node: &Arc<Node>, req: &HttpRequest, request: ConnectRequest, framing: Framing) -> HttpResponse {
    if node.is_draining() || !node.admit_connection() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let (transport, translations) = match framing {
        Framing::Sse => ("uni_sse", &node.settings.uni_sse.connect_code_to_http_response),
        _ => ("uni_http_stream", &node.settings.uni_http_stream.connect_code_to_http_response),
    };
    let session = ClientSession::new(node.clone(), Protocol::UniJson)
        .over_http(transport)
        .with_connect_request(Some(request))
        .with_header_user(req.headers())
        .with_proxy_headers(req.headers());
    let mut body = SessionBody::new(session, framing, peer_of(req));
    if !translations.enabled {
        return streaming(body, framing);
    }
    match body.until_connected().await {
        Ok(first) => streaming(futures_util::stream::once(async move { Ok(first) }).chain(body), framing),
        Err((code, text)) => {
            let (status, text) = translations.answer(code, &text);
            tracing::debug!(code, status, "unidirectional connect refused; answered with an HTTP status");
            HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .content_type("text/plain; charset=utf-8")
                .body(text)
        }
    }
}

/// The admin UI's live tail: `channel`'s pushes as JSON lines, for a caller the admin token
/// vouched for (no client token, no channel permission checks).
pub fn admin_tail(node: &Arc<Node>, req: &HttpRequest, channel: String) -> HttpResponse {
    if node.is_draining() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let session = ClientSession::new(node.clone(), Protocol::UniJson)
        .over_http("uni_http_stream")
        .with_connect_request(Some(ConnectRequest::default()))
        .tailing(channel);
    streaming(SessionBody::new(session, Framing::Lines, peer_of(req)), Framing::Lines)
}

/// The `200` whose body is a session's stream.
fn streaming(body: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static, framing: Framing) -> HttpResponse {
    let content_type = match framing {
        Framing::Sse => "text/event-stream; charset=utf-8",
        Framing::Lines => "text/plain; charset=utf-8",
        Framing::Raw => "application/octet-stream",
    };
    HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "private, no-cache, no-store, must-revalidate, max-age=0"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header(("Expire", "0"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// A second handle on an HTTP connection's socket, taken when the connection is accepted (only
/// on nodes that serve HTTP streams): actix-http notices a client that went away only when a
/// write to it fails (the second write after it left, at worst two pings later), so a stream's
/// body watches the socket itself and ends as soon as the client closes it.
pub struct PeerSocket(RefCell<Option<std::net::TcpStream>>);

impl PeerSocket {
    /// `HttpService::on_connect_ext` hook: keeps a duplicate of the socket's descriptor.
    pub fn keep(io: &actix_web::rt::net::TcpStream, extensions: &mut actix_http::Extensions) {
        match socket2::SockRef::from(io).try_clone() {
            Ok(socket) => {
                extensions.insert(PeerSocket(RefCell::new(Some(socket.into()))));
            }
            Err(error) => {
                tracing::debug!(%error, "cannot duplicate a socket to watch it; closed streams are noticed on write")
            }
        }
    }
}

/// The connection's socket, to notice the client closing it (once per connection).
fn peer_of(req: &HttpRequest) -> Option<tokio::net::TcpStream> {
    let socket = req.conn_data::<PeerSocket>()?.0.borrow_mut().take()?;
    socket.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(socket).ok()
}

/// The response body: frames what the session writes. The session runs as a task of its own,
/// so it keeps handling deliveries, timers and disconnects while actix-http is not polling the
/// body (a client that stopped reading): it then closes itself once what it wrote and the
/// socket has not taken passes `client.queue_max_size` (3008), as on a WebSocket.
struct SessionBody {
    session: actix_web::rt::task::JoinHandle<()>,
    flow: Rc<Flow>,
    /// The client's socket, watched for its end (see [`PeerSocket`]).
    peer: Option<tokio::net::TcpStream>,
    framing: Framing,
    started: bool,
    ended: bool,
}

impl SessionBody {
    fn new(session: ClientSession, framing: Framing, peer: Option<tokio::net::TcpStream>) -> Self {
        let flow = session.flow.clone();
        // Nothing is read after the opening request: emulated commands arrive in the mailbox.
        let session = Box::pin(actix::Context::new().into_future(session));
        let session = actix_web::rt::spawn(SessionTask { session, flow: flow.clone() });
        SessionBody { session, flow, peer, framing, started: false, ended: false }
    }

    /// Whether the client closed its end (or reset it). Data it sends instead is left for
    /// actix-http, and the socket is no longer watched.
    fn peer_closed(&mut self, task: &mut Context<'_>) -> bool {
        let Some(peer) = &self.peer else { return false };
        let mut byte = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut byte);
        match peer.poll_peek(task, &mut buf) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(_)) => {
                self.peer = None;
                false
            }
        }
    }
}

impl SessionBody {
    /// Runs the session until its connect succeeded (the body so far) or was refused (the
    /// code and text of why).
    async fn until_connected(&mut self) -> Result<Bytes, (u32, String)> {
        let mut so_far = BytesMut::new();
        loop {
            let next = self.next().await;
            if let Some(refusal) = self.flow.connect_refusal() {
                return Err(refusal);
            }
            match next {
                Some(Ok(chunk)) => so_far.extend_from_slice(&chunk),
                _ => return Err((u32::from(Disconnect::SERVER_ERROR.code), Disconnect::SERVER_ERROR.reason.into())),
            }
            // Past the SSE preamble: the connect push.
            if !so_far.trim_ascii().is_empty() {
                return Ok(so_far.freeze());
            }
        }
    }
}

impl Stream for SessionBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if this.peer_closed(task) {
            // Dropping the body (and the session's future with it) ends the session.
            tracing::debug!("the client closed its HTTP stream");
            this.ended = true;
            return Poll::Ready(None);
        }
        let mut out = BytesMut::new();
        if !this.started && this.framing == Framing::Sse {
            out.extend_from_slice(b"\r\n");
        }
        this.started = true;
        this.flow.wait_for_frames(task.waker());
        this.ended = frame_into(this.flow.take_all_handed(), this.framing, &mut out);
        if !out.is_empty() {
            return Poll::Ready(Some(Ok(out.freeze())));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl Drop for SessionBody {
    /// The response is over (the client went away, or the session ended): so is the session.
    fn drop(&mut self) {
        self.session.abort();
    }
}

/// Runs an HTTP stream's session; when it ends (however it stopped) the body gets a close.
struct SessionTask {
    session: Pin<Box<ContextFut<ClientSession, actix::Context<ClientSession>>>>,
    flow: Rc<Flow>,
}

impl Future for SessionTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
        let finished = self.session.as_mut().poll(task);
        if finished.is_ready() {
            self.flow.hand(crate::protocol::Frame::close(None, "").wire());
        }
        finished
    }
}

use crate::protocol::outgoing::opcode::{BINARY as OPCODE_BINARY, CLOSE as OPCODE_CLOSE, TEXT as OPCODE_TEXT};

/// Appends the payloads of the data frames in `frames` to `out` in the body's framing; true
/// when a close frame came (the body ends there).
fn frame_into(frames: VecDeque<Bytes>, framing: Framing, out: &mut BytesMut) -> bool {
    for wire in frames {
        let Some((first, payload)) = server_frame_payload(&wire) else { continue };
        match first & 0x0F {
            OPCODE_TEXT | OPCODE_BINARY => frame_payload(payload, framing, out),
            OPCODE_CLOSE => return true,
            _ => {}
        }
    }
    false
}

/// One data frame's payload in the body's framing. A JSON frame may hold several lines (the
/// connect reply and a ping): one event or line each.
fn frame_payload(payload: &[u8], framing: Framing, out: &mut BytesMut) {
    let (before, after): (&[u8], &[u8]) = match framing {
        Framing::Raw => return out.extend_from_slice(payload),
        Framing::Sse => (b"data: ", b"\n\n"),
        Framing::Lines => (b"", b"\n"),
    };
    for line in payload.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        out.extend_from_slice(before);
        out.extend_from_slice(line);
        out.extend_from_slice(after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Frame;

    #[test]
    fn data_frames_become_events_or_lines_and_a_close_ends_the_body() {
        let frames: VecDeque<Bytes> = [
            Frame::text("{\"connect\":{}}\n{}").wire(),
            Frame::ping().wire(),
            Frame::text(&format!("{{\"channel\":\"c\",\"pub\":{{\"data\":\"{}\"}}}}", "x".repeat(300))).wire(),
        ]
        .into();
        let mut sse = BytesMut::new();
        assert!(!frame_into(frames.clone(), Framing::Sse, &mut sse));
        let text = String::from_utf8(sse.to_vec()).unwrap();
        assert!(text.starts_with("data: {\"connect\":{}}\n\ndata: {}\n\ndata: {\"channel\":\"c\""), "{text}");
        let mut lines = BytesMut::new();
        frame_into(frames, Framing::Lines, &mut lines);
        assert_eq!(String::from_utf8(lines.to_vec()).unwrap().lines().count(), 3);
        let mut closing = BytesMut::new();
        assert!(frame_into([Frame::close(Some(3000), "x").wire()].into(), Framing::Lines, &mut closing));
        assert!(closing.is_empty());
    }
}
