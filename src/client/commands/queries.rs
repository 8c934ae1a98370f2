//! `publish`, `presence`, `presence_stats`, `history`, `rpc`.

use crate::channel::history::{HistoryError, HistoryQuery};
use crate::channel::{Action, ResolvedChannel};
use crate::client::session::ClientSession;
use crate::domain::StreamPosition;
use crate::protocol::command::{ChannelRequest, HistoryRequest, PublishRequest, RpcRequest};
use crate::protocol::reply::{Empty, HistoryResult, PresenceResult, PresenceStatsResult};
use crate::protocol::{Disconnect, ReplyError};
use crate::registry::messages as registry;

use super::Ctx;

impl ClientSession {
    pub(in crate::client) fn publish(&mut self, id: u32, req: PublishRequest, ctx: &mut Ctx) {
        if req.channel.is_empty() {
            return self.close(ctx, Disconnect::BAD_REQUEST);
        }
        let channel = match self.node.rules.resolve_client(&req.channel) {
            Ok(channel) => channel,
            Err(error) => return self.push_error(id, error),
        };
        let data = req.data.unwrap_or_default();
        if !channel.namespace.data_format.accepts(data.as_bytes()) {
            return self.push_error(id, ReplyError::BadRequest);
        }
        if let Some(proxy) = self.publish_proxy_for(&channel) {
            return self.publish_through_proxy(id, data, channel, &proxy, ctx);
        }
        if channel.namespace.options.subscribe_stream_proxy_enabled {
            return self.publish_into_stream(id, &channel, data);
        }
        if !self.node.rules.allows(&channel, Action::Publish, self.asker(&channel.name)) {
            return self.push_error(id, ReplyError::PermissionDenied);
        }
        self.publish_accepted(id, channel, data, false, ctx);
    }

    /// Common checks of presence/history commands: channel, namespace feature, permission.
    pub(in crate::client) fn query_channel(
        &mut self,
        id: u32,
        channel: &str,
        action: Action,
        ctx: &mut Ctx,
    ) -> Option<ResolvedChannel> {
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

    pub(in crate::client) fn presence(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
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

    pub(in crate::client) fn presence_stats(&mut self, id: u32, req: ChannelRequest, ctx: &mut Ctx) {
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

    pub(in crate::client) fn history(&mut self, id: u32, req: HistoryRequest, ctx: &mut Ctx) {
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

    /// `rpc.ping` first, then the namespace's RPC proxy; with no RPC proxy configured, any
    /// other method is 104 when `rpc.ping` is on and 108 when nothing handles RPC (Centrifugo).
    pub(in crate::client) fn rpc(&mut self, id: u32, req: RpcRequest, ctx: &mut Ctx) {
        let ping = &self.node.settings.rpc.ping;
        if ping.enabled && req.method == ping.method {
            return self.push_reply(id, "rpc", &Empty {});
        }
        if self.node.proxies.rpc_configured() {
            return self.rpc_through_proxy(id, req, ctx);
        }
        let error = if ping.enabled { ReplyError::MethodNotFound } else { ReplyError::NotAvailable };
        self.push_error(id, error)
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
