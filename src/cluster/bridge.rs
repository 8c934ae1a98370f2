//! The NATS bridge actor and its inbox.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::envelope::{
    ChannelEvent, ChannelMessage, ControlCommand, ControlMessage, NodeInfo, SurveyAnswer, SurveyQuery, UserTarget,
    VERSION,
};
use super::history::StoredMessage;
use super::idempotency::{Claim, Idempotency};
use super::subjects::{decode_token, Subjects};
use crate::channel::ChannelRules;
use crate::channel::IDEMPOTENCY_WINDOW;
use crate::client::messages::{EmulatedSessions, ServerSubscribe, SubscribeOverrides};
use crate::config::NatsSettings;
use crate::domain::{ChannelName, ClientId, StreamPosition};
use crate::metrics::METRICS;
use crate::node::VERSION as GYRE_VERSION;
use crate::protocol::Disconnect;
use crate::registry::messages::{
    BrokerReconnected, ClusterIn, GetStats, ListChannels, LocalPresence, StoredIn, ToUser, UserAction,
};
use crate::registry::Registry;

/// How often a node announces itself.
const HEARTBEAT: Duration = Duration::from_secs(3);
/// A peer silent for this long is forgotten (Centrifugo: 2 × 3 s + 1 s).
const PEER_TTL: Duration = Duration::from_secs(7);
/// How long a survey waits for answers.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// The NATS connection is down; nothing was sent.
    #[error("NATS connection is down")]
    NotConnected,
    /// NATS refused or failed the publish.
    #[error("NATS publish failed: {0}")]
    Publish(String),
}

/// Connects to NATS; fails fast with a clear error when the server is unreachable (the node
/// then exits and its supervisor restarts it). `reconnected` is told each time the connection
/// comes back after a loss.
pub async fn connect(
    settings: &NatsSettings,
    node_name: &str,
    reconnected: Recipient<BrokerReconnected>,
) -> anyhow::Result<async_nats::Client> {
    let connected_before = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = async_nats::ConnectOptions::new()
        .name(format!("gyre {node_name}"))
        .connection_timeout(settings.dial_timeout.max(Duration::from_millis(100)))
        .event_callback(move |event| {
            let connected_before = connected_before.clone();
            let reconnected = reconnected.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            METRICS.broker_reconnected();
                            tracing::info!("NATS connection re-established");
                            reconnected.do_send(BrokerReconnected);
                        }
                    }
                    async_nats::Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting"),
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            }
        });
    options.connect(settings.url.as_str()).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot connect to NATS at {}: {error} (check broker.nats.url and that nats-server runs)",
            settings.url
        )
    })
}

/// Starts relaying `channel` (sent by the registry when it creates the channel actor); answers
/// once NATS has confirmed the subscriptions, so nothing published afterwards is missed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WatchChannel {
    /// The channel (its core subject carries join/leave and publications without history).
    pub channel: ChannelName,
    /// The live subject of its cluster-wide history, when it has one.
    pub live: Option<String>,
}

/// Stops relaying `channel` (sent by the registry when it drops the channel actor).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UnwatchChannel(pub ChannelName);

/// Publishes channel traffic to every node (this one included).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ClusterError>")]
pub struct PublishToChannel {
    /// The channel.
    pub channel: ChannelName,
    /// What happened.
    pub event: ChannelEvent,
    /// A repeat of this key within the idempotency window, through any node, is not published
    /// again (and still answers success).
    pub idempotency_key: Option<String>,
}

/// Broadcasts a control command to the other nodes.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ClusterError>")]
pub struct SendControl(pub ControlCommand);

/// The other live nodes.
#[derive(Debug, Message)]
#[rtype(result = "Vec<NodeInfo>")]
pub struct GetNodes;

/// Relays an `/emulation` request to the node holding the session. Answers false when that
/// node is not a live peer.
#[derive(Debug, Message)]
#[rtype(result = "Result<bool, ClusterError>")]
pub struct RelayEmulation {
    /// The node's uid.
    pub node: String,
    /// Session id.
    pub session: String,
    /// The commands (JSON lines or delimited Protobuf).
    pub data: crate::domain::Payload,
}

/// Asks the other nodes; answers arrive until all live peers replied or the timeout.
#[derive(Debug, Message)]
#[rtype(result = "Vec<SurveyAnswer>")]
pub struct Survey(pub SurveyQuery);

/// Leaves the cluster: tells the peers (so `info` drops this node at once), flushes, stops.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaveCluster;

/// One message from NATS.
struct Incoming(async_nats::Message);

struct PendingSurvey {
    expected: usize,
    answers: Vec<SurveyAnswer>,
    reply: Option<oneshot::Sender<Vec<SurveyAnswer>>>,
}

/// The bridge between this node and NATS.
pub struct NatsBridge {
    client: async_nats::Client,
    subjects: Subjects,
    uid: String,
    name: String,
    started: Instant,
    registry: Addr<Registry>,
    rules: Arc<ChannelRules>,
    wanted: HashSet<ChannelName>,
    subscriptions: HashMap<ChannelName, Vec<SpawnHandle>>,
    /// `<prefix>.live.`: stored publications of channels with cluster-wide history.
    live_prefix: Option<String>,
    peers: HashMap<String, (NodeInfo, Instant)>,
    surveys: HashMap<u64, PendingSurvey>,
    next_survey: u64,
    /// Cluster-wide idempotency markers; `None` when NATS has no JetStream (then node-local).
    idempotency: Option<Arc<Idempotency>>,
    local_keys: HashMap<(ChannelName, String), Instant>,
    emulated: Arc<EmulatedSessions>,
}

impl NatsBridge {
    /// A bridge for this node.
    pub fn new(
        client: async_nats::Client,
        prefix: &str,
        uid: String,
        name: String,
        registry: Addr<Registry>,
        rules: Arc<ChannelRules>,
    ) -> Self {
        Self {
            client,
            subjects: Subjects::new(prefix),
            uid,
            name,
            started: Instant::now(),
            registry,
            rules,
            wanted: HashSet::new(),
            subscriptions: HashMap::new(),
            live_prefix: None,
            peers: HashMap::new(),
            surveys: HashMap::new(),
            next_survey: 0,
            idempotency: None,
            local_keys: HashMap::new(),
            emulated: Arc::default(),
        }
    }

    /// Uses JetStream markers for idempotent publish.
    pub fn with_idempotency(mut self, idempotency: Option<Idempotency>) -> Self {
        self.idempotency = idempotency.map(Arc::new);
        self
    }

    /// Relays stored publications published under `live_prefix` (cluster-wide history).
    pub fn with_live_prefix(mut self, live_prefix: Option<String>) -> Self {
        self.live_prefix = live_prefix;
        self
    }

    /// Delivers relayed `/emulation` requests to this node's emulated sessions.
    pub fn with_emulated(mut self, sessions: Arc<EmulatedSessions>) -> Self {
        self.emulated = sessions;
        self
    }

    /// Subscribes to a control subject for the bridge's lifetime.
    fn subscribe_control(&mut self, subject: String, ctx: &mut Context<Self>) {
        let client = self.client.clone();
        let subscribing = async move { client.subscribe(subject).await };
        ctx.wait(subscribing.into_actor(self).map(|result, _, ctx| match result {
            Ok(subscriber) => {
                ctx.add_stream(subscriber.map(Incoming));
            }
            Err(error) => {
                tracing::error!(%error, "NATS control subscribe failed; this node cannot be reached by others")
            }
        }));
    }

    fn publish_bytes(
        &self,
        kind: &'static str,
        subject: String,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), ClusterError>> {
        let client = self.client.clone();
        async move {
            // async-nats buffers publishes while disconnected and reports Ok; an API caller must
            // learn that nothing went out instead.
            let outcome = if client.connection_state() != async_nats::connection::State::Connected {
                Err(ClusterError::NotConnected)
            } else {
                client.publish(subject, payload.into()).await.map_err(|e| ClusterError::Publish(e.to_string()))
            };
            match &outcome {
                Ok(()) => METRICS.broker_sent(kind),
                Err(_) => METRICS.broker_publish_error(kind),
            }
            outcome
        }
    }

    fn control(&self, command: ControlCommand) -> Vec<u8> {
        serde_json::to_vec(&ControlMessage { v: VERSION, from: self.uid.clone(), command }).unwrap_or_default()
    }

    /// Forgets peers not heard from within `PEER_TTL`: a killed node says no goodbye, and a
    /// survey must not wait for it.
    fn forget_silent_peers(&mut self) {
        let now = Instant::now();
        self.peers.retain(|_, (_, seen)| now.duration_since(*seen) < PEER_TTL);
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        self.forget_silent_peers();
        let (uid, name, uptime) = (self.uid.clone(), self.name.clone(), self.started.elapsed().as_secs());
        let stats = self.registry.send(GetStats);
        ctx.spawn(stats.into_actor(self).map(move |stats, this, ctx| {
            let stats = stats.unwrap_or_default();
            let info = NodeInfo {
                uid,
                name,
                version: format!("{GYRE_VERSION} OSS"),
                num_clients: stats.num_clients,
                num_users: stats.num_users,
                num_channels: stats.num_channels,
                num_subs: stats.num_subs,
                uptime,
            };
            let payload = this.control(ControlCommand::Node(info));
            let sending = this.publish_bytes("control", this.subjects.control(), payload);
            ctx.spawn(
                async move {
                    let _ = sending.await;
                }
                .into_actor(this),
            );
        }));
    }

    fn on_channel_message(&mut self, message: &async_nats::Message) {
        match serde_json::from_slice::<ChannelMessage>(&message.payload) {
            Ok(m) if m.v == VERSION => {
                METRICS.broker_received(event_kind(&m.event));
                self.registry.do_send(ClusterIn { channel: ChannelName::new_unchecked(&m.channel), event: m.event });
            }
            Ok(m) => tracing::warn!(version = m.v, "dropping channel message of an unknown envelope version"),
            Err(error) => tracing::warn!(%error, subject = %message.subject, "dropping malformed channel message"),
        }
    }

    /// A publication stored in the cluster-wide history, re-published by JetStream.
    fn on_stored_message(&mut self, message: &async_nats::Message) {
        let channel = message.subject.rsplit('.').next().and_then(decode_token);
        let seq = message.headers.as_ref().and_then(|h| h.get("Nats-Sequence")).and_then(|v| v.as_str().parse().ok());
        let stored = seq.and_then(|seq| StoredMessage::decode(seq, message.headers.as_ref(), &message.payload));
        match (channel, stored) {
            (Some(channel), Some(message)) => {
                METRICS.broker_received("publication");
                self.registry.do_send(StoredIn { channel: ChannelName::new_unchecked(&channel), message });
            }
            _ => tracing::warn!(subject = %message.subject, "dropping a re-published message gyre did not write"),
        }
    }

    fn on_control_message(&mut self, message: &async_nats::Message, ctx: &mut Context<Self>) {
        let control = match serde_json::from_slice::<ControlMessage>(&message.payload) {
            Ok(control) if control.v == VERSION => control,
            Ok(_) => return tracing::warn!("dropping control message of an unknown envelope version"),
            Err(error) => return tracing::warn!(%error, "dropping malformed control message"),
        };
        if control.from == self.uid {
            return;
        }
        METRICS.broker_received("control");
        match control.command {
            ControlCommand::Node(info) => {
                self.peers.insert(control.from, (info, Instant::now()));
            }
            ControlCommand::Shutdown => {
                self.peers.remove(&control.from);
            }
            ControlCommand::Survey { id, query } => self.answer_survey(control.from, id, query, ctx),
            ControlCommand::SurveyReply { id, answer } => self.collect_answer(id, answer),
            ControlCommand::Emulation { session, data } => {
                if !self.emulated.deliver(&session, data.to_bytes()) {
                    tracing::debug!(%session, "relayed /emulation request for a session that is gone");
                }
            }
            command => {
                if let Some(to_user) = self.user_action(command) {
                    self.registry.do_send(to_user);
                }
            }
        }
    }

    /// Turns a remote user command into the local registry message.
    fn user_action(&self, command: ControlCommand) -> Option<ToUser> {
        let (target, action) = match command {
            ControlCommand::Disconnect { target, whitelist, code, reason } => {
                let mut to_user = to_user(target, UserAction::Disconnect(Disconnect::custom(code, &reason)));
                to_user.whitelist = whitelist.iter().map(|c| ClientId::from(c.as_str())).collect();
                return Some(to_user);
            }
            ControlCommand::Unsubscribe { target, channel } => {
                (target, UserAction::Unsubscribe(ChannelName::new_unchecked(&channel)))
            }
            ControlCommand::Subscribe { target, channel, info, data, recover_since, expire_at, overrides } => {
                let channel = self.rules.resolve(&channel).ok()?;
                let subscribe = ServerSubscribe {
                    channel,
                    info,
                    data,
                    recover_since: recover_since.map(|(offset, epoch)| StreamPosition { offset, epoch: epoch.into() }),
                    expire_at,
                    overrides: SubscribeOverrides {
                        presence: overrides.presence,
                        join_leave: overrides.join_leave,
                        force_push_join_leave: overrides.force_push_join_leave,
                        force_positioning: overrides.force_positioning,
                        force_recovery: overrides.force_recovery,
                    },
                };
                (target, UserAction::Subscribe(subscribe))
            }
            ControlCommand::Refresh { target, expired, expire_at, info } => {
                (target, UserAction::Refresh { expired, expire_at, info })
            }
            _ => return None,
        };
        Some(to_user(target, action))
    }

    fn answer_survey(&mut self, from: String, id: u64, query: SurveyQuery, ctx: &mut Context<Self>) {
        let registry = self.registry.clone();
        let subject = self.subjects.node(&from);
        let answering = async move {
            let mut answer = SurveyAnswer::default();
            match query {
                SurveyQuery::Channels { pattern } => {
                    let compiled = crate::api::compile_glob(&pattern);
                    let list = ListChannels { pattern: compiled, glob: pattern, cluster: false };
                    answer.channels = registry.send(list).await.unwrap_or_default();
                }
                SurveyQuery::Presence { channel } => {
                    let channel = ChannelName::new_unchecked(&channel);
                    let local = registry.send(LocalPresence { channel }).await.unwrap_or_default();
                    answer.presence = local.into_iter().map(|(id, info)| (id.to_string(), info)).collect();
                }
            }
            answer
        };
        ctx.spawn(answering.into_actor(self).map(move |answer, this, ctx| {
            let payload = this.control(ControlCommand::SurveyReply { id, answer });
            let sending = this.publish_bytes("control", subject, payload);
            ctx.spawn(
                async move {
                    let _ = sending.await;
                }
                .into_actor(this),
            );
        }));
    }

    fn collect_answer(&mut self, id: u64, answer: SurveyAnswer) {
        let Some(survey) = self.surveys.get_mut(&id) else { return };
        survey.answers.push(answer);
        if survey.answers.len() >= survey.expected {
            self.finish_survey(id);
        }
    }

    fn finish_survey(&mut self, id: u64) {
        if let Some(mut survey) = self.surveys.remove(&id) {
            if let Some(reply) = survey.reply.take() {
                if survey.answers.len() < survey.expected {
                    METRICS.survey_partial();
                }
                let _ = reply.send(survey.answers);
            }
        }
    }
}

/// Metrics `type` of channel traffic.
fn event_kind(event: &ChannelEvent) -> &'static str {
    match event {
        ChannelEvent::Publication { .. } => "publication",
        ChannelEvent::Join { .. } => "join",
        ChannelEvent::Leave { .. } => "leave",
    }
}

fn to_user(target: UserTarget, action: UserAction) -> ToUser {
    ToUser {
        user: target.user,
        client: (!target.client.is_empty()).then(|| ClientId::from(target.client.as_str())),
        session: (!target.session.is_empty()).then_some(target.session),
        whitelist: Vec::new(),
        action,
    }
}

impl Actor for NatsBridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // `wait`: nothing else runs on the bridge until the control subjects are subscribed.
        self.subscribe_control(self.subjects.control(), ctx);
        self.subscribe_control(self.subjects.node(&self.uid), ctx);
        self.heartbeat(ctx);
        ctx.run_interval(HEARTBEAT, |this, ctx| this.heartbeat(ctx));
    }
}

impl Handler<LeaveCluster> for NatsBridge {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: LeaveCluster, _: &mut Self::Context) -> Self::Result {
        let payload = self.control(ControlCommand::Shutdown);
        let client = self.client.clone();
        let subject = self.subjects.control();
        let leaving = async move {
            let _ = client.publish(subject, payload.into()).await;
            let _ = client.flush().await;
        };
        Box::pin(leaving.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}

impl StreamHandler<Incoming> for NatsBridge {
    fn handle(&mut self, Incoming(message): Incoming, ctx: &mut Self::Context) {
        let subject = message.subject.as_str();
        if subject == self.subjects.control() || subject == self.subjects.node(&self.uid) {
            self.on_control_message(&message, ctx);
        } else if self.live_prefix.as_deref().is_some_and(|p| subject.starts_with(p)) {
            self.on_stored_message(&message);
        } else {
            self.on_channel_message(&message);
        }
    }

    /// A subscription ended (unsubscribed on purpose); the bridge keeps running.
    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Handler<WatchChannel> for NatsBridge {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: WatchChannel, _: &mut Self::Context) -> Self::Result {
        let channel = msg.channel;
        self.wanted.insert(channel.clone());
        let client = self.client.clone();
        let subjects: Vec<String> =
            [Some(self.subjects.channel(channel.as_str())), msg.live].into_iter().flatten().collect();
        let subscribing = async move {
            let mut subscribers = Vec::with_capacity(subjects.len());
            for subject in subjects {
                subscribers.push(client.subscribe(subject).await);
            }
            // The PING/PONG round trip of a flush proves the server has registered the SUBs.
            let _ = client.flush().await;
            subscribers.into_iter().collect::<Result<Vec<_>, _>>()
        };
        Box::pin(subscribing.into_actor(self).map(move |result, this, ctx| match result {
            Ok(subscribers) if this.wanted.contains(&channel) && !this.subscriptions.contains_key(&channel) => {
                let handles = subscribers.into_iter().map(|s| ctx.add_stream(s.map(Incoming))).collect();
                this.subscriptions.insert(channel, handles);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, channel = %channel, "NATS subscribe failed; channel traffic from other nodes will not arrive"),
        }))
    }
}

impl Handler<UnwatchChannel> for NatsBridge {
    type Result = ();

    fn handle(&mut self, UnwatchChannel(channel): UnwatchChannel, ctx: &mut Self::Context) {
        self.wanted.remove(&channel);
        for handle in self.subscriptions.remove(&channel).unwrap_or_default() {
            ctx.cancel_future(handle);
        }
    }
}

impl Handler<PublishToChannel> for NatsBridge {
    type Result = ResponseFuture<Result<(), ClusterError>>;

    fn handle(&mut self, msg: PublishToChannel, _: &mut Self::Context) -> Self::Result {
        let kind = event_kind(&msg.event);
        let channel = msg.channel.to_string();
        let message = ChannelMessage { v: VERSION, channel: channel.clone(), event: msg.event };
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        let publishing = self.publish_bytes(kind, self.subjects.channel(&channel), payload);
        let Some(key) = msg.idempotency_key else { return Box::pin(publishing) };
        let Some(markers) = self.idempotency.clone() else {
            // No JetStream: idempotency holds per node only.
            let now = Instant::now();
            self.local_keys.retain(|_, until| *until > now);
            if self.local_keys.contains_key(&(msg.channel.clone(), key.clone())) {
                return Box::pin(async { Ok(()) });
            }
            self.local_keys.insert((msg.channel, key), crate::domain::deadline_after(now, IDEMPOTENCY_WINDOW));
            return Box::pin(publishing);
        };
        Box::pin(async move {
            match markers.claim(&channel, &key).await {
                Ok(Claim::Repeat) => return Ok(()),
                Ok(Claim::First) => {}
                Err(error) => return Err(ClusterError::Publish(format!("idempotency marker: {error}"))),
            }
            let outcome = publishing.await;
            if outcome.is_err() {
                markers.release(&channel, &key).await;
            }
            outcome
        })
    }
}

impl Handler<SendControl> for NatsBridge {
    type Result = ResponseFuture<Result<(), ClusterError>>;

    fn handle(&mut self, SendControl(command): SendControl, _: &mut Self::Context) -> Self::Result {
        let payload = self.control(command);
        Box::pin(self.publish_bytes("control", self.subjects.control(), payload))
    }
}

impl Handler<RelayEmulation> for NatsBridge {
    type Result = ResponseFuture<Result<bool, ClusterError>>;

    fn handle(&mut self, msg: RelayEmulation, _: &mut Self::Context) -> Self::Result {
        self.forget_silent_peers();
        if !self.peers.contains_key(&msg.node) {
            return Box::pin(async { Ok(false) });
        }
        let payload = self.control(ControlCommand::Emulation { session: msg.session, data: msg.data });
        let sending = self.publish_bytes("control", self.subjects.node(&msg.node), payload);
        Box::pin(async move { sending.await.map(|()| true) })
    }
}

impl Handler<GetNodes> for NatsBridge {
    type Result = MessageResult<GetNodes>;

    fn handle(&mut self, _: GetNodes, _: &mut Self::Context) -> Self::Result {
        self.forget_silent_peers();
        MessageResult(self.peers.values().map(|(info, _)| info.clone()).collect())
    }
}

impl Handler<Survey> for NatsBridge {
    type Result = ResponseFuture<Vec<SurveyAnswer>>;

    fn handle(&mut self, Survey(query): Survey, ctx: &mut Self::Context) -> Self::Result {
        self.forget_silent_peers();
        let expected = self.peers.len();
        if expected == 0 {
            return Box::pin(async { Vec::new() });
        }
        self.next_survey += 1;
        let id = self.next_survey;
        let (reply, answers) = oneshot::channel();
        self.surveys.insert(id, PendingSurvey { expected, answers: Vec::new(), reply: Some(reply) });
        let payload = self.control(ControlCommand::Survey { id, query });
        let sending = self.publish_bytes("control", self.subjects.control(), payload);
        ctx.run_later(SURVEY_TIMEOUT, move |this, _| this.finish_survey(id));
        Box::pin(async move {
            if sending.await.is_err() {
                return Vec::new();
            }
            answers.await.unwrap_or_default()
        })
    }
}
