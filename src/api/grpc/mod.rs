//! The server gRPC API (`grpc_api.*`, protocol-extensions.md §7): Centrifugo's
//! `centrifugal.centrifugo.api.CentrifugoApi` on a port of its own.
//!
//! Every implemented method runs the HTTP API's own handler: the Protobuf request is converted
//! into the handler's request ([`convert`]), and its result into the Protobuf response. Only the
//! envelope differs: `data` fields are bytes (any payload, binary included), errors go in the
//! response's `error` (or, in transport error mode, in the gRPC status), and the API key travels
//! as `authorization: apikey <KEY>` metadata. The rpcs gyre does not implement (Connections,
//! user status, tokens, push, map, shared poll) answer UNIMPLEMENTED from the generated stubs.

mod batch;
mod convert;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use self::convert::Envelope;
use super::{publish, queries, users, ApiError};
use crate::metrics::METRICS;
use crate::node::Node;

/// The messages and the service trait generated from `src/api/grpc/api.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms)]
pub mod proto {
    tonic::include_proto!("centrifugal.centrifugo.api");
}

use proto::centrifugo_api_server::{CentrifugoApi, CentrifugoApiServer};

/// gRPC's default largest request message (`grpc_api.max_receive_message_size: 0`).
const DEFAULT_MAX_RECEIVE: usize = 4 * 1024 * 1024;
/// The metrics' `protocol` label for calls over this API, as Centrifugo's.
const PROTOCOL: &str = "grpc";

/// Serves the API on `listener` until `stop` resolves.
pub async fn serve(
    node: Arc<Node>,
    listener: std::net::TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let incoming = match listener.set_nonblocking(true).and_then(|()| tokio::net::TcpListener::from_std(listener)) {
        Ok(listener) => tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        Err(error) => {
            tracing::error!(%error, "grpc_api: cannot use the bound listener; the gRPC API is not served");
            return Ok(());
        }
    };
    let settings = &node.settings.grpc_api;
    let limit = match settings.max_receive_message_size {
        0 => DEFAULT_MAX_RECEIVE,
        set => set,
    };
    let key = KeyCheck::new(&settings.key);
    let service = CentrifugoApiServer::new(Api { node: node.clone() }).max_decoding_message_size(limit);
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    server
        .add_service(tonic::service::interceptor::InterceptedService::new(service, move |request| key.check(request)))
        .serve_with_incoming_shutdown(incoming, stop)
        .await
}

/// The `grpc_api.key` check, run before every call. Unlike the HTTP API, an empty key means no
/// authentication at all (as Centrifugo).
#[derive(Clone)]
struct KeyCheck {
    /// `apikey <KEY>`, the whole expected `authorization` value; `None` when no key is set.
    expected: Option<Arc<[u8]>>,
}

impl KeyCheck {
    fn new(key: &str) -> Self {
        Self { expected: (!key.is_empty()).then(|| format!("apikey {key}").into_bytes().into()) }
    }

    /// Lets the call through, or answers UNAUTHENTICATED "unauthenticated".
    fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.allows(request.metadata().get("authorization").map(|value| value.as_bytes())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("unauthenticated"))
        }
    }

    /// Whether the first `authorization` value is exactly `apikey <KEY>` (constant-time).
    fn allows(&self, authorization: Option<&[u8]>) -> bool {
        match &self.expected {
            None => true,
            Some(expected) => authorization.is_some_and(|value| bool::from(value.ct_eq(expected))),
        }
    }
}

/// The service: the node its handlers act on.
struct Api {
    node: Arc<Node>,
}

impl Api {
    /// Transport error mode: `grpc_api.error_mode: transport`, or the call's
    /// `x-centrifugo-error-mode: transport` metadata.
    fn transport_errors(&self, metadata: &MetadataMap) -> bool {
        self.node.settings.grpc_api.error_mode == "transport"
            || metadata.get("x-centrifugo-error-mode").is_some_and(|mode| mode.as_bytes() == b"transport")
    }

    /// Runs one unary call through an HTTP API handler: converts the request, times the call
    /// for the metrics, and answers the result or the error in the chosen error mode.
    async fn call<P, Req, Res, Resp, Fut>(
        &self,
        method: &'static str,
        request: Request<P>,
        handler: impl FnOnce(Arc<Node>, Req) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        P: Into<Req>,
        Fut: Future<Output = Result<Res, ApiError>>,
        Resp: Envelope,
        Res: Into<Resp::Result>,
    {
        let transport = self.transport_errors(request.metadata());
        let outcome = timed(method, handler(self.node.clone(), request.into_inner().into())).await;
        match outcome {
            Ok(result) => Ok(Response::new(Resp::answer(Ok(result.into())))),
            Err(error) if transport => Err(transport_status(error)),
            Err(error) => Ok(Response::new(Resp::answer(Err(error.into())))),
        }
    }
}

/// Awaits a handler, recording its duration and error code as the HTTP API does, under the
/// `grpc` protocol label.
async fn timed<R>(method: &'static str, handler: impl Future<Output = Result<R, ApiError>>) -> Result<R, ApiError> {
    let started = Instant::now();
    let outcome = handler.await;
    let error = outcome.as_ref().err().map(|error| error.code().to_string());
    METRICS.api_call_via(PROTOCOL, method, started.elapsed().as_secs_f64(), error.as_deref());
    outcome
}

/// The gRPC status of an API error code in transport mode (Centrifugo's mapping).
fn status_code(code: u32) -> Code {
    match code {
        102 | 104 => Code::NotFound,
        107 | 108 => Code::InvalidArgument,
        112 => Code::OutOfRange,
        113 => Code::AlreadyExists,
        _ => Code::Internal,
    }
}

/// An API error as a gRPC status carrying the `Error` message as its detail
/// (`grpc-status-details-bin`, a `google.rpc.Status`), as Centrifugo's `WithDetails`.
fn transport_status(error: ApiError) -> Status {
    let code = status_code(error.code());
    let message = error.to_string();
    let detail = proto::Error { code: error.code(), message: message.clone() };
    let details = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/centrifugal.centrifugo.api.Error".to_owned(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// `google.rpc.Status`, the encoding of a status's details.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[tonic::async_trait]
impl CentrifugoApi for Api {
    /// Batch always answers OK: each command's error is in its reply.
    async fn batch(&self, request: Request<proto::BatchRequest>) -> Result<Response<proto::BatchResponse>, Status> {
        Ok(Response::new(batch::batch(&self.node, request.into_inner()).await))
    }

    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        self.call("publish", request, |node, req| async move { publish::publish(&node, req).await }).await
    }

    async fn broadcast(
        &self,
        request: Request<proto::BroadcastRequest>,
    ) -> Result<Response<proto::BroadcastResponse>, Status> {
        self.call("broadcast", request, |node, req| async move { publish::broadcast(&node, req).await }).await
    }

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<proto::SubscribeResponse>, Status> {
        self.call("subscribe", request, |node, req| async move { users::subscribe(&node, req).await }).await
    }

    async fn unsubscribe(
        &self,
        request: Request<proto::UnsubscribeRequest>,
    ) -> Result<Response<proto::UnsubscribeResponse>, Status> {
        self.call("unsubscribe", request, |node, req| async move { users::unsubscribe(&node, req).await }).await
    }

    async fn disconnect(
        &self,
        request: Request<proto::DisconnectRequest>,
    ) -> Result<Response<proto::DisconnectResponse>, Status> {
        self.call("disconnect", request, |node, req| async move { users::disconnect(&node, req).await }).await
    }

    async fn presence(
        &self,
        request: Request<proto::PresenceRequest>,
    ) -> Result<Response<proto::PresenceResponse>, Status> {
        self.call("presence", request, |node, req| async move { queries::presence(&node, req).await }).await
    }

    async fn presence_stats(
        &self,
        request: Request<proto::PresenceStatsRequest>,
    ) -> Result<Response<proto::PresenceStatsResponse>, Status> {
        self.call("presence_stats", request, |node, req| async move { queries::presence_stats(&node, req).await }).await
    }

    async fn history(
        &self,
        request: Request<proto::HistoryRequest>,
    ) -> Result<Response<proto::HistoryResponse>, Status> {
        self.call("history", request, |node, req| async move { queries::history(&node, req).await }).await
    }

    async fn history_remove(
        &self,
        request: Request<proto::HistoryRemoveRequest>,
    ) -> Result<Response<proto::HistoryRemoveResponse>, Status> {
        self.call("history_remove", request, |node, req| async move { queries::history_remove(&node, req).await }).await
    }

    async fn info(&self, request: Request<proto::InfoRequest>) -> Result<Response<proto::InfoResponse>, Status> {
        self.call("info", request, |node, req| async move { queries::info(&node, req).await }).await
    }

    async fn rpc(&self, request: Request<proto::RpcRequest>) -> Result<Response<proto::RpcResponse>, Status> {
        self.call("rpc", request, |node, req| async move { queries::rpc(&node, req).await }).await
    }

    async fn refresh(
        &self,
        request: Request<proto::RefreshRequest>,
    ) -> Result<Response<proto::RefreshResponse>, Status> {
        self.call("refresh", request, |node, req| async move { users::refresh(&node, req).await }).await
    }

    async fn channels(
        &self,
        request: Request<proto::ChannelsRequest>,
    ) -> Result<Response<proto::ChannelsResponse>, Status> {
        self.call("channels", request, |node, req| async move { queries::channels(&node, req).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_centrifugos_grpc_statuses() {
        for (code, status) in [
            (100, Code::Internal),
            (102, Code::NotFound),
            (104, Code::NotFound),
            (106, Code::Internal),
            (107, Code::InvalidArgument),
            (108, Code::InvalidArgument),
            (112, Code::OutOfRange),
            (113, Code::AlreadyExists),
            (999, Code::Internal),
        ] {
            assert_eq!(status_code(code), status, "code {code}");
        }
    }

    #[test]
    fn a_transport_status_carries_the_error_as_its_detail() {
        let status = transport_status(ApiError::UnknownChannel);
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "unknown channel");
        let details = RpcStatus::decode(status.details()).expect("google.rpc.Status");
        assert_eq!(details.code, Code::NotFound as i32);
        let [detail] = details.details.as_slice() else { panic!("one detail: {details:?}") };
        assert_eq!(detail.type_url, "type.googleapis.com/centrifugal.centrifugo.api.Error");
        let error = proto::Error::decode(detail.value.as_slice()).expect("Error");
        assert_eq!((error.code, error.message.as_str()), (102, "unknown channel"));
    }

    #[test]
    fn the_key_must_be_the_whole_apikey_value() {
        let check = KeyCheck::new("secret");
        assert!(check.allows(Some(b"apikey secret")));
        for wrong in [&b"apikey wrong"[..], b"apikey secret ", b"Apikey secret", b"secret", b"apikey", b""] {
            assert!(!check.allows(Some(wrong)), "{:?}", String::from_utf8_lossy(wrong));
        }
        assert!(!check.allows(None));
    }

    #[test]
    fn an_empty_key_lets_every_call_through() {
        let check = KeyCheck::new("");
        assert!(check.allows(None));
        assert!(check.allows(Some(b"apikey anything")));
    }

    #[test]
    fn the_interceptor_answers_unauthenticated() {
        let check = KeyCheck::new("k");
        let mut request = Request::new(());
        request.metadata_mut().insert("authorization", "apikey nope".parse().expect("metadata value"));
        let status = check.check(request).expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "unauthenticated"));
        let mut request = Request::new(());
        request.metadata_mut().insert("authorization", "apikey k".parse().expect("metadata value"));
        assert!(check.check(request).is_ok());
    }
}
