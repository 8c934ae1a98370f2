//! One method per protocol command (protocol-client.md §3), with the outcomes Centrifugo picks
//! for each situation, split by concern. Replies go to the session's line buffer; commands that
//! need another actor mark the session busy so later commands wait (commands run strictly in order).

mod connect;
mod proxied;
mod queries;
mod refresh;
mod subscribe;

use std::future::Future;
use std::time::Instant;

use actix::prelude::*;

use crate::channel::Asker;
use crate::client::session::{Busy, ClientSession, State};
use crate::domain::{unix_now, ChannelName};
use crate::metrics::METRICS;
use crate::protocol::command::{Command, Request};
use crate::protocol::protobuf::ReplyBody;
use crate::protocol::reply::Empty;
use crate::protocol::{Disconnect, ReplyError};

pub(in crate::client) use connect::{Credentials, ServerSub};
pub(in crate::client) use proxied::ProxyState;
pub(in crate::client) use subscribe::PendingSubscription;

pub(in crate::client) type Ctx = Context<ClientSession>;

/// Seconds left until `at`, at least 1 (SDKs need `ttl ≥ 1` with `expires`).
pub(in crate::client) fn ttl_until(at: i64) -> u32 {
    (at - unix_now()).clamp(1, u32::MAX as i64) as u32
}

impl ClientSession {
    /// Routes one command (reference dispatch rules, protocol-client.md §1.4).
    pub(in crate::client) fn dispatch(&mut self, command: Command, ctx: &mut Ctx) {
        // A token whose key a JWKS has not delivered yet (key rotation): fetch the set, then
        // run the command; later commands wait, as behind any command waiting for an answer.
        let jwks =
            command.token().and_then(|(token, subscription)| self.node.verifier.jwks_to_refresh(token, subscription));
        if let Some(jwks) = jwks {
            self.busy = Some(Box::new(Busy::Reply));
            let refreshed = async move { jwks.refresh().await };
            ctx.spawn(refreshed.into_actor(self).map(move |result, this, ctx| {
                this.busy = None;
                if let Err(error) = result {
                    tracing::warn!(%error, "JWKS refresh failed; tokens signed with keys not cached yet are refused (3500/103); check client.token.jwks_public_endpoint");
                }
                this.run(command, ctx);
                this.process_queue(ctx);
            }));
            return;
        }
        self.run(command, ctx);
    }

    fn run(&mut self, command: Command, ctx: &mut Ctx) {
        if self.connection().is_none() && command.connect.is_none() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        if command.is_pong() {
            return self.on_pong(ctx);
        }
        self.current_method = command.frame_type();
        let started = Instant::now();
        let id = command.id;
        let Some(request) = command.into_request() else {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        };
        if !self.within_rate_limit(&request) {
            return self.push_error(id, ReplyError::TooManyRequests);
        }
        match request {
            Request::Connect(req) => self.connect(id, req, ctx),
            Request::Subscribe(req) => self.subscribe(id, req, ctx),
            Request::Unsubscribe(req) => self.unsubscribe(id, req, ctx),
            Request::Publish(req) => self.publish(id, req, ctx),
            Request::Presence(req) => self.presence(id, req, ctx),
            Request::PresenceStats(req) => self.presence_stats(id, req, ctx),
            Request::History(req) => self.history(id, req, ctx),
            Request::Rpc(req) => self.rpc(id, req, ctx),
            Request::Send => self.close(ctx, Disconnect::NOT_AVAILABLE),
            Request::Refresh(req) => self.refresh(id, req, ctx),
            Request::SubRefresh(req) => self.sub_refresh(id, req, ctx),
            Request::Ping => self.push_reply(id, "ping", &Empty {}),
        }
        if self.busy.is_none() {
            METRICS.command_duration(self.current_method, started.elapsed().as_secs_f64());
        }
    }

    /// `client.rate_limit.client_command`: whether this command may run now (`connect` always may).
    fn within_rate_limit(&mut self, request: &Request) -> bool {
        let limits = &self.node.settings.client.rate_limit.client_command;
        if !limits.enabled || matches!(request, Request::Connect(_) | Request::Send) {
            return true;
        }
        let rpc_method = match request {
            Request::Rpc(rpc) => Some(rpc.method.as_str()),
            _ => None,
        };
        let limiter = self.limiter.get_or_insert_with(Box::default);
        let allowed = limiter.allow(limits, self.current_method, rpc_method, Instant::now());
        if !allowed {
            tracing::debug!(method = self.current_method, "command over its rate limit: error 111");
        }
        allowed
    }

    pub(in crate::client) fn asker(&self, channel: &ChannelName) -> Asker<'_> {
        Asker {
            user: self.connection().map(|c| &*c.user).unwrap_or_default(),
            subscribed: self.subscriptions.contains_key(channel),
        }
    }

    /// Runs `answer` and replies with its result; later commands wait until then.
    pub(in crate::client) fn reply_later<T, F>(&mut self, id: u32, method: &'static str, ctx: &mut Ctx, answer: F)
    where
        T: ReplyBody + 'static,
        F: Future<Output = Result<T, ReplyError>> + 'static,
    {
        self.busy = Some(Box::new(Busy::Reply));
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
