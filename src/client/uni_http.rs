//! The unidirectional HTTP transports: `uni_sse` (Server-Sent Events) and `uni_http_stream`
//! (a chunked response of JSON lines). The request carries the connect request; the response
//! body then streams the `connect` push and every push after it, as Centrifugo's
//! unidirectional client protocol defines (protocol-extensions.md §5).
//!
//! The session is the same [`ClientSession`] actor a WebSocket runs (in the unidirectional
//! protocol, with nothing to read after the connect request); its frames become the body: the
//! payload of each data frame, framed as an SSE event or a line, and its close frame ends it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_http::ws::Codec;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws::WebsocketContext;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::transport::Flow;
use super::ClientSession;
use crate::node::Node;
use crate::protocol::command::ConnectRequest;
use crate::protocol::Protocol;

/// How pushes are framed in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `data: <json>\n\n`, after an initial `\r\n`.
    Sse,
    /// `<json>\n`.
    Lines,
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
    match request {
        Ok(request) => open(&node, request, Framing::Sse),
        Err(status) => HttpResponse::new(status),
    }
}

/// `uni_http_stream.handler_prefix`: `POST` with the connect request as the body; `OPTIONS` is
/// a CORS preflight.
pub async fn http_stream(req: HttpRequest, body: web::Bytes, node: web::Data<Arc<Node>>) -> HttpResponse {
    let limit = node.settings.uni_http_stream.max_request_body_size;
    let request = match *req.method() {
        Method::POST => body_connect_request(&body, limit),
        Method::OPTIONS => {
            return HttpResponse::NoContent()
                .insert_header(("Access-Control-Max-Age", "300"))
                .insert_header(("Access-Control-Allow-Methods", "POST, OPTIONS"))
                .finish()
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    };
    match request {
        Ok(request) => open(&node, request, Framing::Lines),
        Err(status) => HttpResponse::new(status),
    }
}

/// The connect request of a request, or the status that refuses it.
type Parsed = Result<ConnectRequest, StatusCode>;

fn query_connect_request(req: &HttpRequest) -> Parsed {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    match pairs.into_iter().find(|(key, _)| key == "cf_connect") {
        Some((_, text)) => parse(text.as_bytes()),
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

/// Starts the session and answers with its stream.
fn open(node: &Arc<Node>, request: ConnectRequest, framing: Framing) -> HttpResponse {
    if node.is_draining() || !node.admit_connection() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let session = ClientSession::new(node.clone(), Protocol::UniJson).over_http().with_connect_request(Some(request));
    let content_type = match framing {
        Framing::Sse => "text/event-stream; charset=utf-8",
        Framing::Lines => "text/plain; charset=utf-8",
    };
    HttpResponse::build(StatusCode::OK)
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "private, no-cache, no-store, must-revalidate, max-age=0"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header(("Expire", "0"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(SessionBody::new(session, framing))
}

/// The response body: runs the session and frames what it writes.
struct SessionBody<S> {
    frames: Pin<Box<S>>,
    flow: Rc<Flow>,
    framing: Framing,
    started: bool,
    ended: bool,
}

impl SessionBody<()> {
    #[allow(clippy::new_ret_no_self)]
    fn new(session: ClientSession, framing: Framing) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        let flow = session.flow.clone();
        // Nothing is read after the connect request: the input never yields.
        let input = futures_util::stream::pending::<Result<Bytes, actix_http::error::PayloadError>>();
        let frames = Box::pin(WebsocketContext::with_codec(session, input, Codec::new()));
        SessionBody { frames, flow, framing, started: false, ended: false }
    }
}

impl<S> Stream for SessionBody<S>
where
    S: Stream<Item = Result<Bytes, actix_web::Error>>,
{
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let mut out = BytesMut::new();
        if !this.started && this.framing == Framing::Sse {
            out.extend_from_slice(b"\r\n");
        }
        this.started = true;
        loop {
            // Polling the context is what runs the session actor.
            let polled = this.frames.as_mut().poll_next(task);
            let closed = frame_into(this.flow.take_all_handed(), this.framing, &mut out);
            if closed {
                this.ended = true;
            }
            let finished = matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))));
            if !out.is_empty() {
                this.ended |= finished;
                return Poll::Ready(Some(Ok(out.freeze())));
            }
            if closed || finished {
                this.ended = true;
                return Poll::Ready(None);
            }
            if polled.is_pending() {
                return Poll::Pending;
            }
        }
    }
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_BINARY: u8 = 0x2;
const OPCODE_CLOSE: u8 = 0x8;

/// Appends the payloads of the data frames in `frames` to `out` in the body's framing; true
/// when a close frame came (the body ends there).
fn frame_into(frames: VecDeque<Bytes>, framing: Framing, out: &mut BytesMut) -> bool {
    for wire in frames {
        let Some((opcode, payload)) = split_frame(&wire) else { continue };
        match opcode {
            OPCODE_TEXT | OPCODE_BINARY => {
                // A frame may hold several JSON lines (the connect push and a ping): one event
                // or line each.
                for line in payload.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                    match framing {
                        Framing::Sse => {
                            out.extend_from_slice(b"data: ");
                            out.extend_from_slice(line);
                            out.extend_from_slice(b"\n\n");
                        }
                        Framing::Lines => {
                            out.extend_from_slice(line);
                            out.extend_from_slice(b"\n");
                        }
                    }
                }
            }
            OPCODE_CLOSE => return true,
            _ => {}
        }
    }
    false
}

/// The opcode and payload of a server frame (unmasked, as the session builds them).
fn split_frame(wire: &[u8]) -> Option<(u8, &[u8])> {
    let [first, second, rest @ ..] = wire else { return None };
    let (len, rest) = match second & 0x7F {
        126 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*len)), rest)
        }
        127 => {
            let (len, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*len), rest)
        }
        short => (u64::from(short), rest),
    };
    let len = usize::try_from(len).ok()?;
    Some((first & 0x0F, rest.get(..len)?))
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
