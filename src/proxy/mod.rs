//! Backend proxies (protocol-extensions.md §6): the application's backend decides connects
//! without a token, connection refreshes, subscribes, client publications, RPCs and
//! subscription refreshes, answering Centrifugo's `proxyproto` messages over HTTP (JSON) or gRPC.
//!
//! A [`Proxy`] is one configured endpoint used for one kind of call. Its calls never block an
//! actor: a session spawns [`Proxy::call`] as a future and takes the answer as a message. Each
//! call is bounded by the proxy's `timeout` (waiting for a free slot included), and a proxy has
//! at most [`MAX_IN_FLIGHT`] calls at once on a node.

mod grpc;
mod http;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::config::proxy::{is_default_name, ProxySettings};
use crate::config::{ChannelOptions, Settings};
use crate::metrics::{ProxyMetrics, METRICS};

pub use grpc::{grpc_target, FromGrpc, OpenedStream, StreamItem};
pub use wire::{ErrorAnswer, ProxyRequest, ProxyResponse};

/// Calls one proxy may have in flight on a node; more wait for a slot within their timeout.
pub const MAX_IN_FLIGHT: usize = 512;

/// Largest response body read from an HTTP backend.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// What a proxy is asked (the `type` label of its metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    Connect,
    Refresh,
    Subscribe,
    Publish,
    Rpc,
    SubRefresh,
    SubscribeStream,
}

impl ProxyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Refresh => "refresh",
            Self::Subscribe => "subscribe",
            Self::Publish => "publish",
            Self::Rpc => "rpc",
            Self::SubRefresh => "sub_refresh",
            Self::SubscribeStream => "subscribe_stream",
        }
    }
}

/// Why a call gave no answer (Centrifugo's plain proxy errors: the client gets error 100, or a
/// unidirectional one 3004; refreshes are retried later).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no answer within the proxy timeout of {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the backend: {0}")]
    Transport(String),
    #[error("the backend answered HTTP {0}")]
    Status(u16),
    #[error("the backend's answer is not a proxy response: {0}")]
    Body(String),
    #[error("the client's data is not JSON; set binary_encoding on this proxy to pass it as b64data")]
    NotJson,
}

/// Headers of the client's opening request (and its connect's emulated `headers`) that some
/// proxy passes on; names lower-cased.
#[derive(Debug, Default)]
pub struct ClientHeaders {
    /// From the WebSocket upgrade / HTTP stream request (or gRPC metadata for uni_grpc).
    pub transport: Vec<(String, String)>,
    /// From the connect command's `headers` (header emulation).
    pub emulated: Vec<(String, String)>,
}

/// One configured proxy endpoint, for one kind of call.
pub struct Proxy {
    /// `default` or the `proxies` entry's name.
    pub name: String,
    kind: ProxyKind,
    settings: ProxySettings,
    /// Allowed names, lower-cased.
    http_headers: Vec<String>,
    emulated_headers: Vec<String>,
    grpc: Option<grpc::Caller>,
    slots: tokio::sync::Semaphore,
    metrics: ProxyMetrics,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Proxy {
    fn new(name: &str, kind: ProxyKind, settings: &ProxySettings) -> Self {
        let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>();
        let mut http_headers = lower(&settings.http_headers);
        http_headers.extend(lower(&settings.grpc_metadata));
        let grpc = settings.is_grpc().then(|| grpc::Caller::new(settings));
        let protocol = if grpc.is_some() { "grpc" } else { "http" };
        Self {
            name: name.to_owned(),
            kind,
            http_headers,
            emulated_headers: lower(&settings.emulated_headers),
            grpc,
            slots: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            metrics: METRICS.proxy(protocol, kind.as_str(), name),
            settings: settings.clone(),
        }
    }

    /// Payloads go as `b64data`.
    pub fn binary(&self) -> bool {
        self.settings.binary_encoding
    }

    /// Requests after connect carry the connection's meta.
    pub fn include_meta(&self) -> bool {
        self.settings.include_connection_meta
    }

    /// `"binary"` or `"json"`: the `encoding` field of requests.
    pub fn encoding(&self) -> &'static str {
        if self.binary() {
            "binary"
        } else {
            "json"
        }
    }

    /// Asks the backend; the future owns what it needs, so an actor can spawn it and take the
    /// answer as a message. Failures are logged here, naming the proxy and the cause.
    pub fn call<R>(
        self: &Arc<Self>,
        request: ProxyRequest,
        headers: Option<Arc<ClientHeaders>>,
    ) -> impl std::future::Future<Output = Result<ProxyResponse<R>, CallError>> + 'static
    where
        R: DeserializeOwned + FromGrpc + 'static,
    {
        let this = Arc::clone(self);
        self.observed(async move { this.call_within_timeout::<R>(request, headers.as_deref()).await })
    }

    /// Opens a subscription stream (gRPC `SubscribeUnidirectional`/`SubscribeBidirectional`);
    /// its first answer must come within the timeout.
    pub fn open_stream(
        self: &Arc<Self>,
        bidirectional: bool,
        request: ProxyRequest,
        headers: Option<Arc<ClientHeaders>>,
    ) -> impl std::future::Future<Output = Result<OpenedStream, CallError>> + 'static {
        let this = Arc::clone(self);
        self.observed(async move {
            let _slot = this.slots.acquire().await.map_err(|_| CallError::Transport("proxy closed".into()))?;
            let metadata = this.outgoing_headers(headers.as_deref());
            match &this.grpc {
                Some(caller) => caller.open_stream(bidirectional, request, metadata).await,
                None => Err(CallError::Transport("subscription streams need a gRPC endpoint".into())),
            }
        })
    }

    /// Bounds `call` by the timeout and records its metrics; a failure is logged.
    fn observed<T>(
        self: &Arc<Self>,
        call: impl std::future::Future<Output = Result<T, CallError>> + 'static,
    ) -> impl std::future::Future<Output = Result<T, CallError>> + 'static {
        let this = Arc::clone(self);
        async move {
            let started = Instant::now();
            this.metrics.inflight.inc();
            let timeout = this.settings.timeout;
            let outcome = tokio::time::timeout(timeout, call).await.unwrap_or(Err(CallError::Timeout(timeout)));
            this.metrics.inflight.dec();
            this.metrics.duration.observe(started.elapsed().as_secs_f64());
            if let Err(error) = &outcome {
                this.metrics.errors.inc();
                tracing::warn!(proxy = %this.name, kind = this.kind.as_str(), endpoint = %this.settings.endpoint, %error, "proxy call failed");
            }
            outcome
        }
    }

    async fn call_within_timeout<R>(
        &self,
        request: ProxyRequest,
        headers: Option<&ClientHeaders>,
    ) -> Result<ProxyResponse<R>, CallError>
    where
        R: DeserializeOwned + FromGrpc,
    {
        let _slot = self.slots.acquire().await.map_err(|_| CallError::Transport("proxy closed".into()))?;
        let headers = self.outgoing_headers(headers);
        match &self.grpc {
            Some(caller) => caller.call::<R>(request, headers).await,
            None => self.call_http(request, headers).await,
        }
    }

    async fn call_http<R: DeserializeOwned>(
        &self,
        request: ProxyRequest,
        headers: Vec<(String, String)>,
    ) -> Result<ProxyResponse<R>, CallError> {
        let body = serde_json::to_vec(&request).map_err(|e| CallError::Body(e.to_string()))?;
        match http::post(&self.settings.endpoint, headers, body, MAX_RESPONSE_BYTES).await {
            Ok(bytes) => decode_response(&bytes),
            Err(CallError::Status(status)) => self.transformed(status).ok_or(CallError::Status(status)),
            Err(error) => Err(error),
        }
    }

    /// `http.status_to_code_transforms`: a backend status turned into an error or disconnect.
    fn transformed<R>(&self, status: u16) -> Option<ProxyResponse<R>> {
        let transform = self.settings.http.status_to_code_transforms.iter().find(|t| t.status_code == status)?;
        let mut response = ProxyResponse::default();
        if transform.to_disconnect.code != 0 {
            response.disconnect = Some(wire::DisconnectAnswer {
                code: u32::from(transform.to_disconnect.code),
                reason: transform.to_disconnect.reason.clone(),
            });
        } else {
            response.error = Some(ErrorAnswer {
                code: transform.to_error.code,
                message: transform.to_error.message.clone(),
                temporary: transform.to_error.temporary,
            });
        }
        Some(response)
    }

    /// Static headers, then allowed emulated headers, then allowed headers of the client's
    /// request (which win over emulated ones of the same name), as Centrifugo orders them.
    fn outgoing_headers(&self, client: Option<&ClientHeaders>) -> Vec<(String, String)> {
        let statics =
            if self.grpc.is_some() { &self.settings.grpc.static_metadata } else { &self.settings.http.static_headers };
        let mut out: Vec<(String, String)> =
            statics.0.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
        let Some(client) = client else { return out };
        let mut put = |name: &str, value: &str| {
            if is_reserved_header(name) {
                return;
            }
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value.to_owned(),
                None => out.push((name.to_owned(), value.to_owned())),
            }
        };
        for (name, value) in &client.emulated {
            if self.emulated_headers.contains(name) {
                put(name, value);
            }
        }
        for (name, value) in &client.transport {
            if self.http_headers.contains(name) {
                put(name, value);
            }
        }
        out
    }
}

/// Headers the proxy's own request sets; a client's value must not replace them.
fn is_reserved_header(name: &str) -> bool {
    matches!(name, "content-type" | "content-length" | "host" | "connection" | "transfer-encoding" | "te" | "upgrade")
}

/// A JSON object with `result`, `error` or `disconnect` (`null` is an empty one, as Go's decoder
/// has it); anything else, a JSON array included, is a failed call.
fn decode_response<R: DeserializeOwned>(bytes: &[u8]) -> Result<ProxyResponse<R>, CallError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| CallError::Body(e.to_string())),
        Some(b'n') if serde_json::from_slice::<()>(bytes).is_ok() => Ok(ProxyResponse::default()),
        _ => Err(CallError::Body("not a JSON object".into())),
    }
}

/// Every proxy of the node, resolved from the configuration once.
#[derive(Debug, Default)]
pub struct Proxies {
    /// `client.proxy.connect`, when enabled.
    pub connect: Option<Arc<Proxy>>,
    /// `client.proxy.refresh`, when enabled.
    pub refresh: Option<Arc<Proxy>>,
    /// Channel and RPC proxies by kind and name (`default` = the section's object).
    by_name: HashMap<(ProxyKind, String), Arc<Proxy>>,
    /// Some RPC namespace uses a proxy.
    rpc_configured: bool,
    /// Header names any proxy passes on, lower-cased (captured when a connection opens).
    header_names: Vec<String>,
}

/// Where a client RPC goes.
pub enum RpcRoute<'a> {
    /// To this proxy.
    Proxy(&'a Arc<Proxy>),
    /// The method's namespace is not configured (104).
    UnknownNamespace,
    /// The namespace has no proxy (108).
    NoProxy,
}

impl Proxies {
    /// Builds the proxies the configuration uses (it has been validated).
    pub fn new(settings: &Settings) -> Self {
        let mut proxies = Self::default();
        let client = &settings.client.proxy;
        if client.connect.enabled {
            proxies.connect = Some(proxies.add_single(ProxyKind::Connect, &client.connect.proxy));
        }
        if client.refresh.enabled {
            proxies.refresh = Some(proxies.add_single(ProxyKind::Refresh, &client.refresh.proxy));
        }
        for (_, options) in settings.channel.namespace_options() {
            for (kind, enabled, name) in channel_uses(options) {
                if enabled {
                    proxies.add_named(settings, kind, name);
                }
            }
        }
        let rpc = &settings.rpc;
        let choices = std::iter::once(&rpc.without_namespace).chain(rpc.namespaces.iter().map(|ns| &ns.choice));
        for choice in choices.filter(|c| c.proxy_enabled) {
            proxies.rpc_configured = true;
            proxies.add_named(settings, ProxyKind::Rpc, &choice.proxy_name);
        }
        proxies.header_names.sort();
        proxies.header_names.dedup();
        proxies
    }

    fn add_single(&mut self, kind: ProxyKind, settings: &ProxySettings) -> Arc<Proxy> {
        let proxy = Arc::new(Proxy::new("default", kind, settings));
        self.header_names.extend(proxy.http_headers.iter().cloned());
        proxy
    }

    fn add_named(&mut self, settings: &Settings, kind: ProxyKind, name: &str) {
        let name = if is_default_name(name) { "default" } else { name };
        if self.by_name.contains_key(&(kind, name.to_owned())) {
            return;
        }
        let config = if name == "default" {
            let defaults = &settings.channel.proxy;
            Some(match kind {
                ProxyKind::Subscribe => &defaults.subscribe,
                ProxyKind::Publish => &defaults.publish,
                ProxyKind::SubRefresh => &defaults.sub_refresh,
                ProxyKind::SubscribeStream => &defaults.subscribe_stream,
                _ => &settings.rpc.proxy,
            })
        } else {
            settings.proxies.iter().find(|p| p.name == name).map(|p| &p.proxy)
        };
        let Some(config) = config else { return };
        let proxy = Arc::new(Proxy::new(name, kind, config));
        self.header_names.extend(proxy.http_headers.iter().cloned());
        self.by_name.insert((kind, name.to_owned()), proxy);
    }

    /// The subscribe, publish or sub_refresh proxy a channel's namespace switched on.
    pub fn for_channel(&self, kind: ProxyKind, options: &ChannelOptions) -> Option<&Arc<Proxy>> {
        let (_, _, name) = channel_uses(options).into_iter().find(|(k, enabled, _)| *k == kind && *enabled)?;
        let name = if is_default_name(name) { "default" } else { name };
        self.by_name.get(&(kind, name.to_owned()))
    }

    /// Whether RPC proxies are configured at all.
    pub fn rpc_configured(&self) -> bool {
        self.rpc_configured
    }

    /// The proxy an RPC method goes to (namespace = text before `rpc.namespace_boundary`).
    pub fn rpc_route(&self, settings: &Settings, method: &str) -> RpcRoute<'_> {
        let rpc = &settings.rpc;
        let boundary = rpc.namespace_boundary.as_str();
        let namespace = match method.split_once(boundary).filter(|_| !boundary.is_empty()) {
            Some((namespace, _)) => namespace,
            None => "",
        };
        let choice = if namespace.is_empty() {
            Some(&rpc.without_namespace)
        } else {
            rpc.namespaces.iter().find(|ns| ns.name == namespace).map(|ns| &ns.choice)
        };
        let Some(choice) = choice else { return RpcRoute::UnknownNamespace };
        if !choice.proxy_enabled {
            return RpcRoute::NoProxy;
        }
        let name = if is_default_name(&choice.proxy_name) { "default" } else { choice.proxy_name.as_str() };
        match self.by_name.get(&(ProxyKind::Rpc, name.to_owned())) {
            Some(proxy) => RpcRoute::Proxy(proxy),
            None => RpcRoute::NoProxy,
        }
    }

    /// The headers of a connection's opening request (or gRPC metadata; names lower-case)
    /// that some proxy passes on.
    pub fn capture<'a>(&self, headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(String, String)> {
        if self.header_names.is_empty() {
            return Vec::new();
        }
        headers
            .filter(|(name, _)| self.header_names.iter().any(|n| n == name))
            .filter_map(|(name, value)| Some((name.to_owned(), std::str::from_utf8(value).ok()?.to_owned())))
            .collect()
    }

    /// Whether any proxy wants emulated headers (else a connect's `headers` are not kept).
    pub fn wants_emulated_headers(&self) -> bool {
        self.all().any(|p| !p.emulated_headers.is_empty())
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Proxy>> {
        self.connect.iter().chain(self.refresh.iter()).chain(self.by_name.values())
    }
}

/// The proxies a channel options object switches on: (kind, enabled, name).
fn channel_uses(options: &ChannelOptions) -> [(ProxyKind, bool, &str); 4] {
    [
        (ProxyKind::Subscribe, options.subscribe_proxy_enabled, options.subscribe_proxy_name.as_str()),
        (ProxyKind::Publish, options.publish_proxy_enabled, options.publish_proxy_name.as_str()),
        (ProxyKind::SubRefresh, options.sub_refresh_proxy_enabled, options.sub_refresh_proxy_name.as_str()),
        (
            ProxyKind::SubscribeStream,
            options.subscribe_stream_proxy_enabled,
            options.subscribe_stream_proxy_name.as_str(),
        ),
    ]
}
