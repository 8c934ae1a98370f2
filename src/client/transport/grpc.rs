//! The unidirectional gRPC stream (`uni_grpc`), on a port of its own: Centrifugo's
//! `centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume`. The request is a
//! `ConnectRequest`; the response streams one Protobuf `Push` per message (the `connect` push
//! first), until the session ends (status OK).
//!
//! The session is the same actor as on every transport, speaking [`Protocol::UniProtobuf`]: it
//! writes pushes as delimited `Reply`s, the encoding channels already share with Protobuf
//! WebSocket clients, and this module sends each `Reply`'s push bytes as a message, sliced out
//! of the shared frame without a copy. Like Centrifugo's raw codec, messages are not re-encoded.
//!
//! gRPC runs on tonic (hyper, `Send` tasks); sessions are actix actors: each stream's session is
//! started on the actix thread the server was started from, and hands its messages over a
//! channel whose bytes in flight count against `client.queue_max_size`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix::dev::ContextFut;
use actix_rt::ArbiterHandle;
use bytes::{Buf, BufMut, Bytes};
use futures_util::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::ws_frames::server_frame_payload;
use super::Flow;
use crate::client::ClientSession;
use crate::node::Node;
use crate::protocol::protobuf::{self, wire};
use crate::protocol::Protocol;

/// The service's name in gRPC paths.
pub const SERVICE: &str = "centrifugal.centrifugo.unistream.CentrifugoUniStream";
const CONSUME: &str = "/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume";
/// gRPC's default largest request message.
const DEFAULT_MAX_RECEIVE: usize = 4 * 1024 * 1024;

/// Serves the stream on `listener` until `stop` resolves; sessions run on the current actix
/// thread.
pub async fn serve(
    node: Arc<Node>,
    listener: std::net::TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let service = UniStream { node, sessions: actix_rt::Arbiter::current() };
    let incoming = match listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener)) {
        Ok(listener) => tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        Err(error) => {
            tracing::error!(%error, "uni_grpc: cannot use the bound listener; the gRPC stream is not served");
            return Ok(());
        }
    };
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        // As Centrifugo: keepalive pings every 25 s, answered within 5 s.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(25)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(5)))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}

/// The tonic service: routes `Consume`, answers anything else "unimplemented".
#[derive(Clone)]
struct UniStream {
    node: Arc<Node>,
    sessions: ArbiterHandle,
}

impl tonic::server::NamedService for UniStream {
    const NAME: &'static str = SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> tower_service::Service<http::Request<B>> for UniStream
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CONSUME {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let limit = match self.node.settings.uni_grpc.max_receive_message_size {
            0 => DEFAULT_MAX_RECEIVE,
            set => set,
        };
        let consume = Consume(self.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(UniCodec).max_decoding_message_size(limit);
            Ok(grpc.server_streaming(consume, request).await)
        })
    }
}

/// `Consume`: one session per request.
struct Consume(UniStream);

impl tower_service::Service<tonic::Request<wire::ConnectRequest>> for Consume {
    type Response = tonic::Response<Pushes>;
    type Error = Status;
    type Future = BoxFuture<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<wire::ConnectRequest>) -> Self::Future {
        let UniStream { node, sessions } = self.0.clone();
        let metadata = request.metadata().clone().into_headers();
        let connect = protobuf::connect_request(request.into_inner());
        Box::pin(async move {
            if node.is_draining() || !node.admit_connection() {
                return Err(Status::unavailable("the node is not accepting connections"));
            }
            let (sender, receiver) = mpsc::unbounded_channel();
            let in_flight = Arc::new(AtomicUsize::new(0));
            let pushes = Pushes { receiver, in_flight: in_flight.clone() };
            let started = sessions.spawn_fn(move || {
                let session = ClientSession::new(node.clone(), Protocol::UniProtobuf)
                    .over_http("uni_grpc")
                    .with_connect_request(Some(connect))
                    .with_proxy_metadata(&metadata);
                let limit = node.settings.client.queue_max_size;
                actix_rt::spawn(GrpcConnection::new(session, sender, in_flight, limit));
            });
            if !started {
                return Err(Status::unavailable("the node is stopping"));
            }
            Ok(tonic::Response::new(pushes))
        })
    }
}

/// Runs a session and forwards its pushes to the stream, one message each.
struct GrpcConnection {
    session: Pin<Box<ContextFut<ClientSession, actix::Context<ClientSession>>>>,
    flow: Rc<Flow>,
    sender: mpsc::UnboundedSender<Result<Bytes, Status>>,
    /// Ends when the client went away (the stream was dropped).
    gone: Pin<Box<dyn Future<Output = ()>>>,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
}

impl GrpcConnection {
    fn new(
        session: ClientSession,
        sender: mpsc::UnboundedSender<Result<Bytes, Status>>,
        in_flight: Arc<AtomicUsize>,
        limit: usize,
    ) -> Self {
        let flow = session.flow.clone();
        let session = Box::pin(actix::Context::new().into_future(session));
        let watcher = sender.clone();
        let gone = Box::pin(async move { watcher.closed().await });
        Self { session, flow, sender, gone, in_flight, limit }
    }

    /// Sends the pushes of the frames the session wrote; false once a close frame came.
    fn forward(&self) -> bool {
        for wire in self.flow.take_all_handed() {
            let Some((first, payload)) = server_frame_payload(&wire) else { continue };
            if first & 0x0F == crate::protocol::outgoing::opcode::CLOSE {
                return false;
            }
            let start = wire.len() - payload.len();
            for push in pushes_in(&wire.slice(start..)) {
                self.in_flight.fetch_add(push.len(), Ordering::Relaxed);
                if self.sender.send(Ok(push)).is_err() {
                    return false;
                }
            }
        }
        true
    }
}

impl Future for GrpcConnection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.gone.as_mut().poll(task).is_ready() {
            // Dropping the session's future stops the actor (registry and channels forget it).
            return Poll::Ready(());
        }
        let finished = this.session.as_mut().poll(task).is_ready();
        if !this.forward() || finished {
            return Poll::Ready(());
        }
        if this.in_flight.load(Ordering::Relaxed) > this.limit {
            tracing::info!("uni_grpc client reads slower than its pushes arrive; closing the stream (3008)");
            let _ = this.sender.send(Err(Status::resource_exhausted("slow")));
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The push of every delimited `Reply` in a Protobuf frame's payload, as slices of it (a
/// `Reply` without a push, the server ping, is an empty `Push`: Centrifugo's gRPC ping).
fn pushes_in(payload: &Bytes) -> Vec<Bytes> {
    let mut pushes = Vec::new();
    let mut rest = payload.clone();
    while rest.has_remaining() {
        let Ok(len) = prost::encoding::decode_varint(&mut rest) else { break };
        let Ok(len) = usize::try_from(len) else { break };
        if len > rest.len() {
            break;
        }
        let reply = rest.split_to(len);
        pushes.push(push_field(reply).unwrap_or_default());
    }
    pushes
}

/// Field 4 (`push`) of an encoded `Reply`.
fn push_field(mut reply: Bytes) -> Option<Bytes> {
    while reply.has_remaining() {
        let key = prost::encoding::decode_varint(&mut reply).ok()?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut reply).ok()?;
            }
            2 => {
                let len = usize::try_from(prost::encoding::decode_varint(&mut reply).ok()?).ok()?;
                if len > reply.len() {
                    return None;
                }
                let value = reply.split_to(len);
                if field == 4 {
                    return Some(value);
                }
            }
            1 => reply.advance(8.min(reply.len())),
            5 => reply.advance(4.min(reply.len())),
            _ => return None,
        }
    }
    None
}

/// The response stream: the session's pushes.
struct Pushes {
    receiver: mpsc::UnboundedReceiver<Result<Bytes, Status>>,
    in_flight: Arc<AtomicUsize>,
}

impl Stream for Pushes {
    type Item = Result<Bytes, Status>;

    fn poll_next(mut self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.receiver.poll_recv(task);
        if let Poll::Ready(Some(Ok(push))) = &item {
            self.in_flight.fetch_sub(push.len(), Ordering::Relaxed);
        }
        item
    }
}

/// Centrifugo's raw codec: pushes go out as the bytes the session encoded; the request is
/// decoded as a `ConnectRequest` (the uni-stream proto's is field-compatible with the client
/// protocol's).
#[derive(Clone, Copy, Default)]
struct UniCodec;

impl Codec for UniCodec {
    type Encode = Bytes;
    type Decode = wire::ConnectRequest;
    type Encoder = UniCodec;
    type Decoder = UniCodec;

    fn encoder(&mut self) -> Self::Encoder {
        UniCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        UniCodec
    }
}

impl Encoder for UniCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for UniCodec {
    type Item = wire::ConnectRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        wire::ConnectRequest::decode(src)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("the request is not a ConnectRequest: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_are_sliced_out_of_delimited_replies() {
        let mut payload = Vec::new();
        let push = wire::Push { channel: "news".into(), ..Default::default() };
        protobuf::encode_push(&mut payload, push.clone());
        payload.extend_from_slice(protobuf::PING);
        protobuf::encode_push(&mut payload, wire::Push::default());
        let pushes = pushes_in(&Bytes::from(payload));
        assert_eq!(pushes.len(), 3);
        assert_eq!(wire::Push::decode(pushes[0].clone()).unwrap(), push);
        assert!(pushes[1].is_empty(), "the ping is an empty Push");
        assert!(pushes[2].is_empty());
    }
}
