//! gRPC proxy calls: the `centrifugal.centrifugo.proxy.CentrifugoProxy` service (the messages of
//! src/proxy/proxy.proto), unary calls over a lazily connected HTTP/2 channel per worker thread.

use std::cell::RefCell;
use std::collections::HashMap;

use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::wire::{self, bytes_field, ProxyRequest, ProxyResponse};
use super::CallError;
use crate::config::proxy::ProxySettings;

/// The generated proxy messages.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/centrifugal.centrifugo.proxy.rs"));
}

/// The URI a gRPC endpoint (`grpc://host:port` or `host:port`) is dialled at, if it is one.
pub fn grpc_target(endpoint: &str) -> Option<String> {
    let address = endpoint.strip_prefix("grpc://").unwrap_or(endpoint);
    let (host, port) = address.rsplit_once(':')?;
    if host.is_empty() || port.parse::<u16>().is_err() || address.contains('/') {
        return None;
    }
    Some(format!("http://{address}"))
}

thread_local! {
    /// Channels by target URI: one HTTP/2 connection per backend and thread, reused by calls.
    static CHANNELS: RefCell<HashMap<String, Channel>> = RefCell::new(HashMap::new());
}

/// How one gRPC proxy is called.
pub(super) struct Caller {
    target: Option<String>,
    credentials: Option<(MetadataKey<tonic::metadata::Ascii>, MetadataValue<tonic::metadata::Ascii>)>,
    compression: bool,
}

impl Caller {
    pub(super) fn new(settings: &ProxySettings) -> Self {
        let grpc = &settings.grpc;
        let credentials = (!grpc.credentials_key.is_empty())
            .then(|| {
                let key = MetadataKey::from_bytes(grpc.credentials_key.to_ascii_lowercase().as_bytes()).ok()?;
                let value = MetadataValue::try_from(grpc.credentials_value.as_str()).ok()?;
                Some((key, value))
            })
            .flatten();
        Self { target: grpc_target(&settings.endpoint), credentials, compression: grpc.compression }
    }

    fn channel(&self) -> Result<Channel, CallError> {
        let target = self.target.as_deref().ok_or_else(|| CallError::Transport("not a gRPC endpoint".into()))?;
        CHANNELS.with(|channels| {
            if let Some(channel) = channels.borrow().get(target) {
                return Ok(channel.clone());
            }
            let endpoint = Endpoint::from_shared(target.to_owned()).map_err(|e| CallError::Transport(e.to_string()))?;
            let channel = endpoint.connect_lazy();
            channels.borrow_mut().insert(target.to_owned(), channel.clone());
            Ok(channel)
        })
    }

    pub(super) async fn call<R: FromGrpc>(
        &self,
        request: ProxyRequest,
        metadata: Vec<(String, String)>,
    ) -> Result<ProxyResponse<R>, CallError> {
        let mut grpc = tonic::client::Grpc::new(self.channel()?);
        if self.compression {
            grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        grpc.ready().await.map_err(|e| CallError::Transport(e.to_string()))?;
        let mut call = tonic::Request::new(R::request(request));
        for (name, value) in metadata {
            if let (Ok(key), Ok(value)) =
                (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value.as_str()))
            {
                call.metadata_mut().insert(key, value);
            }
        }
        if let Some((key, value)) = &self.credentials {
            call.metadata_mut().insert(key.clone(), value.clone());
        }
        let path = http::uri::PathAndQuery::from_static(R::METHOD);
        let codec = tonic_prost::ProstCodec::<R::Request, R::Response>::default();
        let response = grpc
            .unary(call, path, codec)
            .await
            .map_err(|status| CallError::Transport(format!("gRPC {:?}: {}", status.code(), status.message())))?;
        Ok(R::response(response.into_inner()))
    }
}

/// A proxy result type's gRPC method and messages.
pub trait FromGrpc: Sized {
    /// `/centrifugal.centrifugo.proxy.CentrifugoProxy/<Method>`.
    const METHOD: &'static str;
    type Request: prost::Message + Default + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;
    /// The request message for this call.
    fn request(request: ProxyRequest) -> Self::Request;
    /// The response as the JSON one would decode.
    fn response(response: Self::Response) -> ProxyResponse<Self>;
}

fn bytes_of(payload: Option<crate::domain::Payload>) -> bytes::Bytes {
    payload.map(|p| p.to_bytes()).unwrap_or_default()
}

fn answer<R>(
    result: Option<R>,
    error: Option<proto::Error>,
    disconnect: Option<proto::Disconnect>,
) -> ProxyResponse<R> {
    ProxyResponse {
        result,
        error: error.map(|e| wire::ErrorAnswer { code: e.code, message: e.message, temporary: e.temporary }),
        disconnect: disconnect.map(|d| wire::DisconnectAnswer { code: d.code, reason: d.reason }),
    }
}

fn overrides(o: Option<proto::SubscribeOptionOverride>) -> Option<wire::SubscribeOverride> {
    let o = o?;
    let value = |v: Option<proto::BoolValue>| v.map(|v| wire::BoolValue { value: v.value });
    Some(wire::SubscribeOverride {
        presence: value(o.presence),
        join_leave: value(o.join_leave),
        force_push_join_leave: value(o.force_push_join_leave),
        force_recovery: value(o.force_recovery),
        force_positioning: value(o.force_positioning),
    })
}

/// Data in a gRPC request: bytes always, `b64data` too with `binary_encoding`, as Centrifugo.
fn data_fields(request: &ProxyRequest) -> (bytes::Bytes, String) {
    if request.b64data.is_empty() {
        (bytes_of(request.raw_data.clone()), String::new())
    } else {
        (bytes::Bytes::new(), request.b64data.clone())
    }
}

impl FromGrpc for wire::ConnectResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Connect";
    type Request = proto::ConnectRequest;
    type Response = proto::ConnectResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        let (data, b64data) = data_fields(&r);
        proto::ConnectRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            data,
            b64data,
            name: r.name,
            version: r.version,
            channels: r.channels,
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::ConnectResult {
            user: c.user,
            expire_at: c.expire_at,
            info: bytes_field(c.info),
            b64info: c.b64info,
            data: bytes_field(c.data),
            b64data: c.b64data,
            channels: c.channels,
            subs: c
                .subs
                .into_iter()
                .map(|(channel, o)| {
                    let options = wire::SubscribeOptions {
                        info: bytes_field(o.info),
                        b64info: o.b64info,
                        data: bytes_field(o.data),
                        b64data: o.b64data,
                        override_: overrides(o.r#override),
                    };
                    (channel, options)
                })
                .collect(),
            meta: bytes_field(c.meta),
        });
        answer(result, r.error, r.disconnect)
    }
}

impl FromGrpc for wire::RefreshResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Refresh";
    type Request = proto::RefreshRequest;
    type Response = proto::RefreshResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        proto::RefreshRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            user: r.user,
            meta: bytes_of(r.raw_meta),
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::RefreshResult {
            expired: c.expired,
            expire_at: c.expire_at,
            info: bytes_field(c.info),
            b64info: c.b64info,
            meta: bytes_field(c.meta),
        });
        answer(result, r.error, r.disconnect)
    }
}

impl FromGrpc for wire::SubscribeResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Subscribe";
    type Request = proto::SubscribeRequest;
    type Response = proto::SubscribeResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        let (data, b64data) = data_fields(&r);
        proto::SubscribeRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            user: r.user,
            channel: r.channel,
            token: r.token,
            meta: bytes_of(r.raw_meta),
            data,
            b64data,
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::SubscribeResult {
            expire_at: c.expire_at,
            info: bytes_field(c.info),
            b64info: c.b64info,
            data: bytes_field(c.data),
            b64data: c.b64data,
            override_: overrides(c.r#override),
        });
        answer(result, r.error, r.disconnect)
    }
}

impl FromGrpc for wire::PublishResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/Publish";
    type Request = proto::PublishRequest;
    type Response = proto::PublishResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        let (data, b64data) = data_fields(&r);
        proto::PublishRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            user: r.user,
            channel: r.channel,
            data,
            b64data,
            meta: bytes_of(r.raw_meta),
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::PublishResult {
            data: bytes_field(c.data),
            b64data: c.b64data,
            skip_history: c.skip_history,
        });
        answer(result, r.error, r.disconnect)
    }
}

impl FromGrpc for wire::RpcResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/RPC";
    type Request = proto::RpcRequest;
    type Response = proto::RpcResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        let (data, b64data) = data_fields(&r);
        proto::RpcRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            user: r.user,
            method: r.method,
            data,
            b64data,
            meta: bytes_of(r.raw_meta),
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::RpcResult { data: bytes_field(c.data), b64data: c.b64data });
        answer(result, r.error, r.disconnect)
    }
}

impl FromGrpc for wire::SubRefreshResult {
    const METHOD: &'static str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/SubRefresh";
    type Request = proto::SubRefreshRequest;
    type Response = proto::SubRefreshResponse;

    fn request(r: ProxyRequest) -> Self::Request {
        proto::SubRefreshRequest {
            client: r.client,
            transport: r.transport.into(),
            protocol: r.protocol.into(),
            encoding: r.encoding.into(),
            user: r.user,
            channel: r.channel,
            meta: bytes_of(r.raw_meta),
        }
    }

    fn response(r: Self::Response) -> ProxyResponse<Self> {
        let result = r.result.map(|c| wire::SubRefreshResult {
            expired: c.expired,
            expire_at: c.expire_at,
            info: bytes_field(c.info),
            b64info: c.b64info,
        });
        answer(result, r.error, r.disconnect)
    }
}

/// What a subscription stream delivers after its first answer.
#[derive(Debug)]
pub enum StreamItem {
    /// A publication for this client alone.
    Publication(crate::domain::Payload),
    /// The backend ended the stream (`true`: cleanly) or it broke (`false`).
    Ended(bool),
}

/// An opened subscription stream: the backend's first answer, the rest of the stream, and (for
/// bidirectional streams) where the client's publications go.
pub struct OpenedStream {
    pub first: ProxyResponse<wire::SubscribeResult>,
    pub rest: futures_util::stream::BoxStream<'static, StreamItem>,
    pub publisher: Option<tokio::sync::mpsc::UnboundedSender<bytes::Bytes>>,
}

const UNIDIRECTIONAL: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/SubscribeUnidirectional";
const BIDIRECTIONAL: &str = "/centrifugal.centrifugo.proxy.CentrifugoProxy/SubscribeBidirectional";

impl Caller {
    /// Opens `SubscribeUnidirectional` or `SubscribeBidirectional` and reads the first message,
    /// which must carry the subscribe answer.
    pub(super) async fn open_stream(
        &self,
        bidirectional: bool,
        request: ProxyRequest,
        metadata: Vec<(String, String)>,
    ) -> Result<OpenedStream, CallError> {
        use futures_util::StreamExt as _;
        let mut grpc = tonic::client::Grpc::new(self.channel()?);
        if self.compression {
            grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        grpc.ready().await.map_err(|e| CallError::Transport(e.to_string()))?;
        let subscribe = <wire::SubscribeResult as FromGrpc>::request(request);
        let to_status =
            |status: tonic::Status| CallError::Transport(format!("gRPC {:?}: {}", status.code(), status.message()));
        let (mut responses, publisher) = if bidirectional {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
            let first = proto::StreamSubscribeRequest { subscribe_request: Some(subscribe), publication: None };
            let later = futures_util::stream::unfold(receiver, |mut receiver| async move {
                let data = receiver.recv().await?;
                let publication = proto::Publication { data, tags: Default::default() };
                Some((
                    proto::StreamSubscribeRequest { subscribe_request: None, publication: Some(publication) },
                    receiver,
                ))
            });
            let requests = futures_util::stream::once(async move { first }).chain(later);
            let call = self.with_metadata(tonic::Request::new(requests), metadata);
            let codec =
                tonic_prost::ProstCodec::<proto::StreamSubscribeRequest, proto::StreamSubscribeResponse>::default();
            let path = http::uri::PathAndQuery::from_static(BIDIRECTIONAL);
            let response = grpc.streaming(call, path, codec).await.map_err(to_status)?;
            (response.into_inner(), Some(sender))
        } else {
            let call = self.with_metadata(tonic::Request::new(subscribe), metadata);
            let codec = tonic_prost::ProstCodec::<proto::SubscribeRequest, proto::StreamSubscribeResponse>::default();
            let path = http::uri::PathAndQuery::from_static(UNIDIRECTIONAL);
            let response = grpc.server_streaming(call, path, codec).await.map_err(to_status)?;
            (response.into_inner(), None)
        };
        let first = responses.message().await.map_err(to_status)?;
        let Some(answer) = first.and_then(|m| m.subscribe_response) else {
            return Err(CallError::Body("the stream's first message has no subscribe_response".into()));
        };
        let rest = futures_util::stream::unfold(Some(responses), |responses| async move {
            let mut responses = responses?;
            loop {
                match responses.message().await {
                    Ok(Some(message)) => match message.publication {
                        Some(publication) => {
                            let item = StreamItem::Publication(crate::domain::Payload::new(publication.data));
                            return Some((item, Some(responses)));
                        }
                        None => continue,
                    },
                    Ok(None) => return Some((StreamItem::Ended(true), None)),
                    Err(_) => return Some((StreamItem::Ended(false), None)),
                }
            }
        });
        Ok(OpenedStream { first: wire::SubscribeResult::response(answer), rest: rest.boxed(), publisher })
    }

    fn with_metadata<T>(&self, mut call: tonic::Request<T>, metadata: Vec<(String, String)>) -> tonic::Request<T> {
        for (name, value) in metadata {
            if let (Ok(key), Ok(value)) =
                (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value.as_str()))
            {
                call.metadata_mut().insert(key, value);
            }
        }
        if let Some((key, value)) = &self.credentials {
            call.metadata_mut().insert(key.clone(), value.clone());
        }
        call
    }
}
