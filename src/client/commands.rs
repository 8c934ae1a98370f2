//! One method per protocol command (protocol-client.md §3), with the outcomes Centrifugo picks
//! for each situation. Replies go to the session's line buffer; commands that need another actor
//! mark the session busy so later commands wait (commands run strictly in order).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use serde::Serialize;

use super::messages::{ServerAction, ServerSubscribe, Subscribed};
use super::session::{Busy, ClientSession, Connection, State, Subscription};
use crate::auth::{ConnectionClaims, TokenError};
use crate::channel::history::{HistoryError, HistoryQuery};
use crate::channel::{Action, Asker, ResolvedChannel};
use crate::domain::{frame_safe, unix_now, ChannelName, ClientInfo, Publication, RawJson, StreamPosition};
use crate::metrics::METRICS;
use crate::node::VERSION;
use crate::protocol::command::{
    ChannelRequest, Command, ConnectRequest, HistoryRequest, PublishRequest, RefreshRequest, Request, RpcRequest,
    SubRefreshRequest, SubscribeRequest,
};
use crate::protocol::reply::{
    self, ConnectResult, Empty, HistoryResult, PresenceResult, PresenceStatsResult, RefreshResult, SubRefreshResult,
    SubscribePush, SubscribeResult,
};
use crate::protocol::{Disconnect, ReplyError};
use crate::registry::messages as registry;

type Ctx = ws::WebsocketContext<ClientSession>;

/// What a subscribe asked for, kept until the channel answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingSubscription {
    positioned: bool,
    recoverable: bool,
    was_recovering: bool,
    reject_unrecovered: bool,
    recover_from: Option<StreamPosition>,
    expire_at: Option<i64>,
    data: Option<RawJson>,
    chan_info: Option<RawJson>,
    token_based: bool,
    server_side: bool,
}

/// Seconds left until `at`, at least 1 (SDKs need `ttl ≥ 1` with `expires`).
fn ttl_until(at: i64) -> u32 {
    (at - unix_now()).clamp(1, u32::MAX as i64) as u32
}

impl ClientSession {
    /// Routes one command (reference dispatch rules, protocol-client.md §1.4).
    pub(super) fn dispatch(&mut self, command: Command, ctx: &mut Ctx) {
        if self.connection().is_none() && command.connect.is_none() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if command.is_pong() {
            return self.on_pong();
        }
        self.current_method = command.frame_type();
        let started = Instant::now();
        let id = command.id;
        let Some(request) = command.into_request() else {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        };
        match request {
            Request::Connect(req) => self.connect(id, req, ctx),
            Request::Subscribe(req) => self.subscribe(id, req, ctx),
            Request::Unsubscribe(req) => self.unsubscribe(id, req, ctx),
            Request::Publish(req) => self.publish(id, req, ctx),
            Request::Presence(req) => self.presence(id, req, ctx),
            Request::PresenceStats(req) => self.presence_stats(id, req, ctx),
            Request::History(req) => self.history(id, req, ctx),
            Request::Rpc(req) => self.rpc(id, req),
            Request::Send => self.close(ctx, Disconnect::NOT_AVAILABLE),
            Request::Refresh(req) => self.refresh(id, req, ctx),
            Request::SubRefresh(req) => self.sub_refresh(id, req, ctx),
            Request::Ping => self.push_reply(id, "ping", &Empty {}),
        }
        if self.busy.is_none() {
            METRICS.command_duration(self.current_method, started.elapsed().as_secs_f64());
        }
    }

    /// Answers `connect` with an error and stops processing; SDKs close the socket themselves
    /// (the reference server drops the connection after 5 s).
    fn refuse(&mut self, id: u32, error: ReplyError, ctx: &mut Ctx) {
        self.push_error(id, error);
        self.flush(ctx);
        self.state = State::Refused;
        ctx.run_later(std::time::Duration::from_secs(5), |_, ctx| ctx.stop());
    }

    fn connect(&mut self, id: u32, req: ConnectRequest, ctx: &mut Ctx) {
        if self.connection().is_some() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let now = unix_now();
        let client = &self.node.settings.client;
        let claims = if req.token.is_empty() {
            if !(client.insecure || client.allow_anonymous_connect_without_token) {
                tracing::debug!(client = %self.id, "connect without token refused: anonymous connections are not allowed");
                return self.close(ctx, Disconnect::BAD_REQUEST);
            }
            None
        } else {
            match self.node.verifier.verify_connection(&req.token, now) {
                Ok(claims) => Some(claims),
                Err(TokenError::Expired) => return self.refuse(id, ReplyError::TokenExpired, ctx),
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(client = %self.id, %reason, "connection token refused (3500)");
                    return self.close(ctx, Disconnect::INVALID_TOKEN);
                }
            }
        };
        let user: Arc<str> = claims.as_ref().map(|c| c.user.as_str()).unwrap_or_default().into();
        if claims.is_some() && user.is_empty() && client.disallow_anonymous_connection_tokens {
            return self.close(ctx, Disconnect::PERMISSION_DENIED);
        }
        let expire_at = claims.as_ref().and_then(|c| c.expire_at).filter(|_| !client.insecure);
        if expire_at.is_some_and(|at| at <= now) {
            return self.refuse(id, ReplyError::Expired, ctx);
        }
        let server_side = match self.server_side_channels(claims.as_ref(), &user) {
            Ok(channels) => channels,
            Err(error) => return self.refuse(id, error, ctx),
        };
        if server_side.len() > client.channel_limit {
            return self.close(ctx, Disconnect::CHANNEL_LIMIT);
        }
        let mut plan = ConnectPlan {
            id,
            client_name: req.name,
            client_version: req.version,
            user,
            info: claims.as_ref().and_then(|c| c.info.clone()),
            expire_at,
            server_side: Vec::new(),
        };
        for channel in server_side {
            let chan_info = claims.as_ref().and_then(|c| c.subs_info.get(channel.name.as_str()).cloned());
            let pending = self.server_side_pending(&channel, req.subs.get(channel.name.as_str()), chan_info);
            plan.server_side.push((channel, pending));
        }
        let limit = client.user_connection_limit;
        if limit == 0 || plan.user.is_empty() {
            return self.complete_connect(plan, ctx);
        }
        // Per-user limit: ask the registry how many connections this user already has here.
        let request = self.node.registry.send(registry::UserConnections { user: plan.user.clone() });
        self.busy = Some(Busy::Reply);
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
    fn complete_connect(&mut self, plan: ConnectPlan, ctx: &mut Ctx) {
        let ConnectPlan { id, client_name, client_version, user, info, expire_at, server_side } = plan;
        self.metric_labels = Some(METRICS.connection_accepted(&client_name, &client_version));
        self.span.record("user", &*user);
        self.state = State::Connected(Connection { user: user.clone(), info, expire_at });
        let (ping, pong) = self.ping_settings();
        let result = ConnectResult {
            client: self.id.to_string(),
            version: VERSION.to_owned(),
            expires: expire_at.is_some(),
            ttl: expire_at.map(ttl_until).unwrap_or(0),
            ping,
            pong,
            ..Default::default()
        };
        tracing::debug!(client = %self.id, user = %user, "client connected");
        self.on_connected(ctx);
        if server_side.is_empty() {
            return self.push_reply(id, "connect", &result);
        }
        let mut waiting = std::collections::HashMap::new();
        for (channel, pending) in server_side {
            self.join(&channel, &pending, false, ctx);
            waiting.insert(channel.name.clone(), pending);
        }
        self.busy = Some(Busy::Connect { id, result, waiting });
    }

    /// Channels from the token's `subs`/`channels` claims and the personal channel.
    fn server_side_channels(
        &self,
        claims: Option<&ConnectionClaims>,
        user: &str,
    ) -> Result<Vec<ResolvedChannel>, ReplyError> {
        let mut names: Vec<String> = claims.map(|c| c.channels.clone()).unwrap_or_default();
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

    fn server_side_pending(
        &self,
        channel: &ResolvedChannel,
        hint: Option<&SubscribeRequest>,
        chan_info: Option<RawJson>,
    ) -> PendingSubscription {
        let options = &channel.namespace.options;
        let history = options.history_enabled();
        let recoverable = history && options.force_recovery;
        let recover = hint.filter(|h| h.recover && recoverable);
        PendingSubscription {
            positioned: history && (recoverable || options.force_positioning),
            recoverable,
            was_recovering: recover.is_some(),
            recover_from: recover.map(|h| StreamPosition { offset: h.offset, epoch: h.epoch.as_str().into() }),
            chan_info,
            server_side: true,
            ..Default::default()
        }
    }

    /// Sends the subscription to the registry; the channel answers with `Deliver::Subscribed`.
    fn join(&mut self, channel: &ResolvedChannel, pending: &PendingSubscription, push_join_leave: bool, ctx: &mut Ctx) {
        let Some(connection) = self.connection() else { return };
        let info = ClientInfo {
            user: connection.user.clone(),
            client: self.id.clone(),
            conn_info: connection.info.clone(),
            chan_info: pending.chan_info.clone(),
        };
        self.node.registry.do_send(registry::Subscribe {
            channel: channel.clone(),
            client: self.client_handle(ctx),
            info,
            push_join_leave,
            recover: pending.recover_from.clone(),
            recovery_limit: self.node.settings.client.recovery_max_publication_limit,
        });
    }

    fn asker(&self, channel: &ChannelName) -> Asker<'_> {
        Asker {
            user: self.connection().map(|c| &*c.user).unwrap_or_default(),
            subscribed: self.subscriptions.contains_key(channel),
        }
    }

    fn subscribe(&mut self, id: u32, req: SubscribeRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() || !(req.delta.is_empty() || req.delta == "fossil") {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if req.tf.is_some() {
            return self.push_error(id, ReplyError::BadRequest);
        }
        if req.kind != 0 {
            return self.push_error(id, ReplyError::NotAvailable);
        }
        let channel = match self.node.rules.resolve_client(&req.channel) {
            Ok(channel) => channel,
            Err(error) => return self.push_error(id, error),
        };
        if self.subscriptions.contains_key(&channel.name) {
            return self.push_error(id, ReplyError::AlreadySubscribed);
        }
        if self.subscriptions.len() >= self.node.settings.client.channel_limit {
            return self.push_error(id, ReplyError::LimitExceeded);
        }
        let grant = match self.authorize_subscribe(&req, &channel) {
            Ok(grant) => grant,
            Err(Outcome::Error(error)) => return self.push_error(id, error),
            Err(Outcome::Disconnect(disconnect)) => return self.close(ctx, disconnect),
        };
        let (pending, push_join_leave) = self.client_side_pending(&req, &channel, grant);
        self.join(&channel, &pending, push_join_leave, ctx);
        self.busy = Some(Busy::Subscribe { id, channel: channel.name, pending });
    }

    /// Token or namespace permission for a client-side subscribe.
    fn authorize_subscribe(&self, req: &SubscribeRequest, channel: &ResolvedChannel) -> Result<Grant, Outcome> {
        let user = self.connection().map(|c| c.user.clone()).unwrap_or_default();
        if req.token.is_empty() {
            if channel.private && !self.node.settings.client.insecure {
                return Err(Outcome::Error(ReplyError::PermissionDenied));
            }
            let rules = &self.node.rules;
            let allowed = rules
                .user_limited_allows(channel, &user)
                .unwrap_or_else(|| rules.allows(channel, Action::Subscribe, self.asker(&channel.name)));
            return if allowed { Ok(Grant::default()) } else { Err(Outcome::Error(ReplyError::PermissionDenied)) };
        }
        let now = unix_now();
        let claims = match self.node.verifier.verify_subscription(&req.token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Err(Outcome::Error(ReplyError::TokenExpired)),
            Err(TokenError::Invalid(reason)) => {
                tracing::info!(client = %self.id, %reason, "subscription token refused (103)");
                return Err(Outcome::Error(ReplyError::PermissionDenied));
            }
        };
        let client_mismatch = !claims.client.is_empty() && claims.client != self.id.as_str();
        if claims.channel != req.channel || claims.user != *user || client_mismatch {
            return Err(Outcome::Disconnect(Disconnect::INVALID_TOKEN));
        }
        if claims.expire_at.is_some_and(|at| at <= now) {
            return Err(Outcome::Error(ReplyError::Expired));
        }
        Ok(Grant { expire_at: claims.expire_at, chan_info: claims.info, data: claims.data, token_based: true })
    }

    fn client_side_pending(
        &self,
        req: &SubscribeRequest,
        channel: &ResolvedChannel,
        grant: Grant,
    ) -> (PendingSubscription, bool) {
        let options = &channel.namespace.options;
        let rules = &self.node.rules;
        let asker = self.asker(&channel.name);
        let history = options.history_enabled();
        let may_history = rules.allows(channel, Action::History, asker);
        let recoverable =
            history && (options.force_recovery || (req.recoverable && (options.allow_recovery || may_history)));
        let positioned = history
            && (recoverable
                || options.force_positioning
                || (req.positioned && (options.allow_positioning || may_history)));
        let may_presence = rules.allows(channel, Action::Presence, asker);
        let push_join_leave = options.join_leave && (options.force_push_join_leave || (req.join_leave && may_presence));
        let pending = PendingSubscription {
            positioned,
            recoverable,
            was_recovering: req.recover,
            reject_unrecovered: req.rejects_unrecovered(),
            recover_from: (req.recover && recoverable)
                .then(|| StreamPosition { offset: req.offset, epoch: req.epoch.as_str().into() }),
            expire_at: grant.expire_at,
            data: grant.data,
            chan_info: grant.chan_info,
            token_based: grant.token_based,
            server_side: false,
        };
        (pending, push_join_leave)
    }

    /// The channel answered a subscribe (client-side, or server-side during connect).
    pub(super) fn on_subscribed(
        &mut self,
        channel: ChannelName,
        outcome: Result<Subscribed, ReplyError>,
        ctx: &mut Ctx,
    ) {
        match self.busy.take() {
            Some(Busy::Subscribe { id, channel: expected, pending }) if expected == channel => {
                match subscribe_result(&pending, outcome) {
                    Ok(result) => {
                        self.add_subscription(channel, &pending, ctx);
                        self.push_reply(id, "subscribe", &result);
                        let name = self.metric_labels.as_ref().map_or("", |l| l[2].as_str());
                        METRICS.subscription_accepted(name);
                    }
                    Err(error) => {
                        self.leave(&channel);
                        self.push_error(id, error);
                    }
                }
            }
            Some(Busy::Connect { id, mut result, mut waiting }) if waiting.contains_key(&channel) => {
                let pending = waiting.remove(&channel).unwrap_or_default();
                match subscribe_result(&pending, outcome) {
                    Ok(sub) => {
                        self.add_subscription(channel.clone(), &pending, ctx);
                        result.subs.insert(channel.to_string(), sub);
                    }
                    Err(_) => self.leave(&channel),
                }
                if waiting.is_empty() {
                    self.push_reply(id, "connect", &result);
                    self.release_held(ctx);
                } else {
                    self.busy = Some(Busy::Connect { id, result, waiting });
                }
            }
            other => {
                self.busy = other;
                if let Some(pending) = self.server_pending.remove(&channel) {
                    return self.finish_server_subscribe(channel, &pending, outcome, ctx);
                }
                // An answer nobody waits for (the session moved on): undo the join.
                if !self.subscriptions.contains_key(&channel) {
                    self.leave(&channel);
                }
            }
        }
    }

    /// A server API subscribe: join now, announce with a `subscribe` push when the channel
    /// answers. Already-subscribed channels and the channel limit make it a no-op.
    pub(super) fn on_server_action(&mut self, action: ServerAction, ctx: &mut Ctx) {
        match action {
            ServerAction::Subscribe(subscribe) => self.server_subscribe(subscribe, ctx),
            ServerAction::Refresh { expired, expire_at, info } => self.server_refresh(expired, expire_at, info, ctx),
        }
    }

    fn server_subscribe(&mut self, subscribe: ServerSubscribe, ctx: &mut Ctx) {
        let name = subscribe.channel.name.clone();
        let busy_with_it = matches!(&self.busy, Some(Busy::Subscribe { channel, .. }) if *channel == name);
        if self.connection().is_none()
            || busy_with_it
            || self.subscriptions.contains_key(&name)
            || self.server_pending.contains_key(&name)
        {
            return;
        }
        if self.subscriptions.len() >= self.node.settings.client.channel_limit {
            tracing::info!(client = %self.id, channel = %name, "server subscribe ignored: client.channel_limit reached");
            return;
        }
        let options = &subscribe.channel.namespace.options;
        let o = subscribe.overrides;
        let history = options.history_enabled();
        let recoverable = history && o.force_recovery.unwrap_or(options.force_recovery);
        let positioned = history && (recoverable || o.force_positioning.unwrap_or(options.force_positioning));
        let recover_from = subscribe.recover_since.clone().filter(|_| recoverable);
        let pending = PendingSubscription {
            positioned,
            recoverable,
            was_recovering: recover_from.is_some(),
            recover_from,
            expire_at: subscribe.expire_at,
            data: subscribe.data.clone(),
            chan_info: subscribe.info.clone(),
            server_side: true,
            ..Default::default()
        };
        let push_join_leave = o.join_leave.unwrap_or(options.join_leave)
            && o.force_push_join_leave.unwrap_or(options.force_push_join_leave);
        self.join(&subscribe.channel, &pending, push_join_leave, ctx);
        self.server_pending.insert(name, pending);
    }

    fn finish_server_subscribe(
        &mut self,
        channel: ChannelName,
        pending: &PendingSubscription,
        outcome: Result<Subscribed, ReplyError>,
        ctx: &mut Ctx,
    ) {
        let Ok(result) = subscribe_result(pending, outcome) else {
            return self.leave(&channel);
        };
        self.add_subscription(channel.clone(), pending, ctx);
        let announce = SubscribePush {
            recoverable: result.recoverable,
            epoch: &result.epoch,
            offset: result.offset,
            positioned: result.positioned,
            data: result.data.as_ref(),
        };
        self.push_line("push_subscribe", &reply::push(channel.as_str(), "subscribe", &announce));
        for publication in &result.publications {
            self.push_line("push_publication", &reply::push(channel.as_str(), "pub", &**publication));
        }
    }

    fn server_refresh(&mut self, expired: bool, expire_at: Option<i64>, info: Option<RawJson>, ctx: &mut Ctx) {
        if expired || expire_at.is_some_and(|at| at <= unix_now()) {
            return self.close(ctx, Disconnect::EXPIRED);
        }
        let State::Connected(connection) = &mut self.state else { return };
        connection.expire_at = expire_at;
        if let (Some(info), Some(_)) = (info, expire_at) {
            connection.info = Some(info);
        }
        if let Some(at) = expire_at {
            self.schedule_connection_expiry_check(at, ctx);
        }
        let body = SubRefreshResult { expires: expire_at.is_some(), ttl: expire_at.map(ttl_until).unwrap_or(0) };
        self.push_line("push_refresh", &format!("{{\"push\":{{\"refresh\":{}}}}}", reply::to_json(&body)));
    }

    fn add_subscription(&mut self, channel: ChannelName, pending: &PendingSubscription, ctx: &mut Ctx) {
        if let Some(at) = pending.expire_at {
            self.schedule_subscription_expiry_check(channel.clone(), at, ctx);
        }
        self.subscriptions.insert(
            channel,
            Subscription {
                expire_at: pending.expire_at,
                server_side: pending.server_side,
                chan_info: pending.chan_info.clone(),
                token_based: pending.token_based,
            },
        );
    }

    fn leave(&self, channel: &ChannelName) {
        self.node.registry.do_send(registry::Unsubscribe { channel: channel.clone(), client: self.id.clone() });
    }

    fn unsubscribe(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = ChannelName::new_unchecked(&req.channel);
        if self.subscriptions.remove(&channel).is_some() {
            self.leave(&channel);
        }
        self.push_reply(id, "unsubscribe", &Empty {});
    }

    fn publish(&mut self, id: u32, req: PublishRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = match self.node.rules.resolve_client(&req.channel) {
            Ok(channel) => channel,
            Err(error) => return self.push_error(id, error),
        };
        let Some(data) = req.data.filter(|d| self.data_format_ok(&channel, d.get())) else {
            return self.push_error(id, ReplyError::BadRequest);
        };
        if !self.node.rules.allows(&channel, Action::Publish, self.asker(&channel.name)) {
            return self.push_error(id, ReplyError::PermissionDenied);
        }
        let Some(connection) = self.connection() else { return };
        let info = ClientInfo {
            user: connection.user.clone(),
            client: self.id.clone(),
            conn_info: connection.info.clone(),
            chan_info: self.subscriptions.get(&channel.name).and_then(|s| s.chan_info.clone()),
        };
        let publication = Publication { data: frame_safe(data), info: Some(info), offset: 0, tags: Default::default() };
        let request = self.node.registry.send(registry::Publish {
            channel,
            publication,
            skip_history: false,
            idempotency_key: None,
        });
        self.reply_later(id, "publish", ctx, async move {
            match request.await {
                Ok(Ok(_)) => Ok(Empty {}),
                _ => Err(ReplyError::Internal),
            }
        });
    }

    /// Centrifugo's `publication_data_format` check (namespace value wins over the global one).
    fn data_format_ok(&self, channel: &ResolvedChannel, data: &str) -> bool {
        let format = match channel.namespace.options.publication_data_format.as_str() {
            "" => self.node.settings.channel.publication_data_format.as_str(),
            format => format,
        };
        match format {
            "json_object" => data.trim_start().starts_with('{'),
            "binary" | "json" => true,
            _ => !data.is_empty(),
        }
    }

    /// Common checks of presence/history commands: channel, namespace feature, permission.
    fn query_channel(&mut self, id: u32, channel: &str, action: Action, ctx: &mut Ctx) -> Option<ResolvedChannel> {
        if channel.is_empty() {
            self.close(ctx, Disconnect::BAD_REQUEST);
            return None;
        }
        let resolved = match self.node.rules.resolve_client(channel) {
            Ok(resolved) => resolved,
            Err(error) => {
                self.push_error(id, error);
                return None;
            }
        };
        let options = &resolved.namespace.options;
        let enabled = match action {
            Action::History => options.history_enabled(),
            _ => options.presence,
        };
        if !enabled {
            self.push_error(id, ReplyError::NotAvailable);
            return None;
        }
        if !self.node.rules.allows(&resolved, action, self.asker(&resolved.name)) {
            self.push_error(id, ReplyError::PermissionDenied);
            return None;
        }
        Some(resolved)
    }

    fn presence(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
        let Some(channel) = self.query_channel(id, &req.channel, Action::Presence, ctx) else {
            return;
        };
        let request = self.node.registry.send(registry::Presence { channel: channel.name });
        self.reply_later(id, "presence", ctx, async move {
            match request.await {
                Ok(Ok(presence)) => Ok(PresenceResult { presence }),
                _ => Err(ReplyError::Internal),
            }
        });
    }

    fn presence_stats(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
        let Some(channel) = self.query_channel(id, &req.channel, Action::Presence, ctx) else {
            return;
        };
        let request = self.node.registry.send(registry::PresenceStatsOf { channel: channel.name });
        self.reply_later(id, "presence_stats", ctx, async move {
            match request.await {
                Ok(Ok(stats)) => Ok(PresenceStatsResult { num_clients: stats.num_clients, num_users: stats.num_users }),
                _ => Err(ReplyError::Internal),
            }
        });
    }

    fn history(&mut self, id: u32, req: HistoryRequest, ctx: &mut Ctx) {
        let Some(channel) = self.query_channel(id, &req.channel, Action::History, ctx) else {
            return;
        };
        let query = HistoryQuery {
            since: req.since.map(|s| StreamPosition { offset: s.offset, epoch: s.epoch.into() }),
            limit: Some(clamp_history_limit(req.limit, self.node.settings.client.history_max_publication_limit)),
            reverse: req.reverse,
        };
        let request = self.node.registry.send(registry::History { channel, query });
        self.reply_later(id, "history", ctx, async move {
            match request.await {
                Ok(Ok(Ok(page))) => Ok(HistoryResult {
                    publications: page.publications,
                    epoch: page.position.epoch,
                    offset: page.position.offset,
                }),
                Ok(Ok(Err(HistoryError::EpochMismatch))) => Err(ReplyError::UnrecoverablePosition),
                Ok(Ok(Err(HistoryError::ReverseFromZero))) => Err(ReplyError::BadRequest),
                _ => Err(ReplyError::Internal),
            }
        });
    }

    fn rpc(&mut self, id: u32, req: RpcRequest) {
        let ping = &self.node.settings.rpc.ping;
        let outcome = match (ping.enabled, req.method == ping.method) {
            (true, true) => Ok(Empty {}),
            (true, false) => Err(ReplyError::MethodNotFound),
            (false, _) => Err(ReplyError::NotAvailable),
        };
        match outcome {
            Ok(result) => self.push_reply(id, "rpc", &result),
            Err(error) => self.push_error(id, error),
        }
    }

    fn refresh(&mut self, id: u32, req: RefreshRequest, ctx: &mut Ctx) {
        if req.token.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let now = unix_now();
        let claims = match self.node.verifier.verify_connection(&req.token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return self.close(ctx, Disconnect::EXPIRED),
            Err(TokenError::Invalid(reason)) => {
                tracing::info!(client = %self.id, %reason, "refresh token refused (3500)");
                return self.close(ctx, Disconnect::INVALID_TOKEN);
            }
        };
        let insecure = self.node.settings.client.insecure;
        let State::Connected(connection) = &mut self.state else {
            return;
        };
        if claims.user != *connection.user {
            return self.close(ctx, Disconnect::INVALID_TOKEN);
        }
        let expire_at = claims.expire_at.filter(|_| !insecure);
        if expire_at.is_some_and(|at| at <= now) {
            return self.close(ctx, Disconnect::EXPIRED);
        }
        connection.expire_at = expire_at;
        if let Some(at) = expire_at {
            self.schedule_connection_expiry_check(at, ctx);
        }
        let result = RefreshResult {
            client: self.id.to_string(),
            version: VERSION.to_owned(),
            expires: expire_at.is_some(),
            ttl: expire_at.map(ttl_until).unwrap_or(0),
        };
        self.push_reply(id, "refresh", &result);
    }

    fn sub_refresh(&mut self, id: u32, req: SubRefreshRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = ChannelName::new_unchecked(&req.channel);
        let Some(subscription) = self.subscriptions.get(&channel) else {
            return self.push_error(id, ReplyError::PermissionDenied);
        };
        if !subscription.token_based {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if req.token.is_empty() {
            return self.push_error(id, ReplyError::BadRequest);
        }
        let now = unix_now();
        let claims = match self.node.verifier.verify_subscription(&req.token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return self.close(ctx, Disconnect::SUBSCRIPTION_EXPIRED),
            Err(TokenError::Invalid(_)) => return self.close(ctx, Disconnect::INVALID_TOKEN),
        };
        let user = self.connection().map(|c| c.user.clone()).unwrap_or_default();
        let client_mismatch = !claims.client.is_empty() && claims.client != self.id.as_str();
        if claims.channel != req.channel || claims.user != *user || client_mismatch {
            return self.close(ctx, Disconnect::INVALID_TOKEN);
        }
        if claims.expire_at.is_some_and(|at| at <= now) {
            return self.push_error(id, ReplyError::Expired);
        }
        if let Some(subscription) = self.subscriptions.get_mut(&channel) {
            subscription.expire_at = claims.expire_at;
        }
        if let Some(at) = claims.expire_at {
            self.schedule_subscription_expiry_check(channel, at, ctx);
        }
        let result =
            SubRefreshResult { expires: claims.expire_at.is_some(), ttl: claims.expire_at.map(ttl_until).unwrap_or(0) };
        self.push_reply(id, "sub_refresh", &result);
    }

    /// Runs `answer` and replies with its result; later commands wait until then.
    fn reply_later<T, F>(&mut self, id: u32, method: &'static str, ctx: &mut Ctx, answer: F)
    where
        T: Serialize + 'static,
        F: Future<Output = Result<T, ReplyError>> + 'static,
    {
        self.busy = Some(Busy::Reply);
        let started = Instant::now();
        ctx.spawn(answer.into_actor(self).map(move |result, this, ctx| {
            if matches!(this.state, State::Closed) {
                return;
            }
            METRICS.command_duration(method, started.elapsed().as_secs_f64());
            match result {
                Ok(value) => this.push_reply(id, method, &value),
                Err(error) => this.push_error(id, error),
            }
            this.busy = None;
            this.process_queue(ctx);
        }));
    }
}

/// Client history `limit`: 0 = position only; negative or over the clamp = the clamp
/// (`client.history_max_publication_limit`, 0 = no clamp).
fn clamp_history_limit(requested: i32, max: usize) -> usize {
    let max = if max == 0 { usize::MAX } else { max };
    match usize::try_from(requested) {
        Ok(limit) => limit.min(max),
        Err(_) => max,
    }
}

/// A verified connect, ready to be accepted.
struct ConnectPlan {
    id: u32,
    client_name: String,
    client_version: String,
    user: Arc<str>,
    info: Option<RawJson>,
    expire_at: Option<i64>,
    server_side: Vec<(ResolvedChannel, PendingSubscription)>,
}

/// What a subscription token (or namespace permission) grants.
#[derive(Default)]
struct Grant {
    expire_at: Option<i64>,
    chan_info: Option<RawJson>,
    data: Option<RawJson>,
    token_based: bool,
}

/// A refused subscribe: an error reply or a disconnect.
enum Outcome {
    Error(ReplyError),
    Disconnect(Disconnect),
}

/// Builds the subscribe result from what the channel answered (protocol-client.md §6.6).
fn subscribe_result(
    pending: &PendingSubscription,
    outcome: Result<Subscribed, ReplyError>,
) -> Result<SubscribeResult, ReplyError> {
    let subscribed = outcome?;
    let mut result = SubscribeResult {
        expires: pending.expire_at.is_some(),
        ttl: pending.expire_at.map(ttl_until).unwrap_or(0),
        data: pending.data.clone(),
        was_recovering: pending.was_recovering,
        ..Default::default()
    };
    if let Some(position) = subscribed.position.filter(|_| pending.positioned) {
        result.positioned = true;
        result.recoverable = pending.recoverable;
        result.epoch = position.epoch;
        result.offset = position.offset;
    }
    if pending.was_recovering && pending.recoverable {
        let recovered = subscribed.recovery.as_ref().map_or((false, 0), |r| (r.recovered, r.publications.len()));
        METRICS.recovery(recovered.0, recovered.1);
        match subscribed.recovery {
            Some(recovery) if recovery.recovered => {
                result.recovered = true;
                result.offset = pending.recover_from.as_ref().map(|p| p.offset).unwrap_or_default();
                result.publications = recovery.publications;
            }
            _ if pending.reject_unrecovered => return Err(ReplyError::UnrecoverablePosition),
            _ => {}
        }
    }
    Ok(result)
}
