//! The channel actor.

mod shared;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::history::{HistoryError, HistoryPage, Stream};
use super::messages::{Broadcast, DeltaMode, FanOutJoinLeave, Join, Leave, ReadHistory, RemoveHistory, Stop};
use super::rules::Namespace;
use super::IDEMPOTENCY_WINDOW;
use crate::client::messages::{ClientHandle, Deliver, DeliverError, SubscribeAnswer, Subscribed};
use crate::cluster::envelope::ChannelEvent;
use crate::cluster::history::HistoryStore;
use crate::cluster::{NatsBridge, PublishToChannel};
use crate::domain::{ChannelName, ClientId, ClientInfo, Payload, Publication, SmallMap, StreamPosition};
use crate::metrics::METRICS;
use crate::protocol::fossil;
use crate::protocol::outgoing::Push;
use crate::protocol::reply::NotJson;
use crate::protocol::{Disconnect, Frame, Protocol};
use crate::registry::messages::ChannelIdle;

struct Subscriber {
    handle: ClientHandle,
    /// Its user, and its connection and channel info when it has any (boxed: most have none).
    user: Arc<str>,
    infos: Option<Box<(Option<Payload>, Option<Payload>)>>,
    push_join_leave: bool,
    /// Its join and leave are announced.
    emit_join_leave: bool,
    delta: DeltaMode,
    /// It has had a full publication since it subscribed: patches may follow.
    has_delta_base: bool,
}

impl Subscriber {
    fn new(join: Join) -> Self {
        let ClientInfo { user, conn_info, chan_info, .. } = join.info;
        let infos = (conn_info.is_some() || chan_info.is_some()).then(|| Box::new((conn_info, chan_info)));
        Self {
            handle: join.client,
            user,
            infos,
            push_join_leave: join.push_join_leave,
            emit_join_leave: join.emit_join_leave,
            delta: join.delta,
            has_delta_base: false,
        }
    }

    /// Its client info, for join and leave pushes.
    fn info(&self) -> ClientInfo {
        let (conn_info, chan_info) = self.infos.as_deref().cloned().unwrap_or_default();
        ClientInfo { user: self.user.clone(), client: self.handle.id.clone(), conn_info, chan_info }
    }
}

/// The encodings of one publication a channel may need: as it is, as a full payload for delta
/// subscriptions, and as a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain = 0,
    Full = 1,
    Patch = 2,
}

/// Results of recent publishes by idempotency key, with when they expire.
type RecentPublishes = HashMap<String, (Option<StreamPosition>, Instant)>;

/// One channel: subscribers on this node, history, fan-out.
pub struct Channel {
    name: ChannelName,
    namespace: Arc<Namespace>,
    subscribers: SmallMap<ClientId, Subscriber>,
    /// Boxed, as `shared` and `recent`: most channels have none, and every byte here is in
    /// every channel actor.
    stream: Option<Box<Stream>>,
    registry: Arc<Recipient<ChannelIdle>>,
    /// Registry messages handled so far; lets the registry tell "idle" from "idle with
    /// messages still in flight".
    processed: u64,
    generation: u64,
    queue_max_size: usize,
    /// Results of recent publishes by idempotency key, with when they expire.
    recent: Option<Box<RecentPublishes>>,
    pruning_recent: bool,
    /// Cluster mode: join/leave go to every node through NATS instead of straight to local
    /// subscribers (they come back as [`FanOutJoinLeave`]).
    relay: Option<Addr<NatsBridge>>,
    /// Cluster mode with JetStream: history lives in the cluster-wide store, not in `stream`.
    shared: Option<Box<shared::SharedHistory>>,
    /// The last publication delivered (offset, data): the base of the next one's patch.
    delta_base: Option<(u64, Payload)>,
    /// Subscribers with delta negotiated: without any, a publication takes the plain path.
    delta_subscribers: usize,
}

impl Channel {
    /// A channel continuing `kept`, the stream the registry kept while the channel had no actor.
    pub fn new(
        name: ChannelName,
        namespace: Arc<Namespace>,
        kept: Option<Stream>,
        registry: Arc<Recipient<ChannelIdle>>,
        queue_max_size: usize,
        generation: u64,
    ) -> Self {
        let options = &namespace.options;
        let stream = options
            .history_enabled()
            .then(|| Box::new(kept.unwrap_or_else(|| Stream::new(None, options.history_size, options.history_ttl))));
        Self {
            name,
            namespace,
            subscribers: SmallMap::new(),
            stream,
            registry,
            processed: 0,
            generation,
            queue_max_size,
            recent: None,
            pruning_recent: false,
            relay: None,
            shared: None,
            delta_base: None,
            delta_subscribers: 0,
        }
    }

    /// Keeps history in the cluster-wide store (cluster mode with JetStream, history on).
    pub fn with_shared_history(mut self, store: Option<Arc<HistoryStore>>) -> Self {
        if let (Some(store), Some(shape)) = (store, self.namespace.history) {
            self.stream = None;
            self.shared = Some(Box::new(shared::SharedHistory::new(store, shape)));
        }
        self
    }

    /// Relays join/leave through the cluster bridge (cluster mode).
    pub fn with_relay(mut self, relay: Option<Addr<NatsBridge>>) -> Self {
        self.relay = relay;
        self
    }

    /// Hands `push` to subscribers without waiting, encoded at most once per protocol and
    /// shared; slow subscribers are disconnected (3008), and so are JSON subscribers when the
    /// push holds a payload JSON cannot carry (3506, as Centrifugo does).
    fn fan_out(&mut self, push: Push<'_>, join_leave_only: bool) {
        let channel = self.name.clone();
        self.fan_out_forms(
            push.frame_type(),
            |subscriber| (!join_leave_only || subscriber.push_join_leave).then_some(Form::Plain),
            |_, protocol| push.frame(protocol, channel.as_str()),
        );
    }

    /// Fans out one push in the form `pick` chooses per subscriber (`None` skips it); `encode`
    /// runs at most once per form and protocol.
    fn fan_out_forms(
        &mut self,
        frame_type: &'static str,
        mut pick: impl FnMut(&mut Subscriber) -> Option<Form>,
        encode: impl Fn(Form, Protocol) -> Result<Frame, NotJson>,
    ) {
        let mut frames: [[Option<Result<Frame, NotJson>>; 3]; Protocol::COUNT] = Default::default();
        let mut delivered = [[0usize; 3]; Protocol::COUNT];
        let mut dropped = Vec::new();
        for (id, subscriber) in self.subscribers.iter_mut() {
            let Some(form) = pick(subscriber) else { continue };
            let (p, f) = (subscriber.handle.protocol as usize, form as usize);
            let encoded = frames[p][f].get_or_insert_with(|| encode(form, subscriber.handle.protocol));
            let Ok(frame) = encoded else {
                dropped.push((id.clone(), Some(Disconnect::INAPPROPRIATE_PROTOCOL)));
                continue;
            };
            match subscriber.handle.deliver_frame(frame, self.queue_max_size) {
                Ok(()) => delivered[p][f] += 1,
                Err(DeliverError::Slow) => dropped.push((id.clone(), Some(Disconnect::SLOW))),
                Err(DeliverError::Gone) => dropped.push((id.clone(), None)),
            }
        }
        let (mut count, mut bytes) = (0, 0);
        for (frames, delivered) in frames.iter().flatten().zip(delivered.iter().flatten()) {
            if let Some(Ok(frame)) = frames {
                count += delivered;
                bytes += delivered * frame.len();
            }
        }
        METRICS.fanned_out(frame_type, count, bytes);
        for (id, disconnect) in dropped {
            self.drop_subscriber(&id, disconnect);
        }
    }

    /// Removes a subscriber that could not take a push, disconnecting it unless it is gone.
    fn drop_subscriber(&mut self, id: &ClientId, disconnect: Option<Disconnect>) {
        let Some(subscriber) = self.remove_subscriber(id) else { return };
        if let Some(disconnect) = disconnect {
            if disconnect.code == Disconnect::SLOW.code {
                tracing::info!(client = %id, channel = %self.name, "client too slow to read; disconnecting (3008)");
            } else {
                tracing::info!(
                    client = %id, channel = %self.name, code = disconnect.code,
                    "a push holds data that is not JSON and this client speaks JSON; disconnecting"
                );
            }
            subscriber.handle.send(Deliver::Disconnect(disconnect));
        }
        if subscriber.emit_join_leave {
            self.push_join_leave("leave", &subscriber.info());
        }
    }

    /// Announces a subscriber's join or leave (one whose subscription emits them).
    fn push_join_leave(&mut self, kind: &str, info: &ClientInfo) {
        if let Some(relay) = &self.relay {
            let info = info.clone();
            let event = if kind == "join" { ChannelEvent::Join { info } } else { ChannelEvent::Leave { info } };
            relay.do_send(PublishToChannel { channel: self.name.clone(), event, idempotency_key: None });
            return;
        }
        self.fan_out_join_leave(kind, info);
    }

    fn fan_out_join_leave(&mut self, kind: &str, info: &ClientInfo) {
        if !self.subscribers.is_empty() {
            self.fan_out(if kind == "join" { Push::Join(info) } else { Push::Leave(info) }, true);
        }
    }

    /// Nothing here needs an actor. The registry parks a memory-engine stream; in cluster mode
    /// (without JetStream) the stream stays with the actor, which alone hears the cluster's
    /// publications to it.
    fn is_idle(&self) -> bool {
        let stream_may_park = self.relay.is_none() || self.stream.as_deref().is_none_or(Stream::is_empty);
        let settled = self.shared.as_deref().is_none_or(shared::SharedHistory::is_settled);
        self.subscribers.is_empty() && self.recent.is_none() && stream_may_park && settled
    }

    /// Counts a registry message and reports idleness so the registry can drop this channel.
    fn processed_one(&mut self) {
        self.processed += 1;
        self.report_if_idle();
    }

    fn report_if_idle(&self) {
        if self.is_idle() {
            self.registry.do_send(ChannelIdle {
                name: self.name.clone(),
                generation: self.generation,
                processed: self.processed,
                stream: self.stream.as_deref().cloned(),
            });
        }
    }
}

impl Actor for Channel {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(shared) = &self.shared {
            ctx.run_interval(shared.position_check(), |this, ctx| this.check_position(ctx));
        }
        if self.stream.is_some() {
            let period = self.namespace.options.history_ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
            ctx.run_interval(period, |this, _| {
                if let Some(stream) = this.stream.as_mut() {
                    stream.expire(Instant::now());
                }
                this.report_if_idle();
            });
        }
    }
}

impl Handler<Join> for Channel {
    type Result = ();

    fn handle(&mut self, join: Join, ctx: &mut Self::Context) {
        if self.shared.is_some() {
            return self.join_shared(join, ctx);
        }
        let stream = self.stream.as_mut();
        let outcome = Subscribed {
            position: stream.as_ref().map(|s| s.position()),
            recovery: match (stream, &join.recover) {
                (Some(s), Some(since)) => {
                    s.expire(Instant::now());
                    Some(s.recover_in(self.namespace.recovery_mode, since, join.recovery_limit))
                }
                _ => None,
            },
        };
        self.admit(join, Ok(outcome));
    }
}

impl Channel {
    /// Answers a subscriber (before any frame of this channel reaches it) and, on success, adds it.
    fn admit(&mut self, join: Join, outcome: Result<Subscribed, crate::protocol::ReplyError>) {
        let accepted = outcome.is_ok();
        join.client.send(Deliver::Subscribed(Box::new(SubscribeAnswer { channel: self.name.clone(), outcome })));
        if accepted {
            let join_leave = join.emit_join_leave.then(|| join.info.clone());
            self.add_subscriber(Subscriber::new(join));
            if let Some(info) = join_leave {
                self.push_join_leave("join", &info);
            }
        }
        self.processed_one();
    }

    fn add_subscriber(&mut self, subscriber: Subscriber) {
        self.delta_subscribers += usize::from(subscriber.delta != DeltaMode::Off);
        if let Some(replaced) = self.subscribers.insert(subscriber.handle.id.clone(), subscriber) {
            self.delta_subscribers -= usize::from(replaced.delta != DeltaMode::Off);
        }
    }

    fn remove_subscriber(&mut self, id: &ClientId) -> Option<Subscriber> {
        let removed = self.subscribers.remove(id)?;
        self.delta_subscribers -= usize::from(removed.delta != DeltaMode::Off);
        Some(removed)
    }

    /// Fans a publication out to every subscriber, encoded once per form and protocol, and
    /// keeps it as the base of the next publication's patch.
    fn deliver(&mut self, publication: &Publication) {
        if self.delta_subscribers == 0 {
            if !self.subscribers.is_empty() {
                self.fan_out(Push::Publication(publication), false);
            }
        } else {
            self.fan_out_with_deltas(publication);
        }
        self.delta_base = (publication.offset > 0).then(|| (publication.offset, publication.data.clone()));
    }

    /// Delta subscriptions get a full payload first, then patches while each publication
    /// follows the previous one (protocol-extensions.md §2.3).
    fn fan_out_with_deltas(&mut self, publication: &Publication) {
        let wants_patch = self.subscribers.values().any(|s| s.delta == DeltaMode::Patches && s.has_delta_base);
        let patch = wants_patch.then(|| self.patch_for(publication)).flatten();
        let channel = self.name.clone();
        self.fan_out_forms(
            "push_publication",
            |subscriber| {
                let form = match subscriber.delta {
                    DeltaMode::Off => Form::Plain,
                    DeltaMode::Full => Form::Full,
                    DeltaMode::Patches if subscriber.has_delta_base && patch.is_some() => Form::Patch,
                    DeltaMode::Patches => Form::Full,
                };
                subscriber.has_delta_base = true;
                Some(form)
            },
            |form, protocol| encode_form(publication, patch.as_ref(), form, protocol, channel.as_str()),
        );
    }

    /// The fossil patch from the previous publication, when the publisher asked for delta, the
    /// previous publication is the one just before, and the patch is smaller than the data.
    fn patch_for(&self, publication: &Publication) -> Option<Payload> {
        let (base_offset, base) = self.delta_base.as_ref()?;
        if !publication.use_delta || publication.offset != base_offset + 1 {
            return None;
        }
        let patch = fossil::create(base.as_bytes(), publication.data.as_bytes());
        (patch.len() < publication.data.len()).then(|| Payload::new(patch))
    }
}

/// One form of a publication, encoded. A JSON delta subscription reads every `data` as a JSON
/// string; a patch that is not UTF-8 cannot be one, so JSON gets the full payload instead
/// (Centrifugo would send a mangled patch; protocol-extensions.md §2.7).
fn encode_form(
    publication: &Publication,
    patch: Option<&Payload>,
    form: Form,
    protocol: Protocol,
    channel: &str,
) -> Result<Frame, NotJson> {
    let with_data = |data: Payload, delta: bool| Publication { data, delta, version: 0, ..publication.clone() };
    let patch = patch.filter(|_| form == Form::Patch);
    let variant = match protocol {
        _ if form == Form::Plain => None,
        Protocol::Protobuf | Protocol::UniProtobuf => patch.map(|patch| with_data(patch.clone(), true)),
        Protocol::Json | Protocol::UniJson => Some(match patch.and_then(Payload::to_json_string) {
            Some(text) => with_data(text, true),
            None => with_data(publication.data.to_json_string().ok_or(NotJson)?, false),
        }),
    };
    Push::Publication(variant.as_ref().unwrap_or(publication)).frame(protocol, channel)
}

impl Handler<Leave> for Channel {
    type Result = ();

    fn handle(&mut self, leave: Leave, _: &mut Self::Context) {
        if let Some(leave) = self.leave_shared(leave) {
            self.leave(leave);
        }
    }
}

impl Channel {
    fn leave(&mut self, leave: Leave) {
        if let Some(subscriber) = self.remove_subscriber(&leave.client).filter(|s| s.emit_join_leave) {
            self.push_join_leave("leave", &subscriber.info());
        }
        self.processed_one();
    }
}

impl Handler<Broadcast> for Channel {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, ctx: &mut Self::Context) {
        let now = Instant::now();
        let repeated = msg.idempotency_key.as_ref().and_then(|key| self.recent.as_ref()?.get(key));
        if let Some((position, _)) = repeated {
            answer(msg.reply, position.clone());
            self.processed_one();
            return;
        }
        let (publication, position) = self.append(msg.publication, msg.skip_history, now);
        if let Some(key) = msg.idempotency_key {
            self.remember(key, position.clone(), now, ctx);
        }
        // The publisher first: tasks on a thread run in the order they were woken, so its answer
        // (an API response, a client's publish reply) is not queued behind every subscriber the
        // fan-out wakes.
        answer(msg.reply, position);
        if let Some(publication) = publication {
            self.deliver(&publication);
        }
        self.processed_one();
    }
}

fn answer(reply: Option<crate::registry::messages::PublishReply>, position: Option<StreamPosition>) {
    if let Some(reply) = reply {
        let _ = reply.send(Ok(position));
    }
}

impl Channel {
    /// Appends to history (unless skipped): the publication to fan out (encoded once, by
    /// [`Self::deliver`]) and the stream position. A publication with an outdated version is
    /// dropped: nothing to fan out, and the answer is the current position.
    fn append(
        &mut self,
        publication: Publication,
        skip_history: bool,
        now: Instant,
    ) -> (Option<Arc<Publication>>, Option<StreamPosition>) {
        match self.stream.as_mut().filter(|_| !skip_history) {
            Some(stream) if stream.is_outdated(&publication) => (None, Some(stream.position())),
            Some(stream) => {
                stream.expire(now);
                let publication = stream.append(publication, now);
                (Some(publication), Some(stream.position()))
            }
            None => (Some(Arc::new(publication)), None),
        }
    }

    fn remember(&mut self, key: String, position: Option<StreamPosition>, now: Instant, ctx: &mut Context<Self>) {
        self.recent.get_or_insert_default().insert(key, (position, now + IDEMPOTENCY_WINDOW));
        if !self.pruning_recent {
            self.pruning_recent = true;
            ctx.run_interval(Duration::from_secs(10), |this, _| {
                let now = Instant::now();
                if let Some(recent) = this.recent.as_mut() {
                    recent.retain(|_, (_, until)| *until > now);
                    if recent.is_empty() {
                        this.recent = None;
                    }
                }
                this.report_if_idle();
            });
        }
    }
}

impl Handler<ReadHistory> for Channel {
    type Result = ActorResponse<Self, Result<HistoryPage, HistoryError>>;

    fn handle(&mut self, ReadHistory(query): ReadHistory, _: &mut Self::Context) -> Self::Result {
        if self.shared.is_some() {
            self.processed_one();
            return ActorResponse::r#async(self.read_shared_history(query));
        }
        let page = match self.stream.as_mut() {
            Some(stream) => {
                stream.expire(Instant::now());
                stream.read(&query)
            }
            None => Ok(Default::default()),
        };
        self.processed_one();
        ActorResponse::reply(page)
    }
}

impl Handler<RemoveHistory> for Channel {
    type Result = ();

    fn handle(&mut self, _: RemoveHistory, _: &mut Self::Context) {
        if let Some(stream) = self.stream.as_mut() {
            let position = stream.position();
            let options = &self.namespace.options;
            let last_version = stream.last_version().clone();
            **stream =
                Stream::new(Some(position), options.history_size, options.history_ttl).with_last_version(last_version);
        }
        self.processed_one();
    }
}

impl Handler<FanOutJoinLeave> for Channel {
    type Result = ();

    fn handle(&mut self, msg: FanOutJoinLeave, _: &mut Self::Context) {
        // The node of the subscriber decided it is announced.
        self.fan_out_join_leave(if msg.join { "join" } else { "leave" }, &msg.info);
        self.processed_one();
    }
}

impl Handler<Stop> for Channel {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
