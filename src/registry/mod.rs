//! The node's channel registry: owns the lifecycle of [`Channel`] and [`Presence`] actors,
//! routes subscribe/unsubscribe/publish/history/presence to them, and tracks connected clients
//! (counts, shutdown).
//!
//! Every message to a channel goes through here and is counted, so a channel that reports
//! itself idle is only forgotten when no message is in flight to it. A forgotten channel's stream
//! position is kept (for `channel.history_meta_ttl`) so a re-created channel continues the same
//! epoch and offsets.

pub mod messages;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::channel::messages as channel;
use crate::channel::{Channel, ResolvedChannel};
use crate::client::messages::{ClientHandle, Deliver, ServerAction};
use crate::domain::{ChannelName, ClientId, StreamPosition};
use crate::presence::{self, Presence};
use messages::*;

struct ChannelEntry {
    /// Tells this incarnation of the channel from earlier ones with the same name.
    generation: u64,
    channel: Addr<Channel>,
    presence: Option<Addr<Presence>>,
    /// Messages sent to the channel actor.
    sent: u64,
    subscribers: usize,
}

struct Dormant {
    position: StreamPosition,
    until: Instant,
}

struct ConnectedClient {
    handle: ClientHandle,
    user: Arc<str>,
}

/// The channel registry actor (one per node).
pub struct Registry {
    channels: HashMap<ChannelName, ChannelEntry>,
    dormant: HashMap<ChannelName, Dormant>,
    clients: HashMap<ClientId, ConnectedClient>,
    users: HashMap<Arc<str>, HashSet<ClientId>>,
    queue_max_size: usize,
    history_meta_ttl: Duration,
    generations: u64,
}

impl Registry {
    /// A registry; `queue_max_size` is the per-client byte budget channels enforce.
    pub fn new(queue_max_size: usize, history_meta_ttl: Duration) -> Self {
        Self {
            channels: HashMap::new(),
            dormant: HashMap::new(),
            clients: HashMap::new(),
            users: HashMap::new(),
            queue_max_size,
            history_meta_ttl,
            generations: 0,
        }
    }

    fn entry(&mut self, resolved: &ResolvedChannel, ctx: &mut Context<Self>) -> &mut ChannelEntry {
        let dormant = &mut self.dormant;
        let queue_max_size = self.queue_max_size;
        let generations = &mut self.generations;
        self.channels.entry(resolved.name.clone()).or_insert_with(|| {
            *generations += 1;
            let generation = *generations;
            let position = dormant.remove(&resolved.name).map(|d| d.position);
            let channel = Channel::new(
                resolved.name.clone(),
                resolved.namespace.clone(),
                position,
                ctx.address().recipient(),
                queue_max_size,
                generation,
            )
            .start();
            let presence = resolved.namespace.options.presence.then(|| Presence::default().start());
            ChannelEntry { generation, channel, presence, sent: 0, subscribers: 0 }
        })
    }

    fn forget_expired_dormant(&mut self) {
        let now = Instant::now();
        self.dormant.retain(|_, d| d.until > now);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(60), |this, _| this.forget_expired_dormant());
    }
}

impl Handler<Subscribe> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        let info = msg.info.clone();
        let entry = self.entry(&msg.channel, ctx);
        entry.sent += 1;
        entry.subscribers += 1;
        if let Some(presence) = &entry.presence {
            presence.do_send(presence::AddPresence(info));
        }
        entry.channel.do_send(channel::Join {
            client: msg.client,
            info: msg.info,
            push_join_leave: msg.push_join_leave,
            recover: msg.recover,
            recovery_limit: msg.recovery_limit,
        });
    }
}

impl Handler<Unsubscribe> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) {
        if let Some(entry) = self.channels.get_mut(&msg.channel) {
            entry.sent += 1;
            entry.subscribers = entry.subscribers.saturating_sub(1);
            if let Some(presence) = &entry.presence {
                presence.do_send(presence::RemovePresence(msg.client.clone()));
            }
            entry.channel.do_send(channel::Leave { client: msg.client });
        }
    }
}

impl Handler<Publish> for Registry {
    type Result = ResponseFuture<Result<Option<StreamPosition>, MailboxError>>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        let keeps_history = msg.channel.namespace.options.history_enabled() && !msg.skip_history;
        if !keeps_history && msg.idempotency_key.is_none() && !self.channels.contains_key(&msg.channel.name) {
            // Nobody subscribed here and nothing to remember: done.
            return Box::pin(async { Ok(None) });
        }
        let entry = self.entry(&msg.channel, ctx);
        entry.sent += 1;
        let sent = entry.channel.send(channel::Broadcast {
            publication: msg.publication,
            skip_history: msg.skip_history,
            idempotency_key: msg.idempotency_key,
        });
        Box::pin(sent)
    }
}

impl Handler<History> for Registry {
    type Result = ResponseFuture<
        Result<Result<crate::channel::history::HistoryPage, crate::channel::history::HistoryError>, MailboxError>,
    >;

    fn handle(&mut self, msg: History, ctx: &mut Self::Context) -> Self::Result {
        let entry = self.entry(&msg.channel, ctx);
        entry.sent += 1;
        Box::pin(entry.channel.send(channel::ReadHistory(msg.query)))
    }
}

impl Handler<RemoveHistory> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoveHistory, _: &mut Self::Context) {
        if let Some(entry) = self.channels.get_mut(&msg.channel.name) {
            entry.sent += 1;
            entry.channel.do_send(channel::RemoveHistory);
        }
    }
}

impl Handler<messages::Presence> for Registry {
    type Result = ResponseFuture<Result<BTreeMap<ClientId, crate::domain::ClientInfo>, MailboxError>>;

    fn handle(&mut self, msg: messages::Presence, _: &mut Self::Context) -> Self::Result {
        match self.channels.get(&msg.channel).and_then(|e| e.presence.clone()) {
            Some(presence) => Box::pin(presence.send(presence::GetPresence)),
            None => Box::pin(async { Ok(BTreeMap::new()) }),
        }
    }
}

impl Handler<PresenceStatsOf> for Registry {
    type Result = ResponseFuture<Result<presence::PresenceStats, MailboxError>>;

    fn handle(&mut self, msg: PresenceStatsOf, _: &mut Self::Context) -> Self::Result {
        match self.channels.get(&msg.channel).and_then(|e| e.presence.clone()) {
            Some(presence) => Box::pin(presence.send(presence::GetPresenceStats)),
            None => Box::pin(async { Ok(presence::PresenceStats::default()) }),
        }
    }
}

impl Handler<ChannelIdle> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ChannelIdle, _: &mut Self::Context) {
        // Stale reports (from an earlier incarnation) and reports with messages still in flight
        // to the channel are ignored.
        let current = self.channels.get(&msg.name).is_some_and(|e| e.generation == msg.generation);
        if !current || self.channels.get(&msg.name).is_some_and(|e| e.sent != msg.processed) {
            return;
        }
        if let Some(entry) = self.channels.remove(&msg.name) {
            entry.channel.do_send(channel::Stop);
        }
        if let Some(position) = msg.position.filter(|p| p.offset > 0) {
            self.dormant.insert(msg.name, Dormant { position, until: Instant::now() + self.history_meta_ttl });
        }
    }
}

impl Handler<ClientConnected> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ClientConnected, _: &mut Self::Context) {
        self.users.entry(msg.user.clone()).or_default().insert(msg.client.id.clone());
        self.clients.insert(msg.client.id.clone(), ConnectedClient { handle: msg.client, user: msg.user });
    }
}

impl Handler<ClientGone> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ClientGone, _: &mut Self::Context) {
        let Some(gone) = self.clients.remove(&msg.client) else {
            return;
        };
        if let Some(clients) = self.users.get_mut(&gone.user) {
            clients.remove(&msg.client);
            if clients.is_empty() {
                self.users.remove(&gone.user);
            }
        }
    }
}

impl Handler<DisconnectAll> for Registry {
    type Result = usize;

    fn handle(&mut self, DisconnectAll(disconnect): DisconnectAll, _: &mut Self::Context) -> usize {
        for client in self.clients.values() {
            client.handle.send(Deliver::Disconnect(disconnect.clone()));
        }
        self.clients.len()
    }
}

impl Handler<GetStats> for Registry {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let live: Vec<&ChannelEntry> = self.channels.values().filter(|e| e.subscribers > 0).collect();
        MessageResult(NodeStats {
            num_clients: self.clients.len(),
            num_users: self.users.len(),
            num_channels: live.len(),
            num_subs: live.iter().map(|e| e.subscribers).sum(),
        })
    }
}

impl Handler<ToUser> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: ToUser, _: &mut Self::Context) -> usize {
        if msg.session.as_deref().is_some_and(|s| !s.is_empty()) {
            return 0;
        }
        let Some(clients) = self.users.get(msg.user.as_str()) else { return 0 };
        let targets = clients
            .iter()
            .filter(|id| msg.client.as_ref().is_none_or(|only| only == *id))
            .filter(|id| !msg.whitelist.contains(id))
            .filter_map(|id| self.clients.get(id));
        let mut count = 0;
        for target in targets {
            count += 1;
            target.handle.send(match msg.action.clone() {
                UserAction::Subscribe(subscribe) => Deliver::Server(ServerAction::Subscribe(subscribe)),
                UserAction::Unsubscribe(channel) => {
                    Deliver::Unsubscribe { channel, code: 2000, reason: "server unsubscribe" }
                }
                UserAction::Disconnect(disconnect) => Deliver::Disconnect(disconnect),
                UserAction::Refresh { expired, expire_at, info } => {
                    Deliver::Server(ServerAction::Refresh { expired, expire_at, info })
                }
            });
        }
        count
    }
}

impl Handler<ListChannels> for Registry {
    type Result = MessageResult<ListChannels>;

    fn handle(&mut self, msg: ListChannels, _: &mut Self::Context) -> Self::Result {
        let matches = |name: &str| msg.pattern.as_ref().is_none_or(|p| p.is_match(name));
        MessageResult(
            self.channels
                .iter()
                .filter(|(name, entry)| entry.subscribers > 0 && matches(name.as_str()))
                .map(|(name, entry)| (name.to_string(), entry.subscribers))
                .collect(),
        )
    }
}

impl Handler<UserConnections> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: UserConnections, _: &mut Self::Context) -> usize {
        self.users.get(&msg.user).map_or(0, HashSet::len)
    }
}
