//! `subscribe` and `unsubscribe`, the channel's answer, and server-side (API) subscriptions.

use crate::auth::TokenError;
use crate::channel::history::RecoveryMode;
use crate::channel::messages::DeltaMode;
use crate::channel::{Action, ResolvedChannel};
use crate::client::messages::{ServerAction, ServerSubscribe, SubscribeOverrides, Subscribed};
use crate::client::session::{Busy, ClientSession, Subscription};
use std::sync::Arc;

use crate::domain::{unix_now, ChannelName, ClientInfo, Payload, Publication, StreamPosition};
use crate::metrics::METRICS;
use crate::protocol::command::{ChannelRequest, SubscribeRequest};
use crate::protocol::outgoing::Push;
use crate::protocol::reply::{Empty, SubscribePush, SubscribeResult};
use crate::protocol::{Disconnect, Protocol, ReplyError};
use crate::proxy::ProxyKind;
use crate::registry::messages as registry;

use super::{ttl_until, Ctx};

impl ClientSession {
    /// Sends the subscription to the registry; the channel answers with `Deliver::Subscribed`.
    pub(in crate::client) fn join(
        &mut self,
        channel: &ResolvedChannel,
        pending: &PendingSubscription,
        push_join_leave: bool,
    ) {
        let Some(connection) = self.connection() else { return };
        let info = ClientInfo {
            user: connection.user.clone(),
            client: self.id.clone(),
            conn_info: connection.info.clone(),
            chan_info: pending.chan_info.clone(),
        };
        self.node.registry.do_send(registry::Subscribe {
            channel: channel.clone(),
            client: self.client_handle(),
            info,
            push_join_leave,
            emit_join_leave: pending.emit_join_leave,
            emit_presence: pending.emit_presence,
            recover: pending.recover_from.clone(),
            recovery_limit: self.node.settings.client.recovery_max_publication_limit,
            delta: pending.delta,
        });
    }

    pub(in crate::client) fn subscribe(&mut self, id: u32, req: SubscribeRequest, ctx: &mut Ctx) {
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
        if let Some(proxy) = self.subscribe_proxy_for(ProxyKind::Subscribe, &req, &channel) {
            return self.subscribe_through_proxy(id, req, channel, &proxy, ctx);
        }
        if let Some(proxy) = self.subscribe_proxy_for(ProxyKind::SubscribeStream, &req, &channel) {
            return self.subscribe_to_stream(id, req, channel, &proxy, ctx);
        }
        let grant = match self.authorize_subscribe(&req, &channel) {
            Ok(grant) => grant,
            Err(Outcome::Error(error)) => return self.push_error(id, error),
            Err(Outcome::Disconnect(disconnect)) => return self.close(ctx, disconnect),
        };
        let (pending, push_join_leave) = self.client_side_pending(&req, &channel, grant);
        self.join(&channel, &pending, push_join_leave);
        self.busy = Some(Box::new(Busy::Subscribe { id, channel: channel.name, pending }));
    }

    /// Token or namespace permission for a client-side subscribe.
    pub(in crate::client) fn authorize_subscribe(
        &self,
        req: &SubscribeRequest,
        channel: &ResolvedChannel,
    ) -> Result<Grant, Outcome> {
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

    pub(in crate::client) fn client_side_pending(
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
        let delta = self.negotiated_delta(req, channel, positioned);
        let may_presence = rules.allows(channel, Action::Presence, asker);
        let push_join_leave = options.join_leave && (options.force_push_join_leave || (req.join_leave && may_presence));
        // Cache mode with auto_cache_recover: every subscription gets the latest state.
        let cache = channel.namespace.recovery_mode == RecoveryMode::Cache;
        let recovering = req.recover || (recoverable && cache && options.auto_cache_recover);
        let pending = PendingSubscription {
            positioned,
            recoverable,
            was_recovering: recovering,
            reject_unrecovered: req.rejects_unrecovered(),
            recover_from: (recovering && recoverable)
                .then(|| StreamPosition { offset: req.offset, epoch: req.epoch.as_str().into() }),
            cache_recovery: cache,
            expire_at: grant.expire_at,
            data: grant.data,
            chan_info: grant.chan_info,
            token_based: grant.token_based,
            server_side: false,
            emit_join_leave: options.join_leave,
            emit_presence: options.presence,
            push_join_leave,
            delta,
            refreshed_by_server: self
                .node
                .proxies
                .for_channel(ProxyKind::SubRefresh, &channel.namespace.options)
                .is_some(),
        };
        (pending, push_join_leave)
    }

    /// Centrifugo grants `delta: "fossil"` when the namespace allows it; patches need a
    /// positioned subscription (and a channel with history) to have a base.
    pub(in crate::client) fn negotiated_delta(
        &self,
        req: &SubscribeRequest,
        channel: &ResolvedChannel,
        positioned: bool,
    ) -> DeltaMode {
        let allowed = channel.namespace.options.allowed_delta_types.iter().any(|t| t == "fossil");
        match (req.delta == "fossil", allowed) {
            (true, true) if positioned => DeltaMode::Patches,
            (true, true) => DeltaMode::Full,
            _ => DeltaMode::Off,
        }
    }

    /// A subscription with the namespace's forced options (with `overrides`), nothing the client
    /// asked for: server-side subscriptions and those a subscribe proxy allowed. Also whether
    /// join/leave is pushed to it.
    pub(in crate::client) fn forced_pending(
        &self,
        channel: &ResolvedChannel,
        o: &SubscribeOverrides,
    ) -> (PendingSubscription, bool) {
        let options = &channel.namespace.options;
        let history = options.history_enabled();
        let recoverable = history && o.force_recovery.unwrap_or(options.force_recovery);
        let positioned = history && (recoverable || o.force_positioning.unwrap_or(options.force_positioning));
        let cache_recovery = channel.namespace.recovery_mode == RecoveryMode::Cache;
        let pending = PendingSubscription {
            positioned,
            recoverable,
            cache_recovery,
            emit_join_leave: o.join_leave.unwrap_or(options.join_leave),
            emit_presence: o.presence.unwrap_or(options.presence),
            ..Default::default()
        };
        // Receiving others' join/leave is its own setting (Centrifugo's PushJoinLeave), apart
        // from announcing its own (EmitJoinLeave).
        let push_join_leave = o.force_push_join_leave.unwrap_or(options.force_push_join_leave);
        (pending, push_join_leave)
    }

    /// The channel answered a subscribe (client-side, or server-side during connect).
    pub(in crate::client) fn on_subscribed(
        &mut self,
        channel: ChannelName,
        outcome: Result<Subscribed, ReplyError>,
        ctx: &mut Ctx,
    ) {
        match self.busy.take().map(|busy| *busy) {
            Some(Busy::Subscribe { id, channel: expected, pending }) if expected == channel => {
                match subscribe_result(&pending, outcome) {
                    Ok(mut result) => {
                        if result.delta && self.protocol == Protocol::Json {
                            result.publications = as_json_strings(result.publications);
                        }
                        self.add_subscription(channel, &pending, ctx);
                        self.push_reply(id, "subscribe", &result);
                        let name = self.metric_labels.as_ref().map_or("", |l| l.client_name.as_str());
                        METRICS.subscription_accepted(name);
                    }
                    Err(error) => {
                        self.leave(&channel);
                        self.push_error(id, error);
                    }
                }
            }
            Some(Busy::Connect { id, mut result, mut waiting, held }) if waiting.contains_key(&channel) => {
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
                    self.release_held(held, ctx);
                } else {
                    self.busy = Some(Box::new(Busy::Connect { id, result, waiting, held }));
                }
            }
            other => {
                self.busy = other.map(Box::new);
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
    pub(in crate::client) fn on_server_action(&mut self, action: ServerAction, ctx: &mut Ctx) {
        match action {
            ServerAction::Subscribe(subscribe) => self.server_subscribe(subscribe),
            ServerAction::Refresh { expired, expire_at, info } => self.server_refresh(expired, expire_at, info, ctx),
        }
    }

    pub(in crate::client) fn server_subscribe(&mut self, subscribe: ServerSubscribe) {
        let name = subscribe.channel.name.clone();
        let busy_with_it = matches!(self.busy.as_deref(), Some(Busy::Subscribe { channel, .. }) if *channel == name);
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
        let (mut pending, push_join_leave) = self.forced_pending(&subscribe.channel, &subscribe.overrides);
        pending.recover_from = subscribe.recover_since.clone().filter(|_| pending.recoverable);
        pending.was_recovering = pending.recover_from.is_some();
        pending.expire_at = subscribe.expire_at;
        pending.data = subscribe.data.clone();
        pending.chan_info = subscribe.info.clone();
        pending.server_side = true;
        self.join(&subscribe.channel, &pending, push_join_leave);
        self.server_pending.insert(name, pending);
    }

    pub(in crate::client) fn finish_server_subscribe(
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
        self.push_to_client(channel.as_str(), Push::Subscribe(&announce));
        for publication in &result.publications {
            self.push_to_client(channel.as_str(), Push::Publication(publication));
        }
    }

    pub(in crate::client) fn add_subscription(
        &mut self,
        channel: ChannelName,
        pending: &PendingSubscription,
        ctx: &mut Ctx,
    ) {
        if let Some(at) = pending.expire_at {
            self.schedule_subscription_expiry_check(channel.clone(), at, ctx);
        }
        self.start_stream(&channel, ctx);
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

    pub(in crate::client) fn leave(&mut self, channel: &ChannelName) {
        self.end_stream(channel);
        self.node.registry.do_send(registry::Unsubscribe { channel: channel.clone(), client: self.id.clone() });
    }

    pub(in crate::client) fn unsubscribe(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = ChannelName::new_unchecked(&req.channel);
        if self.subscriptions.remove(&channel).is_some() {
            self.leave(&channel);
        }
        self.push_reply(id, "unsubscribe", &Empty {});
    }
}

/// What a subscription token (or namespace permission) grants.
#[derive(Default)]
pub(in crate::client) struct Grant {
    expire_at: Option<i64>,
    chan_info: Option<Payload>,
    data: Option<Payload>,
    token_based: bool,
}

/// A refused subscribe: an error reply or a disconnect.
pub(in crate::client) enum Outcome {
    Error(ReplyError),
    Disconnect(Disconnect),
}

/// Builds the subscribe result from what the channel answered (protocol-client.md §6.6).
fn subscribe_result(
    pending: &PendingSubscription,
    outcome: Result<Subscribed, ReplyError>,
) -> Result<SubscribeResult, ReplyError> {
    let subscribed = outcome?;
    // A sub_refresh proxy extends the subscription; the client is not asked to.
    let client_refreshes = pending.expire_at.filter(|_| !pending.refreshed_by_server);
    let mut result = SubscribeResult {
        expires: client_refreshes.is_some(),
        ttl: client_refreshes.map(ttl_until).unwrap_or(0),
        data: pending.data.clone(),
        was_recovering: pending.was_recovering,
        delta: pending.delta != DeltaMode::Off,
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
                // Stream mode: the stream's top (`res.Offset = latestOffset`); cache mode: the
                // client's own offset, the publication carries the newer one (Centrifugo).
                result.offset = match &pending.recover_from {
                    Some(since) if pending.cache_recovery => since.offset,
                    _ => recovery.position.offset,
                };
                result.publications = recovery.publications;
            }
            _ if pending.reject_unrecovered => return Err(ReplyError::UnrecoverablePosition),
            _ => {}
        }
    }
    Ok(result)
}

/// A JSON delta subscription reads every `data` as a JSON string (protocol-extensions.md §2.5):
/// recovered publications go as full payloads in that form. A payload that is not UTF-8 is left
/// as it is, so the reply fails as JSON and the connection is closed with 3506.
fn as_json_strings(publications: Vec<Arc<Publication>>) -> Vec<Arc<Publication>> {
    publications
        .into_iter()
        .map(|publication| match publication.data.to_json_string() {
            Some(data) => Arc::new(Publication { data, ..(*publication).clone() }),
            None => publication,
        })
        .collect()
}

/// What a subscribe asked for, kept until the channel answers.
#[derive(Debug, Clone, Default)]
pub(in crate::client) struct PendingSubscription {
    pub(in crate::client) positioned: bool,
    pub(in crate::client) recoverable: bool,
    pub(in crate::client) was_recovering: bool,
    pub(in crate::client) reject_unrecovered: bool,
    pub(in crate::client) recover_from: Option<StreamPosition>,
    pub(in crate::client) expire_at: Option<i64>,
    pub(in crate::client) data: Option<Payload>,
    pub(in crate::client) chan_info: Option<Payload>,
    pub(in crate::client) token_based: bool,
    pub(in crate::client) server_side: bool,
    pub(in crate::client) delta: DeltaMode,
    pub(in crate::client) cache_recovery: bool,
    /// A sub_refresh proxy extends it (the client is not told it expires).
    pub(in crate::client) refreshed_by_server: bool,
    /// Its join and leave are announced.
    pub(in crate::client) emit_join_leave: bool,
    /// It counts in the channel's presence.
    pub(in crate::client) emit_presence: bool,
    /// It gets join and leave pushes (server-side subscriptions; client-side ones pass it along).
    pub(in crate::client) push_join_leave: bool,
}
