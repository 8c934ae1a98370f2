//! The session actor shell: lifecycle, incoming frames, outgoing lines, timers.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;

use super::commands::{Credentials, PendingSubscription, ProxyState, ServerSub};
use super::messages::{ClientHandle, Deliver, EmulatedCommands, SubscribeAnswer, SubscribeOverrides};
use super::outbox::{Deliveries, Outbox};
use super::pings;
use super::rate_limit::CommandLimiter;
use super::transport::Flow;
use super::transport::Inbound;
use crate::domain::{unix_now, ChannelName, ClientId, Payload, SmallMap};
use crate::metrics::{ConnectionLabels, METRICS};
use crate::node::Node;
use crate::protocol::codes::ErrorBody;
use crate::protocol::command::{Command, ConnectRequest};
use crate::protocol::frame::PendingCommands;
use crate::protocol::outgoing::{Outgoing, Push};
use crate::protocol::protobuf::ReplyBody;
use crate::protocol::reply::{ConnectResult, NotJson, UnsubscribePush};
use crate::protocol::{Disconnect, Frame, Protocol, ReplyError};
use crate::registry::messages::{ClientConnected, ClientGone, Unsubscribe};

/// Connection state.
pub(super) enum State {
    /// Waiting for a successful `connect`; who the connection is when something vouched for it
    /// already (a gateway's `client.user_id_http_header`, the admin's live tail): a connect
    /// without a token is theirs.
    Connecting { vouched: Option<Box<Credentials>> },
    /// Authenticated.
    Connected(Connection),
    /// `connect` was refused with an error reply; waiting for the client to close.
    Refused,
    /// Closing; nothing more is processed.
    Closed,
}

/// An authenticated connection.
pub(super) struct Connection {
    pub(super) user: Arc<str>,
    pub(super) info: Option<Payload>,
    pub(super) expire_at: Option<i64>,
}

/// One live subscription.
pub(super) struct Subscription {
    pub(super) expire_at: Option<i64>,
    pub(super) server_side: bool,
    pub(super) chan_info: Option<Payload>,
    pub(super) token_based: bool,
}

/// A command whose reply is still being produced; later commands wait for it.
pub(super) enum Busy {
    /// `subscribe` waiting for the channel's answer.
    Subscribe { id: u32, channel: ChannelName, pending: PendingSubscription },
    /// `connect` waiting for its server-side subscriptions, and the channels' frames that
    /// arrive meanwhile: they may only be written after the connect reply.
    Connect { id: u32, result: ConnectResult, waiting: HashMap<ChannelName, PendingSubscription>, held: Vec<Frame> },
    /// A command waiting for a reply future (publish, presence, history).
    Reply,
}

/// One WebSocket connection.
pub struct ClientSession {
    pub(super) node: Arc<Node>,
    pub(super) id: ClientId,
    /// Per-connection span (`client_id`, `user`), entered while the session handles anything;
    /// only when debug logging is on (boxed: it is never there at the default level).
    pub(super) span: Option<Box<tracing::Span>>,
    pub(super) state: State,
    pub(super) subscriptions: SmallMap<ChannelName, Subscription>,
    /// Boxed: rare, and ~140 bytes inline on every idle connection.
    pub(super) busy: Option<Box<Busy>>,
    /// Server API subscriptions waiting for their channel's answer.
    pub(super) server_pending: SmallMap<ChannelName, PendingSubscription>,
    /// Method of the command being processed (metrics labels of error replies).
    pub(super) current_method: &'static str,
    /// Labels of `connections_inflight`, once connected.
    pub(super) metric_labels: Option<Arc<ConnectionLabels>>,
    /// The encoding negotiated at the handshake.
    pub(super) protocol: Protocol,
    /// Frames received whose commands have not run yet; reading waits while there are any.
    input: PendingCommands,
    /// Shared with the transport: reading paused or not, bytes the socket has not taken.
    pub(super) flow: Rc<Flow>,
    /// What channels and the registry send this connection (see [`outbox`]).
    outbox: Arc<Outbox>,
    /// Replies waiting to be written as one frame.
    out: Outgoing,
    awaiting_pong: bool,
    /// The stale-connection timer, cancelled once connected (an idle connection keeps no timer).
    stale_check: Option<SpawnHandle>,
    /// Close with this code at the next flush (0: no): 3506 when a reply or push held data this
    /// connection's JSON cannot carry, as Centrifugo does; on a unidirectional connection, the
    /// disconnect an error reply becomes.
    close_on_flush: Option<Box<Disconnect>>,
    /// Unidirectional WebSocket: the connect request from the handshake's `cf_connect`, run once
    /// the session starts.
    pending_connect: Option<Box<ConnectRequest>>,
    /// The frames go into an HTTP response body (uni_sse, uni_http_stream, and the emulated
    /// http_stream and sse), not a socket.
    pub(super) http: Option<Box<HttpSession>>,
    /// Command rate limit buckets, created on the first limited command.
    pub(super) limiter: Option<Box<CommandLimiter>>,
    /// Headers and meta for backend proxy calls, when some proxy needs them.
    pub(super) proxy: Option<Box<ProxyState>>,
}

impl ClientSession {
    /// A session for a freshly upgraded connection speaking `protocol`.
    pub fn new(node: Arc<Node>, protocol: Protocol) -> Self {
        let id = ClientId::generate();
        Self {
            node,
            // Debug level: disabled at the default `info` level, so it costs nothing per
            // connection in production unless asked for.
            span: Some(tracing::debug_span!("client", client_id = %id, user = tracing::field::Empty))
                .filter(|span| !span.is_disabled())
                .map(Box::new),
            id,
            state: State::Connecting { vouched: None },
            subscriptions: SmallMap::new(),
            busy: None,
            server_pending: SmallMap::new(),
            current_method: "connect",
            metric_labels: None,
            protocol,
            input: PendingCommands::default(),
            flow: Rc::default(),
            outbox: Outbox::new(),
            out: Outgoing::new(protocol),
            awaiting_pong: false,
            stale_check: None,
            close_on_flush: None,
            pending_connect: None,
            http: None,
            limiter: None,
            proxy: None,
        }
    }

    /// Enters the connection's span, if debug logging made one.
    pub(super) fn entered_span(&self) -> Option<tracing::span::EnteredSpan> {
        self.span.as_deref().map(|span| span.clone().entered())
    }

    /// How channels and the registry reach this session.
    pub(super) fn client_handle(&self) -> ClientHandle {
        ClientHandle::new(self.id.clone(), self.outbox.clone(), self.protocol.push_encoding())
    }

    pub(super) fn connection(&self) -> Option<&Connection> {
        match &self.state {
            State::Connected(c) => Some(c),
            _ => None,
        }
    }

    /// Queues a success reply; replies are joined into one frame on [`Self::flush`].
    pub(super) fn push_reply<T: ReplyBody + ?Sized>(&mut self, id: u32, method: &'static str, result: &T) {
        match self.out.reply(id, method, result) {
            Ok(bytes) => METRICS.sent(method, bytes),
            Err(NotJson) => self.close_on_flush = Some(Box::new(Disconnect::INAPPROPRIATE_PROTOCOL)),
        }
    }

    /// Queues an error reply to the command being processed.
    pub(super) fn push_error(&mut self, id: u32, error: ReplyError) {
        self.push_error_body(id, error.to_wire());
    }

    /// Queues an error reply with any code (a backend proxy's error).
    pub(super) fn push_error_body(&mut self, id: u32, error: ErrorBody) {
        if self.protocol.is_uni() {
            self.close_on_flush = Some(Box::new(self.uni_disconnect(error.code)));
        }
        METRICS.reply_error(self.current_method, error.code);
        let bytes = self.out.error(id, &error);
        METRICS.sent(self.current_method, bytes);
    }

    /// Queues a push for this connection alone (unsubscribe, subscribe, refresh).
    pub(super) fn push_to_client(&mut self, channel: &str, push: Push<'_>) {
        match self.out.push(channel, &push) {
            Ok(bytes) => METRICS.sent(push.frame_type(), bytes),
            Err(NotJson) => self.close_on_flush = Some(Box::new(Disconnect::INAPPROPRIATE_PROTOCOL)),
        }
    }

    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(disconnect) = self.close_on_flush.take() {
            if disconnect.code == Disconnect::INAPPROPRIATE_PROTOCOL.code {
                tracing::info!(client = %self.id, "a reply or push holds data that is not JSON; this client speaks JSON (3506)");
            }
            return self.close(ctx, *disconnect);
        }
        if let Some(frame) = self.out.take() {
            self.write(frame);
        }
    }

    /// Hands the frame's wire bytes to the socket writer as they are: a channel's push is the
    /// same allocation for every subscriber, never copied or re-encoded per connection.
    fn write(&mut self, frame: Frame) {
        self.flow.hand(frame.wire());
    }

    /// Writes a channel's push as a frame of its own. Joining pushes into one frame would save
    /// little (frames written in one turn already leave in one socket write) and breaks
    /// centrifuge-js 5.7.4: it interleaves the lines of two frames that arrive back to back, so
    /// publications would reach the application out of order.
    ///
    /// `uni_websocket.join_push_messages` asks for the opposite on unidirectional WebSockets: the
    /// pushes of one delivery batch go out as `\n`-joined lines of one frame (copied out of the
    /// shared frames), for clients that read many small messages.
    fn write_push(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let joined = self.protocol == Protocol::UniJson
            && self.http.is_none()
            && self.node.settings.uni_websocket.join_push_messages;
        if joined {
            if let Some((_, line)) = super::transport::ws_frames::server_frame_payload(&frame.wire()) {
                self.out.append_line(line);
                return;
            }
        }
        self.flush(ctx);
        self.write(frame);
    }

    /// The disconnect a connect error becomes on a unidirectional connection:
    /// `client.connect_code_to_unidirectional_disconnect` first, then Centrifugo's default
    /// table (expired token or connection → 3005, rate limited → 3013, permission denied →
    /// 3507, anything else → 3004).
    pub(super) fn uni_disconnect(&self, code: u32) -> Disconnect {
        let translations = &self.node.settings.client.connect_code_to_unidirectional_disconnect;
        if let Some(to) = translations.for_code(code) {
            return Disconnect::custom(to.code, &to.reason);
        }
        const TOKEN_EXPIRED: u32 = ReplyError::TokenExpired.code();
        const EXPIRED: u32 = ReplyError::Expired.code();
        const TOO_MANY: u32 = ReplyError::TooManyRequests.code();
        const DENIED: u32 = ReplyError::PermissionDenied.code();
        match code {
            TOKEN_EXPIRED | EXPIRED => Disconnect::EXPIRED,
            TOO_MANY => Disconnect::TOO_MANY_REQUESTS,
            DENIED => Disconnect::PERMISSION_DENIED,
            _ => Disconnect::SERVER_ERROR,
        }
    }

    /// Closes the connection with a disconnect code; nothing is processed afterwards.
    pub(super) fn close(&mut self, ctx: &mut Context<Self>, disconnect: Disconnect) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if matches!(self.state, State::Connecting { .. }) && self.http.is_some() {
            // What refused the connect, for transports that answer it with an HTTP status.
            self.flow.refuse_connect(u32::from(disconnect.code), &disconnect.reason);
        }
        tracing::debug!(client = %self.id, code = disconnect.code, reason = %disconnect.reason, "closing connection");
        METRICS.server_disconnect(disconnect.code);
        self.flush(ctx);
        self.state = State::Closed;
        self.input.clear();
        self.outbox.close();
        // Unidirectional and emulated transports tell why in a message before they end (a
        // WebSocket's close frame carries it, and an HTTP body has none).
        let uni_push = self.protocol.is_uni()
            && (self.http.is_some() || !self.node.settings.uni_websocket.disable_disconnect_push);
        if uni_push || self.emulation_session().is_some() {
            self.out.disconnect(u32::from(disconnect.code), &disconnect.reason);
            if let Some(frame) = self.out.take() {
                self.write(frame);
            }
        }
        // `uni_websocket.disable_closing_handshake`: the socket just closes after the
        // disconnect message (for clients that cannot read close frames).
        let no_close_frame = self.protocol == Protocol::UniJson
            && self.http.is_none()
            && self.node.settings.uni_websocket.disable_closing_handshake;
        if !no_close_frame {
            self.write(Frame::close(Some(disconnect.code), &disconnect.reason));
        }
        ctx.stop();
    }

    /// A text frame: JSON commands, or Protobuf ones on a Protobuf connection (the negotiated
    /// protocol decides, whatever the frame's type, as in Centrifugo).
    fn on_text(&mut self, text: ByteString, ctx: &mut Context<Self>) {
        match self.protocol {
            Protocol::Json => self.on_frame(|input| input.push_json(text), ctx),
            Protocol::Protobuf => self.on_frame(|input| input.push_protobuf(text.into_bytes()), ctx),
            Protocol::UniJson => self.on_uni_message(text.as_bytes(), ctx),
            // The gRPC stream's request is its only input.
            Protocol::UniProtobuf => {}
        }
    }

    /// A binary frame: Protobuf commands, or JSON ones if it is UTF-8 on a JSON connection.
    fn on_binary(&mut self, bytes: bytes::Bytes, ctx: &mut Context<Self>) {
        match self.protocol {
            Protocol::Protobuf => self.on_frame(|input| input.push_protobuf(bytes), ctx),
            Protocol::UniJson => self.on_uni_message(&bytes, ctx),
            Protocol::UniProtobuf => {}
            Protocol::Json => match ByteString::try_from(bytes) {
                Ok(text) => self.on_frame(|input| input.push_json(text), ctx),
                Err(_) => self.close(ctx, Disconnect::BAD_REQUEST),
            },
        }
    }

    /// Unidirectional WebSocket: the first message is the connect request (unless `cf_connect`
    /// brought it); later messages are ignored, as Centrifugo's uni_websocket does.
    fn on_uni_message(&mut self, message: &[u8], ctx: &mut Context<Self>) {
        if !matches!(self.state, State::Connecting { .. }) || self.busy.is_some() || self.pending_connect.is_some() {
            return;
        }
        match serde_json::from_slice::<Option<ConnectRequest>>(message) {
            Ok(request) => self.run_uni_connect(request.unwrap_or_default(), ctx),
            Err(error) => {
                tracing::debug!(client = %self.id, %error, "uni_websocket: the first message is not a connect request");
                self.close(ctx, Disconnect::BAD_REQUEST);
            }
        }
    }

    /// Runs a unidirectional connect request as a `connect` command (its result goes out as the
    /// `connect` push).
    fn run_uni_connect(&mut self, request: ConnectRequest, ctx: &mut Context<Self>) {
        let command = Command { id: 1, connect: Some(request), ..Default::default() };
        self.dispatch(command, ctx);
        self.flush(ctx);
    }

    /// A session whose frames become an HTTP response body (no WebSocket control frames).
    pub fn over_http(mut self, transport: &'static str) -> Self {
        self.http = Some(Box::new(HttpSession { transport, ..HttpSession::default() }));
        self
    }

    /// An emulated bidirectional session (HTTP-streaming or SSE): `initial` holds the commands of
    /// the opening request (the connect command); later ones come through `/emulation`.
    pub fn emulated(mut self, transport: &'static str, initial: bytes::Bytes) -> Self {
        let session = uuid::Uuid::new_v4().to_string();
        self.http = Some(Box::new(HttpSession { transport, emulation: Some(session), initial: Some(initial) }));
        self
    }

    /// The transport's name, as Centrifugo's metrics label it.
    pub(super) fn transport_name(&self) -> &'static str {
        match (&self.http, self.protocol) {
            (Some(http), _) => http.transport,
            (None, Protocol::UniJson) => "uni_websocket",
            (None, _) => "websocket",
        }
    }

    /// The emulated session's id (`session` of the connect result).
    pub(super) fn emulation_session(&self) -> Option<&str> {
        self.http.as_ref()?.emulation.as_deref()
    }

    /// The user id a gateway put in `client.user_id_http_header` of the opening request: a
    /// connect without a token is then that user's.
    pub fn with_header_user(mut self, headers: &actix_http::header::HeaderMap) -> Self {
        let name = &self.node.settings.client.user_id_http_header;
        if name.is_empty() {
            return self;
        }
        let user = headers.get(name.as_str()).and_then(|value| value.to_str().ok()).map(str::trim);
        if let Some(user) = user.filter(|user| !user.is_empty()) {
            self.state =
                State::Connecting { vouched: Some(Box::new(Credentials { user: user.into(), ..Default::default() })) };
        }
        self
    }

    /// The user `client.user_id_http_header` named, while connecting.
    pub(super) fn take_vouched(&mut self) -> Option<Credentials> {
        match &mut self.state {
            State::Connecting { vouched } => vouched.take().map(|credentials| *credentials),
            _ => None,
        }
    }

    /// The admin UI's live tail of `channel`: connects without a token (the admin token vouched
    /// for the request), subscribed server-side to the channel whatever its permissions.
    /// It is not in the channel's presence and its join and leave are not announced (an
    /// observer, not a participant); it gets the others' join and leave.
    pub fn tailing(mut self, channel: String) -> Self {
        let observer = SubscribeOverrides {
            presence: Some(false),
            join_leave: Some(false),
            force_push_join_leave: Some(true),
            ..Default::default()
        };
        let sub = ServerSub { overrides: observer, ..Default::default() };
        let credentials = Credentials {
            channels: vec![channel.clone()],
            subs: [(channel, sub)].into_iter().collect(),
            ..Default::default()
        };
        self.state = State::Connecting { vouched: Some(Box::new(credentials)) };
        self
    }

    /// Starts with the connect request the handshake carried (`cf_connect`).
    pub fn with_connect_request(mut self, request: Option<ConnectRequest>) -> Self {
        self.pending_connect = request.map(Box::new);
        self
    }

    fn on_frame(&mut self, queue: impl FnOnce(&mut PendingCommands), ctx: &mut Context<Self>) {
        if matches!(self.state, State::Closed | State::Refused) {
            return;
        }
        queue(&mut self.input);
        self.process_queue(ctx);
    }

    /// Runs received commands in order until one has to wait for an answer. Reading the socket
    /// waits while commands are left (backpressure), and replies the socket has not taken count
    /// against `client.queue_max_size` like pushes do (over it: 3008).
    pub(super) fn process_queue(&mut self, ctx: &mut Context<Self>) {
        while self.busy.is_none() {
            let Some(next) = self.input.next_command() else { break };
            match next {
                Ok((command, size)) => {
                    METRICS.received(command.frame_type(), size);
                    self.dispatch(command, ctx);
                }
                Err(error) => {
                    tracing::debug!(client = %self.id, %error, "malformed command");
                    self.close(ctx, Disconnect::BAD_REQUEST);
                }
            }
            if matches!(self.state, State::Closed | State::Refused) {
                self.input.clear();
                break;
            }
            if self.out.len() + self.flow.unsent() > self.node.settings.client.queue_max_size {
                tracing::debug!(client = %self.id, "replies not taken by the socket exceed client.queue_max_size");
                self.close(ctx, Disconnect::SLOW);
                break;
            }
        }
        self.flush(ctx);
        self.flow.pause_reading(!self.input.is_empty());
    }

    /// Called once `connect` succeeded: registers the client, starts pings and expiry checks.
    pub(super) fn on_connected(&mut self, ctx: &mut Context<Self>) {
        let Some(connection) = self.connection() else { return };
        let user = connection.user.clone();
        let expire_at = connection.expire_at;
        self.node.registry.do_send(ClientConnected { client: self.client_handle(), user });
        self.schedule_pings();
        if let Some(stale_check) = self.stale_check.take() {
            ctx.cancel_future(stale_check);
        }
        if let Some(at) = expire_at {
            self.schedule_connection_expiry_check(at, ctx);
        }
    }

    fn schedule_pings(&mut self) {
        let client = &self.node.settings.client;
        pings::schedule(&self.outbox, client.ping_interval, client.pong_timeout);
    }

    fn send_ping(&mut self, ctx: &mut Context<Self>) {
        let bytes = self.out.ping();
        METRICS.sent("server_ping", bytes);
        self.flush(ctx);
        match (self.protocol, self.http.is_some()) {
            // Unidirectional clients send nothing: a WebSocket ping checks they are there
            // (browsers answer it without the application), as Centrifugo's uni_websocket does.
            (Protocol::UniJson | Protocol::UniProtobuf, false) => self.write(Frame::ping()),
            // Over HTTP nothing can answer: a write that fails ends the response instead.
            (Protocol::UniJson | Protocol::UniProtobuf, true) => return,
            _ => {}
        }
        self.awaiting_pong = true;
    }

    /// Only delivered when `client.pong_timeout` is set.
    fn on_pong_deadline(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_pong {
            self.close(ctx, Disconnect::NO_PONG);
        }
    }

    /// A pong answers the outstanding ping; one that answers nothing (no ping sent yet, or it
    /// was answered already) closes the connection with 3501, as Centrifugo does.
    pub(super) fn on_pong(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.awaiting_pong) {
            tracing::debug!(client = %self.id, "unexpected pong");
            self.close(ctx, Disconnect::BAD_REQUEST);
        }
    }

    /// Whether pings expect pongs (advertised in the connect result).
    pub(super) fn ping_settings(&self) -> (u32, bool) {
        let client = &self.node.settings.client;
        let ping = client.ping_interval.as_secs() as u32;
        let client_pongs = !self.protocol.is_uni();
        (ping, client_pongs && ping > 0 && !client.pong_timeout.is_zero())
    }

    /// Closes with 3005 if the connection is still expired `expired_close_delay` after `at`;
    /// with a refresh proxy, asks it at `at` instead.
    pub(super) fn schedule_connection_expiry_check(&mut self, at: i64, ctx: &mut Context<Self>) {
        if let Some(proxy) = self.node.proxies.refresh.clone() {
            ctx.run_later(seconds_until(at), move |this, ctx| {
                let due = this.connection().and_then(|c| c.expire_at).is_some_and(|due| due <= unix_now());
                if due {
                    this.refresh_through_proxy(&proxy, ctx);
                }
            });
            return;
        }
        let delay = seconds_until(at) + self.node.settings.client.expired_close_delay;
        ctx.run_later(delay, |this, ctx| {
            let expired = this.connection().and_then(|c| c.expire_at).is_some_and(|at| at <= unix_now());
            if expired {
                this.close(ctx, Disconnect::EXPIRED);
            }
        });
    }

    /// Ends a subscription still expired `expired_sub_close_delay` after `at`: client-side ones
    /// get an `unsubscribe` push 2501 (the SDK resubscribes with a fresh token), server-side
    /// ones close the connection with 3006.
    pub(super) fn schedule_subscription_expiry_check(
        &mut self,
        channel: ChannelName,
        at: i64,
        ctx: &mut Context<Self>,
    ) {
        let delay = seconds_until(at) + self.node.settings.client.expired_sub_close_delay;
        self.schedule_subscription_expiry_check_after(channel, delay, ctx);
    }

    /// The check of [`Self::schedule_subscription_expiry_check`] after `delay`; a namespace
    /// with a sub_refresh proxy asks it instead of ending the subscription.
    pub(super) fn schedule_subscription_expiry_check_after(
        &mut self,
        channel: ChannelName,
        delay: Duration,
        ctx: &mut Context<Self>,
    ) {
        ctx.run_later(delay, move |this, ctx| {
            let Some(sub) = this.subscriptions.get(&channel) else {
                return;
            };
            if sub.expire_at.is_none_or(|at| at > unix_now()) {
                return;
            }
            if let Some(proxy) = this.sub_refresh_proxy(&channel) {
                return this.sub_refresh_through_proxy(channel, &proxy, ctx);
            }
            if sub.server_side {
                return this.close(ctx, Disconnect::SUBSCRIPTION_EXPIRED);
            }
            this.server_unsubscribe(&channel, 2501, "subscription expired");
            this.flush(ctx);
        });
    }

    fn sub_refresh_proxy(&self, channel: &ChannelName) -> Option<Arc<crate::proxy::Proxy>> {
        let resolved = self.node.rules.resolve(channel.as_str()).ok()?;
        self.node.proxies.for_channel(crate::proxy::ProxyKind::SubRefresh, &resolved.namespace.options).cloned()
    }

    /// Drops a subscription on the server's initiative and tells the client.
    pub(super) fn server_unsubscribe(&mut self, channel: &ChannelName, code: u32, reason: &str) {
        if self.subscriptions.remove(channel).is_none() {
            return;
        }
        self.end_stream(channel);
        self.node.registry.do_send(Unsubscribe { channel: channel.clone(), client: self.id.clone() });
        self.push_to_client(channel.as_str(), Push::Unsubscribe(&UnsubscribePush { code, reason }));
    }

    fn on_stale_check(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.state, State::Connecting { .. }) {
            self.close(ctx, Disconnect::STALE);
        }
    }
}

fn seconds_until(at: i64) -> Duration {
    Duration::from_secs((at - unix_now()).max(0) as u64)
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.node.connection_opened();
        Self::attach(self.outbox.clone(), ctx);
        let stale = self.node.settings.client.stale_close_delay;
        if !stale.is_zero() {
            self.stale_check = Some(ctx.run_later(stale, |this, ctx| this.on_stale_check(ctx)));
        }
        if let Some(request) = self.pending_connect.take() {
            self.run_uni_connect(*request, ctx);
        }
        if let Some(http) = self.http.as_mut() {
            if let Some(session) = &http.emulation {
                self.node.emulated.add(session, ctx.address().recipient());
            }
            if let Some(initial) = http.initial.take() {
                self.on_binary(initial, ctx);
            }
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.outbox.close();
        if let Some(session) = self.emulation_session() {
            self.node.emulated.remove(session);
        }
        let mut channels: Vec<ChannelName> =
            self.subscriptions.take_all().into_iter().map(|(channel, _)| channel).collect();
        // Subscriptions the registry already has but whose answer has not arrived yet.
        match self.busy.take().map(|busy| *busy) {
            Some(Busy::Subscribe { channel, .. }) => channels.push(channel),
            Some(Busy::Connect { waiting, .. }) => channels.extend(waiting.into_keys()),
            _ => {}
        }
        channels.extend(self.server_pending.take_all().into_iter().map(|(channel, _)| channel));
        for channel in channels {
            self.node.registry.do_send(Unsubscribe { channel, client: self.id.clone() });
        }
        self.node.registry.do_send(ClientGone { client: self.id.clone() });
        self.node.connection_closed();
        if let Some(labels) = &self.metric_labels {
            METRICS.connection_ended(labels);
        }
    }
}

/// What the WebSocket transport decoded from the client.
impl StreamHandler<Inbound> for ClientSession {
    fn handle(&mut self, message: Inbound, ctx: &mut Self::Context) {
        let _span = self.entered_span();
        match message {
            Inbound::Text(text) => self.on_text(text, ctx),
            Inbound::Binary(bytes) => self.on_binary(bytes, ctx),
            Inbound::Ping(payload) => self.write(Frame::pong(&payload)),
            Inbound::Pong if self.protocol.is_uni() => self.awaiting_pong = false,
            Inbound::Pong => {}
            Inbound::Close(code) => {
                // Echo the client's code (RFC 6455 §5.5.1), as Centrifugo's WebSocket library does.
                self.state = State::Closed;
                self.write(Frame::close(code, ""));
                ctx.stop();
            }
            Inbound::Refused(disconnect) => {
                tracing::debug!(client = %self.id, code = disconnect.code, "the client broke the WebSocket protocol or a limit");
                self.close(ctx, disconnect);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Deliveries for ClientSession {
    fn deliver(&mut self, batch: &mut VecDeque<Deliver>, ctx: &mut Self::Context) {
        let _span = self.entered_span();
        for message in batch.drain(..) {
            if matches!(self.state, State::Closed) {
                return;
            }
            self.on_deliver(message, ctx);
        }
        // Everything written in this turn leaves in one socket write.
        self.flush(ctx);
        // Over HTTP the session runs apart from its response body: what the client has not
        // read is bounded here (a WebSocket's writer stops running the session instead).
        if self.http.is_some() && self.flow.unsent() > self.node.settings.client.queue_max_size {
            tracing::info!(client = %self.id, "HTTP stream client reads slower than its pushes arrive (3008)");
            self.close(ctx, Disconnect::SLOW);
        }
    }
}

impl ClientSession {
    fn on_deliver(&mut self, message: Deliver, ctx: &mut Context<Self>) {
        match message {
            Deliver::Frame(frame) => match self.busy.as_deref_mut() {
                Some(Busy::Connect { held, .. }) => held.push(frame),
                _ => self.write_push(frame, ctx),
            },
            Deliver::Subscribed(answer) => {
                let SubscribeAnswer { channel, outcome } = *answer;
                self.on_subscribed(channel, outcome, ctx);
                self.process_queue(ctx);
            }
            Deliver::Unsubscribe { channel, code, reason } => self.server_unsubscribe(&channel, code, reason),
            Deliver::Disconnect(disconnect) => self.close(ctx, disconnect),
            Deliver::Server(action) => self.on_server_action(*action, ctx),
            Deliver::Ping => self.send_ping(ctx),
            Deliver::PongDeadline => self.on_pong_deadline(ctx),
        }
    }

    /// Writes the frames held back during connect, after the connect reply.
    pub(super) fn release_held(&mut self, held: Vec<Frame>, ctx: &mut Context<Self>) {
        for frame in held {
            self.write_push(frame, ctx);
        }
    }
}

/// `/emulation` requests an emulated session may have waiting while its commands run.
const EMULATED_REQUESTS_WAITING: usize = 64;

/// What a session over HTTP keeps besides a WebSocket session's state (boxed: WebSocket
/// sessions, the many, carry only the pointer).
#[derive(Debug, Default)]
pub(super) struct HttpSession {
    /// `http_stream`, `sse`, `uni_sse` or `uni_http_stream`.
    pub transport: &'static str,
    /// An emulated bidirectional session's id: `session` of its connect result, the key of
    /// `/emulation` requests.
    pub emulation: Option<String>,
    /// Commands of the opening request, run when the session starts.
    pub initial: Option<bytes::Bytes>,
}

impl Handler<EmulatedCommands> for ClientSession {
    type Result = ();

    fn handle(&mut self, EmulatedCommands(commands): EmulatedCommands, ctx: &mut Self::Context) {
        let _span = self.entered_span();
        // A WebSocket client that sends faster than its commands run stops being read; an
        // emulated one cannot be, so it may have this many requests waiting, then it is closed.
        if self.input.waiting() >= EMULATED_REQUESTS_WAITING {
            tracing::info!(client = %self.id, "emulated client sends commands faster than they run (3008)");
            return self.close(ctx, Disconnect::SLOW);
        }
        // As a binary frame: JSON lines (if UTF-8) or Protobuf commands, by the session's protocol.
        self.on_binary(commands, ctx);
    }
}
