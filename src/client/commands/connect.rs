//! `connect`: token verification, limits, server-side subscriptions, the connect reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::auth::{ConnectionClaims, TokenError};
use crate::channel::ResolvedChannel;
use crate::client::messages::SubscribeOverrides;
use crate::client::session::{Busy, ClientSession, Connection, State};
use crate::domain::{unix_now, Payload, StreamPosition};
use crate::metrics::METRICS;
use crate::node::VERSION;
use crate::protocol::codes::ErrorBody;
use crate::protocol::command::{ConnectRequest, SubscribeRequest};
use crate::protocol::reply::ConnectResult;
use crate::protocol::{Disconnect, ReplyError};
use crate::registry::messages as registry;

use super::{ttl_until, Ctx, PendingSubscription};

/// Unix milliseconds now, when the connect result is to include the server time (else 0, left
/// out of the result).
fn server_time_ms(include: bool) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    if include {
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    } else {
        0
    }
}

/// Who a connect is for and what it brings: from a token's claims, a gateway header, a connect
/// proxy's result, or nothing (anonymous).
#[derive(Debug, Default)]
pub(in crate::client) struct Credentials {
    pub(in crate::client) user: Arc<str>,
    pub(in crate::client) expire_at: Option<i64>,
    pub(in crate::client) info: Option<Payload>,
    /// Server-side subscriptions (token `channels`/`subs`, proxy `channels`/`subs`).
    pub(in crate::client) channels: Vec<String>,
    /// Per-channel options of `subs`.
    pub(in crate::client) subs: BTreeMap<String, ServerSub>,
    /// `data` of the connect result (connect proxy).
    pub(in crate::client) data: Option<Payload>,
    /// The connection's meta, passed to later proxy calls.
    pub(in crate::client) meta: Option<Payload>,
    /// From a connection token (`client.disallow_anonymous_connection_tokens` applies).
    pub(in crate::client) from_token: bool,
}

/// One entry of `subs`: channel info and data, and option overrides.
#[derive(Debug, Default)]
pub(in crate::client) struct ServerSub {
    pub(in crate::client) info: Option<Payload>,
    pub(in crate::client) data: Option<Payload>,
    pub(in crate::client) overrides: SubscribeOverrides,
}

impl Credentials {
    fn from_claims(claims: ConnectionClaims) -> Self {
        let meta = claims.raw.get("meta").filter(|m| !m.is_null()).map(|m| Payload::new(m.to_string()));
        let subs = claims
            .subs_info
            .into_iter()
            .map(|(channel, info)| (channel, ServerSub { info: Some(info), ..Default::default() }))
            .collect();
        Self {
            user: claims.user.as_str().into(),
            expire_at: claims.expire_at,
            info: claims.info,
            channels: claims.channels,
            subs,
            meta,
            from_token: true,
            ..Default::default()
        }
    }
}

impl ClientSession {
    /// Answers `connect` with an error and stops processing; SDKs close the socket themselves
    /// (the reference server drops the connection after 5 s).
    pub(in crate::client) fn refuse(&mut self, id: u32, error: ReplyError, ctx: &mut Ctx) {
        self.refuse_with(id, error.to_wire(), ctx);
    }

    /// [`Self::refuse`] with any error (a connect proxy's).
    pub(in crate::client) fn refuse_with(&mut self, id: u32, error: ErrorBody, ctx: &mut Ctx) {
        if self.protocol.is_uni() {
            if self.http.is_some() {
                self.flow.refuse_connect(error.code, &error.message);
            }
            return self.close(ctx, self.uni_disconnect(error.code));
        }
        self.push_error_body(id, error);
        self.flush(ctx);
        self.state = State::Refused;
        ctx.run_later(std::time::Duration::from_secs(5), |_, ctx| ctx.stop());
    }

    pub(in crate::client) fn connect(&mut self, id: u32, req: ConnectRequest, ctx: &mut Ctx) {
        if self.connection().is_some() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let vouched = self.take_vouched();
        let client = &self.node.settings.client;
        let credentials = if let (true, Some(vouched)) = (req.token.is_empty(), vouched) {
            vouched
        } else if req.token.is_empty() {
            if let Some(proxy) = self.node.proxies.connect.clone() {
                return self.connect_through_proxy(id, req, &proxy, ctx);
            }
            if !(client.insecure || client.allow_anonymous_connect_without_token) {
                tracing::debug!(client = %self.id, "connect without token refused: anonymous connections are not allowed");
                return self.close(ctx, Disconnect::BAD_REQUEST);
            }
            Credentials::default()
        } else {
            match self.node.verifier.verify_connection(&req.token, unix_now()) {
                Ok(claims) => Credentials::from_claims(claims),
                Err(TokenError::Expired) => return self.refuse(id, ReplyError::TokenExpired, ctx),
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(client = %self.id, %reason, "connection token refused (3500)");
                    return self.close(ctx, Disconnect::INVALID_TOKEN);
                }
            }
        };
        self.connect_with(id, req, credentials, ctx);
    }

    /// Continues a connect once its credentials are known: limits, server-side subscriptions.
    pub(in crate::client) fn connect_with(
        &mut self,
        id: u32,
        req: ConnectRequest,
        mut credentials: Credentials,
        ctx: &mut Ctx,
    ) {
        let client = &self.node.settings.client;
        let now = unix_now();
        let user = credentials.user.clone();
        if credentials.from_token && user.is_empty() && client.disallow_anonymous_connection_tokens {
            return self.close(ctx, Disconnect::PERMISSION_DENIED);
        }
        let expire_at = credentials.expire_at.filter(|_| !client.insecure);
        if expire_at.is_some_and(|at| at <= now) {
            return self.refuse(id, ReplyError::Expired, ctx);
        }
        let mut server_side = match self.server_side_channels(&credentials.channels, &user) {
            Ok(channels) => channels,
            Err(error) => return self.refuse(id, error, ctx),
        };
        match self.requested_channels(&req.subs, &user, &server_side) {
            Ok(requested) => server_side.extend(requested),
            Err(disconnect) => return self.close(ctx, disconnect),
        }
        if server_side.len() > client.channel_limit {
            return self.close(ctx, Disconnect::CHANNEL_LIMIT);
        }
        if let Some(meta) = credentials.meta.take() {
            self.proxy.get_or_insert_with(Box::default).meta = Some(meta);
        }
        let mut plan = ConnectPlan {
            id,
            client_name: req.name,
            client_version: req.version,
            user,
            info: credentials.info.take(),
            expire_at,
            data: credentials.data.take(),
            server_side: Vec::new(),
        };
        for channel in server_side {
            let sub = credentials.subs.remove(channel.name.as_str()).unwrap_or_default();
            let pending = self.server_side_pending(&channel, req.subs.get(channel.name.as_str()), sub);
            plan.server_side.push((channel, pending));
        }
        let limit = client.user_connection_limit;
        if limit == 0 || plan.user.is_empty() {
            return self.complete_connect(plan, ctx);
        }
        // Per-user limit: ask the registry how many connections this user already has here.
        let request = self.node.registry.send(registry::UserConnections { user: plan.user.clone() });
        self.busy = Some(Box::new(Busy::Reply));
        ctx.spawn(request.into_actor(self).map(move |count, this, ctx| {
            this.busy = None;
            match count {
                Ok(count) if count >= limit => this.close(ctx, Disconnect::CONNECTION_LIMIT),
                Ok(_) => this.complete_connect(plan, ctx),
                Err(_) => this.refuse(id, ReplyError::Internal, ctx),
            }
            this.process_queue(ctx);
        }));
    }

    /// Accepts the connection: state, registration, timers, server-side subscriptions, reply.
    pub(in crate::client) fn complete_connect(&mut self, plan: ConnectPlan, ctx: &mut Ctx) {
        let ConnectPlan { id, client_name, client_version, user, info, expire_at, data, server_side } = plan;
        let encoding = if self.protocol.is_protobuf() { "protobuf" } else { "json" };
        let labels = METRICS.connection_accepted(self.transport_name(), encoding, &client_name, &client_version);
        self.metric_labels = Some(labels);
        if let Some(span) = &self.span {
            span.record("user", &*user);
        }
        self.state = State::Connected(Connection { user: user.clone(), info, expire_at });
        let (ping, pong) = self.ping_settings();
        let result = ConnectResult {
            client: self.id.to_string(),
            version: VERSION.to_owned(),
            // With a refresh proxy the server extends the connection; the client is not told.
            expires: expire_at.is_some() && self.node.proxies.refresh.is_none(),
            ttl: expire_at.filter(|_| self.node.proxies.refresh.is_none()).map(ttl_until).unwrap_or(0),
            data,
            ping,
            pong,
            session: self.emulation_session().unwrap_or_default().to_owned(),
            node: self.emulation_session().map(|_| self.node.uid.clone()).unwrap_or_default(),
            time: server_time_ms(self.node.settings.client.connect_include_server_time),
            ..Default::default()
        };
        tracing::debug!(client = %self.id, user = %user, "client connected");
        self.on_connected(ctx);
        if server_side.is_empty() {
            return self.push_reply(id, "connect", &result);
        }
        let mut waiting = std::collections::HashMap::new();
        for (channel, pending) in server_side {
            self.join(&channel, &pending, pending.push_join_leave);
            waiting.insert(channel.name.clone(), pending);
        }
        self.busy = Some(Box::new(Busy::Connect { id, result, waiting, held: Vec::new() }));
    }

    /// Channels from the credentials (token `subs`/`channels` claims, proxy result) and the
    /// personal channel.
    pub(in crate::client) fn server_side_channels(
        &self,
        channels: &[String],
        user: &str,
    ) -> Result<Vec<ResolvedChannel>, ReplyError> {
        let mut names: Vec<String> = channels.to_vec();
        let personal = &self.node.settings.client.subscribe_to_user_personal_channel;
        if personal.enabled && !user.is_empty() {
            let boundary = &self.node.settings.channel;
            let prefix = if personal.personal_channel_namespace.is_empty() {
                String::new()
            } else {
                format!("{}{}", personal.personal_channel_namespace, boundary.namespace_boundary)
            };
            names.push(format!("{prefix}{}{user}", boundary.user_boundary));
        }
        names.sort();
        names.dedup();
        names.iter().map(|name| self.node.rules.resolve(name)).collect()
    }

    /// Channels the connect request names in `subs` beyond the token's, that the client could
    /// subscribe to itself (not private, namespace or user-limited permission): Centrifugo
    /// subscribes it to them server-side, which is how a unidirectional client picks channels.
    /// A name that does not resolve is a bad request (3501).
    fn requested_channels(
        &self,
        subs: &std::collections::HashMap<String, SubscribeRequest>,
        user: &str,
        granted: &[ResolvedChannel],
    ) -> Result<Vec<ResolvedChannel>, Disconnect> {
        let rules = &self.node.rules;
        let mut requested = Vec::new();
        let mut names: Vec<&String> = subs.keys().collect();
        names.sort();
        for name in names.into_iter().filter(|name| !granted.iter().any(|g| g.name.as_str() == name.as_str())) {
            let channel = rules.resolve(name).map_err(|_| Disconnect::BAD_REQUEST)?;
            if channel.private && !self.node.settings.client.insecure {
                continue;
            }
            let asker = crate::channel::Asker { user, subscribed: false };
            let allowed = rules
                .user_limited_allows(&channel, user)
                .unwrap_or_else(|| rules.allows(&channel, crate::channel::Action::Subscribe, asker));
            if allowed {
                requested.push(channel);
            }
        }
        Ok(requested)
    }

    pub(in crate::client) fn server_side_pending(
        &self,
        channel: &ResolvedChannel,
        hint: Option<&SubscribeRequest>,
        sub: ServerSub,
    ) -> PendingSubscription {
        let (mut pending, push_join_leave) = self.forced_pending(channel, &sub.overrides);
        pending.push_join_leave = push_join_leave;
        let recover = hint.filter(|h| h.recover && pending.recoverable);
        pending.was_recovering = recover.is_some();
        pending.recover_from = recover.map(|h| StreamPosition { offset: h.offset, epoch: h.epoch.as_str().into() });
        pending.chan_info = sub.info;
        pending.data = sub.data;
        pending.server_side = true;
        pending
    }
}

/// A verified connect, ready to be accepted.
pub(in crate::client) struct ConnectPlan {
    id: u32,
    client_name: String,
    client_version: String,
    user: Arc<str>,
    info: Option<Payload>,
    expire_at: Option<i64>,
    data: Option<Payload>,
    server_side: Vec<(ResolvedChannel, PendingSubscription)>,
}
