//! The node's channel registry: owns the lifecycle of [`Channel`] and [`Presence`] actors,
//! routes subscribe/unsubscribe/publish/history/presence to them, and tracks connected clients
//! (counts, shutdown).
//!
//! Every message to a channel goes through here and is counted, so a channel that reports
//! itself idle is only forgotten when no message is in flight to it. A channel without
//! subscribers on this node has no actor: in the memory engine its history is parked here
//! ([`parked`]) and its position outlives it (for `channel.history_meta_ttl`), so a re-created
//! channel continues the same epoch and offsets.

pub mod messages;
mod parked;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::channel::history::{HistoryError, Stream};
use crate::channel::messages as channel;
use crate::channel::{Channel, HistoryShape, ResolvedChannel};
use crate::client::messages::{ClientHandle, Deliver, ServerAction, SubscribeAnswer};
use crate::cluster::envelope::{ChannelEvent, SurveyQuery};
use crate::cluster::history::HistoryStore;
use crate::cluster::{NatsBridge, PublishToChannel, Survey, UnwatchChannel, WatchChannel};
use crate::domain::{ChannelName, ClientId, ClientInfo, SmallMap, StreamPosition};
use crate::presence::{self, Presence};
use messages::*;
use parked::{Parked, Shape, Taken};

struct ChannelEntry {
    /// Tells this incarnation of the channel from earlier ones with the same name.
    generation: u64,
    channel: Addr<Channel>,
    /// Boxed, as `waiting_joins`: entries are many, these are rare.
    presence: Option<Box<Addr<Presence>>>,
    /// Messages sent to the channel actor.
    sent: u64,
    subscribers: usize,
    /// Cluster mode: joins wait here until NATS confirmed the channel's subscription.
    #[allow(clippy::box_collection, reason = "8 bytes in every entry instead of 24; rarely set")]
    waiting_joins: Option<Box<Vec<channel::Join>>>,
}

struct ConnectedClient {
    handle: ClientHandle,
    user: Arc<str>,
}

/// The channel registry actor (one per node).
pub struct Registry {
    channels: HashMap<ChannelName, ChannelEntry>,
    /// Memory engine: history and positions of channels without an actor.
    parked: Parked,
    clients: HashMap<ClientId, ConnectedClient>,
    /// Each user's connections (a small map: most users have one or two).
    users: HashMap<Arc<str>, SmallMap<ClientId, ()>>,
    queue_max_size: usize,
    /// `node.channel_limit` (0 = none).
    channel_limit: usize,
    /// When the channel limit was last logged (once a minute at most).
    limit_logged: Option<Instant>,
    generations: u64,
    /// Set in cluster mode: channel traffic goes through NATS.
    bridge: Option<Addr<NatsBridge>>,
    /// Cluster mode with JetStream: history of history-enabled namespaces lives here.
    history: Option<Arc<HistoryStore>>,
    /// Where channels report idleness: one address shared by every channel (an address of
    /// their own would cost each channel ~100 bytes).
    idle_reports: Option<Arc<Recipient<ChannelIdle>>>,
}

impl Registry {
    /// A registry; `queue_max_size` is the per-client byte budget channels enforce.
    pub fn new(queue_max_size: usize, history_meta_ttl: Duration) -> Self {
        Self {
            channels: HashMap::new(),
            parked: Parked::new(history_meta_ttl),
            clients: HashMap::new(),
            users: HashMap::new(),
            queue_max_size,
            channel_limit: 0,
            limit_logged: None,
            generations: 0,
            bridge: None,
            history: None,
            idle_reports: None,
        }
    }

    /// Limits the channels this node holds (`node.channel_limit`, 0 = none).
    pub fn with_channel_limit(mut self, limit: usize) -> Self {
        self.channel_limit = limit;
        self
    }

    /// Whether `name` may be held: it is already, or there is room (forgetting the oldest kept
    /// position if that makes it).
    fn room_for(&mut self, name: &ChannelName) -> bool {
        if self.channel_limit == 0 || self.channels.contains_key(name) || self.parked.contains(name) {
            return true;
        }
        if self.channels.len() + self.parked.len() < self.channel_limit || self.parked.evict_oldest_position() {
            return true;
        }
        let now = Instant::now();
        if self.limit_logged.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
            self.limit_logged = Some(now);
            tracing::warn!(
                limit = self.channel_limit,
                live = self.channels.len(),
                "node.channel_limit reached: new channels are refused with 106 until some are released; \
                 raise the limit or add nodes"
            );
        }
        false
    }

    fn entry(&mut self, resolved: &ResolvedChannel, ctx: &mut Context<Self>) -> &mut ChannelEntry {
        let idle_reports = self.idle_reports.get_or_insert_with(|| Arc::new(ctx.address().recipient())).clone();
        let parked = &mut self.parked;
        let queue_max_size = self.queue_max_size;
        let generations = &mut self.generations;
        let bridge = &self.bridge;
        let history = &self.history;
        self.channels.entry(resolved.name.clone()).or_insert_with(|| {
            *generations += 1;
            let generation = *generations;
            // Only the memory engine parks anything: in cluster mode a re-created channel may have
            // missed publications while it was gone, so it starts a new epoch (recovery then says
            // "not recovered" instead of wrongly claiming continuity).
            let kept = parked.take(&resolved.name).map(|kept| match kept {
                Taken::Stream(stream) => stream,
                Taken::Position(position, last_version) => {
                    let Shape { size, ttl } = shape(resolved);
                    Stream::new(Some(position), size, ttl).with_last_version(last_version)
                }
            });
            let waiting_joins = bridge.as_ref().map(|bridge| {
                let name = resolved.name.clone();
                let live =
                    history.as_ref().zip(resolved.namespace.history).map(|(h, s)| h.live_subject(s, name.as_str()));
                let watched = bridge.send(WatchChannel { channel: name.clone(), live });
                let watched = actix::fut::wrap_future::<_, Registry>(watched);
                ctx.spawn(watched.map(move |_, this, _| this.channel_watched(&name, generation)));
                Box::default()
            });
            let channel = Channel::new(
                resolved.name.clone(),
                resolved.namespace.clone(),
                kept,
                idle_reports,
                queue_max_size,
                generation,
            )
            .with_relay(bridge.clone())
            .with_shared_history(history.clone())
            .start();
            let presence = resolved.namespace.options.presence.then(|| Box::new(Presence::default().start()));
            ChannelEntry { generation, channel, presence, sent: 0, subscribers: 0, waiting_joins }
        })
    }

    /// NATS confirmed the channel's subscription: let the waiting subscribers in.
    fn channel_watched(&mut self, name: &ChannelName, generation: u64) {
        let Some(entry) = self.channels.get_mut(name).filter(|e| e.generation == generation) else { return };
        entry.sent += 1;
        entry.channel.do_send(channel::Watched);
        for join in entry.waiting_joins.take().map(|joins| *joins).unwrap_or_default() {
            entry.channel.do_send(join);
        }
    }
}

/// The history shape of a channel's namespace.
fn shape(channel: &ResolvedChannel) -> Shape {
    let options = &channel.namespace.options;
    Shape { size: options.history_size, ttl: options.history_ttl }
}

/// A registry whose address exists before its actor runs: messages sent to it wait in its
/// mailbox until [`PendingRegistry::run_here`] starts it on the calling thread. gyre uses this to
/// run the registry (and so every channel actor it creates) on the single HTTP worker's thread,
/// so a publication crosses no thread on its way from the API handler to the sessions.
pub struct PendingRegistry {
    registry: Registry,
    mailbox: actix::dev::channel::AddressReceiver<Registry>,
}

impl Registry {
    /// The registry's address now, and the registry to start later.
    pub fn start_later(self) -> (Addr<Registry>, PendingRegistry) {
        let (sender, mailbox) = actix::dev::channel::channel(16);
        (Addr::new(sender), PendingRegistry { registry: self, mailbox })
    }
}

impl PendingRegistry {
    /// Starts the registry on the current thread's arbiter.
    pub fn run_here(self) {
        Context::with_receiver(self.mailbox).run(self.registry);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Parked history expires to the second; kept positions are swept once a minute.
        ctx.run_interval(Duration::from_secs(1), |this, _| this.parked.expire(Instant::now()));
        ctx.run_interval(Duration::from_secs(60), |this, _| this.parked.forget_old_positions(Instant::now()));
    }
}

impl Handler<Subscribe> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        if !self.room_for(&msg.channel.name) {
            let outcome = Err(crate::protocol::ReplyError::LimitExceeded);
            let answer = SubscribeAnswer { channel: msg.channel.name, outcome };
            msg.client.send(Deliver::Subscribed(Box::new(answer)));
            return;
        }
        let info = msg.info.clone();
        let entry = self.entry(&msg.channel, ctx);
        entry.sent += 1;
        entry.subscribers += 1;
        if let Some(presence) = entry.presence.as_ref().filter(|_| msg.emit_presence) {
            presence.do_send(presence::AddPresence(info));
        }
        let join = channel::Join {
            client: msg.client,
            info: msg.info,
            push_join_leave: msg.push_join_leave,
            emit_join_leave: msg.emit_join_leave,
            recover: msg.recover,
            recovery_limit: msg.recovery_limit,
            delta: msg.delta,
        };
        match entry.waiting_joins.as_mut() {
            Some(waiting) => waiting.push(join),
            None => entry.channel.do_send(join),
        }
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

impl Handler<PublishAnswering> for Registry {
    type Result = ();

    fn handle(&mut self, PublishAnswering { publish, reply }: PublishAnswering, ctx: &mut Self::Context) {
        self.publish(publish, reply, ctx);
    }
}

impl Handler<PublishEach> for Registry {
    type Result = ResponseFuture<Vec<PublishOutcome>>;

    fn handle(&mut self, PublishEach(publishes): PublishEach, ctx: &mut Self::Context) -> Self::Result {
        let outcomes: Vec<_> = publishes
            .into_iter()
            .map(|msg| {
                let (reply, outcome) = tokio::sync::oneshot::channel();
                self.publish(msg, reply, ctx);
                async move { outcome.await.unwrap_or(Err(PublishFailed::Unavailable)) }
            })
            .collect();
        Box::pin(futures_util::future::join_all(outcomes))
    }
}

impl Registry {
    /// Publishes `msg`; its outcome goes to `reply` (from the channel itself when it has an actor).
    fn publish(&mut self, msg: Publish, reply: PublishReply, ctx: &mut Context<Self>) {
        if let Some(bridge) = self.bridge.clone() {
            let published = self.publish_to_cluster(bridge, msg);
            ctx.spawn(published.into_actor(self).map(move |outcome, _, _| {
                let _ = reply.send(outcome);
            }));
            return;
        }
        let keeps_history = msg.channel.namespace.options.history_enabled() && !msg.skip_history;
        let creates_channel = keeps_history || msg.idempotency_key.is_some();
        if creates_channel && !self.room_for(&msg.channel.name) {
            let _ = reply.send(Err(PublishFailed::ChannelLimit));
            return;
        }
        if msg.idempotency_key.is_none() && !self.channels.contains_key(&msg.channel.name) {
            // Nobody subscribed here and no result to remember: no actor is needed.
            let position = keeps_history
                .then(|| self.parked.publish(&msg.channel.name, shape(&msg.channel), msg.publication, Instant::now()));
            let _ = reply.send(Ok(position));
            return;
        }
        let entry = self.entry(&msg.channel, ctx);
        entry.sent += 1;
        entry.channel.do_send(channel::Broadcast {
            publication: msg.publication,
            skip_history: msg.skip_history,
            idempotency_key: msg.idempotency_key,
            reply: Some(reply),
        });
    }
}

impl Registry {
    /// Cluster mode: the publication goes to every node through NATS (this node's channel gets
    /// it back like any other), so its local stream position is not known here.
    fn publish_to_cluster(
        &mut self,
        bridge: Addr<NatsBridge>,
        msg: Publish,
    ) -> ResponseFuture<Result<Option<StreamPosition>, PublishFailed>> {
        if let Some((store, shape)) = self.shared_history(&msg.channel).filter(|_| !msg.skip_history) {
            return Box::pin(async move {
                let key = msg.idempotency_key.as_deref();
                match store.publish(shape, msg.channel.name.as_str(), &msg.publication, key).await {
                    Ok(stored) => Ok(Some(stored.position)),
                    Err(error) => {
                        tracing::warn!(%error, channel = %msg.channel.name, "publish refused: JetStream history is unavailable");
                        Err(PublishFailed::Unavailable)
                    }
                }
            });
        }
        let event = ChannelEvent::Publication { publication: msg.publication, skip_history: msg.skip_history };
        let sent =
            bridge.send(PublishToChannel { channel: msg.channel.name, event, idempotency_key: msg.idempotency_key });
        Box::pin(async move {
            match sent.await {
                Ok(Ok(())) => Ok(None),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "publish refused: the cluster relay is unavailable");
                    Err(PublishFailed::Unavailable)
                }
                Err(_) => Err(PublishFailed::Unavailable),
            }
        })
    }
}

impl Handler<History> for Registry {
    type Result = ResponseFuture<
        Result<Result<crate::channel::history::HistoryPage, crate::channel::history::HistoryError>, MailboxError>,
    >;

    fn handle(&mut self, msg: History, _: &mut Self::Context) -> Self::Result {
        if let Some((store, shape)) = self.shared_history(&msg.channel) {
            let ttl = msg.channel.namespace.options.history_ttl;
            let name = msg.channel.name.clone();
            // A channel with subscribers here holds its recent publications: it answers from them
            // when they are current.
            let local = self.channels.get_mut(&name).filter(|e| e.subscribers > 0).map(|entry| {
                entry.sent += 1;
                entry.channel.send(channel::ReadHistory(msg.query.clone()))
            });
            return Box::pin(async move {
                if let Some(Ok(page)) = futures_util::future::OptionFuture::from(local).await {
                    return Ok(page);
                }
                let page = store.read_page(shape, name.as_str(), &msg.query, ttl, None).await.map(|(page, _)| page);
                Ok(page
                    .map_err(|error| {
                        tracing::warn!(%error, channel = %name, "history read failed: JetStream is unavailable");
                        HistoryError::Unavailable
                    })
                    .and_then(|page| page))
            });
        }
        let Some(entry) = self.channels.get_mut(&msg.channel.name) else {
            let page = self.parked.read(&msg.channel.name, shape(&msg.channel), &msg.query, Instant::now());
            return Box::pin(async { Ok(page) });
        };
        entry.sent += 1;
        Box::pin(entry.channel.send(channel::ReadHistory(msg.query)))
    }
}

impl Handler<RemoveHistory> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RemoveHistory, ctx: &mut Self::Context) {
        if let Some((store, shape)) = self.shared_history(&msg.channel) {
            let name = msg.channel.name.clone();
            let removing = async move {
                if let Err(error) = store.remove(shape, name.as_str()).await {
                    tracing::warn!(%error, channel = %name, "history_remove failed: JetStream is unavailable");
                }
            };
            ctx.spawn(removing.into_actor(self));
            return;
        }
        match self.channels.get_mut(&msg.channel.name) {
            Some(entry) => {
                entry.sent += 1;
                entry.channel.do_send(channel::RemoveHistory);
            }
            None => self.parked.remove_history(&msg.channel.name, Instant::now()),
        }
    }
}

impl Registry {
    fn local_presence(&self, channel: &ChannelName) -> ResponseFuture<BTreeMap<ClientId, ClientInfo>> {
        match self.channels.get(channel).and_then(|e| e.presence.as_deref().cloned()) {
            Some(presence) => Box::pin(async move { presence.send(presence::GetPresence).await.unwrap_or_default() }),
            None => Box::pin(async { BTreeMap::new() }),
        }
    }

    /// Local presence, plus every other node's in cluster mode.
    fn cluster_presence(&self, channel: ChannelName) -> ResponseFuture<BTreeMap<ClientId, ClientInfo>> {
        let local = self.local_presence(&channel);
        let Some(bridge) = self.bridge.clone() else { return local };
        let survey = bridge.send(Survey(SurveyQuery::Presence { channel: channel.to_string() }));
        Box::pin(async move {
            let mut all = local.await;
            for answer in survey.await.unwrap_or_default() {
                all.extend(answer.presence.into_iter().map(|(id, info)| (ClientId::from(id.as_str()), info)));
            }
            all
        })
    }
}

impl Handler<LocalPresence> for Registry {
    type Result = ResponseFuture<BTreeMap<ClientId, ClientInfo>>;

    fn handle(&mut self, msg: LocalPresence, _: &mut Self::Context) -> Self::Result {
        self.local_presence(&msg.channel)
    }
}

impl Handler<messages::Presence> for Registry {
    type Result = ResponseFuture<Result<BTreeMap<ClientId, ClientInfo>, MailboxError>>;

    fn handle(&mut self, msg: messages::Presence, _: &mut Self::Context) -> Self::Result {
        let presence = self.cluster_presence(msg.channel);
        Box::pin(async move { Ok(presence.await) })
    }
}

impl Handler<PresenceStatsOf> for Registry {
    type Result = ResponseFuture<Result<presence::PresenceStats, MailboxError>>;

    fn handle(&mut self, msg: PresenceStatsOf, _: &mut Self::Context) -> Self::Result {
        let presence = self.cluster_presence(msg.channel);
        Box::pin(async move {
            let all = presence.await;
            let users: HashSet<&str> = all.values().map(|i| &*i.user).collect();
            Ok(presence::PresenceStats { num_clients: all.len() as u32, num_users: users.len() as u32 })
        })
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
            if let Some(bridge) = &self.bridge {
                bridge.do_send(UnwatchChannel(msg.name.clone()));
            }
        }
        if let Some(stream) = msg.stream.filter(|_| self.bridge.is_none()) {
            self.parked.park(msg.name, stream, Instant::now());
        }
    }
}

impl Handler<ClientConnected> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ClientConnected, _: &mut Self::Context) {
        self.users.entry(msg.user.clone()).or_default().insert(msg.client.id.clone(), ());
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
            .keys()
            .filter(|id| msg.client.as_ref().is_none_or(|only| only == *id))
            .filter(|id| !msg.whitelist.contains(id))
            .filter_map(|id| self.clients.get(id));
        let mut count = 0;
        for target in targets {
            count += 1;
            target.handle.send(match msg.action.clone() {
                UserAction::Subscribe(subscribe) => Deliver::Server(Box::new(ServerAction::Subscribe(subscribe))),
                UserAction::Unsubscribe(channel) => {
                    Deliver::Unsubscribe { channel, code: 2000, reason: "server unsubscribe" }
                }
                UserAction::Disconnect(disconnect) => Deliver::Disconnect(disconnect),
                UserAction::Refresh { expired, expire_at, info } => {
                    Deliver::Server(Box::new(ServerAction::Refresh { expired, expire_at, info }))
                }
            });
        }
        count
    }
}

impl Handler<ListChannels> for Registry {
    type Result = ResponseFuture<BTreeMap<String, usize>>;

    fn handle(&mut self, msg: ListChannels, _: &mut Self::Context) -> Self::Result {
        let matches = |name: &str| msg.pattern.as_ref().is_none_or(|p| p.is_match(name));
        let local: BTreeMap<String, usize> = self
            .channels
            .iter()
            .filter(|(name, entry)| entry.subscribers > 0 && matches(name.as_str()))
            .map(|(name, entry)| (name.to_string(), entry.subscribers))
            .collect();
        let Some(bridge) = self.bridge.clone().filter(|_| msg.cluster) else {
            return Box::pin(async move { local });
        };
        let survey = bridge.send(Survey(SurveyQuery::Channels { pattern: msg.glob }));
        Box::pin(async move {
            let mut all = local;
            for answer in survey.await.unwrap_or_default() {
                for (name, count) in answer.channels {
                    *all.entry(name).or_default() += count;
                }
            }
            all
        })
    }
}

impl Handler<ClusterIn> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ClusterIn, _: &mut Self::Context) {
        let Some(entry) = self.channels.get_mut(&msg.channel) else { return };
        entry.sent += 1;
        match msg.event {
            ChannelEvent::Publication { publication, skip_history } => entry.channel.do_send(channel::Broadcast {
                publication,
                skip_history,
                idempotency_key: None,
                reply: None,
            }),
            ChannelEvent::Join { info } => entry.channel.do_send(channel::FanOutJoinLeave { join: true, info }),
            ChannelEvent::Leave { info } => entry.channel.do_send(channel::FanOutJoinLeave { join: false, info }),
        }
    }
}

impl Handler<StoredIn> for Registry {
    type Result = ();

    fn handle(&mut self, msg: StoredIn, _: &mut Self::Context) {
        let Some(entry) = self.channels.get_mut(&msg.channel) else { return };
        entry.sent += 1;
        entry.channel.do_send(channel::Stored(msg.message));
    }
}

impl Handler<BrokerReconnected> for Registry {
    type Result = ();

    fn handle(&mut self, _: BrokerReconnected, _: &mut Self::Context) {
        if self.history.is_none() {
            return;
        }
        tracing::info!(channels = self.channels.len(), "NATS is back: channels compare their positions with JetStream");
        for entry in self.channels.values_mut() {
            entry.sent += 1;
            entry.channel.do_send(channel::CheckPosition);
        }
    }
}

impl Handler<AttachBridge> for Registry {
    type Result = ();

    fn handle(&mut self, msg: AttachBridge, _: &mut Self::Context) {
        self.bridge = Some(msg.bridge);
        self.history = msg.history;
    }
}

impl Registry {
    /// The cluster-wide store and the channel's stream shape, when its history lives there.
    fn shared_history(&self, channel: &ResolvedChannel) -> Option<(Arc<HistoryStore>, HistoryShape)> {
        self.history.clone().zip(channel.namespace.history)
    }
}

impl Handler<UserConnections> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: UserConnections, _: &mut Self::Context) -> usize {
        self.users.get(&msg.user).map_or(0, SmallMap::len)
    }
}
