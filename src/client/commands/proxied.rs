//! Commands a backend proxy decides (protocol-extensions.md §6.5): connect without a token,
//! server-side connection refresh, subscribe, publish, RPC and subscription refresh.
//!
//! A call runs off the actor: the session spawns it and acts on the answer when it comes back.
//! Commands wait behind it as behind any command waiting for an answer; the refreshes run on
//! timers and hold nothing up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::stream::{AbortHandle, Abortable, BoxStream};
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::channel::ResolvedChannel;
use crate::client::messages::SubscribeOverrides;
use crate::client::session::{Busy, ClientSession, State};
use crate::domain::{unix_now, ChannelName, ClientInfo, Payload, Publication};
use crate::metrics::METRICS;
use crate::protocol::codes::ErrorBody;
use crate::protocol::command::{ConnectRequest, RpcRequest, SubscribeRequest};
use crate::protocol::outgoing::Push;
use crate::protocol::reply::{Empty, RpcResult};
use crate::protocol::{Disconnect, ReplyError};
use crate::proxy::{
    wire, CallError, ClientHeaders, FromGrpc, OpenedStream, Proxy, ProxyKind, ProxyRequest, ProxyResponse, RpcRoute,
    StreamItem,
};
use crate::registry::messages as registry;

use super::connect::Credentials;
use super::Ctx;

/// A refresh whose proxy call failed is tried again this much later, as Centrifugo does.
const REFRESH_RETRY: Duration = Duration::from_secs(60);

/// What a session keeps for proxy calls (boxed, and only when some proxy needs it).
#[derive(Default)]
pub(in crate::client) struct ProxyState {
    /// Headers of the opening request and of the connect's header emulation.
    pub(in crate::client) headers: Option<Arc<ClientHeaders>>,
    /// The connection's meta (token `meta` claim, or connect/refresh proxy result).
    pub(in crate::client) meta: Option<Payload>,
    /// Subscription streams from a subscribe stream proxy, by channel.
    streams: HashMap<ChannelName, ChannelStream>,
}

/// One subscription stream: read once the subscription is in place, aborted when it ends.
struct ChannelStream {
    /// The stream after its first answer, until the channel confirms the subscription.
    rest: Option<BoxStream<'static, StreamItem>>,
    /// Bidirectional streams: the client's publications go here.
    publisher: Option<tokio::sync::mpsc::UnboundedSender<bytes::Bytes>>,
    abort: Option<AbortHandle>,
}

impl Drop for ChannelStream {
    fn drop(&mut self) {
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }
}

/// A subscription stream's item, for the channel it belongs to.
#[derive(Message)]
#[rtype(result = "()")]
pub(in crate::client) struct StreamEvent {
    channel: ChannelName,
    item: StreamItem,
}

/// A proxy's answer as the session acts on it.
pub(in crate::client) enum Answer<R> {
    Result(R),
    Error(ErrorBody),
    Disconnect(Disconnect),
    /// A response with none of `result`, `error`, `disconnect`.
    Nothing,
    /// No usable response (logged where it failed).
    Failed,
}

fn answer<R>(outcome: Result<ProxyResponse<R>, CallError>) -> Answer<R> {
    let Ok(response) = outcome else { return Answer::Failed };
    if let Some(d) = response.disconnect {
        let code = u16::try_from(d.code).unwrap_or(Disconnect::SERVER_ERROR.code);
        return Answer::Disconnect(Disconnect::custom(code, &d.reason));
    }
    if let Some(e) = response.error {
        return Answer::Error(ErrorBody { code: e.code, message: e.message, temporary: e.temporary });
    }
    match response.result {
        Some(result) => Answer::Result(result),
        None => Answer::Nothing,
    }
}

/// A base64 field of a result that does not decode: the command fails with 100, as Centrifugo.
fn base64_failed(proxy: &str, error: &wire::BadBase64) -> ErrorBody {
    tracing::warn!(proxy, %error, "proxy result refused: fix the backend's base64 fields");
    ReplyError::Internal.to_wire()
}

fn expire_at(at: i64) -> Option<i64> {
    (at > 0).then_some(at)
}

impl ClientSession {
    /// Keeps the headers of the opening request that some proxy passes on.
    pub fn with_proxy_headers(self, headers: &actix_http::header::HeaderMap) -> Self {
        let captured = self.node.proxies.capture(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        self.with_captured_headers(captured)
    }

    /// Keeps the gRPC metadata of a uni_grpc stream that some proxy passes on.
    pub fn with_proxy_metadata(self, metadata: &http::HeaderMap) -> Self {
        let captured = self.node.proxies.capture(metadata.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        self.with_captured_headers(captured)
    }

    fn with_captured_headers(mut self, transport: Vec<(String, String)>) -> Self {
        if !transport.is_empty() {
            let state = self.proxy.get_or_insert_with(Box::default);
            state.headers = Some(Arc::new(ClientHeaders { transport, emulated: Vec::new() }));
        }
        self
    }

    /// The fields every request of this connection has.
    fn proxy_request(&self, proxy: &Proxy) -> ProxyRequest {
        let mut request = ProxyRequest {
            client: self.id.to_string(),
            transport: self.transport_name(),
            protocol: if self.protocol.is_protobuf() { "protobuf" } else { "json" },
            encoding: proxy.encoding(),
            user: self.connection().map(|c| c.user.to_string()).unwrap_or_default(),
            ..Default::default()
        };
        if proxy.include_meta() {
            request.set_meta(self.proxy.as_ref().and_then(|p| p.meta.as_ref()));
        }
        request
    }

    /// Calls `proxy`; `then` runs on the session with the answer. With `wait`, later commands
    /// wait for it (a command's own call); without, nothing does (timers).
    fn call_proxy<R, F>(&mut self, proxy: &Arc<Proxy>, request: ProxyRequest, wait: bool, ctx: &mut Ctx, then: F)
    where
        R: DeserializeOwned + FromGrpc + 'static,
        F: FnOnce(&mut Self, Answer<R>, &mut Ctx) + 'static,
    {
        if wait {
            self.busy = Some(Box::new(Busy::Reply));
        }
        let headers = self.proxy.as_ref().and_then(|p| p.headers.clone());
        let call = proxy.call::<R>(request, headers);
        let method = self.current_method;
        let started = Instant::now();
        ctx.spawn(call.into_actor(self).map(move |outcome, this, ctx| {
            if matches!(this.state, State::Closed) {
                return;
            }
            let _span = this.entered_span();
            if wait {
                this.busy = None;
                this.current_method = method;
            }
            then(this, answer(outcome), ctx);
            if wait && this.busy.is_none() {
                METRICS.command_duration(method, started.elapsed().as_secs_f64());
            }
            this.process_queue(ctx);
        }));
    }

    /// Answers a command with an error the backend chose.
    fn refuse_command<R>(&mut self, id: u32, answer: Answer<R>, ctx: &mut Ctx) {
        match answer {
            Answer::Disconnect(disconnect) => self.close(ctx, disconnect),
            Answer::Error(error) => self.push_error_body(id, error),
            Answer::Failed | Answer::Nothing | Answer::Result(_) => self.push_error(id, ReplyError::Internal),
        }
    }

    /// `client.proxy.connect`: a connect without a token asks the backend who this is.
    pub(in crate::client) fn connect_through_proxy(
        &mut self,
        id: u32,
        req: ConnectRequest,
        proxy: &Arc<Proxy>,
        ctx: &mut Ctx,
    ) {
        if self.node.proxies.wants_emulated_headers() && !req.headers.is_empty() {
            let state = self.proxy.get_or_insert_with(Box::default);
            let transport = state.headers.as_ref().map(|h| h.transport.clone()).unwrap_or_default();
            let emulated = req.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
            state.headers = Some(Arc::new(ClientHeaders { transport, emulated }));
        }
        let mut request = self.proxy_request(proxy);
        request.name = req.name.clone();
        request.version = req.version.clone();
        request.channels = req.subs.keys().cloned().collect();
        request.channels.sort();
        if request.set_data(req.data.as_ref(), proxy.binary()).is_err() {
            tracing::warn!(proxy = %proxy.name, "connect data is not JSON; set binary_encoding on the connect proxy to pass it");
            return self.refuse(id, ReplyError::Internal, ctx);
        }
        let name = proxy.name.clone();
        self.call_proxy(proxy, request, true, ctx, move |this, answer: Answer<wire::ConnectResult>, ctx| {
            this.on_connect_proxy(id, req, &name, answer, ctx);
        });
    }

    fn on_connect_proxy(
        &mut self,
        id: u32,
        req: ConnectRequest,
        proxy: &str,
        answer: Answer<wire::ConnectResult>,
        ctx: &mut Ctx,
    ) {
        let client = &self.node.settings.client;
        let credentials = match answer {
            Answer::Result(result) => match credentials_from(result) {
                Ok(credentials) => credentials,
                Err(error) => return self.refuse_with(id, base64_failed(proxy, &error), ctx),
            },
            Answer::Nothing if client.insecure || client.allow_anonymous_connect_without_token => {
                Credentials::default()
            }
            Answer::Nothing => {
                tracing::info!(client = %self.id, proxy, "connect proxy gave no credentials and anonymous connections are not allowed (3501)");
                return self.close(ctx, Disconnect::BAD_REQUEST);
            }
            Answer::Error(error) => return self.refuse_with(id, error, ctx),
            Answer::Disconnect(disconnect) => return self.close(ctx, disconnect),
            Answer::Failed => return self.refuse(id, ReplyError::Internal, ctx),
        };
        self.connect_with(id, req, credentials, ctx);
    }

    /// `client.proxy.refresh`: the connection reached its `expire_at`; the backend extends it.
    pub(in crate::client) fn refresh_through_proxy(&mut self, proxy: &Arc<Proxy>, ctx: &mut Ctx) {
        let request = self.proxy_request(proxy);
        let name = proxy.name.clone();
        self.call_proxy(proxy, request, false, ctx, move |this, answer: Answer<wire::RefreshResult>, ctx| {
            this.on_refresh_proxy(&name, answer, ctx);
        });
    }

    fn on_refresh_proxy(&mut self, proxy: &str, answer: Answer<wire::RefreshResult>, ctx: &mut Ctx) {
        let mut result = match answer {
            Answer::Result(result) => result,
            Answer::Failed => {
                // The connection stays; the backend is asked again later.
                let retry = unix_now() + REFRESH_RETRY.as_secs() as i64;
                return self.schedule_connection_expiry_check(retry, ctx);
            }
            // Centrifugo reads only `result` of a refresh answer: anything else expires it.
            _ => return self.close(ctx, Disconnect::EXPIRED),
        };
        let now = unix_now();
        if result.expired || result.expire_at <= now {
            return self.close(ctx, Disconnect::EXPIRED);
        }
        let info = match result.info() {
            Ok(info) => info,
            Err(error) => {
                base64_failed(proxy, &error);
                return self.close(ctx, Disconnect::SERVER_ERROR);
            }
        };
        if let Some(meta) = result.meta.take() {
            self.proxy.get_or_insert_with(Box::default).meta = Some(meta);
        }
        let State::Connected(connection) = &mut self.state else { return };
        connection.expire_at = Some(result.expire_at);
        if info.is_some() {
            connection.info = info;
        }
        self.schedule_connection_expiry_check(result.expire_at, ctx);
    }

    /// The subscribe (or subscribe stream) proxy of the channel's namespace, when a subscribe
    /// goes to it: no token (a token wins), not a private channel, and not a user-limited
    /// channel this user may join.
    pub(in crate::client) fn subscribe_proxy_for(
        &self,
        kind: ProxyKind,
        req: &SubscribeRequest,
        channel: &ResolvedChannel,
    ) -> Option<Arc<Proxy>> {
        if !req.token.is_empty() || channel.private {
            return None;
        }
        let proxy = self.node.proxies.for_channel(kind, &channel.namespace.options)?;
        let user = self.connection().map(|c| c.user.clone()).unwrap_or_default();
        if self.node.rules.user_limited_allows(channel, &user).is_some() {
            return None;
        }
        Some(Arc::clone(proxy))
    }

    pub(in crate::client) fn subscribe_through_proxy(
        &mut self,
        id: u32,
        req: SubscribeRequest,
        channel: ResolvedChannel,
        proxy: &Arc<Proxy>,
        ctx: &mut Ctx,
    ) {
        let mut request = self.proxy_request(proxy);
        request.channel = channel.name.to_string();
        if request.set_data(req.data.as_ref(), proxy.binary()).is_err() {
            tracing::warn!(proxy = %proxy.name, "subscribe data is not JSON; set binary_encoding on the subscribe proxy to pass it");
            return self.push_error(id, ReplyError::Internal);
        }
        let name = proxy.name.clone();
        self.call_proxy(proxy, request, true, ctx, move |this, answer: Answer<wire::SubscribeResult>, ctx| {
            let Answer::Result(result) = answer else {
                // An answer with nothing in it allows the subscription with the namespace's options.
                if matches!(answer, Answer::Nothing) {
                    return this.join_proxied(id, &req, channel, wire::SubscribeResult::default(), &name);
                }
                return this.refuse_command(id, answer, ctx);
            };
            if this.subscriptions.contains_key(&channel.name) {
                return this.push_error(id, ReplyError::AlreadySubscribed);
            }
            this.join_proxied(id, &req, channel, result, &name);
        });
    }

    /// Joins a channel the subscribe proxy allowed: the namespace's forced options with the
    /// result's overrides (what the client asked for is not consulted, as in Centrifugo).
    fn join_proxied(
        &mut self,
        id: u32,
        req: &SubscribeRequest,
        channel: ResolvedChannel,
        mut result: wire::SubscribeResult,
        proxy: &str,
    ) {
        let (info, data) = match (result.info(), result.data()) {
            (Ok(info), Ok(data)) => (info, data),
            (Err(error), _) | (_, Err(error)) => return self.push_error_body(id, base64_failed(proxy, &error)),
        };
        let overrides = overrides_of(result.override_.as_ref());
        let (mut pending, push_join_leave) = self.forced_pending(&channel, &overrides);
        pending.delta = self.negotiated_delta(req, &channel, pending.positioned);
        pending.expire_at = expire_at(result.expire_at);
        pending.refreshed_by_server =
            self.node.proxies.for_channel(ProxyKind::SubRefresh, &channel.namespace.options).is_some();
        pending.data = data;
        pending.chan_info = info;
        self.join(&channel, &pending, push_join_leave);
        self.busy = Some(Box::new(Busy::Subscribe { id, channel: channel.name, pending }));
    }

    /// `sub_refresh_proxy_enabled`: a subscription reached its `expire_at` (plus
    /// `client.expired_sub_close_delay`); the backend extends it or it ends.
    pub(in crate::client) fn sub_refresh_through_proxy(
        &mut self,
        channel: ChannelName,
        proxy: &Arc<Proxy>,
        ctx: &mut Ctx,
    ) {
        let mut request = self.proxy_request(proxy);
        request.channel = channel.to_string();
        let name = proxy.name.clone();
        self.call_proxy(proxy, request, false, ctx, move |this, answer: Answer<wire::SubRefreshResult>, ctx| {
            this.on_sub_refresh_proxy(channel, &name, answer, ctx);
        });
    }

    fn on_sub_refresh_proxy(
        &mut self,
        channel: ChannelName,
        proxy: &str,
        answer: Answer<wire::SubRefreshResult>,
        ctx: &mut Ctx,
    ) {
        let Some(subscription) = self.subscriptions.get(&channel) else { return };
        let server_side = subscription.server_side;
        let extended = match answer {
            Answer::Failed => {
                let retry = unix_now() + REFRESH_RETRY.as_secs() as i64;
                return self.schedule_subscription_expiry_check(channel, retry, ctx);
            }
            Answer::Result(mut result) if !result.expired && result.expire_at > unix_now() => {
                result.info().map(|info| (result.expire_at, info)).map_err(|e| base64_failed(proxy, &e)).ok()
            }
            _ => None,
        };
        let Some((at, info)) = extended else {
            if server_side {
                return self.close(ctx, Disconnect::SUBSCRIPTION_EXPIRED);
            }
            self.server_unsubscribe(&channel, 2501, "subscription expired");
            return self.flush(ctx);
        };
        if let Some(subscription) = self.subscriptions.get_mut(&channel) {
            subscription.expire_at = Some(at);
            if info.is_some() {
                subscription.chan_info = info;
            }
        }
        let delay = Duration::from_secs((at - unix_now()).max(0) as u64);
        self.schedule_subscription_expiry_check_after(channel, delay, ctx);
    }

    /// Opens the backend's stream for this subscription; its first answer decides the subscribe,
    /// and its publications go to this client alone once subscribed.
    pub(in crate::client) fn subscribe_to_stream(
        &mut self,
        id: u32,
        req: SubscribeRequest,
        channel: ResolvedChannel,
        proxy: &Arc<Proxy>,
        ctx: &mut Ctx,
    ) {
        let mut request = self.proxy_request(proxy);
        request.channel = channel.name.to_string();
        if request.set_data(req.data.as_ref(), proxy.binary()).is_err() {
            tracing::warn!(proxy = %proxy.name, "subscribe data is not JSON; set binary_encoding on the stream proxy to pass it");
            return self.push_error(id, ReplyError::Internal);
        }
        let bidirectional = channel.namespace.options.subscribe_stream_proxy_bidirectional;
        let headers = self.proxy.as_ref().and_then(|p| p.headers.clone());
        let open = proxy.open_stream(bidirectional, request, headers);
        let name = proxy.name.clone();
        self.busy = Some(Box::new(Busy::Reply));
        ctx.spawn(open.into_actor(self).map(move |outcome, this, ctx| {
            if matches!(this.state, State::Closed) {
                return;
            }
            this.busy = None;
            match outcome {
                Ok(opened) => this.on_stream_opened(id, channel, opened, &name, ctx),
                Err(_) => this.push_error(id, ReplyError::Internal),
            }
            this.process_queue(ctx);
        }));
    }

    fn on_stream_opened(
        &mut self,
        id: u32,
        channel: ResolvedChannel,
        opened: OpenedStream,
        proxy: &str,
        ctx: &mut Ctx,
    ) {
        let OpenedStream { first, rest, publisher } = opened;
        let mut result = match answer(Ok(first)) {
            Answer::Result(result) => result,
            Answer::Nothing => wire::SubscribeResult::default(),
            other => return self.refuse_command(id, other, ctx),
        };
        if self.subscriptions.contains_key(&channel.name) {
            return self.push_error(id, ReplyError::AlreadySubscribed);
        }
        let (info, data) = match (result.info(), result.data()) {
            (Ok(info), Ok(data)) => (info, data),
            (Err(error), _) | (_, Err(error)) => return self.push_error_body(id, base64_failed(proxy, &error)),
        };
        // Streams have no history here: no positioning or recovery, whatever the namespace says.
        let overrides = SubscribeOverrides {
            force_recovery: Some(false),
            force_positioning: Some(false),
            ..overrides_of(result.override_.as_ref())
        };
        let (mut pending, push_join_leave) = self.forced_pending(&channel, &overrides);
        pending.expire_at = expire_at(result.expire_at);
        pending.data = data;
        pending.chan_info = info;
        let stream = ChannelStream { rest: Some(rest), publisher, abort: None };
        self.proxy.get_or_insert_with(Box::default).streams.insert(channel.name.clone(), stream);
        self.join(&channel, &pending, push_join_leave);
        self.busy = Some(Box::new(Busy::Subscribe { id, channel: channel.name, pending }));
    }

    /// The subscription is in place: its stream starts being read.
    pub(in crate::client) fn start_stream(&mut self, channel: &ChannelName, ctx: &mut Ctx) {
        let Some(stream) = self.proxy.as_mut().and_then(|p| p.streams.get_mut(channel)) else { return };
        let Some(rest) = stream.rest.take() else { return };
        let (abort, registration) = AbortHandle::new_pair();
        stream.abort = Some(abort);
        let name = channel.clone();
        ctx.add_stream(Abortable::new(rest, registration).map(move |item| StreamEvent { channel: name.clone(), item }));
    }

    /// Ends a channel's subscription stream, if it has one (the backend's call is cancelled).
    pub(in crate::client) fn end_stream(&mut self, channel: &ChannelName) {
        if let Some(state) = self.proxy.as_mut() {
            state.streams.remove(channel);
        }
    }

    /// A bidirectional stream's namespace: the client's publication goes into the stream (108
    /// when the namespace's streams are one-way or this client has none for the channel).
    pub(in crate::client) fn publish_into_stream(&mut self, id: u32, channel: &ResolvedChannel, data: Payload) {
        let publisher =
            self.proxy.as_ref().and_then(|p| p.streams.get(&channel.name)).and_then(|stream| stream.publisher.as_ref());
        let sent = channel.namespace.options.subscribe_stream_proxy_bidirectional
            && publisher.is_some_and(|publisher| publisher.send(data.to_bytes()).is_ok());
        if sent {
            self.push_reply(id, "publish", &Empty {});
        } else {
            self.push_error(id, ReplyError::NotAvailable);
        }
    }

    /// The publish proxy of the channel's namespace, if it has one (it replaces the permission
    /// check).
    pub(in crate::client) fn publish_proxy_for(&self, channel: &ResolvedChannel) -> Option<Arc<Proxy>> {
        self.node.proxies.for_channel(ProxyKind::Publish, &channel.namespace.options).cloned()
    }

    pub(in crate::client) fn publish_through_proxy(
        &mut self,
        id: u32,
        data: Payload,
        channel: ResolvedChannel,
        proxy: &Arc<Proxy>,
        ctx: &mut Ctx,
    ) {
        let mut request = self.proxy_request(proxy);
        request.channel = channel.name.to_string();
        if request.set_data(Some(&data), proxy.binary()).is_err() {
            tracing::warn!(proxy = %proxy.name, "publication data is not JSON; set binary_encoding on the publish proxy to pass it");
            return self.push_error(id, ReplyError::Internal);
        }
        let name = proxy.name.clone();
        self.call_proxy(proxy, request, true, ctx, move |this, answer: Answer<wire::PublishResult>, ctx| {
            let (data, skip_history) = match answer {
                Answer::Result(mut result) => match result.data() {
                    Ok(rewritten) => (rewritten.unwrap_or(data), result.skip_history),
                    Err(error) => return this.push_error_body(id, base64_failed(&name, &error)),
                },
                Answer::Nothing => (data, false),
                other => return this.refuse_command(id, other, ctx),
            };
            this.publish_accepted(id, channel, data, skip_history, ctx);
        });
    }

    /// Publishes a client's publication (permission granted or the proxy agreed).
    pub(in crate::client) fn publish_accepted(
        &mut self,
        id: u32,
        channel: ResolvedChannel,
        data: Payload,
        skip_history: bool,
        ctx: &mut Ctx,
    ) {
        let Some(connection) = self.connection() else { return };
        let info = ClientInfo {
            user: connection.user.clone(),
            client: self.id.clone(),
            conn_info: connection.info.clone(),
            chan_info: self.subscriptions.get(&channel.name).and_then(|s| s.chan_info.clone()),
        };
        let use_delta = channel.namespace.options.delta_publish;
        let publication = Publication { data, info: Some(Arc::new(info)), use_delta, ..Default::default() };
        let publish = registry::Publish { channel, publication, skip_history, idempotency_key: None };
        let to = self.node.registry.clone();
        self.reply_later(id, "publish", ctx, async move {
            match registry::publish(&to, publish).await {
                Ok(_) => Ok(Empty {}),
                Err(registry::PublishFailed::ChannelLimit) => Err(ReplyError::LimitExceeded),
                Err(registry::PublishFailed::Unavailable) => Err(ReplyError::Internal),
            }
        });
    }

    /// An RPC no built-in method answered: its namespace's proxy, if RPC proxies are configured.
    pub(in crate::client) fn rpc_through_proxy(&mut self, id: u32, req: RpcRequest, ctx: &mut Ctx) {
        let route = self.node.proxies.rpc_route(&self.node.settings, &req.method);
        let proxy = match route {
            RpcRoute::Proxy(proxy) => Arc::clone(proxy),
            RpcRoute::UnknownNamespace => return self.push_error(id, ReplyError::MethodNotFound),
            RpcRoute::NoProxy => return self.push_error(id, ReplyError::NotAvailable),
        };
        let mut request = self.proxy_request(&proxy);
        request.method = req.method;
        if request.set_data(req.data.as_ref(), proxy.binary()).is_err() {
            tracing::warn!(proxy = %proxy.name, "RPC data is not JSON; set binary_encoding on the RPC proxy to pass it");
            return self.push_error(id, ReplyError::Internal);
        }
        let name = proxy.name.clone();
        self.call_proxy(&proxy, request, true, ctx, move |this, answer: Answer<wire::RpcResult>, ctx| match answer {
            Answer::Result(mut result) => match result.data() {
                Ok(data) => this.push_reply(id, "rpc", &RpcResult { data }),
                Err(error) => this.push_error_body(id, base64_failed(&name, &error)),
            },
            Answer::Nothing => this.push_reply(id, "rpc", &RpcResult::default()),
            other => this.refuse_command(id, other, ctx),
        });
    }
}

/// What a connect proxy's result makes of the connection.
fn credentials_from(mut result: wire::ConnectResult) -> Result<Credentials, wire::BadBase64> {
    let info = result.info()?;
    let data = result.data()?;
    let mut channels = std::mem::take(&mut result.channels);
    let mut subs = std::collections::BTreeMap::new();
    for (channel, mut options) in std::mem::take(&mut result.subs) {
        let sub = super::connect::ServerSub {
            info: options.info()?,
            data: options.data()?,
            overrides: overrides_of(options.override_.as_ref()),
        };
        channels.push(channel.clone());
        subs.insert(channel, sub);
    }
    Ok(Credentials {
        user: result.user.as_str().into(),
        expire_at: expire_at(result.expire_at),
        info,
        channels,
        subs,
        data,
        meta: result.meta.take(),
        from_token: false,
    })
}

fn overrides_of(o: Option<&wire::SubscribeOverride>) -> SubscribeOverrides {
    let Some(o) = o else { return SubscribeOverrides::default() };
    let value = |v: Option<wire::BoolValue>| v.map(|v| v.value);
    SubscribeOverrides {
        presence: value(o.presence),
        join_leave: value(o.join_leave),
        force_push_join_leave: value(o.force_push_join_leave),
        force_positioning: value(o.force_positioning),
        force_recovery: value(o.force_recovery),
    }
}

impl StreamHandler<StreamEvent> for ClientSession {
    fn handle(&mut self, StreamEvent { channel, item }: StreamEvent, ctx: &mut Ctx) {
        let _span = self.entered_span();
        if !self.subscriptions.contains_key(&channel) {
            return;
        }
        match item {
            StreamItem::Publication(data) => {
                let publication = Publication { data, ..Default::default() };
                self.push_to_client(channel.as_str(), Push::Publication(&publication));
            }
            // As Centrifugo: a stream the backend ends unsubscribes with 2000, a broken one 2500.
            StreamItem::Ended(clean) => {
                self.end_stream(&channel);
                let (code, reason) = if clean { (2000, "server unsubscribe") } else { (2500, "insufficient state") };
                self.server_unsubscribe(&channel, code, reason);
            }
        }
        self.flush(ctx);
    }

    /// A subscription stream ending is handled by its `Ended` item; the session goes on.
    fn finished(&mut self, _: &mut Ctx) {}
}
